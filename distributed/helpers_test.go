package distributed

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/residual-nn/residual/tensor"
)

var rankDataMemo sync.Map // [3]int{r, k, n} → []float32

// rankData returns rank r's deterministic random values in [−1, 1) for
// test case k: a fresh copy, made once per (r, k, n).
func rankData(r, k, n int) []float32 {
	key := [3]int{r, k, n}
	if v, ok := rankDataMemo.Load(key); ok {
		return slices.Clone(v.([]float32))
	}
	g := tensor.NewRNG(uint64(1000*k + r))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(g.Uniform(-1, 1))
	}
	rankDataMemo.Store(key, out)
	return slices.Clone(out)
}

// checkSum checks that got is the sum over ranks of rankData(r, k, n),
// divided by div: within (size−1)·u·Σ|x| for the float32 additions in
// any order (u = 2⁻²⁴), plus u·|result| for the division's rounding.
func checkSum(what string, got []float32, size, k int, div float64) error {
	ref, abs := make([]float64, len(got)), make([]float64, len(got))
	for r := range size {
		for i, v := range rankData(r, k, len(got)) {
			ref[i] += float64(v)
			abs[i] += math.Abs(float64(v))
		}
	}
	const u = 1.0 / (1 << 24)
	for i := range got {
		want := ref[i] / div
		tol := float64(size-1)*u*abs[i]/div + u*math.Abs(want)
		if d := math.Abs(float64(got[i]) - want); d > tol || math.IsNaN(float64(got[i])) {
			return fmt.Errorf("%s: element %d of %d is %g, want %g ± %.3g", what, i, len(got), got[i], want, tol)
		}
	}
	return nil
}
