//go:build amd64 && !purego

package kernels

import (
	"math"
	"unsafe"
)

// amxBF16Positions is about how many positions (output pixels and those
// computed and dropped) a task of convDirectAMXBF16 sweeps with one
// 32-channel block of weights before the next: amxGroup blocks of 32.
const amxBF16Positions = amxGroup * 32

// amxBF16OK reports whether convDirectAMXBF16 computes s (on a set with
// AMX tiles: bf16DirectSet.layout): AMX-BF16 is on, no horizontal
// dilation, and one stride both ways divides the padded image's pixels.
func amxBF16OK(s ConvShape) bool {
	h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
	return hasAMXBF16 && s.SH == s.SW && s.SH > 0 && h*wd%s.SH == 0 && s.DW == 1
}

// amxChannels is how many channels a pixel of s's staged input holds on
// AMX tiles: the fewest (even, at least C) that make a kernel row
// (KW·cp values) whole steps of 32; zeros past C.
func amxChannels(s ConvShape) int {
	cp := (s.C + 1) &^ 1
	for s.KW*cp%32 != 0 {
		cp += 2
	}
	return cp
}

// convDirectAMXBF16 is convDirectPlacedBF16's sweep on AMX tiles
// (amxBF16OK): with stride st, output pixel (oy, ox) of image n reads the
// padded input from pixel st·p on, p = n·h·wd/st + oy·wd + ox, each of
// the KH kernel rows KW·cp bfloat16 values in a row, DH padded rows
// apart. The 32 positions p of a tile are consecutive, their rows st·cp
// values apart, whatever image row they fall on; those past an output
// row's last pixel or an image's last row compute sums that are dropped.
// A task takes whole output rows, stages the padded rows they read as
// sweepDirect does (stage: bfloat16, zeros in the border), and after each
// group of tiles applies the epilogue to the runs of real outputs
// (epilogueTile), placed in y by pl. Some strided convolutions run by
// phases instead (phased, below), at stride 1 over each phase's pixels.
func convDirectAMXBF16(s ConvShape, wp []uint32, y []float32, ep *convEpilogue, pl outPlace, stage func([]uint16, int, int), cp, nb, blockPairs int) {
	oh, ow, st := s.OH(), s.OW(), s.SH
	if s.N*oh*ow == 0 {
		return
	}
	h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
	img, rw := h*wd/st, wd // positions an image, and a row
	rowElems := wd * cp
	taps := make([]int, s.KH) // the kernel rows' byte offsets
	for ky := range taps {
		taps[ky] = 2 * ky * s.DH * rowElems
	}
	chunks, lda := s.KW*cp/32, 2*st*cp
	// A strided convolution whose pixels are whole steps runs by phases,
	// as int8ConvAMXStaged does: each task gathers the st² phases of the
	// padded rows it staged (stagePhasesBF16), phase (ry, rx) holding
	// padded pixels (st·py + ry, st·px + rx) as an image of hp×rw pixels,
	// and the tiles run at stride 1 over positions n·hp·rw + oy·rw + ox
	// with a tap a kernel pixel, in the phase it reads. Only the positions
	// past OW in a row and OH in an image are dropped, where the strided
	// sweep dropped more than half. The products are the same, in the
	// same order (a kernel row's taps are its whole steps), so the outputs
	// are the strided sweep's bit for bit; but the output statistics of a
	// training forward pass, summed a group of positions at a time in
	// float32, would be grouped otherwise, and those stay with the strided
	// sweep (as do pixels of fewer than 32 values and dilated rows).
	phased := phasedBF16 && st > 1 && cp%32 == 0 && s.DH == 1 && ep.stats == nil
	var hp, reachP int
	ntaps := len(taps)
	if phased {
		hp, rw = oh+(s.KH-1)/st, ow+(s.KW-1)/st
		img = hp * rw
		reachP = (s.KH-1)/st*rw + (s.KW-1)/st + 1 // phase pixels a position reads from its own on
		chunks, lda, ntaps = cp/32, 2*cp, s.KH*s.KW
	}
	placed := pl != unplaced(s)
	ys := pl.YSW * s.OC
	if ep.stats != nil && !placed && streamedOutput(y[:s.N*oh*ow*s.OC]) {
		ep.stream = true // ep is this call's (epilogueOf's), as stats are asked only of a forward call
	}
	cfg := unsafe.Pointer(&amxConfig[0])
	d := splitDirect(s.N*oh, max(1, amxBF16Positions/ow))
	// Each task's output statistics, where asked (ep.stats), and their
	// means and M2s: assigned once here, so that the closure below holds
	// them as they are instead of moving them to the heap.
	moments, momentBuf := newTaskMoments(ep.stats != nil, d.tasks(), s.OC)
	if momentBuf != nil {
		defer sumPool.Put(momentBuf)
	}
	// A data gradient's batch norm sums, where asked (ep.gradSums): each
	// task's, 2·OC float64s, added up in task order at the end.
	gs := gradSumsOf(ep, s, s.N*oh*ow*s.OC, placed)
	var taskSums []float64
	if gs != nil {
		taskSums = sumPool.Get(2 * s.OC * d.tasks())
		clear(taskSums)
		defer sumPool.Put(taskSums)
	}
	tp := unsafe.Pointer(&taps[0])
	var region int // a phase's pixels in a task's buffer: the longest task's positions and their reach
	if phased {
		for task := range d.tasks() {
			if r0, r1 := d.span(task); r0 < r1 {
				pos0, pos1 := taskPositions(r0, r1, oh, ow, img, rw)
				region = max(region, (pos1-pos0+31)/32*32+reachP)
			}
		}
		ptaps := make([]int, s.KH*s.KW)
		for ky := range s.KH {
			for kx := range s.KW {
				ptaps[ky*s.KW+kx] = 2 * cp * ((ky%st*st+kx%st)*region + ky/st*rw + kx/st)
			}
		}
		tp = unsafe.Pointer(&ptaps[0])
	}
	parallelChunks(d.tasks(), d.k, func(task0, task1 int) {
		acc := getBuf(amxGroup * 32 * 32)
		defer putBuf(acc)
		for task := task0; task < task1; task++ {
			r0, r1 := d.span(task)
			if r0 >= r1 {
				continue
			}
			n0, oy0, n1, oy1 := r0/oh, r0%oh, (r1-1)/oh, (r1-1)%oh
			pos0, pos1 := taskPositions(r0, r1, oh, ow, img, rw)
			blocks := (pos1 - pos0 + 31) / 32
			// The padded rows the outputs read; the last block's positions
			// past pos1 read on into zeros.
			p0, p1 := n0*h+oy0*st, n1*h+oy1*st+(s.KH-1)*s.DH+1
			staged := (p1 - p0) * rowElems
			reach := st*cp*(32*blocks-1) + taps[s.KH-1]/2 + s.KW*cp // the strided sweep's reads
			if phased {
				reach = staged // the phases are gathered from the rows
			}
			bb := getBytes(2 * max(staged, reach))
			buf := u16Of(bb)[:max(staged, reach)]
			stage(buf[:staged], p0*rowElems, p1*rowElems)
			clear(buf[staged:])
			if phased {
				pb := getBytes(2 * st * st * region * cp)
				rows := buf[:staged]
				buf = u16Of(pb)[:st*st*region*cp]
				stagePhasesBF16(s, rows, p0, buf, pos0, 32*blocks+reachP, region, hp, rw, cp)
				putBytes(bb)
				bb = pb
			}
			var tm *taskMoments
			var bm *blockMoments
			if moments != nil {
				tm = &moments[task]
				tm.n, tm.mean, tm.m2 = (r1-r0)*ow, momentBuf[2*task*s.OC:][:s.OC], momentBuf[(2*task+1)*s.OC:][:s.OC]
				bm = &tm.block
			}
			for b := range nb {
				c0 := b * 32
				nc := min(32, s.OC-c0)
				if bm != nil {
					*bm = blockMoments{}
				}
				var part [64]float32 // the group's gradient sums, as the batch norm kernels lay them out for nc channels
				for g := 0; g < blocks; g += amxGroup {
					gb := min(amxGroup, blocks-g)
					q0 := pos0 + 32*g
					a, bw := unsafe.Pointer(&buf[lda/2*32*g]), unsafe.Pointer(&wp[b*blockPairs])
					if nc <= 16 { // half the products (CIFAR's 16-channel layers)
						amxBF16Conv32Left(cfg, a, lda, bw, chunks, unsafe.Pointer(&acc[0]), gb, tp, ntaps)
					} else {
						amxBF16Conv32(cfg, a, lda, bw, chunks, unsafe.Pointer(&acc[0]), gb, tp, ntaps)
					}
					for p, end := q0, min(q0+32*gb, pos1); p < end; {
						n, r := p/img, p%img
						oy, ox := r/rw, r%rw
						switch {
						case oy >= oh: // past the image's last output row
							p = (n + 1) * img
							continue
						case ox >= ow: // past the row's last output (an image's positions need not be whole rows)
							p = min(p+rw-ox, (n+1)*img)
							continue
						}
						run := min(ow-ox, end-p)
						m := (n*oh+oy)*ow + ox
						if placed {
							m = pl.pixel(oh, ow, m)
						}
						ep.epilogueTile(acc[(p-q0)*32:], m*s.OC+c0, run, ys, c0, nc, y)
						if bm != nil {
							bm.add(acc[(p-q0)*32:], run) // the stored outputs: the epilogue is the identity
						}
						if gs != nil { // the stored gradient, in cache
							at := m*s.OC + c0
							last := at + (run-1)*s.OC + nc - 1
							_, _ = gs.X[last], y[last]
							if gs.Mask != nil {
								chanDyStatsMask512(unsafe.Pointer(&gs.X[at]), unsafe.Pointer(&y[at]), nil, run, nc, s.OC,
									unsafe.Pointer(&gs.Mean[c0]), unsafe.Pointer(&gs.Mask.Scale[c0]), unsafe.Pointer(&gs.Mask.Shift[c0]), unsafe.Pointer(&part[0]))
							} else { // the mask from the stored output; g stored over the gradient
								_ = gs.Y[last]
								chanDyStats512(unsafe.Pointer(&gs.X[at]), unsafe.Pointer(&y[at]), unsafe.Pointer(&gs.Y[at]), unsafe.Pointer(&y[at]), run, nc, s.OC,
									unsafe.Pointer(&gs.Mean[c0]), unsafe.Pointer(&part[0]))
							}
						}
						p += run
					}
					if bm != nil {
						bm.fold() // at most 32·amxGroup = 256 outputs a fold
					}
					if gs != nil { // as often
						ts := taskSums[2*s.OC*task:][:2*s.OC]
						for j := range nc {
							ts[c0+j] += float64(part[j])
							ts[s.OC+c0+j] += float64(part[nc+j])
						}
						part = [64]float32{}
					}
				}
				if bm != nil {
					bm.moments(tm.mean[c0:c0+nc], tm.m2[c0:c0+nc])
				}
			}
			putBytes(bb)
		}
	})
	if moments != nil {
		mergeMoments(ep.stats, s.OC, moments)
	}
	if gs != nil {
		sums := make([]float64, 2*s.OC)
		for task := range d.tasks() {
			for j, v := range taskSums[2*s.OC*task:][:2*s.OC] {
				sums[j] += v
			}
		}
		gs.Sums, gs.Done = sums, true
	}
}

