//go:build amd64 && !purego

package kernels

import (
	"math"
	"os"
	"sync"
	"unsafe"
)

// winograd4 is whether the Winograd path may use F(4×4, 3×3) tiles where
// they apply; RESIDUAL_WINOGRAD=2 keeps it to F(2×2, 3×3).
var winograd4 = os.Getenv("RESIDUAL_WINOGRAD") != "2"

// winoGemmKernel computes one tile of the Winograd path's per-position
// products (16 or 36 positions); see internal/kernels/gen.
type winoGemmKernel func(v, u, m unsafe.Pointer, c, cs, ms, vps, ups, mps, npos int)

// Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray, 2016) computes
// a 2×2 tile of a stride-1 3×3 convolution from a 4×4 input window with
// 16 multiplications per input-output channel pair instead of 36:
//
//	Y = Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A
//
// Over channels the element-wise product becomes 16 matrix products, one per
// position of the 4×4 transformed tile, [tiles × C]·[C × K] (winoGemm, a
// generated kernel that runs a tile group through all 16), between an
// input transform and an output transform (winoIn512, winoOut512, and
// winoInAVX2, winoOutAVX2 at AVX2, which compute the same transforms in two
// passes of the 1-D one, in another order of operations; the tests hold
// both levels to one bound). A convolution of C→K channels thus does 16/36 of
// the direct kernels' FMAs, plus transforms linear in C + K; in float32 its
// rounding error is within the tests' tolerance of the direct sums (the
// transforms' coefficients are 0, ±1 and ±½).
//
// F(4×4, 3×3) computes a 4×4 tile from a 6×6 window with 36 multiplications
// instead of 144: 2.25 products an output instead of 4, for transforms that
// cost about as much an output (winoIn4_512, winoOut4_512; Lavin and Gray's
// points 0, ±1, ±2). Its float32 rounding error is larger, and grows with
// the channels summed: about 4·10⁻⁶ of the output's scale up to 64 channels
// against F(2×2, 3×3)'s 4·10⁻⁷ (a numpy model of the kernels' order of
// operations; 10⁻⁵ at 256 channels), so it is taken only for sums over at
// most winoMaxSum4 channels, where it stays within the tests' 10⁻⁵ (the
// worst element of TestWinogradMatchesReference, 64 channels, is at 0.76
// of that bound; F(2×2)'s worst at 0.2). The weight gradient sums over
// pixels, not channels, and takes F(4×4, 3×3) at any width.

// winoMaxSum4 is the most channels a convolution sums (its input channels)
// for which F(4×4, 3×3) is taken; above, F(2×2, 3×3) (see the rounding
// error above).
const winoMaxSum4 = 64

// winoMaxWeights bounds the transformed weights (16 or 36·C·K floats, in bytes)
// of one pass: every strip of tiles reads all of them, so they must stay
// in a core's cache. With more, the forward convolution and the F(2×2)
// data gradient run in passes over blocks of output channels, each
// transforming the input again, and the weight gradient in passes or
// position by position (winoGradTile).
const winoMaxWeights = 1 << 20

// winoMaxPasses is the most passes a forward convolution is split into
// at AVX-512 (measured: 256→256 channels at 14×14, 4 passes, 415 against
// the direct kernels' 315–325 GFLOP/s; 512→512 at 7×7, 16 passes, 165
// against 263); winoMaxPassesAVX2 at AVX2, whose 4 passes of 256→256 at
// 14×14 ran at 168–184 against the direct kernels' 177–199.
const (
	winoMaxPasses     = 4
	winoMaxPassesAVX2 = 2
)

// winoStripBytes bounds the input rows one job copies, zero padded, to
// transform: a strip is as many rows of tiles as fit.
const winoStripBytes = 96 << 10

// winoColTiles is the longest run of a row's tiles transformed and
// multiplied together when a row of tiles is a group of its own.
const winoColTiles = 8

// winoMinGradChannels is the fewest input or output channels for which the
// weight gradient takes F(2×2, 3×3): with 16, transforming the output
// gradient (4 pixels into 16 positions a tile) costs more than the
// products save (measured: 230 against the direct kernels' 250–275
// GFLOP/s on CIFAR's first stage; 64 channels: 390 against 310–330).
// F(4×4, 3×3) is taken from 16 channels (CIFAR's first stage: 505–535
// against the direct kernels' 305–350 GFLOP/s).
const winoMinGradChannels = 32

// winoMaxGradPasses is the most passes over blocks of output channels a
// weight gradient is split into (each transforms the input again;
// measured: 128→128 channels at 28×28, F(4×4) in 3 passes, 567–646
// against 383–475 GFLOP/s in one F(2×2) pass; 256→256 at 14×14 in 16
// F(4×4) or 4 F(2×2) passes 113–312 against the direct kernels' 314–344).
const winoMaxGradPasses = 3

// winoGroupBytes bounds the transformed tiles (16 positions × tiles ×
// channels) that the weight gradient gathers before multiplying them.
const winoGroupBytes = 192 << 10

