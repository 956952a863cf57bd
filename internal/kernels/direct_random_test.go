package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomDirectShape draws a convolution of the kind the direct kernels
// take (no horizontal dilation): odd channel counts, output rows longer
// than a tile, strides and vertical dilations up to 3, padding up to 3 on
// each side independently (wider than the kernel too), unpadded 1×1
// convolutions over whole batches. Some draws are invalid (no output):
// the callers skip those.
func randomDirectShape(r *rand.Rand) ConvShape {
	s := ConvShape{N: 1 + r.IntN(3), H: 1 + r.IntN(9), W: 1 + r.IntN(45), C: 1 + r.IntN(40), OC: 1 + r.IntN(70),
		KH: 1 + r.IntN(4), KW: 1 + r.IntN(4), SH: 1 + r.IntN(3), SW: 1 + r.IntN(3), DH: 1 + r.IntN(3), DW: 1,
		PT: r.IntN(4), PL: r.IntN(4), PB: r.IntN(4), PR: r.IntN(4)}
	if r.IntN(3) == 0 {
		s.PT, s.PL, s.PB, s.PR = 0, 0, 0, 0
	}
	if r.IntN(4) == 0 {
		s.KH, s.KW, s.SH, s.SW = 1, 1, 1, 1
	}
	return s
}

// TestInt8DirectRandomShapes: on random shapes, with residuals, ReLU,
// float outputs and output zero points outside [0, 255], the VNNI direct
// path equals the reference bit for bit (integer sums; the epilogues agree
// exactly by TestStoreTileMatchesGo's construction).
func TestInt8DirectRandomShapes(t *testing.T) {
	if !hasVNNI {
		t.Skip("the CPU has no AVX512-VNNI: the direct int8 kernels cannot run here")
	}
	trials := 1000
	if testing.Short() {
		trials = 100
	}
	checkInt8RandomShapes(t, rand.New(rand.NewPCG(77, 1)), trials, randomDirectShape, 5, "direct")
}

// checkInt8RandomShapes runs trials int8 convolutions of shapes that draw
// makes (the invalid ones skipped), with residuals in every second,
// a ReLU in every third, a float output in every fout-th (0: none) and an
// output zero point outside [0, 255] in some, and fails unless each equals
// the reference (the generic level) bit for bit on the configured threads,
// every fourth also on one (other chunks of jobs); path names what is
// tested. It fails too
// if fewer than half the shapes drawn were valid.
func checkInt8RandomShapes(t *testing.T, r *rand.Rand, trials int, draw func(*rand.Rand) ConvShape, fout int, path string) {
	t.Helper()
	prev := Active()
	defer SetLevel(prev)
	ran := 0
	for trial := range trials {
		s := draw(r)
		if s.Validate() != nil || s.N*s.OH()*s.OW() == 0 {
			continue
		}
		ran++
		c := newInt8Case(r, s, trial%2 == 1, trial%3 == 0, fout > 0 && trial%fout == 0)
		if trial%7 == 0 {
			c.ep.Zero = int32(r.IntN(400)) - 100
		}
		SetLevel(Generic)
		u0, f0 := c.run()
		SetLevel(AVX512)
		u1, f1 := c.run()
		if !slices.Equal(u0, u1) || !slices.Equal(f0, f1) {
			t.Fatalf("trial %d %+v: the %s path differs from the reference", trial, s, path)
		}
		if trial%4 == 0 {
			p := SetThreads(1)
			u1, f1 = c.run()
			SetThreads(p)
			if !slices.Equal(u0, u1) || !slices.Equal(f0, f1) {
				t.Fatalf("trial %d %+v, one thread: the %s path differs from the reference", trial, s, path)
			}
		}
	}
	if ran < trials/2 {
		t.Fatalf("only %d of %d random shapes were valid", ran, trials)
	}
}

// randomAMXShape draws a convolution of the kinds the int8 AMX sweeps
// take: multiples of 64 input channels (int8ConvAMX's 1×1 rows, the
// subsampled strided 1×1, int8ConvAMXStaged at stride 1 and, at strides 2
// and 3, by phases) or kernel rows of at most 64 bytes (int8ConvAMXRows,
// any vertical dilation), multiples of 32 output channels; kernels as
// large as or larger than the input, even kernels, padding up to 3 on
// each side independently, images narrower than a tile and wider than
// two, batches whose positions end inside a tile.
func randomAMXShape(r *rand.Rand) ConvShape {
	s := ConvShape{N: 1 + r.IntN(3), H: 1 + r.IntN(12), W: 1 + r.IntN(80), C: 64 * (1 + r.IntN(2)), OC: 32 * (1 + r.IntN(3)),
		KH: 1 + r.IntN(5), KW: 1 + r.IntN(5), DH: 1, DW: 1,
		PT: r.IntN(4), PL: r.IntN(4), PB: r.IntN(4), PR: r.IntN(4)}
	s.SH = 1 + r.IntN(3)
	s.SW = s.SH
	switch r.IntN(4) {
	case 0: // an unpadded 1×1, at stride 1 (int8ConvAMX) or not (subsampled)
		s.KH, s.KW, s.PT, s.PL, s.PB, s.PR = 1, 1, 0, 0, 0, 0
	case 1: // kernel rows of at most 64 bytes (the stem's kind), any strides and vertical dilation
		s.KW = 1 + r.IntN(7)
		s.C = 1 + r.IntN(64/s.KW)
		s.SW, s.DH = 1+r.IntN(3), 1+r.IntN(3)
	}
	return s
}

