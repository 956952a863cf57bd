//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
)

// TestWinogradMatchesReference runs the Winograd path directly, with
// F(2×2, 3×3) tiles only and with F(4×4, 3×3) ones where they apply
// (forward, with and without an epilogue, the data gradient and the weight
// gradient) on
// even and odd output sizes, padded and valid, one- and two-vector channel
// blocks, against the reference convolution in float64. Its rounding
// differs from the direct sums' (the transforms add and scale), so it is
// held to closeTo's bound on the float64 result.
func TestWinogradMatchesReference(t *testing.T) {
	if detect() < AVX2 {
		t.Skip("the Winograd path needs AVX2 or AVX-512; this CPU has neither")
	}
	for _, tc := range winoCases() {
		t.Run(fmt.Sprintf("%v/F4x4=%v", tc.l, tc.four), func(t *testing.T) {
			defer tc.set()()
			testWinograd(t, tc.four)
		})
	}
}

// winoCase is a level and whether F(4×4, 3×3) tiles may be taken.
type winoCase struct {
	l    Level
	four bool
}

// set puts the kernels on c's level with the Winograd path on, F(4×4,
// 3×3) tiles as c says and no least number of outputs (even under
// RESIDUAL_WINOGRAD=0 or 2, and for the tests' small shapes), and
// returns what puts them back.
func (c winoCase) set() (restore func()) {
	prev, prevW, prev4, prevMin := SetLevel(c.l), winograd, winograd4, winoMinOutputs
	winograd, winograd4, winoMinOutputs = true, c.four, 0
	return func() { SetLevel(prev); winograd, winograd4, winoMinOutputs = prevW, prev4, prevMin }
}

// winoCases are the levels this CPU runs, each with F(2×2, 3×3) tiles
// only and with F(4×4, 3×3) ones.
func winoCases() (cs []winoCase) {
	for _, l := range levels() {
		for _, four := range []bool{false, true} {
			cs = append(cs, winoCase{l, four})
		}
	}
	return cs
}

