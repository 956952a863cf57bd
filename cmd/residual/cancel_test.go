package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/tensor"
)

// cancelledBy returns a context cancelled as main's is by sig.
func cancelledBy(sig syscall.Signal) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(signalCause{sig})
	return ctx
}

// stopsAt runs args with a context that SIGTERM has cancelled and checks
// that the command stops with status 143, saying why, and prints no result.
func stopsAt(t *testing.T, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(cancelledBy(syscall.SIGTERM), args, &stdout, &stderr)
	if code != 143 || !strings.Contains(stderr.String(), "stopped by SIGTERM") {
		t.Errorf("%q after SIGTERM: exit %d, stderr %q; want 143 and the signal named", args, code, stderr.String())
	}
	if stdout.Len() > 0 && args[0] != "experiment" && args[0] != "demo" { // these print what they start first
		t.Errorf("%q after SIGTERM printed %q", args, stdout.String())
	}
}

// TestCommandsStopWhenCancelled covers the commands that need no
// checkpoint; TestTrainEvalPredict, TestImportExport and
// TestTrainAndSegment cover the others.
func TestCommandsStopWhenCancelled(t *testing.T) {
	dir := t.TempDir()
	stopsAt(t, "summary", "resnet50")
	stopsAt(t, "demo")
	stopsAt(t, "bench", "cifar20-train")
	stopsAt(t, "export", "onnx", "--model", "resnet8", "--out", dir+"/x.onnx")
	for _, name := range []string{"bottleneck", "variance", "shatter"} {
		stopsAt(t, "experiment", name, "--out", dir+"/"+name)
	}
}

// looksCtx is a context that a signal cancels, as main's, when the
// command has looked at it (called Err) a given number of times.
type looksCtx struct {
	context.Context
	left   atomic.Int64
	cancel context.CancelCauseFunc
	sig    syscall.Signal
}

func (c *looksCtx) Err() error {
	err := c.Context.Err()
	if c.left.Add(-1) == 0 {
		c.cancel(signalCause{c.sig})
	}
	return err
}

// signalAfterLooks returns a context that sig cancels just after the
// command's n-th look at it: a signal that arrives while the command works
// between that look and the next.
func signalAfterLooks(n int, sig syscall.Signal) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	c := &looksCtx{Context: ctx, cancel: cancel, sig: sig}
	c.left.Store(int64(n))
	return c
}

// stopsBeforeWriting runs args with ctx, which SIGTERM cancels while the
// command works, and checks that it exits with 143 naming the signal and
// leaves out as it was (holding earlier), with no temporary file beside it.
func stopsBeforeWriting(t *testing.T, ctx context.Context, out string, earlier []byte, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	if code != 143 || !strings.Contains(stderr.String(), "stopped by SIGTERM") {
		t.Errorf("%q, SIGTERM while it worked: exit %d, stderr %q; want 143 and the signal named", args, code, stderr.String())
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, earlier) {
		t.Errorf("%q, SIGTERM while it worked: %s holds %d bytes (%v), want the earlier %d", args, out, len(got), err, len(earlier))
	}
	if tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*.tmp")); len(tmps) > 0 {
		t.Errorf("%q, SIGTERM while it worked: left %q", args, tmps)
	}
}

// TestExportStopsBeforeWriting: a signal while export builds or traces a
// model (after its first look at the context, before the work) stops it
// before it writes: exit 143, and the file at --out stays as it was.
// export used to go on, write the file and exit 0 after saying it was
// stopping (resnet152's build and trace take seconds).
func TestExportStopsBeforeWriting(t *testing.T) {
	dir := t.TempDir()
	int8Ckpt := tinyInt8(t, dir)
	out := filepath.Join(dir, "model.onnx")
	earlier := []byte("an earlier export")
	if err := os.WriteFile(out, earlier, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"export", "onnx", "--model", "resnet8", "--out", out},
		{"export", "onnx", "--weights", tinyCkpt, "--out", out},
		{"export", "onnx", "--weights", int8Ckpt, "--out", out},
	} {
		stopsBeforeWriting(t, signalAfterLooks(1, syscall.SIGTERM), out, earlier, args...)
	}
}