// winoKernels are one level's Winograd kernels: the transforms and the
// per-position products, generated for AVX-512 (vectors of 16 floats) and
// AVX2 (8).
type winoKernels struct {
	vec                          int // floats a vector
	in, in4                      func(src unsafe.Pointer, rs, cs int, dst unsafe.Pointer, ps, tiles, c int)
	out, outSkip, out4, outSkip4 func(m unsafe.Pointer, ps int, y unsafe.Pointer, rs, cs, tiles, k int, scale, shift unsafe.Pointer, skipDelta int, floor float32)
	weights                      func(src unsafe.Pointer, ts int, dst unsafe.Pointer, ps, n, ss, ds int, half float32)
	weights4                     func(src unsafe.Pointer, ts int, dst unsafe.Pointer, ps, n, ss, ds int)
	grad, grad4                  func(dy unsafe.Pointer, rs, cs int, dst unsafe.Pointer, ps, tiles, k int)
	gradOut4                     func(src unsafe.Pointer, ps int, dst unsafe.Pointer, ts, n int)
	// gradOut is F(2×2)'s transform back (nil: winoPlan.gradOut's Go loop).
	gradOut   func(src unsafe.Pointer, ps int, dst unsafe.Pointer, ts, n int, half float32)
	gemm      [2][]winoGemmKernel // by channel block: one vector, two
	maxPasses int                 // the most passes of a forward convolution
}

var (
	wino512 = &winoKernels{vec: 16, in: winoIn512, in4: winoIn4_512,
		out: winoOut512, outSkip: winoOutSkip512, out4: winoOut4_512, outSkip4: winoOutSkip4_512,
		weights: winoWeights512, weights4: winoWeights4_512, grad: winoGrad512, grad4: winoGrad4_512, gradOut4: winoGradOut4_512, gradOut: winoGradOut512,
		gemm: [2][]winoGemmKernel{winoGemmAVX512_16[:], winoGemmAVX512_32[:]}, maxPasses: winoMaxPasses}
	winoAVX2 = &winoKernels{vec: 8, in: winoInAVX2, in4: winoIn4_AVX2,
		out: winoOutAVX2, outSkip: winoOutSkipAVX2, out4: winoOut4_AVX2, outSkip4: winoOutSkip4_AVX2,
		weights: winoWeightsAVX2, weights4: winoWeights4_AVX2, grad: winoGradAVX2, grad4: winoGrad4_AVX2, gradOut4: winoGradOut4_AVX2,
		gemm: [2][]winoGemmKernel{winoGemmAVX2_8[:], winoGemmAVX2_16[:]}, maxPasses: winoMaxPassesAVX2}
)

// winoUse returns the active level's Winograd kernels, nil at the generic
// level.
func winoUse() *winoKernels {
	switch {
	case use.avx512:
		return wino512
	case use.k != nil:
		return winoAVX2
	}
	return nil
}

// winoConv computes the convolution s (stride 1, 3×3, weights read through
// src) of x into y with Winograd's F(2×2, 3×3) and the epilogue ep; it
// returns false (doing nothing) when that path does not apply: another
// shape, channel counts not multiples of 16, weights needing more than
// the level's most passes (or, for the data gradient, more than one but
// in F(2×2) tiles at AVX-512), or the generic level.
// pre, if not nil, holds the forward weights already transformed
// (packWino); winoConv uses it when it was made for this level and tiling.
func winoConv(s ConvShape, src weightSource, ep *convEpilogue, x, y []float32, pre *winoPacked) bool {
	m, kb, flipped, ok := winoForward(s, src)
	if !ok {
		return false
	}
	wk := winoUse()
	if pre != nil && pre.wk == wk && pre.m == m && pre.kb == kb && !flipped {
		for i, k0 := 0, 0; k0 < s.OC; i, k0 = i+1, k0+kb {
			p := newWinoPlan(s, ep, k0, min(kb, s.OC-k0), m)
			p.u, p.lent = pre.u[i], true
			p.run(x, y)
		}
		return true
	}
	w := src.w
	var tu []float32 // F(2×2)'s data gradient: the forward U of w, [16][OC][C]
	switch {
	case flipped && m == 2:
		tu = getBuf(16 * s.OC * s.C)
		vec := wk.vec
		winoWeights(2, src.w, s.OC, s.C, s.C/vec, tu, func(vi int) (int, int, int) { return vi * vec, s.OC * s.C * 4, s.C * 4 })
		defer putBuf(tu)
	case flipped: // F(4×4)'s: the flipped, transposed weights as HWIO
		w = getBuf(9 * s.C * s.OC)
		flipTranspose(src.w, s.OC, s.C, w)
		defer putBuf(w)
	}
	for k0 := 0; k0 < s.OC; k0 += kb {
		p := newWinoPlan(s, ep, k0, min(kb, s.OC-k0), m)
		p.transformWeights(w, tu)
		p.run(x, y)
	}
	return true
}

