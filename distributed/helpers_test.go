package distributed

import (
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/residual-nn/residual/internal/kernels"
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

// checkBF16 checks StartAllReduceSumBF16 on c's ranks (every rank calls
// it): the rounding of single additions against values worked out by
// hand (rank 0 and rank 1 bring the two operands, the others zeros, which
// add exactly), then a million random values against the float64 sum,
// within γ_{N−1}·Σ|x| (the inputs are bfloat16 already: a term goes
// through at most N−1 additions, each rounded with relative error at most
// u = 2⁻⁸, γ_k = k·u/(1 − k·u); on one rank the sum is exact), and the
// same bits on every rank.
func checkBF16(c Comm) error {
	rank, size := c.Rank(), c.Size()
	if size >= 2 {
		cases := []struct {
			a, b, want uint16
			what       string
		}{
			{0x3F80, 0x3B80, 0x3F80, "1 + 2⁻⁸ (a tie) rounds to even, down"},
			{0x3F81, 0x3B80, 0x3F82, "1.0078125 + 2⁻⁸ (a tie) rounds to even, up"},
			{0x3F80, 0x3BC0, 0x3F81, "1 + 3·2⁻⁹ (above the tie) rounds up"},
			{0x7F7F, 0x7F7F, 0x7F80, "the largest finite value doubled is +Inf"},
			{0xBF80, 0x3F80, 0x0000, "−1 + 1 is +0"},
			{0x0001, 0x0001, 0x0002, "subnormals add exactly"},
		}
		buf := make([]uint16, len(cases)+1)
		for i, tc := range cases {
			switch rank {
			case 0:
				buf[i] = tc.a
			case 1:
				buf[i] = tc.b
			}
		}
		if rank == 0 {
			buf[len(cases)] = 0x7FC1 // a NaN stays a NaN
		} else if rank == 1 {
			buf[len(cases)] = 0x3F80
		}
		if err := c.StartAllReduceSumBF16(buf).Wait(); err != nil {
			return fmt.Errorf("StartAllReduceSumBF16: %w", err)
		}
		for i, tc := range cases {
			if buf[i] != tc.want {
				return fmt.Errorf("StartAllReduceSumBF16: %s: got %#04x, want %#04x", tc.what, buf[i], tc.want)
			}
		}
		if v := buf[len(cases)]; v&0x7F80 != 0x7F80 || v&0x7F == 0 {
			return fmt.Errorf("StartAllReduceSumBF16: NaN + 1 = %#04x, not a NaN", v)
		}
	}
	const n, k = 1000003, 60
	toBF16 := func(r int) []uint16 {
		out := make([]uint16, n)
		for i, v := range rankData(r, k, n) {
			out[i] = kernels.BF16FromFloat32(v)
		}
		return out
	}
	got := toBF16(rank)
	if err := c.StartAllReduceSumBF16(got).Wait(); err != nil {
		return fmt.Errorf("StartAllReduceSumBF16(%d values): %w", n, err)
	}
	ref, abs := make([]float64, n), make([]float64, n)
	for r := range size {
		for i, v := range toBF16(r) {
			x := float64(kernels.Float32FromBF16(v))
			ref[i] += x
			abs[i] += math.Abs(x)
		}
	}
	u := math.Ldexp(1, -8)
	gamma := float64(size-1) * u / (1 - float64(size-1)*u)
	for i, v := range got {
		x := float64(kernels.Float32FromBF16(v))
		if d := math.Abs(x - ref[i]); d > gamma*abs[i] || math.IsNaN(x) {
			return fmt.Errorf("StartAllReduceSumBF16: element %d of %d is %g, want %g ± %.3g", i, n, x, ref[i], gamma*abs[i])
		}
	}
	b := make([]byte, 2*n)
	for i, v := range got {
		b[2*i], b[2*i+1] = byte(v), byte(v>>8)
	}
	return CheckSame(c, "the bfloat16 sum", fmt.Sprintf("%x", sha256.Sum256(b)))
}
