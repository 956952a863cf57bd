package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fine-tuning flags reach the trainer: a second run starts from the
// first one's checkpoint with the backbone frozen, a faster head, an EMA,
// label smoothing, clipping, a warm-up and patience, and reports what it
// loaded and froze, the top-5 accuracy, and writes the EMA checkpoint.
func TestFineTuneFlags(t *testing.T) {
	dir := t.TempDir()
	base := []string{"train", "--model", "resnet8", "--limit", "256", "--batch", "64"}
	var out, errb bytes.Buffer
	first := filepath.Join(dir, "first")
	if code := run(context.Background(), append(base, "--epochs", "1", "--out", first), &out, &errb); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errb.String())
	}
	out.Reset()
	second := filepath.Join(dir, "second")
	args := append(base, "--epochs", "2", "--out", second, "--init", filepath.Join(first, "last.safetensors"), "--freeze", "backbone",
		"--head-lr-mult", "10", "--ema", "0.99", "--label-smoothing", "0.1", "--clip-grad", "5", "--patience", "1", "--warmup-epochs", "0.5")
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("fine-tune: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"init: loaded", "froze", "top-5", "EMA val"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("fine-tune output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(second, "ema.safetensors")); err != nil {
		t.Error(err)
	}
}
