//go:build unix

package safetensors

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/residual-nn/residual/internal/fifotest"
	"github.com/residual-nn/residual/tensor"
)

// TestReadFIFO: a FIFO that no process writes reads as empty, an error at
// once (the open blocked for ever); one that a process writes, as a shell's
// process substitution gives, reads the file it carries.
func TestReadFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "ck.safetensors")
	fifotest.Make(t, fifo)
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
	var f *File
	err = fifotest.ReadWritten(fifo, b, func() (err error) { f, err = Read(fifo); return err })
	if err != nil || f.Tensors["w"] == nil || f.Tensors["w"].Data[2] != 2 {
		t.Errorf("Read of a written FIFO: %v, %v", f, err)
	}
}
