package kernels

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Level names the kernel implementation in use.
type Level int

// The kernel levels, from the portable reference up.
const (
	Generic Level = iota // the reference kernels of this package, pure Go
	AVX2                 // Go assembly, AVX2 + FMA
	AVX512               // Go assembly, AVX-512
)

// String returns the level's name as RESIDUAL_KERNELS spells it.
func (l Level) String() string { return [...]string{"generic", "avx2", "avx512"}[l] }

// active is the level in use, chosen once from the CPU (see detect) and the
// RESIDUAL_KERNELS environment variable: "generic" forces the pure-Go
// reference kernels, "avx2" caps the level at AVX2.
var active = func() Level {
	l := detect()
	switch os.Getenv("RESIDUAL_KERNELS") {
	case "generic":
		l = Generic
	case "avx2":
		l = min(l, AVX2)
	}
	return l
}()

// winograd is whether stride-1 3×3 convolutions may take the Winograd
// path (AVX-512 only); RESIDUAL_WINOGRAD=0 keeps them on the direct
// kernels, whose sums round like the reference's.
var winograd = os.Getenv("RESIDUAL_WINOGRAD") != "0"

// winograd4 is whether that path may use F(4×4, 3×3) tiles where they
// apply; RESIDUAL_WINOGRAD=2 keeps it to F(2×2, 3×3).
var winograd4 = os.Getenv("RESIDUAL_WINOGRAD") != "2"

// Active returns the kernel level in use.
func Active() Level { return active }

// SetLevel forces a level (capped at what the CPU supports) and returns the
// previous one; for tests and benchmarks that compare the paths.
func SetLevel(l Level) Level {
	prev := active
	active = min(l, detect())
	return prev
}

// kernelSet holds the micro-kernels of one level.
type kernelSet struct {
	vec     int             // floats per vector
	conv    [2][]convKernel // by block width: [0] one vector, [1] two
	row3    [2][]convKernel // the row-of-three-taps kernels (none: nil)
	dw      [2][]dwKernel
	maxConv [2]int
	maxRow3 [2]int
	maxDW   [2]int
}

func (k *kernelSet) init() *kernelSet {
	for i := range 2 {
		k.maxConv[i], k.maxRow3[i], k.maxDW[i] = len(k.conv[i]), len(k.row3[i]), len(k.dw[i])
	}
	return k
}

func kernelsFor(l Level) *kernelSet {
	switch l {
	case AVX512:
		return avx512Set
	case AVX2:
		return avx2Set
	}
	return nil
}

// ocBlock is a run of output channels computed by one kernel width.
type ocBlock struct {
	oc0, nb, vi int // first channel, width, vectors−1
	off         int // offset of its packed weights
}

// blocksFor splits oc channels into blocks of two vectors and at most one
// of one vector; ok is false if oc is not a multiple of the vector width.
func blocksFor(k *kernelSet, oc int) (bs []ocBlock, ok bool) {
	if oc%k.vec != 0 {
		return nil, false
	}
	for o := 0; o < oc; {
		nb, vi := 2*k.vec, 1
		if oc-o < nb {
			nb, vi = k.vec, 0
		}
		bs = append(bs, ocBlock{oc0: o, nb: nb, vi: vi})
		o += nb
	}
	return bs, true
}

// fastBlocks returns the active level's kernels and the channel blocks for
// oc output channels; ok is false when the assembly kernels do not apply
// (generic level, or oc not a multiple of the vector width).
func fastBlocks(oc int) (*kernelSet, []ocBlock, bool) {
	k := kernelsFor(active)
	if k == nil {
		return nil, nil, false
	}
	bs, ok := blocksFor(k, oc)
	return k, bs, ok
}

// convPlan is one direct-convolution pass over NHWC data: output position o
// (per spatial axis) reads input position o·S + Off + t·D for the taps t
// that land inside the input, and is written to y at Y0 + o·YS.
type convPlan struct {
	N, H, W, C         int // input
	OC                 int
	KH, KW             int
	SH, SW, DH, DW     int
	OffH, OffW         int
	OH, OW             int // outputs computed per image
	YH, YW             int // spatial size of y
	Y0H, Y0W, YSH, YSW int
	k                  *kernelSet
	blocks             []ocBlock
	wp                 []float32 // packed weights: per block [KH·KW][C][nb]
	ep                 *convEpilogue
}