// taskPositions returns the positions [pos0, pos1) that convDirectAMXBF16
// sweeps for output rows [r0, r1) (over the batch; oh rows of ow outputs
// an image), img positions an image and rw a row.
func taskPositions(r0, r1, oh, ow, img, rw int) (pos0, pos1 int) {
	n0, oy0, n1, oy1 := r0/oh, r0%oh, (r1-1)/oh, (r1-1)%oh
	return n0*img + oy0*rw, n1*img + oy1*rw + ow
}

// gradSumsOf returns ep.gradSums where convDirectAMXBF16 fills them for
// its output y of n elements (s the data gradient's turned shape, placed
// whether its outputs are placed), else nil: unplaced, channels a
// multiple of 16 (the batch norm kernels') and fewer than wideRow, one
// mask source, and operands that fit. Wider rows are left to the batch
// norm's pass, which walks them left to right: down a block's channels
// the rows' lines fall in few cache sets, and ResNet-50's training step
// with its block outputs (256 to 2,048 channels) summed so was 5–7%
// slower (three alternated rounds of residual bench resnet50-train-bf16).
func gradSumsOf(ep *convEpilogue, s ConvShape, n int, placed bool) *DataGradSums {
	gs := ep.gradSums
	if gs == nil || placed || s.OC%16 != 0 || s.OC >= wideRow || len(gs.X) < n || len(gs.Mean) < s.OC {
		return nil
	}
	switch {
	case gs.Mask != nil && gs.Y == nil:
		if len(gs.Mask.Scale) < s.OC || len(gs.Mask.Shift) < s.OC {
			return nil
		}
	case gs.Mask == nil && len(gs.Y) >= n:
	default:
		return nil
	}
	return gs
}

