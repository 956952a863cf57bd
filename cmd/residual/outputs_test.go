package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/residual-nn/residual/data"
)

// The small checkpoints of testdata: a classifier and a U-Net (3 input
// channels, 3 classes), and an image each takes.
const (
	tinyCkpt  = "../../testdata/checkpoint/mnist-tiny.safetensors"
	unetCkpt  = "../../testdata/checkpoint/unet-v1.safetensors"
	colorPNG  = "../../testdata/checkpoint/color.png"
	digit0PNG = "../../testdata/checkpoint/digit0.png"
)

// copyFile copies src to dst (mode 0644).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.WriteFile(dst, readFile(t, src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// digitFolder returns a folder of 28×28 grey images in ten classes, two
// each, which the MNIST checkpoint evaluates in a moment.
func digitFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for c := range 10 {
		class := filepath.Join(dir, fmt.Sprint(c))
		if err := os.Mkdir(class, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			writeGray(t, filepath.Join(class, fmt.Sprintf("%d.png", i)), 28, 28)
		}
	}
	return dir
}

// runCLI runs a command line in-process and returns its exit status,
// standard output and standard error.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestOutputsCheckedFirst: eval and segment refuse an output they could
// not write before any work (eval's default confusion image, next to the
// checkpoint, included), segment replaces neither of its files unless it
// can write both, and a failure names the flag and the file, never a
// temporary file.
func TestOutputsCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck.safetensors")
	copyFile(t, tinyCkpt, ck)
	digits := digitFolder(t)
	// The default confusion image's path is a folder: refused before the
	// evaluation (which would print the accuracy first), naming it as the
	// default.
	confusion := filepath.Join(dir, "confusion.png")
	if err := os.Mkdir(confusion, 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("eval", "--weights", ck, "--data", "folder:"+digits)
	if code != 2 || out != "" || !strings.Contains(errs, "--confusion "+confusion) || !strings.Contains(errs, "is a folder") || !strings.Contains(errs, "the default") {
		t.Errorf("eval, default confusion image a folder: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// segment: an overlay that cannot be written stops the command before
	// it segments, and the existing mask stays as it was.
	keep := filepath.Join(dir, "keep.png")
	copyFile(t, digit0PNG, keep)
	code, out, errs = runCLI("segment", "--weights", unetCkpt, "--out", keep, "--overlay", filepath.Join(ck, "o.png"), colorPNG)
	if code != 1 || out != "" || !strings.Contains(errs, "--overlay "+filepath.Join(ck, "o.png")) || strings.Contains(errs, ".tmp") {
		t.Errorf("segment, overlay under a file: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if b, want := readFile(t, keep), readFile(t, digit0PNG); !bytes.Equal(b, want) {
		t.Errorf("a failed segment replaced %s", keep)
	}

	// Outputs in folders that do not exist yet: the commands create them.
	mask := filepath.Join(dir, "seg", "a", "m.png")
	for _, args := range [][]string{
		{"segment", "--weights", unetCkpt, "--out", mask, colorPNG},
		{"export", "torch", "--weights", ck, "--out", filepath.Join(dir, "torch", "a", "x.safetensors")},
		{"export", "onnx", "--weights", ck, "--out", filepath.Join(dir, "onnx", "a", "x.onnx")},
		{"quantize", ck, "--calibrate-images", digit0PNG, "--out", filepath.Join(dir, "q", "a", "q.safetensors")},
		{"eval", "--weights", ck, "--data", "folder:" + digits, "--confusion", filepath.Join(dir, "eval", "a", "c.png")},
	} {
		if code, _, errs := runCLI(args...); code != 0 {
			t.Errorf("%q: exit %d: %s", args, code, errs)
		}
	}
	for _, p := range []string{mask, filepath.Join(dir, "seg", "a", "m-overlay.png"), filepath.Join(dir, "torch", "a", "x.safetensors"),
		filepath.Join(dir, "onnx", "a", "x.onnx"), filepath.Join(dir, "q", "a", "q.safetensors"), filepath.Join(dir, "eval", "a", "c.png")} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestOutputsReadOnly: as a user who cannot write a folder, eval and
// segment refuse an output there before any work, naming the flag and the
// file (root writes anywhere: under root the test runs again as nobody).
func TestOutputsReadOnly(t *testing.T) {
	if os.Geteuid() == 0 {
		rerunAsNobody(t, t.Name())
		return
	}
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck.safetensors")
	copyFile(t, tinyCkpt, ck)
	digits := digitFolder(t)
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	roCk := filepath.Join(ro, "ck.safetensors")
	copyFile(t, tinyCkpt, roCk)
	if err := os.Chmod(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"segment", "--weights", unetCkpt, "--out", filepath.Join(ro, "m.png"), colorPNG}, []string{"--out " + filepath.Join(ro, "m.png"), "permission denied"}},
		{[]string{"segment", "--weights", unetCkpt, "--out", filepath.Join(dir, "m.png"), "--overlay", filepath.Join(ro, "o.png"), colorPNG}, []string{"--overlay " + filepath.Join(ro, "o.png"), "permission denied"}},
		{[]string{"eval", "--weights", ck, "--data", "folder:" + digits, "--confusion", filepath.Join(ro, "c.png")}, []string{"--confusion " + filepath.Join(ro, "c.png"), "permission denied"}},
		{[]string{"eval", "--weights", roCk, "--data", "folder:" + digits}, []string{"--confusion " + filepath.Join(ro, "confusion.png"), "permission denied", "the default"}},
	} {
		code, out, errs := runCLI(tc.args...)
		if code != 1 || out != "" || strings.Contains(errs, ".tmp") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1, nothing printed, no temporary file named", tc.args, code, out, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%q: stderr %q lacks %q", tc.args, errs, w)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "m.png")); !os.IsNotExist(err) {
		t.Errorf("segment wrote its mask though the overlay could not be written (%v)", err)
	}
}

// TestWrongCommandForCheckpoint: predict on a U-Net and segment on a
// classifier name the command to use (usage errors, status 2).
func TestWrongCommandForCheckpoint(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.png")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"predict", "--weights", unetCkpt, colorPNG}, "residual segment --weights " + unetCkpt},
		{[]string{"segment", "--weights", tinyCkpt, "--out", out, digit0PNG}, "residual predict --weights " + tinyCkpt},
	} {
		if code, _, errs := runCLI(tc.args...); code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("segment on a classifier wrote %s (%v)", out, err)
	}
}

// TestDataKinds keeps the data sets the flag checks accept (dataKinds) in
// step with those data.Open reads, as its message for an unknown one
// lists them.
func TestDataKinds(t *testing.T) {
	_, _, err := data.Open(context.Background(), "no-such-kind", 0)
	if err == nil {
		t.Fatal("data.Open read no-such-kind")
	}
	msg := err.Error()
	i, j := strings.LastIndex(msg, "("), strings.LastIndex(msg, ")")
	if i < 0 || j < i {
		t.Fatalf("data.Open's message lists no data sets: %q", msg)
	}
	var kinds []string
	for _, k := range strings.Split(msg[i+1:j], ", ") {
		k, _, _ = strings.Cut(k, ":")
		k, _, _ = strings.Cut(k, "[")
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	want := slices.Sorted(slices.Values(dataKinds))
	if !slices.Equal(kinds, want) {
		t.Errorf("data.Open reads %v; the flag checks accept %v", kinds, want)
	}
}
