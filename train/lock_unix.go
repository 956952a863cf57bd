//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package train

import (
	"errors"
	"os"
	"syscall"
)

// lockExclusive takes flock(2)'s exclusive lock on f without waiting (on
// NFS, one only other processes see): errLocked if another descriptor
// holds it, errNoLocks where the file system takes none (ENOLCK,
// ENOTSUP, ENOSYS).
func lockExclusive(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return errLocked
		case errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.ENOSYS):
			return errNoLocks
		}
		return err
	}
}

// unlock releases lockExclusive's lock; closing the file would too, at
// once, as it does on Unix.
func unlock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
