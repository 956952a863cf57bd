package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// levels returns the assembly levels this CPU can run.
func levels() []Level {
	var ls []Level
	for _, l := range []Level{AVX2, AVX512} {
		if l <= detect() {
			ls = append(ls, l)
		}
	}
	return ls
}

func randF32(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// closeTo compares a fast float32 result with the reference float32 result:
// |a − b| ≤ 1e-5·(|b| + max|b|)·√terms-ish; both sum the same terms in
// different orders, so the bound is relative to the tensor's scale.
func closeTo(t *testing.T, what string, got, want []float32) {
	t.Helper()
	scale := 0.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(math.Abs(float64(want[i]))+scale) || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: element %d: fast %g, reference %g", what, i, got[i], want[i])
		}
	}
}

// convShapes covers every shape family the networks use plus odd sizes,
// tails (output widths not a multiple of the tile, channel counts of one
// vector), asymmetric padding, dilation and padding wider than the kernel.
func convShapes(r *rand.Rand) []ConvShape {
	sh := []ConvShape{
		{N: 2, H: 9, W: 11, C: 16, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 9, W: 9, C: 16, OC: 48, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 8, W: 8, C: 24, OC: 64, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 2, H: 7, W: 9, C: 32, OC: 16, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
		{N: 1, H: 19, W: 17, C: 3, OC: 16, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3},
		{N: 2, H: 10, W: 12, C: 8, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 1, H: 30, W: 33, C: 5, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 8, W: 9, C: 16, OC: 16, KH: 3, KW: 2, SH: 2, SW: 1, DH: 1, DW: 1, PT: 0, PL: 1, PB: 2, PR: 0},
		{N: 1, H: 9, W: 9, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 2, DW: 2, PT: 2, PL: 2, PB: 2, PR: 2},
		{N: 1, H: 4, W: 3, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 4, PL: 4, PB: 4, PR: 4},
		{N: 3, H: 1, W: 29, C: 40, OC: 80, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1}, // a GEMM
	}
	for i := 0; i < 6; i++ { // random ones
		k := 1 + 2*r.IntN(3)
		s := 1 + r.IntN(2)
		p := r.IntN(k)
		sh = append(sh, ConvShape{N: 1 + r.IntN(3), H: k + r.IntN(12), W: k + r.IntN(20), C: 1 + r.IntN(40), OC: 16 * (1 + r.IntN(4)),
			KH: k, KW: k, SH: s, SW: s, DH: 1, DW: 1, PT: p, PL: p, PB: p, PR: p})
	}
	return sh
}

func TestFastConvMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, l := range levels() {
		for i, s := range convShapes(r) {
			if err := s.Validate(); err != nil {
				t.Fatalf("shape %d: %v", i, err)
			}
			name := fmt.Sprintf("%v/%d %+v", l, i, s)
			oh, ow := s.OH(), s.OW()
			x := randF32(r, s.N*s.H*s.W*s.C)
			w := randF32(r, s.KH*s.KW*s.C*s.OC)
			dy := randF32(r, s.N*oh*ow*s.OC)
			prev := SetLevel(l)
			y, dx, dw := make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w))
			for i := range y { // poison: every output must be written
				y[i] = float32(math.NaN())
			}
			okF := convForwardFast(s, x, w, y)
			okD := convBackwardDataFast(s, dy, w, dx)
			okW := convBackwardWeightFast(s, x, dy, dw)
			SetLevel(prev)
			ry, rdx, rdw := make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w))
			convForwardRef(s, x, w, ry)
			convBackwardDataRef(s, dy, w, rdx)
			convBackwardWeightRef(s, x, dy, rdw)
			if !okF || !okW {
				t.Fatalf("%s: fast path declined forward (%v) or weight gradient (%v)", name, okF, okW)
			}
			closeTo(t, name+" forward", y, ry)
			closeTo(t, name+" weight gradient", dw, rdw)
			if s.C%16 == 0 && s.DH == 1 {
				if !okD {
					t.Fatalf("%s: fast path declined the data gradient", name)
				}
				closeTo(t, name+" data gradient", dx, rdx)
			}
		}
	}
}
