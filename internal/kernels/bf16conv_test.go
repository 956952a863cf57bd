package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"unsafe"

	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
)

// bf16U is bfloat16's unit roundoff 2⁻ᵖ for p = 8 significant bits, round
// to nearest: half the spacing 2⁻⁷ of the values in [1, 2).
const bf16U = 1.0 / 256

// bf16Way is one way the bfloat16 entry points compute.
type bf16Way struct {
	name string
	set  func() (restore func())
	// native is whether to call the native drivers directly (with the
	// micro-kernels in bf16Kernels), rather than the entry points.
	native bool
	// direct are the direct forward kernels the native way also runs.
	direct bf16DirectSet
	// dw are the weight-gradient tiles the native way runs.
	dw *kernelSet
}

// bf16Ways returns the reference, the emulation at each assembly level
// this CPU runs, the native drivers with the Go model of VDPBF16PS (on any
// CPU), and, on a CPU with AVX512-BF16, the native drivers on the
// generated kernels, and on AMX tiles where the CPU has AMX-BF16 (logging
// why not where it does not).
func bf16Ways(t testing.TB) []bf16Way {
	level := func(l Level) func() func() {
		return func() func() {
			prev, prevE := SetLevel(l), bf16Emulate
			bf16Emulate = true
			return func() { SetLevel(prev); bf16Emulate = prevE }
		}
	}
	ways := []bf16Way{{name: "reference", set: level(Generic)}}
	for _, l := range levels() {
		ways = append(ways, bf16Way{name: "emulated-" + l.String(), set: level(l)})
	}
	ways = append(ways, bf16Way{name: "native-gomodel", native: true, direct: bf16DirectKernelsGo(), dw: bf16DWSetGo(), set: func() func() {
		prev := bf16Kernels
		bf16Kernels = bf16KernelsGo(len(prev))
		return func() { bf16Kernels = prev }
	}})
	if hasBF16 {
		ways = append(ways, bf16Way{name: "native-avx512bf16", native: true, direct: vdpDirectKernels(), dw: bf16DWSet, set: func() func() { return func() {} }})
	}
	if hasAMXBF16 {
		ways = append(ways, bf16Way{name: "native-amx", native: true, direct: bf16DirectKernels, dw: bf16DWSet, set: func() func() { return func() {} }})
	} else {
		t.Log("AMX-BF16 tiles not run: this CPU lacks AMX-BF16, the system did not grant the tile data, or RESIDUAL_AMX=0")
	}
	return ways
}

// vdpDirectKernels are the VDPBF16PS direct kernels without the AMX tiles.
func vdpDirectKernels() bf16DirectSet {
	k := bf16DirectKernels
	k.amx = false
	return k
}

// bf16Refs evaluates f (a reference convolution into out, n values) in
// float64 on a and b, on their bfloat16 roundings ar and br, and on their
// magnitudes: checkBF16's exact, exactR and mag.
func bf16Refs(f func(a, b, out []float64), a, b []float32, ar, br []float32, n int) (e, eR, mag []float64) {
	e, eR, mag = make([]float64, n), make([]float64, n), make([]float64, n)
	f(kt.F64(a), kt.F64(b), e)
	f(kt.F64(ar), kt.F64(br), eR)
	f(absF64(a), absF64(b), mag)
	return e, eR, mag
}

func absF64(v []float32) []float64 {
	o := kt.F64(v)
	for i := range o {
		o[i] = math.Abs(o[i])
	}
	return o
}

func roundedF32(v []float32) []float32 {
	o := make([]float32, len(v))
	RoundSliceBF16(o, v)
	return o
}

// checkBF16 compares got with the float64 results: exact, of the rounded
// operands (exactR) and of the unrounded ones (exact); mag is the sum of
// the magnitudes of each output's products, n the float32 additions on
// the path of one output. Bounds: |got − exactR| ≤ γ_n·mag (the float32
// sums; the products of bfloat16 values are exact), and |got − exact| ≤
// ((2u+u²) + γ_n(1+u)²)·mag (the rounding of the operands on top). It
// returns whether some element is further from exact than float32 alone
// would be (γ_n·mag), i.e. the operands were rounded.
func checkBF16(t *testing.T, what string, got []float32, exact, exactR, mag []float64, n int) (rounded bool) {
	t.Helper()
	g := kt.GammaF32(n)
	for i := range exact {
		d, dR := math.Abs(float64(got[i])-exact[i]), math.Abs(float64(got[i])-exactR[i])
		// The 0x1p-140 absorbs the rounding of a sum that is itself near zero
		// in float32's subnormal range (never reached by these inputs).
		if dR > g*mag[i]+0x1p-140 || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: element %d: %g, exact on bfloat16 operands %g (bound %g)", what, i, got[i], exactR[i], g*mag[i])
		}
		if d > ((2*bf16U+bf16U*bf16U)+g*(1+bf16U)*(1+bf16U))*mag[i]+0x1p-140 {
			t.Fatalf("%s: element %d: %g, exact %g", what, i, got[i], exact[i])
		}
		rounded = rounded || d > g*mag[i]
	}
	return rounded
}

