package autograd

import (
	"strings"
	"sync/atomic"
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
	conv := func(tp *Tape, wv *Value) *Value { return ReLU(Conv2d(tp.Constant(x), wv, tp.Constant(b), cp)) }
	got, wv := runSealed(pr, grad, true, w, conv)
	want, _ := runSealed(pr, grad, false, w, conv)
	packs, ok := kernels.Active() != kernels.Generic && oc%8 == 0, false
	if pr == BF16 {
		packs = strings.HasPrefix(kernels.BF16Path(), "avx512bf16")
		ok = keptPacked(&wv.sealed.convBF16, packs)
	} else {
		ok = keptPacked(&wv.sealed.conv, packs)
	}
	if !ok {
		t.Fatalf("%v oc=%d grad=%v: kept packed form wrong, want packed=%v", pr, oc, grad, packs)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%v oc=%d grad=%v: element %d: sealed %g, unsealed %g", pr, oc, grad, i, got[i], want[i])
		}
	}
}

// runSealed runs f twice on a new tape of precision pr (recording when
// grad) with w as a parameter, sealed when seal, and returns the second
// result (the first call packs a sealed weight, the second runs on the
// kept form) and the parameter.
func runSealed(pr Precision, grad, seal bool, w *tensor.Tensor, f func(tp *Tape, wv *Value) *Value) ([]float32, *Value) {
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
	for range 2 {
		out = f(tape, wv).Tensor().Data
	}
	return out, wv
}

// keptPacked reports whether slot holds a packed form, made (want) or
// declined (not want).
func keptPacked[T any](slot *atomic.Pointer[packed[T]], want bool) bool {
	p := slot.Load()
	return p != nil && (p.p != nil) == want
}

// A sealed linear layer's weight gives the same product bit for bit, in
// both precisions, with its packed form made on first use and reused after
// (where the kernels apply: float32 not at the generic level, and a
// product below minFastGemm packs but runs on the reference; bfloat16
// where its native kernels run).
func TestSealedLinearEqualsUnsealed(t *testing.T) {
	for _, pr := range []Precision{FP32, BF16} {
		for _, c := range []struct{ batch, in, out int }{{1, 2048, 1000}, {5, 96, 10}, {3, 4, 3}} {
			rng := tensor.NewRNG(uint64(c.out))
			x, w, b := rng.Randn(c.batch, c.in), rng.Randn(c.out, c.in), rng.Randn(c.out)
			linear := func(tp *Tape, wv *Value) *Value { return Linear(tp.Constant(x), wv, tp.Constant(b)) }
			got, wv := runSealed(pr, false, true, w, linear)
			want, _ := runSealed(pr, false, false, w, linear)
			packs, ok := kernels.Active() != kernels.Generic, false
			if pr == BF16 {
				packs = strings.HasPrefix(kernels.BF16Path(), "avx512bf16")
				ok = keptPacked(&wv.sealed.gemmBF16, packs)
			} else {
				ok = keptPacked(&wv.sealed.gemm, packs)
			}
			if !ok {
				t.Fatalf("%v %+v: kept packed form wrong, want packed=%v", pr, c, packs)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%v %+v: element %d: sealed %g, unsealed %g", pr, c, i, got[i], want[i])
				}
			}
		}
	}
}
