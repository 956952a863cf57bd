package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/models"
)

// summaryOf runs summary with args and --json, failing the test unless
// it succeeds, and returns what it printed.
func summaryOf(t *testing.T, args ...string) summaryJSON {
	t.Helper()
	code, out, errs := runCLI(append([]string{"summary", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("summary %q: exit %d, stderr %q", args, code, errs)
	}
	var s summaryJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Summary == nil {
		t.Fatalf("summary %q: %q: %v", args, out, err)
	}
	return s
}

// tableOf runs summary with args and returns its table: what it printed
// after the heading line.
func tableOf(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runCLI(append([]string{"summary"}, args...)...)
	if code != 0 {
		t.Fatalf("summary %q: exit %d, stderr %q", args, code, errs)
	}
	_, table, _ := strings.Cut(out, "\n")
	return table
}

// summaryCheckpoints writes in dir the checkpoints the summary tests
// read: a ResNet-8 for 16×16 RGB images into three classes, and a padded
// U-Net of base 4 for 32×32 grey images into two (random weights).
func summaryCheckpoints(t *testing.T, dir string) (ck, seg string) {
	t.Helper()
	ck, seg = filepath.Join(dir, "r8.safetensors"), filepath.Join(dir, "seg.safetensors")
	writeCheckpoint(t, ck, "resnet8", checkpoint.Preprocess{Height: 16, Width: 16, Channels: 3}, []string{"a", "b", "c"})
	cfg, err := models.Preset("unet-padded")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Arch.(*models.UNet).Base = 4
	writeConfigCheckpoint(t, seg, cfg, checkpoint.Preprocess{Height: 32, Width: 32, Channels: 1}, []string{"background", "ink"})
	return ck, seg
}

// TestSummaryCheckpoint: summary takes a checkpoint (it answered "unknown
// model"): its model as the metadata records it, at the input size its
// preprocessing records, the same layer table as the preset of the same
// config; --classes, --in-channels and --base that agree with it pass,
// and --input sets another size. An import of the exported weights
// summarises as its preset.
func TestSummaryCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ck, seg := summaryCheckpoints(t, dir)
	preset := []string{"resnet8", "--classes", "3", "--in-channels", "3", "--input", "16x16"}
	for _, tc := range []struct {
		ck, model string
		args      []string
		preset    []string
	}{
		{ck, "resnet8", nil, preset},
		{ck, "resnet8", []string{"--classes", "3", "--in-channels", "3"}, preset},
		{ck, "resnet8", []string{"--input", "24x20"}, []string{"resnet8", "--classes", "3", "--in-channels", "3", "--input", "24x20"}},
		{seg, "unet-padded", nil, []string{"unet-padded", "--base", "4", "--classes", "2", "--in-channels", "1", "--input", "32x32"}},
		{seg, "unet-padded", []string{"--base", "4"}, []string{"unet-padded", "--base", "4", "--classes", "2", "--in-channels", "1", "--input", "32x32"}},
	} {
		args := append([]string{tc.ck}, tc.args...)
		got, want := summaryOf(t, args...), summaryOf(t, tc.preset...)
		if got.Model != tc.model || got.Checkpoint != tc.ck || got.Precision != "" {
			t.Errorf("summary %q: model %q, checkpoint %q, precision %q", args, got.Model, got.Checkpoint, got.Precision)
		}
		if !reflect.DeepEqual(got.Summary, want.Summary) {
			t.Errorf("summary %q:\n%+v\nsummary %q:\n%+v", args, got.Summary, tc.preset, want.Summary)
		}
		if got, want := tableOf(t, args...), tableOf(t, tc.preset...); got != want {
			t.Errorf("summary %q:\n%s\nsummary %q:\n%s", args, got, tc.preset, want)
		}
	}
	// An imported checkpoint: resnet8's weights (10 classes, 32×32 RGB)
	// exported for PyTorch and imported back.
	ck10 := filepath.Join(dir, "r8-10.safetensors")
	writeCheckpoint(t, ck10, "resnet8", checkpoint.Preprocess{Height: 32, Width: 32, Channels: 3}, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"})
	torch, imported := filepath.Join(dir, "r8.torch.safetensors"), filepath.Join(dir, "r8-imported.safetensors")
	if code, _, errs := runCLI("export", "torch", ck10, "--out", torch); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := runCLI("import", "torch", torch, "--model", "resnet8", "--out", imported); code != 0 {
		t.Fatal(errs)
	}
	if got, want := summaryOf(t, imported), summaryOf(t, "resnet8"); !reflect.DeepEqual(got.Summary, want.Summary) {
		t.Errorf("summary of the import:\n%+v\nsummary resnet8:\n%+v", got.Summary, want.Summary)
	}
	// A trained checkpoint of a model no preset names, at its 28×28.
	if got := summaryOf(t, tinyCkpt); got.Model != "mnist-tiny" || !reflect.DeepEqual(got.InputShape, []int{1, 28, 28, 1}) || !reflect.DeepEqual(got.OutputShape, []int{1, 10}) || got.TotalParams != got.TrainableParams || got.TotalParams == 0 {
		t.Errorf("summary %s: %+v", tinyCkpt, got)
	}
}

// TestSummaryInt8: an int8 checkpoint summarises as the float model its
// graph runs, batch norms folded into the convolutions: the float
// checkpoint's layers without the batch norms, each convolution with the
// bias it gained, the same multiply-adds; its parameters are the int8
// model's, none trainable; another --input than its own is refused.
func TestSummaryInt8(t *testing.T) {
	const dir = "../../testdata/checkpoint/"
	q := filepath.Join(t.TempDir(), "tiny8.safetensors")
	if code, _, errs := runCLI("quantize", tinyCkpt, "--calibrate-images", dir+"digit0.png,"+dir+"digit1.png", "--method", "minmax", "--out", q); code != 0 {
		t.Fatal(errs)
	}
	float, int8 := summaryOf(t, tinyCkpt), summaryOf(t, q)
	if int8.Model != "mnist-tiny" || int8.Precision != "int8" || int8.Checkpoint != q {
		t.Errorf("int8: model %q, precision %q, checkpoint %q", int8.Model, int8.Precision, int8.Checkpoint)
	}
	var convs []string
	for _, l := range float.Layers {
		if l.Kind != "BatchNorm" {
			convs = append(convs, l.Name)
		}
	}
	params := 0
	if len(int8.Layers) != len(convs) {
		t.Fatalf("int8 layers %+v; want the float ones but the batch norms, %v", int8.Layers, convs)
	}
	for i, l := range int8.Layers {
		params += l.Params
		if l.Name != convs[i] || (l.Kind != "Conv2d" && l.Kind != "Linear") {
			t.Errorf("int8 layer %d: %+v, want %s", i, l, convs[i])
		}
	}
	c, err := checkpoint.Load(q)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, l := range c.Int8.Layers() {
		held += len(l.W) + len(l.Bias)
	}
	if int8.TotalParams != held || params != held || int8.TrainableParams != 0 || int8.TotalMultAdds != float.TotalMultAdds || !reflect.DeepEqual(int8.InputShape, float.InputShape) {
		t.Errorf("int8: %d params (%d in its layers, %d trainable), %d mult-adds, input %v; want %d, none trainable, %d, %v",
			int8.TotalParams, params, int8.TrainableParams, int8.TotalMultAdds, int8.InputShape, held, float.TotalMultAdds, float.InputShape)
	}
	code, out, errs := runCLI("summary", q)
	if head, _, _ := strings.Cut(out, "\n"); code != 0 || !strings.Contains(head, "mnist-tiny in int8") || !strings.Contains(head, "batch norms folded") || !strings.Contains(head, "input 28x28 only") {
		t.Errorf("summary %s: exit %d, stdout %q, stderr %q", q, code, out, errs)
	}
	if code, _, errs := runCLI("summary", q, "--input", "28x28"); code != 0 {
		t.Errorf("--input 28x28, its own: exit %d, %s", code, errs)
	}
	if code, _, errs := runCLI("summary", q, "--input", "32x32"); code != 2 || !strings.Contains(errs, "--input 32x32: an int8 checkpoint's graph is fixed at the size it was quantized at (28x28)") {
		t.Errorf("--input 32x32: exit %d, %s", code, errs)
	}
}

// TestSummaryRefusals: with a checkpoint, a flag that contradicts it is
// refused, naming the checkpoint's value; a path that does not exist is
// said not to; a name neither a model nor a file is an unknown model, as
// before; a PyTorch or ONNX file, a folder and a state dict without our
// metadata are refused, saying what to do.
func TestSummaryRefusals(t *testing.T) {
	dir := t.TempDir()
	ck, seg := summaryCheckpoints(t, dir)
	pth, onnx := filepath.Join(dir, "m.pth"), filepath.Join(dir, "m.onnx")
	for _, f := range []string{pth, onnx} {
		if err := os.WriteFile(f, []byte("not read"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	torch := filepath.Join(dir, "torch.safetensors")
	if code, _, errs := runCLI("export", "torch", ck, "--out", torch); code != 0 {
		t.Fatal(errs)
	}
	t.Chdir(dir) // for the names without a folder
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{ck, "--classes", "5"}, 2, []string{"--classes 5: " + ck + " holds resnet8 with 3 classes, which its weights fix"}},
		{[]string{ck, "--in-channels", "1"}, 2, []string{"--in-channels 1: " + ck + " holds resnet8 with 3 input channels"}},
		{[]string{ck, "--base", "8"}, 2, []string{"--base is for U-Nets"}},
		{[]string{seg, "--base", "8"}, 2, []string{"--base 8: " + seg + " holds unet-padded with base 4"}},
		{[]string{seg, "--classes", "1"}, 2, []string{"--classes 1: " + seg + " holds unet-padded with 2 classes"}},
		{[]string{"runs/x/best.safetensors"}, 1, []string{"runs/x/best.safetensors does not exist (summary takes a model name, such as resnet50, or a checkpoint file)"}},
		{[]string{"best.safetensors"}, 1, []string{"best.safetensors does not exist"}},
		{[]string{"resnet19"}, 2, []string{`unknown model "resnet19"`}},
		{[]string{"resnet19.pth"}, 1, []string{"resnet19.pth does not exist"}},
		{[]string{dir}, 2, []string{dir + " is a folder; name the checkpoint file"}},
		{[]string{pth}, 2, []string{pth + " is a PyTorch file", "residual import torch " + pth + " --model NAME"}},
		{[]string{"m.pth"}, 2, []string{"m.pth is a PyTorch file"}},
		{[]string{onnx}, 2, []string{onnx + " is an ONNX model", "residual import onnx " + onnx}},
		{[]string{torch}, 1, []string{"not a residual checkpoint", "residual import torch"}},
		{[]string{ck, seg}, 2, []string{"want one model name or checkpoint, got 2 arguments"}},
	} {
		code, out, errs := runCLI(append([]string{"summary"}, tc.args...)...)
		if code != tc.code || out != "" {
			t.Errorf("summary %q: exit %d, stdout %q, stderr %q; want %d", tc.args, code, out, errs, tc.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(errs, w) {
				t.Errorf("summary %q: stderr %q lacks %q", tc.args, errs, w)
			}
		}
	}
}

// TestSummaryInt8MLP: an int8 checkpoint of an MLP (its input has no
// image size; only Go writes one) summarises, and an --input is refused
// as export refuses it; the heading indexed the input's height and width.
func TestSummaryInt8MLP(t *testing.T) {
	ck := filepath.Join(t.TempDir(), "mlp8.safetensors")
	int8MLPCheckpoint(t, ck)
	if s := summaryOf(t, ck); s.Precision != "int8" || !reflect.DeepEqual(s.InputShape, []int{1, 4}) || !reflect.DeepEqual(s.OutputShape, []int{1, 3}) {
		t.Errorf("summary %s: %+v", ck, s)
	}
	if code, out, errs := runCLI("summary", ck); code != 0 || !strings.Contains(out, "input [1 4] only") {
		t.Errorf("summary %s: exit %d, stdout %q, stderr %q", ck, code, out, errs)
	}
	if code, _, errs := runCLI("summary", ck, "--input", "28x28"); code != 2 || !strings.Contains(errs, "--input 28x28: an int8 checkpoint's graph is fixed at the input it was quantized at ([1 4])") {
		t.Errorf("summary --input 28x28: exit %d, stderr %q", code, errs)
	}
}
