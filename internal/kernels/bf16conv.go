package kernels

import (
	"math"
	"os"
)

// The bfloat16 entry points compute what PyTorch's CPU autocast computes
// for a convolution or a matrix product: both operands rounded to
// bfloat16, the products (exact in float32) summed in float32, a float32
// result. They run one of three ways, chosen from the CPU (BF16Path):
//
//   - native: AVX512-BF16's VDPBF16PS on operands packed as bfloat16
//     pairs, where the CPU has it and the active level is AVX-512: direct
//     convolutions read in place (bf16direct.go: the forward pass and the
//     stride-1 data gradient), the weight gradient on pairs of images
//     (bf16dw.go), and packed matrix products for the rest
//     (bf16native.go);
//   - emulated: the operands rounded to bfloat16 but kept as float32
//     (low halves zero), then the float32 direct kernels of the active
//     level (AVX2 or AVX-512; never Winograd, whose transforms would round
//     the operands again): each FMA's product is the exact bfloat16
//     product, so this is VDPBF16PS up to the order of the float32 sums;
//   - reference: the same rounded operands on the reference kernels
//     (RESIDUAL_KERNELS=generic, or no assembly).
//
// RESIDUAL_BF16=emulate keeps a CPU with AVX512-BF16 on the emulation.
//
// Error bound (the tests' tolerance): with u = 2⁻⁸ (bfloat16's unit
// roundoff: 8 significant bits), each rounded operand is
// a(1+δ), |δ| ≤ u, so each product is off by at most (2u+u²)|a||b|; summing
// K of them in float32 adds at most γ_K = K·2⁻²⁴/(1−K·2⁻²⁴) of Σ|â||b̂|.
// So |ŷ − y| ≤ ((2u+u²) + γ_K(1+u)²)·Σ|a||b| against the exact y.

// BF16Path names how the bfloat16 entry points compute on this machine and
// level: "avx512bf16" (VDPBF16PS), "avx512bf16+amx" (and AMX tiles for
// the convolutions AMXBF16 names), "emulated-avx512" or "emulated-avx2"
// (the float32 kernels on rounded operands), or "reference".
func BF16Path() string {
	switch {
	case AMXBF16():
		return "avx512bf16+amx"
	case bf16NativeOn():
		return "avx512bf16"
	case use.k != nil:
		return "emulated-" + active.String()
	}
	return "reference"
}

// AMXBF16 reports whether the bfloat16 convolutions run on AMX tiles
// (TDPBF16PS) now: the native path is on and the CPU has AMX-BF16 (and
// AVX512BW), which Linux grants the process, unless RESIDUAL_AMX=0. Those
// of one stride both ways that divides the padded image's pixels run
// there, of any channel count: the forward pass and the data gradient
// without horizontal dilation (strided data gradients by phases, without
// dilation), the weight gradient with any (amxBF16OK, amxGradOK).
func AMXBF16() bool { return hasAMXBF16 && bf16NativeOn() }

// HasBF16 reports whether the CPU has AVX512-BF16 (VDPBF16PS), whatever
// the level in use.
func HasBF16() bool { return hasBF16 }

// bf16Emulate is RESIDUAL_BF16=emulate: stay off the native kernels.
var bf16Emulate = os.Getenv("RESIDUAL_BF16") == "emulate"

// bf16NativeOn reports whether the native kernels compute now.
func bf16NativeOn() bool { return hasBF16 && !bf16Emulate && use.avx512 }

// roundedBuf returns a pooled copy of v rounded to bfloat16.
func roundedBuf(v []float32) []float32 {
	b := getBuf(len(v))
	RoundSliceBF16(b, v)
	return b
}

// directEpilogue is the epilogue that stores the sums as they are, on the
// direct kernels.
func directEpilogue(n int) *convEpilogue {
	return &convEpilogue{scale: unitsOr(nil, 1, n), shift: unitsOr(nil, 0, n), floor: float32(math.Inf(-1)), direct: true}
}

