package quant

import (
	"math"
	"testing"
)

// TestQuantize8MatchesScalar checks the parallel kernel Quantize8 runs
// (kernels.QuantizeU8) against quantize8, the scalar statement of
// QuantizeLinear, on ties, saturation, infinities, NaN and subnormals.
func TestQuantize8MatchesScalar(t *testing.T) {
	q := QParams{Scale: 0.05, Zero: 113}
	xs := []float32{0, -0, 0.025, 0.075, -0.025, -0.075, 6.325, 6.375, 1e30, -1e30,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-45, -1e-45, 7.1, -5.65}
	for i := range 100000 { // more than one parallel block
		xs = append(xs, float32(i%4001-2000)*0.0125)
	}
	got := Quantize8(xs, q, nil)
	for i, v := range xs {
		if want := quantize8(v, float32(q.Scale), q.Zero); got[i] != want {
			t.Fatalf("Quantize8(%v) = %d, QuantizeLinear gives %d", v, got[i], want)
		}
	}
}