// blockMoments accumulates a task's statistics of a block of 32 output
// channels from the tiles of sums it stores (convDirectAMXBF16), about a
// shift k, the block's first output (0 where that is not finite: an
// infinite shift would make every deviation NaN).
type blockMoments struct {
	k      [32]float32
	part   [64]float32 // since the last fold: Σ (y − k)² in [0, 32), Σ (y − k) in [32, 64) (chanShiftStats512's sums)
	s2, s1 [32]float64
	n      int
}

// add accumulates rows rows of 32 values (a tile's, rows 32 floats apart).
func (bm *blockMoments) add(tile []float32, rows int) {
	_ = tile[rows*32-1]
	if bm.n == 0 {
		for j, v := range tile[:32] {
			if !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) {
				bm.k[j] = v
			}
		}
	}
	use.vk.shiftStats(unsafe.Pointer(&tile[0]), rows, 32, unsafe.Pointer(&bm.k[0]), unsafe.Pointer(&bm.part[0]))
	bm.n += rows
}

// fold adds the float32 partial sums to the float64 ones.
func (bm *blockMoments) fold() {
	for j := range 32 {
		bm.s2[j] += float64(bm.part[j])
		bm.s1[j] += float64(bm.part[32+j])
	}
	bm.part = [64]float32{}
}

