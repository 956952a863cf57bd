package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/interop/onnx"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/tensor"
)

// TestImportTorchPreprocessing: a state dict carries no preprocessing, so
// `import torch` says what it gave the checkpoint, and --like (a round
// trip through export torch) or --input, --mean and --std set it; the
// round trip used to come back at 32×32 without normalisation, and eval
// and predict went wrong.
func TestImportTorchPreprocessing(t *testing.T) {
	dir := t.TempDir()
	pre := checkpoint.Preprocess{Height: 28, Width: 28, Channels: 1, Normalisation: transform.Normalisation{Mean: []float64{0.1307}, Std: []float64{0.3081}}}
	classes := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
	ck := filepath.Join(dir, "r20.safetensors")
	writeCheckpoint(t, ck, "resnet20", pre, classes)
	exported := filepath.Join(dir, "r20.torch.safetensors")
	code, out, errs := runCLI("export", "torch", ck, "--out", exported)
	if code != 0 {
		t.Fatalf("export: %s", errs)
	}
	// The exported weights do not record it either: export says what a
	// PyTorch program must do to the images (a network trained on a
	// folder normalises with the folder's own mean and std), its count
	// agreeing with its noun ("1 channel": it said "1 channels").
	const says = "its input: 28x28, 1 channel, pixels in [0, 1] normalised with mean [0.1307] and std [0.3081], as the checkpoint's images were"
	if !strings.Contains(out, says) {
		t.Errorf("export torch said %q, want %q", out, says)
	}
	if code, out, errs := runCLI("export", "onnx", ck, "--out", filepath.Join(dir, "r20.onnx")); code != 0 || !strings.Contains(out, says) {
		t.Errorf("export onnx: exit %d, said %q (%s), want %q", code, out, errs, says)
	}
	load := func(args ...string) (*checkpoint.Checkpoint, string) {
		t.Helper()
		back := filepath.Join(t.TempDir(), "back.safetensors")
		code, out, errs := runCLI(append([]string{"import", "torch", exported, "--model", "resnet20", "--out", back}, args...)...)
		if code != 0 {
			t.Fatalf("import %q: exit %d: %s", args, code, errs)
		}
		c, err := checkpoint.Load(back)
		if err != nil {
			t.Fatal(err)
		}
		return c, out
	}
	// What it prints says where the input came from: --like's checkpoint
	// records it, a state dict does not.
	const unrecorded = "the state dict does not record it: "
	const hint = "; --like CKPT, --input, --mean and --std set it)"
	c, out := load()
	if want := "its input: 32x32, 1 channel, pixels in [0, 1], not normalised (" + unrecorded + "the model's defaults" + hint; c.Preprocess.Height != 32 || !strings.Contains(out, want) {
		t.Errorf("plain import: %+v, said %q, want %q", c.Preprocess, out, want)
	}
	c, out = load("--like", ck)
	if !reflect.DeepEqual(c.Preprocess, pre) || !reflect.DeepEqual(c.Classes, classes) {
		t.Errorf("--like: %+v %v, want %+v %v", c.Preprocess, c.Classes, pre, classes)
	}
	if want := "its input: 28x28, 1 channel, pixels in [0, 1] normalised with mean [0.1307] and std [0.3081] (from --like " + ck + ")\n"; !strings.Contains(out, want) || strings.Contains(out, "does not record") {
		t.Errorf("--like: said %q, want %q", out, want)
	}
	_, out = load("--like", ck, "--mean", "0.5")
	if want := "mean [0.5] and std [0.3081] (from --like " + ck + ", --mean as given)\n"; !strings.Contains(out, want) {
		t.Errorf("--like --mean: said %q, want %q", out, want)
	}
	c, out = load("--input", "28x28", "--mean", "0.1307", "--std", "0.3081")
	if !reflect.DeepEqual(c.Preprocess, pre) {
		t.Errorf("--input --mean --std: %+v, want %+v", c.Preprocess, pre)
	}
	if want := "(" + unrecorded + "--input, --mean and --std as given, the rest the model's defaults" + hint; !strings.Contains(out, want) {
		t.Errorf("--input --mean --std: said %q, want %q", out, want)
	}
	_, out = load("--input", "28x28")
	if want := "(" + unrecorded + "--input as given, the rest the model's defaults" + hint; !strings.Contains(out, want) {
		t.Errorf("--input: said %q, want %q", out, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--mean", "0.1,0.2"}, "--mean 0.1,0.2: want 1 comma-separated numbers"},
		{[]string{"--std", "0"}, "Std[0] = 0"},
		{[]string{"--input", "28"}, "--input 28"},
		{[]string{"keras-tfjs", "--like", ck}, "--like " + ck + ": applies to import torch"},
	} {
		var o, e bytes.Buffer
		args := append([]string{"import", "torch", exported, "--model", "resnet20", "--out", filepath.Join(t.TempDir(), "x.safetensors")}, tc.args...)
		if tc.args[0] == "keras-tfjs" {
			args = append([]string{"import", "keras-tfjs", dir, "--out", filepath.Join(t.TempDir(), "x.safetensors")}, tc.args[1:]...)
		}
		if code := run(context.Background(), args, &o, &e); code != 2 || !strings.Contains(e.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, e.String(), tc.want)
		}
	}
}

