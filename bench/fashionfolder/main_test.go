package main

import (
	"context"
	"image"
	_ "image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/residual-nn/residual/data"
)

// The folder holds -per images of each class and the first -test images,
// in class folders, as RGB files whose sides lie within [-min, -max], and
// data's folder reader accepts it.
func TestFolder(t *testing.T) {
	if _, err := os.Stat(data.DefaultFashionDir); err != nil {
		t.Skipf("Fashion-MNIST is not installed (%v): apt-get install dataset-fashion-mnist", err)
	}
	out := filepath.Join(t.TempDir(), "f")
	if err := run(out, "", 2, 5, 7, 40, 60); err != nil {
		t.Fatal(err)
	}
	if err := run(out, "", 2, 5, 7, 40, 60); err == nil {
		t.Error("a second run into the same folder was not refused")
	}
	files, _ := filepath.Glob(filepath.Join(out, "train", "*", "*"))
	tests, _ := filepath.Glob(filepath.Join(out, "test", "*", "*"))
	if len(files) != 20 || len(tests) != 5 {
		t.Fatalf("%d training files (want 2 × 10 classes) and %d test files (want 5)", len(files), len(tests))
	}
	for _, name := range append(files, tests...) {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := image.DecodeConfig(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Width < 40 || cfg.Width > 60 || cfg.Height < 40 || cfg.Height > 60 {
			t.Errorf("%s is %dx%d, outside [40, 60]", name, cfg.Width, cfg.Height)
		}
	}
	train, test, err := data.Open(context.Background(), "folder:"+out, 3)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 20 || test.Len() != 5 || len(train.Classes) != 10 || train.C != 3 {
		t.Errorf("folder:DIR read %d + %d images, %d classes, %d channels", train.Len(), test.Len(), len(train.Classes), train.C)
	}
}
