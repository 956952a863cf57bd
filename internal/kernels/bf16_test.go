package kernels

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
)

// bf16Nearest is BF16FromFloat32's reference, derived from IEEE 754's
// rule rather than from the bit trick: of the two bfloat16 values around
// f (f's upper half truncated, and the next one away from zero), the
// nearer, measured in float64 (the differences of two float32 are exact
// there), and on a tie the one whose last fraction bit is 0.
func bf16Nearest(f float32) uint16 {
	b := math.Float32bits(f)
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return uint16(b >> 16) // NaNs are compared by NaN-ness only
	}
	lo := uint16(b >> 16)
	hi := lo + 1 // one bfloat16 step away from zero (into Inf past the largest)
	dlo := math.Abs(float64(f) - float64(Float32FromBF16(lo)))
	vhi := float64(Float32FromBF16(hi))
	if math.IsInf(vhi, 0) {
		// Rounding past the largest finite value goes to Inf when f is at
		// least half a step beyond it (IEEE 754: as if the exponent range
		// were unbounded).
		vhi = math.Copysign(math.Ldexp(1, 128), float64(f))
	}
	dhi := math.Abs(vhi - float64(f))
	switch {
	case dlo < dhi:
		return lo
	case dhi < dlo:
		return hi
	case lo&1 == 0:
		return lo
	}
	return hi
}

// TestBF16Exhaustive compares BF16FromFloat32 with the IEEE derivation on
// every bfloat16 upper half combined with the low halves where rounding
// turns (0, 1, just below, at and just above the tie, all ones) and a
// random one, both signs included: 7·2¹⁶ inputs.
func TestBF16Exhaustive(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 1))
	fails := 0
	for hi := uint32(0); hi < 1<<16; hi++ {
		for _, low := range []uint32{0, 1, 0x7fff, 0x8000, 0x8001, 0xffff, r.Uint32() & 0xffff} {
			f := math.Float32frombits(hi<<16 | low)
			got, want := BF16FromFloat32(f), bf16Nearest(f)
			if math.IsNaN(float64(f)) {
				if !math.IsNaN(float64(Float32FromBF16(got))) || got>>15 != want>>15 {
					t.Errorf("%#08x (NaN): got %#04x, want a NaN of the same sign", hi<<16|low, got)
					fails++
				}
			} else if got != want {
				t.Errorf("%#08x (%g): got %#04x, want %#04x", hi<<16|low, f, got, want)
				fails++
			}
			if fails > 10 {
				t.Fatal("too many failures")
			}
		}
	}
}

// TestBF16Torch compares BF16FromFloat32 with PyTorch's conversion of the
// inputs in testdata/torch/bf16.json (gen_bf16.py): bit for bit, except
// NaNs, where PyTorch writes its own pattern and only NaN-ness is
// compared.
func TestBF16Torch(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/torch/bf16.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct{ Cases [][2]uint32 }
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	if len(fx.Cases) < 1000 {
		t.Fatalf("fixture holds %d cases", len(fx.Cases))
	}
	for _, c := range fx.Cases {
		f := math.Float32frombits(c[0])
		got := BF16FromFloat32(f)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(Float32FromBF16(got))) || !math.IsNaN(float64(Float32FromBF16(uint16(c[1])))) {
				t.Errorf("%#08x: NaN gave %#04x (torch %#04x)", c[0], got, c[1])
			}
			continue
		}
		if got != uint16(c[1]) {
			t.Errorf("%#08x (%g): got %#04x, torch %#04x", c[0], f, got, c[1])
		}
	}
}

