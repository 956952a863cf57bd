package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// TestEvalRefusesSetOfOtherTask: eval of a classifier on a segmentation
// set (masks), or of a U-Net on a set labelled by image, is refused before
// the set is read, naming the model's task, the set's and the kind of set
// that fits (exit status 2): where the image sizes agree (the classifier
// at 64x64) the classifier was run on the canvases, and where they differ
// (the U-Net at 32x32) the error blamed the size alone.
func TestEvalRefusesSetOfOtherTask(t *testing.T) {
	dir := t.TempDir()
	classes := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	cls := filepath.Join(dir, "cls.safetensors")
	writeCheckpoint(t, cls, "resnet8", checkpoint.Preprocess{Height: 64, Width: 64, Channels: 1}, classes)
	seg := filepath.Join(dir, "seg.safetensors")
	writeCheckpoint(t, seg, "unet-padded", checkpoint.Preprocess{Height: 32, Width: 32, Channels: 1}, append([]string{"background"}, classes...))
	for _, tc := range []struct {
		ck, data string
		want     []string
	}{
		{cls, "mnist-canvas:64", []string{"--data mnist-canvas:64", "resnet8, a classifier", "segmentation masks", "labelled by image"}},
		{seg, "mnist", []string{"--data mnist", "unet-padded, a segmentation model", "labelled by image", "mnist-canvas, fashion-canvas, segfolder:DIR"}},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"eval", tc.ck, "--data", tc.data}, &out, &errb)
		if code != 2 {
			t.Errorf("eval %s --data %s: exit %d, want 2; stdout %q, stderr %q", filepath.Base(tc.ck), tc.data, code, out.String(), errb.String())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("eval %s --data %s: stderr %q lacks %q", filepath.Base(tc.ck), tc.data, errb.String(), w)
			}
		}
	}
}

// TestEvalIoUOfAbsentClass: eval of a U-Net prints a class that is in no
// mask and predicted nowhere as n/a, saying why, as it prints a
// classifier's class without images; it printed IoU's 0/0 as NaN.
func TestEvalIoUOfAbsentClass(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	for _, split := range []string{"train", "test"} {
		for _, sub := range []string{"images", "masks"} {
			if err := os.MkdirAll(filepath.Join(set, split, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 2 {
			img, mask := image.NewGray(image.Rect(0, 0, 32, 32)), image.NewGray(image.Rect(0, 0, 32, 32))
			for p := range img.Pix {
				if (p+i)%5 == 0 {
					img.Pix[p], mask.Pix[p] = 255, 1
				}
			}
			for path, m := range map[string]*image.Gray{filepath.Join(set, split, "images", fmt.Sprint(i)+".png"): img, filepath.Join(set, split, "masks", fmt.Sprint(i)+".png"): mask} {
				var b bytes.Buffer
				if err := png.Encode(&b, m); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	classes := []string{"background", "ink", "never"}
	if err := os.WriteFile(filepath.Join(set, "train", "classes.txt"), []byte(strings.Join(classes, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A small padded U-Net that never predicts the class no mask holds.
	cfg, err := models.Preset("unet-padded")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Arch.(*models.UNet).Base = 4
	cfg.SetInChannels(1)
	cfg.SetClasses(len(classes))
	net, err := models.Build(cfg, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range nn.StateDict(net) {
		if e.Name == "head.bias" {
			e.Tensor.Data[2], found = -1e4, true
		}
	}
	if !found {
		t.Fatal("the U-Net has no head.bias")
	}
	ck := filepath.Join(dir, "seg.safetensors")
	if err := checkpoint.Write(ck, net, checkpoint.Meta{Model: cfg, Classes: classes, Preprocess: checkpoint.Preprocess{Height: 32, Width: 32, Channels: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"eval", ck, "--data", "segfolder:" + set}, &out, &errb); code != 0 {
		t.Fatalf("eval: exit %d, stderr %q", code, errb.String())
	}
	if !strings.Contains(out.String(), "  never        n/a (in no mask, predicted nowhere)\n") || strings.Contains(out.String(), "NaN") {
		t.Errorf("eval's IoU lines:\n%s", out.String())
	}
}