// streamMinBytes is the output size from which a bfloat16 forward
// convolution in training stores its output with streaming stores
// (streamedOutput). A variable for the tests, which lower it.
var streamMinBytes = 8 << 20

// streamedOutput reports whether a bfloat16 forward convolution on AMX
// tiles that computes its output's statistics as it stores it
// (ConvEpilogue.Stats: in training, where a batch norm normally follows)
// streams the output y past the caches: from streamMinBytes on. A store to
// a line that is in no cache first reads it (for ownership), so a cached
// store of an output in a buffer that has left the core's cache moves its
// bytes twice; streamed, once, and it pushes nothing else out of the
// cache. The batch norm then reads the output from memory, once (its
// statistics are computed). Training ResNet-50 at batch 8 on the Intel
// Xeon, whose outputs are 0.8 to 26 MB, the forward pass took 139–142 ms
// streaming from 4 MB, 146–153 from 8 MB, 155 from 16 MB and 167–168
// never, the backward pass level; CIFAR's ResNet-20 at batch 128 (outputs
// of 8.4, 4.2 and 2.1 MB), level from 8 MB, its forward pass 1 ms (2.5%)
// longer from 4 MB (medians of 10 steps, three alternated rounds).
// Elsewhere the output stays cached: an inference pass (packed weights)
// writes into buffers of its memory plan that are often still cached, and
// streamed its ResNet-50 ran 8% slower (residual bench
// resnet50-infer-bf16: 90.6–95.3 against 99.8–102.8 img/s); the data
// gradients' outputs, which a batch norm's backward pass reads twice,
// streamed made CIFAR's backward pass 5–8% longer; and the VDPBF16PS
// tiles (no AMX) store in their own kernels, measured only cached.
func streamedOutput(y []float32) bool { return 4*len(y) >= streamMinBytes }

// ConvForwardBF16 is ConvForward with bfloat16 operands (see BF16Path).
func ConvForwardBF16(s ConvShape, x, w, y []float32) {
	ConvForwardEpilogueBF16(s, x, w, y, ConvEpilogue[float32]{})
}

// ConvForwardEpilogueBF16 is ConvForwardEpilogue with bfloat16 operands:
// the epilogue (scale, shift, skip, ReLU) is applied in float32.
func ConvForwardEpilogueBF16(s ConvShape, x, w, y []float32, e ConvEpilogue[float32]) {
	x, w = x[:s.N*s.H*s.W*s.C], w[:s.KH*s.KW*s.C*s.OC]
	ep := epilogueOf(e, s.OC)
	ep.direct = true
	if u, ok := unfoldedBF16(s); ok {
		convUnfoldedBF16(s, u, x, nil, w, y, ep)
		return
	}
	if bf16NativeOn() {
		if xs, sub, ok := subsample1x1(s, x); ok {
			// A strided 1×1 convolution reads one pixel in SH·SW:
			// gathered, they make a stride-1 convolution, whose tiles
			// compute no positions only to drop them and whose staging
			// converts only the pixels read.
			defer putBuf(xs)
			s, x = sub, xs
		}
		if bf16DirectOK(s) {
			convForwardDirectBF16(s, x, w, y, ep, bf16DirectKernels)
			return
		}
		convForwardNativeBF16(s, x, w, y, ep)
		return
	}
	xr, wr := roundedBuf(x), roundedBuf(w)
	defer putBuf(xr)
	defer putBuf(wr)
	if !convForwardFast(s, xr, wr, y, ep, nil) {
		convForwardEpilogueRef(s, xr, wr, y, e)
	}
}

// ConvReLUAffineBF16OK reports whether ConvForwardReLUAffineBF16 computes
// s: on the native direct kernels (AVX512-BF16, or AMX tiles), whose
// staging converts the input as it reads it, for input channels a
// multiple of 16; not a strided 1×1 convolution, whose pixels are
// gathered first.
func ConvReLUAffineBF16OK(s ConvShape) bool {
	if !bf16NativeOn() || !reluAffineFast(s.C) {
		return false
	}
	if _, ok := unfoldedBF16(s); ok {
		return true
	}
	_, strided := subsampledShape(s)
	return bf16DirectOK(s) && !strided
}

