package autograd_test

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/tensor"
)

// wiringCheck compares the tape's gradients of L = Σ f(inputs)·r with
// central differences computed through the same float32 forward pass. It
// checks that each op hands the right gradient to the right input; the
// kernels' arithmetic itself is checked in float64 in internal/kernels.
// Step 1e-2 and |analytic − numeric| ≤ 2e-3 + 2e-2·|numeric|: float32
// rounding of L (~1e-6 relative) divided by the step stays well inside.
func wiringCheck(t *testing.T, name string, inputs []*tensor.Tensor, f func(xs []*ag.Value) *ag.Value) {
	t.Helper()
	rng := tensor.NewRNG(3)
	eval := func() (float64, *ag.Tape, []*ag.Value, *ag.Value) {
		tape := ag.NewTape()
		xs := make([]*ag.Value, len(inputs))
		for i, in := range inputs {
			xs[i] = tape.Variable(in)
		}
		return 0, tape, xs, f(xs)
	}
	_, tape, xs, out := eval()
	proj := rng.Randn(out.Data.Shape...)
	tape.BackwardWith(out, proj)
	loss := func() float64 {
		_, _, _, o := eval()
		s := 0.0
		for i, v := range o.Data.Data {
			s += float64(v) * float64(proj.Data[i])
		}
		return s
	}
	const h = 1e-2
	for k, in := range inputs {
		if xs[k].Grad == nil {
			t.Errorf("%s: input %d got no gradient", name, k)
			continue
		}
		for j := range in.Data {
			orig := in.Data[j]
			in.Data[j] = orig + h
			lp := loss()
			in.Data[j] = orig - h
			lm := loss()
			in.Data[j] = orig
			num := (lp - lm) / (2 * h)
			if got := float64(xs[k].Grad.Data[j]); math.Abs(got-num) > 2e-3+2e-2*math.Abs(num) {
				t.Errorf("%s: input %d element %d: gradient %g, finite difference %g", name, k, j, got, num)
				return
			}
		}
	}
}

func TestWiring(t *testing.T) {
	rng := tensor.NewRNG(5)
	r := rng.Randn
	wiringCheck(t, "mul", []*tensor.Tensor{r(3, 4), r(3, 4)}, func(x []*ag.Value) *ag.Value { return ag.Mul(x[0], x[1]) })
	wiringCheck(t, "sum", []*tensor.Tensor{r(3, 4)}, func(x []*ag.Value) *ag.Value { return ag.Sum(ag.Scale(x[0], 2)) })
	wiringCheck(t, "flatten", []*tensor.Tensor{r(2, 3, 2, 2)}, func(x []*ag.Value) *ag.Value {
		return ag.Mul(ag.Flatten(x[0], 1), ag.Flatten(x[0], 1))
	})
	wiringCheck(t, "matmul-batched", []*tensor.Tensor{r(2, 3, 4), r(2, 4, 5)}, func(x []*ag.Value) *ag.Value { return ag.MatMul(x[0], x[1]) })
	for _, tc := range []struct {
		a, b, c []int
		ta, tb  bool
	}{
		{[]int{3, 4}, []int{4, 5}, []int{5}, false, false},
		{[]int{4, 3}, []int{4, 5}, []int{3, 1}, true, false},
		{[]int{3, 4}, []int{5, 4}, []int{3, 5}, false, true},
		{[]int{4, 3}, []int{5, 4}, []int{1}, true, true},
	} {
		wiringCheck(t, fmt.Sprintf("gemm%v%v", tc.ta, tc.tb), []*tensor.Tensor{r(tc.a...), r(tc.b...), r(tc.c...)}, func(x []*ag.Value) *ag.Value {
			return ag.Gemm(x[0], x[1], x[2], 0.7, 1.3, tc.ta, tc.tb)
		})
	}
	for _, mode := range []ag.PadMode{ag.PadConstant, ag.PadEdge, ag.PadReflect} {
		wiringCheck(t, fmt.Sprintf("pad%d", mode), []*tensor.Tensor{r(1, 4, 3, 2)}, func(x []*ag.Value) *ag.Value {
			return ag.Pad(x[0], [][2]int{{0, 0}, {1, 2}, {2, 1}, {0, 1}}, mode, 0.5)
		})
	}
	wiringCheck(t, "crop", []*tensor.Tensor{r(2, 5, 6, 2)}, func(x []*ag.Value) *ag.Value { return ag.Crop(x[0], 1, 2, 3, 3) })
	wiringCheck(t, "concat-axis1", []*tensor.Tensor{r(2, 3, 2), r(2, 1, 2)}, func(x []*ag.Value) *ag.Value { return ag.Concat(1, x[0], x[1]) })
	awayFromKink := r(3, 3) // ReLU's kink must stay outside the ±1e-2 step
	for i, v := range awayFromKink.Data {
		awayFromKink.Data[i] = v + float32(math.Copysign(0.1, float64(v)))
	}
	wiringCheck(t, "shared-input", []*tensor.Tensor{awayFromKink}, func(x []*ag.Value) *ag.Value {
		return ag.Add(ag.ReLU(x[0]), ag.Scale(x[0], -0.5)) // x used twice: gradients accumulate
	})
	// Every layer op through the tape, including weights as inputs.
	wiringCheck(t, "conv+bn+pool", []*tensor.Tensor{r(2, 5, 5, 2), r(3, 3, 2, 3), r(3), r(3)}, func(x []*ag.Value) *ag.Value {
		y := ag.Conv2d(x[0], x[1], nil, ag.ConvParams{Stride: [2]int{2, 2}, Pad: ag.SymmetricPad(1, 1)})
		y = ag.BatchNorm(y, x[2], x[3], nil, nil, ag.BatchNormParams{Training: true, Momentum: 0.1, Eps: 1e-5})
		return ag.AvgPool2d(y, ag.PoolParams{Kernel: [2]int{2, 2}, Stride: [2]int{1, 1}})
	})
	wiringCheck(t, "convT", []*tensor.Tensor{r(1, 3, 3, 2), r(2, 2, 3, 2), r(3)}, func(x []*ag.Value) *ag.Value {
		return ag.ConvTranspose2d(x[0], x[1], x[2], ag.ConvParams{Stride: [2]int{2, 2}})
	})
}

