package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
)

// levels returns the assembly levels this CPU can run.
func levels() []Level {
	var ls []Level
	for _, l := range []Level{AVX2, AVX512} {
		if l <= detect() {
			ls = append(ls, l)
		}
	}
	return ls
}

// convShapes covers every shape family the networks use plus odd sizes,
// tails (output widths not a multiple of the tile, channel counts of one
// vector), asymmetric padding, dilation and padding wider than the kernel.
func convShapes(r *rand.Rand) []ConvShape {
	sh := []ConvShape{
		{N: 2, H: 9, W: 11, C: 16, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 9, W: 9, C: 16, OC: 48, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 8, W: 8, C: 24, OC: 64, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 2, H: 7, W: 9, C: 32, OC: 16, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
		{N: 1, H: 19, W: 17, C: 3, OC: 16, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3},
		{N: 2, H: 10, W: 12, C: 8, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 1, H: 30, W: 33, C: 5, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 8, W: 9, C: 16, OC: 16, KH: 3, KW: 2, SH: 2, SW: 1, DH: 1, DW: 1, PT: 0, PL: 1, PB: 2, PR: 0},
		{N: 1, H: 9, W: 9, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 2, DW: 2, PT: 2, PL: 2, PB: 2, PR: 2},
		{N: 1, H: 4, W: 3, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 4, PL: 4, PB: 4, PR: 4},
		{N: 3, H: 1, W: 29, C: 40, OC: 80, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1}, // a GEMM
		// Row-of-three kernels: interiors of 31 and 18 columns (several
		// tiles), one- and two-vector blocks, padded and valid.
		{N: 2, H: 6, W: 33, C: 16, OC: 48, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 5, W: 20, C: 8, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1},
		// Batches large enough for whole images per goroutine (N ≥
		// 4·GOMAXPROCS on up to 16 cores), padded and strided.
		{N: 65, H: 4, W: 5, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 65, H: 5, W: 5, C: 16, OC: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		// Over maxCachedWeights of weights (1.3 MB): block-outside loop
		// order forward and backward-data, the weight gradient's tiles
		// shared out (few output pixels); with few images and with whole
		// images per goroutine.
		{N: 2, H: 5, W: 6, C: 192, OC: 192, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 65, H: 3, W: 2, C: 192, OC: 192, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		// 1×1 weight gradients of that size on panels
		// (weightGrad1x1Panels): the output gradient's blocks outside,
		// then the input's, with padding the panels fill with zeros; and
		// blocks of two widths, which share their tiles out in place.
		{N: 2, H: 7, W: 7, C: 272, OC: 1024, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 1, H: 13, W: 13, C: 1040, OC: 288, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 7, W: 7, C: 256, OC: 1040, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		// Both over maxTileSplitPixels output pixels (867; 578 image
		// pairs for the bfloat16 tiles): the weight gradient shares out
		// its images, not its tiles.
		{N: 3, H: 34, W: 33, C: 96, OC: 384, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		// Few images (runSegments): a 1×1 GEMM view whose 98 pixels of
		// 1,024 channels take several segments, the last one short, and
		// rows in runs of three by channel groups (two threads; a row's input is 60 KB).
		{N: 2, H: 7, W: 7, C: 1024, OC: 32, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 1, H: 11, W: 40, C: 128, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		// More weights than input (runSegments by groups): a 1×1 GEMM
		// view of 12 pixels to 256 channels, and a strided 3×3 over
		// three rows.
		{N: 1, H: 3, W: 4, C: 64, OC: 256, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 1, H: 6, W: 5, C: 96, OC: 160, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		// Output channels not a multiple of the vector width (a narrow
		// network, a U-Net's head to its classes, a strided 1×1 of 20):
		// the forward pass and the weight gradient pad them
		// (convForwardNarrow, convBackwardWeightNarrow).
		{N: 2, H: 9, W: 10, C: 4, OC: 4, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 8, W: 8, C: 16, OC: 11, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 1, H: 9, W: 9, C: 8, OC: 8, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 7, W: 8, C: 16, OC: 20, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
	}
	for i := 0; i < 6; i++ { // random ones
		k := 1 + 2*r.IntN(3)
		s := 1 + r.IntN(2)
		p := r.IntN(k)
		sh = append(sh, ConvShape{N: 1 + r.IntN(3), H: k + r.IntN(12), W: k + r.IntN(20), C: 1 + r.IntN(40), OC: 16 * (1 + r.IntN(4)),
			KH: k, KW: k, SH: s, SW: s, DH: 1, DW: 1, PT: p, PL: p, PB: p, PR: p})
	}
	return sh
}

// TestRow3KernelsRunTheInterior checks that a 3×3 stride-1 convolution's
// interior takes the row-of-three kernels at the AVX-512 level (and that a
// strided one does not), so that TestFastConvMatchesReference tests them.
func TestRow3KernelsRunTheInterior(t *testing.T) {
	if detect() < AVX512 {
		t.Skip("the row-of-three kernels are AVX-512 only; this CPU lacks it")
	}
	prev := SetLevel(AVX512)
	defer SetLevel(prev)
	for _, c := range []struct {
		stride int
		want   bool
	}{{1, true}, {2, false}} {
		k, bs, _ := fastBlocks(16)
		p := &convPlan{N: 1, H: 12, W: 12, C: 16, OC: 16, KH: 3, KW: 3, SH: c.stride, SW: c.stride, DH: 1, DW: 1,
			OffH: -1, OffW: -1, OH: 12 / c.stride, OW: 12 / c.stride, k: k, blocks: bs}
		if got := p.geometry().row3 != nil; got != c.want {
			t.Errorf("stride %d: row-of-three kernels used = %v, want %v", c.stride, got, c.want)
		}
	}
}

func TestFastConvMatchesReference(t *testing.T) {
	for _, c := range []struct{ wino, unfold bool }{{false, false}, {false, true}, {true, true}} {
		// Without Winograd, the direct kernels compute every shape, in
		// tiles along the rows or, with unfolding, those with narrow
		// rows and few outputs as one matrix product; with Winograd,
		// the stride-1 3×3 ones with 16k channels take it, however few
		// their outputs.
		t.Run(fmt.Sprintf("winograd=%v/unfold=%v", c.wino, c.unfold), func(t *testing.T) {
			prev, prevMin, prevU := winograd, winoMinOutputs, unfolding
			winograd, winoMinOutputs, unfolding = c.wino, 0, c.unfold
			defer func() { winograd, winoMinOutputs, unfolding = prev, prevMin, prevU }()
			testFastConv(t)
		})
	}
}

func testFastConv(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, l := range levels() {
		for i, s := range convShapes(r) {
			if err := s.Validate(); err != nil {
				t.Fatalf("shape %d: %v", i, err)
			}
			name := fmt.Sprintf("%v/%d %+v", l, i, s)
			oh, ow := s.OH(), s.OW()
			x := kt.RandF32(r, s.N*s.H*s.W*s.C)
			w := kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
			dy := kt.RandF32(r, s.N*oh*ow*s.OC)
			prev := SetLevel(l)
			y, dx, dw := make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w))
			for i := range y { // poison: every output must be written
				y[i] = float32(math.NaN())
			}
			for i := range dw { // and every gradient element overwritten
				dw[i] = float32(math.NaN())
			}
			okF := convForwardFast(s, x, w, y, nil, nil)
			okD := convBackwardDataFast(s, dy, w, dx, nil)
			okW := convBackwardWeightFast(s, x, dy, dw)
			SetLevel(prev)
			ry, rdx, rdw := make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w))
			convForwardRef(s, x, w, ry)
			convBackwardDataRef(s, dy, w, rdx)
			convBackwardWeightRef(s, x, dy, rdw)
			if !okF || !okW {
				t.Fatalf("%s: fast path declined forward (%v) or weight gradient (%v)", name, okF, okW)
			}
			kt.CloseTo(t, name+" forward", y, ry)
			kt.CloseTo(t, name+" weight gradient", dw, rdw)
			if s.C%16 == 0 && s.DH == 1 {
				if !okD {
					t.Fatalf("%s: fast path declined the data gradient", name)
				}
				kt.CloseTo(t, name+" data gradient", dx, rdx)
				// Accumulating onto an existing gradient in the kernels'
				// store: dx0 + the data gradient.
				dx0 := kt.RandF32(r, len(x))
				acc := append([]float32(nil), dx0...)
				prev := SetLevel(l)
				ConvBackwardDataAdd(s, dy, w, acc)
				SetLevel(prev)
				for i := range rdx {
					rdx[i] += dx0[i]
				}
				kt.CloseTo(t, name+" accumulated data gradient", acc, rdx)
				continue
			}
			// The direct kernels decline: the product-and-col2im path
			// (convBackwardDataCols), plain and added.
			dx0 := kt.RandF32(r, len(x))
			acc := append([]float32(nil), dx0...)
			prev = SetLevel(l)
			okC := convBackwardDataCols(s, dy, w, dx, false) && convBackwardDataCols(s, dy, w, acc, true)
			SetLevel(prev)
			if !okC {
				t.Fatalf("%s: the columns path declined at an assembly level", name)
			}
			kt.CloseTo(t, name+" data gradient (columns)", dx, rdx)
			// Stride 1 with channels not a multiple of the level's vector:
			// the padded direct path (convBackwardDataNarrow), which
			// ConvBackwardData takes before the columns.
			dxn, accN := make([]float32, len(x)), append([]float32(nil), dx0...)
			for i := range dxn {
				dxn[i] = float32(math.NaN())
			}
			prev = SetLevel(l)
			narrow := s.SH == 1 && s.SW == 1 && s.DH == 1 && s.DW == 1 && s.C%use.k.vec != 0
			okN := convBackwardDataNarrow(s, dy, w, dxn, false, false) && convBackwardDataNarrow(s, dy, w, accN, true, false)
			SetLevel(prev)
			if okN != narrow {
				t.Fatalf("%s: padded data gradient taken = %v, want %v", name, okN, narrow)
			}
			if narrow {
				kt.CloseTo(t, name+" data gradient (padded)", dxn, rdx)
			}
			for i := range rdx {
				rdx[i] += dx0[i]
			}
			kt.CloseTo(t, name+" accumulated data gradient (columns)", acc, rdx)
			if narrow {
				kt.CloseTo(t, name+" accumulated data gradient (padded)", accN, rdx)
			}
		}
	}
}

// TestFastBatchNormMatchesReference compares the batch norm of each
// assembly level (train and eval, every fused epilogue) with the same
// kernels run in float64 (the generic loops): row counts that are and are
// not multiples of the kernels' 256-row chunks, one and three channel
// vectors of either width (8 and 24 channels are AVX2's only), and rows
// wide enough for the row-major sums (272 channels), and a training output
// of over bnStreamMinBytes (streamed). A third of the fused outputs are
// zero (the ReLU's mask).
func TestFastBatchNormMatchesReference(t *testing.T) {
	if len(levels()) == 0 {
		t.Skip("the per-channel kernels need AVX2 or AVX-512; this CPU has neither")
	}
	for _, l := range levels() {
		t.Run(l.String(), func(t *testing.T) { testFastBatchNorm(t, l) })
	}
}

// TestChanAffineStreams holds the batch norm's affine pass with streaming
// stores to the cached one bit for bit: two chunks of rows, with and
// without the skip and the ReLU.
func TestChanAffineStreams(t *testing.T) {
	if len(levels()) == 0 {
		t.Skip("the per-channel kernels need AVX2 or AVX-512; this CPU has neither")
	}
	const m, c = 300, 48
	r := rand.New(rand.NewPCG(5, 6))
	x, skip, scale, shift := kt.RandF32(r, m*c), kt.RandF32(r, m*c), kt.RandF32(r, c), kt.RandF32(r, c)
	for _, l := range levels() {
		prev := SetLevel(l)
		for _, sk := range [][]float32{nil, skip} {
			for _, relu := range []bool{false, true} {
				cached, streamed := alignedF32(m*c), alignedF32(m*c)
				chanAffine32(x, sk, m, c, scale, shift, cached, relu, false)
				chanAffine32(x, sk, m, c, scale, shift, streamed, relu, true)
				for i := range cached {
					if math.Float32bits(cached[i]) != math.Float32bits(streamed[i]) {
						t.Fatalf("%v skip=%v relu=%v: element %d streamed %g, cached %g", l, sk != nil, relu, i, streamed[i], cached[i])
					}
				}
			}
		}
		SetLevel(prev)
	}
}

func testFastBatchNorm(t *testing.T, l Level) {
	r := rand.New(rand.NewPCG(3, 4))
	// Two shapes, one of narrow rows and one of wide, have a mean 30 times
	// their spread: the one-pass statistics (about a shift) must not lose
	// the variance. (Much more and the float32 affine y = x·scale + shift
	// itself, PyTorch's form too, cancels past the bound.)
	for _, sh := range [][4]float32{{700, 16, 3, 1}, {512, 48, 3, 1}, {3, 16, 3, 1}, {300, 272, 3, 1}, {1000, 32, 0.1, 3}, {600, 160, 0.1, 3}, {500, 8, 3, 1}, {257, 24, 3, 1}, {4100, 64, 3, 1}} {
		m, c := int(sh[0]), int(sh[1])
		x, dy, skip := kt.RandF32(r, m*c), kt.RandF32(r, m*c), kt.RandF32(r, m*c)
		for i := range x {
			x[i] = sh[2]*x[i] + sh[3]
		}
		gamma, beta, rm, rv := kt.RandF32(r, c), kt.RandF32(r, c), kt.RandF32(r, c), kt.RandF32(r, c)
		for i := range rv {
			rv[i] = 0.5 + rv[i]*rv[i]
		}
		for _, fu := range []struct {
			skip, relu bool
		}{{false, false}, {false, true}, {true, true}, {true, false}} {
			for _, train := range []bool{true, false} {
				name := fmt.Sprintf("m=%d c=%d skip=%v relu=%v train=%v", m, c, fu.skip, fu.relu, train)
				// run computes y, dx, dgamma, dbeta and dskip in float32 (at
				// level l) or float64.
				run32 := func() [][]float32 {
					prev := SetLevel(l)
					defer SetLevel(prev)
					y, dx, dg, db := make([]float32, m*c), make([]float32, m*c), make([]float32, c), make([]float32, c)
					f := Fused[float32]{ReLU: fu.relu}
					var ds []float32
					if fu.skip {
						f.Skip, ds = skip, make([]float32, m*c)
					}
					if train {
						mean, is := make([]float32, c), make([]float32, c)
						BatchNormTrainForward(m, c, x, gamma, beta, y, mean, is, nil, nil, 0.1, 1e-5, f)
						f.Y, f.DSkip = y, ds
						BatchNormTrainBackward(m, c, x, gamma, mean, is, dy, dx, dg, db, f)
					} else {
						BatchNormEvalForward(m, c, x, gamma, beta, rm, rv, y, 1e-5, f)
						f.Y, f.DSkip = y, ds
						BatchNormEvalBackward(m, c, x, gamma, rm, rv, dy, dx, dg, db, 1e-5, f)
					}
					return [][]float32{y, dx, dg, db, ds}
				}
				run64 := func() [][]float32 {
					y, dx, dg, db := make([]float64, m*c), make([]float64, m*c), make([]float64, c), make([]float64, c)
					f := Fused[float64]{ReLU: fu.relu}
					var ds []float64
					if fu.skip {
						f.Skip, ds = kt.F64(skip), make([]float64, m*c)
					}
					if train {
						mean, is := make([]float64, c), make([]float64, c)
						batchNormTrainForwardRef(m, c, kt.F64(x), kt.F64(gamma), kt.F64(beta), y, mean, is, nil, nil, 0.1, 1e-5, f)
						f.Y, f.DSkip = y, ds
						batchNormTrainBackwardRef(m, c, kt.F64(x), kt.F64(gamma), mean, is, kt.F64(dy), dx, dg, db, f)
					} else {
						batchNormEvalForwardRef(m, c, kt.F64(x), kt.F64(gamma), kt.F64(beta), kt.F64(rm), kt.F64(rv), y, 1e-5, f)
						f.Y, f.DSkip = y, ds
						BatchNormEvalBackward(m, c, kt.F64(x), kt.F64(gamma), kt.F64(rm), kt.F64(rv), kt.F64(dy), dx, dg, db, 1e-5, f)
					}
					return [][]float32{kt.F32(y), kt.F32(dx), kt.F32(dg), kt.F32(db), kt.F32(ds)}
				}
				got, want := run32(), run64()
				for k, what := range []string{"y", "dx", "dgamma", "dbeta", "dskip"} {
					// Float32 sums of up to 700 terms against float64 ones:
					// 1e-5 of the tensor's scale is ~100 float32 ulps.
					kt.CloseTo(t, name+" "+what, got[k], want[k])
				}
			}
		}
	}
}

// TestFastMaxPoolAndElementwiseMatchReference compares each assembly
// level's max pooling (values and argmax indices, with ties: inputs are
// small integers, so the first maximum must win as in the reference), ReLU,
// its gradient, the addition and the SGD step with the generic loops. All
// compute exactly the same values except SGD, where the kernel's FMAs
// round once instead of twice: 1e-6 relative.
func TestFastMaxPoolAndElementwiseMatchReference(t *testing.T) {
	if len(levels()) == 0 {
		t.Skip("these kernels need AVX2 or AVX-512; this CPU has neither")
	}
	for _, l := range levels() {
		t.Run(l.String(), func(t *testing.T) { testFastPoolElementwise(t, l) })
	}
}

func testFastPoolElementwise(t *testing.T, l Level) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, s := range []PoolShape{
		{N: 2, H: 13, W: 11, C: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 8, W: 8, C: 16, KH: 2, KW: 2, SH: 2, SW: 2, DH: 1, DW: 1},
		{N: 1, H: 9, W: 7, C: 48, KH: 3, KW: 2, SH: 1, SW: 2, DH: 2, DW: 1, PT: 2, PL: 1, PB: 2, PR: 1, CeilMode: true},
		{N: 2, H: 7, W: 7, C: 24, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, // three AVX2 vectors
	} {
		x := make([]float32, s.N*s.H*s.W*s.C)
		for i := range x {
			x[i] = float32(r.IntN(5))
		}
		ny := s.N * s.OH() * s.OW() * s.C
		run := func(l Level) ([]float32, []int32) {
			prev := SetLevel(l)
			defer SetLevel(prev)
			y, arg := make([]float32, ny), make([]int32, ny)
			MaxPoolForward(s, x, y, arg)
			return y, arg
		}
		fy, fa := run(l)
		gy, ga := run(Generic)
		for i := range gy {
			if fy[i] != gy[i] || fa[i] != ga[i] {
				t.Fatalf("max pool %+v: output %d: fast %g at %d, generic %g at %d", s, i, fy[i], fa[i], gy[i], ga[i])
			}
		}
	}
	const n = 3*elemChunk + 37 // several chunks and a tail
	w, g, buf := kt.RandF32(r, n), kt.RandF32(r, n), kt.RandF32(r, n)
	for i := 0; i < n; i += 3 {
		w[i] = 0 // ReLU's gradient masks where its output is zero
	}
	run := func(l Level) [][]float32 {
		prev := SetLevel(l)
		defer SetLevel(prev)
		ww, bb := append([]float32(nil), w...), append([]float32(nil), buf...)
		SGDMomentum(ww, g, bb, 0.1, 1e-4, 0.9, 0.75)
		relu, dx, sum := make([]float32, n), make([]float32, n), make([]float32, n)
		if !relu32(g, relu) || !reluGrad32(w, g, dx) || !add32(w, g, sum) {
			if l != Generic {
				t.Fatalf("level %v: an element-wise kernel declined", l)
			}
			for i := range relu {
				relu[i] = max(g[i], 0)
				if w[i] != 0 {
					dx[i] = g[i]
				}
				sum[i] = w[i] + g[i]
			}
		}
		return [][]float32{ww, bb, relu, dx, sum}
	}
	f, gen := run(l), run(Generic)
	for i := range gen[0] {
		fw, fb, gw, gb := f[0][i], f[1][i], gen[0][i], gen[1][i]
		if math.Abs(float64(fw-gw)) > 1e-6*(1+math.Abs(float64(gw))) || math.Abs(float64(fb-gb)) > 1e-6*(1+math.Abs(float64(gb))) {
			t.Fatalf("SGD element %d: fast w %g buf %g, generic w %g buf %g", i, fw, fb, gw, gb)
		}
	}
	for k, what := range []string{"relu", "relu grad", "add"} {
		for i, v := range gen[2+k] {
			if f[2+k][i] != v {
				t.Fatalf("%s element %d: fast %g, generic %g", what, i, f[2+k][i], v)
			}
		}
	}
}

// TestFastGemmMatchesReference compares Gemm through the conv kernels with
// the generic loops in float64 for every transposition, output widths that
// are not a multiple of the vector width, padded leading dimensions and
// beta ≠ 0 (the kernels sum k terms in another order: 1e-5 of the scale).
func TestFastGemmMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	for _, l := range levels() {
		for _, sh := range [][3]int{{8, 1000, 64}, {37, 21, 40}, {5, 48, 130}} {
			m, n, k := sh[0], sh[1], sh[2]
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				ta, tb := tr[0], tr[1]
				lda, ldb, ldc := k+3, n+1, n+2
				if ta {
					lda = m + 3
				}
				if tb {
					ldb = k + 1
				}
				arows, brows := m, k
				if ta {
					arows = k
				}
				if tb {
					brows = n
				}
				a, b, c0 := kt.RandF32(r, arows*lda), kt.RandF32(r, brows*ldb), kt.RandF32(r, m*ldc)
				name := fmt.Sprintf("%v m=%d n=%d k=%d transA=%v transB=%v", l, m, n, k, ta, tb)
				for _, beta := range []float32{0, 0.5} {
					prev := SetLevel(l)
					got := append([]float32(nil), c0...)
					ok := gemmFast(ta, tb, m, n, k, 1.5, a, lda, b, ldb, beta, got, ldc)
					SetLevel(prev)
					if !ok {
						t.Fatalf("%s: the fast path declined", name)
					}
					want := kt.F64(c0)
					gemmRef(ta, tb, m, n, k, 1.5, kt.F64(a), lda, kt.F64(b), ldb, float64(beta), want, ldc)
					kt.CloseTo(t, fmt.Sprintf("%s beta=%g", name, beta), got, kt.F32(want))
					// B packed once (PackGemm) gives the same product bit for
					// bit, and a packing for another shape is not used.
					prev = SetLevel(l)
					pb := PackGemm(tb, n, k, b, ldb)
					packed := append([]float32(nil), c0...)
					GemmPacked(ta, m, n, k, 1.5, a, lda, b, ldb, tb, pb, beta, packed, ldc)
					other := append([]float32(nil), c0...)
					GemmPacked(ta, m, n, k, 1.5, a, lda, b, ldb-1, tb, pb, beta, other, ldc)
					wantOther := append([]float32(nil), c0...)
					Gemm(ta, tb, m, n, k, 1.5, a, lda, b, ldb-1, beta, wantOther, ldc)
					SetLevel(prev)
					if pb == nil {
						t.Fatalf("%s: PackGemm declined", name)
					}
					for i := range got {
						if packed[i] != got[i] || other[i] != wantOther[i] {
							t.Fatalf("%s beta=%g: element %d: packed %g against %g; packed for ldb=%d, run at ldb−1: %g against %g",
								name, beta, i, packed[i], got[i], ldb, other[i], wantOther[i])
						}
					}
				}
			}
		}
	}
}

// TestConvEpilogueMatchesReference runs ConvForwardEpilogue at every
// assembly level (the epilogue in the kernels' store) and in float64 (the
// reference convolution, then the epilogue in Go) on the conv test shapes
// whose output channels the kernels take, with and without a skip and a
// ReLU, and as a bias alone (nil Scale).
func TestConvEpilogueMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, l := range levels() {
		for i, s := range convShapes(r) {
			ny := s.N * s.OH() * s.OW() * s.OC
			x, w := kt.RandF32(r, s.N*s.H*s.W*s.C), kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
			scale, shift, skip := kt.RandF32(r, s.OC), kt.RandF32(r, s.OC), kt.RandF32(r, ny)
			for _, ep := range []struct{ biasOnly, skip, relu bool }{{false, false, false}, {false, false, true}, {false, true, true}, {true, false, false}} {
				e := ConvEpilogue[float32]{Scale: scale, Shift: shift, ReLU: ep.relu}
				e64 := ConvEpilogue[float64]{Scale: kt.F64(scale), Shift: kt.F64(shift), ReLU: ep.relu}
				if ep.biasOnly { // a nil Scale is 1
					e.Scale, e64.Scale = nil, nil
				}
				if ep.skip {
					e.Skip, e64.Skip = skip, kt.F64(skip)
				}
				prev := SetLevel(l)
				y := make([]float32, ny)
				ConvForwardEpilogue(s, x, w, y, e)
				SetLevel(prev)
				want := make([]float64, ny)
				convForwardEpilogueRef(s, kt.F64(x), kt.F64(w), want, e64)
				kt.CloseTo(t, fmt.Sprintf("%v/%d %+v bias-only=%v skip=%v relu=%v", l, i, s, ep.biasOnly, ep.skip, ep.relu), y, kt.F32(want))
			}
		}
	}
}

// TestConvForwardPackedEqualsUnpacked checks that prepacked weights give
// ConvForwardEpilogue's outputs bit for bit (the same kernels on the same
// packed layout), at every level, for every shape family and an epilogue
// with scale, shift, skip and ReLU; that one PackedConv serves another
// batch and image size; and that weights packed at another level, or for
// another shape, are ignored rather than misread.
func TestConvForwardPackedEqualsUnpacked(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, l := range append([]Level{Generic}, levels()...) {
		for i, s := range convShapes(r) {
			prev := SetLevel(l)
			x := kt.RandF32(r, s.N*s.H*s.W*s.C)
			w := kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
			n := s.N * s.OH() * s.OW() * s.OC
			e := ConvEpilogue[float32]{Scale: kt.RandF32(r, s.OC), Shift: kt.RandF32(r, s.OC), Skip: kt.RandF32(r, n), ReLU: true}
			pw := PackConv(s, w)
			if (pw != nil) != (l != Generic && s.OC%use.k.vec == 0) {
				t.Fatalf("%v/%d: PackConv returned %v", l, i, pw)
			}
			want, got := make([]float32, n), make([]float32, n)
			ConvForwardEpilogue(s, x, w, want, e)
			ConvForwardPacked(s, x, w, pw, got, e)
			// Another batch and image size with the same packed weights.
			s2 := s
			s2.N, s2.H, s2.W = s.N+1, s.H+2, s.W+3
			x2 := kt.RandF32(r, s2.N*s2.H*s2.W*s2.C)
			n2 := s2.N * s2.OH() * s2.OW() * s2.OC
			e2 := e
			e2.Skip = kt.RandF32(r, n2)
			want2, got2 := make([]float32, n2), make([]float32, n2)
			ConvForwardEpilogue(s2, x2, w, want2, e2)
			ConvForwardPacked(s2, x2, w, pw, got2, e2)
			SetLevel(prev)
			for j := range want {
				if got[j] != want[j] && !(math.IsNaN(float64(got[j])) && math.IsNaN(float64(want[j]))) {
					t.Fatalf("%v/%d %+v: output %d: packed %g, unpacked %g", l, i, s, j, got[j], want[j])
				}
			}
			for j := range want2 {
				if got2[j] != want2[j] {
					t.Fatalf("%v/%d %+v at %+v: output %d: packed %g, unpacked %g", l, i, s, s2, j, got2[j], want2[j])
				}
			}
		}
	}
	// Packed at one level, run at another; packed for one shape, run with
	// another's weights layout: the packed form is not used.
	if len(levels()) > 0 {
		s := ConvShape{N: 1, H: 6, W: 6, C: 16, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}
		w := kt.RandF32(r, 3*3*16*32)
		x := kt.RandF32(r, 6*6*16)
		pw := PackConv(s, w)
		prev := SetLevel(Generic)
		want, got := make([]float32, 6*6*32), make([]float32, 6*6*32)
		ConvForwardEpilogue(s, x, w, want, ConvEpilogue[float32]{})
		ConvForwardPacked(s, x, w, pw, got, ConvEpilogue[float32]{})
		SetLevel(prev)
		for j := range want {
			if got[j] != want[j] {
				t.Fatalf("packed at %v, run generic: output %d: %g, want %g", Active(), j, got[j], want[j])
			}
		}
		s1 := s
		s1.KH, s1.KW, s1.PT, s1.PL, s1.PB, s1.PR = 1, 1, 0, 0, 0, 0
		w1 := kt.RandF32(r, 16*32) // pw's first tap differs from it
		ConvForwardEpilogue(s1, x, w1, want, ConvEpilogue[float32]{})
		ConvForwardPacked(s1, x, w1, pw, got, ConvEpilogue[float32]{})
		for j := range want {
			if got[j] != want[j] {
				t.Fatalf("packed for 3×3, run 1×1: output %d: %g, want %g", j, got[j], want[j])
			}
		}
	}
}

// TestGemmViewIsOneRow checks which plans gemmView turns into a single row
// of N·H·W pixels: dense 1×1 stride-1 unpadded ones, and no other.
func TestGemmViewIsOneRow(t *testing.T) {
	for _, c := range []struct {
		name string
		p    convPlan
		want bool
	}{
		{"1x1", convPlan{N: 2, H: 14, W: 14, KH: 1, KW: 1, SH: 1, SW: 1, OH: 14, OW: 14, YH: 14, YW: 14, YSH: 1, YSW: 1}, true},
		{"1x1 stride 2", convPlan{N: 2, H: 14, W: 14, KH: 1, KW: 1, SH: 2, SW: 2, OH: 7, OW: 7, YH: 7, YW: 7, YSH: 1, YSW: 1}, false},
		{"3x3", convPlan{N: 2, H: 14, W: 14, KH: 3, KW: 3, SH: 1, SW: 1, OffH: -1, OffW: -1, OH: 14, OW: 14, YH: 14, YW: 14, YSH: 1, YSW: 1}, false},
		{"1x1 into a strided output (a data-gradient phase)", convPlan{N: 2, H: 7, W: 7, KH: 1, KW: 1, SH: 1, SW: 1, OH: 7, OW: 7, YH: 14, YW: 14, YSH: 2, YSW: 2}, false},
	} {
		p := c.p
		m := p.N * p.H * p.W
		p.gemmView()
		got := p.N == 1 && p.H == 1 && p.OH == 1 && p.W == m && p.OW == m && p.YW == m
		if got != c.want {
			t.Errorf("%s: one row of %d = %v, want %v (%+v)", c.name, m, got, c.want, p)
		}
	}
}

// TestEqualTilesFollowBalanced checks that equalTiles' runs give the same
// tiles as calling balanced tile by tile, for every length and tile size
// the kernels use.
func TestEqualTilesFollowBalanced(t *testing.T) {
	for maxMR := 1; maxMR <= 16; maxMR++ {
		for n := 1; n <= 300; n++ {
			var want, got []int
			for left := n; left > 0; {
				mr := balanced(left, maxMR)
				want = append(want, mr)
				left -= mr
			}
			for left := n; left > 0; {
				mr, k := equalTiles(left, maxMR)
				if k < 1 || mr < 1 || mr > maxMR || k*mr > left {
					t.Fatalf("n=%d maxMR=%d: %d tiles of %d with %d left", n, maxMR, k, mr, left)
				}
				for range k {
					got = append(got, mr)
				}
				left -= k * mr
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("n=%d maxMR=%d: tiles %v, balanced gives %v", n, maxMR, got, want)
			}
		}
	}
}

// TestConvEpilogueInPlace checks that a skip which is the output itself
// (the residual added in place) gives the outputs of a separate skip bit
// for bit: float32 at every level (the reference's two passes, the direct
// kernels, Winograd, packed weights or not) and bfloat16 every way, on the
// conv test shapes and a 3×3 one of the Winograd path's cut tiles.
func TestConvEpilogueInPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 13))
	shapes := append(convShapes(r), ConvShape{N: 2, H: 11, W: 14, C: 32, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1})
	check := func(name string, conv func(y []float32, e ConvEpilogue[float32]), e ConvEpilogue[float32], n int) {
		t.Helper()
		skip := e.Skip
		want := make([]float32, n)
		conv(want, e)
		got := append([]float32(nil), skip...)
		e.Skip = got
		conv(got, e)
		for j := range want {
			if got[j] != want[j] && !(math.IsNaN(float64(got[j])) && math.IsNaN(float64(want[j]))) {
				t.Fatalf("%s: output %d: in place %g, separate skip %g", name, j, got[j], want[j])
			}
		}
	}
	for i, s := range shapes {
		x := kt.RandF32(r, s.N*s.H*s.W*s.C)
		w := kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
		n := s.N * s.OH() * s.OW() * s.OC
		e := ConvEpilogue[float32]{Scale: kt.RandF32(r, s.OC), Shift: kt.RandF32(r, s.OC), Skip: kt.RandF32(r, n), ReLU: true}
		for _, l := range append([]Level{Generic}, levels()...) {
			prev := SetLevel(l)
			pw := PackConv(s, w)
			check(fmt.Sprintf("%v/%d %+v", l, i, s), func(y []float32, e ConvEpilogue[float32]) { ConvForwardEpilogue(s, x, w, y, e) }, e, n)
			check(fmt.Sprintf("%v/%d %+v packed", l, i, s), func(y []float32, e ConvEpilogue[float32]) { ConvForwardPacked(s, x, w, pw, y, e) }, e, n)
			SetLevel(prev)
		}
		for _, way := range bf16Ways(t) {
			restore := way.set()
			check(fmt.Sprintf("bf16 %s/%d %+v", way.name, i, s), func(y []float32, e ConvEpilogue[float32]) { ConvForwardEpilogueBF16(s, x, w, y, e) }, e, n)
			pb := PackConvBF16(s, w)
			check(fmt.Sprintf("bf16 %s/%d %+v packed", way.name, i, s), func(y []float32, e ConvEpilogue[float32]) { ConvForwardPackedBF16(s, x, w, pb, y, e) }, e, n)
			restore()
		}
	}
}

