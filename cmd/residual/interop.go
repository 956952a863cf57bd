package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/interop/keras"
	"github.com/residual-nn/residual/interop/onnx"
	"github.com/residual-nn/residual/interop/torch"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// imagenetPreprocess is torchvision's evaluation transform: resize the
// shorter side to 256, centre-crop 224, scale to [0, 1], normalise.
var imagenetPreprocess = checkpoint.Preprocess{Height: 224, Width: 224, Channels: 3, ResizeShorter: 256,
	Normalisation: transform.Normalisation{Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}}

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("import", stderr)
	model := fs.String("model", "", "the architecture the weights belong to (e.g. resnet50)")
	classes := fs.Int("classes", 0, "number of classes (default: the file's classifier's, else the model's)")
	out := fs.String("out", "", "checkpoint to write (.safetensors)")
	like := fs.String("like", "", "torch: take the model (its whole config: widths, classes, channels), class names and preprocessing (input size, mean, std) from this checkpoint, as for weights exported from it; --model may then be left out")
	input := fs.String("input", "", "torch: the input size HxW the weights were trained at (default: 224x224 for ImageNet networks, 32x32 for CIFAR ones; an ImageNet network's resize of the shorter side keeps its proportion, 256 for 224)")
	meanFlag := fs.String("mean", "", "torch: per-channel means of the input pixels scaled to [0, 1], comma-separated (default: ImageNet's for ImageNet networks, none for CIFAR ones)")
	stdFlag := fs.String("std", "", "torch: per-channel standard deviations, comma-separated, as --mean")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 2 && pos[0] == "keras-tfjs" && *out != "" {
		return importKeras(ctx, pos[1], *out, stdout)
	}
	if len(pos) == 2 && pos[0] == "onnx" && *out != "" {
		return importONNXInt8(ctx, pos[1], *model, *classes, *out, stdout)
	}
	if len(pos) != 2 || pos[0] != "torch" || (*model == "" && *like == "") || *out == "" {
		// Name what is wrong: the usage lines alone left it to guess.
		var what string
		switch {
		case len(pos) == 0:
			what = "no format given (torch, keras-tfjs or onnx)"
		case pos[0] != "torch" && pos[0] != "keras-tfjs" && pos[0] != "onnx":
			what = fmt.Sprintf("unknown format %q (want torch, keras-tfjs or onnx)", pos[0])
		case len(pos) == 1:
			what = "no file given to import"
		case len(pos) > 2:
			what = fmt.Sprintf("unexpected argument %q (import reads one file)", pos[2])
		case *out == "":
			what = "no --out given for the checkpoint"
		default:
			what = "import torch needs --model NAME (the architecture the weights belong to) or --like CKPT"
		}
		return fmt.Errorf("%w: %s: residual import torch FILE.pth|FILE.safetensors --model NAME|--like CKPT --out CKPT\n"+
			"       residual import keras-tfjs DIR|model.json --out CKPT\n"+
			"       residual import onnx FILE.onnx [--model NAME] --out CKPT8 (a QDQ int8 model)", errUsage, what)
	}
	st, err := torch.LoadStateDict(pos[1])
	if err != nil {
		return err
	}
	if err := stopped(ctx); err != nil {
		return err
	}
	var lc *checkpoint.Checkpoint
	var mc models.Config
	if *like != "" {
		// The checkpoint the weights were exported from: its model as it
		// was built (a U-Net's --base, a model that is no preset), which
		// the weights must fit as they are.
		if lc, err = checkpoint.Load(*like); err != nil {
			return fmt.Errorf("--like: %w", err)
		}
		if *model != "" && *model != lc.Model.Name {
			return fmt.Errorf("%w: --model %s, but --like %s holds a %s", errUsage, *model, *like, lc.Model.Name)
		}
		if *classes > 0 && *classes != lc.Model.Classes() {
			return fmt.Errorf("%w: --classes %d, but --like %s has %d", errUsage, *classes, *like, lc.Model.Classes())
		}
		mc = lc.Model
	} else {
		if mc, err = modelFlag(*model); err != nil {
			return err
		}
		if *classes > 0 {
			mc.SetClasses(*classes)
		} else if fc, ok := st["fc.bias"]; ok { // follow the weights' classifier
			mc.SetClasses(fc.Len())
		}
		if w, ok := st["conv1.weight"]; ok && w.Rank() == 4 { // and their input channels
			mc.SetInChannels(w.Shape[1])
		}
	}
	net, err := models.Build(mc, tensor.NewRNG(0))
	if err != nil {
		return err
	}
	if err := nn.LoadTorchState(net, st, true); err != nil {
		return err
	}
	if err := stopped(ctx); err != nil {
		return err
	}
	names := make([]string, mc.Classes())
	for i := range names {
		names[i] = fmt.Sprint(i)
	}
	p := imagenetPreprocess
	if side := mc.DefaultSide(); side != p.Height { // a CIFAR network: 32×32; a state dict carries no normalisation
		p = checkpoint.Preprocess{Height: side, Width: side, Channels: mc.InChannels()}
	}
	if lc != nil {
		p, names = lc.Preprocess, lc.Classes
	}
	if *input != "" {
		h, w, err := parseSize(*input) // checked by checkImport
		if err != nil {
			return err
		}
		p = atSize(p, h, w)
	}
	for _, f := range []struct {
		name, value string
		dst         *[]float64
	}{{"mean", *meanFlag, &p.Mean}, {"std", *stdFlag, &p.Std}} {
		if f.value == "" {
			continue
		}
		v, err := parseFloats(f.value)
		if err != nil || len(v) != p.Channels {
			return badFlag(f.name, f.value, "want %d comma-separated numbers, one per input channel", p.Channels)
		}
		*f.dst = v
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := checkpoint.Write(*out, net, checkpoint.Meta{Model: mc, Classes: names, Preprocess: p}, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d tensors into %s (%d parameters), wrote %s\n", len(st), mc.Name, nn.NumParams(net), *out)
	var given []string
	for _, f := range []struct{ name, value string }{{"--input", *input}, {"--mean", *meanFlag}, {"--std", *stdFlag}} {
		if f.value != "" {
			given = append(given, f.name)
		}
	}
	fmt.Fprintf(stdout, "its input: %s (%s)\n", describePreprocess(p), importedInputFrom(*like, given))
	return nil
}

// atSize returns p for images of h×w: an ImageNet-style resize of the
// shorter side keeps its proportion to the crop (256 for 224: 128 for
// 112).
func atSize(p checkpoint.Preprocess, h, w int) checkpoint.Preprocess {
	if p.ResizeShorter > 0 && p.Height > 0 {
		p.ResizeShorter = (p.ResizeShorter*min(h, w) + p.Height/2) / p.Height
	}
	p.Height, p.Width = h, w
	return p
}

// importedInputFrom says where import torch's preprocessing came from:
// the checkpoint --like names, the flags given (over --like's), and the
// model's defaults for the rest where a state dict, which records none, is
// all there is.
func importedInputFrom(like string, given []string) string {
	flags := strings.Join(given, " and ")
	if len(given) == 3 {
		flags = given[0] + ", " + given[1] + " and " + given[2]
	}
	switch {
	case like != "" && len(given) > 0:
		return "from --like " + like + ", " + flags + " as given"
	case like != "":
		return "from --like " + like
	}
	const hint = "; --like CKPT, --input, --mean and --std set it"
	if len(given) == 0 {
		return "the state dict does not record it: the model's defaults" + hint
	}
	return "the state dict does not record it: " + flags + " as given, the rest the model's defaults" + hint
}

// describePreprocess says in a line what a checkpoint's images go
// through before the network.
func describePreprocess(p checkpoint.Preprocess) string {
	s := fmt.Sprintf("%dx%d, %s", p.Height, p.Width, counted(p.Channels, "channel"))
	if p.ResizeShorter > 0 {
		s += fmt.Sprintf(", shorter side resized to %d then centre-cropped", p.ResizeShorter)
	}
	if p.BGR {
		s += ", BGR"
	}
	scale := "[0, 1]"
	if p.Scale255 {
		scale = "[0, 255]"
	}
	if len(p.Mean) == 0 && len(p.Std) == 0 {
		return s + ", pixels in " + scale + ", not normalised"
	}
	return s + fmt.Sprintf(", pixels in %s normalised with mean %v and std %v", scale, p.Mean, p.Std)
}

// parseFloats reads a comma-separated list of finite numbers.
func parseFloats(s string) ([]float64, error) {
	var v []float64
	for _, f := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%q is not a finite number", f)
		}
		v = append(v, x)
	}
	return v, nil
}