// TestConvBF16 runs the bfloat16 convolutions (forward with and without an
// epilogue, data gradient, data gradient added, weight gradient) every
// way this machine can, on the float32 kernels' shapes plus odd channel
// counts (odd reductions leave half a bfloat16 pair, output channels not
// a multiple of the vector width), against float64.
func TestConvBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 2))
	all := convShapes(r)
	// The float32 kernels' shapes, of those with a weight gradient over a
	// core's cache the first (its native tiles shared out) and the one
	// over maxTileSplitPixels (its image pairs shared out), and two of the
	// random ones.
	shapes := append([]ConvShape{all[0], all[1], all[2], all[3], all[4], all[7], all[8], all[9], all[10], all[12], all[15], all[17], all[len(all)-1], all[len(all)-2]},
		ConvShape{N: 2, H: 5, W: 7, C: 3, OC: 5, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		ConvShape{N: 1, H: 6, W: 6, C: 7, OC: 37, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		ConvShape{N: 3, H: 9, W: 8, C: 33, OC: 65, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 0, PB: 1, PR: 2},
		// Stride 1 with asymmetric padding and dilated rows: the data
		// gradient as a forward convolution with the padding turned around.
		ConvShape{N: 2, H: 6, W: 7, C: 6, OC: 10, KH: 3, KW: 2, SH: 1, SW: 1, DH: 2, DW: 1, PT: 2, PL: 1, PB: 0, PR: 0})
	directData := 0 // shape × way pairs whose data gradient took the direct path
	phasedData := 0 // and those whose strided one took the direct path by phases
	nativeDW := 0   // and those whose weight gradient took the native tiles
	for i, s := range shapes {
		oh, ow := s.OH(), s.OW()
		x := kt.RandF32(r, s.N*s.H*s.W*s.C)
		w := kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
		dy := kt.RandF32(r, s.N*oh*ow*s.OC)
		dxAdd0 := kt.RandF32(r, len(x))
		xr, wr, dyr := roundedF32(x), roundedF32(w), roundedF32(dy)
		// The float32 additions on one output's path: its terms, plus the
		// partial sums merged (per goroutine, per tap in col2im).
		merges := runtime.GOMAXPROCS(0) + s.KH*s.KW
		fe, feR, fmag := bf16Refs(func(a, b, o []float64) { convForwardRef(s, a, b, o) }, x, w, xr, wr, len(dy))
		de, deR, dmag := bf16Refs(func(a, b, o []float64) { convBackwardDataRef(s, a, b, o) }, dy, w, dyr, wr, len(x))
		// The addition: the sum above plus dx's old value, one more float32
		// addition, whose term is included in the magnitude.
		ae, aeR, amag := make([]float64, len(x)), make([]float64, len(x)), make([]float64, len(x))
		for i, v := range dxAdd0 {
			ae[i], aeR[i], amag[i] = de[i]+float64(v), deR[i]+float64(v), dmag[i]+math.Abs(float64(v))
		}
		we, weR, wmag := bf16Refs(func(a, b, o []float64) { convBackwardWeightRef(s, a, b, o) }, x, dy, xr, dyr, len(w))
		for _, way := range bf16Ways(t) {
			name := fmt.Sprintf("%s shape %d %+v", way.name, i, s)
			restore := way.set()
			y, dx, dw := make([]float32, len(dy)), make([]float32, len(x)), make([]float32, len(w))
			for i := range dw { // poison: every gradient element must be overwritten
				dw[i] = float32(math.NaN())
			}
			dxAdd := append([]float32(nil), dxAdd0...)
			if way.native && bf16DirectOK(s) {
				yd := make([]float32, len(dy))
				convForwardDirectBF16(s, x, w, yd, directEpilogue(s.OC), way.direct)
				checkBF16(t, name+" direct forward", yd, fe, feR, fmag, s.KH*s.KW*s.C+merges)
			}
			if way.native && backwardDataAsForwardOK(s) {
				dxd, dxAddD := make([]float32, len(x)), append([]float32(nil), dxAdd0...)
				backwardDataDirectBF16(s, dy, w, dxd, false, way.direct)
				backwardDataDirectBF16(s, dy, w, dxAddD, true, way.direct)
				checkBF16(t, name+" direct data", dxd, de, deR, dmag, s.KH*s.KW*s.OC+merges)
				checkBF16(t, name+" direct data add", dxAddD, ae, aeR, amag, s.KH*s.KW*s.OC+merges+1)
				directData++
			}
			if way.native && !backwardDataAsForwardOK(s) {
				dxp, dxAddP := make([]float32, len(x)), append([]float32(nil), dxAdd0...)
				for i := range dxp { // poison: every element must be written
					dxp[i] = float32(math.NaN())
				}
				if backwardDataPhasesBF16(s, dy, w, dxp, false, way.direct) {
					if !backwardDataPhasesBF16(s, dy, w, dxAddP, true, way.direct) {
						t.Fatalf("%s: the phases took the data gradient but not its addition", name)
					}
					checkBF16(t, name+" phased data", dxp, de, deR, dmag, s.KH*s.KW*s.OC+merges)
					checkBF16(t, name+" phased data add", dxAddP, ae, aeR, amag, s.KH*s.KW*s.OC+merges+1)
					phasedData++
				}
			}
			if way.native {
				convForwardNativeBF16(s, x, w, y, directEpilogue(s.OC))
				convBackwardDataNativeBF16(s, dy, w, dx, false)
				convBackwardDataNativeBF16(s, dy, w, dxAdd, true)
				if convBackwardWeightNativeBF16(s, x, dy, dw, way.dw) {
					nativeDW++
				} else {
					ConvBackwardWeightBF16(s, x, dy, dw) // output channels not a multiple of 16: the emulation
				}
			} else {
				ConvForwardBF16(s, x, w, y)
				ConvBackwardDataBF16(s, dy, w, dx)
				ConvBackwardDataAddBF16(s, dy, w, dxAdd)
				ConvBackwardWeightBF16(s, x, dy, dw)
			}
			restore()

			rounded := checkBF16(t, name+" forward", y, fe, feR, fmag, s.KH*s.KW*s.C+merges)
			rounded = checkBF16(t, name+" data", dx, de, deR, dmag, s.KH*s.KW*s.OC+merges) || rounded
			rounded = checkBF16(t, name+" data add", dxAdd, ae, aeR, amag, s.KH*s.KW*s.OC+merges+1) || rounded
			// The native tiles pair images (a zero one past an odd batch).
			adds := s.N * oh * ow
			if way.native {
				adds = (s.N + 1) * oh * ow
			}
			rounded = checkBF16(t, name+" weight", dw, we, weR, wmag, adds+merges) || rounded
			if !rounded {
				t.Errorf("%s: every result within float32's error: the operands were not rounded to bfloat16", name)
			}
		}
	}
	if directData == 0 {
		t.Error("no shape took the direct data gradient")
	}
	if nativeDW == 0 {
		t.Error("no shape took the native weight gradient")
	}
	if phasedData == 0 {
		t.Error("no strided shape took the direct data gradient by phases")
	}
}

// TestConvAMXBF16 runs the forward convolution and the data gradient on
// AMX tiles (convDirectAMXBF16) against float64, with checkBF16's bounds:
// on chosen shapes — positions that cross output rows and images, more
// tiles than a group, strides 1 and 2 (padded and unpadded), dilated rows,
// kernel rows of 32 values from 16 channels, output channels short of a
// 32-wide block — with an epilogue (skip term, ReLU) that must equal the
// epilogue of the plain sums bit for bit; then on random shapes that take
// the tiles, outputs poisoned so that each must be written. The weight
// gradient too, where its tiles take it (amxGradOK).
func TestConvAMXBF16(t *testing.T) {
	if !hasAMXBF16 || !bf16NativeOn() {
		t.Skip("AMX-BF16 tiles not run: this CPU lacks AMX-BF16 or AVX512-BF16, the system did not grant the tile data, or RESIDUAL_AMX=0")
	}
	r := rand.New(rand.NewPCG(18, 16))
	shapes := []ConvShape{
		{N: 2, H: 7, W: 7, C: 64, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 3, H: 9, W: 8, C: 32, OC: 48, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 0, PB: 1, PR: 2},
		{N: 2, H: 8, W: 8, C: 64, OC: 32, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
		{N: 1, H: 30, W: 30, C: 32, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 10, W: 9, C: 32, OC: 40, KH: 3, KW: 1, SH: 1, SW: 1, DH: 2, DW: 1, PT: 2, PB: 2},
		{N: 2, H: 6, W: 7, C: 16, OC: 33, KH: 2, KW: 2, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1},
		{N: 4, H: 14, W: 14, C: 128, OC: 96, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		// Channels padded to a 32-value kernel row: ResNet's stem, CIFAR
		// ResNets' 16-channel layers (a block of 32 output channels, 16 of
		// them real), odd counts.
		{N: 2, H: 20, W: 20, C: 3, OC: 64, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3},
		{N: 3, H: 8, W: 8, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 8, W: 8, C: 16, OC: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 5, W: 6, C: 7, OC: 45, KH: 3, KW: 2, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1},
		// Weight gradients of several chunks of positions (512 at most) a
		// goroutine
		// (chunks that start and end inside rows and images), unfolded
		// rows and not.
		{N: 5, H: 30, W: 29, C: 8, OC: 40, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 5, H: 26, W: 27, C: 40, OC: 33, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1},
		// and tiles too large for a copy a goroutine: split by tiles, each
		// staging every chunk.
		{N: 4, H: 22, W: 22, C: 96, OC: 96, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		// Strided 1×1 convolutions on the pixels they read, gathered
		// (subsample1x1): an odd image and unequal strides, which the
		// strided sweep does not take, and ResNet's downsampling shape.
		{N: 2, H: 7, W: 7, C: 40, OC: 36, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
		{N: 3, H: 8, W: 6, C: 64, OC: 64, KH: 1, KW: 1, SH: 3, SW: 2, DH: 1, DW: 1},
		{N: 3, H: 14, W: 14, C: 96, OC: 64, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},
	}
	fixed := len(shapes)
	trials := 150
	if testing.Short() {
		trials = 30
	}
	for len(shapes) < fixed+trials {
		c := []int{1 + r.IntN(70), 16, 32, 64}[r.IntN(4)]
		st := 1 + r.IntN(2)
		oc := []int{1 + r.IntN(80), 16, 32, 64}[r.IntN(4)]
		s := ConvShape{N: 1 + r.IntN(3), H: 1 + r.IntN(12), W: 1 + r.IntN(12), C: c, OC: oc,
			KH: 1 + r.IntN(3), KW: 1 + r.IntN(3), SH: st, SW: st, DH: 1 + r.IntN(2), DW: 1,
			PT: r.IntN(3), PL: r.IntN(3), PB: r.IntN(3), PR: r.IntN(3)}
		if s.Validate() == nil && s.OH() > 0 && s.OW() > 0 && amxBF16OK(s) {
			shapes = append(shapes, s)
		}
	}
	// The weight gradient's tiles also take horizontal dilation, which the
	// forward tiles do not (amxGradOK).
	for n := 0; n < trials/5; {
		st := 1 + r.IntN(2)
		s := ConvShape{N: 1 + r.IntN(3), H: 1 + r.IntN(12), W: 1 + r.IntN(14), C: 1 + r.IntN(40), OC: 1 + r.IntN(40),
			KH: 1 + r.IntN(3), KW: 2 + r.IntN(2), SH: st, SW: st, DH: 1 + r.IntN(2), DW: 2 + r.IntN(2),
			PT: r.IntN(3), PL: r.IntN(3), PB: r.IntN(3), PR: r.IntN(3)}
		if s.Validate() != nil || s.OH() <= 0 || s.OW() <= 0 || !amxGradOK(s) {
			continue
		}
		n++
		x, dy := kt.RandF32(r, s.N*s.H*s.W*s.C), kt.RandF32(r, s.N*s.OH()*s.OW()*s.OC)
		we, weR, wmag := bf16Refs(func(a, b, o []float64) { convBackwardWeightRef(s, a, b, o) }, x, dy, roundedF32(x), roundedF32(dy), s.KH*s.KW*s.C*s.OC)
		dw := make([]float32, s.KH*s.KW*s.C*s.OC)
		for i := range dw {
			dw[i] = float32(math.NaN())
		}
		ConvBackwardWeightBF16(s, x, dy, dw)
		checkBF16(t, fmt.Sprintf("dilated %+v weight", s), dw, we, weR, wmag, (s.N+1)*s.OH()*s.OW()+s.KH*s.KW+runtime.GOMAXPROCS(0))
	}
	gradShapes := 0
	for i, s := range shapes {
		if sub, ok := subsampledShape(s); !amxBF16OK(s) && !(ok && amxBF16OK(sub)) {
			t.Fatalf("shape %d %+v does not take the AMX tiles", i, s)
		}
		oh, ow := s.OH(), s.OW()
		x := kt.RandF32(r, s.N*s.H*s.W*s.C)
		w := kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
		dy := kt.RandF32(r, s.N*oh*ow*s.OC)
		xr, wr, dyr := roundedF32(x), roundedF32(w), roundedF32(dy)
		merges := s.KH * s.KW
		e, eR, mag := bf16Refs(func(a, b, o []float64) { convForwardRef(s, a, b, o) }, x, w, xr, wr, len(dy))
		y := make([]float32, len(dy))
		for i := range y {
			y[i] = float32(math.NaN()) // every output must be written
		}
		ConvForwardBF16(s, x, w, y)
		checkBF16(t, fmt.Sprintf("shape %d %+v forward", i, s), y, e, eR, mag, s.KH*s.KW*s.C+merges)

		if i < fixed {
			// Packed weights (an inference model's) give the same sums bit
			// for bit, unfolded rows (the stem) and gathered pixels
			// included; the weights passed along are NaN, which the packed
			// path must not read (PackConvBF16 packs in the layout that
			// ConvForwardPackedBF16 computes in).
			yp := make([]float32, len(dy))
			wNaN := make([]float32, len(w))
			for j := range wNaN {
				wNaN[j] = float32(math.NaN())
			}
			ConvForwardPackedBF16(s, x, wNaN, PackConvBF16(s, w), yp, ConvEpilogue[float32]{})
			for j := range yp {
				if math.Float32bits(yp[j]) != math.Float32bits(y[j]) {
					t.Fatalf("shape %d %+v packed: element %d: %g, unpacked %g", i, s, j, yp[j], y[j])
				}
			}
			// The epilogue max(sum·scale + shift + skip, 0) equals the
			// float32 operations on the plain sums.
			skip := kt.RandF32(r, len(dy))
			scale, shift := kt.RandF32(r, s.OC), kt.RandF32(r, s.OC)
			ye := make([]float32, len(dy))
			ConvForwardEpilogueBF16(s, x, w, ye, ConvEpilogue[float32]{Scale: scale, Shift: shift, Skip: skip, ReLU: true})
			for j := range ye {
				c := j % s.OC
				if want := max(float32(y[j]*scale[c])+shift[c]+skip[j], 0); ye[j] != want {
					t.Fatalf("shape %d %+v epilogue: element %d: %g, the sums' epilogue %g", i, s, j, ye[j], want)
				}
			}
		}

		de, deR, dmag := bf16Refs(func(a, b, o []float64) { convBackwardDataRef(s, a, b, o) }, dy, w, dyr, wr, len(x))
		dx := make([]float32, len(x))
		for i := range dx {
			dx[i] = float32(math.NaN())
		}
		ConvBackwardDataBF16(s, dy, w, dx)
		checkBF16(t, fmt.Sprintf("shape %d %+v data", i, s), dx, de, deR, dmag, s.KH*s.KW*s.OC+merges)

		if sub, ok := subsampledShape(s); !amxGradOK(s) && !(ok && amxGradOK(sub)) {
			continue
		}
		gradShapes++
		we, weR, wmag := bf16Refs(func(a, b, o []float64) { convBackwardWeightRef(s, a, b, o) }, x, dy, xr, dyr, len(w))
		dw := make([]float32, len(w))
		for i := range dw {
			dw[i] = float32(math.NaN())
		}
		ConvBackwardWeightBF16(s, x, dy, dw)
		// Two additions a pair of images (a zero image past an odd batch),
		// and the goroutines' partial sums; the positions that are no
		// output add exact zeros.
		checkBF16(t, fmt.Sprintf("shape %d %+v weight", i, s), dw, we, weR, wmag, (s.N+1)*oh*ow+merges+runtime.GOMAXPROCS(0))
	}
	if gradShapes < trials/2 {
		t.Errorf("only %d shapes took the weight gradient's tiles", gradShapes)
	}
}

// TestConvEpilogueBF16 checks the epilogue (scale, shift, skip, ReLU) of
// the bfloat16 forward convolution, applied in float32 to the sums: on
// top of γ_K·Σ|x̂||ŵ|·|scale|, each of its three float32 operations rounds
// by at most 2⁻²⁴ of the magnitudes involved.
func TestConvEpilogueBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 3))
	s := ConvShape{N: 2, H: 7, W: 6, C: 16, OC: 48, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}
	x, w := kt.RandF32(r, s.N*s.H*s.W*s.C), kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
	scale, shift := kt.RandF32(r, s.OC), kt.RandF32(r, s.OC)
	n := s.N * s.OH() * s.OW() * s.OC
	skip := kt.RandF32(r, n)
	e := ConvEpilogue[float32]{Scale: scale, Shift: shift, Skip: skip, ReLU: true}
	sums, mag := make([]float64, n), make([]float64, n)
	convForwardRef(s, kt.F64(roundedF32(x)), kt.F64(roundedF32(w)), sums)
	convForwardRef(s, absF64(x), absF64(w), mag)
	for _, way := range bf16Ways(t) {
		y := make([]float32, n)
		restore := way.set()
		if way.native {
			convForwardDirectBF16(s, x, w, y, &convEpilogue{scale: scale, shift: shift, skip: skip, floor: 0, direct: true}, way.direct)
		} else {
			ConvForwardEpilogueBF16(s, x, w, y, e)
		}
		restore()
		g := kt.GammaF32(s.KH*s.KW*s.C + runtime.GOMAXPROCS(0))
		for i := range y {
			c := i % s.OC
			sc := float64(scale[c])
			v := sums[i]*sc + float64(shift[c]) + float64(skip[i])
			bound := g*mag[i]*math.Abs(sc) + 3*0x1p-24*(math.Abs(sums[i]*sc)+math.Abs(float64(shift[c]))+math.Abs(float64(skip[i])))
			if math.Abs(float64(y[i])-math.Max(v, 0)) > bound {
				t.Fatalf("%s: element %d: %g, want %g (bound %g)", way.name, i, y[i], math.Max(v, 0), bound)
			}
		}
	}
}

// TestDirectBF16StagesAcrossTasks runs the direct bfloat16 forward pass
// and data gradient (the Go models of the kernels, so on any CPU) on shapes
// whose sweep is cut into several tasks, each converting the input rows or
// pixels it reads: rows of three 7×7 images, whose tasks start and end
// inside images; a flat 1×1 sweep with an odd channel count (a zero
// channel added per pixel) and one with an even count; padding and a
// stride of 2 — on 1, 2, 3 and 5 goroutines, against float64 within
// checkBF16's bound. A task that converted the wrong rows would read
// another pixel's channels.
func TestDirectBF16StagesAcrossTasks(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 5))
	set := bf16DirectKernelsGo()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0)) // restored even if a check fails
	for _, s := range []ConvShape{
		{N: 3, H: 7, W: 7, C: 16, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 12, W: 12, C: 7, OC: 16, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 2, H: 16, W: 16, C: 32, OC: 48, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		{N: 3, H: 9, W: 11, C: 6, OC: 16, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	} {
		x, w := kt.RandF32(r, s.N*s.H*s.W*s.C), kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
		n := s.N * s.OH() * s.OW() * s.OC
		dy := kt.RandF32(r, n)
		fe, feR, fmag := make([]float64, n), make([]float64, n), make([]float64, n)
		convForwardRef(s, kt.F64(x), kt.F64(w), fe)
		convForwardRef(s, kt.F64(roundedF32(x)), kt.F64(roundedF32(w)), feR)
		convForwardRef(s, absF64(x), absF64(w), fmag)
		de, deR, dmag := make([]float64, len(x)), make([]float64, len(x)), make([]float64, len(x))
		convBackwardDataRef(s, kt.F64(dy), kt.F64(w), de)
		convBackwardDataRef(s, kt.F64(roundedF32(dy)), kt.F64(roundedF32(w)), deR)
		convBackwardDataRef(s, absF64(dy), absF64(w), dmag)
		for _, procs := range []int{1, 2, 3, 5} {
			runtime.GOMAXPROCS(procs)
			name := fmt.Sprintf("%+v on %d", s, procs)
			merges := procs + s.KH*s.KW // as TestConvBF16 counts them
			y := make([]float32, n)
			convForwardDirectBF16(s, x, w, y, directEpilogue(s.OC), set)
			checkBF16(t, name+" forward", y, fe, feR, fmag, s.KH*s.KW*s.C+merges)
			if backwardDataAsForwardOK(s) {
				dx := make([]float32, len(x))
				backwardDataDirectBF16(s, dy, w, dx, false, set)
				checkBF16(t, name+" data", dx, de, deR, dmag, s.KH*s.KW*s.OC+merges)
			} else {
				dx := make([]float32, len(x))
				for i := range dx {
					dx[i] = float32(math.NaN()) // every element must be written
				}
				if !backwardDataPhasesBF16(s, dy, w, dx, false, set) {
					t.Fatalf("%s: the strided data gradient did not take the phases", name)
				}
				checkBF16(t, name+" phased data", dx, de, deR, dmag, s.KH*s.KW*s.OC+merges)
			}
		}
	}
}

// TestGemmBF16 runs GemmBF16 every way, with transposes, leading
// dimensions past the row length, beta 0 and not, odd k (half a pair) and
// n not a multiple of the vector width, against float64.
func TestGemmBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 4))
	for _, way := range bf16Ways(t) {
		for _, sh := range [][3]int{{8, 1000, 64}, {37, 21, 41}, {5, 48, 130}, {70, 33, 1}, {1, 1, 3}} {
			m, n, k := sh[0], sh[1], sh[2]
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				ta, tb := tr[0], tr[1]
				lda, ldb, ldc := k+3, n+1, n+2
				arows, brows := m, k
				if ta {
					lda, arows = m+3, k
				}
				if tb {
					ldb, brows = k+1, n
				}
				a, b, c0 := kt.RandF32(r, arows*lda), kt.RandF32(r, brows*ldb), kt.RandF32(r, m*ldc)
				for _, beta := range []float32{0, 0.5} {
					name := fmt.Sprintf("%s m=%d n=%d k=%d transA=%v transB=%v beta=%g", way.name, m, n, k, ta, tb, beta)
					got := append([]float32(nil), c0...)
					restore := way.set()
					if way.native {
						gemmNativeBF16(ta, tb, m, n, k, 1.5, a, lda, b, ldb, beta, got, ldc)
					} else {
						GemmBF16(ta, tb, m, n, k, 1.5, a, lda, b, ldb, beta, got, ldc)
					}
					restore()
					e, eR, mag := make([]float64, m*ldc), make([]float64, m*ldc), make([]float64, m*ldc)
					gemmRef(ta, tb, m, n, k, 1, kt.F64(a), lda, kt.F64(b), ldb, 0, e, ldc)
					gemmRef(ta, tb, m, n, k, 1, kt.F64(roundedF32(a)), lda, kt.F64(roundedF32(b)), ldb, 0, eR, ldc)
					gemmRef(ta, tb, m, n, k, 1, absF64(a), lda, absF64(b), ldb, 0, mag, ldc)
					// got = 1.5·sum + beta·c0: the scaling by 1.5 (exact up to one
					// rounding) and the addition add 2 float32 roundings, counted as
					// 2 more additions with c0's term in the magnitude.
					for i := 0; i < m; i++ {
						for j := 0; j < ldc; j++ {
							q := i*ldc + j
							if j >= n {
								e[q], eR[q], mag[q] = float64(c0[q]), float64(c0[q]), 0
								continue
							}
							cb := float64(beta) * float64(c0[q])
							e[q], eR[q], mag[q] = 1.5*e[q]+cb, 1.5*eR[q]+cb, 1.5*mag[q]+math.Abs(cb)
						}
					}
					rounded := checkBF16(t, name, got, e, eR, mag, k+2)
					if !rounded && k > 1 {
						t.Errorf("%s: every result within float32's error: not rounded to bfloat16", name)
					}
				}
			}
		}
	}
}

