package quant

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// block is a small residual network: conv-BN-ReLU, conv-BN plus the
// identity, ReLU, global pooling, linear.
type block struct {
	C1, C2 *nn.Conv2d
	B1, B2 *nn.BatchNorm
	FC     *nn.Linear
}

func newBlock(rng *tensor.RNG, c int) *block {
	b := &block{C1: nn.NewConv2d(rng, 3, c, 3, nn.ConvOptions{Padding: 1}), C2: nn.NewConv2d(rng, c, c, 3, nn.ConvOptions{Padding: 1}),
		B1: nn.NewBatchNorm(c), B2: nn.NewBatchNorm(c), FC: nn.NewLinear(rng, c, 5, true)}
	for _, bn := range []*nn.BatchNorm{b.B1, b.B2} {
		for i := range c {
			bn.RunningMean.Data[i] = float32(rng.Normal()) * 0.1
			bn.RunningVar.Data[i] = 0.5 + float32(rng.Float64())
			bn.Weight.Data.Data[i] = 0.5 + float32(rng.Float64())
			bn.Bias.Data.Data[i] = float32(rng.Normal()) * 0.1
		}
	}
	nn.Name(b)
	return b
}

func (b *block) Forward(x *ag.Value) *ag.Value {
	y := ag.ReLU(b.B1.Forward(b.C1.Forward(x)))
	z := ag.ReLU(ag.Add(b.B2.Forward(b.C2.Forward(y)), y))
	return b.FC.Forward(ag.GlobalAvgPool(z))
}

func randInput(rng *tensor.RNG, shape ...int) *tensor.Tensor {
	x := tensor.New(shape...)
	for i := range x.Data {
		x.Data[i] = float32(rng.Normal())
	}
	return x
}

func floatForward(net nn.Layer, x *tensor.Tensor) *tensor.Tensor {
	tape := ag.NewNoGradTape()
	return net.Forward(tape.Constant(x)).Tensor().Clone()
}

// TestGraphFuses checks the int8 graph of a residual block: the batch
// norms folded away, the second convolution absorbing the residual
// addition and its ReLU, the first its ReLU.
func TestGraphFuses(t *testing.T) {
	net := newBlock(tensor.NewRNG(1), 8)
	if _, err := nn.FoldBatchNorm(net, []int{1, 6, 6, 3}); err != nil {
		t.Fatal(err)
	}
	g, err := traceGraph(net, []int{1, 6, 6, 3})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []kind
	for _, n := range g.nodes {
		kinds = append(kinds, n.kind)
	}
	want := []kind{kConv, kConv, kGAP, kConv}
	if len(kinds) != len(want) {
		t.Fatalf("nodes %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("nodes %v, want %v", kinds, want)
		}
	}
	if !g.nodes[0].relu || g.nodes[0].res >= 0 || !g.nodes[1].relu || g.nodes[1].res != g.nodes[0].out || g.nodes[3].relu {
		t.Errorf("fusion: %+v %+v", g.nodes[0], g.nodes[1])
	}
	if g.nodes[0].name != "c1" || g.nodes[3].name != "fc" || !g.nodes[3].linear {
		t.Errorf("names %q %q", g.nodes[0].name, g.nodes[3].name)
	}
}