// winoForward returns how the Winograd path computes s with weights
// src: in m×m tiles, in passes over kb output channels, from weights
// flipped and transposed (the data gradient) or not; ok is false where
// it declines.
func winoForward(s ConvShape, src weightSource) (m, kb int, flipped, ok bool) {
	if !winoApplies(s) {
		return 0, 0, false, false
	}
	m = winoTile(s)
	npos := (m + 2) * (m + 2)
	forward := src.SKW == 3 && !src.transposed
	flipped = src.SKW == 3 && src.transposed
	for t := range 3 {
		for u := range 3 {
			st, su := src.tap(t, u)
			forward = forward && st == t && su == u
			flipped = flipped && st == 2-t && su == 2-u
		}
	}
	// Weights over winoMaxWeights: passes over blocks of output channels,
	// at most the level's maxPasses, forward or, at AVX-512, as F(2×2)'s
	// data gradient, whose U is the forward's transposed (transformWeights'
	// tu): ResNet-50's 256-channel data gradients at 14×14 in four passes,
	// 22.1–24.6 → 17.9–19.4 ms a step for the five layers against the
	// direct kernels (go test -bench 'ResNet50Grads/l3-3x3-256/data-fp32',
	// five alternated rounds, 2-core Zen 5; AVX2's two passes are not
	// measured). F(4×4)'s data gradient flips and transposes the weights
	// instead, and takes them in one pass only.
	kb = s.OC
	if npos*s.C*s.OC*4 > winoMaxWeights {
		kb = max(32, winoMaxWeights/(npos*s.C*4)/32*32)
		flipped = flipped && m == 2 && winoUse() == wino512
	}
	if !forward && !flipped || (s.OC+kb-1)/kb > winoUse().maxPasses {
		return 0, 0, false, false
	}
	return m, kb, flipped, true
}

// winoPacked is a forward convolution's weights transformed once for the
// Winograd path (inference: PackConv), one buffer per pass: at batch 1,
// transforming them on every call took longer than the products
// themselves.
type winoPacked struct {
	wk    *winoKernels // the level it was made for
	m, kb int          // the tiling
	u     [][]float32
}

// packWino transforms w for the forward convolutions of shape s, or
// returns nil where the Winograd path declines s.
func packWino(s ConvShape, w []float32) *winoPacked {
	src := weightSource{w: w, SKW: s.KW, A: s.C, B: s.OC, tap: func(t, u int) (int, int) { return t, u }}
	m, kb, _, ok := winoForward(s, src)
	if !ok {
		return nil
	}
	pre := &winoPacked{wk: winoUse(), m: m, kb: kb}
	for k0 := 0; k0 < s.OC; k0 += kb {
		p := newWinoPlan(s, nil, k0, min(kb, s.OC-k0), m)
		p.transformWeights(w, nil)
		pre.u = append(pre.u, append([]float32(nil), p.u[:p.npos*s.C*p.K]...))
		putBuf(p.u)
	}
	return pre
}

// winoGradTile returns the side of the tiles in which the weight gradient
// of s takes the Winograd path, 0 where it declines, and the output
// channels of each pass: F(4×4, 3×3), else F(2×2, 3×3) from
// winoMinGradChannels channels, in passes over blocks of output channels
// whose transformed gradients fit winoMaxWeights, at most
// winoMaxGradPasses of them. With more, byPos: F(2×2, 3×3) in one pass,
// position by position (winoWeightGradByPosition), where its transformed
// tiles take at most winoMaxGradTileBytes, the level has F(2×2)'s vector
// transform back (AVX-512: winoGradOut512) and its products are at most
// half the direct kernels' (16 a tile against 9 an output: at 14×14, 49
// tiles for 196 outputs; at 7×7, 16 tiles for 49, which measured no
// faster than the direct kernels on ResNet-50's last stage).
func winoGradTile(s ConvShape) (m, kb int, byPos bool) {
	if !winoApplies(s) {
		return 0, 0, false
	}
	for _, m := range []int{4, 2} {
		if m == 4 && !winograd4 || m == 2 && min(s.C, s.OC) < winoMinGradChannels {
			continue
		}
		np := (m + 2) * (m + 2)
		kb := min(s.OC, winoMaxWeights/(np*s.C*4)/16*16)
		if kb >= 16 && (s.OC+kb-1)/kb <= winoMaxGradPasses {
			return m, kb, false
		}
	}
	tiles := s.N * ((s.OH() + 1) / 2) * ((s.OW() + 1) / 2)
	if winoUse().gradOut != nil && min(s.C, s.OC) >= winoMinGradChannels && 16*tiles*(s.C+s.OC)*4 <= winoMaxGradTileBytes &&
		2*16*tiles <= 9*s.N*s.OH()*s.OW() {
		return 2, s.OC, true
	}
	return 0, 0, false
}

// winoMaxGradTileBytes bounds the transformed input and output-gradient
// tiles that winoWeightGradByPosition keeps (ResNet-50's 256- and
// 512-channel stages at batch 8: 12.8 and 8.4 MB).
const winoMaxGradTileBytes = 64 << 20

