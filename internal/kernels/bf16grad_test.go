package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
)

// TestConvGradFromBF16 holds the convolution's backward pass on an output
// gradient stored as bfloat16 (ConvBackwardDataFromBF16, with and without
// the addition, and ConvBackwardWeightFromBF16, through a map and not) to
// the float32 entry points on the same gradient widened (which convert it
// back to the same bits), bit for bit: stride 1 and 2, padded 3×3, 1×1
// plain and strided (gathered), an odd batch.
func TestConvGradFromBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 1))
	ran := 0
	for _, s := range []ConvShape{
		{N: 3, H: 9, W: 7, C: 16, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 10, W: 10, C: 48, OC: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 5, H: 6, W: 6, C: 32, OC: 64, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 2, H: 8, W: 8, C: 32, OC: 64, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
		{N: 1, H: 9, W: 9, C: 16, OC: 48, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		// Phases a stride-2 data gradient refuses: ConvGradBF16OK must say so.
		{N: 2, H: 10, W: 10, C: 16, OC: 16, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 2, PL: 2, PB: 2, PR: 2},
		{N: 2, H: 10, W: 10, C: 16, OC: 16, KH: 4, KW: 4, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3},
	} {
		if !ConvGradBF16OK(s) {
			continue
		}
		ran++
		x, w := kt.RandF32(r, s.N*s.H*s.W*s.C), kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
		n := s.N * s.OH() * s.OW() * s.OC
		dyb := make([]uint16, n)
		ToBF16(dyb, kt.RandF32(r, n))
		dy := make([]float32, n)
		FromBF16(dy, dyb)
		for _, add := range []bool{false, true} {
			base := kt.RandF32(r, len(x))
			dx1, dx2 := append([]float32(nil), base...), append([]float32(nil), base...)
			if !ConvBackwardDataFromBF16(s, dyb, w, dx1, add) {
				t.Fatalf("%+v: the data gradient refused a bfloat16 gradient ConvGradBF16OK promised", s)
			}
			if add {
				ConvBackwardDataAddBF16(s, dy, w, dx2)
			} else {
				ConvBackwardDataBF16(s, dy, w, dx2)
			}
			for i := range dx1 {
				if math.Float32bits(dx1[i]) != math.Float32bits(dx2[i]) {
					t.Fatalf("%+v add=%v: dx[%d] %g from bfloat16, %g from float32", s, add, i, dx1[i], dx2[i])
				}
			}
		}
		var maps []*ReLUAffine
		if ConvReLUAffineBF16OK(s) {
			maps = append(maps, &ReLUAffine{Scale: kt.RandF32(r, s.C), Shift: kt.RandF32(r, s.C)})
		}
		for _, in := range append([]*ReLUAffine{nil}, maps...) {
			dw1, dw2 := make([]float32, len(w)), make([]float32, len(w))
			if !ConvBackwardWeightFromBF16(s, x, in, dyb, dw1) {
				t.Fatalf("%+v map=%v: the weight gradient refused a bfloat16 gradient ConvGradBF16OK promised", s, in != nil)
			}
			if in == nil {
				ConvBackwardWeightBF16(s, x, dy, dw2)
			} else if !ConvBackwardWeightReLUAffineBF16(s, x, in, dy, dw2) {
				t.Fatalf("%+v: the float32 weight gradient through the map refused", s)
			}
			for i := range dw1 {
				if math.Float32bits(dw1[i]) != math.Float32bits(dw2[i]) {
					t.Fatalf("%+v map=%v: dw[%d] %g from bfloat16, %g from float32", s, in != nil, i, dw1[i], dw2[i])
				}
			}
		}
	}
	if ran == 0 {
		t.Skip("no AMX-BF16 tiles here (CPU, system, RESIDUAL_AMX=0 or RESIDUAL_KERNELS): no shape takes a bfloat16 gradient")
	}
}

// TestBatchNormBackwardToBF16 holds the batch norm's backward pass storing
// dx as bfloat16 to BF16FromFloat32 of the float32 pass's dx, bit for
// bit, and its dgamma and dbeta to that pass's: the stored mask, the mask
// from x, the skip's gradient written, narrow and wide rows, and values
// that round to subnormals (the vectors VCVTNE2PS2BF16 would flush).
func TestBatchNormBackwardToBF16(t *testing.T) {
	if !toBF16DXOK(16) {
		t.Skip("no AVX-512 with AVX512-BF16 here: BatchNormTrainBackwardToBF16 reports false")
	}
	r := rand.New(rand.NewPCG(31, 2))
	for _, sh := range []struct{ m, c int }{{700, 32}, {300, 128}, {9, 16}} {
		for _, mode := range []string{"mask", "mask-from-x", "skip"} {
			t.Run(fmt.Sprintf("%dx%d/%s", sh.m, sh.c, mode), func(t *testing.T) {
				m, c := sh.m, sh.c
				x, dy := kt.RandF32(r, m*c), kt.RandF32(r, m*c)
				for i := 0; i < len(dy); i += 7 {
					dy[i] *= 0x1p-128 // subnormal once scaled
				}
				gamma, beta := kt.RandF32(r, c), kt.RandF32(r, c)
				y := make([]float32, m*c)
				mean, invStd := make([]float32, c), make([]float32, c)
				f := Fused[float32]{ReLU: true}
				var skip []float32
				if mode == "skip" {
					skip = kt.RandF32(r, m*c)
					f.Skip = skip
				}
				BatchNormTrainForward(m, c, x, gamma, beta, y, mean, invStd, nil, nil, 0.1, 1e-5, f)
				back := Fused[float32]{ReLU: true, Y: y}
				switch mode {
				case "mask-from-x":
					in, _ := BatchNormTrainStats(m, c, x, gamma, beta, make([]float32, c), make([]float32, c), nil, nil, 0.1, 1e-5, nil)
					back = Fused[float32]{ReLU: true, Mask: in}
				case "skip":
					back.DSkip = make([]float32, m*c)
				}
				dx := make([]float32, m*c)
				dg1, db1 := make([]float32, c), make([]float32, c)
				b1 := back
				if back.DSkip != nil {
					b1.DSkip = make([]float32, m*c)
				}
				BatchNormTrainBackward(m, c, x, gamma, mean, invStd, dy, dx, dg1, db1, b1)
				dxb := make([]uint16, m*c)
				dg2, db2 := make([]float32, c), make([]float32, c)
				if !BatchNormTrainBackwardToBF16(m, c, x, gamma, mean, invStd, dy, dxb, dg2, db2, back) {
					t.Fatal("refused where toBF16DXOK holds")
				}
				for i, v := range dx {
					if want := BF16FromFloat32(v); dxb[i] != want {
						t.Fatalf("dx[%d]: %#04x, want %#04x (%g)", i, dxb[i], want, v)
					}
				}
				for j := range c {
					if dg1[j] != dg2[j] || db1[j] != db2[j] {
						t.Fatalf("channel %d: dgamma/dbeta differ", j)
					}
				}
				for i := range b1.DSkip {
					if b1.DSkip[i] != back.DSkip[i] {
						t.Fatalf("the skip's gradient differs at %d", i)
					}
				}
			})
		}
	}
}

// TestChanAffine2ToBF16Subnormal drives the bfloat16-storing pass with
// coefficients that make every other vector's outputs subnormal: they
// must round as BF16FromFloat32 rounds them (not flush to zero, as
// VCVTNE2PS2BF16 would), bit for bit against the float32 pass.
func TestChanAffine2ToBF16Subnormal(t *testing.T) {
	if !toBF16DXOK(32) {
		t.Skip("no AVX-512 with AVX512-BF16 here")
	}
	r := rand.New(rand.NewPCG(31, 3))
	const m, c = 40, 32
	x, dy := kt.RandF32(r, m*c), kt.RandF32(r, m*c)
	a, k, b := make([]float32, c), make([]float32, c), make([]float32, c)
	for j := range c {
		a[j] = 1
		if j < 16 {
			a[j] = 0x1p-133 // channels 0–15: subnormal outputs
		}
	}
	dx := make([]float32, m*c)
	chanAffine2_32(x, dy, nil, m, c, a, k, b, dx)
	dxb := make([]uint16, m*c)
	chanAffine2ToBF16(x, dy, nil, m, c, a, k, b, nil, dxb)
	sub := 0
	for i, v := range dx {
		if v != 0 && math.Abs(float64(v)) < 0x1p-126 {
			sub++
		}
		if want := BF16FromFloat32(v); dxb[i] != want {
			t.Fatalf("dx[%d] = %g: %#04x, want %#04x", i, v, dxb[i], want)
		}
	}
	if sub == 0 {
		t.Fatal("no subnormal output: the test does not reach the rounding path")
	}
}

// TestConvBackwardDataSums holds ConvBackwardDataSumsFromBF16 to
// ConvBackwardDataFromBF16, with and without the addition, and its batch
// norm sums to their float64 sums from that dx: per channel Σg and
// Σg·(x − mean), g = dx where the ReLU passes, its mask from x through a
// map (dx bit for bit as without the sums) or from a stored output y (dx
// stored masked: g bit for bit). Its float32 partial sums over at most 256
// positions (and the rounded x − mean) bound the error by γ₂₆₀ = 260u/(1 −
// 260u), u = 2⁻²⁴, of the sum of the terms' magnitudes. Channels that are
// not a multiple of 16, or from wideRow on, are not summed (Done false),
// their dx is as without.
func TestConvBackwardDataSums(t *testing.T) {
	if !AMXBF16() {
		t.Skip("no AMX-BF16 tiles here (CPU, system, RESIDUAL_AMX=0 or RESIDUAL_KERNELS): the sums are computed on them only")
	}
	r := rand.New(rand.NewPCG(37, 2))
	gamma := func(n float64) float64 { u := math.Ldexp(1, -24); return n * u / (1 - n*u) }
	for _, s := range []ConvShape{
		{N: 3, H: 9, W: 7, C: 16, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 5, H: 8, W: 8, C: 64, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 12, W: 11, C: 48, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 4, H: 6, W: 6, C: 32, OC: 64, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 2, H: 7, W: 9, C: 24, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 5, W: 5, C: 128, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	} {
		if !ConvGradBF16OK(s) {
			t.Fatalf("%+v: no bfloat16 gradient on AMX", s)
		}
		w := kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
		n := s.N * s.OH() * s.OW() * s.OC
		dyb := make([]uint16, n)
		ToBF16(dyb, kt.RandF32(r, n))
		m := s.N * s.H * s.W
		x, mean := kt.RandF32(r, m*s.C), kt.RandF32(r, s.C)
		ma := &ReLUAffine{Scale: kt.RandF32(r, s.C), Shift: kt.RandF32(r, s.C)}
		y := make([]float32, m*s.C) // a ReLU's output: zeros where it masks
		for i, v := range kt.RandF32(r, m*s.C) {
			y[i] = max(v, 0)
		}
		for _, add := range []bool{false, true} {
			for _, fromY := range []bool{false, true} {
				name := fmt.Sprintf("%+v add=%v mask from y=%v", s, add, fromY)
				gs := &DataGradSums{X: x, Mean: mean, Mask: ma}
				passes := func(i int) bool { return ma.Of(x[i], i%s.C) != 0 }
				if fromY {
					gs = &DataGradSums{X: x, Mean: mean, Y: y}
					passes = func(i int) bool { return y[i] != 0 }
				}
				base := kt.RandF32(r, m*s.C)
				dx1, dx2 := append([]float32(nil), base...), append([]float32(nil), base...)
				if !ConvBackwardDataSumsFromBF16(s, dyb, w, dx1, add, gs) || !ConvBackwardDataFromBF16(s, dyb, w, dx2, add) {
					t.Fatalf("%s: the data gradient refused a bfloat16 gradient ConvGradBF16OK promised", name)
				}
				if gs.Done != (s.C%16 == 0 && s.C < wideRow) {
					t.Fatalf("%s: Done %v for %d channels", name, gs.Done, s.C)
				}
				masked := gs.Done && fromY
				for i := range dx1 {
					want := dx2[i]
					if masked && !passes(i) {
						want = 0
					}
					if math.Float32bits(dx1[i]) != math.Float32bits(want) {
						t.Fatalf("%s: dx[%d] %g with the sums, want %g", name, i, dx1[i], want)
					}
				}
				if !gs.Done {
					continue
				}
				want, mag := make([]float64, 2*s.C), make([]float64, 2*s.C)
				passed := 0
				for i, g := range dx2 {
					j := i % s.C
					if !passes(i) {
						continue
					}
					passed++
					d := float64(g) * (float64(x[i]) - float64(mean[j]))
					want[j] += float64(g)
					want[s.C+j] += d
					mag[j] += math.Abs(float64(g))
					mag[s.C+j] += math.Abs(d)
				}
				if passed == 0 || passed == len(dx2) {
					t.Fatalf("%s: the mask passes %d of %d: the test needs both", name, passed, len(dx2))
				}
				for j := range want {
					if tol := gamma(260) * mag[j]; math.Abs(gs.Sums[j]-want[j]) > tol {
						t.Fatalf("%s: sum %d is %g, want %g ± %g", name, j, gs.Sums[j], want[j], tol)
					}
				}
			}
		}
	}
}
