package autograd

import (
	"testing"

	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// A sealed weight gives the same convolution bit for bit, on the deferred
// (no-gradient, fused) path and the recorded one, in both precisions, with
// the packed form made on first use and reused after (where the direct
// kernels apply: float32 not at the generic level nor for 3 output
// channels; bfloat16 where its native kernels run).
func TestSealedConvEqualsUnsealed(t *testing.T) {
	for _, pr := range []Precision{FP32, BF16} {
		for _, oc := range []int{32, 3} {
			for _, grad := range []bool{false, true} {
				sealedConvCase(t, pr, oc, grad)
			}
		}
	}
}

// sealedConvCase runs one case of TestSealedConvEqualsUnsealed.
func sealedConvCase(t *testing.T, pr Precision, oc int, grad bool) {
	t.Helper()
	rng := tensor.NewRNG(uint64(oc))
	x, w, b := rng.Randn(2, 9, 7, 8), rng.Randn(3, 3, 8, oc), rng.Randn(oc)
	cp := ConvParams{Stride: [2]int{1, 1}, Pad: SymmetricPad(1, 1)}
	run := func(seal bool) []float32 {
		tape := NewNoGradTape()
		if grad {
			tape = NewTape()
		}
		tape.SetPrecision(pr)
		wv := Param(w, "weight")
		if seal {
			wv.Seal()
		}
		var out []float32
		for range 2 { // the second call runs on the kept packed form
			out = ReLU(Conv2d(tape.Constant(x), wv, tape.Constant(b), cp)).Tensor().Data
		}
		if seal && pr == FP32 {
			p := wv.sealed.conv.Load()
			packs := kernels.Active() != kernels.Generic && oc%8 == 0
			if p == nil || (p.p != nil) != packs {
				t.Fatalf("oc=%d grad=%v: kept packed form %v, want packed=%v", oc, grad, p, packs)
			}
		}
		if seal && pr == BF16 {
			p := wv.sealed.convBF16.Load()
			packs := kernels.BF16Path() == "avx512bf16"
			if p == nil || (p.p != nil) != packs {
				t.Fatalf("bf16 oc=%d grad=%v: kept packed form %v, want packed=%v", oc, grad, p, packs)
			}
		}
		return out
	}
	got, want := run(true), run(false)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%v oc=%d grad=%v: element %d: sealed %g, unsealed %g", pr, oc, grad, i, got[i], want[i])
		}
	}
}

// A sealed linear layer's weight gives the same product bit for bit, with
// its packed form made on first use and reused after (where the kernels
// apply: not at the generic level; a product below minFastGemm packs but runs on the reference).
func TestSealedLinearEqualsUnsealed(t *testing.T) {
	for _, c := range []struct{ batch, in, out int }{{1, 2048, 1000}, {5, 96, 10}, {3, 4, 3}} {
		rng := tensor.NewRNG(uint64(c.out))
		x, w, b := rng.Randn(c.batch, c.in), rng.Randn(c.out, c.in), rng.Randn(c.out)
		run := func(seal bool) []float32 {
			tape := NewNoGradTape()
			wv := Param(w, "weight")
			if seal {
				wv.Seal()
			}
			var out []float32
			for range 2 { // the second call runs on the kept packed form
				out = Linear(tape.Constant(x), wv, tape.Constant(b)).Tensor().Data
			}
			if seal {
				p := wv.sealed.gemm.Load()
				packs := kernels.Active() != kernels.Generic
				if p == nil || (p.p != nil) != packs {
					t.Fatalf("%+v: kept packed form %v, want packed=%v", c, p, packs)
				}
			}
			return out
		}
		got, want := run(true), run(false)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%+v: element %d: sealed %g, unsealed %g", c, i, got[i], want[i])
			}
		}
	}
}
