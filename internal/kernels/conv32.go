package kernels

import (
	"math"
	"sync"
	"unsafe"
)

// convForwardFast runs ConvForward with the assembly kernels; it returns
// false (doing nothing) when they do not apply. pw, if not nil, holds w
// already packed for the direct kernels.
func convForwardFast(s ConvShape, x, w, y []float32, ep *convEpilogue, pw *PackedConv) bool {
	if s.N*s.OH()*s.OW() == 0 {
		return true // no output to compute (the plans assume a pixel)
	}
	k, bs, ok := fastBlocks(s.OC)
	if !ok {
		return convForwardNarrow(s, x, w, y, ep)
	}
	if xs, sub, ok := subsample1x1(s, x); ok {
		// A strided 1×1 convolution reads one pixel in SH·SW: gathered,
		// they make a dense 1×1 convolution, which runs as one matrix
		// product (gemmView) instead of in tiles of one output row.
		defer putBuf(xs)
		s, x = sub, xs
	}
	src := weightSource{w: w, SKW: s.KW, A: s.C, B: s.OC, tap: func(t, u int) (int, int) { return t, u }}
	var pre *winoPacked
	if pw.fits(s, k) {
		pre = pw.wino
	}
	if !ep.isDirect() && winoWorthwhile(s) && winoConv(s, src, ep, x, y, pre) {
		return true
	}
	p := &convPlan{N: s.N, H: s.H, W: s.W, C: s.C, OC: s.OC, KH: s.KH, KW: s.KW, SH: s.SH, SW: s.SW, DH: s.DH, DW: s.DW,
		OffH: -s.PT, OffW: -s.PL, OH: s.OH(), OW: s.OW(), YH: s.OH(), YW: s.OW(), YSH: 1, YSW: 1, k: k, blocks: bs, ep: ep}
	if pw.fits(s, k) {
		p.blocks, p.wp, p.prepacked = pw.blocks, pw.wp, true
	} else {
		p.pack(src)
	}
	if unfolds(s, p.k.maxConv[p.blocks[0].vi]) && (p.prepacked && pw.finite || !p.prepacked && allFinite(w[:s.KH*s.KW*s.C*s.OC])) {
		// The unfolded pixels are a 1×1 convolution's of KH·KW·C
		// channels, whose packed weights ([KH·KW][C][nb] a block) are the
		// plan's as they are. (A padding tap's zeros times a non-finite
		// weight would be NaN where the tiles skip the tap: only finite
		// weights are unfolded.)
		xu := unfoldPixels(s, x)
		defer putBuf(xu)
		m, c := s.N*p.OH*p.OW, s.KH*s.KW*s.C
		u := &convPlan{N: 1, H: 1, W: m, C: c, OC: s.OC, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1, OH: 1, OW: m,
			YH: 1, YW: m, YSH: 1, YSW: 1, k: k, blocks: p.blocks, wp: p.wp, ep: ep, prepacked: p.prepacked}
		u.run(xu, y)
		return true
	}
	p.run(x, y)
	return true
}

// unfolding is whether a convolution may run as a matrix product over
// its unfolded pixels (unfolds); tests turn it off to run small shapes on
// the direct tiles.
var unfolding = true

// unfoldMaxBytes bounds the buffer of unfolded pixels (unfoldPixels):
// it is read once per channel block, from a core's L2 cache.
const unfoldMaxBytes = 1 << 20

// unfolds reports whether a forward convolution of shape s runs as one
// matrix product over its unfolded pixels (unfoldPixels): where its output
// rows are narrower than the direct kernels' widest tile (maxTile) and
// its unfolded pixels fit unfoldMaxBytes. The outputs then go in full
// tiles across rows and images, and each tile sweeps the weights once:
// ResNet-50's 3×3 layers of 512 channels at 7×7, batch 1, computed each
// output row in tiles of 5 and the border columns apart, nine sweeps over
// a block's 590 KB of weights for 49 outputs where four do; inside a pass
// they run 10–20% faster unfolded (the 14×14 layers, whose rows fill a
// tile, ran slower). The sums are the same but for their order: the
// results differ from the tiles' in the last bits.
func unfolds(s ConvShape, maxTile int) bool {
	return unfolding && s.KH*s.KW > 1 && s.OW() < maxTile && s.N*s.OH()*s.OW()*s.KH*s.KW*s.C*4 <= unfoldMaxBytes
}

// unfoldPixels gathers the KH·KW·C input values that each output of a
// convolution of shape s reads, zeros where a tap falls in the padding,
// into a pooled buffer [N·OH·OW][KH·KW·C] (putBuf it).
func unfoldPixels(s ConvShape, x []float32) []float32 {
	m, c := s.N*s.OH()*s.OW(), s.KH*s.KW*s.C
	xu := getBuf(m * c)
	parallelFor(m, func(lo, hi int) {
		for q := lo; q < hi; q++ {
			im2colRow(s, x, q, xu[q*c:(q+1)*c])
		}
	})
	return xu
}