// TestQuantizedLayerBound checks the first layer against the float64
// evaluation of what it represents: dequantized input times dequantized
// weights plus the bias, ReLU. The int32 sum is exact, and the only
// errors are the bias's quantization (half a unit of sx·sw[o], ≤ half an
// output step as sx·sw[o] ≤ sy here) and the final rounding (half an
// output step) plus float32 epilogue rounding (< 10⁻³ step): so every
// output is within one output step of the float64 value.
func TestQuantizedLayerBound(t *testing.T) {
	rng := tensor.NewRNG(2)
	net := newBlock(rng, 8)
	in := []int{1, 6, 6, 3}
	x := randInput(rng, 4, 6, 6, 3)
	calls := 0
	m, err := Quantize(context.Background(), net, in, func() (*tensor.Tensor, error) {
		calls++
		if calls > 1 {
			return nil, nil
		}
		return x, nil
	}, Options{Method: MinMax})
	if err != nil {
		t.Fatal(err)
	}
	nd := m.g.nodes[0]
	l := m.layers[nd.name]
	qx, qy := m.qp[0], m.qp[nd.out]
	xq := Quantize8(x.Data, qx, nil)
	st := m.conv[0]
	s := convShape(nd, x.Shape)
	y := make([]uint8, s.N*s.OH()*s.OW()*s.OC)
	ep := &kernels.Int8Epilogue{Bias: st.bias, Mult: st.mult, Zero: int32(qy.Zero), ReLU: nd.relu}
	kernels.Int8Conv(s, xq, uint8(qx.Zero), st.w, ep, y, nil)
	if l.Bias == nil || qx.Scale*float64(l.Scale[0]) > qy.Scale {
		t.Fatalf("test premise: bias %v, sx·sw %v, sy %v", l.Bias != nil, qx.Scale*float64(l.Scale[0]), qy.Scale)
	}
	for n := range s.N {
		for oy := range s.OH() {
			for ox := range s.OW() {
				for o := range s.OC {
					var sum float64
					for ky := range 3 {
						for kx := range 3 {
							iy, ix := oy-1+ky, ox-1+kx
							if iy < 0 || iy >= 6 || ix < 0 || ix >= 6 {
								continue
							}
							for c := range 3 {
								xv := qx.Scale * float64(int(xq[((n*6+iy)*6+ix)*3+c])-qx.Zero)
								sum += xv * float64(l.Scale[o]) * float64(l.W[((ky*3+kx)*3+c)*s.OC+o])
							}
						}
					}
					v := max(sum+float64(nd.bias[o]), 0)
					got := qy.Scale * float64(int(y[((n*6+oy)*6+ox)*s.OC+o])-qy.Zero)
					if d := math.Abs(got - v); d > qy.Scale*(1+1e-3) && v < qy.Scale*float64(255-qy.Zero) {
						t.Fatalf("output (%d,%d,%d,%d) = %v, float64 %v: off by %.2f steps", n, oy, ox, o, got, v, d/qy.Scale)
					}
				}
			}
		}
	}
}