func TestNoGradModeRecordsNothing(t *testing.T) {
	rng := tensor.NewRNG(1)
	w := ag.Param(rng.Randn(3, 3, 2, 4), "w")
	x := ag.Constant(rng.Randn(1, 5, 5, 2))
	y := ag.ReLU(ag.Conv2d(x, w, nil, ag.ConvParams{Pad: ag.SymmetricPad(1, 1)}))
	if y.Grad != nil || w.Grad != nil {
		t.Fatal("gradient without backward")
	}
	// The same ops on a tape record one node each.
	tape := ag.NewTape()
	xt := tape.Constant(x.Data)
	yt := ag.ReLU(ag.Conv2d(xt, w, nil, ag.ConvParams{Pad: ag.SymmetricPad(1, 1)}))
	if tape.Len() != 2 {
		t.Fatalf("tape recorded %d ops, want 2", tape.Len())
	}
	for i := range y.Data.Data {
		if y.Data.Data[i] != yt.Data.Data[i] {
			t.Fatal("no-grad and recorded forward passes differ")
		}
	}
	// Frozen parameters and constant inputs: nothing needs a gradient, so
	// nothing is recorded.
	w.SetRequiresGrad(false)
	tape2 := ag.NewTape()
	ag.ReLU(ag.Conv2d(tape2.Constant(x.Data), w, nil, ag.ConvParams{}))
	if tape2.Len() != 0 {
		t.Fatalf("frozen model recorded %d ops", tape2.Len())
	}
}

func TestInputGradientAndReset(t *testing.T) {
	tape := ag.NewTape()
	x := tape.Variable(tensor.MustFromData([]float32{-1, 2, 3}, 3))
	loss := ag.Sum(ag.Mul(ag.ReLU(x), ag.ReLU(x))) // Σ relu(x)²
	tape.Backward(loss)
	want := []float32{0, 4, 6}
	for i, g := range x.Grad.Data {
		if g != want[i] {
			t.Fatalf("dL/dx = %v, want %v", x.Grad.Data, want)
		}
	}
	// Leaf gradients survive Reset; buffers are recycled for the next step.
	tape.Reset()
	if x.Grad.Data[1] != 4 || tape.Len() != 0 {
		t.Fatal("Reset clobbered a leaf gradient or kept nodes")
	}
	// A 4 MB activation: after the first step its buffer is recycled, so a
	// step allocates only small bookkeeping (closures, the node).
	big := tensor.New(1 << 20)
	step := func() {
		ag.ReLU(tape.Constant(big))
		tape.Reset()
	}
	step()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := 0; i < 10; i++ {
		step()
	}
	runtime.ReadMemStats(&m1)
	if per := (m1.TotalAlloc - m0.TotalAlloc) / 10; per > 4096 {
		t.Errorf("a recycled 4 MB op allocates %d bytes a step", per)
	}
}

func TestBackwardNeedsScalar(t *testing.T) {
	tape := ag.NewTape()
	y := ag.ReLU(tape.Variable(tensor.New(2, 2)))
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "scalar") {
			t.Errorf("Backward on a [2 2] value: %v", r)
		}
	}()
	tape.Backward(y)
}

