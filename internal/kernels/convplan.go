package kernels

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// convKernel computes tiles output tiles of its height (mr outputs), each
// mr outputs past the one before; see internal/kernels/gen.
type convKernel func(x unsafe.Pointer, xoff int, w unsafe.Pointer, y unsafe.Pointer, taps *int, ntaps, ic, xs, ys int,
	scale, shift, skip unsafe.Pointer, skipStride int, floor float32, tiles, pf int)

// dwKernel accumulates one weight-gradient tile; see internal/kernels/gen.
type dwKernel func(x unsafe.Pointer, xoff int, dy unsafe.Pointer, dw unsafe.Pointer, rows, cols, xcs, xrs, dycs, dyrs, dws int)

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
	bs = make([]ocBlock, 0, (oc+2*k.vec-1)/(2*k.vec)) // one allocation, not one per doubling
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
	k := use.k
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
	// prepacked is set when wp belongs to a PackedConv: run then leaves
	// it alone instead of returning it to the buffer pool.
	prepacked bool
}

// convEpilogue is what a plan applies to its outputs as they are stored:
// y = max(y·scale + shift + skip, floor) per output channel (see genStore).
type convEpilogue struct {
	scale, shift []float32 // per output channel
	skip         []float32 // nil, or laid out as y
	floor        float32   // 0 for a ReLU, −∞ for none
	// direct keeps the convolution off the Winograd path, whose
	// transforms round differently: the bfloat16 entry points use it
	// (their sums must be those of the bfloat16 products).
	direct bool
	// stats, where not nil, receives the output's statistics (an identity
	// epilogue's: scale 1, shift 0, no skip or ReLU), if the path computes
	// them (ConvStats).
	stats *ConvStats
	// stream stores the output with streaming (non-temporal) stores where
	// the kernel can (epilogueTile: bfloat16 on AMX tiles), past the
	// caches, which a store otherwise first reads each line into
	// (streamedOutput); the AMX sweep sets it on the epilogue of the
	// forward call it runs.
	stream bool
	// gradSums, where not nil, asks a data gradient for its batch norm's
	// first backward pass (DataGradSums), if the path computes it.
	gradSums *DataGradSums
}

