//go:build unix

package torch

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/residual-nn/residual/internal/fifotest"
)

// TestLoadStateDictFIFO: a .pth that is a FIFO no process writes is
// refused at once as not a regular file (os.Open blocked for ever, beyond
// a signal's reach).
func TestLoadStateDictFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "x.pth")
	fifotest.Make(t, fifo)
	done := make(chan error, 1)
	go func() { _, err := LoadStateDict(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("LoadStateDict of a FIFO: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("LoadStateDict of a FIFO nobody writes blocked")
	}
}