// ConvForwardReLUAffineBF16 is ConvForwardEpilogueBF16 of in's outputs
// for x: the convolution of a batch norm and ReLU whose output was never
// stored (ReLUAffine), which it computes as it converts its input to
// bfloat16, where ConvReLUAffineBF16OK(s). The results are those of
// ConvForwardEpilogueBF16 on the stored output, bit for bit.
func ConvForwardReLUAffineBF16(s ConvShape, x []float32, in *ReLUAffine, w, y []float32, e ConvEpilogue[float32]) {
	if !ConvReLUAffineBF16OK(s) {
		panic("kernels: ConvForwardReLUAffineBF16 of a shape it does not compute")
	}
	x, w = x[:s.N*s.H*s.W*s.C], w[:s.KH*s.KW*s.C*s.OC]
	ep := epilogueOf(e, s.OC)
	ep.direct = true
	if u, ok := unfoldedBF16(s); ok {
		convUnfoldedBF16(s, u, x, in, w, y, ep)
		return
	}
	convForwardDirectOfBF16(s, bf16Input{x: x, in: in}, w, y, ep, bf16DirectKernels)
}

// InputBF16OK reports whether a bfloat16 convolution of shape s reads its
// input stored as bfloat16 (ConvForwardFromBF16 and
// ConvBackwardWeightInputsBF16): the native direct kernels and the AMX
// weight gradient (AMXBF16), in place (not unfolded, not a gathered
// strided 1×1).
func InputBF16OK(s ConvShape) bool {
	if !bf16NativeOn() || !bf16DirectOK(s) || !amxGradOK(s) {
		return false
	}
	_, unfolded := unfoldedBF16(s)
	_, strided := subsampledShape(s)
	return !unfolded && !strided
}

// ConvForwardFromBF16 is ConvForwardEpilogueBF16 of the input stored as
// bfloat16, xb (BF16FromFloat32 of the float32 input, as its staging
// would convert it: Fused.YB), read as it is, where InputBF16OK(s); the
// results are the same bit for bit.
func ConvForwardFromBF16(s ConvShape, xb []uint16, w, y []float32, e ConvEpilogue[float32]) {
	if !InputBF16OK(s) {
		panic("kernels: ConvForwardFromBF16 of a shape InputBF16OK refuses")
	}
	ep := epilogueOf(e, s.OC)
	ep.direct = true
	convForwardDirectOfBF16(s, bf16Input{xb: xb[:s.N*s.H*s.W*s.C]}, w[:s.KH*s.KW*s.C*s.OC], y, ep, bf16DirectKernels)
}

// convUnfoldedBF16 packs s's weights w for its unfolded shape u and runs
// convUnfoldedAMXBF16.
func convUnfoldedBF16(s, u ConvShape, x []float32, in *ReLUAffine, w, y []float32, ep *convEpilogue) {
	l := bf16DirectKernels.layout(u)
	wbuf, wp := directWeightsBF16(u, l)
	defer putBytes(wbuf)
	packDirectBF16(u, w, wp, l)
	convUnfoldedAMXBF16(s, u, x, in, wp, y, ep)
}

// ConvBackwardWeightReLUAffineBF16 is ConvBackwardWeightBF16 of in's
// outputs for x, computed as the AMX tiles' staging pairs them, where
// ConvReLUAffineBF16OK(s) and the tiles take s; elsewhere it computes
// nothing and reports false (the caller stores the outputs,
// ApplyReLUAffine, for ConvBackwardWeightBF16).
func ConvBackwardWeightReLUAffineBF16(s ConvShape, x []float32, in *ReLUAffine, dy, dw []float32) bool {
	if !ConvReLUAffineBF16OK(s) {
		return false
	}
	x, dy = x[:s.N*s.H*s.W*s.C], dy[:s.N*s.OH()*s.OW()*s.OC]
	return convBackwardWeightAMXBF16(s, bf16Input{x: x, in: in}, bf16Input{x: dy}, dw)
}