// isDirect reports whether e asks for the direct kernels (nil does not).
func (e *convEpilogue) isDirect() bool { return e != nil && e.direct }

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
			if !src.transposed && have == b.nb && p.C > 0 && p.k.vec == 16 {
				copyRows(unsafe.Pointer(&d[0]), unsafe.Pointer(&sw[b.oc0]), p.C, b.nb/16, b.nb*4, src.B*4)
				continue
			}
			if !src.transposed {
				for c := 0; c < p.C; c++ {
					copy(d[c*b.nb:c*b.nb+have], sw[c*src.B+b.oc0:])
					clear(d[c*b.nb+have : (c+1)*b.nb])
				}
				continue
			}
			if have == b.nb && p.C%16 == 0 && p.k.vec == 16 {
				// 16×16 blocks through registers (AVX-512): a scalar
				// loop took a nanosecond an element, 2–3% of a ResNet-50
				// training step.
				for j := 0; j < b.nb; j += 16 {
					for c := 0; c < p.C; c += 16 {
						transpose16x16(unsafe.Pointer(&d[c*b.nb+j]), b.nb*4, unsafe.Pointer(&sw[(b.oc0+j)*src.B+c]), src.B*4, 0xffff)
					}
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
	// ic is the channels per tap of column run ci's tables: C, or a
	// kernel row's taps merged into one tap of (u1−u0)·C channels.
	ic []int
	// row3 holds, when the interior runs the row-of-three kernels, the
	// tables of their left taps, one pair per kernel row: row3[ri·len(blocks)+bi].
	row3   [][]int
	border []borderColumn // the other runs' columns
}

// borderColumn is an output column outside the interior and the column run
// it lies in.
type borderColumn struct{ run, col int }

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
	// With no horizontal dilation a kernel row's taps are adjacent pixels,
	// whose channels follow each other in x as their weights do in the
	// packed block: the row is one tap of (u1−u0)·C channels. A 7×7 stem
	// over 3 channels then loops 7 taps of 21 channels, not 49 of 3.
	merged := make([]int, len(g.runs)) // taps per table entry, by column run
	for ci, c := range g.runs {
		merged[ci] = 1
		if p.DW == 1 {
			merged[ci] = max(c.u1-c.u0, 1)
		}
		g.ic = append(g.ic, merged[ci]*p.C)
	}
	for _, rr := range g.rowRuns {
		for ci, c := range g.runs {
			for _, b := range p.blocks {
				tb := make([]int, 0, max(2*(rr.u1-rr.u0)*(c.u1-c.u0), 2)) // never empty, so &tb[0] is valid
				for t := rr.u0; t < rr.u1; t++ {
					for u := c.u0; u < c.u1; u += merged[ci] {
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
				g.border = append(g.border, borderColumn{i, o})
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
	p.gemmView()
	g := p.geometry()
	runs, rowRuns, border := g.runs, g.rowRuns, g.border
	nbl := len(p.blocks)
	xp := unsafe.Pointer(unsafe.SliceData(x))
	// tile runs kernel k on tiles tiles of its mr outputs starting at
	// output (r, o) of image n, the outputs spaced along a row (down =
	// false) or a column.
	tile := func(k convKernel, b ocBlock, tb []int, ic, n, r, o int, down bool, tiles int) {
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
		// The kernels prefetch the next block's weights into L2 while they
		// compute this one's: pf is the distance to them, this block's
		// size in bytes (0 for the last block).
		pf := 0
		if b.oc0+b.nb < p.OC {
			pf = p.KH * p.KW * p.C * b.nb * 4
		}
		k(xp, xoff, unsafe.Pointer(&p.wp[b.off]), unsafe.Pointer(&y[yi]), tp, len(tb)/2, ic, xs, ys, sc, sh, sk, skStride, floor, tiles, pf)
	}
	cm := runs[g.main]
	// mainRowSpan tiles outputs [o, o+left) of output row r of image n
	// along the row (the interior) for channel block bi, mainRow the whole
	// interior; borderColumn tiles border column o of image n (run c) down
	// the image.
	mainRowSpan := func(n, r, bi, o, left int) {
		b := p.blocks[bi]
		ks, tb, ic := p.k.conv[b.vi], g.table(g.rowOf[r], g.main, bi, nbl), g.ic[g.main]
		if g.row3 != nil {
			ks, tb, ic = p.k.row3[b.vi], g.row3[g.rowOf[r]*nbl+bi], p.C
		}
		for left > 0 {
			mr, t := equalTiles(left, len(ks))
			tile(ks[mr-1], b, tb, ic, n, r, o, false, t)
			o, left = o+t*mr, left-t*mr
		}
	}
	mainRow := func(n, r, bi int) { mainRowSpan(n, r, bi, cm.o0, cm.n) }
	borderCol := func(n int, bc borderColumn, bi int) {
		b := p.blocks[bi]
		o := bc.col
		for ri, rr := range rowRuns {
			tb := g.table(ri, bc.run, bi, nbl)
			for r, left := rr.o0, rr.n; left > 0; {
				mr, t := equalTiles(left, p.k.maxConv[b.vi])
				tile(p.k.conv[b.vi][mr-1], b, tb, g.ic[bc.run], n, r, o, true, t)
				r, left = r+t*mr, left-t*mr
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
	borders := func(n int, columns []borderColumn) {
		for _, bc := range columns {
			for bi := range p.blocks {
				borderCol(n, bc, bi)
			}
		}
	}
	if p.N >= 4*threads() {
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
		p.runSegments(cm, mainRowSpan)
		parallelFor(p.N*len(border), func(lo, hi int) {
			for job := lo; job < hi; job++ {
				borders(job/len(border), border[job%len(border):][:1])
			}
		})
	}
	if !p.prepacked {
		putBuf(p.wp)
	}
}

// gemmView turns a 1×1, stride-1, unpadded convolution whose output is
// stored densely into what it is, one matrix product: a single row of
// N·H·W pixels, so that its tiles are full-width everywhere instead of
// split at the end of each image row (a 14-pixel row takes tiles of 5, 5
// and 4 on AVX2, a 7-pixel one 4 and 3) and runSegments can block it for the
// caches.
func (p *convPlan) gemmView() {
	if p.KH != 1 || p.KW != 1 || p.SH != 1 || p.SW != 1 || p.OffH != 0 || p.OffW != 0 ||
		p.OH != p.H || p.OW != p.W || p.YH != p.OH || p.YW != p.OW || p.Y0H != 0 || p.Y0W != 0 ||
		p.YSH != 1 || p.YSW != 1 || p.N*p.H == 1 {
		return
	}
	m := p.N * p.H * p.W
	p.N, p.H, p.W, p.OH, p.OW, p.YH, p.YW = 1, 1, m, 1, m, 1, m
}

// segmentBytes bounds the input that one of runSegments' segments reads:
// with the packed weights of one channel block it stays in a core's L2
// cache (512 KB on the machines measured) while the block's tiles sweep
// it.
const segmentBytes = 192 << 10

// runSegments computes the interior (column run cm) of every output row
// when there are too few images to share out whole, in the jobs that
// segmenting lays out.
func (p *convPlan) runSegments(cm colRun, span func(n, r, bi, o, left int)) {
	g := p.segmenting(cm, 4*threads())
	nbl := len(p.blocks)
	parallelFor(g.segs*g.groups, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			sg, gr := j/g.groups, j%g.groups
			if g.byGroup {
				sg, gr = j%g.segs, j/g.segs
			}
			a, b := sg*g.seg, min((sg+1)*g.seg, g.total)
			for bi := gr * nbl / g.groups; bi < (gr+1)*nbl/g.groups; bi++ {
				if g.single {
					span(0, 0, bi, cm.o0+a, b-a)
					continue
				}
				for row := a; row < b; row++ {
					span(row/p.OH, row%p.OH, bi, cm.o0, cm.n)
				}
			}
		}
	})
}

// segmentation is how runSegments shares a plan's interior out: total
// outputs (rows, or pixels of the GEMM view's single row when single) in
// segs segments of seg, the channel blocks in groups, one job per segment
// and group, taken segment by segment or, when byGroup, group by group.
type segmentation struct {
	total, seg, segs, groups int
	single, byGroup          bool
}

// segmenting cuts the rows into segments whose input fits segmentBytes
// (runs of rows, or runs of pixels of the GEMM view's single row), and
// the channel blocks into groups when there are too few segments to make
// want jobs. A job's blocks run outside its tiles; consecutive jobs share
// the segment, so that it is read from memory once and from L2 for every
// block, and a goroutine reads only its groups' weights, where cutting the
// work by rows alone had every goroutine read all of them.
//
// Where the packed weights outweigh the input the segments read
// (ResNet-50's last stages at batch 1: 9.4 MB of weights against 0.6 MB
// of input for the 3×3 stride-2 layer), every segment costs a pass over
// its group's weights, which rereading the input from cache does not: the
// blocks then go in as many groups as there are jobs, over the fewest
// segments, and a goroutine's consecutive jobs take the same group (cut
// by input, the 3×3 stride-2 layer reads its weights four times; by
// groups, inside a batch-1 pass, it and ResNet-50's last stage's 1×1
// layers from 2048 channels run 15–25% faster).
func (p *convPlan) segmenting(cm colRun, want int) segmentation {
	nbl := len(p.blocks)
	rows := p.N * p.OH
	// unit is the number of outputs a segment grows by (a row, or a tile
	// of the single row), total how many there are, unitBytes the input
	// one of them reads.
	unit, total, unitBytes := 1, rows, p.W*p.C*4*max(p.KH, 1)
	if rows == 1 {
		unit, total = len(p.k.conv[p.blocks[0].vi]), cm.n
		unitBytes = unit * p.C * max(p.KH*p.KW, 1) * 4
	}
	g := segmentation{total: total, single: rows == 1}
	// cut sets segments of at least minSeg outputs, whole units, about n
	// of them.
	cut := func(n, minSeg int) {
		g.seg = max(minSeg, ((total+n-1)/n+unit-1)/unit*unit)
		g.segs = (total + g.seg - 1) / g.seg
	}
	if len(p.wp)*4 > total/unit*unitBytes {
		g.byGroup = true
		g.groups = min(nbl, want)
		cut((want+g.groups-1)/g.groups, unit)
		return g
	}
	g.seg = max(1, segmentBytes/max(unitBytes, 1)) * unit
	g.segs = (total + g.seg - 1) / g.seg
	g.groups = min(nbl, (want+g.segs-1)/g.segs)
	if g.segs*g.groups < want { // too few blocks: smaller segments (of two tiles at least)
		minSeg := unit
		if rows == 1 {
			minSeg = 2 * unit
		}
		cut((want+g.groups-1)/g.groups, minSeg)
	}
	return g
}

// maxCachedWeights is the size of packed weights (bytes) above which a
// plan keeps one output-channel block's weights in cache across rows
// rather than one input row across blocks.
const maxCachedWeights = 1 << 20

// equalTiles returns the size of the next tiles when n outputs remain
// and a tile holds at most maxMR (balanced's), and how many of them come
// in a row: one kernel call computes them all.
func equalTiles(n, maxMR int) (mr, tiles int) {
	// balanced cuts n into t tiles of mr or mr−1 outputs, the longer ones
	// first: n − t·(mr−1) of them.
	t := (n + maxMR - 1) / maxMR
	mr = (n + t - 1) / t
	return mr, n - t*(mr-1)
}

// balanced returns the size of the next tile when n outputs remain and a
// tile holds at most maxMR: the outputs are split into equal tiles, since a
// short last tile (a few accumulators) would wait on FMA latency.
func balanced(n, maxMR int) int {
	tiles := (n + maxMR - 1) / maxMR
	return (n + tiles - 1) / tiles
}