// convEpilogue is what a plan applies to its outputs as they are stored:
// y = max(y·scale + shift + skip, floor) per output channel (see genStore).
type convEpilogue struct {
	scale, shift []float32 // per output channel
	skip         []float32 // nil, or laid out as y
	floor        float32   // 0 for a ReLU, −∞ for none
}

// zeroBlock is the skip that an epilogue without one reads: two vectors
// of zeros, at a stride of 0.
var zeroBlock [32]float32

// weightSource describes how to read a plan's weights from an HWIO array
// [SKH][SKW][A][B]: tap maps plan tap (t, u) to the source tap; transposed
// reads w[..][oc][c] (plan C = B, plan OC = A) instead of w[..][c][oc].
type weightSource struct {
	w          []float32
	SKW, A, B  int
	transposed bool
	tap        func(t, u int) (int, int)
	// valid, when not zero, is the number of real output channels: the
	// plan's channels beyond it (padding to the vector width) get zero
	// weights.
	valid int
}

func (p *convPlan) pack(src weightSource) {
	taps := p.KH * p.KW
	total := 0
	for i := range p.blocks {
		p.blocks[i].off = total
		total += taps * p.C * p.blocks[i].nb
	}
	p.wp = getBuf(max(total, 1))
	parallelFor(len(p.blocks)*taps, func(lo, hi int) {
		for job := lo; job < hi; job++ {
			b, t, u := p.blocks[job/taps], job%taps/p.KW, job%p.KW
			st, su := src.tap(t, u)
			sw := src.w[(st*src.SKW+su)*src.A*src.B:][:src.A*src.B]
			d := p.wp[b.off+(t*p.KW+u)*p.C*b.nb:][:p.C*b.nb]
			have := b.nb // channels of this block with weights
			if src.valid > 0 {
				have = max(min(b.nb, src.valid-b.oc0), 0)
			}
			if !src.transposed {
				for c := 0; c < p.C; c++ {
					copy(d[c*b.nb:c*b.nb+have], sw[c*src.B+b.oc0:])
					clear(d[c*b.nb+have : (c+1)*b.nb])
				}
				continue
			}
			// Read each source row once, in order; the writes stride by
			// the block width within d, which stays in cache.
			for j := 0; j < b.nb; j++ {
				if j >= have {
					for c := 0; c < p.C; c++ {
						d[c*b.nb+j] = 0
					}
					continue
				}
				for c, v := range sw[(b.oc0+j)*src.B:][:p.C] {
					d[c*b.nb+j] = v
				}
			}
		}
	})
}

// validRange returns the taps t in [0, k) with 0 ≤ o·s + off + t·d < n.
func validRange(o, s, off, d, k, n int) (t0, t1 int) {
	t0, t1 = k, 0
	for t := 0; t < k; t++ {
		if i := o*s + off + t*d; i >= 0 && i < n {
			t0, t1 = min(t0, t), max(t1, t+1)
		}
	}
	if t0 >= t1 {
		return 0, 0
	}
	return t0, t1
}

type colRun struct{ o0, n, u0, u1 int }

// convGeom is the data-independent part of running a plan: which taps are
// valid where, as runs of output columns and rows, the tap tables of each
// run, and the border columns. It depends only on the geometry, so it is
// computed once per geometry and cached (a training step runs the same few
// geometries over and over).
type convGeom struct {
	runs    []colRun // runs of output columns with the same valid taps
	rowRuns []colRun // runs of output rows with the same valid taps
	main    int      // the longest column run: the interior
	rowOf   []int    // the row run of each output row
	// tables are the tap tables, (x offset, weight offset) byte pairs, of
	// row run ri, column run ci and output-channel block bi at
	// tables[(ri·len(runs)+ci)·len(blocks)+bi].
	tables [][]int
	// row3 holds, when the interior runs the row-of-three kernels, the
	// tables of their left taps, one pair per kernel row: row3[ri·len(blocks)+bi].
	row3   [][]int
	border []int // the other runs' columns, as run<<32 | column
}