func TestShapeErrorsNameBothShapes(t *testing.T) {
	for name, f := range map[string]func(){
		"Add": func() { ag.Add(ag.Constant(tensor.New(2, 3)), ag.Constant(tensor.New(3, 2))) },
		"Conv2d": func() {
			ag.Conv2d(ag.Constant(tensor.New(1, 4, 4, 3)), ag.Constant(tensor.New(3, 3, 2, 8)), nil, ag.ConvParams{})
		},
		"Linear": func() { ag.Linear(ag.Constant(tensor.New(2, 5)), ag.Constant(tensor.New(3, 4)), nil) },
		"Concat": func() { ag.Concat(3, ag.Constant(tensor.New(1, 2, 2, 1)), ag.Constant(tensor.New(1, 3, 2, 1))) },
	} {
		func() {
			defer func() {
				msg := fmt.Sprint(recover())
				if !strings.Contains(msg, name) || strings.Count(msg, "[") < 2 {
					t.Errorf("%s: panic %q does not name the op and both shapes", name, msg)
				}
			}()
			f()
		}()
	}
}

func TestCrossEntropyRejectsBadTargets(t *testing.T) {
	x := ag.Constant(tensor.New(2, 3))
	if _, err := ag.CrossEntropy(x, []int32{0, 3}, ag.CrossEntropyOptions{}); err == nil || !strings.Contains(err.Error(), "target 3") {
		t.Errorf("target out of range: %v", err)
	}
	if _, err := ag.CrossEntropy(x, []int32{0}, ag.CrossEntropyOptions{}); err == nil {
		t.Error("too few targets accepted")
	}
}

// TestCrossEntropyZeroValueCountsEveryClass: the zero options count every
// target, class 0 included (its IgnoreIndex of 0 used to drop class 0:
// a NaN loss when every target was 0); Ignore drops the targets equal to
// IgnoreIndex. Logits [1 2 3] per row: −log softmax = 2.407606 for class 0,
// 0.407606 for class 2.
func TestCrossEntropyZeroValueCountsEveryClass(t *testing.T) {
	x := ag.Constant(&tensor.Tensor{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 1, 2, 3}})
	for _, tc := range []struct {
		targets []int32
		o       ag.CrossEntropyOptions
		want    float64
	}{
		{[]int32{0, 0}, ag.CrossEntropyOptions{}, 2.407606},
		{[]int32{0, 2}, ag.CrossEntropyOptions{}, (2.407606 + 0.407606) / 2},
		{[]int32{0, 2}, ag.CrossEntropyOptions{Ignore: true, IgnoreIndex: 0}, 0.407606},
		{[]int32{-100, 2}, ag.CrossEntropyOptions{Ignore: true, IgnoreIndex: -100}, 0.407606},
	} {
		l, err := ag.CrossEntropy(x, tc.targets, tc.o)
		if err != nil || math.Abs(float64(l.Data.Data[0])-tc.want) > 1e-6 {
			t.Errorf("targets %v, %+v: %v, %v; want %v", tc.targets, tc.o, l, err, tc.want)
		}
	}
}

// TestCrossEntropyOfNothing: a mean over no weight — every target
// ignored, or every row weight 0 — is 0 with a zero gradient, where
// PyTorch's 0/0 is NaN and would stop a training run on a batch of
// unlabelled pixels.
func TestCrossEntropyOfNothing(t *testing.T) {
	for name, o := range map[string]ag.CrossEntropyOptions{
		"all ignored":   {Ignore: true, IgnoreIndex: -100},
		"all weights 0": {RowWeight: []float32{0, 0}},
	} {
		tape := ag.NewTape()
		x := tape.Variable(&tensor.Tensor{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 1, 2, 3}})
		targets := []int32{-100, -100}
		if o.RowWeight != nil {
			targets = []int32{0, 2}
		}
		l, err := ag.CrossEntropy(x, targets, o)
		if err != nil {
			t.Fatal(err)
		}
		tape.Backward(l)
		if l.Data.Data[0] != 0 || slices.ContainsFunc(x.Grad.Data, func(g float32) bool { return g != 0 }) {
			t.Errorf("%s: loss %v, gradient %v; want 0 and zeros", name, l.Data.Data, x.Grad.Data)
		}
	}
}