func testWinograd(t *testing.T, four bool) {
	r := rand.New(rand.NewPCG(5, 6))
	for i, s := range []ConvShape{
		{N: 2, H: 8, W: 8, C: 16, OC: 16, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 3, H: 9, W: 7, C: 32, OC: 48, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 12, W: 13, C: 16, OC: 32},                           // valid: 10×11 outputs
		{N: 2, H: 5, W: 6, C: 64, OC: 16, PT: 2, PL: 0, PB: 1, PR: 2}, // asymmetric
		{N: 1, H: 32, W: 32, C: 16, OC: 16, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 3, W: 3, C: 16, OC: 16, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 66, W: 3, C: 16, OC: 16, PT: 1, PL: 1, PB: 1, PR: 1},  // several strips
		{N: 2, H: 16, W: 16, C: 64, OC: 64, PT: 1, PL: 1, PB: 1, PR: 1}, // F(4×4): no edge tiles
		{N: 1, H: 11, W: 14, C: 48, OC: 32, PT: 1, PL: 1, PB: 1, PR: 1}, // F(4×4): cut rows and columns
		{N: 2, H: 30, W: 58, C: 16, OC: 32, PT: 1, PL: 1, PB: 1, PR: 1}, // F(4×4): several strips, cut rows
		// Weight gradients (32+ channels): valid and odd, small images
		// grouped across images, several strips of a larger one.
		{N: 3, H: 11, W: 10, C: 32, OC: 32},
		{N: 5, H: 8, W: 8, C: 64, OC: 64, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 40, W: 36, C: 32, OC: 32, PT: 1, PL: 1, PB: 1, PR: 1},
		// Over winoMaxWeights: forward passes over 96 and 80 output
		// channels (two, which every level takes), odd rows; the weight
		// gradient in F(2×2) passes too, the data gradient in F(2×2)
		// passes at AVX-512 (dataPasses below), else direct.
		{N: 2, H: 7, W: 6, C: 160, OC: 176, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 9, W: 10, C: 256, OC: 96, PT: 1, PL: 1, PB: 1, PR: 1},
		// Weight gradients whose passes would be too many: position by
		// position (winoWeightGradByPosition), cut rows or columns, two
		// images; the forward convolution in two passes. The last, 7×7,
		// has too few outputs a tile for it: the direct kernels.
		{N: 2, H: 9, W: 10, C: 1024, OC: 64, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 10, W: 9, C: 2048, OC: 48, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 7, W: 7, C: 1024, OC: 64, PT: 1, PL: 1, PB: 1, PR: 1},
	} {
		s.KH, s.KW, s.SH, s.SW, s.DH, s.DW = 3, 3, 1, 1, 1, 1
		name := fmt.Sprintf("%d %+v", i, s)
		x := kt.RandF32(r, s.N*s.H*s.W*s.C)
		w := kt.RandF32(r, 9*s.C*s.OC)
		n := s.N * s.OH() * s.OW() * s.OC
		dy, skip := kt.RandF32(r, n), kt.RandF32(r, n)
		scale, shift := kt.RandF32(r, s.OC), kt.RandF32(r, s.OC)
		src := weightSource{w: w, SKW: 3, A: s.C, B: s.OC, tap: func(t, u int) (int, int) { return t, u }}
		wantTile := 2
		if four && s.C <= winoMaxSum4 {
			wantTile = 4
		}
		if got := winoTile(s); got != wantTile {
			t.Fatalf("%s: tiles of %d, want %d", name, got, wantTile)
		}
		ref := make([]float64, n)
		convForwardRef(s, kt.F64(x), kt.F64(w), ref)

		y := make([]float32, n)
		if !winoConv(s, src, nil, x, y, nil) {
			t.Fatalf("%s: the Winograd path declined", name)
		}
		kt.CloseTo(t, name+" forward", y, kt.F32(ref))

		ep := &convEpilogue{scale: scale, shift: shift, skip: skip, floor: 0}
		if !winoConv(s, src, ep, x, y, nil) {
			t.Fatalf("%s: the Winograd path declined", name)
		}
		want := make([]float32, n)
		for j, v := range ref {
			c := j % s.OC
			want[j] = float32(max(v*float64(scale[c])+float64(shift[c])+float64(skip[j]), 0))
		}
		kt.CloseTo(t, name+" forward with epilogue", y, want)

		dw := make([]float32, len(w))
		rdw := make([]float64, len(w))
		convBackwardWeightRef(s, kt.F64(x), kt.F64(dy), rdw)
		// F(4×4) takes every shape whose transformed gradient fits one
		// pass; the shapes over winoMaxWeights are taken as below.
		gm, kb, byPos := winoGradTile(s)
		fits4, fits2 := 36*s.C*s.OC*4 <= winoMaxWeights, 16*s.C*s.OC*4 <= winoMaxWeights
		// Over winoMaxWeights: F(2×2) in passes, else position by
		// position where the level has its vector transform back, else
		// the direct kernels.
		kb2 := winoMaxWeights / (16 * s.C * 4) / 16 * 16 // F(2×2)'s channels a pass
		inPasses := kb2 >= 16 && (s.OC+kb2-1)/kb2 <= winoMaxGradPasses
		tiles := s.N * ((s.OH() + 1) / 2) * ((s.OW() + 1) / 2)
		wantByPos := !fits2 && !inPasses && winoUse().gradOut != nil && 2*16*tiles <= 9*s.N*s.OH()*s.OW()
		if four && fits4 && gm != 4 || !four && gm == 4 || !fits2 && inPasses && (gm != 2 || kb >= s.OC) ||
			byPos != wantByPos || !fits2 && !inPasses && !byPos && gm != 0 {
			t.Fatalf("%s: weight gradient in tiles of %d, %d channels a pass, by position %v", name, gm, kb, byPos)
		}
		wantW := gm != 0
		poisonPool(16 * s.C * s.OC) // the kernels must not count on zeroed scratch
		if got := winoWeightGrad(s, x, dy, dw); got != wantW {
			t.Fatalf("%s: the weight gradient's Winograd path taken = %v, want %v", name, got, wantW)
		}
		if wantW {
			kt.CloseTo(t, name+" weight gradient", dw, kt.F32(rdw))
		}

		dx := make([]float32, len(x))
		rdx := make([]float64, len(x))
		convBackwardDataRef(s, kt.F64(dy), kt.F64(w), rdx)
		if max(s.PT, s.PL, s.PB, s.PR) <= 2 {
			// The data gradient is a forward convolution of dy with the
			// flipped, transposed weights: in one Winograd pass, in F(2×2)
			// passes over winoMaxWeights at AVX-512, else direct.
			b := ConvShape{N: s.N, H: s.OH(), W: s.OW(), C: s.OC, OC: s.C, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1,
				PT: 2 - s.PT, PL: 2 - s.PL, PB: 2 - s.PB, PR: 2 - s.PR}
			src := weightSource{w: w, SKW: 3, A: s.C, B: s.OC, transposed: true, tap: func(t, u int) (int, int) { return 2 - t, 2 - u }}
			m, kb, flipped, ok := winoForward(b, src)
			over := 16*b.C*b.OC*4 > winoMaxWeights
			kbData := max(32, winoMaxWeights/(16*b.C*4)/32*32)
			dataPasses := over && winoUse() == wino512 && winoTile(b) == 2 && (b.OC+kbData-1)/kbData <= winoUse().maxPasses
			if over && (ok != dataPasses || ok && (!flipped || m != 2 || kb >= b.OC)) || !over && ok && kb != b.OC {
				t.Fatalf("%s: data gradient taken %v (tiles of %d, %d channels a pass, flipped %v), want passes %v", name, ok, m, kb, flipped, dataPasses)
			}
			if !convBackwardDataFast(s, dy, w, dx, nil) {
				t.Fatalf("%s: the data gradient declined", name)
			}
			kt.CloseTo(t, name+" data gradient", dx, kt.F32(rdx))
		}
	}
}