// TestConvDirectBF16StaysInField puts an infinity in one input pixel of
// convolutions with odd channel counts (whose stored pixels carry a zero
// channel) and checks that only the outputs whose receptive field holds
// it are not finite: a read past a kernel row would meet the infinity
// with a zero weight and make a NaN elsewhere.
func TestConvDirectBF16StaysInField(t *testing.T) {
	for _, way := range bf16Ways(t) {
		if !way.native {
			continue
		}
		for _, s := range []ConvShape{
			{N: 1, H: 6, W: 7, C: 3, OC: 8, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
			{N: 2, H: 5, W: 5, C: 5, OC: 4, KH: 1, KW: 3, SH: 1, SW: 2, DH: 1, DW: 1},
		} {
			x := make([]float32, s.N*s.H*s.W*s.C)
			for i := range x {
				x[i] = 1
			}
			w := make([]float32, s.KH*s.KW*s.C*s.OC)
			for i := range w {
				w[i] = 0.5
			}
			iy, ix := s.H/2, s.W/2
			x[(iy*s.W+ix)*s.C] = float32(math.Inf(1)) // image 0, first channel
			oh, ow := s.OH(), s.OW()
			y := make([]float32, s.N*oh*ow*s.OC)
			convForwardDirectBF16(s, x, w, y, directEpilogue(s.OC), way.direct)
			for n := range s.N {
				for oy := range oh {
					for ox := range ow {
						dy, dx := iy-(oy*s.SH-s.PT), ix-(ox*s.SW-s.PL)
						in := n == 0 && dy >= 0 && dy < s.KH && dx >= 0 && dx < s.KW
						v := y[((n*oh+oy)*ow+ox)*s.OC]
						if in != math.IsInf(float64(v), 1) || math.IsNaN(float64(v)) {
							t.Fatalf("%s %+v: output (%d, %d, %d) = %v; its field holds the infinity: %v", way.name, s, n, oy, ox, v, in)
						}
					}
				}
			}
		}
	}
}

// TestEpilogueTileMatchesGo holds the AVX-512 tile epilogue of the direct
// bf16 path to the Go loop bit for bit, signs of zero and NaNs included,
// for full and partial channel blocks, with and without a skip term, and
// with the floors of no ReLU (−∞) and of a ReLU (0).
func TestEpilogueTileMatchesGo(t *testing.T) {
	if !hasBF16 || !use.avx512 {
		t.Skip("the tile epilogue is the AVX512-BF16 path's; this CPU or level has none")
	}
	r := rand.New(rand.NewPCG(9, 9))
	negZero := float32(math.Copysign(0, -1))
	specials := []float32{0, negZero, 1, -1, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-40, -1e-40}
	pick := func() float32 {
		if r.IntN(3) == 0 {
			return specials[r.IntN(len(specials))]
		}
		return float32(r.NormFloat64())
	}
	for trial := range 500 {
		rows, nc, nch := 1+r.IntN(directMR), 32, 80
		if trial%2 == 1 {
			nc = 1 + r.IntN(32)
		}
		n0, m0 := r.IntN(nch-nc+1), r.IntN(3)
		tile := make([]float32, rows*32)
		for i := range tile {
			tile[i] = pick()
		}
		ep := &convEpilogue{scale: make([]float32, nch), shift: make([]float32, nch), floor: float32(math.Inf(-1))}
		if trial%3 == 0 {
			ep.floor = 0
		}
		for j := range nch {
			ep.scale[j], ep.shift[j] = pick(), pick()
		}
		size := (m0 + rows) * nch
		if trial%4 >= 2 {
			ep.skip = make([]float32, size)
			for i := range ep.skip {
				ep.skip[i] = pick()
			}
		}
		got, want := make([]float32, size), make([]float32, size)
		for i := range got {
			got[i], want[i] = float32(i), float32(i)
		}
		ep.epilogueTile(tile, m0*nch+n0, rows, nch, n0, nc, got)
		epilogueTileGo(ep, tile, m0*nch+n0, rows, nch, n0, nc, want)
		for i := range got {
			g, w := math.Float32bits(got[i]), math.Float32bits(want[i])
			if g != w && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
				t.Fatalf("trial %d (rows %d, channels %d at %d, floor %v, skip %v): element %d is %v (%#08x), Go gives %v (%#08x)",
					trial, rows, nc, n0, ep.floor, ep.skip != nil, i, got[i], g, want[i], w)
			}
		}
	}
}

