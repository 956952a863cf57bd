// Package atomicfile writes files so that a reader, or a crash, sees
// either the old contents or all of the new: through a synced temporary
// file in the same folder and a rename. Checkpoints, ONNX files, plots,
// metrics and masks are all written this way. A process that must exit
// in the middle of a write (the CLI on a second Ctrl-C) calls Abandon
// first, which removes the temporary files of the writes under way.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
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
// leaves some paths replaced and the others not. No paths is no write:
// nil, after Abandon too.
func WriteAll(paths []string, data [][]byte) error {
	if len(paths) != len(data) {
		return fmt.Errorf("atomicfile: %d paths for %d contents", len(paths), len(data))
	}
	if len(paths) == 0 {
		return nil // nothing to stage, and no path for commit to name
	}
	var ss []*staged
	for i, path := range paths {
		s, err := stage(path, data[i])
		if err != nil {
			inFlight.mu.Lock()
			drop(ss, 0)
			inFlight.mu.Unlock()
			return err
		}
		ss = append(ss, s)
	}
	if h := TestHookStaged; h != nil {
		h(paths)
	}
	return commit(paths, ss)
}

// TestHookStaged, when not nil, is called by WriteAll (and so Write) with
// its paths once their temporary files are written and synced, before the
// renames. Only tests set it, before any write: one that blocks holds a
// write in flight, as a slow disk would, for a signal to arrive during it.
var TestHookStaged func(paths []string)

// staged is a temporary file written for a path and not yet renamed.
type staged struct {
	tmp  string // the temporary file
	dir  string // its folder, path's
	made string // the outermost folder of dir its write created, or ""
}

// inFlight registers the temporary files of the writes under way, from
// the moment each is created to its rename or removal, for Abandon.
var inFlight struct {
	mu        sync.Mutex
	writes    []*staged // in the order they were created
	abandoned bool      // set by Abandon: writes fail before creating anything
}

// errAbandoned is the cause of a write that Abandon stopped.
var errAbandoned = errors.New("abandoned, the process is exiting")

// Abandon removes the temporary file of every write under way, and the
// folders those writes created, and makes every write from then on fail
// without creating anything. It is for a process about to exit in the
// middle of a write (the CLI on a second Ctrl-C), which would otherwise
// leave a hidden .NAME.*.tmp file beside the path; the path keeps its old
// contents, and the write fails. A WriteAll whose renames have begun
// completes them first (Abandon waits for that moment), so its paths hold
// all of the old contents or all of the new, as after any write. The
// process is meant to exit next: nothing undoes Abandon.
func Abandon() {
	inFlight.mu.Lock()
	defer inFlight.mu.Unlock()
	inFlight.abandoned = true
	drop(slices.Clone(inFlight.writes), 0)
}

// Probe proves that a file can be created in the folder dir by creating an
// empty hidden one there (.residual-write-test-N) and removing it, while
// Abandon waits, so that a process exiting meanwhile leaves no such file
// behind. Its error is the cause alone (matching fs.ErrPermission, say),
// without the file's name, which would only puzzle a reader; after
// Abandon it fails without creating anything.
func Probe(dir string) error {
	inFlight.mu.Lock()
	defer inFlight.mu.Unlock()
	if inFlight.abandoned {
		return errAbandoned
	}
	f, err := createTemp(dir, ".residual-write-test-", "", 0o600)
	if err != nil {
		return bareCause(err)
	}
	f.Close()
	return bareCause(os.Remove(f.Name()))
}

// drop removes the temporary files of ss[from:] (those before were
// renamed) and the folders every write of ss created, the last first as
// they nest (os.Remove leaves a folder that has a file since), and takes
// ss out of inFlight. The caller holds inFlight.mu.
func drop(ss []*staged, from int) {
	for _, s := range ss[from:] {
		os.Remove(s.tmp)
	}
	for i := len(ss) - 1; i >= 0; i-- {
		removeMade(ss[i].dir, ss[i].made)
	}
	unregister(ss)
}

// unregister takes ss out of inFlight. The caller holds inFlight.mu.
func unregister(ss []*staged) {
	inFlight.writes = slices.DeleteFunc(inFlight.writes, func(w *staged) bool { return slices.Contains(ss, w) })
}

// commit renames the temporary files ss[i] to paths[i], all under
// inFlight.mu so that Abandon comes before the first or after the last. A
// rename that fails leaves the temporary files not yet renamed removed.
func commit(paths []string, ss []*staged) error {
	inFlight.mu.Lock()
	defer inFlight.mu.Unlock()
	if inFlight.abandoned { // which removed ss's files
		drop(ss, 0)
		return fmt.Errorf("writing %s: %w", paths[0], errAbandoned)
	}
	for i, path := range paths {
		if err := os.Rename(ss[i].tmp, path); err != nil {
			drop(ss, i)
			return writeError(path, err)
		}
	}
	unregister(ss)
	return nil
}

// stage writes b to a synced temporary file next to path (see create);
// on failure it leaves nothing behind.
func stage(path string, b []byte) (*staged, error) {
	// A new file is created 0666 less the umask, as os.WriteFile would
	// create it; the temporary file for an existing one 0600 (no one else
	// can open it while it is written) and then given the existing file's
	// permission bits.
	exists, keep := false, fs.FileMode(0)
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return nil, fmt.Errorf("writing %s: it is a folder, not a file", path)
		}
		exists, keep = true, st.Mode().Perm()
	}
	perm := fs.FileMode(0o666)
	if exists {
		perm = 0o600
	}
	s, f, err := create(path, perm)
	if err != nil {
		return nil, err
	}
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
		inFlight.mu.Lock()
		drop([]*staged{s}, 0)
		inFlight.mu.Unlock()
		return nil, writeError(path, err)
	}
	return s, nil
}

// create creates the missing folders of path and, in path's folder, a new
// temporary file of mode perm less the umask, registered in inFlight: both
// under inFlight.mu, so that Abandon finds every file and folder a write
// has made. On failure it leaves nothing behind.
func create(path string, perm fs.FileMode) (*staged, *os.File, error) {
	inFlight.mu.Lock()
	defer inFlight.mu.Unlock()
	if inFlight.abandoned {
		return nil, nil, fmt.Errorf("writing %s: %w", path, errAbandoned)
	}
	s := &staged{dir: filepath.Dir(path)}
	for d := s.dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		s.made = d
		if filepath.Dir(d) == d {
			break
		}
	}
	if s.made != "" {
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			removeMade(s.dir, s.made)
			return nil, nil, fmt.Errorf("writing %s: creating its folder: %w", path, err)
		}
	}
	f, err := createTemp(s.dir, "."+filepath.Base(path)+".", ".tmp", perm)
	if err != nil {
		removeMade(s.dir, s.made)
		return nil, nil, writeError(path, err)
	}
	s.tmp = f.Name()
	inFlight.writes = append(inFlight.writes, s)
	return s, f, nil
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
	return fmt.Errorf("writing %s: %w", path, bareCause(err))
}

// bareCause is err without the file name of an *fs.PathError or
// *os.LinkError, or nil for nil.
func bareCause(err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	}
	return err
}
