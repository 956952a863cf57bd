//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
)

// TestBatchNormBackwardSums holds the training backward pass given its
// first pass's sums (Fused.Sums) and a gradient masked already by the
// stored output's zeros (as a convolution's data gradient stores it:
// DataGradSums.Y) to the pass that makes the sums itself from the raw
// gradient, bit for bit, with the same sums (chanSums32's): dx in float32
// and in bfloat16, dgamma, dbeta and the skip's gradient, which is the
// masked gradient — in a buffer of its own, in the gradient's own buffer,
// or not asked for — on each level with per-channel kernels, narrow and
// wide rows.
func TestBatchNormBackwardSums(t *testing.T) {
	r := rand.New(rand.NewPCG(30, 4))
	for _, l := range levels() {
		for _, sh := range []struct{ m, c int }{{700, 32}, {300, 128}, {5, 16}} {
			for _, skip := range []string{"none", "own", "in place"} {
				t.Run(fmt.Sprintf("%v/%dx%d/skip %s", l, sh.m, sh.c, skip), func(t *testing.T) {
					defer SetLevel(SetLevel(l))
					m, c := sh.m, sh.c
					if !chanOK(c) {
						t.Skipf("no per-channel kernels for %d channels at this level: the sums are not taken", c)
					}
					x, dy := kt.RandF32(r, m*c), kt.RandF32(r, m*c)
					gamma, beta := kt.RandF32(r, c), kt.RandF32(r, c)
					y := make([]float32, m*c)
					mean, invStd := make([]float32, c), make([]float32, c)
					BatchNormTrainForward(m, c, x, gamma, beta, y, mean, invStd, nil, nil, 0.1, 1e-5, Fused[float32]{ReLU: true, Skip: kt.RandF32(r, m*c)})
					masked := make([]float32, m*c)
					for i, v := range dy {
						if y[i] != 0 {
							masked[i] = v
						}
					}
					sums := chanSums32(x, dy, y, nil, m, c, mean)
					type out struct {
						dx, dskip, dg, db []float32
						dxb               []uint16
					}
					run := func(withSums bool, bf16 bool) out {
						g := append([]float32(nil), dy...)
						f := Fused[float32]{ReLU: true, Y: y}
						if withSums {
							copy(g, masked)
							f.Sums = append([]float64(nil), sums...) // the batch norm turns them in place
						}
						switch skip {
						case "own":
							f.DSkip = make([]float32, m*c)
						case "in place":
							f.DSkip = g
						}
						o := out{dg: make([]float32, c), db: make([]float32, c)}
						if bf16 {
							o.dxb = make([]uint16, m*c)
							if !BatchNormTrainBackwardToBF16(m, c, x, gamma, mean, invStd, g, o.dxb, o.dg, o.db, f) {
								t.Fatal("BatchNormTrainBackwardToBF16 refused what BatchNormBackwardToBF16OK promised")
							}
						} else {
							o.dx = make([]float32, m*c)
							BatchNormTrainBackward(m, c, x, gamma, mean, invStd, g, o.dx, o.dg, o.db, f)
						}
						o.dskip = f.DSkip
						return o
					}
					modes := []bool{false}
					if BatchNormBackwardToBF16OK(c, false) {
						modes = append(modes, true)
					}
					for _, bf16 := range modes {
						want, got := run(false, bf16), run(true, bf16)
						same := func(what string, a, b []float32) {
							for i := range a {
								if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
									t.Fatalf("bf16=%v %s[%d]: %g with the sums, %g without", bf16, what, i, b[i], a[i])
								}
							}
						}
						same("dx", want.dx, got.dx)
						same("dgamma", want.dg, got.dg)
						same("dbeta", want.db, got.db)
						same("the skip's gradient", want.dskip, got.dskip)
						for i := range want.dxb {
							if want.dxb[i] != got.dxb[i] {
								t.Fatalf("bf16 dx[%d]: %#04x with the sums, %#04x without", i, got.dxb[i], want.dxb[i])
							}
						}
					}
				})
			}
		}
	}
}

