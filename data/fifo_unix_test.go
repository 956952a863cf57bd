//go:build unix

package data

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/residual-nn/residual/internal/fifotest"
)

// TestSpecialFilesAreNotImages: a FIFO named like an image that no
// process writes, in a folder or given alone, reads as empty at once, an
// error naming it (the open blocked for ever, beyond a signal's reach),
// and SkipBadImages skips it; a device and a folder are refused as not
// files; a FIFO that a process writes (a shell's <(…)) reads its image.
func TestSpecialFilesAreNotImages(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, filepath.Join(dir, "a", "ok.png"), flat("gray", 4, 4, color.NRGBA{}))
	fifo := filepath.Join(dir, "a", "x.png")
	fifotest.Make(t, fifo)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range []struct {
			path string
			load func(string) error
			says string
		}{
			{fifo, func(p string) error { _, err := LoadImage(p); return err }, "not a JPEG, PNG"},
			{fifo, CheckImageFile, "not a JPEG, PNG"},
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
	var buf bytes.Buffer
	if err := png.Encode(&buf, flat("gray", 4, 4, color.NRGBA{R: 9, G: 9, B: 9, A: 255})); err != nil {
		t.Fatal(err)
	}
	var img image.Image
	err := fifotest.ReadWritten(fifo, buf.Bytes(), func() (err error) { img, err = LoadImage(fifo); return err })
	if err != nil || img.Bounds().Dx() != 4 {
		t.Errorf("a FIFO a process writes: %v, %v", img, err)
	}
}
