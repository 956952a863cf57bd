package quant

import (
	"math"
	"slices"
	"strings"
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

// Dequantize8 fills exactly the shape it is given: values that do not fill
// it, or overflow it, are a panic naming both (it padded the tensor with
// zeros, or indexed past it without saying why).
func TestDequantize8Shape(t *testing.T) {
	got := Dequantize8([]uint8{0, 128, 255}, QParams{Scale: 0.5, Zero: 128}, []int{1, 3})
	if want := []float32{-64, 0, 63.5}; !slices.Equal(got.Data, want) || !slices.Equal(got.Shape, []int{1, 3}) {
		t.Errorf("Dequantize8 = %v, want [1 3] %v", got, want)
	}
	for _, n := range []int{2, 4} {
		func() {
			defer func() {
				if r, _ := recover().(string); !strings.Contains(r, "Dequantize8 of 3 values into shape") {
					t.Errorf("Dequantize8 of 3 values into [%d]: panic %q, want one naming both", n, r)
				}
			}()
			Dequantize8([]uint8{1, 2, 3}, QParams{Scale: 1}, []int{n})
		}()
	}
}