// allFinite reports whether w holds neither NaN nor ±Inf.
func allFinite(w []float32) bool {
	for _, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

// winoWorthwhile reports whether forward convolution s has the outputs
// to repay the Winograd path's weights (see winoMinOutputs).
func winoWorthwhile(s ConvShape) bool {
	return s.N*s.OH()*s.OW() >= winoMinOutputs || s.KH*s.KW*s.C*s.OC*4 <= maxCachedWeights
}

// convForwardNarrow computes a convolution whose output channels are not
// a multiple of the vector width (a narrow network's 4 or 8, a U-Net's
// last 1×1 convolution to its classes) on the assembly kernels, which
// once left it to the scalar reference: the plan's channels are padded to
// the width with zero weights (as GemmPacked pads n), its sums land in a
// buffer of that width, and the real channels are stored with the
// epilogue as epilogueTileGo applies it. False at the generic level.
func convForwardNarrow(s ConvShape, x, w, y []float32, ep *convEpilogue) bool {
	ks := use.k
	if ks == nil {
		return false
	}
	if xs, sub, ok := subsample1x1(s, x); ok {
		defer putBuf(xs)
		s, x = sub, xs
	}
	np := (s.OC + ks.vec - 1) / ks.vec * ks.vec
	bs, _ := blocksFor(ks, np)
	oh, ow := s.OH(), s.OW()
	m := s.N * oh * ow
	t := getBuf(m * np)
	defer putBuf(t)
	p := &convPlan{N: s.N, H: s.H, W: s.W, C: s.C, OC: np, KH: s.KH, KW: s.KW, SH: s.SH, SW: s.SW, DH: s.DH, DW: s.DW,
		OffH: -s.PT, OffW: -s.PL, OH: oh, OW: ow, YH: oh, YW: ow, YSH: 1, YSW: 1, k: ks, blocks: bs}
	p.pack(weightSource{w: w, SKW: s.KW, A: s.C, B: s.OC, valid: s.OC, tap: func(t, u int) (int, int) { return t, u }})
	p.run(x, t)
	parallelFor(m, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			yr, ar := y[i*s.OC:(i+1)*s.OC], t[i*np:i*np+s.OC]
			if ep == nil {
				copy(yr, ar)
				continue
			}
			if ep.skip != nil {
				sk := ep.skip[i*s.OC : (i+1)*s.OC]
				for j, v := range ar {
					yr[j] = max(float32(v*ep.scale[j])+ep.shift[j]+sk[j], ep.floor)
				}
				continue
			}
			for j, v := range ar {
				yr[j] = max(float32(v*ep.scale[j])+ep.shift[j], ep.floor)
			}
		}
	})
	return true
}

// subsampledShape returns the stride-1 shape of the 1×1 convolution that
// a strided, unpadded 1×1 convolution s computes over the pixels it reads
// (subsample1x1 gathers them); ok is false for any other convolution.
func subsampledShape(s ConvShape) (sub ConvShape, ok bool) {
	if s.KH != 1 || s.KW != 1 || (s.SH == 1 && s.SW == 1) || s.PT != 0 || s.PL != 0 || s.PB != 0 || s.PR != 0 {
		return s, false
	}
	sub = s
	sub.H, sub.W, sub.SH, sub.SW = s.OH(), s.OW(), 1, 1
	return sub, true
}

// subsample1x1 gathers the pixels that a strided, unpadded 1×1
// convolution of shape s reads from x into a pooled buffer (putBuf it),
// and returns the equivalent stride-1 shape (subsampledShape); ok is false
// for any other convolution.
func subsample1x1(s ConvShape, x []float32) (xs []float32, sub ConvShape, ok bool) {
	sub, ok = subsampledShape(s)
	if !ok {
		return nil, s, false
	}
	oh, ow, c := sub.H, sub.W, s.C
	xs = getBuf(s.N * oh * ow * c)
	parallelFor(s.N*oh, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			n, i := r/oh, r%oh
			src := x[((n*s.H+i*s.SH)*s.W)*c:]
			dst := xs[r*ow*c : (r+1)*ow*c]
			for j := range ow {
				copy(dst[j*c:(j+1)*c], src[j*s.SW*c:j*s.SW*c+c])
			}
		}
	})
	return xs, sub, true
}

// PackedConv is a convolution's weights packed once for the active
// level's direct kernels, and transformed for its Winograd path where that
// applies, for callers whose weights do not change between calls
// (inference): ConvForwardPacked then skips the packing that every
// ConvForward does, a copy of the whole weight tensor that costs a third
// of a batch-1 ResNet-50 forward pass on AVX2. It is read only after
// PackConv and safe for concurrent use.
type PackedConv struct {
	c, oc, kh, kw int
	k             *kernelSet
	blocks        []ocBlock
	wp            []float32
	wino          *winoPacked // nil where the Winograd path declines the shape
	finite        bool        // every weight is finite (unfold may run)
}