func TestDropout(t *testing.T) {
	rng := tensor.NewRNG(9)
	tape := ag.NewTape()
	x := tape.Variable(tensor.Full(1, 10000))
	y := ag.Dropout(x, 0.3, true, rng)
	zeros, sum := 0, 0.0
	for _, v := range y.Data.Data {
		if v == 0 {
			zeros++
		}
		sum += float64(v)
	}
	// Binomial(10000, 0.3): sd ≈ 46; allow 5 sd.
	if zeros < 3000-230 || zeros > 3000+230 {
		t.Errorf("%d of 10000 dropped, want ≈3000", zeros)
	}
	if math.Abs(sum/10000-1) > 0.05 {
		t.Errorf("mean %g after inverted dropout, want ≈1", sum/10000)
	}
	tape.Backward(ag.Sum(y))
	for i, g := range x.Grad.Data { // the same mask scales the gradient
		if g != y.Data.Data[i] {
			t.Fatalf("gradient %g where output %g", g, y.Data.Data[i])
		}
	}
	if ag.Dropout(x, 0.3, false, rng) != x {
		t.Error("evaluation-mode dropout is not the identity")
	}
	// p = 1 drops everything, as PyTorch's nn.Dropout(1) does (it was
	// refused as a probability outside [0, 1)).
	for _, v := range ag.Dropout(x, 1, true, rng).Data.Data {
		if v != 0 {
			t.Fatalf("dropout with p = 1 kept %g", v)
		}
	}
}

// The pools take PyTorch's padding rule, each side of each dimension at
// most half the effective kernel size dilation·(kernel−1)+1: at exactly
// half they pool, one more is refused naming the dimension and the bound
// (kernel 3 with pad 2 pooled, where PyTorch refuses it; only a pad as wide
// as the window was refused). PyTorch's numerics at half the window are in
// the goldens (ops.json: kernel 3, pad 1; ops_extra.json: kernel 3 by 2,
// pad 1 in width).
func TestPoolPaddingAtMostHalfTheWindow(t *testing.T) {
	tape := ag.NewNoGradTape()
	x := tape.Constant(tensor.Full(1, 1, 6, 7, 1))
	pools := map[string]func(*ag.Value, ag.PoolParams) *ag.Value{"MaxPool2d": ag.MaxPool2d, "AvgPool2d": ag.AvgPool2d}
	cases := []struct {
		name     string
		max      bool // max pooling only (dilation)
		kernel   [2]int
		dilation [2]int
		pad      [4]int // top, left, bottom, right
		refused  string // the refusal's text; "" where it pools
	}{
		{"kernel 2, pad 1", false, [2]int{2, 2}, [2]int{}, [4]int{1, 1, 1, 1}, ""},
		{"kernel 2, pad 2", false, [2]int{2, 2}, [2]int{}, [4]int{2, 2, 2, 2}, "height padding 2"},
		{"kernel 3, pad 1", false, [2]int{3, 3}, [2]int{}, [4]int{1, 1, 1, 1}, ""},
		{"kernel 3, pad 2", false, [2]int{3, 3}, [2]int{}, [4]int{2, 2, 2, 2}, "height padding 2 (pads [2 2 2 2]: top, left, bottom, right) is past half the effective kernel size 3 (kernel 3, dilation 1): pad should be at most 1"},
		{"kernel 3 by 4, pads 1 and 2", false, [2]int{3, 4}, [2]int{}, [4]int{1, 2, 1, 2}, ""},
		{"kernel 3 by 4, width pad 3", false, [2]int{3, 4}, [2]int{}, [4]int{1, 3, 1, 0}, "width padding 3 (pads [1 3 1 0]: top, left, bottom, right) is past half the effective kernel size 4 (kernel 4, dilation 1): pad should be at most 2"},
		{"kernel 3, bottom pad 2", false, [2]int{3, 3}, [2]int{}, [4]int{0, 0, 2, 0}, "height padding 2"},
		{"kernel 3, right pad 2", false, [2]int{3, 3}, [2]int{}, [4]int{0, 0, 0, 2}, "width padding 2"},
		{"kernel 3, dilation 2, pad 2", true, [2]int{3, 3}, [2]int{2, 2}, [4]int{2, 2, 2, 2}, ""},
		{"kernel 3, dilation 2, pad 3", true, [2]int{3, 3}, [2]int{2, 2}, [4]int{3, 0, 3, 0}, "height padding 3 (pads [3 0 3 0]: top, left, bottom, right) is past half the effective kernel size 5 (kernel 3, dilation 2): pad should be at most 2"},
		{"kernel 2, dilation 2, width pad 2", true, [2]int{2, 2}, [2]int{1, 2}, [4]int{0, 2, 0, 2}, "width padding 2 (pads [0 2 0 2]: top, left, bottom, right) is past half the effective kernel size 3 (kernel 2, dilation 2): pad should be at most 1"},
	}
	for _, c := range cases {
		for name, pool := range pools {
			if c.max && name != "MaxPool2d" {
				continue
			}
			p := ag.PoolParams{Kernel: c.kernel, Stride: [2]int{1, 1}, Dilation: c.dilation, Pad: c.pad}
			func() {
				defer func() {
					r := recover()
					switch {
					case c.refused == "" && r != nil:
						t.Errorf("%s, %s: %v; want it to pool", name, c.name, r)
					case c.refused != "" && (r == nil || !strings.Contains(fmt.Sprint(r), name+": "+c.refused)):
						t.Errorf("%s, %s: %v; want a refusal saying %q", name, c.name, r, c.refused)
					}
				}()
				y := pool(x, p)
				if name == "MaxPool2d" { // padding never wins: every window holds a real 1
					for _, v := range y.Data.Data {
						if v != 1 {
							t.Fatalf("%s, %s: %v; want ones", name, c.name, v)
						}
					}
				}
			}()
		}
	}
}