// tinyInt8 quantizes mnist-tiny into dir and returns the int8 checkpoint.
func tinyInt8(t *testing.T, dir string) string {
	t.Helper()
	ckpt := filepath.Join(dir, "tiny8.safetensors")
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"quantize", tinyCkpt, "--calibrate-images", digit0PNG, "--out", ckpt}, &o, &e); code != 0 {
		t.Fatalf("quantize: status %d: %s", code, e.String())
	}
	return ckpt
}

// TestImportONNXStopsBeforeWriting: a signal while import onnx builds the
// model and reads its int8 layers (after its first look at the context)
// stops it before it writes: exit 143, and --out stays as it was. It
// wrote the checkpoint and exited 0.
func TestImportONNXStopsBeforeWriting(t *testing.T) {
	dir := t.TempDir()
	qdq := filepath.Join(dir, "tiny8.onnx")
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"export", "onnx", "--weights", tinyInt8(t, dir), "--out", qdq}, &o, &e); code != 0 {
		t.Fatalf("export onnx: status %d: %s", code, e.String())
	}
	out := filepath.Join(dir, "back8.safetensors")
	earlier := []byte("an earlier import")
	if err := os.WriteFile(out, earlier, 0o644); err != nil {
		t.Fatal(err)
	}
	stopsBeforeWriting(t, signalAfterLooks(1, syscall.SIGTERM), out, earlier, "import", "onnx", qdq, "--out", out)
}

