// Package kernelstest holds the helpers with which package kernels' tests
// compare the float32 kernels with the float64 references: conversions
// between the two, random inputs, and the closeness bound.
package kernelstest

import (
	"math"
	"math/rand/v2"
	"testing"
)

// F64 returns v converted to float64, for the references.
func F64(v []float32) []float64 {
	if v == nil {
		return nil
	}
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = float64(x)
	}
	return o
}

// F32 returns v rounded to float32.
func F32(v []float64) []float32 {
	if v == nil {
		return nil
	}
	o := make([]float32, len(v))
	for i, x := range v {
		o[i] = float32(x)
	}
	return o
}

// RandF32 returns n standard normal values drawn from r.
func RandF32(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// RandF64 returns n standard normal values drawn from r.
func RandF64(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

// CloseTo fails t unless got is within 1e-5 of the tensor's scale of
// want, element by element: |got − want| ≤ 1e-5·(|want| + max|want|), and
// got not NaN. The fast kernels and the references sum the same terms in
// different orders (and the references in float64), so the bound is
// relative to the tensor's scale rather than to each element: about 100
// float32 ulps of the largest element.
func CloseTo(t testing.TB, what string, got, want []float32) {
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

// GammaF32 is the bound γ_n = n·2⁻²⁴/(1 − n·2⁻²⁴) on the relative error of
// n float32 additions in any order (Higham, Accuracy and Stability of
// Numerical Algorithms, §3.1 and §4.2), relative to the sum of the
// magnitudes of the terms.
func GammaF32(n int) float64 {
	e := float64(n) * 0x1p-24
	return e / (1 - e)
}