// poisonPool puts a scratch buffer of n floats, every one 1e3, into the
// pool, so that a kernel reading scratch it did not write fails.
func poisonPool(n int) {
	b := getBuf(n)
	for i := range b {
		b[i] = 1e3
	}
	putBuf(b)
}

// TestWinogradPropagatesNonFinite runs the Winograd path (both tile sizes:
// forward with an epilogue, data and weight gradients) with NaN and ±Inf
// injected into each input, and checks that every output the reference
// makes non-finite is non-finite (see the note at the top of this file).
func TestWinogradPropagatesNonFinite(t *testing.T) {
	if detect() < AVX2 {
		t.Skip("the Winograd path needs AVX2 or AVX-512; this CPU has neither")
	}
	for _, tc := range winoCases() {
		t.Run(fmt.Sprintf("%v/F4x4=%v", tc.l, tc.four), func(t *testing.T) {
			defer tc.set()()
			r := rand.New(rand.NewPCG(23, 24))
			// The second shape's weight gradient goes position by
			// position and its data gradient in F(2×2) passes, at
			// AVX-512 (the data gradient with F(4×4) off).
			for _, s := range []ConvShape{
				{N: 2, H: 9, W: 10, C: 32, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
				{N: 1, H: 6, W: 6, C: 2048, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
			} {
				nonFiniteThrough(t, r, s)
			}
		})
	}
}

// nonFiniteThrough is TestWinogradPropagatesNonFinite on shape s.
func nonFiniteThrough(t *testing.T, r *rand.Rand, s ConvShape) {
	t.Helper()
	if !winoApplies(s) {
		t.Fatal("the Winograd path declines the test's shape")
	}
	ny := s.N * s.OH() * s.OW() * s.OC
	nx := s.N * s.H * s.W * s.C
	clean := map[string][]float32{"x": kt.RandF32(r, nx), "w": kt.RandF32(r, 9*s.C*s.OC), "dy": kt.RandF32(r, ny),
		"scale": kt.RandF32(r, s.OC), "shift": kt.RandF32(r, s.OC), "skip": kt.RandF32(r, ny)}
	covers := func(what string, got []float32, want []float64) {
		t.Helper()
		if nonFinite(want) == 0 {
			t.Fatalf("%s: the reference has no non-finite output", what)
		}
		for i, v := range want {
			if (math.IsNaN(v) || math.IsInf(v, 0)) && !math.IsNaN(float64(got[i])) && !math.IsInf(float64(got[i]), 0) {
				t.Fatalf("%s: element %d: Winograd %g, reference %g", what, i, got[i], v)
			}
		}
	}
	// The large shape takes the Winograd path only where the level can go
	// position by position.
	wantByPos := 16*s.C*s.OC*4 > winoMaxWeights
	if m, _, byPos := winoGradTile(s); byPos != (wantByPos && winoUse().gradOut != nil) || m == 0 && !wantByPos {
		t.Fatalf("%+v: the weight gradient's Winograd path in tiles of %d, by position %v", s, m, byPos)
	}
	for _, bad := range nanKinds {
		for _, in := range []string{"x", "w", "scale", "shift", "skip"} {
			if bad < 0 && in != "x" && in != "w" {
				continue // −Inf in the epilogue is 0 after the ReLU: nothing to cover
			}
			v := poison(r, clean, in, bad)
			e := ConvEpilogue[float32]{Scale: v["scale"], Shift: v["shift"], Skip: v["skip"], ReLU: true}
			y := make([]float32, ny)
			ConvForwardEpilogue(s, v["x"], v["w"], y, e)
			want := make([]float64, ny)
			convForwardEpilogueRef(s, kt.F64(v["x"]), kt.F64(v["w"]), want, ConvEpilogue[float64]{
				Scale: kt.F64(e.Scale), Shift: kt.F64(e.Shift), Skip: kt.F64(e.Skip), ReLU: true})
			covers(fmt.Sprintf("forward %g in %s", bad, in), y, want)
		}
		for _, in := range []string{"x", "w", "dy"} {
			v := poison(r, clean, in, bad)
			if in != "x" {
				dx := make([]float32, nx)
				ConvBackwardData(s, v["dy"], v["w"], dx)
				want := make([]float64, nx)
				convBackwardDataRef(s, kt.F64(v["dy"]), kt.F64(v["w"]), want)
				covers(fmt.Sprintf("data gradient %g in %s", bad, in), dx, want)
			}
			if in != "w" {
				dw := make([]float32, len(v["w"]))
				ConvBackwardWeight(s, v["x"], v["dy"], dw)
				want := make([]float64, len(dw))
				convBackwardWeightRef(s, kt.F64(v["x"]), kt.F64(v["dy"]), want)
				covers(fmt.Sprintf("weight gradient %g in %s", bad, in), dw, want)
			}
		}
	}
}

// nonFinite counts want's NaN and ±Inf.
func nonFinite(want []float64) int {
	n := 0
	for _, v := range want {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			n++
		}
	}
	return n
}

// TestPackConvTransformsWinogradWeights checks that PackConv transforms
// the weights of a Winograd shape once, in the passes the path takes, and
// that ConvForwardPacked reads them (zeroing them zeroes the output) where
// ConvForward transforms its own; TestConvForwardPackedEqualsUnpacked
// checks that both give the same outputs bit for bit.
func TestPackConvTransformsWinogradWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, tc := range winoCases() {
		t.Run(fmt.Sprintf("%v/F4x4=%v", tc.l, tc.four), func(t *testing.T) {
			defer tc.set()()
			for _, s := range []ConvShape{
				{N: 1, H: 8, W: 8, C: 64, OC: 64},
				{N: 1, H: 7, W: 6, C: 160, OC: 176}, // two passes
			} {
				s.KH, s.KW, s.SH, s.SW, s.DH, s.DW, s.PT, s.PL, s.PB, s.PR = 3, 3, 1, 1, 1, 1, 1, 1, 1, 1
				w := kt.RandF32(r, 9*s.C*s.OC)
				x := kt.RandF32(r, s.N*s.H*s.W*s.C)
				pw := PackConv(s, w)
				if pw == nil || pw.wino == nil {
					t.Fatalf("%+v: no transformed weights in %+v", s, pw)
				}
				m, kb, _, _ := winoForward(s, weightSource{w: w, SKW: 3, A: s.C, B: s.OC, tap: func(t, u int) (int, int) { return t, u }})
				if pw.wino.m != m || pw.wino.kb != kb || len(pw.wino.u) != (s.OC+kb-1)/kb {
					t.Fatalf("%+v: packed in %d passes of %d channels, tiles of %d; the path takes %d channels in tiles of %d",
						s, len(pw.wino.u), pw.wino.kb, pw.wino.m, kb, m)
				}
				for _, u := range pw.wino.u {
					clear(u)
				}
				y := make([]float32, s.N*s.OH()*s.OW()*s.OC)
				ConvForwardPacked(s, x, w, pw, y, ConvEpilogue[float32]{})
				for i, v := range y {
					if v != 0 {
						t.Fatalf("%+v: output %d is %g from zeroed transformed weights: they were not used", s, i, v)
					}
				}
			}
		})
	}
}