// importKeras converts a Keras ResNet in the TensorFlow.js layers format
// into a checkpoint.
func importKeras(ctx context.Context, dir, out string, stdout io.Writer) error {
	m, err := keras.LoadTFJS(dir)
	if err != nil {
		return err
	}
	if err := stopped(ctx); err != nil {
		return err
	}
	net, err := models.Build(m.Config, tensor.NewRNG(0))
	if err != nil {
		return err
	}
	if err := nn.LoadTorchState(net, m.State, true); err != nil {
		return err
	}
	if err := stopped(ctx); err != nil {
		return err
	}
	names := m.Classes
	if names == nil {
		names = make([]string, m.Config.Classes())
		for i := range names {
			names[i] = fmt.Sprint(i)
		}
	}
	if err := checkpoint.Write(out, net, checkpoint.Meta{Model: m.Config, Classes: names, Preprocess: m.Preprocess}, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported Keras %s (%d parameters, %d classes), wrote %s\n", m.Config.Name, nn.NumParams(net), m.Config.Classes(), out)
	return nil
}

// importONNXInt8 reads a QDQ (int8) ONNX model into an int8 checkpoint:
// the architecture, class names and preprocessing come from the model's
// metadata (residual's own exports) or, with --model, from the zoo model
// named, the input and output sizes of the graph and --classes.
func importONNXInt8(ctx context.Context, path, model string, classes int, out string, stdout io.Writer) error {
	b, err := limits.ReadFile(path, limits.TotalBytes+limits.HeaderBytes)
	if err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	info, err := onnx.Describe(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !info.QDQ {
		return fmt.Errorf("%s has no QuantizeLinear: import onnx takes int8 (QDQ) models, as export onnx writes them from an int8 checkpoint; a float ONNX model runs as it is through the Go API (interop/onnx.Load), not as a checkpoint", path)
	}
	meta, err := onnxImportMeta(info, model, classes)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := stopped(ctx); err != nil {
		return err
	}
	// An int8 weight is a byte of the file: a small file whose metadata
	// names a large model must not make import build it (as
	// checkpoint.FromFile refuses a config its tensors do not hold).
	if est := meta.Model.Arch.ParamEstimate(); est > 1.05*float64(len(b))+1024 {
		return fmt.Errorf("%s: the model %s describes about %.0f parameters; the %d-byte file cannot hold their int8 weights", path, meta.Model.Name, est, len(b))
	}
	net, err := models.Build(meta.Model, tensor.NewRNG(0))
	if err != nil {
		return err
	}
	in := meta.Model.InputShape(1, meta.Preprocess.Height)
	if len(in) == 4 {
		in = []int{1, meta.Preprocess.Height, meta.Preprocess.Width, in[3]}
	}
	q, err := onnx.ImportInt8(b, net, in)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := stopped(ctx); err != nil { // the build and the import took seconds for a large model
		return err
	}
	if err := checkpoint.WriteInt8(out, q, meta); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported the QDQ model %s as int8 %s (%d int8 layers, input %v NHWC), wrote %s\n", path, meta.Model.Name, len(q.Layers()), in, out)
	return nil
}

// onnxImportMeta returns the checkpoint metadata of an imported ONNX
// model: residual's metadata_props (checkpoint.MetaFromProps) unless
// model names a zoo model, whose input and classes then follow the
// graph's dimensions.
func onnxImportMeta(info onnx.Info, model string, classes int) (checkpoint.Meta, error) {
	var m checkpoint.Meta
	if model == "" {
		if pm, ok, err := checkpoint.MetaFromProps(info.Props); ok {
			return pm, err
		}
		return m, fmt.Errorf("%w: the model does not say its architecture (no residual metadata); pass --model NAME", errUsage)
	}
	mc, err := modelFlag(model)
	if err != nil {
		return m, err
	}
	if len(info.Input) != 4 || info.Input[1] <= 0 || info.Input[2] <= 0 || info.Input[3] <= 0 {
		return m, fmt.Errorf("the graph's input has dimensions %v; want an NCHW image of a fixed size", info.Input)
	}
	c, h, w := info.Input[1], info.Input[2], info.Input[3]
	mc.SetInChannels(c)
	if classes == 0 && len(info.Output) == 2 && info.Output[1] > 0 {
		classes = info.Output[1]
	}
	if classes > 0 {
		mc.SetClasses(classes)
	}
	m.Model = mc
	m.Classes = make([]string, mc.Classes())
	for i := range m.Classes {
		m.Classes[i] = fmt.Sprint(i)
	}
	m.Preprocess = checkpoint.Preprocess{Height: h, Width: w, Channels: c}
	if h == imagenetPreprocess.Height && w == imagenetPreprocess.Width && c == 3 {
		m.Preprocess = imagenetPreprocess
	}
	return m, m.Validate()
}

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", stderr)
	out := fs.String("out", "", "file to write (.safetensors with torchvision names, or .onnx)")
	input := fs.String("input", "", "onnx: the image size HxW the graph is traced at (default: the checkpoint's; any batch size runs)")
	model := fs.String("model", "", "onnx: export this zoo model with fresh random weights instead of a checkpoint (for benchmarks and inspection)")
	weights := fs.String("weights", "", "the checkpoint to export (.safetensors; or give it after torch|onnx)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 1 && *weights != "" { // export torch|onnx --weights CKPT
		pos = append(pos, *weights)
	}
	if len(pos) == 1 && pos[0] == "onnx" && *model != "" && *out != "" {
		if err := stopped(ctx); err != nil {
			return err
		}
		mc, err := modelFlag(*model)
		if err != nil {
			return err
		}
		shape, err := withSize(mc.InputShape(1, mc.DefaultSide()), *input, mc, *model)
		if err != nil {
			return err
		}
		net, err := models.Build(mc, tensor.NewRNG(1))
		if err != nil {
			return err
		}
		if err := exportONNX(ctx, *out, net, shape, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s with random weights as ONNX (opset %d, input %s) to %s\n", *model, onnx.ExportOpset, onnxInput(shape), *out)
		return nil
	}
	if len(pos) != 2 || (pos[0] != "torch" && pos[0] != "onnx") || *out == "" {
		// Name what is wrong: the usage lines alone left it to guess.
		var what string
		switch {
		case len(pos) == 0:
			what = "no format given (torch or onnx)"
		case pos[0] != "torch" && pos[0] != "onnx":
			what = fmt.Sprintf("unknown format %q (want torch or onnx)", pos[0])
		case len(pos) == 1 && pos[0] == "torch":
			what = "no checkpoint given"
		case len(pos) == 1 && *model == "":
			what = "no checkpoint given (or --model NAME, for random weights)"
		case len(pos) > 2:
			what = fmt.Sprintf("unexpected argument %q (export reads one checkpoint)", pos[2])
		default:
			what = "no --out given"
		}
		return fmt.Errorf("%w: %s: residual export torch --weights CKPT --out FILE.safetensors\n"+
			"       residual export onnx --weights CKPT|--model NAME --out FILE.onnx [--input HxW]", errUsage, what)
	}
	c, err := checkpoint.Load(pos[1])
	if err != nil {
		return err
	}
	if err := stopped(ctx); err != nil {
		return err
	}
	if c.Int8 != nil {
		return exportInt8(ctx, pos[0], c, *input, *out, stdout)
	}
	if pos[0] == "onnx" {
		shape, err := withSize(checkpointInput(c), *input, c.Model, c.Model.Name)
		if err != nil {
			return err
		}
		// As torch.onnx.export in evaluation mode: batch norms fold into
		// the convolutions before them.
		if err := models.ForInference(c.Model, c.Net); err != nil {
			return err
		}
		// The file carries the checkpoint's metadata, as an int8
		// export's does, with the preprocessing at the size traced.
		meta, as := c.Meta, asTrained
		if len(shape) == 4 && (shape[1] != meta.Preprocess.Height || shape[2] != meta.Preprocess.Width) {
			meta.Preprocess, as = atSize(meta.Preprocess, shape[1], shape[2]), atInput
		}
		props, err := meta.Props()
		if err != nil {
			return err
		}
		if err := exportONNX(ctx, *out, c.Net, shape, props); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s as ONNX (opset %d, input %s with any batch size) to %s\n", c.Model.Name, onnx.ExportOpset, onnxInput(shape), *out)
		printExportInput(stdout, meta.Preprocess, as, "recorded with its class names in the file's metadata_props: residual.preprocess, residual.classes")
		return nil
	}
	if err := checkpoint.ExportWeights(*out, c.Net); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote the weights of %s to %s (load with safetensors.torch.load_file, from pip's safetensors, and model.load_state_dict)\n", c.Model.Name, *out)
	printExportInput(stdout, c.Preprocess, asTrained, "the file does not record it; do the same before its forward pass")
	for _, n := range torchNotes(c.Model) {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	return nil
}

// printExportInput says how the images a checkpoint's network was
// trained on were preprocessed: an exported network takes them so. as
// says whether p is the checkpoint's own (asTrained) or scaled to the
// size traced (atInput); where says where the exported file records it,
// or that it does not (the weights alone).
func printExportInput(w io.Writer, p checkpoint.Preprocess, as, where string) {
	if p.Height == 0 {
		return
	}
	fmt.Fprintf(w, "its input: %s, %s (%s)\n", describePreprocess(p), as, where)
}

// How printExportInput's preprocessing relates to the checkpoint's: the
// same, or scaled to another --input.
const (
	asTrained = "as the checkpoint's images were"
	atInput   = "the checkpoint's preprocessing scaled to --input's size"
)

// torchNotes lists how a ResNet differs from torchvision's builder in
// ways its state dict does not show: the names and shapes match, so
// load_state_dict succeeds, but the model computes something else unless
// the PyTorch side is changed to match (a Keras import is ResNet v1 with
// batch norm's ε 1e-3).
func torchNotes(mc models.Config) []string {
	r, ok := mc.Arch.(*models.ResNet)
	if !ok {
		return nil
	}
	var notes []string
	if r.StrideOn1x1 {
		notes = append(notes, "the downsampling bottlenecks stride on their first 1×1 convolution (ResNet v1): in torchvision's model set conv1.stride = (2, 2) and conv2.stride = (1, 1) in layer2[0], layer3[0] and layer4[0]")
	}
	if r.BNEps != 0 && r.BNEps != 1e-5 {
		notes = append(notes, fmt.Sprintf("every batch norm has eps = %g: set eps on every BatchNorm2d (torchvision's is 1e-5)", r.BNEps))
	}
	if r.BranchScale != 0 && r.BranchScale != 1 {
		notes = append(notes, fmt.Sprintf("every residual branch is scaled by %g before the addition, which torchvision's blocks do not do", r.BranchScale))
	}
	if len(notes) > 0 {
		notes = append(notes, "without these the weights load (the names and shapes match) but the outputs differ; `residual export onnx` writes the model as it computes")
	}
	return notes
}

// exportInt8 writes an int8 checkpoint as a QDQ ONNX model, with the
// checkpoint's model config, class names and preprocessing in its
// metadata so that `residual import onnx` rebuilds the checkpoint.
func exportInt8(ctx context.Context, format string, c *checkpoint.Checkpoint, input, out string, stdout io.Writer) error {
	if format != "onnx" {
		return fmt.Errorf("%w: an int8 checkpoint exports to ONNX only (QDQ: residual export onnx --weights CKPT8 --out FILE.onnx)", errUsage)
	}
	if err := checkInt8Size(c, input); err != nil {
		return err
	}
	props, err := c.Meta.Props()
	if err != nil {
		return err
	}
	b, err := onnx.ExportInt8(c.Int8, props)
	if err != nil {
		return err
	}
	if err := writeUnlessStopped(ctx, out, b); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote int8 %s as QDQ ONNX (opset %d, input %s float32 with any batch size) to %s\n", c.Model.Name, onnx.ExportOpset, onnxInput(c.Int8.InputShape()), out)
	return nil
}

// exportONNX writes net traced at shape as ONNX to out, with props in
// its metadata_props (onnx.ExportWith), unless ctx is cancelled first:
// building a large model and tracing it take seconds, and a signal
// meanwhile leaves out as it was.
func exportONNX(ctx context.Context, out string, net nn.Layer, shape []int, props map[string]string) error {
	if err := stopped(ctx); err != nil {
		return err
	}
	b, err := onnx.ExportWith(net, shape, onnx.ExportOptions{Props: props})
	if err != nil {
		return err
	}
	return writeUnlessStopped(ctx, out, b)
}

// checkInt8Size refuses an --input (HxW; "" passes) other than the size
// the int8 checkpoint c was quantized at, the only one its graph takes.
func checkInt8Size(c *checkpoint.Checkpoint, input string) error {
	in := c.Int8.InputShape()
	switch {
	case input == "":
		return nil
	case len(in) != 4: // an MLP's [N,inputs]
		return fmt.Errorf("%w: --input %s: an int8 checkpoint's graph is fixed at the input it was quantized at (%v)", errUsage, input, in)
	}
	if h, w, err := parseSize(input); err != nil || h != in[1] || w != in[2] {
		return fmt.Errorf("%w: --input %s: an int8 checkpoint's graph is fixed at the size it was quantized at (%dx%d)", errUsage, input, in[1], in[2])
	}
	return nil
}

// checkpointInput is the input shape (NHWC for images, batch 1) of the
// checkpoint c's model at the image size its preprocessing records (the
// model's published size if it records none).
func checkpointInput(c *checkpoint.Checkpoint) []int {
	shape := c.Model.InputShape(1, c.Model.DefaultSide())
	if p := c.Preprocess; len(shape) == 4 && p.Height > 0 {
		shape[1], shape[2] = p.Height, p.Width
	}
	return shape
}

// onnxInput shows an input shape as the ONNX graph takes it: an image's
// NHWC shape in NCHW order, "[1 3 224 224] NCHW"; an MLP's [N, inputs] as
// it is.
func onnxInput(s []int) string {
	if len(s) == 4 {
		return fmt.Sprintf("%v NCHW", []int{s[0], s[3], s[1], s[2]})
	}
	return fmt.Sprint(s)
}