// TestSegmentingCoversOnce checks runSegments' jobs: every output of the
// interior and every channel block exactly once, for random shapes and
// job counts; and that where the weights outweigh the input (ResNet-50's
// last stages at batch 1) each goroutine's jobs read each block's weights
// in one pass, where cutting the rows into segments read them four times.
func TestSegmentingCoversOnce(t *testing.T) {
	if detect() < AVX2 {
		t.Skip("runSegments runs the assembly kernels; this CPU has neither AVX2 nor AVX-512")
	}
	ls := levels()
	defer SetLevel(SetLevel(ls[len(ls)-1])) // even under RESIDUAL_KERNELS=generic
	r := rand.New(rand.NewPCG(41, 42))
	plan := func(s ConvShape) (*convPlan, colRun) {
		k, bs, _ := fastBlocks(s.OC)
		p := &convPlan{N: s.N, H: s.H, W: s.W, C: s.C, OC: s.OC, KH: s.KH, KW: s.KW, SH: s.SH, SW: s.SW, DH: s.DH, DW: s.DW,
			OffH: -s.PT, OffW: -s.PL, OH: s.OH(), OW: s.OW(), YH: s.OH(), YW: s.OW(), YSH: 1, YSW: 1, k: k, blocks: bs,
			wp: make([]float32, s.KH*s.KW*s.C*s.OC)}
		p.gemmView()
		g := p.geometry()
		return p, g.runs[g.main]
	}
	for i := range 300 {
		k := 1 + 2*r.IntN(2)
		st, pad := 1+r.IntN(2), r.IntN(k)
		s := ConvShape{N: 1 + r.IntN(3), H: k + r.IntN(20), W: k + r.IntN(20), C: 16 * (1 + r.IntN(40)), OC: 16 * (1 + r.IntN(40)),
			KH: k, KW: k, SH: st, SW: st, DH: 1, DW: 1, PT: pad, PL: pad, PB: pad, PR: pad}
		p, cm := plan(s)
		want := 1 + r.IntN(40)
		g := p.segmenting(cm, want)
		nbl := len(p.blocks)
		seen := make([]int, g.total*nbl)
		for j := range g.segs * g.groups {
			sg, gr := j/g.groups, j%g.groups
			if g.byGroup {
				sg, gr = j%g.segs, j/g.segs
			}
			for o := sg * g.seg; o < min((sg+1)*g.seg, g.total); o++ {
				for bi := gr * nbl / g.groups; bi < (gr+1)*nbl/g.groups; bi++ {
					seen[o*nbl+bi]++
				}
			}
		}
		for o, n := range seen {
			if n != 1 {
				t.Fatalf("%d: %+v, %d jobs wanted: %+v: output %d, block %d computed %d times", i, s, want, g, o/nbl, o%nbl, n)
			}
		}
	}
	// ResNet-50's 3×3 stride-2 layer of its last stage and a 1×1 layer
	// from 2048 channels at batch 1, on two goroutines (8 jobs).
	for _, s := range []ConvShape{
		{N: 1, H: 14, W: 14, C: 512, OC: 512, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 7, W: 7, C: 2048, OC: 512, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
	} {
		p, cm := plan(s)
		if g := p.segmenting(cm, 8); !g.byGroup || g.segs != 1 || g.groups != 8 {
			t.Errorf("%+v: %+v, want the blocks in 8 groups over one segment", s, g)
		}
	}
}

// TestUnfoldNarrowRows checks where unfold lays a convolution out as one
// matrix product (ResNet-50's 7×7 layers at batch 1, not its 14×14 ones
// nor a batch of 8 of the 7×7 ones, nor a 1×1 one), and that the product,
// with a whole epilogue, agrees with the reference (kt.CloseTo's bound)
// on those and on shapes with padding on every side, unequal strides and
// dilations (TestFastConvMatchesReference runs its shapes both ways).
func TestUnfoldNarrowRows(t *testing.T) {
	if detect() < AVX2 {
		t.Skip("unfold feeds the assembly kernels; this CPU has neither AVX2 nor AVX-512")
	}
	r := rand.New(rand.NewPCG(45, 46))
	for _, l := range levels() {
		prev := SetLevel(l)
		maxTile := use.k.maxConv[1]
		for _, c := range []struct {
			s    ConvShape
			want bool
		}{
			{ConvShape{N: 1, H: 7, W: 7, C: 512, OC: 512, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, 7 < maxTile},
			{ConvShape{N: 1, H: 14, W: 14, C: 512, OC: 512, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, 7 < maxTile},
			{ConvShape{N: 8, H: 7, W: 7, C: 512, OC: 512, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, false},
			{ConvShape{N: 1, H: 14, W: 14, C: 256, OC: 256, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, false},
			{ConvShape{N: 1, H: 7, W: 7, C: 512, OC: 2048, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1}, false},
			{ConvShape{N: 2, H: 6, W: 5, C: 48, OC: 64, KH: 3, KW: 2, SH: 1, SW: 2, DH: 2, DW: 1, PT: 2, PL: 1, PB: 1, PR: 0}, true},
			{ConvShape{N: 3, H: 4, W: 4, C: 16, OC: 32, KH: 5, KW: 5, SH: 1, SW: 1, DH: 1, DW: 1, PT: 2, PL: 2, PB: 2, PR: 2}, true},
		} {
			s := c.s
			ok := unfolds(s, maxTile)
			if ok != c.want {
				t.Errorf("%v %+v: unfolded %v, want %v", l, s, ok, c.want)
			}
			if !ok {
				continue
			}
			x, w := kt.RandF32(r, s.N*s.H*s.W*s.C), kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
			n := s.N * s.OH() * s.OW() * s.OC
			e := ConvEpilogue[float32]{Scale: kt.RandF32(r, s.OC), Shift: kt.RandF32(r, s.OC), Skip: kt.RandF32(r, n), ReLU: true}
			got, want := make([]float32, n), make([]float32, n)
			ConvForwardPacked(s, x, w, PackConv(s, w), got, e)
			convForwardEpilogueRef(s, x, w, want, e)
			kt.CloseTo(t, fmt.Sprintf("%v %+v unfolded", l, s), got, want)
		}
		SetLevel(prev)
	}
}

// TestUnitSpansCoverWhatTheTilesRead checks that what a weight-gradient
// unit prefetches is, in address order, every element its tiles read and
// nothing else: no input row or pixel that a stride wider than the kernel
// skips, no output-gradient channel outside the group (a row's unread
// border pixels are the only slack, where the kernel is at least as wide as
// its stride and whole rows are asked for).
func TestUnitSpansCoverWhatTheTilesRead(t *testing.T) {
	for _, c := range []struct {
		s         ConvShape
		n, r0, r1 int
		o0, o1    int
	}{
		{ConvShape{N: 2, H: 9, W: 9, C: 16, OC: 64, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1}, 1, 1, 4, 0, 64},
		{ConvShape{N: 2, H: 9, W: 9, C: 16, OC: 64, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1}, 0, 0, 5, 32, 64},
		{ConvShape{N: 1, H: 10, W: 8, C: 8, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, 0, 2, 7, 0, 32},
		{ConvShape{N: 1, H: 10, W: 8, C: 8, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, 0, 8, 10, 0, 32},
		{ConvShape{N: 3, H: 11, W: 12, C: 4, OC: 48, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, 2, 1, 4, 16, 48},
		{ConvShape{N: 1, H: 23, W: 22, C: 3, OC: 64, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3}, 0, 3, 9, 0, 64},
		{ConvShape{N: 1, H: 13, W: 13, C: 16, OC: 16, KH: 2, KW: 2, SH: 3, SW: 3, DH: 2, DW: 1}, 0, 0, 3, 0, 16},
	} {
		s := c.s
		oh, ow := s.OH(), s.OW()
		// What the tiles read: for each tap, output pixel and channel.
		wantX, wantDY := map[int]bool{}, map[int]bool{}
		readRows := map[int]bool{}
		for r := c.r0; r < c.r1; r++ {
			for q := range ow {
				for o := c.o0; o < c.o1; o++ {
					wantDY[((c.n*oh+r)*ow+q)*s.OC+o] = true
				}
				for kh := range s.KH {
					for kw := range s.KW {
						ih, iw := r*s.SH-s.PT+kh*s.DH, q*s.SW-s.PL+kw*s.DW
						if ih < 0 || ih >= s.H || iw < 0 || iw >= s.W {
							continue
						}
						readRows[ih] = true
						for ch := range s.C {
							wantX[((c.n*s.H+ih)*s.W+iw)*s.C+ch] = true
						}
					}
				}
			}
		}
		gotX, gotDY := map[int]bool{}, map[int]bool{}
		lastX, lastDY := -1, -1
		unitSpans(s, c.n, c.r0, c.r1, c.o0, c.o1, func(xoff, dyi, elems int) {
			if xoff >= 0 {
				if xoff%4 != 0 || xoff/4 < lastX {
					t.Fatalf("%+v: input span at byte %d after element %d", s, xoff, lastX)
				}
				for i := xoff / 4; i < xoff/4+elems; i++ {
					gotX[i] = true
				}
				lastX = xoff/4 + elems
				return
			}
			if dyi < lastDY {
				t.Fatalf("%+v: gradient span at %d after %d", s, dyi, lastDY)
			}
			for i := dyi; i < dyi+elems; i++ {
				gotDY[i] = true
			}
			lastDY = dyi + elems
		})
		for i := range wantX {
			if !gotX[i] {
				t.Fatalf("%+v rows [%d, %d): input element %d read, not prefetched", s, c.r0, c.r1, i)
			}
		}
		for i := range gotX {
			row := i / (s.W * s.C) % s.H
			if !wantX[i] && !(s.SW <= s.KW && readRows[row]) {
				t.Fatalf("%+v rows [%d, %d): input element %d (row %d) prefetched, never read", s, c.r0, c.r1, i, row)
			}
		}
		for i := range wantDY {
			if !gotDY[i] {
				t.Fatalf("%+v: gradient element %d read, not prefetched", s, i)
			}
		}
		for i := range gotDY {
			if !wantDY[i] {
				t.Fatalf("%+v: gradient element %d prefetched, never read", s, i)
			}
		}
	}
}

// TestWeightGroupsFitTheCache checks how convBackwardWeightTiles groups
// its tiles (groupEnd): runs of blocks in order, covering each once, each
// run's gradient within maxCachedWeights (a block larger than that alone),
// and one run exactly when the whole gradient fits.
func TestWeightGroupsFitTheCache(t *testing.T) {
	for _, s := range []ConvShape{
		{N: 8, H: 56, W: 56, C: 256, OC: 128, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 8, H: 28, W: 28, C: 512, OC: 1024, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
		{N: 8, H: 14, W: 14, C: 512, OC: 512, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 8, H: 7, W: 7, C: 2048, OC: 48, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1},
	} {
		bs, ok := blocksFor(&kernelSet{vec: 16}, s.OC)
		if !ok {
			t.Fatal(s.OC)
		}
		var gs [][2]int
		for g0 := 0; g0 < len(bs); {
			g1 := groupEnd(s, bs, g0)
			bytes := 0
			for _, b := range bs[g0:min(g1, len(bs))] {
				bytes += s.KH * s.KW * s.C * b.nb * 4
			}
			if g1 <= g0 || g1 > len(bs) || (bytes > maxCachedWeights && g1-g0 > 1) {
				t.Fatalf("%+v: group [%d, %d) after %v holds %d bytes", s, g0, g1, gs, bytes)
			}
			gs = append(gs, [2]int{g0, g1})
			g0 = g1
		}
		if (len(gs) == 1) != !weightTilesOutside(s) {
			t.Fatalf("%+v: groups %v of %d blocks", s, gs, len(bs))
		}
	}
}
