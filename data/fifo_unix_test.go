//go:build unix

package data

import (
	"image/color"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSpecialFilesAreNotImages: a FIFO named like an image, in a folder or
// given alone, and a device are refused at once, named (the open of a
// FIFO no process writes blocked for ever, beyond a signal's reach), and
// SkipBadImages skips the FIFO.
func TestSpecialFilesAreNotImages(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, filepath.Join(dir, "a", "ok.png"), flat("gray", 4, 4, color.NRGBA{}))
	fifo := filepath.Join(dir, "a", "x.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range []struct {
			path string
			load func(string) error
			says string
		}{
			{fifo, func(p string) error { _, err := LoadImage(p); return err }, "named pipe"},
			{fifo, CheckImageFile, "named pipe"},
			{"/dev/zero", func(p string) error { _, err := LoadImage(p); return err }, "a device"},
			{dir, CheckImageFile, "a folder"},
		} {
			if err := c.load(c.path); err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("%s: %v; want an error naming it as %s", c.path, err, c.says)
			}
		}
		if _, err := FolderWith(dir, &ImageOptions{}, nil); err == nil || !strings.Contains(err.Error(), "x.png") {
			t.Errorf("a folder holding a FIFO: %v", err)
		}
		var log strings.Builder
		if d, err := FolderWith(dir, &ImageOptions{SkipBadImages: true, Log: &log}, nil); err != nil || d.Len() != 1 || !strings.Contains(log.String(), "x.png") {
			t.Errorf("the FIFO skipped: %v, %v images, log %q", err, d, log.String())
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("reading a FIFO named like an image blocked")
	}
}