// TestPackDirectBF16 checks packDirectBF16's layout element by element
// against its definition: per block of nr output channels, [KH][KW·cp/2][nr]
// pairs, pair q of kernel row ky holding elements 2q and 2q+1 of the row
// (element k = kx·cp + c), zeros past C and past OC — for both block widths,
// channels padded to AMX's whole steps and to even, and a last block short
// of nr.
func TestPackDirectBF16(t *testing.T) {
	for _, tc := range []struct {
		c, oc, k int
		l        bf16Layout
	}{
		{3, 64, 7, bf16Layout{nr: 32, cp: 4}},      // the stem on AMX-like padding (cp > C)
		{5, 40, 3, bf16Layout{nr: 32, cp: 6}},      // odd C, a last block of 8
		{64, 96, 1, bf16Layout{nr: 32, cp: 64}},    // whole blocks
		{7, 16, 3, bf16Layout{nr: 16, cp: 8}},      // the narrow blocks
		{32, 50, 3, bf16Layout{nr: 32, cp: 32}},    // KW·cp whole steps, OC short
		{2, 33, 1, bf16Layout{nr: 16, cp: 32}},     // most of a row zeros
		{130, 300, 3, bf16Layout{nr: 32, cp: 130}}, // many units a goroutine
	} {
		s := ConvShape{N: 1, H: 4, W: 4, C: tc.c, OC: tc.oc, KH: tc.k, KW: tc.k, SH: 1, SW: 1, DH: 1, DW: 1}
		w := make([]float32, tc.k*tc.k*tc.c*tc.oc)
		for i := range w {
			w[i] = float32(i%251)*0.37 - 40
		}
		buf, wp := directWeightsBF16(s, tc.l)
		for i := range wp {
			wp[i] = 0xdeadbeef // every pair must be written
		}
		packDirectBF16(s, w, wp, tc.l)
		nr, cp := tc.l.nr, tc.l.cp
		pairs := s.KW * cp / 2
		elem := func(ky, k, oc int) float32 {
			kx, c := k/cp, k%cp
			if c >= s.C || oc >= s.OC {
				return 0
			}
			return w[((ky*s.KW+kx)*s.C+c)*s.OC+oc]
		}
		bad := 0
		for b := range (s.OC + nr - 1) / nr {
			for ky := range s.KH {
				for q := range pairs {
					for j := range nr {
						got := wp[((b*s.KH+ky)*pairs+q)*nr+j]
						want := bf16Pair(elem(ky, 2*q, b*nr+j), elem(ky, 2*q+1, b*nr+j))
						if got != want && bad < 5 {
							bad++
							t.Errorf("C=%d OC=%d %d×%d nr=%d cp=%d: block %d row %d pair %d channel %d = %#x, want %#x", tc.c, tc.oc, tc.k, tc.k, nr, cp, b, ky, q, j, got, want)
						}
					}
				}
			}
		}
		putBytes(buf)
	}
}