// TestInputStoredBF16 holds a bfloat16 convolution of an input stored as
// bfloat16 (ConvForwardFromBF16, ConvBackwardWeightInputsBF16) to the same
// convolution of the float32 input, bit for bit — 3×3 stride 1 and 2, 1×1,
// 16 to 64 channels, an odd batch (a zero image closes the weight
// gradient's last pair), inputs with subnormals (the rounding's integer
// path) — where the copy is the one a training batch norm stores beside
// its output (Fused.YB, chanAffineToBF16512), whose float32 output must be
// as without it and whose copy must be BF16FromFloat32 of it.
func TestInputStoredBF16(t *testing.T) {
	if !AMXBF16() || !BatchNormForwardToBF16OK(16) {
		t.Skip("no AMX-BF16 tiles or AVX512-BF16 conversions here: no input is stored as bfloat16")
	}
	r := rand.New(rand.NewPCG(30, 5))
	for _, s := range []ConvShape{
		{N: 3, H: 9, W: 7, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 8, W: 8, C: 32, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 3, H: 8, W: 8, C: 16, OC: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 6, W: 6, C: 64, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 5, H: 6, W: 6, C: 64, OC: 32, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 5, H: 8, W: 8, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, // 320 rows: the batch norm's chunks of 256
	} {
		if !InputBF16OK(s) {
			t.Fatalf("%+v: InputBF16OK refuses a shape of the direct kernels on AMX", s)
		}
		m := s.N * s.H * s.W
		x, skip := kt.RandF32(r, m*s.C), kt.RandF32(r, m*s.C)
		y1, y2 := make([]float32, m*s.C), make([]float32, m*s.C)
		xb := make([]uint16, m*s.C)
		mean, invStd := make([]float32, s.C), make([]float32, s.C)
		BatchNormTrainForward(m, s.C, x, nil, nil, y1, mean, invStd, nil, nil, 0.1, 1e-5, Fused[float32]{Skip: skip, ReLU: true})
		BatchNormTrainForward(m, s.C, x, nil, nil, y2, mean, invStd, nil, nil, 0.1, 1e-5, Fused[float32]{Skip: skip, ReLU: true, YB: xb})
		for i := range y1 {
			if math.Float32bits(y1[i]) != math.Float32bits(y2[i]) {
				t.Fatalf("%+v: output[%d] %g with the bfloat16 copy, %g without", s, i, y2[i], y1[i])
			}
			if want := BF16FromFloat32(y1[i]); xb[i] != want {
				t.Fatalf("%+v: copy[%d] %#04x of %g, want %#04x", s, i, xb[i], y1[i], want)
			}
		}
		// Subnormal inputs, through the same kernel as an identity map
		// (scale 1, shift 0, no ReLU): the copy rounds them the integer way.
		for i := 0; i < len(y1); i += 37 {
			y1[i] = math.Float32frombits(uint32(1+i*7919%0x7fffff) | uint32(i%2)<<31)
		}
		one, zero := make([]float32, s.C), make([]float32, s.C)
		for j := range one {
			one[j] = 1
		}
		for _, stream := range []bool{true, false} { // streamed stores where y is 64-byte aligned (TestAffineCopyStreamed makes sure), then cached
			chanAffineTo(y1, nil, m, s.C, one, zero, y2, xb, false, stream)
			for i := range y1 {
				if math.Float32bits(y1[i]) != math.Float32bits(y2[i]) || xb[i] != BF16FromFloat32(y1[i]) {
					t.Fatalf("%+v stream=%v: identity[%d] of %g: %g, copy %#04x, want %#04x", s, stream, i, y1[i], y2[i], xb[i], BF16FromFloat32(y1[i]))
				}
			}
		}
		w := kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
		n := s.N * s.OH() * s.OW() * s.OC
		o1, o2 := make([]float32, n), make([]float32, n)
		ConvForwardEpilogueBF16(s, y1, w, o1, ConvEpilogue[float32]{})
		ConvForwardFromBF16(s, xb, w, o2, ConvEpilogue[float32]{})
		for i := range o1 {
			if math.Float32bits(o1[i]) != math.Float32bits(o2[i]) {
				t.Fatalf("%+v: forward[%d] %g from bfloat16, %g from float32", s, i, o2[i], o1[i])
			}
		}
		dyb := make([]uint16, n)
		ToBF16(dyb, kt.RandF32(r, n))
		dw1, dw2 := make([]float32, len(w)), make([]float32, len(w))
		if !ConvBackwardWeightFromBF16(s, y1, nil, dyb, dw1) || !ConvBackwardWeightInputsBF16(s, xb, dyb, dw2) {
			t.Fatalf("%+v: a weight gradient refused", s)
		}
		for i := range dw1 {
			if math.Float32bits(dw1[i]) != math.Float32bits(dw2[i]) {
				t.Fatalf("%+v: dw[%d] %g from bfloat16, %g from float32", s, i, dw2[i], dw1[i])
			}
		}
	}
}

// TestAffineCopyStreamed holds chanAffineTo's bfloat16 copy to
// BF16FromFloat32 of its float32 output where the output is stored with
// streaming stores (1 MiB, a 64-byte aligned buffer), subnormals among
// the values, with a skip addition and a ReLU, over the batch norm's
// chunks of 256 rows.
func TestAffineCopyStreamed(t *testing.T) {
	if !BatchNormForwardToBF16OK(16) {
		t.Skip("no AVX512-BF16 conversions at this level: no output is copied to bfloat16")
	}
	r := rand.New(rand.NewPCG(30, 6))
	m, c := 16384, 16
	x, skip := kt.RandF32(r, m*c), kt.RandF32(r, m*c)
	for i := 0; i < len(x); i += 29 {
		x[i], skip[i] = math.Float32frombits(uint32(1+i%0x7fffff)), 0
	}
	scale, shift := make([]float32, c), make([]float32, c)
	for j := range scale {
		scale[j] = 1
	}
	y, yc, yb := make([]float32, m*c), make([]float32, m*c), make([]uint16, m*c)
	if uintptr(unsafe.Pointer(&y[0]))%64 != 0 {
		t.Skip("the runtime gave a 1 MiB buffer not aligned to 64 bytes: no streaming stores")
	}
	chanAffineTo(x, skip, m, c, scale, shift, y, yb, true, true)
	chanAffine32(x, skip, m, c, scale, shift, yc, true, false)
	for i := range y {
		if math.Float32bits(y[i]) != math.Float32bits(yc[i]) || yb[i] != BF16FromFloat32(y[i]) {
			t.Fatalf("[%d]: %g streamed (cached %g), copy %#04x, want %#04x", i, y[i], yc[i], yb[i], BF16FromFloat32(y[i]))
		}
	}
}