// moments writes the mean and the sum of squared deviations from it of
// the block's first len(mean) channels.
func (bm *blockMoments) moments(mean, m2 []float64) {
	n := float64(bm.n)
	for j := range mean {
		d := bm.s1[j] / n
		mean[j] = float64(bm.k[j]) + d
		m2[j] = max(bm.s2[j]-n*d*d, 0)
	}
}

// taskMoments are the statistics of one task's n outputs
// (convDirectAMXBF16): per channel their mean and Σ (y − mean)², and the
// sums of the block of channels the task is at.
type taskMoments struct {
	n        int
	mean, m2 []float64
	block    blockMoments
}

// newTaskMoments returns, where asked, the statistics of tasks tasks of oc
// channels and the pooled buffer behind their means and M2s (sumPool.Put
// it); nils otherwise.
func newTaskMoments(asked bool, tasks, oc int) ([]taskMoments, []float64) {
	if !asked {
		return nil, nil
	}
	return make([]taskMoments, tasks), sumPool.Get(2 * oc * tasks)
}

// mergeMoments writes the statistics of all the tasks' outputs to st: the
// mean the tasks' means weighted by their shares of the outputs, then M2
// the tasks' M2s plus each task's count times the square of its mean's
// distance from the whole mean (the two-pass form of Chan et al.'s
// pairwise update, in the tasks' order). Infinite outputs give what the
// batch norm's own sums give: a mean of ±Inf where they are all of one
// sign, else NaN (an incremental update, Inf − Inf, made it NaN either
// way).
func mergeMoments(st *ConvStats, oc int, tasks []taskMoments) {
	both := make([]float64, 2*oc)
	mean, m2 := both[:oc:oc], both[oc:]
	n := 0
	for _, t := range tasks {
		n += t.n
	}
	for _, t := range tasks {
		if t.n == 0 {
			continue
		}
		w := float64(t.n) / float64(n)
		for j := range oc {
			mean[j] += w * t.mean[j]
		}
	}
	for _, t := range tasks {
		if t.n == 0 {
			continue
		}
		for j := range oc {
			d := t.mean[j] - mean[j]
			m2[j] += t.m2[j] + float64(t.n)*d*d
		}
	}
	st.N, st.Mean, st.M2, st.Done = n, mean, m2, true
}

// amxGradChunk is the most positions convBackwardWeightAMXBF16 stages at a
// time; amxGradChunkBytes bounds a chunk's transposed dy (all output
// channels), so that the chunk's dy and x stay in the core's cache while
// every tile of the weight gradient runs over them.
const (
	amxGradChunk      = 512
	amxGradChunkBytes = 256 << 10
)

// amxGradOK reports whether convBackwardWeightAMXBF16 computes s's weight
// gradient: AMX-BF16 is on and one stride both ways divides the padded
// image's pixels.
func amxGradOK(s ConvShape) bool {
	h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
	return hasAMXBF16 && bf16NativeOn() && s.SH == s.SW && s.SH > 0 && h*wd%s.SH == 0
}