// table returns the tap table of row run ri, column run ci and block bi.
func (g *convGeom) table(ri, ci, bi, nblocks int) []int {
	return g.tables[(ri*len(g.runs)+ci)*nblocks+bi]
}

// geomKey is everything convGeom depends on.
type geomKey struct {
	H, W, C, OC, KH, KW, SH, SW, DH, DW, OffH, OffW, OH, OW int
	k                                                       *kernelSet
}

var (
	geomCache sync.Map     // geomKey → *convGeom
	geomCount atomic.Int64 // entries in geomCache
)

// maxGeometries bounds the cache: a program that meets ever new image sizes
// stops caching (and computes the geometry per call) rather than grow.
const maxGeometries = 4096

// geometry returns the plan's cached convGeom, computing it the first time.
func (p *convPlan) geometry() *convGeom {
	key := geomKey{p.H, p.W, p.C, p.OC, p.KH, p.KW, p.SH, p.SW, p.DH, p.DW, p.OffH, p.OffW, p.OH, p.OW, p.k}
	if g, ok := geomCache.Load(key); ok {
		return g.(*convGeom)
	}
	g := &convGeom{
		runs:    tapRuns(p.OW, p.SW, p.OffW, p.DW, p.KW, p.W),
		rowRuns: tapRuns(p.OH, p.SH, p.OffH, p.DH, p.KH, p.H)}
	for ri, rr := range g.rowRuns {
		for range rr.n {
			g.rowOf = append(g.rowOf, ri)
		}
	}
	for _, rr := range g.rowRuns {
		for _, c := range g.runs {
			for _, b := range p.blocks {
				tb := make([]int, 0, max(2*(rr.u1-rr.u0)*(c.u1-c.u0), 2)) // never empty, so &tb[0] is valid
				for t := rr.u0; t < rr.u1; t++ {
					for u := c.u0; u < c.u1; u++ {
						tb = append(tb, ((t*p.DH)*p.W+u*p.DW)*p.C*4, (t*p.KW+u)*p.C*b.nb*4)
					}
				}
				g.tables = append(g.tables, tb)
			}
		}
	}
	// The longest column run (the interior) is tiled along each output
	// row. The other runs are border columns, a pixel or two wide: tiling
	// them along a row would make one-pixel tiles, so they are tiled down
	// the image instead, over rows that share their valid taps.
	for i, c := range g.runs {
		if c.n > g.runs[g.main].n {
			g.main = i
		}
	}
	// A 3-wide kernel at stride 1 whose interior sees all three columns
	// runs the interior with the row-of-three kernels.
	if cm := g.runs[g.main]; p.k.row3[0] != nil && p.KW == 3 && p.SW == 1 && p.DW == 1 && cm.u0 == 0 && cm.u1 == 3 {
		for _, rr := range g.rowRuns {
			for _, b := range p.blocks {
				tb := make([]int, 0, max(2*(rr.u1-rr.u0), 2))
				for t := rr.u0; t < rr.u1; t++ {
					tb = append(tb, (t*p.DH)*p.W*p.C*4, t*p.KW*p.C*b.nb*4)
				}
				g.row3 = append(g.row3, tb)
			}
		}
	}
	for i, c := range g.runs {
		if i != g.main {
			for o := c.o0; o < c.o0+c.n; o++ {
				g.border = append(g.border, i<<32|o)
			}
		}
	}
	if geomCount.Load() >= maxGeometries {
		return g
	}
	actual, loaded := geomCache.LoadOrStore(key, g)
	if !loaded {
		geomCount.Add(1)
	}
	return actual.(*convGeom)
}

