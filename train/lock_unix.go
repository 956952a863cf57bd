//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package train

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// folderLocks is whether lockFolder takes a lock on this platform.
const folderLocks = true

// lockFolder takes the run folder dir for this run: an exclusive flock(2)
// on dir/.residual.lock, which the kernel drops when the file is closed or
// the process ends, however it ends. Another run that holds it (in this
// process or another; on NFS, in another process) makes it an error. A
// lock file another user made and this one may only read is locked
// through a read-only descriptor; where the file system takes no locks
// (ENOLCK, ENOTSUP, ENOSYS) the run goes on without one.
func lockFolder(dir string) (io.Closer, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("train: locking the run folder: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.ENOSYS) {
			return io.NopCloser(nil), nil // a file system without locks
		}
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("train: %s is the run folder of another run in progress (it holds %s); give this one another --out (Config.Out), or wait", dir, path)
		}
		return nil, fmt.Errorf("train: locking the run folder: %w", err)
	}
	return f, nil
}