// winoTile returns the side of the output tiles the Winograd path computes
// s in: 4 (F(4×4, 3×3)) when it sums over at most winoMaxSum4 channels,
// otherwise 2.
func winoTile(s ConvShape) int {
	if winograd4 && s.C <= winoMaxSum4 {
		return 4
	}
	return 2
}

// flipTranspose writes into t [3][3][b][a] the HWIO weights w [3][3][a][b]
// flipped and transposed: t[i][j][k][c] = w[2−i][2−j][c][k].
func flipTranspose(w []float32, a, b int, t []float32) {
	parallelFor(9*a, func(lo, hi int) {
		for job := lo; job < hi; job++ {
			tap, c := job/a, job%a
			from := w[((8-tap)*a+c)*b:][:b]
			to := t[tap*a*b+c:]
			for k, v := range from {
				to[k*a] = v
			}
		}
	})
}

// winoWeights transforms HWIO weights w [3][3][a][b] for m×m tiles (2 or
// 4): each of the first nv vectors vi of the b channels, over every a
// channel, into u at offset off with position stride ps and a-row stride
// rs (bytes), as at(vi) says.
func winoWeights(m int, w []float32, a, b, nv int, u []float32, at func(vi int) (off, ps, rs int)) {
	k := winoUse()
	parallelFor(nv, func(lo, hi int) {
		for vi := lo; vi < hi; vi++ {
			off, ps, rs := at(vi)
			if m == 4 {
				k.weights4(unsafe.Pointer(&w[vi*k.vec]), a*b*4, unsafe.Pointer(&u[off]), ps, a, b*4, rs)
			} else {
				k.weights(unsafe.Pointer(&w[vi*k.vec]), a*b*4, unsafe.Pointer(&u[off]), ps, a, b*4, rs, 0.5)
			}
		}
	})
}

// winoApplies reports whether the Winograd path computes s.
func winoApplies(s ConvShape) bool {
	return winograd && use.k != nil && s.KH == 3 && s.KW == 3 && s.SH == 1 && s.SW == 1 && s.DH == 1 && s.DW == 1 &&
		s.C%16 == 0 && s.OC%16 == 0
}

// winoPlan is one Winograd convolution: input [N,H,W,C], zero padding PT
// above and PL to the left (and whatever the output size needs below and
// to the right), output channels [K0, K0+K) of y [N,OH,OW,KY], in tiles of
// m×m outputs (F(2×2, 3×3) or F(4×4, 3×3)).
type winoPlan struct {
	N, H, W, C, K  int
	K0, KY         int
	PT, PL, OH, OW int
	m, npos        int // the tile's side, the positions of a transformed tile ((m+2)²)
	tilesH, tilesW int
	k              *kernelSet
	blocks         []ocBlock
	u              []float32 // transformed weights, per block [npos][C][nb]
	lent           bool      // u belongs to a winoPacked: run leaves it alone
	ep             *convEpilogue
}

// newWinoPlan returns the plan of output channels [k0, k0+kb) of
// convolution s (stride 1, 3×3) with epilogue ep, in m×m tiles (2 or 4),
// its weights not yet transformed.
func newWinoPlan(s ConvShape, ep *convEpilogue, k0, kb, m int) *winoPlan {
	ks := use.k
	bs, _ := blocksFor(ks, kb)
	oh, ow := s.OH(), s.OW()
	p := &winoPlan{N: s.N, H: s.H, W: s.W, C: s.C, K: kb, K0: k0, KY: s.OC, PT: s.PT, PL: s.PL, OH: oh, OW: ow,
		m: m, npos: (m + 2) * (m + 2), tilesH: (oh + m - 1) / m, tilesW: (ow + m - 1) / m, k: ks, blocks: bs, ep: ep}
	for i := range p.blocks {
		p.blocks[i].off = i * p.npos * s.C * ks.vec * 2
	}
	return p
}

// transformWeights transforms the plan's weights into U = G·g·Gᵀ, packed
// per output-channel block like a (m+2)×(m+2) kernel's: from the HWIO
// weights w, or, for F(2×2)'s data gradient (flipped and transposed
// weights), from tu, the forward U of w [16][KY][C]: the data gradient's U
// is it transposed with the positions 0 and 3 of each axis swapped, since
// G·J = P·G for the reversal J and the swap P (F(4×4)'s points have no
// such symmetry: its caller flips and transposes w instead, which costs
// 128-channel data gradients ~15% with F(2×2)).
func (p *winoPlan) transformWeights(w, tu []float32) {
	C, K := p.C, p.K
	p.u = getBuf(p.npos * C * K)
	if tu == nil {
		vec := winoUse().vec
		winoWeights(p.m, w[p.K0:], C, p.KY, K/vec, p.u, func(vi int) (int, int, int) {
			b := p.blocks[vi/2] // blocks of two vectors, the last maybe of one
			return b.off + vi*vec - b.oc0, C * b.nb * 4, b.nb * 4
		})
		return
	}
	swap := [4]int{3, 1, 2, 0}
	parallelFor(16*len(p.blocks), func(lo, hi int) {
		for job := lo; job < hi; job++ {
			pos, b := job/len(p.blocks), p.blocks[job%len(p.blocks)]
			from := tu[(swap[pos/4]*4+swap[pos%4])*p.KY*C:]
			dst := p.u[b.off+pos*C*b.nb:]
			for j := range b.nb {
				row := from[(p.K0+b.oc0+j)*C:][:C]
				for c, v := range row {
					dst[c*b.nb+j] = v
				}
			}
		}
	})
}

