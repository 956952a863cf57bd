package autograd_test

import (
	"fmt"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/tensor"
)

// TestTorchGoldenLabelSmoothing compares cross-entropy with label
// smoothing (with class weights and an ignored class, and per pixel) with
// PyTorch's F.cross_entropy(label_smoothing=ε): loss and gradient, from
// testdata/torch/gen_finetune.py.
func TestTorchGoldenLabelSmoothing(t *testing.T) {
	f, err := fixture.Load("../testdata/torch/finetune.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, c := range f.Cases {
		if strings.HasPrefix(c.Op, "cross_entropy") {
			n++
			t.Run(fmt.Sprintf("%s_%d", c.Op, i), func(t *testing.T) { goldenOp(t, c) })
		}
	}
	if n != 3 {
		t.Errorf("%d label-smoothing cases, want 3", n)
	}
}

// goldenRtol is the tolerance for comparisons with PyTorch (float32 on both
// sides): |got − want| ≤ 1e-5·(|want| + max|want|), see fixture.Compare.
const goldenRtol = 1e-5

// nhwc converts a reference tensor to residual's layout (4-D tensors are
// NCHW images there).
func nhwc(t *tensor.Tensor) *tensor.Tensor {
	if t.Rank() == 4 {
		return tensor.NCHWToNHWC(t)
	}
	return t
}

func nchw(t *tensor.Tensor) *tensor.Tensor {
	if t.Rank() == 4 {
		return tensor.NHWCToNCHW(t)
	}
	return t
}

// runGolden evaluates one PyTorch case: fn builds the output from the named
// values (inputs on the tape, parameters as Params), then the output, the
// gradients of sum(out·proj) and any extra checks are compared.
func runGolden(t *testing.T, c fixture.Case, inputs, params []string, fn func(v map[string]*ag.Value) *ag.Value) {
	t.Helper()
	tape := ag.NewTape()
	vals := map[string]*ag.Value{}
	for _, n := range inputs {
		vals[n] = tape.Variable(nhwc(c.T(n)))
	}
	for _, n := range params {
		w := c.T(n)
		switch {
		case n == "weight" && c.Op == "conv2d":
			w = tensor.OIHWToHWIO(w)
		case n == "weight" && c.Op == "conv_transpose2d":
			w = tensor.IOHWToHWOI(w)
		}
		vals[n] = ag.Param(w, n)
	}
	out := fn(vals)
	check := func(what string, got, want *tensor.Tensor) {
		t.Helper()
		if err := fixture.Compare(got, want, goldenRtol); err != nil {
			t.Errorf("%s %v: %s: %v", c.Op, c.Attrs, what, err)
		}
	}
	check("output", nchw(out.Tensor()), c.T("out"))
	if !c.Has("proj") {
		return
	}
	tape.BackwardWith(out, nhwc(c.T("proj")))
	for n, v := range vals {
		g := c.T("grad_" + n)
		if v.Grad == nil {
			t.Errorf("%s: no gradient for %s", c.Op, n)
			continue
		}
		gv := v.Grad
		switch {
		case n == "weight" && c.Op == "conv2d":
			gv = tensor.HWIOToOIHW(gv)
		case n == "weight" && c.Op == "conv_transpose2d":
			gv = tensor.HWOIToIOHW(gv)
		default:
			gv = nchw(gv)
		}
		check("gradient of "+n, gv, g)
	}
}

// runGoldenOps runs goldenOp on every case of a fixture file, each as a
// subtest, and returns how many cases each operation had.
func runGoldenOps(t *testing.T, path string) map[string]int {
	f, err := fixture.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, c := range f.Cases {
		seen[c.Op]++
		t.Run(fmt.Sprintf("%s_%d", c.Op, seen[c.Op]), func(t *testing.T) { goldenOp(t, c) })
	}
	return seen
}

func TestTorchGoldenOps(t *testing.T) {
	seen := runGoldenOps(t, "../testdata/torch/ops.json")
	for _, op := range []string{"conv2d", "conv_transpose2d", "batchnorm_train", "batchnorm_eval", "relu", "maxpool2d",
		"avgpool2d", "global_avgpool", "linear", "add", "scale", "concat_channels", "center_crop", "subsample_pad",
		"reflect_pad", "softmax", "log_softmax", "cross_entropy", "cross_entropy_2d", "cross_entropy_rowweight", "dice", "bce_with_logits", "mse"} {
		if seen[op] == 0 {
			t.Errorf("fixture has no case for %s", op)
		}
	}
}

