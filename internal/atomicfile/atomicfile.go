// Package atomicfile writes files so that a reader, or a crash, sees
// either the old contents or all of the new: through a synced temporary
// file in the same folder and a rename. Checkpoints, ONNX files, plots,
// metrics and masks are all written this way.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// Write writes b to path through a synced temporary file and a
// rename, so path holds either its old contents or all of b. A path that
// exists keeps its permission bits (a 0600 checkpoint stays 0600); a new
// file gets 0666 less the umask, as os.WriteFile(path, b, 0o666) would
// give it (0644 under the usual umask 022, 0600 under 077). Folders of
// path that do not exist are created (mode 0755 less the umask), and
// removed again if the write fails. An
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
	// A new file is created 0666 less the umask, as os.WriteFile would
	// create it; the temporary file for an existing one 0600 (no one else
	// can open it while it is written) and then given the existing file's
	// permission bits.
	exists, keep := false, fs.FileMode(0)
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return "", "", fmt.Errorf("writing %s: it is a folder, not a file", path)
		}
		exists, keep = true, st.Mode().Perm()
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
	perm := fs.FileMode(0o666)
	if exists {
		perm = 0o600
	}
	f, err := createTemp(dir, "."+filepath.Base(path)+".", ".tmp", perm)
	if err != nil {
		removeMade(dir, made)
		return "", "", writeError(path, err)
	}
	tmp = f.Name()
	if exists { // fchmod, unlike open, does not apply the umask
		err = f.Chmod(keep)
	}
	if err == nil {
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

// createTemp creates a new file prefix+random+suffix in dir, as
// os.CreateTemp does but with mode perm less the umask, so that the kernel
// applies the umask to a new file as os.WriteFile has it do (os.CreateTemp
// always creates 0600, and reading the umask with syscall.Umask changes it
// for a moment under every other goroutine's feet).
func createTemp(dir, prefix, suffix string, perm fs.FileMode) (*os.File, error) {
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10)+suffix)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) && try < 10000 {
			continue
		}
		return f, err
	}
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