// tapRuns groups the n outputs along one axis into runs with the same
// valid taps (see validRange for the other arguments).
func tapRuns(n, s, off, d, k, size int) []colRun {
	var runs []colRun
	for o := 0; o < n; o++ {
		t0, t1 := validRange(o, s, off, d, k, size)
		if m := len(runs); m > 0 && runs[m-1].u0 == t0 && runs[m-1].u1 == t1 {
			runs[m-1].n++
		} else {
			runs = append(runs, colRun{o, 1, t0, t1})
		}
	}
	return runs
}

// run computes the plan for input x into y (every output position the plan
// covers is overwritten).
func (p *convPlan) run(x, y []float32) {
	g := p.geometry()
	runs, rowRuns, border := g.runs, g.rowRuns, g.border
	nbl := len(p.blocks)
	xp := unsafe.Pointer(unsafe.SliceData(x))
	// tile runs kernel k on mr outputs starting at output (r, o) of image n,
	// the outputs spaced along a row (down = false) or a column.
	tile := func(k convKernel, b ocBlock, tb []int, n, r, o int, down bool) {
		xs, ys := p.SW*p.C*4, p.YSW*p.OC*4
		if down {
			xs, ys = p.SH*p.W*p.C*4, p.YSH*p.YW*p.OC*4
		}
		xoff := ((n*p.H+r*p.SH+p.OffH)*p.W + o*p.SW + p.OffW) * p.C * 4
		yi := ((n*p.YH+p.Y0H+r*p.YSH)*p.YW+p.Y0W+o*p.YSW)*p.OC + b.oc0
		tp := (*int)(unsafe.Pointer(unsafe.SliceData(tb[:cap(tb)])))
		var sc, sh, sk unsafe.Pointer
		skStride, floor := 0, float32(0)
		if ep := p.ep; ep != nil {
			sc, sh, sk, floor = unsafe.Pointer(&ep.scale[b.oc0]), unsafe.Pointer(&ep.shift[b.oc0]), unsafe.Pointer(&zeroBlock[0]), ep.floor
			if ep.skip != nil {
				sk, skStride = unsafe.Pointer(&ep.skip[yi]), ys
			}
		}
		k(xp, xoff, unsafe.Pointer(&p.wp[b.off]), unsafe.Pointer(&y[yi]), tp, len(tb)/2, p.C, xs, ys, sc, sh, sk, skStride, floor)
	}
	cm := runs[g.main]
	// mainRow tiles output row r of image n along the row (the interior)
	// for channel block bi; borderColumn tiles border column o of image n
	// (run c) down the image.
	mainRow := func(n, r, bi int) {
		b := p.blocks[bi]
		ks, tb := p.k.conv[b.vi], g.table(g.rowOf[r], g.main, bi, nbl)
		if g.row3 != nil {
			ks, tb = p.k.row3[b.vi], g.row3[g.rowOf[r]*nbl+bi]
		}
		for o, left := cm.o0, cm.n; left > 0; {
			mr := balanced(left, len(ks))
			tile(ks[mr-1], b, tb, n, r, o, false)
			o, left = o+mr, left-mr
		}
	}
	borderColumn := func(n, bc, bi int) {
		b := p.blocks[bi]
		o := bc & (1<<32 - 1)
		for ri, rr := range rowRuns {
			tb := g.table(ri, bc>>32, bi, nbl)
			for r, left := rr.o0, rr.n; left > 0; {
				mr := balanced(left, p.k.maxConv[b.vi])
				tile(p.k.conv[b.vi][mr-1], b, tb, n, r, o, true)
				r, left = r+mr, left-mr
			}
		}
	}
	// rows tiles the interior of output rows [lo, hi) (counted over all
	// images) for every block. With more packed weights than a core's
	// cache holds, one block's weights serve every row before the next
	// block's are read; otherwise each input row serves every block.
	blocksOutside := len(p.wp)*4 > maxCachedWeights
	rows := func(lo, hi int) {
		if blocksOutside {
			for bi := range p.blocks {
				for row := lo; row < hi; row++ {
					mainRow(row/p.OH, row%p.OH, bi)
				}
			}
			return
		}
		for row := lo; row < hi; row++ {
			for bi := range p.blocks {
				mainRow(row/p.OH, row%p.OH, bi)
			}
		}
	}
	borders := func(n int, columns []int) {
		for _, bc := range columns {
			for bi := range p.blocks {
				borderColumn(n, bc, bi)
			}
		}
	}
	if p.N >= 4*runtime.GOMAXPROCS(0) {
		// Enough images to share out: each goroutine takes whole images,
		// so an image's border columns are computed while its input is
		// still in cache, and there is one barrier instead of two.
		parallelFor(p.N, func(lo, hi int) {
			for n := lo; n < hi; n++ {
				rows(n*p.OH, (n+1)*p.OH)
				borders(n, border)
			}
		})
	} else {
		parallelFor(p.N*p.OH, rows)
		parallelFor(p.N*len(border), func(lo, hi int) {
			for job := lo; job < hi; job++ {
				borders(job/len(border), border[job%len(border):][:1])
			}
		})
	}
	putBuf(p.wp)
}

