package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
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
