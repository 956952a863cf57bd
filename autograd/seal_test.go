package autograd

import (
	"testing"

	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// A sealed weight gives the same convolution bit for bit, on the deferred
// (no-gradient, fused) path and the recorded one, with the packed form
// made on first use and reused after (where the direct kernels apply:
// not at the generic level, not for 3 output channels).
func TestSealedConvEqualsUnsealed(t *testing.T) {
	for _, oc := range []int{32, 3} {
		for _, grad := range []bool{false, true} {
			rng := tensor.NewRNG(uint64(oc))
			x, w, b := rng.Randn(2, 9, 7, 8), rng.Randn(3, 3, 8, oc), rng.Randn(oc)
			cp := ConvParams{Stride: [2]int{1, 1}, Pad: SymmetricPad(1, 1)}
			run := func(seal bool) []float32 {
				tape := NewNoGradTape()
				if grad {
					tape = NewTape()
				}
				wv := Param(w, "weight")
				if seal {
					wv.Seal()
				}
				var out []float32
				for range 2 { // the second call runs on the kept packed form
					out = ReLU(Conv2d(tape.Constant(x), wv, tape.Constant(b), cp)).Tensor().Data
				}
				if seal {
					p := wv.sealed.conv.Load()
					packs := kernels.Active() != kernels.Generic && oc%8 == 0
					if p == nil || (p.pc != nil) != packs {
						t.Fatalf("oc=%d grad=%v: kept packed form %v, want packed=%v", oc, grad, p, packs)
					}
				}
				return out
			}
			got, want := run(true), run(false)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("oc=%d grad=%v: element %d: sealed %g, unsealed %g", oc, grad, i, got[i], want[i])
				}
			}
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
				if p == nil || (p.pg != nil) != packs {
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
