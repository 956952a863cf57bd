//go:build unix

package safetensors

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/residual-nn/residual/tensor"
)

// TestReadFIFO: a FIFO that no process writes reads as empty, an error at
// once (the open blocked for ever); one that a process writes, as a shell's
// process substitution gives, reads the file it carries.
func TestReadFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "ck.safetensors")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := Read(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "too short") {
			t.Errorf("Read of a FIFO nobody writes: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Read of a FIFO nobody writes blocked")
	}
	b, err := Encode(map[string]*tensor.Tensor{"w": tensor.Full(2, 3)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The writer writes the file to each reader that opens the FIFO: a
	// Read whose open came before the writer's reads an empty FIFO and is
	// tried again.
	stop := make(chan struct{})
	go func() {
		for {
			w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until a reader opens it
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
	var f *File
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if f, err = Read(fifo); err == nil {
			break
		}
	}
	// Stop the writer, releasing it if it waits for a reader.
	close(stop)
	if r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		time.Sleep(10 * time.Millisecond)
		r.Close()
	}
	if err != nil || f.Tensors["w"] == nil || f.Tensors["w"].Data[2] != 2 {
		t.Errorf("Read of a written FIFO: %v, %v", f, err)
	}
}