// PackConv packs w [KH,KW,C,OC] for convolutions of shape s (only C, OC,
// KH, KW, strides and dilations matter: any batch and image size may use
// the result). It
// returns nil when the direct kernels do not apply (generic level, OC not
// a multiple of the vector width); ConvForwardPacked then packs per call
// or takes the reference, as ConvForwardEpilogue does.
func PackConv(s ConvShape, w []float32) *PackedConv {
	k, bs, ok := fastBlocks(s.OC)
	if !ok || len(w) < s.KH*s.KW*s.C*s.OC {
		return nil
	}
	p := &convPlan{C: s.C, OC: s.OC, KH: s.KH, KW: s.KW, k: k, blocks: bs}
	p.pack(weightSource{w: w, SKW: s.KW, A: s.C, B: s.OC, tap: func(t, u int) (int, int) { return t, u }})
	return &PackedConv{c: s.C, oc: s.OC, kh: s.KH, kw: s.KW, k: k, blocks: p.blocks, wp: unpooled(p.wp), wino: packWino(s, w),
		finite: allFinite(w[:s.KH*s.KW*s.C*s.OC])}
}

// epilogueOf returns e as the kernels apply it to oc output channels: a
// nil Scale or Shift as shared ones or zeros, the ReLU as a floor of 0 (−∞
// without).
func epilogueOf(e ConvEpilogue[float32], oc int) *convEpilogue {
	floor := float32(math.Inf(-1))
	if e.ReLU {
		floor = 0
	}
	ep := &convEpilogue{scale: unitsOr(e.Scale, 1, oc), shift: unitsOr(e.Shift, 0, oc), skip: e.Skip, floor: floor}
	if e.Stats != nil {
		*e.Stats = ConvStats{} // not done, unless a path fills it
		if e.Scale == nil && e.Shift == nil && e.Skip == nil && !e.ReLU {
			ep.stats = e.Stats // the stored outputs are the sums
		}
	}
	return ep
}

// fits reports whether pw holds weights packed for shape s at kernel set
// k (false for a nil pw).
func (pw *PackedConv) fits(s ConvShape, k *kernelSet) bool {
	return pw != nil && pw.k == k && pw.c == s.C && pw.oc == s.OC && pw.kh == s.KH && pw.kw == s.KW
}

// ConvForwardPacked is ConvForwardEpilogue with w's packed form pw (from
// PackConv(s', w) for a shape s' with s's C, OC, KH and KW). w itself is
// still needed: the Winograd path and the reference read it, and a pw
// packed at another kernel level (or nil) is ignored. The result equals
// ConvForwardEpilogue's bit for bit.
func ConvForwardPacked(s ConvShape, x, w []float32, pw *PackedConv, y []float32, e ConvEpilogue[float32]) {
	if !convForwardFast(s, x, w, y, epilogueOf(e, s.OC), pw) {
		convForwardEpilogueRef(s, x, w, y, e)
	}
}

// minFastGemm is the size (m·n·k) below which gemmFast declines: packing
// costs more than it saves on tiny products.
const minFastGemm = 1 << 14

// gemmFast computes Gemm with the conv kernels, as a 1×1 convolution of m
// pixels of k channels to n channels (padded to the vector width): A is
// the input, op(B) the packed weights. It returns false (doing nothing)
// when the kernels do not apply.
func gemmFast(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) bool {
	if m*n*k < minFastGemm {
		return false
	}
	pb := packGemmB(transB, n, k, b, ldb)
	if pb == nil {
		return false
	}
	defer putBuf(pb.wp)
	gemmPacked(transA, m, n, k, alpha, a, lda, pb, beta, c, ldc)
	return true
}

// PackedGemm is a matrix product's B operand packed for the active
// level's kernels (as a 1×1 convolution's weights), for callers whose B
// does not change between calls: a sealed linear layer's weights, which
// GemmPacked then reads without repacking (ResNet-50's classifier is 8 MB
// of them). It is read only after PackGemm and safe for concurrent use.
type PackedGemm struct {
	n, k, ldb int
	transB    bool
	k32       *kernelSet
	blocks    []ocBlock
	wp        []float32
}

// PackGemm packs op(B) ([k][n]; B is [n][ldb] when transB, else
// [k][ldb]) for GemmPacked. It returns nil when the kernels do not apply
// (generic level, or B too short).
func PackGemm(transB bool, n, k int, b []float32, ldb int) *PackedGemm {
	pb := packGemmB(transB, n, k, b, ldb)
	if pb == nil {
		return nil
	}
	pb.wp = unpooled(pb.wp)
	return pb
}

// packGemmB is PackGemm with wp drawn from the buffer pool.
func packGemmB(transB bool, n, k int, b []float32, ldb int) *PackedGemm {
	ks := use.k
	rows := k // op(B) is [k][n]: B is [k][ldb], or [n][ldb] when transposed
	if transB {
		rows = n
	}
	if ks == nil || len(b) < rows*ldb {
		return nil
	}
	np := (n + ks.vec - 1) / ks.vec * ks.vec
	bs, _ := blocksFor(ks, np)
	pl := &convPlan{C: k, OC: np, KH: 1, KW: 1, k: ks, blocks: bs}
	pl.pack(weightSource{w: b, SKW: 1, A: rows, B: ldb, transposed: transB, valid: n,
		tap: func(t, u int) (int, int) { return t, u }})
	return &PackedGemm{n: n, k: k, ldb: ldb, transB: transB, k32: ks, blocks: bs, wp: pl.wp}
}