// gemmRows returns the rows of tiles whose per-position products are
// computed together: at least minTiles tiles (the forward products: 14, the
// longest kernel), so that narrow images still make long tiles.
func (p *winoPlan) gemmRows(minTiles int) int {
	return min(p.tilesH, (minTiles+p.tilesW-1)/p.tilesW)
}

// stripRows returns the rows of tiles one job computes: a multiple of g
// (gemmRows) whose input rows (m per row of tiles, plus 2) take at most
// winoStripBytes.
func (p *winoPlan) stripRows(g int) int {
	per := p.m * p.stripRow() * 4 // bytes of input per row of tiles
	return min(p.tilesH, max(g, winoStripBytes/per/g*g))
}

// run computes y from x (every output overwritten, or added to when the
// epilogue's skip is y itself).
func (p *winoPlan) run(x, y []float32) {
	// F(4×4)'s transformed tiles are 2.25 times F(2×2)'s: shorter groups
	// keep them in cache (measured: 8 tiles against 14, 16 channels at
	// 32×32 +10%, 32 at 16×16 +70%).
	G := p.gemmRows(14)
	if p.m == 4 {
		G = p.gemmRows(8)
	}
	R := p.stripRows(G)
	// Fewer images than goroutines (a batch of one): shorter strips, so
	// that every goroutine has rows to compute (ResNet-20 at 28×28, batch
	// 1: 0.47 ms on one thread and, in one strip a convolution, no faster
	// on two).
	if g := threads(); p.N < g {
		R = min(R, max(1, p.tilesH*p.N/g))
		G = min(G, R)
	}
	strips := (p.tilesH + R - 1) / R
	tw, C, K := p.tilesW, p.C, p.K
	rowF := p.stripRow()
	scale, shift := unitsOr(nil, 1, K), unitsOr(nil, 0, K)
	floor := float32(math.Inf(-1))
	var skip []float32
	if ep := p.ep; ep != nil {
		scale, shift, floor, skip = ep.scale[p.K0:], ep.shift[p.K0:], ep.floor, ep.skip
	}
	wk := winoUse()
	gemm := wk.gemm
	inT, np := wk.in, p.npos // the input transform
	if p.m == 4 {
		inT = wk.in4
	}
	parallelFor(p.N*strips, func(lo, hi int) {
		in := getBuf((p.m*R + 2) * rowF)
		v := getBuf(np * G * tw * C)
		m := getBuf(np * G * tw * K)
		var part []float32 // a row of tiles cut by the output's edge
		for job := lo; job < hi; job++ {
			n, st := job/strips, job%strips
			tr0 := st * R
			nrows := min(R, p.tilesH-tr0)
			p.fillStrip(x, n, tr0, nrows, in)
			for g0 := 0; g0 < nrows; g0 += G {
				rows := min(G, nrows-g0)
				// A group is rows of tiles, or when one row is long, a run
				// of its columns (so that the group's transformed tiles and
				// products stay in L1 beside the weights).
				for c0, cw := 0, tw; c0 < tw; c0 += cw {
					if rows == 1 {
						cw = balanced(tw-c0, winoColTiles)
					}
					t := rows * cw
					for r := 0; r < rows; r++ {
						inT(unsafe.Pointer(&in[p.m*((g0+r)*rowF+c0*C)]), rowF*4, C*4, unsafe.Pointer(&v[r*cw*C]), t*C*4, cw, C)
					}
					for _, b := range p.blocks {
						ks := gemm[b.vi]
						for t0 := 0; t0 < t; {
							mr := balanced(t-t0, len(ks))
							ks[mr-1](unsafe.Pointer(&v[t0*C]), unsafe.Pointer(&p.u[b.off]), unsafe.Pointer(&m[t0*K+b.oc0]),
								C, C*4, K*4, t*C*4, C*b.nb*4, t*K*4, np)
							t0 += mr
						}
					}
					p.transformOutput(m, t, tr0+g0, rows, c0, cw, n, y, skip, scale, shift, floor, &part)
				}
			}
		}
		putBuf(in)
		putBuf(v)
		putBuf(m)
		if part != nil {
			putBuf(part)
		}
	})
	if !p.lent {
		putBuf(p.u)
	}
}