// TestConvStatsAMXBF16 checks the batch statistics that the bfloat16
// convolution on AMX tiles computes as it stores its output
// (ConvEpilogue.Stats) against float64 sums over the stored output. The
// sums about a shift K are float32 over at most 256 outputs, then float64:
// |ΔΣ(y−K)| ≤ γ₂₅₆·Σ|y−K| and |ΔΣ(y−K)²| ≤ γ₂₅₆·Σ(y−K)² per task, where
// K, one of the outputs, is at most 2·D from any (D the largest
// deviation from the mean), so the mean is within γ₂₅₆·2D and M2 within
// 3·γ₂₅₆·n·(2D)² (the two sums' errors, and the square of the first);
// the float64 merge adds nothing at that scale.
func TestConvStatsAMXBF16(t *testing.T) {
	if !AMXBF16() {
		t.Skip("AMX-BF16 tiles not run: this CPU lacks AMX-BF16 or AVX512-BF16, the system did not grant the tile data, or RESIDUAL_AMX=0")
	}
	r := rand.New(rand.NewPCG(7, 77))
	for _, s := range []ConvShape{
		{N: 8, H: 14, W: 14, C: 64, OC: 96, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 3, H: 9, W: 8, C: 32, OC: 40, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 0, PB: 1, PR: 2},    // strided, a short last block
		{N: 2, H: 20, W: 20, C: 3, OC: 64, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3},   // the stem, rows unfolded
		{N: 3, H: 14, W: 14, C: 96, OC: 64, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},                              // pixels gathered
		{N: 64, H: 16, W: 16, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, // CIFAR's first stage: many tasks
	} {
		x := kt.RandF32(r, s.N*s.H*s.W*s.C)
		w := kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
		for i := range x {
			x[i] += 0.5 // a mean well away from 0
		}
		n := s.N * s.OH() * s.OW()
		y := make([]float32, n*s.OC)
		st := &ConvStats{}
		ConvForwardEpilogueBF16(s, x, w, y, ConvEpilogue[float32]{Stats: st})
		if !st.Done || st.N != n || len(st.Mean) != s.OC || len(st.M2) != s.OC {
			t.Fatalf("%+v: statistics not computed (done %v, N %d of %d, %d means, %d M2s)", s, st.Done, st.N, n, len(st.Mean), len(st.M2))
		}
		g := kt.GammaF32(256)
		for c := range s.OC {
			var sum float64
			for i := range n {
				sum += float64(y[i*s.OC+c])
			}
			mean := sum / float64(n)
			var m2, dev float64
			for i := range n {
				d := float64(y[i*s.OC+c]) - mean
				m2 += d * d
				dev = max(dev, math.Abs(d))
			}
			if e := math.Abs(st.Mean[c] - mean); e > g*2*dev {
				t.Errorf("%+v channel %d: mean %g, want %g (error %.3g > bound %.3g)", s, c, st.Mean[c], mean, e, g*2*dev)
			}
			if e, b := math.Abs(st.M2[c]-m2), 3*g*float64(n)*4*dev*dev; e > b {
				t.Errorf("%+v channel %d: M2 %g, want %g (error %.3g > bound %.3g)", s, c, st.M2[c], m2, e, b)
			}
		}
		// An epilogue that changes the sums computes none, and what was
		// there before is cleared.
		ConvForwardEpilogueBF16(s, x, w, y, ConvEpilogue[float32]{Stats: st, ReLU: true})
		if st.Done {
			t.Errorf("%+v: statistics computed under a ReLU, or left done", s)
		}
	}
	// Infinite outputs: the merged mean is what the batch norm's own sums
	// give, ±Inf where a channel's infinities are of one sign and NaN where
	// they are of both (an incremental merge made it NaN either way).
	s := ConvShape{N: 4, H: 8, W: 8, C: 32, OC: 32, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1}
	x := kt.RandF32(r, s.N*s.H*s.W*s.C)
	x[5*s.C+3] = float32(math.Inf(1))          // image 0
	x[(3*64+40)*s.C+7] = float32(math.Inf(-1)) // image 3: another task
	w := kt.RandF32(r, s.C*s.OC)
	n := s.N * s.H * s.W
	y := make([]float32, n*s.OC)
	st := &ConvStats{}
	ConvForwardEpilogueBF16(s, x, w, y, ConvEpilogue[float32]{Stats: st})
	own, is, z := make([]float32, s.OC), make([]float32, s.OC), make([]float32, len(y))
	BatchNormTrainForward(n, s.OC, y, nil, nil, z, own, is, nil, nil, 0.1, 1e-5, Fused[float32]{})
	infinite := 0
	for c := range s.OC {
		got := float32(st.Mean[c])
		if math.IsInf(float64(own[c]), 0) {
			infinite++
		}
		if got != own[c] && !(math.IsNaN(float64(got)) && math.IsNaN(float64(own[c]))) {
			t.Errorf("channel %d of infinite outputs: mean %g, the batch norm's own %g", c, got, own[c])
		}
	}
	if infinite == 0 {
		t.Error("no channel's mean was infinite: the case tests nothing")
	}
}

// TestBatchNormTakesXStats checks that a training batch norm normalises
// with the statistics handed to it (Fused.XStats, when Done for its rows)
// rather than its own, and computes its own when they are not done or are
// of another number of rows.
func TestBatchNormTakesXStats(t *testing.T) {
	const m, c = 40, 32
	r := rand.New(rand.NewPCG(3, 4))
	x := kt.RandF32(r, m*c)
	y, mean, invStd := make([]float32, m*c), make([]float32, c), make([]float32, c)
	st := &ConvStats{Done: true, N: m, Mean: make([]float64, c), M2: make([]float64, c)}
	for j := range c {
		st.Mean[j], st.M2[j] = float64(j)-3, float64(m)*float64(j+1) // variance j+1
	}
	BatchNormTrainForward(m, c, x, nil, nil, y, mean, invStd, nil, nil, 0.1, 1e-5, Fused[float32]{XStats: st})
	for j := range c {
		if want := 1 / math.Sqrt(float64(j+1)+1e-5); mean[j] != float32(j-3) || math.Abs(float64(invStd[j])-want) > 1e-6*want {
			t.Fatalf("channel %d: mean %g, 1/σ %g; want the statistics handed over, %d and %g", j, mean[j], invStd[j], j-3, want)
		}
	}
	var sum float64
	for i := range m {
		sum += float64(x[i*c])
	}
	for _, tc := range []struct {
		what string
		done bool
		n    int
	}{{"not done", false, m}, {"done for other rows", true, m + 1}} {
		st.Done, st.N = tc.done, tc.n
		BatchNormTrainForward(m, c, x, nil, nil, y, mean, invStd, nil, nil, 0.1, 1e-5, Fused[float32]{XStats: st})
		if got, want := float64(mean[0]), sum/m; math.Abs(got-want) > 1e-6 {
			t.Fatalf("%s: mean %g, want x's own %g", tc.what, got, want)
		}
	}
}

// alignedF32 returns n float32s starting at a 64-byte boundary.
func alignedF32(n int) []float32 {
	b := make([]float32, n+16)
	off := int(uintptr(unsafe.Pointer(&b[0]))%64) / 4
	if off != 0 {
		off = 16 - off
	}
	return b[off : off+n]
}

// TestStreamedForwardMatches checks that a bfloat16 forward convolution on
// AMX tiles in training (asked for its statistics) stores the same output
// bit for bit with streaming stores (streamedOutput, here for any size) as
// through the caches, and as on packed weights (which never stream):
// blocks of 32 channels, a last block of 16 (the streamed half), blocks
// of other widths (cached either way), and rows that are not 64-byte
// aligned (cached).
func TestStreamedForwardMatches(t *testing.T) {
	if !AMXBF16() {
		t.Skip("AMX-BF16 tiles not run: this CPU lacks AMX-BF16 or AVX512-BF16, the system did not grant the tile data, or RESIDUAL_AMX=0")
	}
	defer func(v int) { streamMinBytes = v }(streamMinBytes)
	r := rand.New(rand.NewPCG(11, 12))
	for _, s := range []ConvShape{
		{N: 2, H: 9, W: 9, C: 32, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 3, H: 8, W: 8, C: 16, OC: 48, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, // a last block of 16
		{N: 4, H: 8, W: 8, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, // CIFAR's 16 channels
		{N: 2, H: 7, W: 7, C: 24, OC: 40, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},                             // rows of 160 bytes
		{N: 2, H: 20, W: 20, C: 3, OC: 64, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3},
	} {
		x, w := kt.RandF32(r, s.N*s.H*s.W*s.C), kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
		n := s.N * s.OH() * s.OW() * s.OC
		cached, streamed, packed := alignedF32(n), alignedF32(n), alignedF32(n)
		ConvForwardEpilogueBF16(s, x, w, cached, ConvEpilogue[float32]{}) // no statistics: cached
		streamMinBytes = 0
		for i := range streamed {
			streamed[i], packed[i] = float32(math.NaN()), float32(math.NaN())
		}
		ConvForwardEpilogueBF16(s, x, w, streamed, ConvEpilogue[float32]{Stats: &ConvStats{}})
		ConvForwardPackedBF16(s, x, w, PackConvBF16(s, w), packed, ConvEpilogue[float32]{})
		for i := range cached {
			if math.Float32bits(streamed[i]) != math.Float32bits(cached[i]) || math.Float32bits(packed[i]) != math.Float32bits(cached[i]) {
				t.Fatalf("%+v: element %d streamed %g, packed and streamed %g, cached %g", s, i, streamed[i], packed[i], cached[i])
			}
		}
	}
}
