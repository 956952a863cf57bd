package kernels

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
)

// TestFMA32 holds fma32 (ReLUAffine.Of's multiply-add) to x·y + z
// computed exactly with math/big and rounded once to float32 (big.Float's
// Float32: nearest, ties to even, subnormals included), on random
// operands, cancelling sums, sums at float32 ties and subnormal results.
func TestFMA32(t *testing.T) {
	r := rand.New(rand.NewPCG(30, 1))
	exact := func(x, y, z float32) float32 {
		p := new(big.Float).SetPrec(300).SetFloat64(float64(x))
		p.Mul(p, new(big.Float).SetFloat64(float64(y)))
		p.Add(p, new(big.Float).SetFloat64(float64(z)))
		f, _ := p.Float32()
		return f
	}
	check := func(x, y, z float32) {
		if got, want := fma32(x, y, z), exact(x, y, z); math.Float32bits(got) != math.Float32bits(want) && !(got == 0 && want == 0) {
			t.Fatalf("fma32(%g, %g, %g) = %g (%#08x), want %g (%#08x)", x, y, z, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
	for range 200000 {
		x, y := float32(r.NormFloat64()), float32(r.NormFloat64())
		check(x, y, float32(r.NormFloat64()))
		// z cancelling most of the product: the sum keeps the product's low bits.
		check(x, y, -float32(float64(x)*float64(y)))
		// z half a float32 step from the product's rounding: ties and near-ties.
		p := float32(float64(x) * float64(y))
		step := math.Nextafter32(p, float32(math.Inf(1))) - p
		check(x, y, step/2*float32(r.IntN(3)-1)-p+p)
		// Subnormal results.
		check(x*0x1p-70, y*0x1p-70, float32(r.NormFloat64())*0x1p-140)
	}
}

// TestReLUAffineConversions holds the assembly conversions of a
// ReLUAffine's outputs (toBF16ReLUAffineNE, pairBF16ReLUAffineNE) to
// their definition, BF16FromFloat32(Of(x)) and bf16Pair of two, bit for
// bit: maps giving negative, zero, subnormal (rounded, not flushed) and
// NaN outputs, a zero second image, runs of 16 and 32 values.
func TestReLUAffineConversions(t *testing.T) {
	const c = 48
	if !reluAffineFast(c) {
		t.Skip("no AVX512-BF16 conversions here (CPU, or RESIDUAL_KERNELS below avx512): the Go loops are the definition")
	}
	r := rand.New(rand.NewPCG(30, 2))
	in := &ReLUAffine{Scale: kt.RandF32(r, c), Shift: kt.RandF32(r, c)}
	in.Scale[3], in.Shift[3] = 0x1p-100, 0                      // subnormal outputs for |x| < 2⁻²⁶
	in.Scale[5], in.Shift[5] = 0, float32(math.Copysign(0, -1)) // ±0 outputs
	for _, n := range []int{16, 32, 48, 96, 48 * 7} {
		a, b := kt.RandF32(r, n), kt.RandF32(r, n)
		for i := range a {
			if i%c == 3 {
				a[i] *= 0x1p-30
			}
		}
		if n > 40 {
			a[40] = float32(math.NaN())
		}
		u := make([]uint16, n)
		toBF16ReLUAffineFast(u, a, in, c)
		for i, v := range a {
			if want := BF16FromFloat32(in.Of(v, i%c)); u[i] != want {
				t.Fatalf("n=%d: element %d (%g, channel %d) converts to %#04x, want %#04x", n, i, v, i%c, u[i], want)
			}
		}
		for _, second := range [][]float32{b, nil} {
			p := make([]uint32, n)
			pairReLUAffineFast(p, a, second, in, c)
			for i, v := range a {
				var hi float32
				if second != nil {
					hi = in.Of(second[i], i%c)
				}
				if want := bf16Pair(in.Of(v, i%c), hi); p[i] != want {
					t.Fatalf("n=%d second=%v: pair %d is %#08x, want %#08x", n, second != nil, i, p[i], want)
				}
			}
		}
	}
}

// TestBatchNormMaskFromX holds the training backward pass with the
// ReLU's mask recomputed from x (Fused.Mask) to the pass that reads the
// stored output's zeros, bit for bit: dx, dgamma and dbeta, narrow and
// wide rows (the column and row kernels), on AVX-512's kernels and, below
// it, on the reference (which the masked pass takes there), the map
// BatchNormTrainStats returns (whose statistics and
// running statistics match BatchNormTrainForward's).
func TestBatchNormMaskFromX(t *testing.T) {
	r := rand.New(rand.NewPCG(30, 3))
	for _, l := range append([]Level{Generic}, levels()...) {
		for _, sh := range []struct{ m, c int }{{700, 32}, {300, 128}, {5, 16}, {8192, 32}} { // the last 1 MB: streamed stores
			t.Run(fmt.Sprintf("%v/%dx%d", l, sh.m, sh.c), func(t *testing.T) {
				defer SetLevel(SetLevel(l))
				m, c := sh.m, sh.c
				x, dy := kt.RandF32(r, m*c), kt.RandF32(r, m*c)
				gamma, beta := kt.RandF32(r, c), kt.RandF32(r, c)
				y := make([]float32, m*c)
				mean, invStd := make([]float32, c), make([]float32, c)
				rm, rv := make([]float32, c), make([]float32, c)
				BatchNormTrainForward(m, c, x, gamma, beta, y, mean, invStd, rm, rv, 0.1, 1e-5, Fused[float32]{ReLU: true})
				mean2, invStd2 := make([]float32, c), make([]float32, c)
				rm2, rv2 := make([]float32, c), make([]float32, c)
				in, ok := BatchNormTrainStats(m, c, x, gamma, beta, mean2, invStd2, rm2, rv2, 0.1, 1e-5, nil)
				if !ok {
					if chanOK(c) {
						t.Fatal("BatchNormTrainStats refused a shape the per-channel kernels take")
					}
					t.Skip("no per-channel kernels at this level: BatchNormTrainStats reports false, as it must")
				}
				for j := range c {
					if mean[j] != mean2[j] || invStd[j] != invStd2[j] || rm[j] != rm2[j] || rv[j] != rv2[j] {
						t.Fatalf("channel %d: statistics differ from BatchNormTrainForward's", j)
					}
				}
				z := make([]float32, m*c)
				ApplyReLUAffine(m, c, x, in, z)
				zeros := 0
				for i := range y {
					if math.Float32bits(z[i]) != math.Float32bits(y[i]) {
						t.Fatalf("ApplyReLUAffine: element %d is %g, BatchNormTrainForward stored %g", i, z[i], y[i])
					}
					if y[i] == 0 {
						zeros++
					}
				}
				if zeros == 0 || zeros == len(y) {
					t.Fatalf("%d of %d outputs masked: the test masks nothing or everything", zeros, len(y))
				}
				dx1, dx2 := make([]float32, m*c), make([]float32, m*c)
				dg1, db1, dg2, db2 := make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c)
				stored := BatchNormTrainBackward
				if !maskKernelsOK() { // the masked pass runs the reference here: hold it to the reference's
					stored = batchNormTrainBackwardRef[float32]
				}
				stored(m, c, x, gamma, mean, invStd, dy, dx1, dg1, db1, Fused[float32]{ReLU: true, Y: y})
				BatchNormTrainBackward(m, c, x, gamma, mean, invStd, dy, dx2, dg2, db2, Fused[float32]{ReLU: true, Mask: in})
				for i := range dx1 {
					if math.Float32bits(dx1[i]) != math.Float32bits(dx2[i]) {
						t.Fatalf("dx[%d]: %g from the mask recomputed, %g from the stored output", i, dx2[i], dx1[i])
					}
				}
				for j := range c {
					if dg1[j] != dg2[j] || db1[j] != db2[j] {
						t.Fatalf("channel %d: dgamma %g/%g, dbeta %g/%g (recomputed/stored)", j, dg2[j], dg1[j], db2[j], db1[j])
					}
				}
			})
		}
	}
}

// TestConvReLUAffineBF16 holds the convolution that reads a ReLUAffine's
// outputs (forward, and the weight gradient on AMX tiles) to the same
// convolution of the stored outputs (ApplyReLUAffine), bit for bit: 3×3
// padded, strided, 1×1, an odd batch (a zero image closes the weight
// gradient's pairs), an unfolded shape (KW·C = 32), 16 to 48 channels.
func TestConvReLUAffineBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(30, 4))
	ran, refused := 0, 0
	for _, s := range []ConvShape{
		{N: 3, H: 9, W: 7, C: 16, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 10, W: 10, C: 48, OC: 40, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 5, H: 6, W: 6, C: 32, OC: 64, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 2, H: 8, W: 8, C: 16, OC: 16, KH: 2, KW: 2, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1},
		{N: 2, H: 9, W: 9, C: 32, OC: 16, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, // refused by the AMX weight gradient
	} {
		if !ConvReLUAffineBF16OK(s) {
			continue
		}
		ran++
		x, w := kt.RandF32(r, s.N*s.H*s.W*s.C), kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
		in := &ReLUAffine{Scale: kt.RandF32(r, s.C), Shift: kt.RandF32(r, s.C)}
		z := make([]float32, len(x))
		ApplyReLUAffine(s.N*s.H*s.W, s.C, x, in, z)
		n := s.N * s.OH() * s.OW() * s.OC
		y1, y2 := make([]float32, n), make([]float32, n)
		ConvForwardEpilogueBF16(s, z, w, y1, ConvEpilogue[float32]{})
		ConvForwardReLUAffineBF16(s, x, in, w, y2, ConvEpilogue[float32]{})
		for i := range y1 {
			if math.Float32bits(y1[i]) != math.Float32bits(y2[i]) {
				t.Fatalf("%+v: output %d is %g through the map, %g from the stored outputs", s, i, y2[i], y1[i])
			}
		}
		dy := kt.RandF32(r, n)
		dw1, dw2 := make([]float32, len(w)), make([]float32, len(w))
		ConvBackwardWeightBF16(s, z, dy, dw1)
		if !ConvBackwardWeightReLUAffineBF16(s, x, in, dy, dw2) {
			if amxGradOK(s) {
				t.Fatalf("%+v: the weight gradient through the map refused a shape the AMX tiles take", s)
			}
			refused++
			continue
		}
		for i := range dw1 {
			if math.Float32bits(dw1[i]) != math.Float32bits(dw2[i]) {
				t.Fatalf("%+v: weight gradient %d is %g through the map, %g from the stored outputs", s, i, dw2[i], dw1[i])
			}
		}
	}
	if ran == 0 {
		t.Skip("no AVX512-BF16 direct kernels here (CPU, RESIDUAL_KERNELS or RESIDUAL_BF16): no shape reads through a map")
	}
	if refused == 0 {
		t.Error("the odd padded image with stride 2 was not refused by the weight gradient through the map")
	}
}