// GemmPacked is Gemm with op(B) packed by PackGemm (op(A) as Gemm's; the
// result equals Gemm's bit for bit). A pb packed at another kernel level,
// for another n, k, ldb or transB, or nil, is ignored: B is read as Gemm
// reads it.
func GemmPacked(transA bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, transB bool, pb *PackedGemm, beta float32, c []float32, ldc int) {
	if pb == nil || pb.k32 != use.k || pb.n != n || pb.k != k || pb.ldb != ldb || pb.transB != transB || m*n*k < minFastGemm {
		Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	gemmPacked(transA, m, n, k, alpha, a, lda, pb, beta, c, ldc)
}

// gemmPacked runs op(A)·op(B) as a 1×1 convolution of m pixels of k
// channels to n channels (padded to the vector width): op(B) is pb, A is
// copied into m contiguous rows first when it is transposed or strided.
func gemmPacked(transA bool, m, n, k int, alpha float32, a []float32, lda int, pb *PackedGemm, beta float32, c []float32, ldc int) {
	ks := pb.k32
	np := (n + ks.vec - 1) / ks.vec * ks.vec
	x := a // A as m contiguous rows of k
	if transA || lda != k {
		x = getBuf(m * k)
		defer putBuf(x)
		for i := 0; i < m; i++ {
			for p := 0; p < k; p++ {
				if transA {
					x[i*k+p] = a[p*lda+i]
				} else {
					x[i*k+p] = a[i*lda+p]
				}
			}
		}
	}
	y := getBuf(m * np)
	defer putBuf(y)
	pl := &convPlan{N: 1, H: 1, W: m, C: k, OC: np, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1,
		OH: 1, OW: m, YH: 1, YW: m, YSH: 1, YSW: 1, k: ks, blocks: pb.blocks, wp: pb.wp, prepacked: true}
	pl.run(x, y)
	for i := 0; i < m; i++ {
		storeScaled(c[i*ldc:i*ldc+n], y[i*np:i*np+n], alpha, beta)
	}
}

// convBackwardDataFast computes dx = ConvBackwardData with the assembly
// kernels: one stride-1 pass with flipped, transposed weights per output
// phase (S_H·S_W phases; one when the stride is 1). Dilation is not
// handled (returns false).
func convBackwardDataFast(s ConvShape, dy, w, dx []float32, ep *convEpilogue) bool {
	k, bs, ok := fastBlocks(s.C)
	if !ok || s.DH != 1 || s.DW != 1 {
		return false
	}
	oh, ow := s.OH(), s.OW()
	if s.SH == 1 && s.SW == 1 && s.KH == 3 && s.KW == 3 && max(s.PT, s.PL, s.PB, s.PR) <= 2 {
		// The data gradient of a stride-1 3×3 convolution is a stride-1
		// 3×3 convolution of dy with the flipped, transposed weights.
		b := ConvShape{N: s.N, H: oh, W: ow, C: s.OC, OC: s.C, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1,
			PT: 2 - s.PT, PL: 2 - s.PL, PB: 2 - s.PB, PR: 2 - s.PR}
		src := weightSource{w: w, SKW: 3, A: s.C, B: s.OC, transposed: true, tap: func(t, u int) (int, int) { return 2 - t, 2 - u }}
		if !ep.isDirect() && winoConv(b, src, ep, dy, dx, nil) {
			return true
		}
	}
	for ry := 0; ry < s.SH; ry++ {
		for rx := 0; rx < s.SW; rx++ {
			ih0, iw0, nh, nw, jh, jw, q0h, q0w := dataPhase(s, ry, rx)
			if nh == 0 || nw == 0 {
				continue
			}
			p := &convPlan{N: s.N, H: oh, W: ow, C: s.OC, OC: s.C, KH: max(jh, 0), KW: max(jw, 0), SH: 1, SW: 1, DH: 1, DW: 1,
				OffH: q0h - (jh - 1), OffW: q0w - (jw - 1), OH: nh, OW: nw, YH: s.H, YW: s.W, Y0H: ih0, Y0W: iw0, YSH: s.SH, YSW: s.SW,
				k: k, blocks: bs, ep: ep}
			if jh <= 0 || jw <= 0 {
				p.KH, p.KW = 0, 0
			}
			p.pack(weightSource{w: w, SKW: s.KW, A: s.C, B: s.OC, transposed: true,
				tap: func(t, u int) (int, int) { return ry + s.SH*(jh-1-t), rx + s.SW*(jw-1-u) }})
			p.run(dy, dx)
		}
	}
	return true
}

// convBackwardDataNarrow computes the data gradient (add: adds it to dx)
// of a convolution whose input channels are not a multiple of the vector
// width (a narrow network's 4 or 8) on the direct kernels, as
// convForwardNarrow pads the forward pass: the weights are copied with
// zero rows for the padding channels, convBackwardDataFast computes the
// padded gradient, and its real channels are copied (or added) into dx.
// Stride 1 only: there it ran 1.4–6× faster than convBackwardDataCols
// even with 1 channel of 16 (3×3, 28², batch 128: 4.5 against 9.3 ms; 8
// of 16: 3.1–3.4 against 19–40 ms; 3 → 64 at 56², batch 8: 2.6 against
// 3.6 ms), while on ResNet's 7×7 stride-2 stem of 3 channels, in four
// phases, the two were level (78–88 against 76–83 ms; AVX-512, 2-core
// Zen 5). direct keeps it to the direct kernels (no Winograd: the bfloat16
// emulation's products must be those of the rounded operands). False at
// the generic level, for input channels that are a multiple of the vector
// width already, with a stride or dilation, or where convBackwardDataFast
// declines.
func convBackwardDataNarrow(s ConvShape, dy, w, dx []float32, add, direct bool) bool {
	k := use.k
	if k == nil || s.SH != 1 || s.SW != 1 || s.DH != 1 || s.DW != 1 || s.C%k.vec == 0 {
		return false
	}
	cp := (s.C + k.vec - 1) / k.vec * k.vec
	taps := s.KH * s.KW
	wp := getBuf(taps * cp * s.OC)
	defer putBuf(wp)
	for t := range taps {
		copy(wp[t*cp*s.OC:], w[t*s.C*s.OC:(t+1)*s.C*s.OC])
		clear(wp[(t*cp+s.C)*s.OC : (t+1)*cp*s.OC])
	}
	ps := s
	ps.C = cp
	m := s.N * s.H * s.W
	dxp := getBuf(m * cp)
	defer putBuf(dxp)
	var ep *convEpilogue
	if direct {
		ep = directEpilogue(cp)
	}
	if !convBackwardDataFast(ps, dy, wp, dxp, ep) {
		return false
	}
	parallelFor(m, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			d, src := dx[i*s.C:(i+1)*s.C], dxp[i*cp:i*cp+s.C]
			if !add {
				copy(d, src)
				continue
			}
			for j, v := range src {
				d[j] += v
			}
		}
	})
	return true
}