// TestQuantizedResNet20 quantizes a ResNet-20 (random weights, batch norm
// statistics made non-trivial) with the min/max and percentile methods,
// and a ResNet-18 (ImageNet stem: max pooling, projection shortcuts) at
// 16×16 by min/max,
// (entropy clips by design, which a random network's logits do not
// survive: TestKLThreshold tests it) and compares its logits
// with the float network's on held-out inputs. With 21 int8 layers the
// error is not bounded tightly by the scales; the check is that it is
// small relative to the logits' spread (10% of their range) — a bug in
// fusion, scales or zero points gives errors of the order of the range.
func TestQuantizedResNet20(t *testing.T) {
	for _, tc := range []struct {
		model  string
		method Method
	}{{"resnet20", MinMax}, {"resnet20", Percentile}, {"resnet18", MinMax}} {
		cfg, err := models.Preset(tc.model)
		if err != nil {
			t.Fatal(err)
		}
		method := tc.method
		if tc.model == "resnet18" { // a narrow one: the structure is what is tested
			cfg, _ = cfg.Clone()
			a := cfg.Arch.(*models.ResNet)
			a.Widths, a.StemWidth = []int{8, 16, 32, 64}, 8
		}
		rng := tensor.NewRNG(3)
		net, err := models.Build(cfg, rng)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range nn.Layers(net) {
			if bn, ok := l.Layer.(*nn.BatchNorm); ok {
				for i := range bn.RunningVar.Data {
					bn.RunningMean.Data[i] = float32(rng.Normal()) * 0.05
					bn.RunningVar.Data[i] = 0.5 + float32(rng.Float64())
				}
			}
		}
		in := cfg.InputShape(1, 16)
		b := 0
		m, err := Quantize(context.Background(), net, in, func() (*tensor.Tensor, error) {
			if b++; b > 2 {
				return nil, nil
			}
			return randInput(rng, 8, 16, 16, in[3]), nil
		}, Options{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		x := randInput(rng, 4, 16, 16, in[3])
		want := floatForward(net, x)
		got, err := m.Forward(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		// Forward adds each block's residual in place where Values, which
		// keeps every value, cannot: the same logits bit for bit, twice
		// (the second run on recycled buffers).
		for range 2 {
			kept, _, err := m.Values(context.Background(), x)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(kept.Data, got.Data) {
				t.Fatalf("%s %s: Forward's logits differ from Values'", tc.model, method)
			}
			if got, err = m.Forward(context.Background(), x); err != nil {
				t.Fatal(err)
			}
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range want.Data {
			lo, hi = min(lo, float64(v)), max(hi, float64(v))
		}
		for i := range want.Data {
			if d := math.Abs(float64(got.Data[i] - want.Data[i])); d > 0.1*(hi-lo) {
				t.Errorf("%s %s: logit %d = %v, float %v (range %v)", tc.model, method, i, got.Data[i], want.Data[i], hi-lo)
				break
			}
		}
	}
}

// TestQuantizeRefusesNonFinite checks that a float network computing a
// NaN or an infinity on the calibration data is an error naming the
// operation, for every method (the histogram methods once panicked).
func TestQuantizeRefusesNonFinite(t *testing.T) {
	cfg, err := models.Preset("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
		for _, method := range []Method{MinMax, Percentile, Entropy} {
			rng := tensor.NewRNG(5)
			net, err := models.Build(cfg, rng)
			if err != nil {
				t.Fatal(err)
			}
			nn.Layers(net)[0].Layer.(*nn.Conv2d).Weight.Data.Data[0] = bad
			in := cfg.InputShape(1, 16)
			b := 0
			_, err = Quantize(context.Background(), net, in, func() (*tensor.Tensor, error) {
				if b++; b > 1 {
					return nil, nil
				}
				return randInput(rng, 2, 16, 16, in[3]), nil
			}, Options{Method: method})
			if err == nil || !strings.Contains(err.Error(), "operation") || !strings.Contains(err.Error(), "weights finite") {
				t.Errorf("weight %v, %s: %v", bad, method, err)
			}
		}
	}
}

// TestKLThreshold checks the entropy method's clip on histograms whose
// right answer is clear: a uniform histogram keeps (nearly) all of its
// range (merging its bins loses nothing); an exponential bulk (scale 64
// bins) plus three outliers at the far end is clipped within the bulk's
// tail (255…1024 bins), not at the outliers.
// Calibration's ranges do not depend on the batches' order: batches in
// which a value is all zeros (a black image, no mean subtracted) count
// whether they come before its first non-zero batch or after. Counted only
// after, 100,000 zeros and 1, 2, …, 1000 had a 99th percentile of 990.
func TestObserverCountsEveryZero(t *testing.T) {
	xs := make([]float32, 1000)
	for i := range xs {
		xs[i] = float32(i + 1)
	}
	zeros := make([]float32, 100000)
	for _, m := range []Method{Percentile, Entropy} {
		var first, last observer
		for _, b := range [][]float32{zeros, zeros, xs} {
			if err := first.add(b, true); err != nil {
				t.Fatal(err)
			}
		}
		for _, b := range [][]float32{xs, zeros, zeros} {
			if err := last.add(b, true); err != nil {
				t.Fatal(err)
			}
		}
		lo1, hi1 := first.rangeOf(m, 99)
		lo2, hi2 := last.rangeOf(m, 99)
		if lo1 != lo2 || hi1 != hi2 {
			t.Errorf("%s: the zeros first [%g, %g], last [%g, %g]; want the same", m, lo1, hi1, lo2, hi2)
		}
		// 99% of the 201,000 values are 0: the 99th percentile is the first bin's top.
		if bin := 1000.0 / histBins; m == Percentile && hi1 > bin {
			t.Errorf("99th percentile of 200,000 zeros and 1…1000: %g; want ≤ one bin, %g", hi1, bin)
		}
	}
}

func TestKLThreshold(t *testing.T) {
	h := make([]float64, histBins)
	for i := range histBins {
		h[i] = 1000
	}
	if got := klThreshold(h, 255); got < histBins*95/100 {
		t.Errorf("uniform: threshold %d bins of %d", got, histBins)
	}
	clear(h)
	for i := range 512 {
		h[i] = math.Round(1e6 * math.Exp(-float64(i)/64))
	}
	h[histBins-1] = 3
	if got := klThreshold(h, 255); got < 255 || got > 1024 {
		t.Errorf("exponential bulk and outliers at %d: threshold %d bins", histBins, got)
	}
	// A ReLU's output: mostly exact zeros, the rest half-normal. The zeros'
	// spike in the first bin made the divergence favour the tightest
	// threshold (hi about 0.12 of the maximum, which lost 38 points of
	// accuracy on a ResNet-20); with the spike flattened the clip keeps
	// the half-normal's bulk (its 99.9th percentile is 3.3).
	var relu observer
	rng := tensor.NewRNG(3)
	vals := make([]float32, 100000)
	for i := 70000; i < len(vals); i++ {
		vals[i] = float32(math.Abs(rng.Normal()))
	}
	if err := relu.add(vals, true); err != nil {
		t.Fatal(err)
	}
	if _, hi := relu.rangeOf(Entropy, 0); hi < 2.5 {
		t.Errorf("entropy range of a ReLU's output clipped at %.3f (maximum %.3f)", hi, relu.max)
	}
	var o observer
	if err := o.add([]float32{-1, 0.5, 2, 3}, true); err != nil {
		t.Fatal(err)
	}
	lo, hi := o.rangeOf(MinMax, 0)
	if lo != -1 || hi != 3 {
		t.Errorf("minmax range [%v, %v], want [-1, 3]", lo, hi)
	}
	// A non-finite value has no range: an error, for every method (the
	// histogram's bin index of a NaN was once a panic).
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		for _, hist := range []bool{false, true} {
			var o observer
			if err := o.add([]float32{1, bad, 2}, hist); err == nil || !strings.Contains(err.Error(), "value 1 of 3") {
				t.Errorf("add(%v, hist %v): %v", bad, hist, err)
			}
		}
	}
}

// TestQuantize8ONNX checks Quantize8 on the example of ONNX's
// QuantizeLinear specification (scale 2, zero point 128: 3/2 = 1.5 rounds
// to even, 1000 and −1000 saturate) and on ties either side of zero.
func TestQuantize8ONNX(t *testing.T) {
	got := Quantize8([]float32{0, 2, 3, 1000, -254, -1000, 5, -3, -5}, QParams{Scale: 2, Zero: 128}, nil)
	want := []uint8{128, 129, 130, 255, 1, 0, 130, 126, 126}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Quantize8 = %v, want %v", got, want)
		}
	}
}

// TestGlobalPoolRounding checks that global average pooling rounds the
// real mean (the mean of q − zero) half to even, as QuantizeLinear of
// GlobalAveragePool's float output does: with zero point 3, the mean 4.5
// of q is 1.5 above the zero point and rounds to 2 (q = 5), where
// rounding q's mean itself would give 4.
func TestGlobalPoolRounding(t *testing.T) {
	if got := roundDiv(9-2*3, 2) + 3; got != 5 {
		t.Errorf("mean 4.5 about zero point 3: %d, want 5", got)
	}
	if got := roundDiv(-3, 2); got != -2 {
		t.Errorf("roundDiv(-3, 2) = %d, want -2", got)
	}
	if got := roundDiv(-1, 2); got != 0 {
		t.Errorf("roundDiv(-1, 2) = %d, want 0", got)
	}
}

// TestNewKeepsUnfoldedBatchNorms rebuilds a pre-activation ResNet (whose
// batch norms after the additions cannot fold into a convolution) from its
// stored parts, as an int8 checkpoint is loaded: from a freshly built
// network with default batch norms and the parameters through JSON. The
// outputs must be the quantized model's, bit for bit: the unfolded batch
// norms come from the parameters, not from the network given.
func TestNewKeepsUnfoldedBatchNorms(t *testing.T) {
	cfg, err := models.Preset("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ = cfg.Clone()
	a := cfg.Arch.(*models.ResNet)
	a.Layers, a.Ordering, a.Shortcut = []int{1, 1, 1}, resnet.PreActivation, resnet.ShortcutB
	rng := tensor.NewRNG(4)
	net, err := models.Build(cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range nn.Layers(net) {
		if bn, ok := l.Layer.(*nn.BatchNorm); ok {
			for i := range bn.RunningVar.Data {
				bn.RunningMean.Data[i] = float32(rng.Normal()) * 0.2
				bn.RunningVar.Data[i] = 0.5 + float32(rng.Float64())
			}
		}
	}
	in := []int{1, 8, 8, 3}
	calls := 0
	q, err := Quantize(context.Background(), net, in, func() (*tensor.Tensor, error) {
		if calls++; calls > 1 {
			return nil, nil
		}
		return randInput(rng, 4, 8, 8, 3), nil
	}, Options{Method: MinMax})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Params().Affine) == 0 {
		t.Fatal("test premise: no unfolded batch norm")
	}
	b, err := json.Marshal(q.Params())
	if err != nil {
		t.Fatal(err)
	}
	var p Params
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	fresh, _ := models.Build(cfg, tensor.NewRNG(5))
	q2, err := New(fresh, in, p, q.Layers())
	if err != nil {
		t.Fatal(err)
	}
	x := randInput(rng, 2, 8, 8, 3)
	want, _ := q.Forward(context.Background(), x)
	got, _ := q2.Forward(context.Background(), x)
	for i := range want.Data {
		if got.Data[i] != want.Data[i] {
			t.Fatalf("logit %d: rebuilt %v, quantized %v", i, got.Data[i], want.Data[i])
		}
	}
	// An input of another size names the size wanted ("[N [8 8 3]]").
	if _, err := q.Forward(context.Background(), randInput(rng, 1, 9, 8, 3)); err == nil || !strings.Contains(err.Error(), "want [N 8 8 3] with N ≥ 1") {
		t.Errorf("an input of another size: %v", err)
	}
	// Scales that float32 cannot use (1e300 made every output NaN).
	for _, scale := range []float64{1e300, 1e-300} {
		bad := p
		bad.Input.Scale = scale
		fresh, _ = models.Build(cfg, tensor.NewRNG(5))
		if _, err := New(fresh, in, bad, q.Layers()); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("scale %v", scale)) {
			t.Errorf("input scale %v: %v", scale, err)
		}
	}
	p.Affine = nil
	fresh, _ = models.Build(cfg, tensor.NewRNG(5))
	if _, err := New(fresh, in, p, q.Layers()); err == nil || !strings.Contains(err.Error(), "quantize the float checkpoint again") {
		t.Errorf("parameters without the affine factors: %v", err)
	}
}

// TestQuantizeRefusesBadArguments checks that what Quantize cannot use is
// an error naming it, before anything runs or is recorded: no network, no
// batches function, a bad input shape, a method that is no calibration
// (FromQDQ, whose checkpoints would then be refused at load, or a
// misspelling), a NaN percentile (which once passed the range check), and
// a calibration batch whose data does not fill its shape (which once
// crashed the process in a kernel worker). The zero Options still mean
// the percentile method at 99.99.
func TestQuantizeRefusesBadArguments(t *testing.T) {
	in := []int{1, 6, 6, 3}
	rng := tensor.NewRNG(6)
	one := func(x *tensor.Tensor) func() (*tensor.Tensor, error) {
		calls := 0
		return func() (*tensor.Tensor, error) {
			if calls++; calls > 1 {
				return nil, nil
			}
			return x, nil
		}
	}
	good := randInput(rng, 2, 6, 6, 3)
	var none context.Context
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		net     nn.Layer
		input   []int
		batches func() (*tensor.Tensor, error)
		opt     Options
		want    string
	}{
		{"nil context", none, newBlock(rng, 4), in, one(good), Options{}, "nil context"},
		{"nil net", context.Background(), nil, in, one(good), Options{}, "net is nil"},
		{"typed nil net", context.Background(), (*block)(nil), in, one(good), Options{}, "net is nil"},
		{"nil batches", context.Background(), newBlock(rng, 4), in, nil, Options{}, "batches is nil"},
		{"nil input", context.Background(), newBlock(rng, 4), nil, one(good), Options{}, "input shape []"},
		{"negative input", context.Background(), newBlock(rng, 4), []int{1, -6, 6, 3}, one(good), Options{}, "input shape [1 -6 6 3]"},
		{"unknown method", context.Background(), newBlock(rng, 4), in, one(good), Options{Method: "bogus"}, `unknown calibration method "bogus"`},
		{"FromQDQ", context.Background(), newBlock(rng, 4), in, one(good), Options{Method: FromQDQ}, "not a calibration"},
		{"NaN percentile", context.Background(), newBlock(rng, 4), in, one(good), Options{Percentile: math.NaN()}, "percentile NaN"},
		{"percentile 50", context.Background(), newBlock(rng, 4), in, one(good), Options{Percentile: 50}, "percentile 50"},
		{"short batch", context.Background(), newBlock(rng, 4), in, one(&tensor.Tensor{Shape: []int{1, 6, 6, 3}, Data: make([]float32, 3)}), Options{}, "batch 0 holds 3 values for shape [1 6 6 3]"},
		{"long batch", context.Background(), newBlock(rng, 4), in, one(&tensor.Tensor{Shape: []int{1, 6, 6, 3}, Data: make([]float32, 200)}), Options{}, "batch 0 holds 200 values"},
		{"empty batch", context.Background(), newBlock(rng, 4), in, one(&tensor.Tensor{Shape: []int{0, 6, 6, 3}}), Options{}, "batch 0 has shape [0 6 6 3]"},
		{"negative batch", context.Background(), newBlock(rng, 4), in, one(&tensor.Tensor{Shape: []int{-1, 6, 6, 3}}), Options{}, "batch 0 has shape [-1 6 6 3]"},
	} {
		m, err := Quantize(tc.ctx, tc.net, tc.input, tc.batches, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, %v; want an error with %q", tc.name, m, err, tc.want)
		}
	}
	for _, tc := range []struct {
		opt  Options
		want Method
	}{{Options{}, Percentile}, {Options{Percentile: 100}, Percentile}, {Options{Method: MinMax}, MinMax}, {Options{Method: Entropy}, Entropy}} {
		m, err := Quantize(context.Background(), newBlock(rng, 4), in, one(good), tc.opt)
		if err != nil {
			t.Errorf("%+v: %v", tc.opt, err)
		} else if got := m.Params().Method; got != tc.want {
			t.Errorf("%+v: recorded method %q, want %q", tc.opt, got, tc.want)
		}
	}
	// Running: a nil context or a nil model is an error, not a panic.
	m, err := Quantize(context.Background(), newBlock(rng, 4), in, one(good), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Forward(none, good); err == nil || !strings.Contains(err.Error(), "nil context") {
		t.Errorf("Forward with a nil context: %v", err)
	}
	if _, _, err := (*Model)(nil).Values(context.Background(), good); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Errorf("Values on a nil model: %v", err)
	}
	short := &tensor.Tensor{Shape: good.Shape, Data: good.Data[:5]}
	if _, err := m.Forward(context.Background(), short); err == nil || !strings.Contains(err.Error(), "input holds 5 values for shape") {
		t.Errorf("Forward of 5 values: %v; want the count named", err)
	}
	// A batch size whose element count overflows is refused by the
	// bound, not counted (tensor.NumElements panics on it).
	huge := &tensor.Tensor{Shape: append([]int{1 << (bits.UintSize - 2)}, good.Shape[1:]...)}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("Forward of a batch of 2^62: panicked: %v", r)
			}
		}()
		if _, err := m.Forward(context.Background(), huge); err == nil || !strings.Contains(err.Error(), "quant: input") {
			t.Errorf("Forward of a batch of 2^62: %v", err)
		}
	}()
	if _, err := New(nil, in, Params{Version: 1}, nil); err == nil || !strings.Contains(err.Error(), "net is nil") {
		t.Errorf("New with a nil net: %v", err)
	}
	if _, err := Plan(newBlock(rng, 4), nil); err == nil || !strings.Contains(err.Error(), "input shape") {
		t.Errorf("Plan with no input shape: %v", err)
	}
}

