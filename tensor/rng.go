package tensor

import (
	"math"
	"math/rand/v2"
)

// RNG is a seeded pseudo-random number generator (PCG). The same seed gives
// the same numbers on every machine, and its state can be saved and restored
// (for checkpoints) with MarshalBinary and UnmarshalBinary.
type RNG struct {
	src *rand.PCG
	r   *rand.Rand
}

// NewRNG returns a generator whose whole stream is fixed by seed (the PCG
// is seeded with seed and seed XOR a constant). An RNG is not safe for
// concurrent use: give each goroutine its own, seeded from Uint64.
func NewRNG(seed uint64) *RNG {
	src := new(rand.PCG)
	g := &RNG{src: src, r: rand.New(src)}
	g.Reseed(seed)
	return g
}

// Reseed restarts the generator on the stream NewRNG(seed) gives (NewRNG
// seeds through it), without allocating: for a loop that needs a stream
// of its own per item (a data loader's per-image augmentation) and reuses
// one generator for all.
func (g *RNG) Reseed(seed uint64) { g.src.Seed(seed, seed^0x9e3779b97f4a7c15) }

// Float64 returns a uniform number in [0, 1).
func (g *RNG) Float64() float64 { return g.r.Float64() }

// Uniform returns a uniform number in [lo, hi).
func (g *RNG) Uniform(lo, hi float64) float64 { return lo + (hi-lo)*g.r.Float64() }

// Normal returns a standard normal number. It uses the Box–Muller transform
// so that the sequence depends only on the generator's state.
func (g *RNG) Normal() float64 {
	u1 := g.r.Float64()
	for u1 == 0 {
		u1 = g.r.Float64()
	}
	u2 := g.r.Float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// IntN returns a uniform integer in [0, n). It panics if n ≤ 0, as
// math/rand/v2's does.
func (g *RNG) IntN(n int) int { return g.r.IntN(n) }

// Perm returns a random permutation of 0..n-1. It panics if n < 0.
func (g *RNG) Perm(n int) []int { return g.r.Perm(n) }

// Uint64 returns a uniform 64-bit value (e.g. to seed another generator).
func (g *RNG) Uint64() uint64 { return g.r.Uint64() }

// MarshalBinary returns the generator's state (the PCG's, 20 bytes), from
// which UnmarshalBinary continues the same stream.
func (g *RNG) MarshalBinary() ([]byte, error) { return g.src.MarshalBinary() }

// UnmarshalBinary restores a state returned by MarshalBinary.
func (g *RNG) UnmarshalBinary(b []byte) error { return g.src.UnmarshalBinary(b) }

// FillNormal fills t with normal numbers of the given mean and standard
// deviation.
func (g *RNG) FillNormal(t *Tensor, mean, std float64) {
	d := t.Data
	for i := 0; i < len(d); i += 2 {
		// Both outputs of one Box–Muller draw.
		u1 := g.r.Float64()
		for u1 == 0 {
			u1 = g.r.Float64()
		}
		r, th := math.Sqrt(-2*math.Log(u1)), 2*math.Pi*g.r.Float64()
		s, c := math.Sincos(th)
		d[i] = float32(mean + std*r*c)
		if i+1 < len(d) {
			d[i+1] = float32(mean + std*r*s)
		}
	}
}

// FillUniform fills t with uniform numbers from [lo, hi) rounded to
// float32, which can round up to hi itself (for [0, 1), about once in 2^25
// values).
func (g *RNG) FillUniform(t *Tensor, lo, hi float64) {
	for i := range t.Data {
		t.Data[i] = float32(g.Uniform(lo, hi))
	}
}

// Randn returns a tensor of standard normal numbers.
func (g *RNG) Randn(shape ...int) *Tensor {
	t := New(shape...)
	g.FillNormal(t, 0, 1)
	return t
}
