//go:build unix

package limits

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/residual-nn/residual/internal/fifotest"
)

// TestReadFileRefusesAFIFO: a FIFO that no process writes is refused at
// once as not a regular file (the open itself blocked for ever: CIFAR
// batches, Keras and ONNX files are read this way).
func TestReadFileRefusesAFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "data_batch_1.bin")
	fifotest.Make(t, fifo)
	done := make(chan error, 1)
	go func() { _, err := ReadFile(fifo, 10); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ReadFile of a FIFO: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ReadFile of a FIFO blocked")
	}
}