// dataPhase is the geometry of phase (ry, rx) of a strided convolution's
// data gradient: dx's rows ih with (ih + PT) mod SH = ry, ih = ih0 + SH·k
// for k < nh (and its columns likewise: iw0, nw), whose taps are
// ky = ry + SH·j for j < jh (kx = rx + SW·i, i < jw); tap j of row
// ih = ih0 + SH·k reads dy row q0h + k − j (columns: q0w + l − i).
func dataPhase(s ConvShape, ry, rx int) (ih0, iw0, nh, nw, jh, jw, q0h, q0w int) {
	ih0 = ((ry-s.PT)%s.SH + s.SH) % s.SH
	iw0 = ((rx-s.PL)%s.SW + s.SW) % s.SW
	if ih0 < s.H {
		nh = (s.H - ih0 + s.SH - 1) / s.SH
	}
	if iw0 < s.W {
		nw = (s.W - iw0 + s.SW - 1) / s.SW
	}
	jh = (s.KH - ry + s.SH - 1) / s.SH
	jw = (s.KW - rx + s.SW - 1) / s.SW
	q0h = (ih0 + s.PT - ry) / s.SH
	q0w = (iw0 + s.PL - rx) / s.SW
	return
}

// convBackwardWeightFast computes dw = ConvBackwardWeight with the
// assembly kernels: Winograd's where it applies, else the direct tiles
// (convBackwardWeightTiles says how the goroutines share the work).
func convBackwardWeightFast(s ConvShape, x, dy, dw []float32) bool {
	if k := use.k; k != nil && s.OC%k.vec != 0 {
		return convBackwardWeightNarrow(s, x, dy, dw, convBackwardWeightFast)
	}
	if _, _, ok := fastBlocks(s.OC); ok && winoWeightGrad(s, x, dy, dw) {
		return true
	}
	return convBackwardWeightDirect(s, x, dy, dw)
}

// convBackwardWeightNarrow computes the weight gradient of a convolution
// whose output channels are not a multiple of the vector width (a narrow
// network's 4 or 8, a U-Net's head to its classes) with run, one of the
// tile paths, as convForwardNarrow pads the forward pass: dy is copied
// into rows padded to a whole vector with zeros, run computes the padded
// gradient (its padding columns are sums of zeros), and the real columns
// are copied into dw. False at the generic level or when run declines.
func convBackwardWeightNarrow(s ConvShape, x, dy, dw []float32, run func(s ConvShape, x, dy, dw []float32) bool) bool {
	k := use.k
	if k == nil {
		return false
	}
	np := (s.OC + k.vec - 1) / k.vec * k.vec
	m := s.N * s.OH() * s.OW()
	dyp := getBuf(m * np)
	defer putBuf(dyp)
	parallelFor(m, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r := dyp[i*np : (i+1)*np]
			copy(r, dy[i*s.OC:(i+1)*s.OC])
			clear(r[s.OC:])
		}
	})
	ps := s
	ps.OC = np
	rows := s.KH * s.KW * s.C
	dwp := getBuf(rows * np)
	defer putBuf(dwp)
	if !run(ps, x, dyp, dwp) {
		return false
	}
	for r := range rows {
		copy(dw[r*s.OC:(r+1)*s.OC], dwp[r*np:r*np+s.OC])
	}
	return true
}

