//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd || windows

package train

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// folderLocks is whether lockFolder takes a lock on this platform.
const folderLocks = true

// What lockExclusive reports besides the system's errors.
var (
	errLocked  = errors.New("held by another")              // another descriptor holds the lock
	errNoLocks = errors.New("no locks on this file system") // the run goes on without one
)

// lockFolder takes the run folder dir for this run: an exclusive lock on
// dir/.residual.lock (lockExclusive), which the system drops when the
// file is closed or the process ends, however it ends. The lock belongs to
// the open file, so another run that holds it, in this process or
// another, makes it an error. A lock file another user made and this one
// may only read is locked through a read-only descriptor; where the file
// system takes no locks the run goes on without one.
func lockFolder(dir string) (io.Closer, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("train: locking the run folder: %w", err)
	}
	if err := lockExclusive(f); err != nil {
		f.Close()
		switch {
		case errors.Is(err, errNoLocks):
			return io.NopCloser(nil), nil
		case errors.Is(err, errLocked):
			return nil, fmt.Errorf("train: %s is the run folder of another run in progress (it holds %s); give this one another --out (Config.Out), or wait", dir, path)
		}
		return nil, fmt.Errorf("train: locking the run folder: %w", err)
	}
	return folderLock{f}, nil
}

// folderLock is a held lock file: Close unlocks it, then closes it.
type folderLock struct{ f *os.File }

func (l folderLock) Close() error { return errors.Join(unlock(l.f), l.f.Close()) }