// convBackwardWeightAMXBF16 computes dw = ConvBackwardWeight with
// bfloat16 operands on AMX tiles, where amxGradOK, reporting whether it
// did; a shape whose rows unfold (unfoldedBF16) as its unfolded shape.
// The input is xIn's float32 values (through its map where it has one);
// the output gradient dyIn's float32 values, or its bfloat16 ones (xb),
// which are paired as they are.
//
// It pairs images as convBackwardWeightNativeBF16 does, so that a tile's
// K pairs are two images at one pixel, and takes convDirectAMXBF16's
// positions (output (oy, ox) of image pair i at p = i·h·wd/st + oy·wd +
// ox): with xp the padded image pairs ([⌈N/2⌉][h][wd][C], zeros in the
// border) and dyt dy's image pairs transposed ([OC][positions], zeros at
// the positions that are no output), dW[tap][c][oc] = Σ_p dyt[oc][p] ·
// xp[st·p + tap][c]: 32 rows of dyt by 32 channels of xp read in place
// with rows st·C pairs apart, one 32×32 tile for each block of output
// channels, tap and block of input channels. Neither is built whole: a
// chunk of positions at a time, its dyt columns and the xp pixels its
// taps read are staged into buffers that stay in cache (stageDYChunk,
// pairPixels), and every tile runs over them. Goroutines take chunks,
// each adding its own tiles, summed at the end in the chunks' order; a
// gradient of fewer chunks than goroutines, or of tiles too large to keep
// a copy a goroutine (amxGradChunkBytes), is split by tiles instead, each
// goroutine staging every chunk (of dy, its own output blocks). The last blocks of channel counts
// that are not multiples of 32 read on into the next pixel's channels
// (xp) or what follows dy's (dyt): their tiles' extra rows and columns
// are dropped.
func convBackwardWeightAMXBF16(s0 ConvShape, xIn, dyIn bf16Input, dw []float32) bool {
	if !amxGradOK(s0) {
		return false
	}
	// The tiles compute s: s0, or s0 with its rows unfolded, whose weight
	// gradient has s0's layout (unfoldedBF16).
	s, unfolded := unfoldedBF16(s0)
	oh, ow, st := s.OH(), s.OW(), s.SH
	h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
	np := (s.N + 1) / 2
	img := h * wd / st
	npos := (np*img + 15) &^ 15
	taps := make([]int, 0, s.KH*s.KW)
	for ky := range s.KH {
		for kx := range s.KW {
			taps = append(taps, 4*(ky*s.DH*wd+kx*s.DW)*s.C)
		}
	}
	if s.N*oh*ow == 0 {
		clear(dw[:s.KH*s.KW*s.C*s.OC])
		return true
	}
	no, nc := (s.OC+31)/32, (s.C+31)/32 // blocks of 32 channels
	ntaps := len(taps)
	tileLen := no * nc * ntaps * 1024
	// chunkFor is the positions a chunk of blocks output blocks of dy.
	chunkFor := func(blocks int) int { return min(amxGradChunk, max(16, amxGradChunkBytes/(4*32*blocks)&^15)) }
	chunk := chunkFor(no)
	nch := (npos + chunk - 1) / chunk
	byChunks := nch >= threads() && 4*tileLen <= amxGradChunkBytes || no*nc == 1
	if !byChunks { // a goroutine stages its share of the output blocks
		pu, _ := chunkingBy(no*nc, 1)
		chunk = chunkFor((no + pu - 1) / pu)
		nch = (npos + chunk - 1) / chunk
	}
	// The pixels of xp a chunk reads: st per position, the last tap's
	// reach, and the next pixel where a block of 32 channels runs past C.
	span := st*(chunk-1) + taps[ntaps-1]/(4*s.C) + 1 + (32*nc-1)/s.C
	xs := pairPixels{s0: s0, s: s, unfolded: unfolded, x: xIn.x, in: xIn.in, xb: xIn.xb, np: np, h: h, wd: wd}
	cfg := unsafe.Pointer(&amxConfig[0])

	// run adds chunks [c0, c1) of units [u0, u1) (output block u/nc, input
	// block u%nc, its taps' tiles acc[u][tap][32][32], oc by c) to acc,
	// writing them at the first chunk.
	run := func(c0, c1, u0, u1 int, acc []float32) {
		ob0, ob1 := u0/nc, (u1-1)/nc+1 // the output blocks of the units
		db, xb := getBuf(32*no*chunk), getBuf(span*s.C)
		defer putBuf(db)
		defer putBuf(xb)
		dyc, xc := pairsOf(db), pairsOf(xb)
		var scratch pairScratch
		defer scratch.free()
		for c := c0; c < c1; c++ {
			p0, p1 := c*chunk, min((c+1)*chunk, npos)
			stageDYChunk(dyc, chunk, dyIn, s, np, img, wd, p0, p1, ob0, ob1, &scratch)
			xs.fill(xc, st*p0, st*p0+span, &scratch)
			for u := u0; u < u1; u++ {
				ob, cb := u/nc, u%nc
				a, b := unsafe.Pointer(&dyc[ob*32*chunk]), unsafe.Pointer(&xc[cb*32])
				if s.OC-32*ob <= 16 && s.C-32*cb <= 16 { // a quarter of the products
					amxBF16Grad16(cfg, a, 4*chunk, b, 4*st*s.C, (p1-p0)/16, unsafe.Pointer(&acc[u*ntaps*1024]), unsafe.Pointer(&taps[0]), ntaps, c > c0)
					continue
				}
				amxBF16Grad32(cfg, a, 4*chunk, b, 4*st*s.C, (p1-p0)/16, unsafe.Pointer(&acc[u*ntaps*1024]), unsafe.Pointer(&taps[0]), ntaps, c > c0)
			}
		}
	}
	var acc []float32
	if byChunks {
		// By chunks: each goroutine its own tiles (at its first chunk's
		// index), summed in the chunks' order.
		parts := make([][]float32, nch)
		parallelForEach(nch, func(lo, hi int) {
			parts[lo] = getBuf(tileLen)
			run(lo, hi, 0, no*nc, parts[lo])
		})
		for _, part := range parts {
			switch {
			case part == nil:
			case acc == nil:
				acc = part
			default:
				Add(acc, part, acc)
				putBuf(part)
			}
		}
	} else {
		acc = getBuf(tileLen)
		parallelForEach(no*nc, func(lo, hi int) { run(0, nch, lo, hi, acc) })
	}
	defer putBuf(acc)

	// dw[tap][c][oc] from the tiles, each four 16×16 blocks transposed.
	_ = dw[ntaps*s.C*s.OC-1]
	parallelFor(no*nc*ntaps, func(lo, hi int) {
		for v := lo; v < hi; v++ {
			u, t := v/ntaps, v%ntaps
			ob, cb := u/nc, u%nc
			var part [16 * 16]float32
			for q := range 4 {
				c0, o0 := cb*32+q%2*16, ob*32+q/2*16
				rows, cols := min(16, s.C-c0), min(16, s.OC-o0)
				if rows <= 0 || cols <= 0 {
					continue
				}
				src := unsafe.Pointer(&acc[v*1024+q/2*16*32+q%2*16])
				if rows == 16 {
					transpose16x16(unsafe.Pointer(&dw[(t*s.C+c0)*s.OC+o0]), 4*s.OC, src, 128, uint16(1<<cols-1))
					continue
				}
				transpose16x16(unsafe.Pointer(&part[0]), 64, src, 128, 0xffff)
				for r := range rows {
					copy(dw[(t*s.C+c0+r)*s.OC+o0:][:cols], part[r*16:])
				}
			}
		}
	})
	return true
}