// TestSegmentStopsWhileEncoding: a signal once the image is segmented,
// while the mask and the overlay are encoded (seconds for a large image),
// stops segment before it writes, wherever it comes: both files stay as
// they were. It went on to write them and exit 0 (7 s after the signal,
// for a 3000×3000 image).
func TestSegmentStopsWhileEncoding(t *testing.T) {
	dir := t.TempDir()
	out, overlay := filepath.Join(dir, "mask.png"), filepath.Join(dir, "mask-overlay.png")
	earlier := []byte("an earlier mask")
	img := image.NewRGBA(image.Rect(0, 0, 300, 200))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.Uint32())
	}
	seg := &infer.Mask{Width: 300, Height: 200, Class: make([]int32, 300*200), Names: []string{"bg", "a", "b"}}
	for i := range seg.Class {
		seg.Class[i] = int32(rng.IntN(3))
	}
	for n := 1; ; n++ {
		for _, f := range []string{out, overlay} {
			if err := os.WriteFile(f, earlier, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ctx := signalAfterLooks(n, syscall.SIGTERM)
		_, err := writeMasks(ctx, img, seg, 3, out, overlay)
		if err == nil { // the signal came after the last look, before the write
			if n == 1 {
				t.Fatal("writeMasks wrote the files after a signal that came as it began to encode them")
			}
			if ctx.Err() == nil {
				t.Fatalf("writeMasks looked at its context %d times and wrote the files, but the signal never came", n-1)
			}
			if b := readFile(t, out); bytes.Equal(b, earlier) {
				t.Errorf("writeMasks returned no error and left %s as it was", out)
			}
			t.Logf("a signal after each of the first %d looks stopped it", n-1)
			return
		}
		if err.Error() != "stopped by SIGTERM" {
			t.Errorf("a signal after look %d: %v, want the signal", n, err)
		}
		for _, f := range []string{out, overlay} {
			if b := readFile(t, f); !bytes.Equal(b, earlier) {
				t.Fatalf("a signal after look %d: %s was replaced", n, f)
			}
		}
		if tmps, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(tmps) > 0 {
			t.Fatalf("a signal after look %d left %q", n, tmps)
		}
	}
}

// cancellingWriter cancels its context, as sig would, at its first write
// (holding at, if at is set).
type cancellingWriter struct {
	bytes.Buffer
	cancel context.CancelCauseFunc
	sig    syscall.Signal
	at     string
}

func (w *cancellingWriter) Write(p []byte) (int, error) {
	if w.at == "" || bytes.Contains(p, []byte(w.at)) {
		w.cancel(signalCause{w.sig})
	}
	return w.Buffer.Write(p)
}

// TestPredictKeepsWhatItPrinted: a signal after predict has printed its
// first guesses stops it before the next images (exit 143, saying how many
// it classified), and what it printed stays printed. predict read every
// image first and printed nothing until it had classified them all, so a
// signal lost every guess (and a long list of photos was held decoded).
func TestPredictKeepsWhatItPrinted(t *testing.T) {
	images := make([]string, 40)
	for i := range images {
		images[i] = digit0PNG
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stdout := &cancellingWriter{cancel: cancel, sig: syscall.SIGTERM}
	var stderr bytes.Buffer
	code := run(ctx, append([]string{"predict", tinyCkpt, "--top", "1"}, images...), stdout, &stderr)
	printed := strings.Count(stdout.String(), digit0PNG+"\n")
	if code != 143 || !strings.Contains(stderr.String(), fmt.Sprintf("stopped by SIGTERM after classifying %d of 40 images", printed)) {
		t.Errorf("SIGTERM at predict's first guesses: exit %d, stderr %q; want 143, the signal and %d of 40 images", code, stderr.String(), printed)
	}
	if printed != infer.ClassifyBatch {
		t.Errorf("SIGTERM at predict's first guesses: it printed %d of %d images' guesses, want the first batch's %d (infer.ClassifyBatch)", printed, len(images), infer.ClassifyBatch)
	}
}

// TestQuantizeStopsBeforeWriting: a signal as calibration ends — here as
// the batches run out, as when a signal ends the loader's epoch and it
// hands over no more — stops quantize before it writes: the cause, and
// --out as it was. quantize wrote the int8 checkpoint, calibrated on what
// it had, and exited 0.
func TestQuantizeStopsBeforeWriting(t *testing.T) {
	c, err := checkpoint.Load(tinyCkpt)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tiny8.safetensors")
	earlier := []byte("an earlier int8 checkpoint")
	if err := os.WriteFile(out, earlier, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	x := tensor.New(2, 28, 28, 1)
	for i := range x.Data {
		x.Data[i] = float32(i%17) / 17
	}
	given := false
	next := func() (*tensor.Tensor, error) {
		if !given {
			given = true
			return x, nil
		}
		cancel(signalCause{syscall.SIGTERM}) // the signal, as the batches end
		return nil, nil
	}
	var stdout bytes.Buffer
	err = quantizeAndWrite(ctx, c, []int{1, 28, 28, 1}, next, quant.MinMax, 0, out, func() string { return "1 batch" }, &stdout)
	if err == nil || err.Error() != "stopped by SIGTERM" {
		t.Errorf("a signal as calibration ended: %v, want the signal", err)
	}
	if got := readFile(t, out); !bytes.Equal(got, earlier) {
		t.Errorf("a signal as calibration ended: %s was replaced (%d bytes); stdout %q", out, len(got), stdout.String())
	}
}

// TestEvalStopsBeforeTheConfusionImage: a signal while eval prints its
// results, after the evaluation's last look at the context, or while it
// draws the confusion matrix image (seconds for a hundred classes) stops
// it before it writes that image (it was written, exit 0).
func TestEvalStopsBeforeTheConfusionImage(t *testing.T) {
	dir := t.TempDir()
	colourFolder(t, dir)
	ck := filepath.Join(t.TempDir(), "m.safetensors")
	colourCheckpoint(t, ck, []string{"a", "b"})
	png := filepath.Join(t.TempDir(), "confusion.png")
	earlier := []byte("an earlier image")
	if err := os.WriteFile(png, earlier, 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(h func()) { testHookConfusionDrawn = h }(testHookConfusionDrawn)
	for _, c := range []struct {
		at     string
		onDraw bool // the signal comes once the image is drawn, not as the matrix is printed
	}{{"as eval printed its confusion matrix", false}, {"as eval drew its confusion image", true}} {
		ctx, cancel := context.WithCancelCause(context.Background())
		var stdout io.Writer = &cancellingWriter{cancel: cancel, sig: syscall.SIGTERM, at: "confusion matrix (rows"}
		testHookConfusionDrawn = func() {}
		if c.onDraw {
			stdout, testHookConfusionDrawn = new(bytes.Buffer), func() { cancel(signalCause{syscall.SIGTERM}) }
		}
		var stderr bytes.Buffer
		code := run(ctx, []string{"eval", "--weights", ck, "--data", "folder,all:" + filepath.Join(dir, "test"), "--confusion", png}, stdout, &stderr)
		cancel(nil)
		if code != 143 || !strings.Contains(stderr.String(), "stopped by SIGTERM") {
			t.Errorf("SIGTERM %s: exit %d, stderr %q; want 143 and the signal named", c.at, code, stderr.String())
		}
		if got := readFile(t, png); !bytes.Equal(got, earlier) {
			t.Errorf("SIGTERM %s: %s was replaced", c.at, png)
		}
	}
}
