package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/residual-nn/residual/internal/fixture"

	"github.com/residual-nn/residual/checkpoint"
)

// TestQuantizeCommand quantizes the small MNIST checkpoint on three digit
// images and predicts with the int8 checkpoint: the command reports what
// it did, and prediction runs on the int8 file. Bad flags are usage
// errors (status 2).
func TestQuantizeCommand(t *testing.T) {
	const dir = "../../testdata/checkpoint/"
	out := filepath.Join(t.TempDir(), "tiny8.safetensors")
	imgs := dir + "digit0.png," + dir + "digit1.png," + dir + "digit2.png"
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"quantize", dir + "mnist-tiny.safetensors", "--calibrate-images", imgs, "--method", "minmax", "--out", out}, &o, &e); code != 0 {
		t.Fatalf("quantize: status %d: %s", code, e.String())
	}
	if !strings.Contains(o.String(), "minmax calibration on 1 batch of 3 images") {
		t.Errorf("quantize said %q", o.String())
	}
	o.Reset()
	if code := run(context.Background(), []string{"predict", "--weights", out, "--top", "2", dir + "digit1.png"}, &o, &e); code != 0 {
		t.Fatalf("predict int8: status %d: %s", code, e.String())
	}
	if strings.Count(o.String(), "(class ") != 2 {
		t.Errorf("predict printed %q", o.String())
	}
	o.Reset()
	onnxOut := filepath.Join(t.TempDir(), "tiny8.onnx")
	if code := run(context.Background(), []string{"export", "onnx", "--weights", out, "--out", onnxOut}, &o, &e); code != 0 {
		t.Fatalf("export onnx int8: status %d: %s", code, e.String())
	}
	if !strings.Contains(o.String(), "as QDQ ONNX") {
		t.Errorf("export said %q", o.String())
	}
	// --input at the size it was quantized at is that size; another is
	// refused, naming it (both were refused).
	if code := run(context.Background(), []string{"export", "onnx", "--weights", out, "--input", "28x28", "--out", onnxOut}, &o, &e); code != 0 {
		t.Errorf("export onnx int8 --input 28x28 (its own size): status %d: %s", code, e.String())
	}
	e.Reset()
	if code := run(context.Background(), []string{"export", "onnx", "--weights", out, "--input", "32x32", "--out", onnxOut}, &o, &e); code != 2 || !strings.Contains(e.String(), "--input 32x32: an int8 checkpoint's graph is fixed at the size it was quantized at (28x28)") {
		t.Errorf("export onnx int8 --input 32x32: status %d: %s", code, e.String())
	}
	// The QDQ model imports back into an int8 checkpoint that predicts
	// exactly as the one exported.
	back := filepath.Join(t.TempDir(), "back8.safetensors")
	o.Reset()
	if code := run(context.Background(), []string{"import", "onnx", onnxOut, "--out", back}, &o, &e); code != 0 {
		t.Fatalf("import onnx: status %d: %s", code, e.String())
	}
	var p1, p2 bytes.Buffer
	for i, w := range []string{out, back} {
		if code := run(context.Background(), []string{"predict", "--weights", w, "--top", "3", dir + "digit2.png"}, []*bytes.Buffer{&p1, &p2}[i], &e); code != 0 {
			t.Fatalf("predict %s: status %d: %s", w, code, e.String())
		}
	}
	if p1.String() != p2.String() {
		t.Errorf("predictions differ after export and import:\n%s\n%s", p1.String(), p2.String())
	}
	// and names the data set of the one exported (eval and quantize
	// default to it).
	c1, err1 := checkpoint.Load(out)
	c2, err2 := checkpoint.Load(back)
	if err1 != nil || err2 != nil || c1.DataSpec() == "" || c2.DataSpec() != c1.DataSpec() {
		t.Errorf("data set %q exported, %q imported (%v, %v)", c1.DataSpec(), c2.DataSpec(), err1, err2)
	}
	// An int8 checkpoint computes in int8: a float precision is refused,
	// and so are exports that would write its unused float weights.
	for _, bad := range [][]string{
		{"predict", "--weights", out, "--precision", "bf16", dir + "digit1.png"},
		{"eval", "--weights", out, "--precision", "bf16"},
		{"export", "torch", "--weights", out, "--out", filepath.Join(t.TempDir(), "w.safetensors")},
		{"export", "onnx", "--weights", out, "--input", "32x32", "--out", onnxOut},
	} {
		e.Reset()
		if code := run(context.Background(), bad, &o, &e); code != 2 || !strings.Contains(e.String(), "int8") {
			t.Errorf("%v: status %d, want 2 with a message naming int8 (%s)", bad, code, e.String())
		}
		// The precision refused is named once, as --precision's other
		// errors name it (predict said "--precision bf16: infer: … precision
		// bf16 applies to float models only").
		if slices.Contains(bad, "--precision") && strings.Count(e.String(), "bf16") != 1 {
			t.Errorf("%v: %q names bf16 %d times, want once", bad, e.String(), strings.Count(e.String(), "bf16"))
		}
	}
	// serve refuses to load it in bf16: the command ends non-zero, naming int8.
	e.Reset()
	if code := run(context.Background(), []string{"serve", "--model", "m=" + out, "--precision", "bf16", "--addr", "127.0.0.1:0", "--grpc-addr", ""}, &o, &e); code == 0 || !strings.Contains(e.String(), "int8") {
		t.Errorf("serve --precision bf16 of an int8 checkpoint: status %d, want non-zero with a message naming int8 (%s)", code, e.String())
	}
	for _, bad := range [][]string{
		{"quantize", dir + "mnist-tiny.safetensors", "--method", "median", "--out", out},
		{"quantize", dir + "mnist-tiny.safetensors", "--percentile", "20", "--out", out},
		{"quantize", dir + "mnist-tiny.safetensors"},
	} {
		if code := run(context.Background(), bad, &o, &e); code != 2 {
			t.Errorf("%v: status %d, want 2 (%s)", bad, code, e.String())
		}
	}
}

// A calibration folder of classes too small to hold images out for a
// test split is refused pointing to folder,all:, which calibrates on
// every image (the message only said to add images or a test/ folder).
func TestQuantizeSmallFolder(t *testing.T) {
	src := t.TempDir()
	colourFolder(t, src)
	one := filepath.Join(t.TempDir(), "one")
	if err := os.MkdirAll(filepath.Join(one, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(src, "train", "a", "*.png"))
	if err != nil || len(files) == 0 {
		t.Fatalf("colourFolder wrote %v (%v)", files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(one, "a", "x.png"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "q.safetensors")
	code, _, errs := runCLI("quantize", tinyCkpt, "--calibrate", "folder:"+one, "--out", out)
	if code == 0 || !strings.Contains(errs, "give --calibrate folder,all:DIR") {
		t.Errorf("folder of one image: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI("quantize", tinyCkpt, "--calibrate", "folder,all:"+one, "--out", out); code != 0 {
		t.Errorf("folder,all: of one image: exit %d, %q", code, errs)
	}
	// Its one file's pixel data cut: skip-bad leaves it out, and nothing
	// is left to calibrate on (it said only "no calibration batches").
	if err := os.WriteFile(filepath.Join(one, "a", "x.png"), fixture.CutPNG(), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI("quantize", tinyCkpt, "--calibrate", "folder,all,skip-bad:"+one, "--out", out+"2"); code == 0 || !strings.Contains(errs, "no file could be read (1 left out as unreadable)") {
		t.Errorf("folder of one unreadable image: exit %d, %q", code, errs)
	}
}