// pairScratch holds a goroutine's row buffers for staging pairs.
type pairScratch struct{ row, pad []float32 }

// get returns the scratch buffer *b, at least n long.
func (p *pairScratch) get(b *[]float32, n int) []float32 {
	if len(*b) < n {
		if *b != nil {
			putBuf(*b)
		}
		*b = getBuf(n)
	}
	return (*b)[:n]
}

// free gives the buffers back to the pool.
func (p *pairScratch) free() {
	for _, b := range [][]float32{p.row, p.pad} {
		if b != nil {
			putBuf(b)
		}
	}
}

// pairPixels stages pixels of xp, the padded image pairs of s's input
// ([np][h][wd][s.C] pairs: s0's x, or in's outputs for it where in is not
// nil, its rows unfolded where unfolded).
type pairPixels struct {
	s0, s     ConvShape
	unfolded  bool
	x         []float32
	in        *ReLUAffine
	xb        []uint16 // where not nil, the input in bfloat16 (x unused): its words paired as they are
	np, h, wd int
}

// pair writes to d the pairs of the row of s0's input pixels at element
// off of image pair i's first image (and of its second, or zeros past
// the last image), n values from element lo of the row.
func (px *pairPixels) pair(d []uint32, i, off, lo, n int) {
	s0 := px.s0
	second := 2*i+1 < s0.N
	per := s0.H * s0.W * s0.C // an image's values
	a0 := 2*i*per + off + lo
	if px.xb != nil {
		var b []uint16
		if second {
			b = px.xb[a0+per : a0+per+n]
		}
		pairWords(d[:n], px.xb[a0:a0+n], b)
		return
	}
	var b []float32
	if second {
		b = px.x[a0+per : a0+per+n]
	}
	pairOrZeroOf(d[:n], px.x[a0:a0+n], b, px.in, s0.C)
}