// transformOutput stores rows of tiles from tile row tr of image n, their
// columns [c0, c0+cw), through the epilogue into y; m holds their t tiles'
// products. part is scratch for tiles cut by the output's edge (allocated
// on first use).
func (p *winoPlan) transformOutput(m []float32, t, tr, rows, c0, cw, n int, y, skip, scale, shift []float32, floor float32, part *[]float32) {
	K, KY, tm := p.K, p.KY, p.m
	sc, sh := unsafe.Pointer(&scale[0]), unsafe.Pointer(&shift[0])
	wk := winoUse()
	out, outSkip := wk.out, wk.outSkip
	if tm == 4 {
		out, outSkip = wk.out4, wk.outSkip4
	}
	for r := 0; r < rows; r++ {
		oh := tm * (tr + r)
		mp := unsafe.Pointer(&m[r*cw*K])
		if oh+tm <= p.OH && tm*(c0+cw) <= p.OW {
			yi := ((n*p.OH+oh)*p.OW+tm*c0)*KY + p.K0
			if skip != nil {
				delta := int(uintptr(unsafe.Pointer(&skip[yi])) - uintptr(unsafe.Pointer(&y[yi])))
				outSkip(mp, t*K*4, unsafe.Pointer(&y[yi]), p.OW*KY*4, KY*4, cw, K, sc, sh, delta, floor)
			} else {
				out(mp, t*K*4, unsafe.Pointer(&y[yi]), p.OW*KY*4, KY*4, cw, K, sc, sh, 0, floor)
			}
			continue
		}
		// The output's last rows or columns: through part, m rows of m·cw
		// pixels of K channels, with the skip copied in first.
		if *part == nil {
			*part = getBuf(tm * tm * p.tilesW * K)
		}
		pt := *part
		nr, nc := min(tm, p.OH-oh), min(tm*cw, p.OW-tm*c0)
		// pixels calls f with the offsets in part and in y of each output
		// pixel of the tiles.
		pixels := func(f func(pi, yi int)) {
			for i := range nr {
				for o := range nc {
					f((i*tm*cw+o)*K, ((n*p.OH+oh+i)*p.OW+tm*c0+o)*KY+p.K0)
				}
			}
		}
		if skip != nil {
			clear(pt)
			pixels(func(pi, yi int) { copy(pt[pi:pi+K], skip[yi:]) })
			outSkip(mp, t*K*4, unsafe.Pointer(&pt[0]), tm*cw*K*4, K*4, cw, K, sc, sh, 0, floor)
		} else {
			out(mp, t*K*4, unsafe.Pointer(&pt[0]), tm*cw*K*4, K*4, cw, K, sc, sh, 0, floor)
		}
		pixels(func(pi, yi int) { copy(y[yi:yi+K], pt[pi:]) })
	}
}

// stripRow returns the floats of one row of a job's input strip: the
// m·tilesW+2 input columns a row of tiles reads.
func (p *winoPlan) stripRow() int { return (p.m*p.tilesW + 2) * p.C }

// fillStrip copies the input rows that tile rows [tr0, tr0+nrows) of image
// n read into in (rows of m·tilesW+2 pixels), zero outside the image.
// (Reading the windows inside the image in place instead, and gathering
// only the border ones, measured no faster.)
func (p *winoPlan) fillStrip(x []float32, n, tr0, nrows int, in []float32) {
	C := p.C
	rowF := p.stripRow()
	wp := rowF / C
	j0 := min(p.PL, wp) // the columns inside the image
	j1 := max(j0, min(wp, p.W+p.PL))
	for r := 0; r < p.m*nrows+2; r++ {
		row := in[r*rowF : (r+1)*rowF]
		ih := p.m*tr0 - p.PT + r
		if ih < 0 || ih >= p.H {
			clear(row)
			continue
		}
		clear(row[:j0*C])
		copy(row[j0*C:j1*C], x[((n*p.H+ih)*p.W+j0-p.PL)*C:])
		clear(row[j1*C:])
	}
}

// winoWeightGrad computes dw = ConvBackwardWeight(s, x, dy) with Winograd's
// F(4×4, 3×3) or F(2×2, 3×3) run backwards: the forward tile is linear in
// the weights, Y = Aᵀ·[(G·g·Gᵀ) ⊙ V]·A, so dL/dg = Gᵀ·[V ⊙ (A·dY·Aᵀ)]·G
// summed over tiles. The products V ⊙ Z are summed over every tile and
// image in the transformed domain (36 or 16 per-position products
// [C × tiles]·[tiles × K] on the weight-gradient kernels) and transformed
// back once. It returns false (doing nothing) where winoGradTile declines.
func winoWeightGrad(s ConvShape, x, dy, dw []float32) bool {
	m, kb, byPos := winoGradTile(s)
	if m == 0 {
		return false
	}
	if byPos {
		winoWeightGradByPosition(newWinoPlan(s, nil, 0, s.OC, m), x, dy, dw)
		return true
	}
	for k0 := 0; k0 < s.OC; k0 += kb {
		winoWeightGradBlock(newWinoPlan(s, nil, k0, min(kb, s.OC-k0), m), x, dy, dw)
	}
	return true
}