// convBackwardWeightDirect is convBackwardWeightFast without the Winograd
// path.
func convBackwardWeightDirect(s ConvShape, x, dy, dw []float32) bool {
	k, bs, ok := fastBlocks(s.OC)
	if !ok {
		return false
	}
	convBackwardWeightTiles(s, unsafe.Pointer(unsafe.SliceData(x)), dy, dw, k, bs, nil)
	return true
}

// weightTilesOutside reports whether s's weight gradient is larger than a
// core's cache, so that convBackwardWeightTiles keeps its tiles outside
// its loops over images.
func weightTilesOutside(s ConvShape) bool { return s.KH*s.KW*s.C*s.OC*4 > maxCachedWeights }

// maxTileSplitPixels is the number of output pixels (images × OH × OW,
// image pairs for the bfloat16 tiles) up to which a weight gradient over
// maxCachedWeights shares its tiles out among the goroutines rather than
// its images. Measured on ResNet-50's layers at batch 8 (2-core Zen 5,
// go test -bench 'ResNet50Grads/.*/weight'): the 7×7 stage (392 pixels,
// 196 pairs) 15–55% faster shared out by tile, the 14×14 one (1,568 and
// 784) 10–25% slower, its activations then read by every goroutine.
const maxTileSplitPixels = 512

