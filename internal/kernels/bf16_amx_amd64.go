//go:build amd64 && !purego

package kernels

import "unsafe"

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
// (amxBF16OK), int8ConvAMXPadded's counterpart: with stride st, output
// pixel (oy, ox) of image n reads the padded input from pixel st·p on,
// p = n·h·wd/st + oy·wd + ox, each of the KH kernel rows KW·cp bfloat16
// values in a row, DH padded rows apart. The 32 positions p of a tile are
// consecutive, their rows st·cp values apart, whatever image row they fall
// on; those past an output row's last pixel or an image's last row
// compute sums that are dropped. A task takes whole output rows, stages
// the padded rows they read as sweepDirect does (stage: bfloat16, zeros
// in the border), and after each group of tiles applies the epilogue to
// the runs of real outputs (epilogueTile), placed in y by pl.
func convDirectAMXBF16(s ConvShape, wp []uint32, y []float32, ep *convEpilogue, pl outPlace, stage func([]uint16, int, int), cp, nb, blockPairs int) {
	oh, ow, st := s.OH(), s.OW(), s.SH
	if s.N*oh*ow == 0 {
		return
	}
	h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
	img := h * wd / st // positions an image
	rowElems := wd * cp
	taps := make([]int, s.KH) // the kernel rows' byte offsets
	for ky := range taps {
		taps[ky] = 2 * ky * s.DH * rowElems
	}
	chunks, lda := s.KW*cp/32, 2*st*cp
	placed := pl != unplaced(s)
	ys := pl.YSW * s.OC
	cfg := unsafe.Pointer(&amxConfig[0])
	d := splitDirect(s.N*oh, max(1, amxBF16Positions/ow))
	parallelChunks(d.tasks(), d.k, func(task0, task1 int) {
		acc := getBuf(amxGroup * 32 * 32)
		defer putBuf(acc)
		for task := task0; task < task1; task++ {
			r0, r1 := d.span(task)
			if r0 >= r1 {
				continue
			}
			n0, oy0, n1, oy1 := r0/oh, r0%oh, (r1-1)/oh, (r1-1)%oh
			pos0, pos1 := n0*img+oy0*wd, n1*img+oy1*wd+ow // the task's positions
			blocks := (pos1 - pos0 + 31) / 32
			// The padded rows the outputs read; the last block's positions
			// past pos1 read on into zeros.
			p0, p1 := n0*h+oy0*st, n1*h+oy1*st+(s.KH-1)*s.DH+1
			staged := (p1 - p0) * rowElems
			reach := st*cp*(32*blocks-1) + taps[s.KH-1]/2 + s.KW*cp
			bb := getBytes(2 * max(staged, reach))
			buf := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(bb))), max(staged, reach))
			stage(buf[:staged], p0*rowElems, p1*rowElems)
			clear(buf[staged:])
			for b := range nb {
				c0 := b * 32
				nc := min(32, s.OC-c0)
				for g := 0; g < blocks; g += amxGroup {
					gb := min(amxGroup, blocks-g)
					q0 := pos0 + 32*g
					amxBF16Conv32(cfg, unsafe.Pointer(&buf[st*cp*32*g]), lda, unsafe.Pointer(&wp[b*blockPairs]), chunks, unsafe.Pointer(&acc[0]), gb, unsafe.Pointer(&taps[0]), len(taps))
					for p, end := q0, min(q0+32*gb, pos1); p < end; {
						n, r := p/img, p%img
						oy, ox := r/wd, r%wd
						switch {
						case oy >= oh: // past the image's last output row
							p = (n + 1) * img
							continue
						case ox >= ow: // past the row's last output (an image's positions need not be whole rows)
							p = min(p+wd-ox, (n+1)*img)
							continue
						}
						run := min(ow-ox, end-p)
						m := (n*oh+oy)*ow + ox
						if placed {
							m = pl.pixel(oh, ow, m)
						}
						ep.epilogueTile(acc[(p-q0)*32:], m*s.OC+c0, run, ys, c0, nc, y)
						p += run
					}
				}
			}
			putBytes(bb)
		}
	})
}

// amxGradChunk is how many positions convBackwardWeightAMXBF16 runs each
// accumulator tile over before the next: the chunk's rows of dy (32
// channels) and of x stay in cache across the taps and blocks.
const amxGradChunk = 512

// amxGradOK reports whether convBackwardWeightAMXBF16 computes s's weight
// gradient: AMX-BF16 is on and one stride both ways divides the padded
// image's pixels.
func amxGradOK(s ConvShape) bool {
	h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
	return hasAMXBF16 && bf16NativeOn() && s.SH == s.SW && s.SH > 0 && h*wd%s.SH == 0
}