// fill writes pixels [q0, q1) of xp (counted through the stacked image
// pairs; zeros past the last) to dst.
func (px *pairPixels) fill(dst []uint32, q0, q1 int, sc *pairScratch) {
	s, s0 := px.s, px.s0
	rowLen := s0.W * s0.C
	for q := q0; q < q1; {
		r, col := q/px.wd, q%px.wd // padded row r of the stack
		n := min(px.wd-col, q1-q)  // pixels of it to fill
		out := dst[(q-q0)*s.C : (q-q0+n)*s.C]
		q += n
		i, iy := r/px.h, r%px.h-s.PT
		if i >= px.np || iy < 0 || iy >= s.H {
			clear(out)
			continue
		}
		off := iy * rowLen // the row's first element in its image
		if px.unfolded {
			// s0's padded row of pairs, then each unfolded pixel's KW·C pairs.
			wd0 := s0.W + s0.PL + s0.PR
			pad := pairsOf(sc.get(&sc.pad, wd0*s0.C))
			clear(pad[:s0.PL*s0.C])
			clear(pad[(s0.PL+s0.W)*s0.C:])
			px.pair(pad[s0.PL*s0.C:], i, off, 0, s0.W*s0.C)
			spreadRuns(unsafe.Pointer(&out[0]), 4*s.C, unsafe.Pointer(&pad[col*s0.C]), 4*s0.C, n, 4*s.C, 4*s.C)
			continue
		}
		// Columns [col, col+n): the left border, the image's, the right border.
		in0, in1 := max(col, s.PL), min(col+n, s.PL+s.W)
		if in0 >= in1 {
			clear(out)
			continue
		}
		clear(out[:(in0-col)*s.C])
		px.pair(out[(in0-col)*s.C:], i, off, (in0-s.PL)*s.C, (in1-in0)*s.C)
		clear(out[(in1-col)*s.C:])
	}
}

// stageDYChunk writes positions [p0, p1) of dyt ([OC][positions] pairs,
// OC rounded up to 16: rows past OC hold what follows the channels,
// dropped later; zeros at the positions that are no output) to dyc, rows
// stride pairs apart, column p − p0: the bfloat16 pairs of dy's images 2i
// and 2i+1 (a zero image past an odd batch; from dyIn's float32 values,
// or its bfloat16 ones as they are) at output (oy, ox), position
// p = i·img + oy·wd + ox. Each output row the chunk meets is paired into a
// buffer and transposed by blocks of 16 pixels × 16 channels
// (transpose16x16). Only the rows of output blocks [ob0, ob1) (32
// channels each) are written.
func stageDYChunk(dyc []uint32, stride int, dyIn bf16Input, s ConvShape, np, img, wd, p0, p1, ob0, ob1 int, sc *pairScratch) {
	oh, ow := s.OH(), s.OW()
	b0, b1 := 2*ob0, min(2*ob1, (s.OC+15)/16) // blocks of 16: the last may read on into the next pixel, or zeros
	for r := b0 * 16; r < 2*ob1*16; r++ {
		clear(dyc[r*stride : r*stride+p1-p0])
	}
	rowLen := ow * s.OC
	var blk [16 * 16]uint32
	// The output rows whose positions meet [p0, p1).
	for i := p0 / img; i < np && i*img < p1; i++ {
		oy0 := max(0, (p0-i*img)/wd)
		for oy := oy0; oy < oh; oy++ {
			start := i*img + oy*wd
			if start >= p1 {
				break
			}
			ox0, ox1 := max(0, p0-start), min(ow, p1-start) // its outputs in the chunk
			if ox0 >= ox1 {
				continue
			}
			pr := pairsOf(sc.get(&sc.row, rowLen+16))
			clear(pr[rowLen:])
			ra, rb := ((2*i)*oh+oy)*rowLen, ((2*i+1)*oh+oy)*rowLen // images 2i and 2i+1's row
			lo, hi := ox0*s.OC, ox1*s.OC
			if dyb := dyIn.xb; dyb != nil { // already bfloat16
				var b []uint16
				if 2*i+1 < s.N {
					b = dyb[rb+lo : rb+hi]
				}
				pairWords(pr[lo:hi], dyb[ra+lo:ra+hi], b)
			} else {
				var b []float32
				if 2*i+1 < s.N {
					b = dyIn.x[rb+lo : rb+hi]
				}
				pairOrZero(pr[lo:hi], dyIn.x[ra+lo:ra+hi], b)
			}
			for ob := b0; ob < b1; ob++ {
				for ox := ox0; ox < ox1; ox += 16 {
					n := min(16, ox1-ox)
					src, srcStride := unsafe.Pointer(&pr[ox*s.OC+ob*16]), 4*s.OC
					if n < 16 { // the last pixels: their block, read from a copy
						for k := range n {
							copy(blk[k*16:k*16+16], pr[(ox+k)*s.OC+ob*16:])
						}
						src, srcStride = unsafe.Pointer(&blk[0]), 64
					}
					_ = dyc[(ob*16+15)*stride+start+ox+n-1-p0]
					transpose16x16(unsafe.Pointer(&dyc[ob*16*stride+start+ox-p0]), 4*stride, src, srcStride, uint16(1<<n-1))
				}
			}
		}
	}
}