// fromRange gives parameters that New accepts whatever the range:
// below float32's normal steps (a subnormal scale before) and beyond what
// 8-bit steps of float32 can hold.
func TestFromRangeWithinBounds(t *testing.T) {
	for _, r := range [][2]float64{{0, 1e-40}, {-1e-39, 1e-39}, {0, 3e38}, {-3e38, 3e38}, {-1, 1}, {0, 0}} {
		if q := fromRange(r[0], r[1]); checkQParams("range", q) != nil {
			t.Errorf("fromRange(%g, %g) = %+v: %v", r[0], r[1], q, checkQParams("range", q))
		}
	}
}

// A max pooling whose stride is left 0 (the kernel's size, as in PyTorch)
// quantizes and runs as the float pool does: the pools trace their
// normalised parameters. quant read the raw 0 as a stride of 1 and its
// Forward panicked (slice bounds) on the smaller output the float graph
// had traced.
func TestMaxPoolDefaultStride(t *testing.T) {
	rng := tensor.NewRNG(5)
	net := nn.Sequential{nn.NewConv2d(rng, 3, 8, 3, nn.ConvOptions{Padding: 1}), nn.ReLU{},
		nn.MaxPool2d{P: ag.PoolParams{Kernel: [2]int{2, 2}}}, nn.GlobalAvgPool{}, nn.Flatten{}, nn.NewLinear(rng, 8, 4, true)}
	x := tensor.New(2, 8, 8, 3)
	for i := range x.Data {
		x.Data[i] = float32(rng.Normal())
	}
	calls := 0
	q, err := Quantize(context.Background(), net, []int{2, 8, 8, 3}, func() (*tensor.Tensor, error) {
		if calls++; calls > 1 {
			return nil, nil
		}
		return x, nil
	}, Options{Method: MinMax})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range q.Graph().Ops {
		if op.Kind == OpMaxPool && op.Pool.Stride != [2]int{2, 2} {
			t.Errorf("the max pool's stride %v; want [2 2], its kernel's", op.Pool.Stride)
		}
	}
	y, err := q.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(y.Shape, []int{2, 4}) {
		t.Errorf("output shape %v; want [2 4]", y.Shape)
	}
}