// TestWinogradDeclinesFewOutputs checks winoMinOutputs: a 3×3 convolution
// with weights over maxCachedWeights (ResNet-50's 256 channels) computes
// few outputs on the direct kernels, the same bits as with the Winograd
// path off, and many on the Winograd path; one with weights in cache
// takes the Winograd path at any batch. (At AVX2, 256 channels take more
// Winograd passes than the level allows: only the cached case runs there.)
func TestWinogradDeclinesFewOutputs(t *testing.T) {
	if detect() < AVX2 {
		t.Skip("the Winograd path needs AVX2 or AVX-512; this CPU has neither")
	}
	r := rand.New(rand.NewPCG(43, 44))
	for _, c := range []struct {
		l       Level
		n, c    int
		winoWay bool
	}{{AVX512, 1, 256, false}, {AVX512, 10, 256, false}, {AVX512, 11, 256, true}, {AVX512, 1, 64, true}, {AVX2, 1, 64, true}} {
		if c.l > detect() {
			t.Logf("%v: this CPU lacks it", c.l)
			continue
		}
		prev := SetLevel(c.l) // even under RESIDUAL_KERNELS=generic
		s := ConvShape{N: c.n, H: 7, W: 7, C: c.c, OC: c.c, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}
		x, w := kt.RandF32(r, s.N*s.H*s.W*s.C), kt.RandF32(r, 9*s.C*s.OC)
		run := func(wino bool) []float32 {
			prev := winograd
			winograd = wino
			defer func() { winograd = prev }()
			y := make([]float32, s.N*s.OH()*s.OW()*s.OC)
			ConvForwardPacked(s, x, w, PackConv(s, w), y, ConvEpilogue[float32]{})
			return y
		}
		direct, got := run(false), run(true)
		SetLevel(prev)
		if same := slices.Equal(got, direct); same == c.winoWay {
			t.Errorf("%v: batch %d of %d channels (%d outputs): same bits as the direct kernels %v, want %v",
				c.l, c.n, c.c, s.N*s.OH()*s.OW(), same, !c.winoWay)
		}
	}
}
