package autograd

import (
	"math"
	"testing"

	"github.com/residual-nn/residual/internal/kernels"
	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
	"github.com/residual-nn/residual/tensor"
)

// TestBatchNormTakesConvStats checks that a bfloat16 convolution on a
// training tape leaves its output's statistics on the value (where the
// kernels compute them: AMX tiles), that the batch norm after it
// normalises with them, and that it gives what the batch norm computes
// with its own statistics (a tape with a layer hook fuses nothing) within
// both ways' bounds: each mean within γ₂₅₆·2D of the exact one and each
// M2 within 3·γ₂₅₆·n·(2D)² (D the channel's largest deviation;
// kernels.TestConvStatsAMXBF16), so an output (y − mean)/σ moves by at
// most 2·(Δmean + D·ΔM2/(2·M2))/σ, plus the rounding of the float32
// normalisation (4 units of the last place).
func TestBatchNormTakesConvStats(t *testing.T) {
	if !kernels.AMXBF16() {
		t.Skip("no AMX-BF16 tiles here (CPU, system or RESIDUAL_AMX=0): the kernels compute no statistics to hand over")
	}
	rng := tensor.NewRNG(5)
	xt, wt := rng.Randn(4, 10, 10, 32), rng.Randn(3, 3, 32, 64)
	run := func(hook bool) (y, z *Value, runMean []float32) {
		tp := NewTape()
		tp.SetPrecision(BF16)
		if hook {
			tp.SetHook(func(any, *Value, *Value) {})
		}
		w := Param(wt, "w")
		y = Conv2d(tp.Constant(xt), w, nil, ConvParams{Pad: SymmetricPad(1, 1)})
		rm, rv := tensor.New(64), tensor.New(64)
		for i := range rv.Data {
			rv.Data[i] = 1
		}
		z = BatchNorm(y, nil, nil, rm, rv, BatchNormParams{Training: true, Momentum: 0.1, Eps: 1e-5})
		z.Tensor()
		return y, z, rm.Data
	}
	yf, zf, rm := run(false)
	yp, zp, _ := run(true)
	if yf.stats == nil || !yf.stats.Done {
		t.Fatal("the convolution on a training tape left no statistics")
	}
	for j, m := range yf.stats.Mean { // the running mean moved by 0.1 of the batch's: the handed-over one
		if want := float32(0.9*0 + 0.1*m); rm[j] != want {
			t.Fatalf("channel %d: running mean %g, want %g from the convolution's statistics", j, rm[j], want)
		}
	}
	if yp.stats != nil {
		t.Fatal("a tape that fuses nothing (layer hook) got statistics")
	}
	ys := yf.Data.Data
	for i, v := range yp.Data.Data {
		if v != ys[i] {
			t.Fatalf("convolution outputs differ at %d: %g and %g", i, ys[i], v)
		}
	}
	n, c := len(ys)/64, 64
	g := kt.GammaF32(256)
	for j := range c {
		var sum float64
		for i := range n {
			sum += float64(ys[i*c+j])
		}
		mean := sum / float64(n)
		var m2, dev float64
		for i := range n {
			d := float64(ys[i*c+j]) - mean
			m2 += d * d
			dev = max(dev, math.Abs(d))
		}
		sigma := math.Sqrt(m2/float64(n) + 1e-5)
		bound := 2 * (g*2*dev + dev*3*g*float64(n)*4*dev*dev/(2*m2)) / sigma
		for i := range n {
			a, b := float64(zf.Data.Data[i*c+j]), float64(zp.Data.Data[i*c+j])
			if e := math.Abs(a - b); e > bound+4*math.Abs(b)*0x1p-24 {
				t.Fatalf("channel %d output %d: %g with the convolution's statistics, %g with its own (bound %.3g)", j, i, a, b, bound)
			}
		}
	}
}