// winoWeightGradBlock computes the weight gradient's output channels
// [p.K0, p.K0+p.K) (of p.KY).
func winoWeightGradBlock(p *winoPlan, x, dy, dw []float32) {
	m, np := p.m, p.npos
	R := p.stripRows(1)
	strips := (p.tilesH + R - 1) / R
	tw, C, K := p.tilesW, p.C, p.K
	rowF := p.stripRow()
	wk := winoUse()
	inT, gradT := wk.in, wk.grad // the input and output-gradient transforms
	if m == 4 {
		inT, gradT = wk.in4, wk.grad4
	}
	// Rows of tiles are transformed into v and z until they hold capT
	// tiles (whole rows, across images), then multiplied: long products
	// even for small images.
	capT := max(1, winoGroupBytes/(np*max(C, K)*4)/tw) * tw
	size := np * C * K
	var mu sync.Mutex
	parts := map[int][]float32{} // per job range, summed in order below
	parallelForEach(p.N*strips, func(lo, hi int) {
		acc := getBuf(size)
		clear(acc)
		in := getBuf((m*R + 2) * rowF)
		v := getBuf(np * capT * C)
		z := getBuf(np * capT * K)
		var dyRows []float32 // a row of output-gradient tiles cut by the edge, zero padded
		vp := unsafe.Pointer(&v[0])
		filled := 0
		flush := func() {
			for pos := range np {
				for _, b := range p.blocks {
					ks := p.k.dw[b.vi]
					nblk := (C + len(ks) - 1) / len(ks)
					for ib := range nblk {
						ic0, ic1 := ib*C/nblk, (ib+1)*C/nblk
						ks[ic1-ic0-1](vp, (pos*capT*C+ic0)*4, unsafe.Pointer(&z[pos*capT*K+b.oc0]), unsafe.Pointer(&acc[(pos*C+ic0)*K+b.oc0]),
							1, filled, C*4, 0, K*4, 0, K*4)
					}
				}
			}
			filled = 0
		}
		for job := lo; job < hi; job++ {
			n, st := job/strips, job%strips
			tr0 := st * R
			nrows := min(R, p.tilesH-tr0)
			p.fillStrip(x, n, tr0, nrows, in)
			for r := 0; r < nrows; r++ {
				inT(unsafe.Pointer(&in[m*r*rowF]), rowF*4, C*4, unsafe.Pointer(&v[filled*C]), capT*C*4, tw, C)
				p.gradRow(gradT, dy, n, tr0+r, z[filled*K:], capT, &dyRows)
				if filled += tw; filled == capT {
					flush()
				}
			}
		}
		if filled > 0 {
			flush()
		}
		putBuf(in)
		putBuf(v)
		putBuf(z)
		if dyRows != nil {
			putBuf(dyRows)
		}
		mu.Lock()
		parts[lo] = acc
		mu.Unlock()
	})
	// The first range's sum takes the others', in order; then dw = Gᵀ·M·G.
	acc := parts[0]
	delete(parts, 0)
	sumInOrder(parts, acc)
	for _, b := range parts {
		putBuf(b)
	}
	p.gradOut(acc, dw)
	putBuf(acc)
}

// winoWeightGradByPosition computes the weight gradient of plan p (every
// output channel, K = KY) position by position: it transforms every tile
// of the input and of the output gradient first, into v [npos][tiles][C]
// and z [npos][tiles][K], then computes each position's product
// [C × tiles]·[tiles × K] on its own, the goroutines sharing out
// positions and channel blocks. With many channels the transformed
// gradient of all positions ([npos][C][K]) is larger than a core's cache,
// so that winoWeightGradBlock needs passes over blocks of output
// channels, each transforming the input again and each goroutine summing
// a gradient of its own; here each element of a position's (C·K floats,
// 256 KB at 256 channels) is written once, by one goroutine.
// ResNet-50's 256-channel 3×3 weight gradients at 14×14, which the
// passes left to the direct kernels, take this path: 26.1–29.7 →
// 17.0–23.3 ms a step for the five layers (go test -bench
// 'ResNet50Grads/l3-3x3-256/weight-fp32', three alternated rounds, 2-core
// Zen 5). p is an F(2×2) plan (winoGradTile gives no other): F(4×4)
// position by position measured slower at every ResNet-50 stage.
func winoWeightGradByPosition(p *winoPlan, x, dy, dw []float32) {
	m, np, tw, C, K := p.m, p.npos, p.tilesW, p.C, p.K
	tiles := p.N * p.tilesH * tw
	R := p.stripRows(1)
	strips := (p.tilesH + R - 1) / R
	rowF := p.stripRow()
	inT, gradT := winoUse().in, winoUse().grad // F(2×2)'s transforms
	v, z := getBuf(np*tiles*C), getBuf(np*tiles*K)
	defer putBuf(v)
	defer putBuf(z)
	parallelFor(p.N*strips, func(lo, hi int) {
		in := getBuf((m*R + 2) * rowF)
		defer putBuf(in)
		var dyRows []float32
		for job := lo; job < hi; job++ {
			n, st := job/strips, job%strips
			tr0 := st * R
			nrows := min(R, p.tilesH-tr0)
			p.fillStrip(x, n, tr0, nrows, in)
			for r := range nrows {
				t := (n*p.tilesH + tr0 + r) * tw
				inT(unsafe.Pointer(&in[m*r*rowF]), rowF*4, C*4, unsafe.Pointer(&v[t*C]), tiles*C*4, tw, C)
				p.gradRow(gradT, dy, n, tr0+r, z[t*K:], tiles, &dyRows)
			}
		}
		if dyRows != nil {
			putBuf(dyRows)
		}
	})
	acc := getBuf(np * C * K)
	defer putBuf(acc)
	nbl := len(p.blocks)
	vp := unsafe.Pointer(&v[0])
	parallelFor(np*nbl, func(lo, hi int) {
		for job := lo; job < hi; job++ {
			pos, b := job/nbl, p.blocks[job%nbl]
			ks := p.k.dw[b.vi]
			nblk := (C + len(ks) - 1) / len(ks)
			for ib := range nblk {
				ic0, ic1 := ib*C/nblk, (ib+1)*C/nblk
				a := acc[(pos*C+ic0)*K+b.oc0:]
				for c := range ic1 - ic0 {
					clear(a[c*K:][:b.nb])
				}
				ks[ic1-ic0-1](vp, (pos*tiles*C+ic0)*4, unsafe.Pointer(&z[pos*tiles*K+b.oc0]), unsafe.Pointer(&a[0]),
					1, tiles, C*4, 0, K*4, 0, K*4)
			}
		}
	})
	p.gradOut(acc, dw)
}

