package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// int8Shapes are convolutions in the shapes the networks use plus odd
// ones: channel counts that are not a multiple of any block (3, 5, 17,
// 33), reduction lengths not a multiple of 2 or 4, pixel counts that
// leave short tiles, strides, asymmetric padding and dilation, and GEMMs
// (1×1 on 1×1 images, as a linear layer runs).
var int8Shapes = []ConvShape{
	{N: 2, H: 9, W: 11, C: 16, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	{N: 2, H: 9, W: 9, C: 17, OC: 33, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	{N: 1, H: 8, W: 8, C: 24, OC: 64, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
	{N: 2, H: 7, W: 9, C: 5, OC: 3, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
	{N: 1, H: 19, W: 17, C: 3, OC: 16, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3},
	{N: 1, H: 8, W: 9, C: 7, OC: 40, KH: 3, KW: 2, SH: 2, SW: 1, DH: 1, DW: 1, PT: 0, PL: 1, PB: 2, PR: 0},
	{N: 1, H: 9, W: 9, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 2, DW: 2, PT: 2, PL: 2, PB: 2, PR: 2},
	{N: 13, H: 1, W: 1, C: 65, OC: 10, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1}, // a linear layer
	{N: 3, H: 1, W: 1, C: 1, OC: 1, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
	// The direct VNNI path (channels in quads): strided 3×3 with a short
	// channel block, rows wider than a tile with dilated rows, a 1×1
	// batch longer than a group of tiles, a strided 1×1, asymmetric
	// padding with a horizontal stride only, and an unpadded 3×3.
	{N: 2, H: 9, W: 9, C: 20, OC: 40, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	{N: 2, H: 10, W: 37, C: 8, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 2, DW: 1, PT: 2, PL: 1, PB: 2, PR: 1},
	{N: 3, H: 9, W: 11, C: 12, OC: 36, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
	{N: 2, H: 8, W: 8, C: 16, OC: 64, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
	{N: 1, H: 7, W: 30, C: 4, OC: 8, KH: 3, KW: 5, SH: 1, SW: 2, DH: 1, DW: 1, PT: 0, PL: 2, PB: 1, PR: 0},
	{N: 2, H: 6, W: 6, C: 8, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1},
	// The AMX path (unpadded 1×1 of stride 1, channels multiples of 64 in,
	// 32 out): whole 32-pixel tiles and a tail of 30 in a tile of its own;
	// more tiles than a group, three 64-byte steps of K; fewer pixels
	// than a tile.
	{N: 2, H: 7, W: 9, C: 64, OC: 64, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
	{N: 1, H: 16, W: 20, C: 192, OC: 96, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
	{N: 1, H: 2, W: 8, C: 128, OC: 32, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
	// AMX, stride 1, each job's padded input copied (int8ConvAMXStaged):
	// padded 3×3 over two images of 7×7 (positions past a row's end and
	// an image's last row dropped), an unpadded 3×3 of 128 channels, an
	// asymmetrically padded 1×3.
	{N: 2, H: 7, W: 7, C: 64, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	{N: 1, H: 9, W: 12, C: 128, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1},
	{N: 1, H: 5, W: 40, C: 64, OC: 32, KH: 1, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PL: 2, PR: 0},
	// At stride 2: a padded 3×3 over two images (ResNet's downsampling),
	// an unpadded 1×1 (its shortcut, gathered by subsampled and run at
	// stride 1), and another over an odd image.
	{N: 2, H: 14, W: 14, C: 64, OC: 64, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	{N: 2, H: 10, W: 10, C: 128, OC: 32, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
	{N: 1, H: 9, W: 9, C: 64, OC: 32, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
	// Batches of more blocks than int8ConvAMXStaged stages at once, so
	// that a job's span holds several groups of blocks and a short one
	// (TestInt8Conv also runs them on one thread, where the spans are
	// longest): 107 blocks of 32 positions at stride 1, 53 over the
	// phases of 56×56 at stride 2.
	{N: 3, H: 32, W: 32, C: 64, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	{N: 2, H: 56, W: 56, C: 64, OC: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	// Strided sweeps over phases: a padded image of 11×11 (odd: the last
	// phase row and column past it), asymmetric padding, a 5×3 kernel at
	// stride 3 (nine phases, some with one tap), a 2×2 kernel at stride 3
	// (phases that no tap reads), a padded 1×1 of stride 2.
	{N: 2, H: 9, W: 9, C: 64, OC: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	{N: 2, H: 15, W: 13, C: 64, OC: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 0, PB: 2, PR: 1},
	{N: 1, H: 11, W: 12, C: 64, OC: 32, KH: 5, KW: 3, SH: 3, SW: 3, DH: 1, DW: 1, PT: 2, PL: 1, PB: 2, PR: 1},
	{N: 1, H: 8, W: 8, C: 64, OC: 32, KH: 2, KW: 2, SH: 3, SW: 3, DH: 1, DW: 1, PT: 1, PL: 2, PR: 1},
	{N: 2, H: 9, W: 9, C: 128, OC: 32, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 0, PR: 0},
	// AMX over kernel rows of at most 64 bytes, one step a row
	// (int8ConvAMXRows): a stem over two images (rows of 11 outputs, one
	// short block), rows of exactly 64 bytes dilated vertically with
	// output rows of a block and 8 more, and an unpadded one strided
	// vertically only. (Several shapes above, with fewer than 64 input
	// channels, take this path too.)
	{N: 2, H: 19, W: 21, C: 3, OC: 64, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3},
	{N: 1, H: 9, W: 40, C: 16, OC: 32, KH: 3, KW: 4, SH: 1, SW: 1, DH: 2, DW: 1, PT: 2, PL: 1, PB: 2, PR: 2},
	{N: 1, H: 10, W: 35, C: 5, OC: 32, KH: 2, KW: 3, SH: 2, SW: 1, DH: 1, DW: 1},
}

// int8Case is one random convolution with its epilogue.
type int8Case struct {
	s    ConvShape
	x    []uint8
	zx   uint8
	w    *Int8Weights
	ep   Int8Epilogue
	fout bool
}

func newInt8Case(r *rand.Rand, s ConvShape, res, relu, fout bool) *int8Case {
	c := &int8Case{s: s, zx: uint8(r.IntN(256)), fout: fout}
	c.x = make([]uint8, s.N*s.H*s.W*s.C)
	for i := range c.x {
		c.x[i] = uint8(r.IntN(256))
	}
	k := s.KH * s.KW * s.C
	w := make([]int8, k*s.OC)
	for i := range w {
		w[i] = int8(r.IntN(255) - 127) // symmetric: −127…127
	}
	w[0], w[len(w)-1] = -127, 127 // the extremes, against the assembly's widest products
	c.w = NewInt8Weights(w, k, s.OC)
	c.ep = Int8Epilogue{Bias: make([]int32, s.OC), Mult: make([]float32, s.OC), Zero: int32(r.IntN(256)), ReLU: relu}
	for n := range s.OC {
		c.ep.Bias[n] = int32(r.IntN(20001) - 10000)
		// About 1/(√k·255·127/8): outputs spread over a few hundred steps.
		c.ep.Mult[n] = float32((0.5 + r.Float64()) * 8 / (math.Sqrt(float64(k)) * 255 * 127))
	}
	if res {
		c.ep.Res = make([]uint8, s.N*s.OH()*s.OW()*s.OC)
		for i := range c.ep.Res {
			c.ep.Res[i] = uint8(r.IntN(256))
		}
		c.ep.ResZero, c.ep.ResMult = int32(r.IntN(256)), float32(0.25+r.Float64())
	}
	return c
}

func (c *int8Case) run() ([]uint8, []float32) {
	out := c.s.N * c.s.OH() * c.s.OW() * c.s.OC
	if c.fout {
		yf := make([]float32, out)
		Int8Conv(c.s, c.x, c.zx, c.w, &c.ep, nil, yf)
		return nil, yf
	}
	y := make([]uint8, out)
	Int8Conv(c.s, c.x, c.zx, c.w, &c.ep, y, nil)
	return y, nil
}

// exact returns the output in float64 from the real-valued formula:
// Σ(x−zx)·w over the receptive field (padding is the real value 0),
// with bias, multiplier and residual applied in float64, before rounding.
func (c *int8Case) exact() []float64 {
	s := c.s
	oh, ow := s.OH(), s.OW()
	v := make([]float64, s.N*oh*ow*s.OC)
	for n := range s.N {
		for oy := range oh {
			for ox := range ow {
				m := (n*oh+oy)*ow + ox
				for o := range s.OC {
					var sum float64
					for ky := range s.KH {
						for kx := range s.KW {
							iy, ix := oy*s.SH-s.PT+ky*s.DH, ox*s.SW-s.PL+kx*s.DW
							if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
								continue
							}
							for ci := range s.C {
								xv := float64(c.x[((n*s.H+iy)*s.W+ix)*s.C+ci]) - float64(c.zx)
								sum += xv * float64(c.w.W[((ky*s.KW+kx)*s.C+ci)*s.OC+o])
							}
						}
					}
					r := (sum + float64(c.ep.Bias[o])) * float64(c.ep.Mult[o])
					if c.ep.Res != nil {
						r += (float64(c.ep.Res[m*s.OC+o]) - float64(c.ep.ResZero)) * float64(c.ep.ResMult)
					}
					v[m*s.OC+o] = r
				}
			}
		}
	}
	return v
}

// int8Paths returns the levels to run and the int8 path each selects,
// skipping (with the reason logged) the paths this CPU lacks.
func int8Paths(t *testing.T) []Level {
	ls := []Level{Generic}
	ls = append(ls, levels()...)
	if !hasVNNI {
		t.Log("AVX512-VNNI path not run: this CPU lacks AVX512-VNNI")
	}
	if !hasAMX {
		t.Log("AMX tiles not run: this CPU lacks AMX-INT8, the system did not grant the tile data, or RESIDUAL_AMX=0")
	}
	return ls
}

// TestInt8Conv checks every runnable int8 path against the float64
// evaluation of the same formula. The int32 sums are exact (|Σ| ≤
// K·255·127 < 2³¹ for every shape here), so the only error is the
// epilogue's float32 arithmetic: (acc+bias) and the products with Mult
// and ResMult round with relative error ≤ 2⁻²⁴ each, on values below
// 10⁴ output steps here, so |v32 − v64| < 3·10⁴·2⁻²⁴ < 2·10⁻³ step. A
// u8 output is round(v)+zero clamped: it equals the float64 value so
// rounded unless v64 lies within 2·10⁻³ of a tie, where it may differ
// by one step; a float output is within 2·10⁻³·max(1, |v|). Every path
// must also equal the reference bit for bit (the sums are exact, the
// epilogue is shared).
func TestInt8Conv(t *testing.T) {
	prev := Active()
	defer SetLevel(prev)
	r := rand.New(rand.NewPCG(18, 8))
	for i, s := range int8Shapes {
		for _, v := range []struct{ res, relu, fout bool }{{false, false, false}, {true, true, false}, {false, true, true}, {true, false, true}} {
			c := newInt8Case(r, s, v.res, v.relu, v.fout)
			ex := c.exact()
			SetLevel(Generic)
			refU, refF := c.run()
			for j, e := range ex {
				if c.fout {
					want := e
					if v.relu {
						want = max(e, 0)
					}
					if d := math.Abs(float64(refF[j]) - want); d > 2e-3*max(1, math.Abs(want)) {
						t.Fatalf("shape %d %+v: float output %d = %v, float64 %v", i, v, j, refF[j], want)
					}
					continue
				}
				lo := 0.0
				if v.relu {
					lo = float64(c.ep.Zero)
				}
				want := min(max(math.RoundToEven(e)+float64(c.ep.Zero), lo), 255)
				got := float64(refU[j])
				frac := e - math.Floor(e)
				if got != want && !(math.Abs(frac-0.5) < 2e-3 && math.Abs(got-want) <= 1) {
					t.Fatalf("shape %d %+v: output %d = %v, float64 rounds to %v (%v)", i, v, j, got, want, e)
				}
			}
			for _, l := range int8Paths(t)[1:] {
				SetLevel(l)
				gotU, gotF := c.run()
				if !slices.Equal(gotU, refU) || !slices.Equal(gotF, refF) {
					t.Errorf("shape %d %+v: path %v differs from the reference", i, v, ActiveInt8())
				}
				if ActiveInt8() == Int8VNNI && hasAMX { // and the VNNI kernels the tiles take over
					hasAMX = false
					gotU, gotF = c.run()
					hasAMX = true
					if !slices.Equal(gotU, refU) || !slices.Equal(gotF, refF) {
						t.Errorf("shape %d %+v: the VNNI kernels without AMX differ from the reference", i, v)
					}
					// On one thread, where the AMX sweeps' jobs are the
					// longest (int8ConvAMXStaged's spans of several groups).
					prevThreads := SetThreads(1)
					gotU, gotF = c.run()
					SetThreads(prevThreads)
					if !slices.Equal(gotU, refU) || !slices.Equal(gotF, refF) {
						t.Errorf("shape %d %+v: the tiles on one thread differ from the reference", i, v)
					}
				}
			}
		}
	}
}

// TestInt8PathSelection checks the path each level selects on this CPU.
func TestInt8PathSelection(t *testing.T) {
	prev := Active()
	defer SetLevel(prev)
	SetLevel(Generic)
	if p := ActiveInt8(); p != Int8Generic {
		t.Errorf("generic level: int8 path %v", p)
	}
	if detect() >= AVX2 {
		SetLevel(AVX2)
		if p := ActiveInt8(); p != Int8AVX2 {
			t.Errorf("avx2 level: int8 path %v", p)
		}
	}
	SetLevel(AVX512)
	want := Int8Generic
	switch {
	case detect() == AVX512 && hasVNNI:
		want = Int8VNNI
	case detect() >= AVX2:
		want = Int8AVX2
	}
	if p := ActiveInt8(); p != want {
		t.Errorf("avx512 level on this CPU: int8 path %v, want %v", p, want)
	}
}

// TestPeakInt8 checks that the peak loop runs and counts its operations.
func TestPeakInt8(t *testing.T) {
	prev := Active()
	defer SetLevel(prev)
	for _, l := range int8Paths(t)[1:] {
		SetLevel(l)
		if ops := PeakInt8(10); ops <= 0 {
			t.Errorf("level %v: PeakInt8 reported %v operations", l, ops)
		}
	}
}

// The panel gathers' fast paths (whole steps of a tap's channels) fill
// what the per-value formula does, on every CPU (the VNNI panel's kernels
// run only where AVX-512 VNNI is).
func TestGatherPanels(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	shapes := append([]ConvShape{
		{N: 1, H: 5, W: 5, C: 6, OC: 8, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, // pairs, not quads
		{N: 2, H: 5, W: 6, C: 8, OC: 8, KH: 3, KW: 3, SH: 2, SW: 1, DH: 1, DW: 2, PT: 1, PL: 2, PB: 1, PR: 2},
		{N: 1, H: 4, W: 4, C: 12, OC: 4, KH: 2, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 0, PL: 1, PB: 1, PR: 1},
	}, int8Shapes...)
	for i, s := range shapes {
		x := make([]uint8, s.N*s.H*s.W*s.C)
		for j := range x {
			x[j] = uint8(r.IntN(256))
		}
		zx := uint8(r.IntN(256))
		k, m := s.KH*s.KW*s.C, s.N*s.OH()*s.OW()
		for m0 := 0; m0 < m; m0 += 5 {
			mr := min(5, m-m0)
			want8 := make([]byte, (k+3)/4*mr*4)
			want16 := make([]int16, (k+1)/2*mr*2)
			for j := range want8 {
				want8[j] = zx
			}
			for rr := range mr {
				patch(s, x, m0+rr, func(k0 int, vals []uint8) {
					for j, v := range vals {
						kk := k0 + j
						want8[(kk/4*mr+rr)*4+kk%4] = v
						want16[(kk/2*mr+rr)*2+kk%2] = int16(v) - int16(zx)
					}
				})
			}
			got8 := make([]byte, len(want8)+8)
			got16 := make([]int16, len(want16)+8)
			gatherU8(s, x, zx, m0, mr, k, got8)
			gatherI16(s, x, zx, m0, mr, k, got16)
			if !slices.Equal(got8[:len(want8)], want8) || !slices.Equal(got16[:len(want16)], want16) {
				t.Fatalf("shape %d %+v, pixels %d+%d: gathered panel differs from the per-value formula", i, s, m0, mr)
			}
		}
	}
}

// roundEven rounds to the nearest integer, ties to even, as ONNX's
// QuantizeLinear does.
func roundEven(v float32) int32 { return int32(math.RoundToEven(float64(v))) }

// requantize's rounding by the float32 magic number is roundEven's on
// every value of its range's edges, its ties and random values.
func TestRequantizeRoundsHalfToEven(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	vs := []float32{0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1e6, -1e6, 2e6, -3e7, 0.49999997, 127.5, 128.5, -128.5}
	for range 100000 {
		vs = append(vs, float32(r.NormFloat64()*300), float32(int(r.IntN(2000))-1000)+0.5)
	}
	for _, v := range vs {
		for _, zero := range []int32{0, 3, 128} {
			c := max(min(v, 1e6), -1e6)
			want := uint8(min(max(roundEven(c)+zero, zero), 255))
			if got := requantize(v, zero, zero); got != want {
				t.Fatalf("requantize(%v, zero %d) = %d, roundEven gives %d", v, zero, got, want)
			}
		}
	}
}

// The epilogue's vector loop (where this CPU has one) writes what the Go
// loop writes, on random rows and on the edges: ±1e6 and beyond,
// infinite and NaN multipliers, negative and large zero points, with and
// without a residual.
func TestRequantizeVecMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	specials := []float32{0, 1e-4, -1e-4, 1, 1e6, -1e6, 3e38, -3e38, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), -float32(math.NaN())}
	for trial := range 2000 {
		n := 8 + r.IntN(40)
		acc, bias := make([]int32, n), make([]int32, n)
		mult := make([]float32, n)
		res := make([]uint8, n)
		for j := range n {
			acc[j], bias[j] = int32(r.IntN(1<<20))-1<<19, int32(r.IntN(2000))-1000
			mult[j] = float32(r.NormFloat64() * 1e-3)
			if r.IntN(8) == 0 {
				mult[j] = specials[r.IntN(len(specials))]
			}
			res[j] = uint8(r.IntN(256))
		}
		zero, lo := int32(r.IntN(300))-20, int32(0)
		if trial%2 == 1 {
			lo = zero
		}
		rz, rm := int32(r.IntN(256)), specials[r.IntN(len(specials))]
		if trial%3 != 0 {
			rm = float32(r.NormFloat64() * 0.05)
		}
		for _, withRes := range []bool{false, true} {
			var rs []uint8
			if withRes {
				rs = res
			}
			want := make([]uint8, n)
			for j := range n {
				v := float32(float32(acc[j]+bias[j]) * mult[j])
				if withRes {
					v += float32(float32(int32(res[j])-rz) * rm)
				}
				want[j] = requantize(v, zero, lo)
			}
			got := make([]uint8, n)
			done := requantizeVec(acc, bias, mult, got, rs, zero, lo, rz, rm)
			if done == 0 {
				t.Skip("no vector epilogue at this level")
			}
			if !slices.Equal(got[:done], want[:done]) {
				t.Fatalf("trial %d (residual %v, zero %d, lo %d): vector %v, Go %v", trial, withRes, zero, lo, got[:done], want[:done])
			}
		}
	}
}

// TestQuantizeU8 checks the input quantization at every level against
// ONNX QuantizeLinear's rule computed in float64: x/scale in float32,
// rounded half to even, plus the zero point, saturated to 0…255, a NaN
// giving the zero point. Ties (a power-of-two scale makes x/scale exact),
// ±Inf and values that overflow the division, denormals and −0, lengths
// with a vector tail and across the parallel blocks.
func TestQuantizeU8(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	specials := []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-45, 0.25, 0.75, 1.25, -1.25, 63.75, 64.25, -0.25,
		3e38, -3e38, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e6, -1e6, 5e6}
	for _, n := range []int{1, 7, 8, 9, 31, 2*(1<<14) + 13} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 40)
			if r.IntN(4) == 0 {
				x[i] = specials[r.IntN(len(specials))]
			}
		}
		for _, scale := range []float32{0.5, 0.0173, 1e-30, 3e38} {
			for _, zero := range []int32{0, 3, 128, 255} {
				want := make([]uint8, n)
				for i, v := range x {
					f := v / scale
					q := float64(zero)
					if f == f {
						q = math.RoundToEven(float64(f)) + float64(zero)
					}
					want[i] = uint8(math.Max(0, math.Min(255, q)))
				}
				for _, l := range append([]Level{Generic}, levels()...) {
					prev := SetLevel(l)
					got := make([]uint8, n)
					QuantizeU8(x, scale, zero, got)
					SetLevel(prev)
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("%v n=%d scale %g zero %d: x[%d] = %g quantized to %d, want %d", l, n, scale, zero, i, x[i], got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// TestMaxPoolU8 compares the u8 max pooling with the float32 one on the
// same values (u8 values are exact in float32, and max commutes with the
// conversion), at every level: ResNet's 3×3/2 pooling with padding,
// channel counts with and without a vector tail, dilation and ceil mode.
func TestMaxPoolU8(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	shapes := []PoolShape{
		{N: 2, H: 11, W: 12, C: 64, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 9, W: 7, C: 37, KH: 2, KW: 3, SH: 1, SW: 2, DH: 2, DW: 1, PT: 1, PL: 0, PB: 0, PR: 1},
		{N: 1, H: 8, W: 8, C: 3, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, CeilMode: true},
	}
	for _, l := range append([]Level{Generic}, levels()...) {
		prev := SetLevel(l)
		for _, s := range shapes {
			x := make([]uint8, s.N*s.H*s.W*s.C)
			xf := make([]float32, len(x))
			for i := range x {
				x[i] = uint8(r.IntN(256))
				xf[i] = float32(x[i])
			}
			n := s.N * s.OH() * s.OW() * s.C
			y, yf := make([]uint8, n), make([]float32, n)
			MaxPoolU8(s, x, y)
			MaxPoolForward(s, xf, yf, make([]int32, n))
			for i := range y {
				if float32(y[i]) != yf[i] {
					t.Fatalf("%v %+v: output %d is %d, float32 pooling gives %v", l, s, i, y[i], yf[i])
				}
			}
		}
		SetLevel(prev)
	}
}

// A residual that is the output itself (added in place, as quant's
// runner does for a block's last convolution) gives the bytes of a
// separate one on every int8 path.
func TestInt8ConvInPlace(t *testing.T) {
	prev := Active()
	defer SetLevel(prev)
	r := rand.New(rand.NewPCG(18, 9))
	for i, s := range int8Shapes {
		c := newInt8Case(r, s, true, i%2 == 0, false)
		for _, l := range int8Paths(t) {
			SetLevel(l)
			want, _ := c.run()
			y := slices.Clone(c.ep.Res)
			ep := c.ep
			ep.Res = y
			Int8Conv(s, c.x, c.zx, c.w, &ep, y, nil)
			if !slices.Equal(y, want) {
				t.Fatalf("%v: shape %d %+v: in place differs from a separate residual", l, i, s)
			}
		}
	}
}

// The direct path's tile epilogue (AVX-512 where the CPU has it) writes
// what the Go loop writes, for full and partial channel blocks, on the
// edges of TestRequantizeVecMatchesGo, with and without a residual and a
// ReLU; the bytes around the tile's rows stay untouched.
func TestStoreTileMatchesGo(t *testing.T) {
	if !hasVNNI || active < AVX512 {
		t.Skip("the tile epilogue is the AVX-512 VNNI path's; this CPU or level has none")
	}
	r := rand.New(rand.NewPCG(8, 8))
	specials := []float32{0, 1e-4, -1e-4, 1, 1e6, -1e6, 3e38, -3e38, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), -float32(math.NaN())}
	for trial := range 1000 {
		rows, nc := 1+r.IntN(directMR), 32
		if trial%2 == 1 {
			nc = 1 + r.IntN(32)
		}
		nch, n0 := 80, r.IntN(80-nc+1)
		tile := make([]int32, rows*32)
		for i := range tile {
			tile[i] = int32(r.IntN(1<<20)) - 1<<19
		}
		ep := Int8Epilogue{Bias: make([]int32, nch), Mult: make([]float32, nch), Zero: int32(r.IntN(300)) - 20, ReLU: trial%3 == 0}
		for j := range nch {
			ep.Bias[j], ep.Mult[j] = int32(r.IntN(2000))-1000, float32(r.NormFloat64()*1e-3)
			if r.IntN(8) == 0 {
				ep.Mult[j] = specials[r.IntN(len(specials))]
			}
		}
		m0, size := r.IntN(3), (rows+4)*nch
		if trial%4 >= 2 {
			ep.Res = make([]uint8, size)
			for i := range ep.Res {
				ep.Res[i] = uint8(r.IntN(256))
			}
			ep.ResZero, ep.ResMult = int32(r.IntN(256)), float32(r.NormFloat64()*0.05)
			if trial%8 >= 6 {
				ep.ResMult = specials[r.IntN(len(specials))]
			}
		}
		got, want := make([]uint8, size), make([]uint8, size)
		for i := range got {
			got[i] = uint8(i)
			want[i] = uint8(i)
		}
		ep.storeTile(tile, m0, rows, nch, n0, nc, got)
		for row := range rows {
			ep.store(m0+row, nch, n0, tile[row*32:row*32+nc], want, nil)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (rows %d, channels %d at %d, zero %d, ReLU %v, residual %v): tile %v, Go %v", trial, rows, nc, n0, ep.Zero, ep.ReLU, ep.Res != nil, got, want)
		}
	}
}

// TestConvShapeKernelTallerThanInput: a kernel taller than the padded
// input with a stride above 1 has no output (Go's division of the
// negative span toward zero made it 1, and the direct kernels then read
// past the input), and Validate refuses it.
func TestConvShapeKernelTallerThanInput(t *testing.T) {
	s := ConvShape{N: 1, H: 4, W: 4, C: 4, OC: 32, KH: 3, KW: 1, SH: 2, SW: 1, DH: 2, DW: 1}
	if s.OH() != 0 || s.Validate() == nil {
		t.Fatalf("%+v: OH %d, Validate %v; want 0 and an error", s, s.OH(), s.Validate())
	}
}

// TestMaxPoolU8PaddingOnlyWindow: a window that covers only padding
// writes 0 (the float path's −Inf, quantized), not the buffer's old bytes.
func TestMaxPoolU8PaddingOnlyWindow(t *testing.T) {
	s := PoolShape{N: 1, H: 1, W: 1, C: 4, KH: 2, KW: 1, SH: 1, SW: 1, DH: 2, DW: 1, PT: 1, PB: 1}
	y := make([]uint8, s.N*s.OH()*s.OW()*s.C)
	for i := range y {
		y[i] = 99
	}
	MaxPoolU8(s, []uint8{1, 2, 3, 4}, y)
	for i, v := range y {
		if v != 0 {
			t.Fatalf("output %d is %d after a padding-only window, want 0", i, v)
		}
	}
}

// TestDirectEmptyOutput: a kernel wider than the input has no output
// (OW 0); the direct int8 and bf16 paths write nothing and return, as
// the references do, rather than dividing by the zero width.
func TestDirectEmptyOutput(t *testing.T) {
	s := ConvShape{N: 1, H: 4, W: 2, C: 4, OC: 8, KH: 1, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1}
	if s.OW() != 0 {
		t.Fatalf("OW %d, want 0", s.OW())
	}
	q := NewInt8Weights(make([]int8, 12*8), 12, 8)
	ep := &Int8Epilogue{Bias: make([]int32, 8), Mult: make([]float32, 8)}
	prev := Active()
	defer SetLevel(prev)
	for _, l := range append([]Level{Generic}, levels()...) {
		SetLevel(l)
		Int8Conv(s, make([]uint8, 32), 0, q, ep, nil, nil)
		ConvForwardEpilogueBF16(s, make([]float32, 32), make([]float32, 12*8), nil, ConvEpilogue[float32]{})
	}
}

// TestPackedDirectOneRowLength: the direct packing of a set of int8
// weights is made for one kernel row length; reading the same weights as
// another shape with the same K but rows cut elsewhere panics instead of
// summing the wrong products.
func TestPackedDirectOneRowLength(t *testing.T) {
	q := NewInt8Weights(make([]int8, 6*8), 6, 8)
	q.packedDirect(3)
	q.packedDirect(3)
	defer func() {
		if recover() == nil {
			t.Error("weights packed for rows of 3 read with rows of 6 without a panic")
		}
	}()
	q.packedDirect(6)
}

// TestStagePaddedMatchesPadU8: at stride 1 every range of padded pixels
// that int8ConvAMXStaged stages (stagePhase's one phase) equals the same
// range of padU8's whole padded copy (the slack past the last image
// included), over asymmetric borders wider than the kernel and ranges
// that start and end inside border and image rows.
func TestStagePaddedMatchesPadU8(t *testing.T) {
	r := rand.New(rand.NewPCG(40, 7))
	for trial := range 200 {
		s := ConvShape{N: 1 + r.IntN(3), H: 1 + r.IntN(6), W: 1 + r.IntN(7), C: 1 + r.IntN(5), OC: 1, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1,
			PT: r.IntN(3), PL: r.IntN(3), PB: r.IntN(3), PR: r.IntN(3)}
		h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
		x := make([]uint8, s.N*s.H*s.W*s.C)
		for i := range x {
			x[i] = uint8(r.IntN(256))
		}
		zx := uint8(r.IntN(256))
		pixels := s.N * h * wd
		slack := 2 * wd
		want := padU8(s, x, zx, h, wd, slack*s.C)
		q0 := r.IntN(pixels)
		count := 1 + r.IntN(pixels+slack-q0)
		got := make([]uint8, count*s.C)
		stagePhase(s, x, zx, h, wd, 0, 0, q0, count, got)
		if !slices.Equal(got, want[q0*s.C:(q0+count)*s.C]) {
			t.Fatalf("trial %d %+v: pixels [%d, %d) differ from padU8's", trial, s, q0, q0+count)
		}
		putBytes(want)
	}
}

// TestStagePhaseMatchesPadU8: every range of a phase's pixels that
// int8ConvAMXStaged stages at a stride above 1 is the padded input (padU8's
// copy) read at (st·py + ry, st·px + rx), the zero point past the padded
// image and the last image.
func TestStagePhaseMatchesPadU8(t *testing.T) {
	r := rand.New(rand.NewPCG(40, 8))
	for trial := range 200 {
		st := 2 + r.IntN(2)
		s := ConvShape{N: 1 + r.IntN(3), H: 1 + r.IntN(9), W: 1 + r.IntN(9), C: 1 + r.IntN(5), OC: 1, KH: 1 + r.IntN(4), KW: 1 + r.IntN(4), SH: st, SW: st, DH: 1, DW: 1,
			PT: r.IntN(3), PL: r.IntN(3), PB: r.IntN(3), PR: r.IntN(3)}
		if s.Validate() != nil {
			continue
		}
		h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
		hp, wp := s.OH()+(s.KH-1)/st, s.OW()+(s.KW-1)/st
		x := make([]uint8, s.N*s.H*s.W*s.C)
		for i := range x {
			x[i] = uint8(r.IntN(256))
		}
		zx := uint8(r.IntN(256))
		padded := padU8(s, x, zx, h, wd, 0)
		ry, rx := r.IntN(st), r.IntN(st)
		pixels := s.N * hp * wp
		q0 := r.IntN(pixels)
		count := 1 + r.IntN(pixels+2*wp-q0)
		got := make([]uint8, count*s.C)
		stagePhase(s, x, zx, hp, wp, ry, rx, q0, count, got)
		for q := q0; q < q0+count; q++ {
			n, py, px := q/(hp*wp), q%(hp*wp)/wp, q%wp
			want := make([]uint8, s.C)
			fillU8(want, zx)
			if y, x := st*py+ry, st*px+rx; n < s.N && y < h && x < wd {
				copy(want, padded[((n*h+y)*wd+x)*s.C:])
			}
			if g := got[(q-q0)*s.C : (q-q0+1)*s.C]; !slices.Equal(g, want) {
				t.Fatalf("trial %d %+v: phase (%d, %d) pixel %d = %v, want %v", trial, s, ry, rx, q, g, want)
			}
		}
		putBytes(padded)
	}
}