// convBackwardWeightTiles computes dw over s's images with k's
// weight-gradient tiles on the channel blocks bs. x (N·H·W·C elements)
// and dy (N·OH·OW·OC) are 4-byte elements: float32 for the float32
// tiles, bfloat16 pairs for the native bfloat16 ones (bf16DWSet), whose
// "image" is then two images paired (convBackwardWeightNativeBF16). dy is
// a []float32 in both cases because only its addresses are taken.
//
// With pair (the native bfloat16 tiles on a weight gradient that is not
// weightTilesOutside; xp and dy are then unused), each unit converts the
// image pair's rows it reads from pair's float32 batch into its
// goroutine's buffers as it starts, so that its tiles read them from the
// core's cache rather than from a whole paired copy of the batch written
// to memory first.
func convBackwardWeightTiles(s ConvShape, xp unsafe.Pointer, dy, dw []float32, k *kernelSet, bs []ocBlock, pair *imagePairs) {
	oh, ow := s.OH(), s.OW()
	size := s.KH * s.KW * s.C * s.OC
	var mu sync.Mutex
	parts := map[int][]float32{} // per range of units, summed in order below
	const rowChunk = 8
	// tap runs the kernels of tap (kh, kw) over output rows [r0, r1) of
	// image n (those whose input row and columns are inside), for channel
	// block b and input-channel block ib of nblk, into acc.
	tap := func(acc []float32, xp unsafe.Pointer, dy []float32, n, r0, r1, kh, kw int, b ocBlock, ib, nblk int) {
		a, e := r0, r1
		for a < e && a*s.SH-s.PT+kh*s.DH < 0 {
			a++
		}
		for e > a && (e-1)*s.SH-s.PT+kh*s.DH >= s.H {
			e--
		}
		c0, c1 := 0, ow
		for c0 < c1 && c0*s.SW-s.PL+kw*s.DW < 0 {
			c0++
		}
		for c1 > c0 && (c1-1)*s.SW-s.PL+kw*s.DW >= s.W {
			c1--
		}
		if a >= e || c0 >= c1 {
			return
		}
		xoff := ((n*s.H+a*s.SH-s.PT+kh*s.DH)*s.W + c0*s.SW - s.PL + kw*s.DW) * s.C * 4
		dyi := ((n*oh+a)*ow + c0) * s.OC
		ic0, ic1 := ib*s.C/nblk, (ib+1)*s.C/nblk
		k.dw[b.vi][ic1-ic0-1](xp, xoff+ic0*4, unsafe.Pointer(&dy[dyi+b.oc0]),
			unsafe.Pointer(&acc[((kh*s.KW+kw)*s.C+ic0)*s.OC+b.oc0]),
			e-a, c1-c0, s.SW*s.C*4, s.SH*s.W*s.C*4, s.OC*4, ow*s.OC*4, s.OC*4)
	}
	nblks := func(b ocBlock) int { return (s.C + k.maxDW[b.vi] - 1) / k.maxDW[b.vi] }
	// The work is split into units of rowChunk output rows of one image,
	// each goroutine taking a run of them (so that a batch smaller than
	// the goroutines still fills them: the native bfloat16 tiles see half
	// as many "images", pairs of them). With a weight gradient larger
	// than a core's cache, each tile of it takes all the goroutine's units
	// before the next tile (it stays in cache); otherwise each unit visits
	// every tile. (Over few pixels the tiles are shared out instead.)
	nch := (oh + rowChunk - 1) / rowChunk
	rows := func(u int) (n, r0, r1 int) {
		n, r0 = u/nch, u%nch*rowChunk
		return n, r0, min(r0+rowChunk, oh)
	}
	if weightTilesOutside(s) && s.N*oh*ow <= maxTileSplitPixels {
		// A weight gradient larger than a core's cache over few output
		// pixels: the goroutines share out its tiles, each computing its
		// own over every unit, so that none fills a gradient of its own to
		// be cleared and summed at the end, which costs as much as the
		// products here. Every element is summed over the units in order
		// by one goroutine, whatever their number.
		if s.KH == 1 && s.KW == 1 && bs[0].vi == bs[len(bs)-1].vi {
			weightGrad1x1Panels(s, k, xp, dy, dw, bs, nblks(bs[0]))
			return
		}
		maxBlk := 0
		for _, b := range bs {
			maxBlk = max(maxBlk, nblks(b))
		}
		parallelFor(s.KH*s.KW*len(bs)*maxBlk, func(lo, hi int) {
			for t := lo; t < hi; t++ {
				kh, kw := t/(s.KW*len(bs)*maxBlk), t/(len(bs)*maxBlk)%s.KW
				b, ib := bs[t/maxBlk%len(bs)], t%maxBlk
				nblk := nblks(b)
				if ib >= nblk {
					continue
				}
				for c := ib * s.C / nblk; c < (ib+1)*s.C/nblk; c++ {
					clear(dw[((kh*s.KW+kw)*s.C+c)*s.OC+b.oc0:][:b.nb])
				}
				for u := range s.N * nch {
					n, r0, r1 := rows(u)
					tap(dw, xp, dy, n, r0, r1, kh, kw, b, ib, nblk)
				}
			}
		})
		return
	}
	// The tiles go in groups whose gradient fits a core's cache (one
	// group unless weightTilesOutside), and each goroutine runs a group's
	// tiles over each of its units in turn: a unit's rows are read from
	// memory once a group, the group's tiles then reading them from the
	// cache. (Looping each tile over all the units read them from memory
	// once a tile.)
	if pair != nil && groupEnd(s, bs, 0) < len(bs) {
		panic("kernels: a weight gradient over a core's cache paired unit by unit")
	}
	parallelForEach(s.N*nch, func(lo, hi int) {
		// The first range accumulates into dw itself, the others into
		// scratch buffers added to it in order.
		acc := dw[:size]
		if lo > 0 {
			acc = getBuf(size)
		}
		clear(acc)
		var xs, dys []float32 // one image pair's rows, as pair converts them
		if pair != nil {
			xs, dys = getBuf(s.H*s.W*s.C), getBuf(oh*ow*s.OC)
			defer putBuf(xs)
			defer putBuf(dys)
		}
		for g0 := 0; g0 < len(bs); g0 = groupEnd(s, bs, g0) {
			gb := bs[g0:groupEnd(s, bs, g0)]
			for u := lo; u < hi; u++ {
				n, r0, r1 := rows(u)
				ux, udy := xp, dy
				if pair != nil {
					// The input rows that output rows [r0, r1) read, and
					// those output rows, of image pair n.
					i0 := max(0, r0*s.SH-s.PT)
					i1 := min(s.H, (r1-1)*s.SH-s.PT+(s.KH-1)*s.DH+1)
					if i0 < i1 {
						pairRows(pairsOf(xs), pair.x, n, pair.n, s.H, s.W*s.C, i0, i1)
					}
					pairRows(pairsOf(dys), pair.dy, n, pair.n, oh, ow*s.OC, r0, r1)
					ux, udy, n = unsafe.Pointer(unsafe.SliceData(xs)), dys, 0
				} else {
					unitSpans(s, n, r0, r1, gb[0].oc0, gb[len(gb)-1].oc0+gb[len(gb)-1].nb, func(xoff, dyi, elems int) {
						if xoff >= 0 {
							prefetchLines(unsafe.Add(xp, xoff), elems*4)
						} else {
							prefetchLines(unsafe.Pointer(&dy[dyi]), elems*4)
						}
					})
				}
				for kh := 0; kh < s.KH; kh++ {
					for kw := 0; kw < s.KW; kw++ {
						for _, b := range gb {
							for ib, nblk := 0, nblks(b); ib < nblk; ib++ {
								tap(acc, ux, udy, n, r0, r1, kh, kw, b, ib, nblk)
							}
						}
					}
				}
			}
		}
		if lo > 0 {
			mu.Lock()
			parts[lo] = acc
			mu.Unlock()
		}
	})
	sumInOrder(parts, dw[:size])
	for _, p := range parts {
		putBuf(p)
	}
}

// groupEnd returns the end of the group of blocks that starts at bs[i]:
// the longest run bs[i:j] whose weight gradient fits maxCachedWeights, at
// least one block.
func groupEnd(s ConvShape, bs []ocBlock, i int) int {
	per := s.KH * s.KW * s.C * 4 // bytes of a channel's gradient
	j, bytes := i+1, bs[i].nb*per
	for j < len(bs) && bytes+bs[j].nb*per <= maxCachedWeights {
		bytes += bs[j].nb * per
		j++
	}
	return j
}

