package autograd

import (
	"slices"
	"testing"

	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// TestBF16TapeRunsBF16Kernels checks the one place precision is decided:
// on a BF16 tape, Conv2d (forward, data and weight gradients), Linear
// (forward and both gradients) and the fused inference convolution of an
// inherited no-gradient tape give exactly what the kernels' bfloat16
// entry points give, and not what float32 gives. The kernels' own tests
// hold those entry points to float64 with bfloat16's error bounds.
func TestBF16TapeRunsBF16Kernels(t *testing.T) {
	rng := tensor.NewRNG(18)
	x, w, b := rng.Randn(2, 6, 5, 8), rng.Randn(3, 3, 8, 16), rng.Randn(16)
	p := ConvParams{Pad: SymmetricPad(1, 1)}
	s := kernels.ConvShape{N: 2, H: 6, W: 5, C: 8, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}
	g := rng.Randn(2, 6, 5, 16) // upstream gradient

	run := func(pr Precision) (y, dx, dw []float32) {
		tp := NewTape()
		tp.SetPrecision(pr)
		xv, wv := tp.Variable(x.Clone()), Param(w.Clone(), "w")
		out := Conv2d(xv, wv, Constant(b), p)
		tp.BackwardWith(out, g)
		return out.Tensor().Data, xv.Grad.Data, wv.Grad.Data
	}
	y, dx, dw := run(BF16)
	wantY := make([]float32, len(y))
	kernels.ConvForwardEpilogueBF16(s, x.Data, w.Data, wantY, kernels.ConvEpilogue[float32]{Shift: b.Data})
	wantDX, wantDW := make([]float32, len(dx)), make([]float32, len(dw))
	kernels.ConvBackwardDataBF16(s, g.Data, w.Data, wantDX)
	kernels.ConvBackwardWeightBF16(s, x.Data, g.Data, wantDW)
	for name, c := range map[string][2][]float32{"forward": {y, wantY}, "data gradient": {dx, wantDX}, "weight gradient": {dw, wantDW}} {
		if !slices.Equal(c[0], c[1]) {
			t.Errorf("Conv2d on a BF16 tape: %s differs from the bfloat16 kernel's", name)
		}
	}
	y32, dx32, dw32 := run(FP32)
	if slices.Equal(y, y32) || slices.Equal(dx, dx32) || slices.Equal(dw, dw32) {
		t.Error("Conv2d on a BF16 tape computed some result exactly as float32 does")
	}

	// Inference: a no-gradient tape made from a BF16 tape defers the
	// convolution and fuses the bias into it, in bfloat16.
	inf := NewTape()
	inf.SetPrecision(BF16)
	ng := inf.NoGradTape()
	if ng.Precision() != BF16 {
		t.Fatal("NoGradTape did not inherit the precision")
	}
	if got := Conv2d(ng.Constant(x), Constant(w), Constant(b), p).Tensor().Data; !slices.Equal(got, wantY) {
		t.Error("the fused inference convolution on a BF16 tape differs from the bfloat16 kernel's")
	}

	// Linear: x [4,8]·wᵀ with w [16,8], and its gradients.
	lx, lw, lg := rng.Randn(4, 8), rng.Randn(16, 8), rng.Randn(4, 16)
	tp := NewTape()
	tp.SetPrecision(BF16)
	xv, wv := tp.Variable(lx.Clone()), Param(lw.Clone(), "w")
	out := Linear(xv, wv, nil)
	tp.BackwardWith(out, lg)
	ly, ldx, ldw := make([]float32, 64), make([]float32, 32), make([]float32, 128)
	kernels.GemmBF16(false, true, 4, 16, 8, 1, lx.Data, 8, lw.Data, 8, 0, ly, 16)
	kernels.GemmBF16(false, false, 4, 8, 16, 1, lg.Data, 16, lw.Data, 8, 0, ldx, 8)
	kernels.GemmBF16(true, false, 16, 8, 4, 1, lg.Data, 16, lx.Data, 8, 0, ldw, 8)
	if !slices.Equal(out.Tensor().Data, ly) || !slices.Equal(xv.Grad.Data, ldx) || !slices.Equal(wv.Grad.Data, ldw) {
		t.Error("Linear on a BF16 tape differs from GemmBF16")
	}

	if _, err := ParsePrecision("fp16"); err == nil {
		t.Error("ParsePrecision accepted fp16")
	}
	for _, pr := range []Precision{FP32, BF16} {
		if q, err := ParsePrecision(pr.String()); err != nil || q != pr {
			t.Errorf("%v does not round-trip: %v, %v", pr, q, err)
		}
	}
}