// TestInt8AMXRandomShapes: on random shapes of the kinds the AMX sweeps
// take (randomAMXShape), with and without a residual and a ReLU and
// with output zero points outside [0, 255], the int8 convolution equals
// the reference bit for bit (integer sums, the same epilogue), on the
// configured threads and on one (other chunks of jobs, each staging its
// own input): checkInt8RandomShapes.
func TestInt8AMXRandomShapes(t *testing.T) {
	if !AMX() {
		t.Skip("no AMX-INT8 tiles on this CPU (or RESIDUAL_AMX=0): the AMX sweeps cannot run here")
	}
	trials := 400
	if testing.Short() {
		trials = 80
	}
	checkInt8RandomShapes(t, rand.New(rand.NewPCG(79, 1)), trials, randomAMXShape, 0, "AMX")
}

// TestBF16DirectMatchesGoModel: on random shapes the VDPBF16PS direct
// kernels (not the AMX tiles, whose sums run in another order:
// TestConvAMXBF16) equal their Go models (bf16DirectKernelsGo, which the bf16 tests
// check against the float64 reference within the format's bound) bit for
// bit: the same products, summed in the same order, the same epilogue —
// which the kernels apply as they store whole blocks: random scales and
// shifts, a ReLU or none, a skip apart, in place (the output itself) or
// none, and infinite inputs in some trials, so that NaNs meet the ReLU.
func TestBF16DirectMatchesGoModel(t *testing.T) {
	if !hasBF16 {
		t.Skip("the CPU has no AVX512-BF16: the direct bf16 kernels cannot run here")
	}
	r := rand.New(rand.NewPCG(78, 1))
	trials := 300
	if testing.Short() {
		trials = 50
	}
	for trial := range trials {
		s := randomDirectShape(r)
		if s.Validate() != nil {
			continue
		}
		x := make([]float32, s.N*s.H*s.W*s.C)
		w := make([]float32, s.KH*s.KW*s.C*s.OC)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		for i := range w {
			w[i] = float32(r.NormFloat64())
		}
		if r.IntN(4) == 0 {
			x[r.IntN(len(x))] = float32(math.Inf(1))
			x[r.IntN(len(x))] = float32(math.Inf(-1))
		}
		n := s.N * s.OH() * s.OW() * s.OC
		y0, y1 := make([]float32, n), make([]float32, n)
		ep0, ep1 := directEpilogue(s.OC), directEpilogue(s.OC)
		if r.IntN(2) == 0 { // a folded batch norm, a ReLU, a skip
			ep0.scale, ep0.shift = make([]float32, s.OC), make([]float32, s.OC) // not the shared ones
			for i := range ep0.scale {
				ep0.scale[i], ep0.shift[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
			}
			if r.IntN(2) == 0 {
				ep0.floor = 0
			}
			skip := make([]float32, n)
			for i := range skip {
				skip[i] = float32(r.NormFloat64())
			}
			*ep1 = *ep0
			switch r.IntN(3) {
			case 0:
				ep0.skip, ep1.skip = skip, skip
			case 1: // in place: the output holds the skip
				copy(y0, skip)
				copy(y1, skip)
				ep0.skip, ep1.skip = y0, y1
			}
		}
		convForwardDirectBF16(s, x, w, y0, ep0, bf16DirectKernelsGo())
		convForwardDirectBF16(s, x, w, y1, ep1, vdpDirectKernels())
		for i := range y0 {
			if math.Float32bits(y0[i]) != math.Float32bits(y1[i]) {
				t.Fatalf("trial %d %+v: forward element %d: assembly %v, Go model %v", trial, s, i, y1[i], y0[i])
			}
		}
		if backwardDataAsForwardOK(s) {
			dy := make([]float32, n)
			for i := range dy {
				dy[i] = float32(r.NormFloat64())
			}
			dx0, dx1 := make([]float32, len(x)), make([]float32, len(x))
			backwardDataDirectBF16(s, dy, w, dx0, false, bf16DirectKernelsGo())
			backwardDataDirectBF16(s, dy, w, dx1, false, vdpDirectKernels())
			for i := range dx0 {
				if math.Float32bits(dx0[i]) != math.Float32bits(dx1[i]) {
					t.Fatalf("trial %d %+v: data gradient element %d: assembly %v, Go model %v", trial, s, i, dx1[i], dx0[i])
				}
			}
		}
	}
}