// ConvGradBF16OK reports whether the backward pass of s takes its output
// gradient stored as bfloat16 (ConvBackwardDataFromBF16 and
// ConvBackwardWeightFromBF16): the native direct kernels for the data
// gradient, AMX tiles for the weight gradient. A gradient only these read
// can be stored so (BatchNormTrainBackwardToBF16): they would convert it
// anyway, and read half the bytes.
func ConvGradBF16OK(s ConvShape) bool {
	if !bf16NativeOn() || !convertBF16 {
		return false
	}
	sub, _ := subsampledShape(s)
	data := backwardDataAsForwardOK(s) || phasedDataOK(s) && dataPhasesOK(s)
	return data && amxGradOK(sub)
}

// ConvBackwardWeightInputsBF16 is ConvBackwardWeightFromBF16 of an input
// stored as bfloat16 too, xb (as ConvForwardFromBF16 reads it), where
// InputBF16OK(s); it computes nothing and reports false elsewhere.
func ConvBackwardWeightInputsBF16(s ConvShape, xb, dyb []uint16, dw []float32) bool {
	return InputBF16OK(s) && convBackwardWeightAMXBF16(s, bf16Input{xb: xb[:s.N*s.H*s.W*s.C]}, bf16Input{xb: dyb[:s.N*s.OH()*s.OW()*s.OC]}, dw)
}

// ConvBackwardDataFromBF16 is ConvBackwardDataBF16 (add: ConvBackwardDataAddBF16)
// of an output gradient stored as bfloat16, dyb; it computes nothing and
// reports false where the direct kernels do not take it (the caller
// widens it: Float32FromBF16 is exact).
func ConvBackwardDataFromBF16(s ConvShape, dyb []uint16, w, dx []float32, add bool) bool {
	return ConvBackwardDataSumsFromBF16(s, dyb, w, dx, add, nil)
}

// ConvBackwardDataSumsFromBF16 is ConvBackwardDataFromBF16 that also
// fills gs, where not nil, from the gradient it stores (the sum, with add: it must be all
// of the batch norm output's gradient), the first backward pass of the
// batch norm whose output x is, where the AMX tiles compute the gradient
// in place (a stride-1 data gradient, x's channels a multiple of 16 and
// fewer than 128, wideRow; gs.Done reports it; with gs.Y, dx is stored
// masked). Its sums are
// float32 over a tile group's blocks of at most 256 positions (as the
// batch norm's own pass sums 256 rows), then float64, added in a fixed
// order of tasks: the result does not depend on which goroutine ran which
// (the tasks, and so the rounding, depend on the number of threads).
func ConvBackwardDataSumsFromBF16(s ConvShape, dyb []uint16, w, dx []float32, add bool, gs *DataGradSums) bool {
	if !bf16NativeOn() {
		return false
	}
	src := bf16Input{xb: dyb[:s.N*s.OH()*s.OW()*s.OC]}
	w = w[:s.KH*s.KW*s.C*s.OC]
	if backwardDataAsForwardOK(s) {
		backwardDataDirectOfBF16(s, src, w, dx, add, bf16DirectKernels, gs)
		return true
	}
	return phasedDataOK(s) && backwardDataPhasesOfBF16(s, src, w, dx, add, bf16DirectKernels)
}

// ConvBackwardWeightFromBF16 is ConvBackwardWeightBF16 of an output
// gradient stored as bfloat16, dyb, and of x (through in's map where in
// is not nil: ConvBackwardWeightReLUAffineBF16); it computes nothing and
// reports false where the AMX tiles do not take it.
func ConvBackwardWeightFromBF16(s ConvShape, x []float32, in *ReLUAffine, dyb []uint16, dw []float32) bool {
	if !bf16NativeOn() || in != nil && !ConvReLUAffineBF16OK(s) {
		return false
	}
	sub, strided := subsampledShape(s)
	if !amxGradOK(sub) {
		return false
	}
	x, dyb = x[:s.N*s.H*s.W*s.C], dyb[:s.N*s.OH()*s.OW()*s.OC]
	if strided { // gathered, as ConvBackwardWeightBF16 does (no map: ConvReLUAffineBF16OK refuses these)
		xs, _, _ := subsample1x1(s, x)
		defer putBuf(xs)
		s, x = sub, xs
	}
	return convBackwardWeightAMXBF16(s, bf16Input{x: x, in: in}, bf16Input{xb: dyb}, dw)
}