// maxCachedWeights is the size of packed weights (bytes) above which a
// plan keeps one output-channel block's weights in cache across rows
// rather than one input row across blocks.
const maxCachedWeights = 1 << 20

// balanced returns the size of the next tile when n outputs remain and a
// tile holds at most maxMR: the outputs are split into equal tiles, since a
// short last tile (a few accumulators) would wait on FMA latency.
func balanced(n, maxMR int) int {
	tiles := (n + maxMR - 1) / maxMR
	return (n + tiles - 1) / tiles
}

// convForwardFast runs ConvForward with the assembly kernels; it returns
// false (doing nothing) when they do not apply.
func convForwardFast(s ConvShape, x, w, y []float32, ep *convEpilogue) bool {
	k, bs, ok := fastBlocks(s.OC)
	if !ok {
		return false
	}
	src := weightSource{w: w, SKW: s.KW, A: s.C, B: s.OC, tap: func(t, u int) (int, int) { return t, u }}
	if winoConv(s, src, ep, x, y) {
		return true
	}
	p := &convPlan{N: s.N, H: s.H, W: s.W, C: s.C, OC: s.OC, KH: s.KH, KW: s.KW, SH: s.SH, SW: s.SW, DH: s.DH, DW: s.DW,
		OffH: -s.PT, OffW: -s.PL, OH: s.OH(), OW: s.OW(), YH: s.OH(), YW: s.OW(), YSH: 1, YSW: 1, k: k, blocks: bs, ep: ep}
	p.pack(src)
	p.run(x, y)
	return true
}

// minFastGemm is the size (m·n·k) below which gemmFast declines: packing
// costs more than it saves on tiny products.
const minFastGemm = 1 << 14

