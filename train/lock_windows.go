//go:build windows

package train

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lockExclusive takes LockFileEx's exclusive lock on f's first byte
// without waiting: errLocked if another handle holds it (the lock belongs
// to the handle, as flock's to the descriptor), errNoLocks where the file
// system takes none (ERROR_NOT_SUPPORTED, ERROR_INVALID_FUNCTION).
func lockExclusive(f *os.File) error {
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, new(windows.Overlapped))
	switch {
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		return errLocked
	case errors.Is(err, windows.ERROR_NOT_SUPPORTED) || errors.Is(err, windows.ERROR_INVALID_FUNCTION):
		return errNoLocks
	}
	return err
}

// unlock releases lockExclusive's lock before the handle closes: Windows
// lets go of a closed handle's locks when its resources allow, so a run
// prepared in the folder right after could be refused.
func unlock(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, new(windows.Overlapped))
}