// ConvBackwardDataBF16 is ConvBackwardData with bfloat16 operands.
func ConvBackwardDataBF16(s ConvShape, dy, w, dx []float32) {
	dy, w = dy[:s.N*s.OH()*s.OW()*s.OC], w[:s.KH*s.KW*s.C*s.OC]
	if bf16NativeOn() {
		if backwardDataAsForwardOK(s) {
			backwardDataDirectBF16(s, dy, w, dx, false, bf16DirectKernels)
			return
		}
		if phasedDataOK(s) && backwardDataPhasesBF16(s, dy, w, dx, false, bf16DirectKernels) {
			return
		}
		convBackwardDataNativeBF16(s, dy, w, dx, false)
		return
	}
	dyr, wr := roundedBuf(dy), roundedBuf(w)
	defer putBuf(dyr)
	defer putBuf(wr)
	if !convBackwardDataFast(s, dyr, wr, dx, directEpilogue(s.C)) && !convBackwardDataNarrow(s, dyr, wr, dx, false, true) {
		convBackwardDataRef(s, dyr, wr, dx)
	}
}

// phasedDataOK reports whether a strided data gradient runs by phases on
// the direct kernels (backwardDataPhasesBF16) rather than as a product and
// col2im: on AMX tiles, whose sweep is not by rows, always (ResNet-50's
// 7-pixel stride-2 layers at batch 8: 11.7 and 12.1 ms a call as a
// product, 2.7 and 3.0 by phases); on VDPBF16PS when a phase's rows, OW
// pixels, fill a tile: over shorter rows the tiles are short and packing
// each phase's weights costs more (ResNet-50 at batch 8, go test -bench
// 'ResNet50Grads/.*s2.*/data-bf16': the 28- and 14-pixel layers 20–35%
// faster by phases, the 7-pixel ones 5–13% slower).
func phasedDataOK(s ConvShape) bool { return s.OW() >= directMR || AMXBF16() }

// ConvBackwardDataAddBF16 is ConvBackwardDataAdd with bfloat16 operands
// (the addition to dx in float32).
func ConvBackwardDataAddBF16(s ConvShape, dy, w, dx []float32) {
	dy, w = dy[:s.N*s.OH()*s.OW()*s.OC], w[:s.KH*s.KW*s.C*s.OC]
	if bf16NativeOn() {
		if backwardDataAsForwardOK(s) {
			backwardDataDirectBF16(s, dy, w, dx, true, bf16DirectKernels)
			return
		}
		if phasedDataOK(s) && backwardDataPhasesBF16(s, dy, w, dx, true, bf16DirectKernels) {
			return
		}
		convBackwardDataNativeBF16(s, dy, w, dx, true)
		return
	}
	dyr, wr := roundedBuf(dy), roundedBuf(w)
	defer putBuf(dyr)
	defer putBuf(wr)
	ep := directEpilogue(s.C)
	ep.skip = dx
	if !convBackwardDataFast(s, dyr, wr, dx, ep) && !convBackwardDataNarrow(s, dyr, wr, dx, true, true) {
		convBackwardDataAddRef(s, dyr, wr, dx)
	}
}

