//go:build windows

package train

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"
)

// folderLocks is whether lockFolder takes a lock on this platform.
const folderLocks = true

// lockFolder takes the run folder dir for this run: an exclusive
// LockFileEx on the first byte of dir/.residual.lock, which Windows drops
// when the handle is closed or the process ends, however it ends. The
// lock belongs to the handle, so another run that holds it, in this
// process or another, makes it an error, as flock(2) does on Unix
// (lock_unix.go). A lock file another user made and this one may only
// read is locked through a read-only handle; where the file system takes
// no locks (ERROR_NOT_SUPPORTED, ERROR_INVALID_FUNCTION) the run goes on
// without one.
func lockFolder(dir string) (io.Closer, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("train: locking the run folder: %w", err)
	}
	err = windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, new(windows.Overlapped))
	if err != nil {
		f.Close()
		if errors.Is(err, windows.ERROR_NOT_SUPPORTED) || errors.Is(err, windows.ERROR_INVALID_FUNCTION) {
			return io.NopCloser(nil), nil // a file system without locks
		}
		if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
			return nil, fmt.Errorf("train: %s is the run folder of another run in progress (it holds %s); give this one another --out (Config.Out), or wait", dir, path)
		}
		return nil, fmt.Errorf("train: locking the run folder: %w", err)
	}
	return f, nil
}