// TestBF16Edges pins the cases by name: ties to even, carry into the
// exponent, overflow to Inf, signed zeros, NaN quieting, widening.
func TestBF16Edges(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want uint16
	}{
		{0x3f808000, 0x3f80}, // 1 + 2⁻⁸: tie, even below
		{0x3f818000, 0x3f82}, // tie, even above
		{0x3f808001, 0x3f81}, // just above the tie
		{0x3fffffff, 0x4000}, // carry into the exponent
		{0x7f7f7fff, 0x7f7f}, // largest finite stays
		{0x7f7f8000, 0x7f80}, // tie above the largest finite: Inf
		{0x80000000, 0x8000}, // −0
		{0x00008000, 0x0000}, // subnormal tie to even zero
		{0x7f800001, 0x7fc0}, // signalling NaN with a low payload: quiet NaN, not Inf
		{0xff800001, 0xffc0}, // same, negative
		{0x7fc12345, 0x7fc1}, // quiet NaN keeps its upper payload
	} {
		if got := BF16FromFloat32(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("%#08x: got %#04x, want %#04x", c.in, got, c.want)
		}
	}
	for b := 0; b < 1<<16; b++ {
		f := Float32FromBF16(uint16(b))
		if math.Float32bits(f) != uint32(b)<<16 {
			t.Fatalf("%#04x widened to %#08x", b, math.Float32bits(f))
		}
		if !math.IsNaN(float64(f)) && BF16FromFloat32(f) != uint16(b) {
			t.Fatalf("%#04x does not round-trip", b)
		}
	}
	src := []float32{1.00390625, -3, float32(math.NaN()), 1e-40}
	dst := make([]float32, len(src))
	RoundSliceBF16(dst, src)
	u := make([]uint16, len(src))
	ToBF16(u, src)
	back := make([]float32, len(src))
	FromBF16(back, u)
	for i := range src {
		if math.Float32bits(dst[i]) != math.Float32bits(back[i]) || math.Float32bits(dst[i]) != math.Float32bits(RoundBF16(src[i])) {
			t.Errorf("element %d: RoundSliceBF16 %g, ToBF16/FromBF16 %g, RoundBF16 %g", i, dst[i], back[i], RoundBF16(src[i]))
		}
	}
}

// TestRoundSliceBF16 compares RoundSliceBF16 (the AVX2 loop where the
// level has it, lengths not a multiple of 8 leaving a Go tail) with
// RoundBF16 bit for bit on every bfloat16 upper half with the turning low
// halves, NaNs included (same bits: both quiet the NaN the same way), at
// every level this CPU runs; toBF16Fast (the direct path's conversion
// to bfloat16 bits) with BF16FromFloat32 on the same values; and
// pairBF16 (the native weight gradient's image pairs) with bf16Pair.
func TestRoundSliceBF16(t *testing.T) {
	var src []float32
	for hi := uint32(0); hi < 1<<16; hi++ {
		for _, low := range []uint32{0, 1, 0x7fff, 0x8000, 0x8001, 0xffff} {
			src = append(src, math.Float32frombits(hi<<16|low))
		}
	}
	src = src[:len(src)-3] // a tail
	other := make([]float32, len(src))
	for i := range other {
		other[i] = src[len(src)-1-i]
	}
	for _, l := range append([]Level{Generic}, levels()...) {
		prev := SetLevel(l)
		dst := make([]float32, len(src))
		RoundSliceBF16(dst, src)
		p := make([]uint32, len(src))
		pairBF16(p, src, other)
		// The direct path's conversion to bfloat16 bits (toBF16Fast).
		u := make([]uint16, len(src))
		for i := toBF16Fast(u, src); i < len(src); i++ {
			u[i] = BF16FromFloat32(src[i])
		}
		SetLevel(prev)
		for i, v := range src {
			if want := RoundBF16(v); math.Float32bits(dst[i]) != math.Float32bits(want) {
				t.Fatalf("%v: %#08x rounded to %#08x, want %#08x", l, math.Float32bits(v), math.Float32bits(dst[i]), math.Float32bits(want))
			}
			if want := BF16FromFloat32(v); u[i] != want {
				t.Fatalf("%v: toBF16 of %#08x is %#04x, want %#04x", l, math.Float32bits(v), u[i], want)
			}
			if want := bf16Pair(v, other[i]); p[i] != want {
				t.Fatalf("%v: pair of %#08x, %#08x is %#08x, want %#08x", l, math.Float32bits(v), math.Float32bits(other[i]), p[i], want)
			}
		}
	}
}

// TestPairImages checks the native weight gradient's operand layout:
// images 2i and 2i+1 paired element by element (bf16Pair), a zero past an
// odd batch, over images of several conversion chunks with a short last
// one, at every level.
func TestPairImages(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 4))
	for _, l := range append([]Level{Generic}, levels()...) {
		prev := SetLevel(l)
		for _, c := range []struct{ n, per int }{{3, 2*pairChunk + 5}, {2, 7}, {1, pairChunk + 1}, {4, 3 * pairChunk}} {
			src := kt.RandF32(r, c.n*c.per)
			dst := make([]uint32, (c.n+1)/2*c.per)
			pairImages(dst, src, c.n, c.per)
			for i := range (c.n + 1) / 2 {
				for j := range c.per {
					odd := float32(0)
					if 2*i+1 < c.n {
						odd = src[(2*i+1)*c.per+j]
					}
					if got, want := dst[i*c.per+j], bf16Pair(src[2*i*c.per+j], odd); got != want {
						SetLevel(prev)
						t.Fatalf("%v n=%d per=%d: pair %d element %d is %#08x, want %#08x", l, c.n, c.per, i, j, got, want)
					}
				}
			}
		}
		SetLevel(prev)
	}
}
