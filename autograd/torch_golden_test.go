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

func TestTorchGoldenOps(t *testing.T) {
	f, err := fixture.Load("../testdata/torch/ops.json")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, c := range f.Cases {
		seen[c.Op]++
		t.Run(fmt.Sprintf("%s_%d", c.Op, seen[c.Op]), func(t *testing.T) { goldenOp(t, c) })
	}
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
		s, p, d := c.Int("stride"), c.Int("pad"), c.Int("dilation")
		runGolden(t, c, x, params, func(v map[string]*ag.Value) *ag.Value {
			return ag.Conv2d(v["x"], v["weight"], v["bias"], ag.ConvParams{Stride: [2]int{s, s}, Dilation: [2]int{d, d}, Pad: ag.SymmetricPad(p, p)})
		})
	case "conv_transpose2d":
		s, p, op := c.Int("stride"), c.Int("pad"), c.Int("output_padding")
		runGolden(t, c, x, params, func(v map[string]*ag.Value) *ag.Value {
			return ag.ConvTranspose2d(v["x"], v["weight"], v["bias"], ag.ConvParams{Stride: [2]int{s, s}, Pad: ag.SymmetricPad(p, p), OutputPadding: [2]int{op, op}})
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
		k, s, p := c.Int("kernel"), c.Int("stride"), c.Int("pad")
		pp := ag.PoolParams{Kernel: [2]int{k, k}, Stride: [2]int{s, s}, Pad: ag.SymmetricPad(p, p), CeilMode: c.Bool("ceil"), CountIncludePad: c.Bool("count_include_pad")}
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
	case "softmax":
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value { return ag.Softmax(v["x"], c.Int("axis")) })
	case "log_softmax":
		runGolden(t, c, x, nil, func(v map[string]*ag.Value) *ag.Value { return ag.LogSoftmax(v["x"], c.Int("axis")) })
	case "cross_entropy", "cross_entropy_2d", "cross_entropy_rowweight":
		o := ag.CrossEntropyOptions{Ignore: true, IgnoreIndex: c.Int("ignore_index")}
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
	default:
		t.Fatalf("no Go side for PyTorch case %q", c.Op)
	}
}
