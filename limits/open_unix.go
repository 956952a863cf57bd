//go:build unix

package limits

import (
	"os"
	"syscall"
)

// openNoWait opens path for reading without waiting for a FIFO's writer
// (O_NONBLOCK), then gives a FIFO back its blocking reads.
func openNoWait(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err == nil && st.Mode()&os.ModeNamedPipe != 0 {
		// Reads of a FIFO opened O_NONBLOCK fail with EAGAIN until its
		// writer writes where Go's poller does not watch it (darwin).
		if rc, err := f.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { syscall.SetNonblock(int(fd), false) })
		}
	}
	return f, nil
}