// unitSpans lists, in address order, what the weight-gradient tiles of
// output channels [o0, o1) read over output rows [r0, r1) of image n:
// span(xoff, −1, elems) for a run of elems elements of the input at byte
// offset xoff (the input rows those output rows read; where a stride
// wider than the kernel skips pixels, the pixels read), span(−1, dyi,
// elems) for a run of the output gradient from element dyi (the rows'
// channels [o0, o1)). convBackwardWeightTiles prefetches them as a unit
// starts: the tiles read each input row a cache line a pixel for every
// block of channels, each line waiting on the memory's latency, while
// asked for in address order the lines stream in (ResNet-50's first
// 1×1 layer of its second stage, 256 to 128 channels at 56×56, took 1.7×
// as long without).
func unitSpans(s ConvShape, n, r0, r1, o0, o1 int, span func(xoff, dyi, elems int)) {
	oh, ow := s.OH(), s.OW()
	// reads reports whether a tap of k, d apart, reads position i for an
	// output in [a, b) at stride st after pad positions of padding.
	reads := func(i, a, b, st, pad, k, d int) bool {
		for t := range k {
			if j := i + pad - t*d; j >= a*st && j < b*st && j%st == 0 {
				return true
			}
		}
		return false
	}
	for ih := max(0, r0*s.SH-s.PT); ih < min(s.H, (r1-1)*s.SH-s.PT+(s.KH-1)*s.DH+1); ih++ {
		if !reads(ih, r0, r1, s.SH, s.PT, s.KH, s.DH) {
			continue
		}
		row := (n*s.H + ih) * s.W * s.C
		if s.SW <= s.KW {
			span(row*4, -1, s.W*s.C)
			continue
		}
		for iw := range s.W {
			if reads(iw, 0, ow, s.SW, s.PL, s.KW, s.DW) {
				span((row+iw*s.C)*4, -1, s.C)
			}
		}
	}
	for r := r0; r < r1; r++ {
		row := (n*oh + r) * ow * s.OC
		if o0 == 0 && o1 == s.OC {
			span(-1, row, ow*s.OC)
			continue
		}
		for q := range ow {
			span(-1, row+q*s.OC+o0, o1-o0)
		}
	}
}

// weightGrad1x1Panels is convBackwardWeightTiles' tiles-shared-out case
// for a 1×1 kernel whose blocks are all of one width: it copies both
// operands into panels first, the input's nblk blocks of channels as
// [nblk][pixel][16 or 32] and the output gradient's blocks as
// [block][pixel][nb], over every output pixel in order, and each tile then
// runs over its two panels in one call. Read in place, a tile's pixels lie
// a row of channels apart, 4 or 8 KB in ResNet-50's last stage: every line
// of its column falls in the same few sets of the caches, which hold a
// fraction of them, so each tile read its operands from beyond L2 (those
// 1×1 weight gradients ran at 134–167 GFLOP/s on the Xeon, 226–282 on
// panels). The
// tiles go over the larger operand's panels in the outer loop, so that
// each of those is read once and the smaller operand's stay in the cache.
// Every element is still summed over the pixels in order, in one tile.
func weightGrad1x1Panels(s ConvShape, k *kernelSet, xp unsafe.Pointer, dy, dw []float32, bs []ocBlock, nblk int) {
	oh, ow := s.OH(), s.OW()
	np, nb := s.N*oh*ow, bs[0].nb
	xw := (k.maxDW[bs[0].vi] + 15) &^ 15 // floats of a pixel's slot in an input panel, whole lines
	xpan, dpan := getBuf(nblk*np*xw), getBuf(len(bs)*np*nb)
	defer putBuf(xpan)
	defer putBuf(dpan)
	x := unsafe.Slice((*float32)(xp), s.N*s.H*s.W*s.C)
	parallelFor(np, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			n, r, q := p/(oh*ow), p/ow%oh, p%ow
			if ih, iw := r*s.SH-s.PT, q*s.SW-s.PL; ih < 0 || ih >= s.H || iw < 0 || iw >= s.W {
				for ib := range nblk {
					clear(xpan[(ib*np+p)*xw:][:xw])
				}
			} else {
				px := x[((n*s.H+ih)*s.W+iw)*s.C:][:s.C]
				for ib := range nblk {
					ic0, ic1 := ib*s.C/nblk, (ib+1)*s.C/nblk
					copy(xpan[(ib*np+p)*xw:][:ic1-ic0], px[ic0:ic1])
				}
			}
			pd := dy[p*s.OC:][:s.OC]
			for bi, b := range bs {
				copy(dpan[(bi*np+p)*nb:][:nb], pd[b.oc0:])
			}
		}
	})
	inputOuter := nblk*xw > s.OC
	xpp := unsafe.Pointer(unsafe.SliceData(xpan))
	parallelFor(nblk*len(bs), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			bi, ib := t/nblk, t%nblk
			if inputOuter {
				ib, bi = t/len(bs), t%len(bs)
			}
			b := bs[bi]
			ic0, ic1 := ib*s.C/nblk, (ib+1)*s.C/nblk
			for c := ic0; c < ic1; c++ {
				clear(dw[c*s.OC+b.oc0:][:b.nb])
			}
			k.dw[b.vi][ic1-ic0-1](xpp, ib*np*xw*4, unsafe.Pointer(&dpan[bi*np*nb]),
				unsafe.Pointer(&dw[ic0*s.OC+b.oc0]), 1, np, xw*4, 0, nb*4, 0, s.OC*4)
		}
	})
}