func goldenOp(t *testing.T, c fixture.Case) {
	params := []string{"weight"}
	if c.Has("bias") {
		params = append(params, "bias")
	}
	x := []string{"x"}
	switch c.Op {
	case "conv2d":
		cp := ag.ConvParams{Stride: pair(c, "stride"), Dilation: pair(c, "dilation"), Pad: pads(c)}
		runGolden(t, c, x, params, func(v map[string]*ag.Value) *ag.Value {
			return ag.Conv2d(v["x"], v["weight"], v["bias"], cp)
		})
	case "conv_transpose2d":
		cp := ag.ConvParams{Stride: pair(c, "stride"), Pad: pads(c), OutputPadding: pair(c, "output_padding")}
		if _, ok := c.Attrs["dilation"]; ok {
			cp.Dilation = pair(c, "dilation")
		}
		runGolden(t, c, x, params, func(v map[string]*ag.Value) *ag.Value {
			return ag.ConvTranspose2d(v["x"], v["weight"], v["bias"], cp)
		})
	case "batchnorm_train", "batchnorm_eval":
		train := c.Op == "batchnorm_train"
		rm, rv := c.T("running_mean0"), c.T("running_var0")
		runGolden(t, c, x, []string{"weight", "bias"}, func(v map[string]*ag.Value) *ag.Value {
			return ag.BatchNorm(v["x"], v["weight"], v["bias"], rm, rv, ag.BatchNormParams{Training: train, Momentum: c.Float("momentum"), Eps: c.Float("eps")})
		})
		if train {
			for name, got := range map[string]*tensor.Tensor{"running_mean": rm, "running_var": rv} {
				if err := fixture.Compare(got, c.T(name), goldenRtol); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		}
	case "relu":
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value { return ag.ReLU(v["x"]) })
	case "maxpool2d", "avgpool2d":
		pp := ag.PoolParams{Kernel: pair(c, "kernel"), Stride: pair(c, "stride"), Pad: pads(c), CeilMode: c.Bool("ceil"), CountIncludePad: c.Bool("count_include_pad")}
		if _, ok := c.Attrs["dilation"]; ok {
			pp.Dilation = pair(c, "dilation")
		}
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value {
			if c.Op == "maxpool2d" {
				return ag.MaxPool2d(v["x"], pp)
			}
			return ag.AvgPool2d(v["x"], pp)
		})
	case "global_avgpool":
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value { return ag.GlobalAvgPool(v["x"]) })
	case "linear":
		runGolden(t, c, x, params, func(v map[string]*ag.Value) *ag.Value { return ag.Linear(v["x"], v["weight"], v["bias"]) })
	case "add":
		runGolden(t, c, []string{"a", "b"}, nil, func(v map[string]*ag.Value) *ag.Value { return ag.Add(v["a"], v["b"]) })
	case "scale":
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value { return ag.Scale(v["x"], float32(c.Float("s"))) })
	case "concat_channels":
		runGolden(t, c, []string{"a", "b"}, nil, func(v map[string]*ag.Value) *ag.Value { return ag.Concat(3, v["a"], v["b"]) })
	case "center_crop":
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value { return ag.CenterCrop(v["x"], c.Int("h"), c.Int("w")) })
	case "subsample_pad":
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value {
			return ag.SubsamplePadChannels(v["x"], c.Int("stride"), c.Int("before"), c.Int("after"))
		})
	case "reflect_pad":
		p := c.Int("pad")
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value {
			return ag.Pad(v["x"], [][2]int{{0, 0}, {p, p}, {p, p}, {0, 0}}, ag.PadReflect, 0)
		})
	case "softmax", "log_softmax":
		axis := c.Int("axis")
		if c.Bool("nchw") { // PyTorch's NCHW axis of a 4-D image: C, H, W → NHWC's 3, 1, 2
			axis = [4]int{0, 3, 1, 2}[axis]
		}
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value {
			if c.Op == "softmax" {
				return ag.Softmax(v["x"], axis)
			}
			return ag.LogSoftmax(v["x"], axis)
		})
	case "cross_entropy", "cross_entropy_2d", "cross_entropy_rowweight":
		o := ag.CrossEntropyOptions{Ignore: true, IgnoreIndex: c.Int("ignore_index")}
		o.Sum = c.Bool("sum")
		if _, ok := c.Attrs["label_smoothing"]; ok {
			o.LabelSmoothing = c.Float("label_smoothing")
		}
		if c.Has("weight") {
			o.Weight = c.T("weight").Data
		}
		if c.Has("row_weight") {
			o.RowWeight = c.T("row_weight").Data
		}
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value {
			l, err := ag.CrossEntropy(v["x"], c.Tensors["target"].Ints(), o)
			if err != nil {
				t.Fatal(err)
			}
			return l
		})
	case "dice":
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value {
			l, err := ag.Dice(v["x"], c.Tensors["target"].Ints(), c.Int("ignore_index"))
			if err != nil {
				t.Fatal(err)
			}
			return l
		})
	case "bce_with_logits", "mse":
		target := c.T("target")
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value {
			if c.Op == "mse" {
				return ag.MSE(v["x"], target)
			}
			return ag.BCEWithLogits(v["x"], target)
		})
	case "gemm":
		alpha, beta := float32(c.Float("alpha")), float32(c.Float("beta"))
		ta, tb := c.Bool("trans_a"), c.Bool("trans_b")
		in := []string{"a", "b"}
		if c.Has("c") {
			in = append(in, "c")
		}
		runGolden(t, c, in, nil, func(v map[string]*ag.Value) *ag.Value { return ag.Gemm(v["a"], v["b"], v["c"], alpha, beta, ta, tb) })
	case "matmul":
		runGolden(t, c, []string{"a", "b"}, nil, func(v map[string]*ag.Value) *ag.Value { return ag.MatMul(v["a"], v["b"]) })
	case "mul":
		runGolden(t, c, []string{"a", "b"}, nil, func(v map[string]*ag.Value) *ag.Value { return ag.Mul(v["a"], v["b"]) })
	case "sum":
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value { return ag.Sum(v["x"]) })
	case "crop":
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value {
			return ag.Crop(v["x"], c.Int("top"), c.Int("left"), c.Int("h"), c.Int("w"))
		})
	case "pad":
		p := pads(c)
		mode := map[string]ag.PadMode{"constant": ag.PadConstant, "reflect": ag.PadReflect, "replicate": ag.PadEdge}[c.Attrs["mode"].(string)]
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value {
			return ag.Pad(v["x"], [][2]int{{0, 0}, {p[0], p[2]}, {p[1], p[3]}, {0, 0}}, mode, float32(c.Float("value")))
		})
	default:
		t.Fatalf("no Go side for PyTorch case %q", c.Op)
	}
}

