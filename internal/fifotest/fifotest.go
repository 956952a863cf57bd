//go:build unix

// Package fifotest makes named pipes (FIFOs) for the tests of readers
// that must not wait on one for ever, and feeds them as a shell's <(…)
// would.
package fifotest

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// Make creates a FIFO at path, or skips t, saying why, where the system
// cannot.
func Make(t testing.TB, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
}

// ReadWritten runs read until it succeeds, for up to 10 s, while a writer
// writes b to every reader that opens the FIFO at path (a read whose open
// came before the writer's finds the FIFO empty, and is tried again);
// then it stops the writer and returns read's last error.
func ReadWritten(path string, b []byte, read func() error) error {
	stop := make(chan struct{})
	go func() {
		for {
			w, err := os.OpenFile(path, os.O_WRONLY, 0) // waits for a reader
			if err != nil {
				return
			}
			w.Write(b)
			w.Close()
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err = read(); err == nil {
			break
		}
	}
	close(stop)
	// Release the writer if it waits for a reader.
	if r, rerr := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); rerr == nil {
		time.Sleep(10 * time.Millisecond)
		r.Close()
	}
	return err
}