// A transposed convolution's output padding may reach max(stride,
// dilation) − 1 in each dimension, as PyTorch's: one more is refused,
// naming the dimension, the stride and the dilation (PyTorch's values for
// the ones it takes are in TestTorchGoldenConvTransposeOutputPadding).
func TestConvTransposeOutputPaddingBound(t *testing.T) {
	x := ag.Constant(tensor.New(1, 3, 3, 2))
	w := ag.Constant(tensor.New(2, 2, 3, 2))
	for _, c := range []struct {
		stride, dilation, op [2]int
		want                 string // the refusal; "" for the output's shape
	}{
		{[2]int{1, 2}, [2]int{2, 1}, [2]int{1, 1}, ""},
		{[2]int{1, 2}, [2]int{2, 1}, [2]int{2, 1}, "height output padding 2 (output padding [2 1]) must be at least 0 and smaller than the larger of the stride 1 and the dilation 2"},
		{[2]int{1, 2}, [2]int{2, 1}, [2]int{1, 2}, "width output padding 2 (output padding [1 2]) must be at least 0 and smaller than the larger of the stride 2 and the dilation 1"},
		{[2]int{1, 1}, [2]int{1, 1}, [2]int{0, -1}, "width output padding -1"},
	} {
		func() {
			defer func() {
				r := recover()
				if c.want == "" && r != nil || c.want != "" && !strings.Contains(fmt.Sprint(r), "ConvTranspose2d: "+c.want) {
					t.Errorf("stride %v, dilation %v, output padding %v: %v; want %q", c.stride, c.dilation, c.op, r, c.want)
				}
			}()
			y := ag.ConvTranspose2d(x, w, nil, ag.ConvParams{Stride: c.stride, Dilation: c.dilation, OutputPadding: c.op})
			// (3−1)·s + d·(2−1) + op + 1 each way
			if want := []int{1, 2 + 2 + 1 + 1, 4 + 1 + 1 + 1, 3}; !slices.Equal(y.Data.Shape, want) {
				t.Errorf("output padding %v: shape %v, want %v", c.op, y.Data.Shape, want)
			}
		}()
	}
}

func TestNoGradTapeRecyclesAndRecordsNothing(t *testing.T) {
	tape := ag.NewNoGradTape()
	w := ag.Param(tensor.Full(1, 3, 3, 2, 2), "w")
	x := tape.Constant(tensor.Full(1, 1, 4, 4, 2))
	y := ag.Conv2d(x, w, nil, ag.ConvParams{Pad: ag.SymmetricPad(1, 1)})
	if tape.Len() != 0 || y.Tensor().At(0, 1, 1, 0) != 18 {
		t.Fatalf("no-grad tape recorded %d ops; center output %g (want 18)", tape.Len(), y.Data.At(0, 1, 1, 0))
	}
	first := &y.Data.Data[0]
	tape.Reset()
	y2 := ag.Conv2d(x, w, nil, ag.ConvParams{Pad: ag.SymmetricPad(1, 1)})
	if &y2.Tensor().Data[0] != first {
		t.Error("the output buffer was not recycled")
	}
}

// TestNoGradTapeSharesThePool checks that an inference tape made from a
// training tape reuses the buffers the training tape freed, and gives its
// own back to it.
func TestNoGradTapeSharesThePool(t *testing.T) {
	train := ag.NewTape()
	w := ag.Param(tensor.Full(1, 3, 3, 2, 2), "w")
	conv := func(tp *ag.Tape) *ag.Value {
		return ag.Conv2d(tp.Constant(tensor.Full(1, 1, 4, 4, 2)), w, nil, ag.ConvParams{Pad: ag.SymmetricPad(1, 1)})
	}
	first := &conv(train).Tensor().Data[0]
	train.Reset()
	eval := train.NoGradTape()
	y := conv(eval)
	if &y.Tensor().Data[0] != first {
		t.Error("the inference tape did not reuse the training tape's buffer")
	}
	if eval.Len() != 0 {
		t.Errorf("the inference tape recorded %d ops", eval.Len())
	}
	eval.Reset()
	if &conv(train).Tensor().Data[0] != first {
		t.Error("the training tape did not get the buffer back")
	}
}