// TestExportTorchNotes: a ResNet that torchvision's builder does not make
// from the same state dict (v1's stride, Keras's batch norm ε) is
// exported with notes saying what to change on the PyTorch side; a
// torchvision one without.
func TestExportTorchNotes(t *testing.T) {
	for _, tc := range []struct {
		preset string
		eps    float64
		want   []string
	}{
		{"resnet50-v1", 1e-3, []string{"note: the downsampling bottlenecks stride on their first 1×1 convolution", "note: every batch norm has eps = 0.001"}},
		{"resnet50", 0, nil},
	} {
		cfg, err := models.Preset(tc.preset)
		if err != nil {
			t.Fatal(err)
		}
		cfg.SetClasses(2)
		cfg.Arch.(*models.ResNet).BNEps = tc.eps
		net, err := models.Build(cfg, tensor.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		ck := filepath.Join(dir, "m.safetensors")
		meta := checkpoint.Meta{Model: cfg, Classes: []string{"a", "b"}, Preprocess: imagenetPreprocess}
		if err := checkpoint.Write(ck, net, meta, nil); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCLI("export", "torch", ck, "--out", filepath.Join(dir, "t.safetensors"))
		if code != 0 {
			t.Fatalf("%s: %s", tc.preset, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output %q lacks %q", tc.preset, out, w)
			}
		}
		if tc.want == nil && strings.Contains(out, "note:") {
			t.Errorf("%s: notes for a torchvision model: %q", tc.preset, out)
		}
	}
}

// TestExportONNXMetadata: export onnx of a float checkpoint writes its
// class names and preprocessing into the file's metadata_props, as it did
// for an int8 checkpoint only, so that they read back (onnx.Describe,
// checkpoint.MetaFromProps) as the checkpoint's; at another --input the
// record is of the size traced, its resize in proportion. The float file
// held no metadata: a program running it had no labels and no
// normalisation.
func TestExportONNXMetadata(t *testing.T) {
	dir := t.TempDir()
	pre := checkpoint.Preprocess{Height: 32, Width: 32, Channels: 3, ResizeShorter: 36,
		Normalisation: transform.Normalisation{Mean: []float64{103.9, 116.8, 123.7}, Std: []float64{57.4, 57.1, 58.4}, Scale255: true, BGR: true}}
	classes := []string{"cat", "dog", "ant", "bee", "cow", "elk", "fox", "gnu", "hen", "owl"}
	ck := filepath.Join(dir, "r20.safetensors")
	writeCheckpoint(t, ck, "resnet20", pre, classes)
	for _, tc := range []struct {
		input string
		want  checkpoint.Preprocess
	}{
		{"", pre},
		{"64x64", func() checkpoint.Preprocess { p := pre; p.Height, p.Width, p.ResizeShorter = 64, 64, 72; return p }()},
	} {
		f := filepath.Join(dir, "r20"+tc.input+".onnx")
		args := []string{"export", "onnx", ck, "--out", f}
		if tc.input != "" {
			args = append(args, "--input", tc.input)
		}
		code, out, errs := runCLI(args...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, errs)
		}
		if !strings.Contains(out, "recorded with its class names in the file's metadata_props") {
			t.Errorf("%q said %q; want where the file records the input", args, out)
		}
		// At another --input the preprocessing is not the checkpoint's own.
		if as := map[bool]string{false: asTrained, true: atInput}[tc.input != ""]; !strings.Contains(out, as) {
			t.Errorf("%q said %q; want %q", args, out, as)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		info, err := onnx.Describe(b)
		if err != nil {
			t.Fatal(err)
		}
		m, ok, err := checkpoint.MetaFromProps(info.Props)
		if !ok || err != nil {
			t.Fatalf("%q: metadata_props %v: residual metadata %v, %v", args, info.Props, ok, err)
		}
		if m.Model.Name != "resnet20" || !reflect.DeepEqual(m.Classes, classes) || !reflect.DeepEqual(m.Preprocess, tc.want) {
			t.Errorf("%q: read back %s, %q, %+v; want resnet20, %q, %+v", args, m.Model.Name, m.Classes, m.Preprocess, classes, tc.want)
		}
	}
}

// TestImportFloatONNX: import onnx of a float model says it takes QDQ
// models only (it asked for --model, then failed on the graph's input).
func TestImportFloatONNX(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f.onnx")
	if code, _, errs := runCLI("export", "onnx", tinyCkpt, "--out", f); code != 0 {
		t.Fatal(errs)
	}
	code, _, errs := runCLI("import", "onnx", f, "--out", filepath.Join(dir, "x.safetensors"))
	if code != 1 || !strings.Contains(errs, "has no QuantizeLinear: import onnx takes int8 (QDQ) models") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

// TestImportONNXModelTheFileCannotHold: a QDQ file of 338 bytes whose
// metadata names a ResNet of 1000-wide layers (9 M parameters; 7000 wide,
// 441 M, ran import out of memory building it) is refused before the
// model is built, as checkpoint.FromFile refuses a config its tensors do
// not hold.
func TestImportONNXModelTheFileCannotHold(t *testing.T) {
	b, err := base64.StdEncoding.DecodeString("OiUKGQoBeAoBeBIBeSIOUXVhbnRpemVMaW5lYXJaAwoBeGIDCgF5QgIQDXLHAQoOcmVzaWR1YWwubW9kZWwStAF7Im5hbWUiOiJiaWciLCJraW5kIjoicmVzbmV0IiwiY29uZmlnIjp7ImJsb2NrIjoiYmFzaWMiLCJsYXllcnMiOlsxXSwid2lkdGhzIjpbNzAwMF0sInN0ZW0iOiJjaWZhciIsInN0ZW1fd2lkdGgiOjcwMDAsIm9yZGVyaW5nIjoicG9zdCIsInNob3J0Y3V0IjoiQiIsImNsYXNzZXMiOjIsImluX2NoYW5uZWxzIjoxfX1yHQoQcmVzaWR1YWwuY2xhc3NlcxIJWyIwIiwiMSJdcjwKE3Jlc2lkdWFsLnByZXByb2Nlc3MSJXsiSGVpZ2h0IjozMiwiV2lkdGgiOjMyLCJDaGFubmVscyI6MX0=")
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("7000"), []byte("1000")) // same length: the protobuf stays valid
	dir := t.TempDir()
	f := filepath.Join(dir, "big.onnx")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI("import", "onnx", f, "--out", filepath.Join(dir, "x.safetensors"))
	if code != 1 || !strings.Contains(errs, "describes about") || !strings.Contains(errs, "cannot hold") {
		t.Errorf("exit %d, stderr %q; want 1 and the parameters the file cannot hold", code, errs)
	}
}

// TestSummaryBase: summary takes train's --base for U-Nets, so that
// SEGMENTATION.md's model (unet-padded, base 16, 11 classes: 1,942,459
// parameters) can be checked from the command line.
func TestSummaryBase(t *testing.T) {
	code, out, errs := runCLI("summary", "--base", "16", "--classes", "11", "unet-padded")
	if code != 0 || !strings.Contains(out, "total params: 1,942,459") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestImportTorchInputKeepsCrop: --input on an ImageNet network keeps the
// evaluation's resize-then-crop in proportion (256 for 224: 128 for 112),
// where it used to drop it for a straight resize.
func TestImportTorchInputKeepsCrop(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "r18.safetensors")
	writeCheckpoint(t, ck, "resnet18", imagenetPreprocess, []string{"a", "b"})
	exported := filepath.Join(dir, "r18.torch.safetensors")
	if code, _, errs := runCLI("export", "torch", ck, "--out", exported); code != 0 {
		t.Fatal(errs)
	}
	back := filepath.Join(dir, "back.safetensors")
	if code, _, errs := runCLI("import", "torch", exported, "--model", "resnet18", "--input", "112x112", "--out", back); code != 0 {
		t.Fatal(errs)
	}
	c, err := checkpoint.Load(back)
	if err != nil || c.Preprocess.Height != 112 || c.Preprocess.ResizeShorter != 128 {
		t.Errorf("--input 112x112: %+v, %v; want 112 after resizing to 128", c.Preprocess, err)
	}
}

// TestImportTorchLikeRoundTrip: weights exported by export torch come back
// with --like whatever their model — a U-Net built with another base
// width, a ResNet of widths no preset has — bit for bit, with --model left
// out (--like takes the whole model config; it built the preset and
// refused the weights as mis-shaped).
func TestImportTorchLikeRoundTrip(t *testing.T) {
	unet, err := models.Preset("unet-padded")
	if err != nil {
		t.Fatal(err)
	}
	unet.Arch.(*models.UNet).Base = 8
	unet.SetClasses(3)
	unet.SetInChannels(3)
	net, err := models.Build(unet, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seg := filepath.Join(dir, "seg.safetensors")
	meta := checkpoint.Meta{Model: unet, Classes: []string{"a", "b", "c"}, Preprocess: checkpoint.Preprocess{Height: 32, Width: 32, Channels: 3}}
	if err := checkpoint.Write(seg, net, meta, nil); err != nil {
		t.Fatal(err)
	}
	for _, ck := range []string{seg, tinyCkpt} {
		exported, back := filepath.Join(dir, "w.safetensors"), filepath.Join(dir, "back.safetensors")
		if code, _, errs := runCLI("export", "torch", ck, "--out", exported); code != 0 {
			t.Fatalf("export %s: %s", ck, errs)
		}
		code, out, errs := runCLI("import", "torch", exported, "--like", ck, "--out", back)
		if code != 0 {
			t.Fatalf("import --like %s: %s", ck, errs)
		}
		a, err := checkpoint.Load(ck)
		if err != nil {
			t.Fatal(err)
		}
		b, err := checkpoint.Load(back)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "tensors into "+a.Model.Name+" (") {
			t.Errorf("import --like %s said %q; want the model's name", ck, out)
		}
		if !reflect.DeepEqual(a.Model, b.Model) || !reflect.DeepEqual(a.Preprocess, b.Preprocess) || !reflect.DeepEqual(nn.TorchState(a.Net), nn.TorchState(b.Net)) {
			t.Errorf("%s came back as another model or other weights", ck)
		}
		code, _, errs = runCLI("import", "torch", exported, "--like", ck, "--model", "resnet18", "--out", back)
		if code != 2 || !strings.Contains(errs, "--model resnet18, but --like "+ck+" holds a "+a.Model.Name) {
			t.Errorf("--model naming another model than --like's: exit %d, %q", code, errs)
		}
	}
}

// int8MLPCheckpoint writes at path an int8 checkpoint of a small residual
// MLP (4 inputs, 3 classes), which only Go can write: its input has no
// image size.
func int8MLPCheckpoint(t *testing.T, path string) {
	t.Helper()
	cfg, err := models.Preset("resmlp")
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Arch.(*models.MLP)
	m.In, m.Out, m.Width, m.Depth = 4, 3, 8, 2
	net, err := models.Build(cfg, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	done := false
	q, err := quant.Quantize(context.Background(), net, []int{1, 4}, func() (*tensor.Tensor, error) {
		if done {
			return nil, nil
		}
		done = true
		return tensor.MustFromData([]float32{1, -2, 3, -4, 0.5, 0.25, -1, 2}, 2, 4), nil
	}, quant.Options{Method: quant.MinMax})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.WriteInt8(path, q, checkpoint.Meta{Model: cfg, Classes: []string{"a", "b", "c"}, Preprocess: checkpoint.Preprocess{Height: 1, Width: 1, Channels: 1}}); err != nil {
		t.Fatal(err)
	}
}

// TestExportInt8MLPInput: export onnx --input of an int8 MLP checkpoint
// is refused, naming the input it was quantized at; it panicked, indexing
// an image's height and width in the MLP's [N,inputs].
func TestExportInt8MLPInput(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "mlp8.safetensors")
	int8MLPCheckpoint(t, ck)
	code, _, errs := runCLI("export", "onnx", "--weights", ck, "--input", "28x28", "--out", filepath.Join(dir, "m.onnx"))
	if code != 2 || !strings.Contains(errs, "--input 28x28: an int8 checkpoint's graph is fixed at the input it was quantized at ([1 4])") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

// TestExportSaysMLPInput: export onnx of an int8 MLP names its input as
// the graph takes it, [N, inputs], not as an NCHW image.
func TestExportSaysMLPInput(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "mlp8.safetensors")
	int8MLPCheckpoint(t, ck)
	code, out, errs := runCLI("export", "onnx", "--weights", ck, "--out", filepath.Join(dir, "m.onnx"))
	if code != 0 || !strings.Contains(out, "input [1 4] float32") || strings.Contains(out, "NCHW") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if got := onnxInput([]int{1, 224, 224, 3}); got != "[1 3 224 224] NCHW" {
		t.Errorf("onnxInput of an NHWC image: %q", got)
	}
}