// gemmFast computes Gemm with the conv kernels, as a 1×1 convolution of m
// pixels of k channels to n channels (padded to the vector width): A is
// the input, op(B) the packed weights. It returns false (doing nothing)
// when the kernels do not apply.
func gemmFast(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) bool {
	ks := kernelsFor(active)
	if ks == nil || m*n*k < minFastGemm {
		return false
	}
	rows := k // op(B) is [k][n]: B is [k][ldb], or [n][ldb] when transposed
	if transB {
		rows = n
	}
	if len(b) < rows*ldb {
		return false
	}
	np := (n + ks.vec - 1) / ks.vec * ks.vec
	bs, _ := blocksFor(ks, np)
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
		OH: 1, OW: m, YH: 1, YW: m, YSH: 1, YSW: 1, k: ks, blocks: bs}
	pl.pack(weightSource{w: b, SKW: 1, A: rows, B: ldb, transposed: transB, valid: n,
		tap: func(t, u int) (int, int) { return t, u }})
	pl.run(x, y)
	for i := 0; i < m; i++ {
		storeScaled(c[i*ldc:i*ldc+n], y[i*np:i*np+n], alpha, beta)
	}
	return true
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
		if winoConv(b, src, ep, dy, dx) {
			return true
		}
	}
	for ry := 0; ry < s.SH; ry++ {
		for rx := 0; rx < s.SW; rx++ {
			// Rows ih with (ih + PT) mod S = ry: ih = ih0 + S·k, and the taps
			// kh = ry + S·j read dy[q − j] with q = (ih + PT − ry)/S.
			ih0 := ((ry-s.PT)%s.SH + s.SH) % s.SH
			iw0 := ((rx-s.PL)%s.SW + s.SW) % s.SW
			nh, nw := 0, 0
			if ih0 < s.H {
				nh = (s.H - ih0 + s.SH - 1) / s.SH
			}
			if iw0 < s.W {
				nw = (s.W - iw0 + s.SW - 1) / s.SW
			}
			if nh == 0 || nw == 0 {
				continue
			}
			jh := (s.KH - ry + s.SH - 1) / s.SH // taps in this phase
			jw := (s.KW - rx + s.SW - 1) / s.SW
			q0h := (ih0 + s.PT - ry) / s.SH
			q0w := (iw0 + s.PL - rx) / s.SW
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

// convBackwardWeightFast computes dw = ConvBackwardWeight with the
// assembly kernels, each goroutine accumulating its images into its own
// buffer.
func convBackwardWeightFast(s ConvShape, x, dy, dw []float32) bool {
	k, bs, ok := fastBlocks(s.OC)
	if !ok {
		return false
	}
	if winoWeightGrad(s, x, dy, dw) {
		return true
	}
	oh, ow := s.OH(), s.OW()
	size := s.KH * s.KW * s.C * s.OC
	var mu sync.Mutex
	parts := map[int][]float32{} // per image range, summed in order below
	xp := unsafe.Pointer(unsafe.SliceData(x))
	const rowChunk = 8
	// tap runs the kernels of tap (kh, kw) over output rows [r0, r1) of
	// image n (those whose input row and columns are inside), for channel
	// block b and input-channel block ib of nblk, into acc.
	tap := func(acc []float32, n, r0, r1, kh, kw int, b ocBlock, ib, nblk int) {
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
	// With a weight gradient larger than a core's cache, each tile of it
	// takes all the goroutine's images before the next tile (it stays in
	// cache); otherwise each image visits every tile.
	tilesOutside := size*4 > maxCachedWeights
	parallelForEach(s.N, func(lo, hi int) {
		// The first image range accumulates into dw itself, the others
		// into scratch buffers added to it in order.
		acc := dw[:size]
		if lo > 0 {
			acc = getBuf(size)
		}
		clear(acc)
		if tilesOutside {
			for kh := 0; kh < s.KH; kh++ {
				for kw := 0; kw < s.KW; kw++ {
					for _, b := range bs {
						for ib, nblk := 0, nblks(b); ib < nblk; ib++ {
							for n := lo; n < hi; n++ {
								for r0 := 0; r0 < oh; r0 += rowChunk {
									tap(acc, n, r0, min(r0+rowChunk, oh), kh, kw, b, ib, nblk)
								}
							}
						}
					}
				}
			}
		} else {
			for n := lo; n < hi; n++ {
				for r0 := 0; r0 < oh; r0 += rowChunk {
					for kh := 0; kh < s.KH; kh++ {
						for kw := 0; kw < s.KW; kw++ {
							for _, b := range bs {
								for ib, nblk := 0, nblks(b); ib < nblk; ib++ {
									tap(acc, n, r0, min(r0+rowChunk, oh), kh, kw, b, ib, nblk)
								}
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
	return true
}

// Scratch buffers, recycled to keep a training step from allocating.
// bufPool holds the buffers, each in a holder (a *[]float32) that
// holders recycles, so that getting and putting back allocate nothing.
var bufPool, holders sync.Pool

func getBuf(n int) []float32 {
	if h, ok := bufPool.Get().(*[]float32); ok {
		b := *h
		*h = nil
		holders.Put(h)
		if cap(b) >= n {
			return b[:n]
		}
	}
	return make([]float32, n)
}

func putBuf(b []float32) {
	h, ok := holders.Get().(*[]float32)
	if !ok {
		h = new([]float32)
	}
	*h = b
	bufPool.Put(h)
}