// ConvBackwardWeightBF16 is ConvBackwardWeight with bfloat16 operands.
func ConvBackwardWeightBF16(s ConvShape, x, dy, dw []float32) {
	x, dy = x[:s.N*s.H*s.W*s.C], dy[:s.N*s.OH()*s.OW()*s.OC]
	if bf16NativeOn() {
		if xs, sub, ok := subsample1x1(s, x); ok { // as ConvForwardEpilogueBF16 gathers them
			defer putBuf(xs)
			s, x = sub, xs
		}
		if convBackwardWeightAMXBF16(s, bf16Input{x: x}, bf16Input{x: dy}, dw) || convBackwardWeightNativeBF16(s, x, dy, dw, bf16DWSet) {
			return
		}
	}
	xr, dyr := roundedBuf(x), roundedBuf(dy)
	defer putBuf(xr)
	defer putBuf(dyr)
	if !convBackwardWeightDirect(s, xr, dyr, dw) && !convBackwardWeightNarrow(s, xr, dyr, dw, convBackwardWeightDirect) {
		convBackwardWeightRef(s, xr, dyr, dw)
	}
}

// unfoldedBF16 reports whether s runs on AMX tiles as the convolution of
// its input unfolded along rows (convUnfoldedAMXBF16 and
// convBackwardWeightAMXBF16 unfold as they stage), and returns that shape
// u: a kernel row of s reads KW pixels of C channels, so where KW·C fits
// one 32-value step (ResNet's stem: 7·3 = 21), u reads one pixel of KW·C
// channels (C = KW·C, KW = 1, the columns' padding inside the unfolded
// pixels), and pads it to 32 values instead of padding each of the KW
// pixels (a tenth of the stem's products were real). The weights
// [KH][KW][C][OC] are u's [KH][1][KW·C][OC] as they are, and so is the
// weight gradient.
func unfoldedBF16(s ConvShape) (ConvShape, bool) {
	if !AMXBF16() || s.KW == 1 || s.DW != 1 || s.KW*s.C > 32 {
		return s, false
	}
	u := s
	u.C, u.KW, u.W, u.PL, u.PR = s.KW*s.C, 1, s.W+s.PL+s.PR-s.KW+1, 0, 0
	if u.W < 1 || !amxBF16OK(u) {
		return s, false
	}
	return u, true
}

