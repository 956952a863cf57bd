// Package atomicfile writes files so that a reader, or a crash, sees
// either the old contents or all of the new: through a synced temporary
// file in the same folder and a rename. Checkpoints, ONNX files, plots,
// metrics and masks are all written this way.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write writes b to path through a synced temporary file and a
// rename, so path holds either its old contents or all of b. The file gets
// mode 0644, as os.WriteFile would give it. Folders of path that do not
// exist are created (mode 0755), and removed again if the write fails. An
// error names path (not the temporary file). A path that is a folder is
// refused before anything is written.
func Write(path string, b []byte) error {
	return WriteAll([]string{path}, [][]byte{b})
}

// WriteAll writes data[i] to paths[i] for every i as Write
// does, with every temporary file written and synced before the first
// rename: a failure before the renames (a folder that cannot be written,
// a full disk) leaves every path as it was. Only a rename failing after
// another succeeded (rare: the folders were writable a moment before)
// leaves some paths replaced and the others not.
func WriteAll(paths []string, data [][]byte) error {
	if len(paths) != len(data) {
		return fmt.Errorf("atomicfile: %d paths for %d contents", len(paths), len(data))
	}
	var tmps, made []string // made: the outermost folder each staging created, or ""
	cleanup := func(from int) {
		for _, t := range tmps[from:] {
			os.Remove(t)
		}
		for i := len(made) - 1; i >= 0; i-- {
			removeMade(filepath.Dir(paths[i]), made[i])
		}
	}
	for i, path := range paths {
		tmp, m, err := stage(path, data[i])
		made = append(made, m)
		if err != nil {
			cleanup(0)
			return err
		}
		tmps = append(tmps, tmp)
	}
	for i, path := range paths {
		if err := os.Rename(tmps[i], path); err != nil {
			cleanup(i)
			return writeError(path, err)
		}
	}
	return nil
}

// stage writes b to a synced temporary file next to path, creating the
// missing folders of path; it returns the file's name and the outermost
// folder it created ("" if none). On failure it leaves nothing behind.
func stage(path string, b []byte) (tmp, made string, err error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return "", "", fmt.Errorf("writing %s: it is a folder, not a file", path)
	}
	dir := filepath.Dir(path)
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		made = d
		if filepath.Dir(d) == d {
			break
		}
	}
	if made != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			removeMade(dir, made)
			return "", "", fmt.Errorf("writing %s: creating its folder: %w", path, err)
		}
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		removeMade(dir, made)
		return "", "", writeError(path, err)
	}
	tmp = f.Name()
	if err = f.Chmod(0o644); err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		removeMade(dir, made)
		return "", "", writeError(path, err)
	}
	return tmp, made, nil
}

// removeMade removes dir and the folders above it up to made, the
// outermost one a write created; os.Remove removes only empty folders, so
// one that has since received a file stays.
func removeMade(dir, made string) {
	if made == "" {
		return
	}
	for d := dir; ; d = filepath.Dir(d) {
		os.Remove(d)
		if d == made || filepath.Dir(d) == d {
			return
		}
	}
}

// writeError is the error of a failed write of path: the cause without
// the temporary file's name (which means nothing to whoever reads the
// message), still matching errors.Is(err, fs.ErrPermission) and the like.
func writeError(path string, err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		err = pe.Err
	case errors.As(err, &le):
		err = le.Err
	}
	return fmt.Errorf("writing %s: %w", path, err)
}
