//go:build unix

package data

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/residual-nn/residual/data/imagefile"
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
			{fifo, func(p string) error { _, err := imagefile.Load(p); return err }, "not a JPEG, PNG"},
			{fifo, imagefile.CheckFile, "not a JPEG, PNG"},
			{"/dev/zero", func(p string) error { _, err := imagefile.Load(p); return err }, "a device"},
			{dir, imagefile.CheckFile, "a folder"},
		} {
			if err := c.load(c.path); err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("%s: %v; want an error naming it as %s", c.path, err, c.says)
			}
		}
		if _, err := FolderWith(context.Background(), dir, &ImageOptions{}, nil); err == nil || !strings.Contains(err.Error(), "x.png") {
			t.Errorf("a folder holding a FIFO: %v", err)
		}
		var log strings.Builder
		if d, err := FolderWith(context.Background(), dir, &ImageOptions{SkipBadImages: true, Log: &log}, nil); err != nil || d.Len() != 1 || !strings.Contains(log.String(), "x.png") {
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
	err := fifotest.ReadWritten(fifo, buf.Bytes(), func() (err error) { img, err = imagefile.Load(fifo); return err })
	if err != nil || img.Bounds().Dx() != 4 {
		t.Errorf("a FIFO a process writes: %v, %v", img, err)
	}
}

// TestFIFOsInDataFolders: an MNIST-layout folder whose images file is a
// FIFO that no process writes, and a segmentation folder whose
// classes.txt is one, give an error at once (both blocked for ever); a
// classes.txt that is a device (a link to /dev/zero ran out of memory) or
// a folder is refused, not read nor taken for no classes.txt.
func TestFIFOsInDataFolders(t *testing.T) {
	idx := t.TempDir()
	fifotest.Make(t, filepath.Join(idx, "train-images-idx3-ubyte.gz"))
	seg := t.TempDir()
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	writeImagePNG(t, filepath.Join(seg, "images", "a.png"), img)
	writeImagePNG(t, filepath.Join(seg, "masks", "a.png"), img)
	classes := filepath.Join(seg, "classes.txt")
	fifotest.Make(t, classes)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, _, err := IDXDir(idx, nil); err == nil {
			t.Error("IDXDir with a FIFO for its images: no error")
		}
		if _, err := SegFolder(context.Background(), seg, 1, Ignore{}); err == nil || !strings.Contains(err.Error(), "classes.txt is not a regular file") {
			t.Errorf("SegFolder with a FIFO for classes.txt: %v", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a FIFO in a data folder blocked")
	}
	for _, target := range []string{"/dev/zero", t.TempDir()} {
		os.Remove(classes)
		if err := os.Symlink(target, classes); err != nil {
			t.Fatal(err)
		}
		if _, err := SegFolder(context.Background(), seg, 1, Ignore{}); err == nil || !strings.Contains(err.Error(), "classes.txt is not a regular file") {
			t.Errorf("SegFolder with classes.txt → %s: %v", target, err)
		}
	}
}