// pair reads a vertical, horizontal attribute stored as one number (both
// axes) or as a list of two.
func pair(c fixture.Case, name string) [2]int {
	if l, ok := c.Attrs[name].([]any); ok {
		return [2]int{int(l[0].(float64)), int(l[1].(float64))}
	}
	v := c.Int(name)
	return [2]int{v, v}
}

// pads reads a case's padding as top, left, bottom, right: "pads" (stored
// in that order) or the symmetric "pad" (a number or a vertical,
// horizontal pair).
func pads(c fixture.Case) [4]int {
	if l, ok := c.Attrs["pads"].([]any); ok {
		var p [4]int
		for i := range p {
			p[i] = int(l[i].(float64))
		}
		return p
	}
	p := pair(c, "pad")
	return ag.SymmetricPad(p[0], p[1])
}

// TestTorchGoldenOpsExtra compares the operations and geometries that
// ops.json leaves out with PyTorch (testdata/torch/gen_ops_extra.py):
// Gemm with transposes, alpha, beta and every bias shape, batched MatMul,
// Mul, Sum, Crop, constant and replicate Pad, Softmax and LogSoftmax over
// an image's channel and row axes, convolutions with rectangular kernels,
// per-axis strides and dilations and asymmetric (TensorFlow SAME)
// padding, dilated transposed convolutions, dilated and rectangular max
// pooling, and summed and weighted, smoothed per-pixel cross-entropy —
// outputs and the gradients of sum(out·proj), at goldenRtol: both sides
// accumulate in float32, whose relative error over the at most 196-term
// sums here (the 7×7×2 convolution window, a 4×4 reduction) is bounded by
// about n·2⁻²⁴ ≈ 1.2e-5 of the sum of the terms' magnitudes in the worst
// case and, for rounding errors of random sign, by √n·2⁻²⁴ ≈ 1e-6 in
// practice; the tensor-scale term of fixture.Compare covers elements that
// cancel to near zero.
func TestTorchGoldenOpsExtra(t *testing.T) {
	seen := runGoldenOps(t, "../testdata/torch/ops_extra.json")
	for op, n := range map[string]int{"gemm": 6, "matmul": 2, "mul": 1, "sum": 1, "crop": 1, "pad": 2, "softmax": 2, "log_softmax": 2,
		"conv2d": 4, "conv_transpose2d": 2, "maxpool2d": 3, "cross_entropy": 2, "cross_entropy_2d": 1} {
		if seen[op] != n {
			t.Errorf("fixture has %d cases of %s, want %d", seen[op], op, n)
		}
	}
}

// TestTorchGoldenConvTransposeOutputPadding compares transposed
// convolutions whose output padding is at least the stride (below the
// dilation, which PyTorch allows) with PyTorch
// (testdata/torch/gen_convtranspose_outpad.py): output and the gradients
// of input, weight and bias, at goldenRtol. They panicked with "give no
// valid output": the equivalent forward convolution had more outputs than
// the input has rows, or, where the padding leaves no input inside the
// output (the last two cases: the bias alone, or zeros), no rows at all.
func TestTorchGoldenConvTransposeOutputPadding(t *testing.T) {
	if seen := runGoldenOps(t, "../testdata/torch/convtranspose_outpad.json"); seen["conv_transpose2d"] != 6 {
		t.Errorf("fixture has %d transposed convolutions, want 6", seen["conv_transpose2d"])
	}
}