// Intermediate gradients of a chain of residual additions, kept with
// RetainGrad: y = x + f(x) twice with f = 2·(·), so dL/dh = 3 at the middle
// and 9 at the input for L = Σ out.
func TestRetainGradThroughResidualAdds(t *testing.T) {
	tape := ag.NewTape()
	x := tape.Variable(tensor.Full(1, 4))
	h := ag.Add(x, ag.Scale(x, 2))
	h.RetainGrad()
	out := ag.Add(h, ag.Scale(h, 2))
	out.RetainGrad()
	tape.Backward(ag.Sum(out))
	if out.Grad.Data[0] != 1 || h.Grad.Data[0] != 3 || x.Grad.Data[0] != 9 {
		t.Errorf("gradients out %g, h %g, x %g; want 1, 3, 9", out.Grad.Data[0], h.Grad.Data[0], x.Grad.Data[0])
	}
}

func TestAddRoutedSendsGradientOnlyWhereTold(t *testing.T) {
	for _, tc := range []struct{ toA, toB bool }{{true, false}, {false, true}, {true, true}} {
		tape := ag.NewTape()
		a := tape.Variable(tensor.Full(1, 3))
		b := tape.Variable(tensor.Full(2, 3))
		y := ag.AddRouted(a, b, tc.toA, tc.toB)
		if y.Data.Data[0] != 3 {
			t.Fatalf("forward %g, want 3", y.Data.Data[0])
		}
		tape.Backward(ag.Sum(y))
		if (a.Grad != nil) != tc.toA || (b.Grad != nil) != tc.toB {
			t.Errorf("route %+v: gradients reached a: %v, b: %v", tc, a.Grad != nil, b.Grad != nil)
		}
	}
}

// separate makes operations on tape run one by one, unfused: a layer hook
// must see each operation.
func separate(tape *ag.Tape) *ag.Tape {
	tape.SetHook(func(any, *ag.Value, *ag.Value) {})
	return tape
}

// TestBatchNormReLUEqualsItsParts runs BatchNorm → Add → ReLU fused (one
// recorded operation) and separately (a tape with a hook) on the same
// inputs, in training and evaluation mode, with and without a skip, on 32
// channels (the AVX-512 kernels, where present) and on 3 (the generic
// loops), and compares the outputs, every input's gradient and the updated
// running statistics. Both compute the same float operations in the same
// order; the bound 1e-6 of the tensor's scale only leaves room for a
// compiler that contracts a·b+c into an FMA in one and not the other.
func TestBatchNormReLUEqualsItsParts(t *testing.T) {
	for _, c := range []int{32, 3} {
		for _, train := range []bool{true, false} {
			for _, withSkip := range []bool{false, true} {
				name := fmt.Sprintf("c=%d train=%v skip=%v", c, train, withSkip)
				rng := tensor.NewRNG(uint64(c))
				x, gamma, beta := rng.Randn(2, 5, 3, c), rng.Randn(c), rng.Randn(c)
				skip, proj := rng.Randn(2, 5, 3, c), rng.Randn(2, 5, 3, c)
				rv := rng.Randn(c)
				for i, v := range rv.Data {
					rv.Data[i] = 0.5 + v*v
				}
				run := func(fused bool) (out []float32, grads [][]float32, stats [2][]float32) {
					tape := ag.NewTape()
					if !fused {
						separate(tape)
					}
					xv, gv, bv := tape.Variable(x.Clone()), tape.Variable(gamma.Clone()), tape.Variable(beta.Clone())
					var sv *ag.Value
					if withSkip {
						sv = tape.Variable(skip.Clone())
					}
					rm, rvar := tensor.New(c), rv.Clone()
					p := ag.BatchNormParams{Training: train, Momentum: 0.1, Eps: 1e-5}
					y := ag.BatchNorm(xv, gv, bv, rm, rvar, p)
					if sv != nil {
						y = ag.Add(y, sv)
					}
					y = ag.ReLU(y)
					want := 1 // one fused operation
					if !fused {
						want = 2 // BatchNorm, ReLU
						if sv != nil {
							want++ // Add
						}
					}
					if tape.Len() != want {
						t.Fatalf("%s: %d operations recorded, want %d (fused: %v)", name, tape.Len(), want, fused)
					}
					tape.BackwardWith(y, proj)
					for _, v := range []*ag.Value{xv, gv, bv, sv} {
						if v != nil {
							grads = append(grads, v.Grad.Data)
						}
					}
					return y.Data.Data, grads, [2][]float32{rm.Data, rvar.Data}
				}
				fy, fg, fs := run(true)
				uy, ug, us := run(false)
				same := func(what string, got, want []float32) {
					scale := 0.0
					for _, v := range want {
						scale = math.Max(scale, math.Abs(float64(v)))
					}
					for i := range want {
						if math.Abs(float64(got[i]-want[i])) > 1e-6*scale {
							t.Fatalf("%s: %s element %d: fused %g, separate %g", name, what, i, got[i], want[i])
						}
					}
				}
				same("output", fy, uy)
				zeros := 0
				for _, v := range fy {
					if v == 0 {
						zeros++
					}
				}
				if zeros == 0 || zeros == len(fy) {
					t.Fatalf("%s: %d of %d outputs are zero: the ReLU's mask is not exercised", name, zeros, len(fy))
				}
				for i := range ug {
					same(fmt.Sprintf("gradient of input %d", i), fg[i], ug[i])
				}
				same("running mean", fs[0], us[0])
				same("running variance", fs[1], us[1])
			}
		}
	}
}