// GemmBF16 is Gemm with op(A) and op(B) rounded to bfloat16 (alpha, beta
// and C stay float32).
func GemmBF16(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 || k == 0 {
		Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) // no products to round
		return
	}
	arows, acols, brows, bcols := m, k, k, n
	if transA {
		arows, acols = k, m
	}
	if transB {
		brows, bcols = n, k
	}
	a, b = a[:(arows-1)*lda+acols], b[:(brows-1)*ldb+bcols]
	if bf16NativeOn() {
		gemmNativeBF16(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	ar, br := roundedBuf(a), roundedBuf(b)
	defer putBuf(ar)
	defer putBuf(br)
	Gemm(transA, transB, m, n, k, alpha, ar, lda, br, ldb, beta, c, ldc)
}

// PackedConvBF16 is a convolution's weights packed once for the direct
// bfloat16 kernels (VDPBF16PS), for weights that no longer change (a
// sealed inference model): ConvForwardEpilogueBF16 otherwise converts and
// packs all of them on every call.
type PackedConvBF16 struct {
	c, oc, kh, kw int
	l             bf16Layout // the layout it was packed in (AMX tiles take some strides and not others)
	wp            []uint32
}

// PackConvBF16 packs w [KH,KW,C,OC] for bfloat16 convolutions of shape s:
// the packing depends on C, OC, KH and KW, and on whether the stride and
// padding take AMX tiles (another layout; a strided unpadded 1×1
// convolution runs on its gathered pixels at stride 1), but it returns nil where
// the direct native kernels do not run s (no AVX512-BF16,
// RESIDUAL_BF16=emulate, horizontal dilation), and ConvForwardPackedBF16
// then computes as ConvForwardEpilogueBF16.
func PackConvBF16(s ConvShape, w []float32) *PackedConvBF16 {
	if u, ok := unfoldedBF16(s); ok {
		s = u // the same weights, packed for the unfolded input
	} else if sub, ok := subsampledShape(s); ok {
		s = sub // the same weights, for the gathered pixels (ConvForwardPackedBF16)
	}
	if !bf16NativeOn() || !bf16DirectOK(s) || len(w) < s.KH*s.KW*s.C*s.OC {
		return nil
	}
	l := bf16DirectKernels.layout(s)
	buf, wp := directWeightsBF16(s, l)
	packDirectBF16(s, w, wp, l)
	p := &PackedConvBF16{c: s.C, oc: s.OC, kh: s.KH, kw: s.KW, l: l, wp: append([]uint32(nil), wp...)}
	putBytes(buf)
	return p
}

// ConvForwardPackedBF16 is ConvForwardEpilogueBF16 with w's packed form p
// (PackConvBF16 of the same w; nil, or packed for another shape, computes
// from w as ConvForwardEpilogueBF16 does). The results are the same bit
// for bit.
func ConvForwardPackedBF16(s ConvShape, x, w []float32, p *PackedConvBF16, y []float32, e ConvEpilogue[float32]) {
	if u, ok := unfoldedBF16(s); ok && p != nil && p.c == u.C && p.oc == u.OC && p.kh == u.KH && p.kw == u.KW && p.l == bf16DirectKernels.layout(u) {
		ep := epilogueOf(e, s.OC)
		ep.direct = true
		convUnfoldedAMXBF16(s, u, x[:s.N*s.H*s.W*s.C], nil, p.wp, y, ep)
		return
	}
	x = x[:s.N*s.H*s.W*s.C]
	if p != nil && bf16NativeOn() {
		if xs, sub, ok := subsample1x1(s, x); ok { // as PackConvBF16 packed for
			defer putBuf(xs)
			s, x = sub, xs
		}
	}
	if p == nil || p.c != s.C || p.oc != s.OC || p.kh != s.KH || p.kw != s.KW || !bf16NativeOn() || !bf16DirectOK(s) || p.l != bf16DirectKernels.layout(s) {
		ConvForwardEpilogueBF16(s, x, w, y, e)
		return
	}
	ep := epilogueOf(e, s.OC)
	ep.direct = true
	convDirectPackedBF16(s, x, p.wp, y, ep, bf16DirectKernels)
}

// PackedGemmBF16 is a matrix product's B operand packed once for the
// bfloat16 kernels, for an operand that no longer changes (a sealed
// inference model's linear layer): GemmBF16 otherwise converts and packs
// it on every call.
type PackedGemmBF16 struct {
	n, k, ldb int
	transB    bool
	bp        []uint32
	np        int
}

// PackGemmBF16 packs op(B) (k×n; B is [n][ldb] when transB, else
// [k][ldb]) for GemmPackedBF16. It returns nil where the native kernels
// do not run (no AVX512-BF16, RESIDUAL_BF16=emulate) or the product is
// empty: GemmPackedBF16 then computes as GemmBF16.
func PackGemmBF16(transB bool, n, k int, b []float32, ldb int) *PackedGemmBF16 {
	rows, cols := k, n
	if transB {
		rows, cols = n, k
	}
	if !bf16NativeOn() || n == 0 || k == 0 || len(b) < (rows-1)*ldb+cols {
		return nil
	}
	bp, back, np := packBBF16(k, n, b, ldb, transB)
	p := &PackedGemmBF16{n: n, k: k, ldb: ldb, transB: transB, bp: append([]uint32(nil), bp...), np: np}
	putBuf(back)
	return p
}

// GemmPackedBF16 is GemmBF16 with B's packed form pb (PackGemmBF16 of the
// same B; nil, or packed for another product, computes from b as GemmBF16
// does). The results are the same bit for bit.
func GemmPackedBF16(transA bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, transB bool, pb *PackedGemmBF16, beta float32, c []float32, ldc int) {
	if pb == nil || pb.n != n || pb.k != k || pb.ldb != ldb || pb.transB != transB || m == 0 || !bf16NativeOn() {
		GemmBF16(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	arows, acols := m, k
	if transA {
		arows, acols = k, m
	}
	gemmPackedNativeBF16(transA, m, n, k, alpha, a[:(arows-1)*lda+acols], lda, pb.bp, pb.np, beta, c, ldc)
}