// convBackwardWeightAMXBF16 computes dw = ConvBackwardWeight with
// bfloat16 operands on AMX tiles, where amxGradOK, reporting whether it
// did; a shape whose rows unfold (unfoldedBF16) as its unfolded shape. It pairs images as convBackwardWeightNativeBF16 does, so that a
// tile's K pairs are two images at one pixel: x becomes the padded pairs
// xp ([⌈N/2⌉][h][wd][C], zeros in the border), and dy, with the positions
// of convDirectAMXBF16 (output (oy, ox) of image pair i at p = i·h·wd/st +
// oy·wd + ox, zeros at the positions that are no output), the transposed
// pairs dyt ([OC][P]): dW[tap][c][oc] = Σ_p dyt[oc][p] · xp[st·p + tap][c],
// a product of 32 rows of dyt by 32 channels of xp read in place with
// rows st·C pairs apart, one 32×32 tile for each block of output channels,
// tap and block of input channels, accumulated over chunks of positions.
// The last blocks of channel counts that are not multiples of 32 read on
// into the next pixel's channels (xp) or zeros (dyt): their tiles' extra
// rows and columns are dropped.
func convBackwardWeightAMXBF16(s0 ConvShape, x, dy, dw []float32) bool {
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

	// xp, and the zeros that the positions past the last image pair read.
	no, nc := (s.OC+31)/32, (s.C+31)/32 // blocks of 32 channels
	imgElems := h * wd * s.C
	reach := st*(npos-1)*s.C + taps[len(taps)-1]/4 + 32*nc // the last position's last read, and 1
	xlen := max(np*imgElems, reach)
	xb := getBuf(xlen)
	defer putBuf(xb)
	xp := pairsOf(xb)
	rowLen, wd0 := s0.W*s0.C, s0.W+s0.PL+s0.PR
	parallelFor(np*h, func(lo, hi int) {
		var pad []uint32 // an unfolded row's source: s0's padded row of pairs
		if unfolded {
			pb := getBuf(wd0 * s0.C)
			defer putBuf(pb)
			pad = pairsOf(pb)
			clear(pad)
		}
		for r := lo; r < hi; r++ {
			i, iy := r/h, r%h-s.PT
			row := xp[r*wd*s.C : (r+1)*wd*s.C]
			if iy < 0 || iy >= s.H {
				clear(row)
				continue
			}
			a := x[(2*i*s.H+iy)*rowLen:][:rowLen]
			var b []float32
			if 2*i+1 < s.N {
				b = x[((2*i+1)*s.H+iy)*rowLen:][:rowLen]
			}
			if unfolded {
				pairOrZero(pad[s0.PL*s0.C:(s0.PL+s0.W)*s0.C], a, b)
				spreadRuns(unsafe.Pointer(&row[0]), 4*s.C, unsafe.Pointer(&pad[0]), 4*s0.C, s.W, 4*s.C, 4*s.C)
				continue
			}
			clear(row[:s.PL*s.C])
			clear(row[(s.PL+s.W)*s.C:])
			pairOrZero(row[s.PL*s.C:(s.PL+s.W)*s.C], a, b)
		}
	})
	clear(xp[np*imgElems:])
	_ = xp[reach-1]

	// dyt: dy's image pairs transposed, zeros at the positions that are no
	// output.
	dyb := getBuf(32 * no * npos)
	defer putBuf(dyb)
	dyt := pairsOf(dyb)
	transposeDYPairs(dyt, dy, s, npos, img, wd)
	clear(dyt[(s.OC+15)&^15*npos:]) // the rows of the last block past its 16-channel halves

	// The tiles: unit u is output block u/nc and input block u%nc, its taps'
	// tiles acc[u][tap][32][32] (oc by c).
	ntaps := len(taps)
	acc := getBuf(no * nc * ntaps * 1024) // written by the first chunk
	defer putBuf(acc)
	cfg := unsafe.Pointer(&amxConfig[0])
	parallelForEach(no*nc, func(lo, hi int) {
		for p0 := 0; p0 < npos; p0 += amxGradChunk {
			steps := (min(p0+amxGradChunk, npos) - p0) / 16
			for u := lo; u < hi; u++ {
				ob, cb := u/nc, u%nc
				amxBF16Grad32(cfg, unsafe.Pointer(&dyt[ob*32*npos+p0]), 4*npos, unsafe.Pointer(&xp[st*p0*s.C+cb*32]), 4*st*s.C, steps,
					unsafe.Pointer(&acc[u*ntaps*1024]), unsafe.Pointer(&taps[0]), ntaps, p0 > 0)
			}
		}
	})
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

// transposeDYPairs writes dyt[oc][p] ([OC][npos] pairs, OC rounded up to
// 16: rows past OC hold what follows the channels, dropped later): the bfloat16
// pairs of dy's images 2i and 2i+1 (a zero image past an odd batch) at
// output (oy, ox), at position p = i·img + oy·wd + ox, and zeros at the
// positions that are no output. A task takes an output row, pairs it into
// a buffer and transposes it by blocks of 16 pixels × 16 channels
// (transpose16x16), with
// the positions up to the next row's (or image pair's) first, zeros.
func transposeDYPairs(dyt []uint32, dy []float32, s ConvShape, npos, img, wd int) {
	oh, ow := s.OH(), s.OW()
	np := (s.N + 1) / 2
	rowLen := ow * s.OC
	blocks := (s.OC + 15) / 16 // the last may read on into the next pixel, or zeros
	parallelFor(np*oh, func(lo, hi int) {
		var blk [16 * 16]uint32
		rb := getBuf(rowLen + 16)
		defer putBuf(rb)
		pr := pairsOf(rb)
		clear(pr[rowLen:])
		for r := lo; r < hi; r++ {
			i, oy := r/oh, r%oh
			start, end := i*img+oy*wd, i*img+(oy+1)*wd // its positions
			if oy == oh-1 {
				end = (i + 1) * img
				if i == np-1 {
					end = npos
				}
			}
			a := dy[((2*i)*oh+oy)*rowLen:][:rowLen]
			var b []float32
			if 2*i+1 < s.N {
				b = dy[((2*i+1)*oh+oy)*rowLen:][:rowLen]
			}
			pairOrZero(pr[:rowLen], a, b)
			_ = dyt[(blocks*16-1)*npos+start+ow-1]
			for ob := range blocks {
				for ox0 := 0; ox0 < ow; ox0 += 16 {
					n := min(16, ow-ox0)
					src, stride := unsafe.Pointer(&pr[ox0*s.OC+ob*16]), 4*s.OC
					if n < 16 { // the row's last pixels: their block, read from a copy
						for k := range n {
							copy(blk[k*16:k*16+16], pr[(ox0+k)*s.OC+ob*16:])
						}
						src, stride = unsafe.Pointer(&blk[0]), 64
					}
					transpose16x16(unsafe.Pointer(&dyt[ob*16*npos+start+ox0]), 4*npos, src, stride, uint16(1<<n-1))
				}
				for j := range 16 {
					clear(dyt[(ob*16+j)*npos+start+ow : (ob*16+j)*npos+end])
				}
			}
		}
	})
}

// convUnfoldedAMXBF16 computes the convolution u (unfoldedBF16 of s) on
// AMX tiles, from s's input x and u's packed weights wp, unfolding x's
// rows as it stages them: a padded row of s is converted to bfloat16 and
// unfolded pixel q is its KW·C values from pixel q on, zeros after them
// up to u's cp (spreadRuns).
func convUnfoldedAMXBF16(s, u ConvShape, x []float32, wp []uint32, y []float32, ep *convEpilogue) {
	l := bf16DirectKernels.layout(u)
	h, wd := u.H+u.PT+u.PB, s.W+s.PL+s.PR
	rowElems := u.W * l.cp
	stage := func(dst []uint16, e0, e1 int) {
		sb := getBytes(2 * wd * s.C)
		defer putBytes(sb)
		pad := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(sb))), wd*s.C)
		clear(pad)
		for r := e0 / rowElems; r < e1/rowElems; r++ {
			out := dst[r*rowElems-e0:][:rowElems]
			img, iy := r/h, r%h-s.PT
			if iy < 0 || iy >= s.H {
				clear(out)
				continue
			}
			ToBF16(pad[s.PL*s.C:(s.PL+s.W)*s.C], x[(img*s.H+iy)*s.W*s.C:][:s.W*s.C])
			spreadRuns(unsafe.Pointer(&out[0]), 2*l.cp, unsafe.Pointer(&pad[0]), 2*s.C, u.W, 2*u.C, 2*l.cp)
		}
	}
	nb := (u.OC + l.nr - 1) / l.nr
	convDirectAMXBF16(u, wp, y, ep, unplaced(u), stage, l.cp, nb, u.KH*u.KW*l.cp/2*l.nr)
}