// TestConvBatchNormEqualsItsParts runs Conv2d → BatchNorm → Add → ReLU on
// a no-gradient tape, fused (one output buffer: the batch norm folds into a
// scale and shift of the convolution's epilogue) and separately (a tape
// with a hook), with and without a conv bias, a skip and the ReLU, to 32
// output channels (the assembly kernels, where present) and to 3 (the
// generic loops). The fused path applies the folded scale and shift in
// float32 to the convolution's sums: equal within 1e-5 of the output's
// scale.
func TestConvBatchNormEqualsItsParts(t *testing.T) {
	for _, oc := range []int{32, 3} {
		for _, bias := range []bool{false, true} {
			for _, withSkip := range []bool{false, true} {
				for _, relu := range []bool{false, true} {
					name := fmt.Sprintf("oc=%d bias=%v skip=%v relu=%v", oc, bias, withSkip, relu)
					rng := tensor.NewRNG(uint64(oc))
					x, w := rng.Randn(2, 7, 6, 5), rng.Randn(3, 3, 5, oc)
					gamma, beta, rm, rv := rng.Randn(oc), rng.Randn(oc), rng.Randn(oc), rng.Randn(oc)
					for i, v := range rv.Data {
						rv.Data[i] = 0.5 + v*v
					}
					skip := rng.Randn(2, 4, 3, oc)
					var b *tensor.Tensor
					if bias {
						b = rng.Randn(oc)
					}
					cp := ag.ConvParams{Stride: [2]int{2, 2}, Pad: ag.SymmetricPad(1, 1)}
					bp := ag.BatchNormParams{Eps: 1e-5}
					run := func(fused bool) []float32 {
						tape := ag.NewNoGradTape()
						if !fused {
							separate(tape)
						}
						val := func(t *tensor.Tensor) *ag.Value {
							if t == nil {
								return nil
							}
							return tape.Constant(t)
						}
						var sv *ag.Value
						if withSkip {
							sv = val(skip)
						}
						y := ag.BatchNorm(ag.Conv2d(val(x), val(w), val(b), cp), val(gamma), val(beta), rm, rv, bp)
						if sv != nil {
							y = ag.Add(y, sv)
						}
						if relu {
							y = ag.ReLU(y)
						}
						out := y.Tensor().Data
						if n := ag.OwnedBuffers(tape); fused && n != 1 {
							t.Fatalf("%s: the fused path allocated %d buffers, want 1 (the output)", name, n)
						}
						return out
					}
					got, want := run(true), run(false)
					scale := 0.0
					for _, v := range want {
						scale = math.Max(scale, math.Abs(float64(v)))
					}
					for i := range want {
						if math.Abs(float64(got[i]-want[i])) > 1e-5*scale {
							t.Fatalf("%s: element %d: fused %g, separate %g", name, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// TestDeferredValueReadTwice uses a batch norm + skip both through a ReLU
// (which fuses with it) and directly (so it is computed a second time, as
// in a ReLU-only pre-activation block whose output is both the next
// block's pre-activation and its shortcut), fused and separately: the
// outputs, the gradients and the running statistics — updated once per
// application of the batch norm, not once per use — agree within the bound
// of TestBatchNormReLUEqualsItsParts.
func TestDeferredValueReadTwice(t *testing.T) {
	rng := tensor.NewRNG(7)
	c := 32
	x, gamma, beta, skip := rng.Randn(2, 4, 3, c), rng.Randn(c), rng.Randn(c), rng.Randn(2, 4, 3, c)
	run := func(fused bool) (grads [][]float32, stats [2][]float32, loss float32) {
		tape := ag.NewTape()
		if !fused {
			separate(tape)
		}
		xv, gv, bv, sv := tape.Variable(x.Clone()), tape.Variable(gamma.Clone()), tape.Variable(beta.Clone()), tape.Variable(skip.Clone())
		rm, rv := tensor.New(c), tensor.Full(1, c)
		y := ag.Add(ag.BatchNorm(xv, gv, bv, rm, rv, ag.BatchNormParams{Training: true, Momentum: 0.1, Eps: 1e-5}), sv)
		l := ag.Add(ag.Sum(ag.ReLU(y)), ag.Sum(ag.Scale(y, 0.5)))
		tape.Backward(l)
		for _, v := range []*ag.Value{xv, gv, bv, sv} {
			grads = append(grads, v.Grad.Data)
		}
		return grads, [2][]float32{rm.Data, rv.Data}, l.Data.Data[0]
	}
	fg, fs, fl := run(true)
	ug, us, ul := run(false)
	if math.Abs(float64(fl-ul)) > 1e-6*math.Abs(float64(ul)) {
		t.Fatalf("loss: fused %g, separate %g", fl, ul)
	}
	for i := range ug {
		for j := range ug[i] {
			if math.Abs(float64(fg[i][j]-ug[i][j])) > 1e-5 {
				t.Fatalf("gradient of input %d, element %d: fused %g, separate %g", i, j, fg[i][j], ug[i][j])
			}
		}
	}
	for i := range us {
		for j := range us[i] {
			if fs[i][j] != us[i][j] {
				t.Fatalf("running statistic %d, channel %d: fused %g, separate %g (updated twice?)", i, j, fs[i][j], us[i][j])
			}
		}
	}
}

// TestGradReady checks that the backward pass reports each parameter once,
// as soon as its gradient is final — after the last operation that used
// it, before the backward steps of earlier operations — and with that
// final gradient, for a weight used twice and a bias used once.
func TestGradReady(t *testing.T) {
	tape := ag.NewTape()
	w1 := ag.Param(tensor.Full(0.5, 2, 2), "w1")
	w2 := ag.Param(tensor.Full(2, 2, 2), "w2")
	b := ag.Param(tensor.Full(1, 2), "b")
	frozen := ag.Param(tensor.Full(1, 2, 2), "frozen")
	frozen.SetRequiresGrad(false)
	var order []string
	final := map[string][]float32{}
	tape.SetGradReady(func(p *ag.Value) {
		order = append(order, p.Name)
		final[p.Name] = append([]float32(nil), p.Grad.Data...)
	})
	x := tape.Constant(tensor.Full(1, 3, 2))
	h := ag.ReLU(ag.MatMul(ag.MatMul(x, w1), frozen)) // w1's only use: the first operation
	y := ag.Add(ag.MatMul(h, w2), ag.MatMul(h, w2))   // w2 used twice
	loss := ag.Sum(ag.Gemm(y, w2, b, 1, 1, false, false))
	tape.Backward(loss)
	if want := []string{"b", "w2", "w1"}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("reported %v, want %v (each once, as soon as final)", order, want)
	}
	for _, p := range []*ag.Value{w1, w2, b} {
		if fmt.Sprint(final[p.Name]) != fmt.Sprint(p.Grad.Data) {
			t.Errorf("%s reported with gradient %v, final %v", p.Name, final[p.Name], p.Grad.Data)
		}
	}
}

// TestFlattenEmpty: Flatten of an empty tensor keeps the sizes of the axes
// it joins, as ONNX's Flatten does ([0,3] gave [0,0], the element count
// divided by the outer size).
func TestFlattenEmpty(t *testing.T) {
	tape := ag.NewNoGradTape()
	for _, c := range []struct {
		shape []int
		axis  int
		want  []int
	}{
		{[]int{0, 3}, 1, []int{0, 3}}, {[]int{2, 0, 3}, 2, []int{0, 3}}, {[]int{2, 0, 3}, 1, []int{2, 0}},
		{[]int{0, 3}, 0, []int{1, 0}}, {[]int{0, 3}, 2, []int{0, 1}}, {[]int{2, 3, 4}, -1, []int{6, 4}},
	} {
		if got := ag.Flatten(tape.Constant(tensor.New(c.shape...)), c.axis).Data.Shape; !slices.Equal(got, c.want) {
			t.Errorf("Flatten(%v, %d): %v, want %v", c.shape, c.axis, got, c.want)
		}
	}
}