// gradRow transforms the output gradient dy of row of tiles tr of image n
// into z, tile t's position pos at z[(pos·stride+t)·K] (the plan's K
// channels from K0): in place where the row's tiles lie inside dy, else
// through *rows (allocated on first use), the row cut by the edge and
// zero padded.
func (p *winoPlan) gradRow(gradT func(dy unsafe.Pointer, rs, cs int, dst unsafe.Pointer, ps, tiles, k int), dy []float32, n, tr int, z []float32, stride int, rows *[]float32) {
	m, tw, K, K0, KY := p.m, p.tilesW, p.K, p.K0, p.KY
	oh := m * tr
	if oh+m <= p.OH && m*tw == p.OW {
		gradT(unsafe.Pointer(&dy[(n*p.OH+oh)*p.OW*KY+K0]), p.OW*KY*4, KY*4, unsafe.Pointer(&z[0]), stride*K*4, tw, K)
		return
	}
	if *rows == nil {
		*rows = getBuf(m * m * tw * K)
	}
	dyRows := *rows
	clear(dyRows)
	for i := range min(m, p.OH-oh) {
		for o := range p.OW {
			copy(dyRows[(i*m*tw+o)*K:][:K], dy[((n*p.OH+oh+i)*p.OW+o)*KY+K0:])
		}
	}
	gradT(unsafe.Pointer(&dyRows[0]), m*tw*K*4, K*4, unsafe.Pointer(&z[0]), stride*K*4, tw, K)
}

// gradOut writes the plan's output channels of dw from acc, the weight
// gradient in the transformed domain ([npos][C][K]): dw = Gᵀ·M·G.
func (p *winoPlan) gradOut(acc, dw []float32) {
	C, K, K0, KY := p.C, p.K, p.K0, p.KY
	wk := winoUse()
	if p.m == 4 {
		parallelFor(C, func(lo, hi int) {
			for c := lo; c < hi; c++ {
				wk.gradOut4(unsafe.Pointer(&acc[c*K]), C*K*4, unsafe.Pointer(&dw[c*KY+K0]), C*KY*4, K/wk.vec)
			}
		})
		return
	}
	if wk.gradOut != nil {
		parallelFor(C, func(lo, hi int) {
			for c := lo; c < hi; c++ {
				wk.gradOut(unsafe.Pointer(&acc[c*K]), C*K*4, unsafe.Pointer(&dw[c*KY+K0]), C*KY*4, K/wk.vec, 0.5)
			}
		})
		return
	}
	parallelFor(C, func(lo, hi int) {
		var q [16][]float32
		var d [9][]float32
		for c := lo; c < hi; c++ {
			for pos := range q {
				q[pos] = acc[(pos*C+c)*K:][:K]
			}
			for tap := range d {
				d[tap] = dw[(tap*C+c)*KY+K0:][:K]
			}
			for k := range K {
				// Gᵀ·q (3×4) then ·G (3×3); Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1].
				var h [12]float32
				for j := range 4 {
					a0, a1, a2, a3 := q[j][k], q[4+j][k], q[8+j][k], q[12+j][k]
					h[j], h[4+j], h[8+j] = a0+0.5*(a1+a2), 0.5*(a1-a2), 0.5*(a1+a2)+a3
				}
				for i := range 3 {
					a0, a1, a2, a3 := h[4*i], h[4*i+1], h[4*i+2], h[4*i+3]
					d[3*i][k] = a0 + 0.5*(a1+a2)
					d[3*i+1][k] = 0.5 * (a1 - a2)
					d[3*i+2][k] = 0.5*(a1+a2) + a3
				}
			}
		}
	})
}