// convUnfoldedAMXBF16 computes the convolution u (unfoldedBF16 of s) on
// AMX tiles, from s's input x and u's packed weights wp, unfolding x's
// rows as it stages them: a padded row of s is converted to bfloat16 and
// unfolded pixel q is its KW·C values from pixel q on, zeros after them
// up to u's cp (spreadRuns).
func convUnfoldedAMXBF16(s, u ConvShape, x []float32, in *ReLUAffine, wp []uint32, y []float32, ep *convEpilogue) {
	l := bf16DirectKernels.layout(u)
	wd := s.W + s.PL + s.PR
	stage := func(dst []uint16, e0, e1 int) {
		sb := getBytes(2 * wd * s.C)
		defer putBytes(sb)
		pad := u16Of(sb)[:wd*s.C]
		clear(pad)
		stageRows(s, dst, e0, e1, u.W*l.cp, func(row []uint16, off int) {
			toBF16Of(pad[s.PL*s.C:(s.PL+s.W)*s.C], x[off:off+s.W*s.C], in, s.C)
			spreadRuns(unsafe.Pointer(&row[0]), 2*l.cp, unsafe.Pointer(&pad[0]), 2*s.C, u.W, 2*u.C, 2*l.cp)
		})
	}
	nb := (u.OC + l.nr - 1) / l.nr
	convDirectAMXBF16(u, wp, y, ep, unplaced(u), stage, l.cp, nb, u.KH*u.KW*l.cp/2*l.nr)
}

// phasedBF16 lets convDirectAMXBF16 sweep strided convolutions by phases
// (tests turn it off to compare the two sweeps).
var phasedBF16 = true

// stagePhasesBF16 gathers, for a phased sweep of convDirectAMXBF16 (stride
// st = s.SH = s.SW), phase pixels [q0, q0+count) of each of the st²
// phases into dst (phase k's at k·region pixels of cp values, region ≥
// count): phase (ry,
// rx) pixel q, position (n, py, px) of images of hp×rw pixels, is padded
// pixel (st·py + ry, st·px + rx) of image n, read from rows, the padded
// rows from p0 on (over the batch) that the task staged, rowElems = wd·cp
// values each; zeros past the padded image and outside the staged rows
// (which only positions that are dropped read). Phases that no tap reads
// (rx ≥ KW: the unfolded stem's) are left as they are.
func stagePhasesBF16(s ConvShape, rows []uint16, p0 int, dst []uint16, q0, count, region, hp, rw, cp int) {
	st := s.SH
	h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
	rowElems := wd * cp
	staged := len(rows) / rowElems
	for ry := range min(st, s.KH) { // the phases a tap reads: ky = ry, kx = rx read them
		for rx := range min(st, s.KW) {
			out := dst[(ry*st+rx)*region*cp:][:count*cp]
			for q := q0; q < q0+count; {
				n, r := q/(hp*rw), q%(hp*rw)
				py, px := r/rw, r%rw
				run := min(rw-px, q0+count-q) // pixels to the phase row's end
				o := out[(q-q0)*cp : (q-q0+run)*cp]
				q += run
				y := st*py + ry
				if n >= s.N || y >= h || n*h+y-p0 < 0 || n*h+y-p0 >= staged {
					clear(o)
					continue
				}
				// The run's pixels inside the padded row, every st-th from
				// st·px + rx (cp values, whole 16-float vectors), then zeros.
				in := min(max((wd-rx-st*px+st-1)/st, 0), run)
				if in > 0 {
					src := rows[(n*h+y-p0)*rowElems:][:rowElems]
					_ = src[(st*(px+in-1)+rx+1)*cp-1]
					copyRows(unsafe.Pointer(&o[0]), unsafe.Pointer(&src[(st*px+rx)*cp]), in, cp/32, 2*cp, 2*st*cp)
				}
				clear(o[in*cp:])
			}
		}
	}
}
