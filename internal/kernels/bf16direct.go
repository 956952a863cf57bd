package kernels

import "unsafe"

// bf16DirectKernel computes an mr×nr float32 tile (nr 32 or 16 channels)
// of a convolution whose receptive fields are read in place from bfloat16
// activations (gen/direct.go): pixel p of the tile starts at a + p·ps
// bytes, each of the kh kernel rows is steps consecutive bfloat16 pairs,
// rs bytes after the previous row; b is a block of packed weights
// ([kh][steps][nr] pairs). Row p of the tile is stored at c + p·cs bytes:
// as it is when scale is nil, else as max(sum·scale + shift + skip,
// floor) per channel (scale and shift hold the tile's nr channels; skip,
// nil for none, is laid out as c and may be c itself), epilogueTileGo's
// arithmetic.
type bf16DirectKernel func(a, b, c unsafe.Pointer, ps, rs, kh, steps, cs int, scale, shift, skip unsafe.Pointer, floor float32)

// bf16DirectSet is the direct kernels of both widths, indexed by height
// (mr−1): w32 the 32-channel tiles, w16 the 16-channel ones, which a
// convolution of at most 16 output channels runs instead (the 32-wide
// tiles would compute half their lanes in vain).
//
// amx: the convolutions convDirectAMXBF16 takes (amxBF16OK) run on AMX
// tiles instead, where the CPU has them.
type bf16DirectSet struct {
	w32, w16 []bf16DirectKernel
	amx      bool
}

// width returns the block width (channels) of a convolution of oc output
// channels: 16 for at most 16, else 32.
func (k bf16DirectSet) width(oc int) int {
	if oc <= 16 && k.w16 != nil {
		return 16
	}
	return 32
}

// bf16Layout is how the direct path stores a convolution's operands: nr
// output channels a block of packed weights (32 or 16), cp channels a
// pixel of the staged bfloat16 input and a kernel row's stretch of weights
// (C rounded up, zeros past it).
type bf16Layout struct{ nr, cp int }

// layout returns how set stores s's operands: on AMX tiles (amxBF16OK)
// blocks of 32 channels and whole 32-value steps a kernel row
// (amxChannels), else the narrower block for at most 16 output channels
// and C rounded up to even (a kernel row is whole pairs).
func (k bf16DirectSet) layout(s ConvShape) bf16Layout {
	if k.amx && amxBF16OK(s) {
		return bf16Layout{nr: 32, cp: amxChannels(s)}
	}
	return bf16Layout{nr: k.width(s.OC), cp: (s.C + 1) &^ 1}
}

// of returns the kernels of block width nr.
func (k bf16DirectSet) of(nr int) []bf16DirectKernel {
	if nr == 16 {
		return k.w16
	}
	return k.w32
}

// convForwardDirectBF16 is ConvForwardEpilogueBF16 on direct kernels
// (kern: the VDPBF16PS ones, or their Go models in the tests), the
// bfloat16 counterpart of int8ConvDirect: the input converted once to
// bfloat16 inside a border of zeros (its channels padded with zeros to
// the layout's cp — an odd count gets one, AMX tiles whole 32-value kernel
// rows — so that a kernel row is whole pairs or steps and no read strays
// outside the receptive field, where a zero weight times an infinity would
// make a NaN), the weights packed by kernel rows, the
// tiles of sweepDirect, and the epilogue applied to each tile in float32. Horizontal
// dilation is not supported (bf16DirectOK).
func convForwardDirectBF16(s ConvShape, x, w, y []float32, ep *convEpilogue, kern bf16DirectSet) {
	convForwardDirectOfBF16(s, bf16Input{x: x}, w, y, ep, kern)
}

// convForwardDirectOfBF16 is convForwardDirectBF16 of the input src
// (float32, through a map, or bfloat16).
func convForwardDirectOfBF16(s ConvShape, src bf16Input, w, y []float32, ep *convEpilogue, kern bf16DirectSet) {
	l := kern.layout(s)
	wbuf, wp := directWeightsBF16(s, l)
	defer putBytes(wbuf)
	packDirectBF16(s, w, wp, l)
	convDirectPlacedBF16(s, src, wp, y, ep, kern, unplaced(s))
}

// directWeightsBF16 returns a pooled buffer for s's packed weights
// (packDirectBF16's layout l) and the pairs it holds.
func directWeightsBF16(s ConvShape, l bf16Layout) ([]byte, []uint32) {
	n := (s.OC + l.nr - 1) / l.nr * s.KH * s.KW * l.cp / 2 * l.nr
	b := getBytes(4 * n)
	return b, unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// packDirectBF16 packs s's weights w ([KH][KW][C][OC]) for the direct
// kernels into wp in layout l: per block of nr (32 or 16) output
// channels, [KH][KW·cp/2][nr] pairs, pair q of kernel row ky holding
// elements k = 2q and 2q+1 of the row (k = kx·cp + c, cp the channels
// stored per pixel), zeros past C and OC.
func packDirectBF16(s ConvShape, w []float32, wp []uint32, l bf16Layout) {
	nr, cp := l.nr, l.cp
	pairs := s.KW * cp / 2
	nb := (s.OC + nr - 1) / nr
	blockPairs := s.KH * pairs * nr
	// Each pair q of kernel row ky is two rows of w, OC values each, read
	// in order and paired whole, then dealt out nr pairs to a block. (A
	// block's nr columns at a time, strided through w by rows, ran at a
	// few GB/s from memory, where a training step's weights come from
	// after the optimizer's update.)
	var zeros []float32 // stored rows past C
	if cp > s.C {
		zeros = zeroRow(s.OC)
	}
	row := func(ky, k int) []float32 {
		kx, c := k/cp, k%cp
		if c >= s.C {
			return zeros
		}
		return w[((ky*s.KW+kx)*s.C+c)*s.OC:][:s.OC]
	}
	parallelFor(s.KH*pairs, func(lo, hi int) {
		pb := getBuf(nb * nr)
		defer putBuf(pb)
		paired := pairsOf(pb)
		clear(paired[s.OC:]) // the last block's channels past OC
		for u := lo; u < hi; u++ {
			ky, q := u/pairs, u%pairs
			pairBF16(paired[:s.OC], row(ky, 2*q), row(ky, 2*q+1))
			at := (ky*pairs + q) * nr
			for b := range nb {
				copy(wp[b*blockPairs+at:][:nr], paired[b*nr:])
			}
		}
	})
}

// packTurnedBF16 packs, in packDirectBF16's layout for the convolution t
// that computes s's data gradient (backwardDataDirectBF16: t.C = s.OC,
// t.OC = s.C), s's weights turned around: t's weight [ky][kx][oc][c] is
// w[KH−1−ky][KW−1−kx][c][oc]. For each of t's output channels c and tap,
// w's row of OC values holds t's input channels in order, so its bfloat16
// conversion is already the tap's run of pairs, stored nr pairs apart
// (nr the block width, 32 or 16).
func packTurnedBF16(s ConvShape, w []float32, wp []uint32, l bf16Layout) {
	packPhaseBF16(s, w, wp, l, 0, 0, s.KH, s.KW)
}

// packPhaseBF16 is packTurnedBF16 for phase (ry, rx) of s's data gradient
// (backwardDataPhasesBF16), whose convolution has kh×kw taps: its weight
// [ky][kx][oc][c] is w[ry + SH·(kh−1−ky)][rx + SW·(kw−1−kx)][c][oc]. Phase
// (0, 0) of a stride-1 convolution is packTurnedBF16's whole kernel.
func packPhaseBF16(s ConvShape, w []float32, wp []uint32, l bf16Layout, ry, rx, kh, kw int) {
	nr, cp := l.nr, l.cp // t's layout: cp of its channels (s.OC) a pixel
	pairs := kw * cp / 2
	nb := (s.C + nr - 1) / nr
	blockPairs := kh * pairs * nr
	// Per tap, the block's nr rows are converted into rows (nr·cp/2
	// pairs, in cache) — in one call where a row has no padding past OC,
	// the tap's rows being adjacent in w — then turned around into the
	// tap's stretch of the block: 16×16 blocks of pairs through registers
	// where the level has AVX-512 and both sides are whole blocks, else
	// pair by pair, nr at a time in order. (Writing each row's pairs nr
	// apart as it was converted touched a line of the block per pair, nr
	// times over; turned pair by pair and converted row by row, this
	// packing took 2.9% of the CPU samples of `go test -bench
	// 'Step/resnet50-train-bf16$' ./bench`, its set-up included.)
	wide := use.avx512 && nr%16 == 0 && cp/2%16 == 0
	parallelFor(nb, func(lo, hi int) {
		rb := getBuf(nr * cp / 2)
		defer putBuf(rb)
		rows := pairsOf(rb)
		elems := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(rb))), nr*cp)
		for b := lo; b < hi; b++ {
			blk := wp[b*blockPairs : (b+1)*blockPairs]
			nc := min(nr, s.C-b*nr) // rows with weights; the others zero
			for ky := range kh {
				for kx := range kw {
					sy, sx := ry+s.SH*(kh-1-ky), rx+s.SW*(kw-1-kx)
					out := blk[(ky*pairs+kx*cp/2)*nr:][:cp/2*nr]
					src := w[((sy*s.KW+sx)*s.C+b*nr)*s.OC:][:nc*s.OC]
					if cp == s.OC {
						ToBF16(elems[:nc*cp], src)
					} else {
						for j := range nc {
							r := elems[j*cp : (j+1)*cp]
							ToBF16(r[:s.OC], src[j*s.OC:][:s.OC])
							clear(r[s.OC:]) // the zero channels past OC
						}
					}
					clear(elems[nc*cp:]) // the rows past C
					if wide {
						for j := 0; j < nr; j += 16 {
							for m := 0; m < cp/2; m += 16 {
								transpose16x16(unsafe.Pointer(&out[m*nr+j]), 4*nr, unsafe.Pointer(&rows[j*cp/2+m]), 2*cp, 0xffff)
							}
						}
						continue
					}
					for j := range nr {
						for m, v := range rows[j*cp/2 : (j+1)*cp/2] {
							out[m*nr+j] = v
						}
					}
				}
			}
		}
	})
}

// convDirectPackedBF16 is convForwardDirectBF16 on weights packed by
// packDirectBF16 (or packTurnedBF16).
func convDirectPackedBF16(s ConvShape, x []float32, wp []uint32, y []float32, ep *convEpilogue, set bf16DirectSet) {
	convDirectPlacedBF16(s, bf16Input{x: x}, wp, y, ep, set, unplaced(s))
}

// outPlace puts a convolution's outputs into an array y of YH×YW pixels
// an image: output (oy, ox) of image n at pixel (Y0H + oy·YSH,
// Y0W + ox·YSW) of y's image n. A strided data gradient's phases write dx
// so (backwardDataPhasesBF16).
type outPlace struct{ YH, YW, Y0H, Y0W, YSH, YSW int }

// unplaced is the placement of s's outputs in an array of their own shape.
func unplaced(s ConvShape) outPlace { return outPlace{YH: s.OH(), YW: s.OW(), YSH: 1, YSW: 1} }

// pixel returns the pixel of y that output pixel m (of N·oh·ow) goes to.
func (pl outPlace) pixel(oh, ow, m int) int {
	r, ox := m/ow, m%ow
	return (r/oh*pl.YH+pl.Y0H+r%oh*pl.YSH)*pl.YW + pl.Y0W + ox*pl.YSW
}

// convDirectPlacedBF16 is convDirectPackedBF16 with its outputs placed by
// pl, reading in's outputs for x where in is not nil (toBF16Of).
//
// Each task converts the input its tiles read — a run of padded rows, or
// of pixels for a flat sweep — to bfloat16 into a buffer of its own as it
// starts (sweepDirect's stage), so that its tiles read it from the core's
// cache; converting the whole batch first wrote a bfloat16 copy of it to
// memory and read it back (as large as the tiles' own time for
// ResNet-50's 256→64 1×1 layers at batch 8).
func convDirectPlacedBF16(s ConvShape, src bf16Input, wp []uint32, y []float32, ep *convEpilogue, set bf16DirectSet, pl outPlace) {
	l := set.layout(s)
	nr, cp := l.nr, l.cp
	kern := set.of(nr)
	pairs := s.KW * cp / 2
	nb := (s.OC + nr - 1) / nr
	blockPairs := s.KH * pairs * nr
	h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
	// stage converts padded-input elements [e0, e1) (whole rows, or
	// whole pixels of an unpadded input) into dst: bfloat16 with cp
	// channels a pixel, zeros in the border.
	rowElems := wd * cp
	stage := func(dst []uint16, e0, e1 int) {
		switch {
		case s.PT|s.PB|s.PL|s.PR == 0 && cp == s.C: // the input's own layout
			src.convert(dst, e0, s.C)
		case e0%rowElems == 0 && e1%rowElems == 0: // padded rows r of N·h
			stageRows(s, dst, e0, e1, rowElems, func(row []uint16, off int) {
				clear(row[:s.PL*cp])
				inner := row[s.PL*cp : (s.PL+s.W)*cp]
				if cp == s.C {
					src.convert(inner, off, s.C)
				} else {
					stagePixels(inner, src, off, s.W, s.C, cp)
				}
				clear(row[(s.PL+s.W)*cp:])
			})
		default: // a flat sweep's pixels, channels padded
			stagePixels(dst, src, e0/cp*s.C, (e1-e0)/cp, s.C, cp)
		}
	}
	rowBytes := wd * cp * 2
	if set.amx && amxBF16OK(s) {
		convDirectAMXBF16(s, wp, y, ep, pl, stage, cp, nb, blockPairs)
		return
	}

	// A flat sweep's tiles may cross output rows, which only an unplaced
	// output keeps adjacent; otherwise a tile stays in one row, its pixels
	// pl.YSW apart in y.
	placed := pl != unplaced(s)
	flat := s.KH == 1 && s.KW == 1 && s.SH == 1 && s.SW == 1 && s.PT|s.PB|s.PL|s.PR == 0 && !placed
	oh, ow := s.OH(), s.OW()
	ys := pl.YSW * s.OC                     // elements of y between a tile's rows
	useAsmEpilogue := hasBF16 && use.avx512 // the Go models run where the CPU has no AVX-512 either
	sweepDirect(s, flat, h, wd, cp, nb, stage, func(t *directTile, xb []uint16, b, m0, mr, at int) {
		a, bp := unsafe.Pointer(&xb[at]), unsafe.Pointer(&wp[b*blockPairs])
		n0 := b * nr
		n1 := min(n0+nr, s.OC)
		px := m0 // the tile's first pixel of y
		if placed {
			px = pl.pixel(oh, ow, m0)
		}
		yat := px*s.OC + n0
		if n1-n0 == nr {
			// A whole block: the kernel applies the epilogue as it stores.
			_ = y[yat+(mr-1)*ys+nr-1]
			var skip unsafe.Pointer
			if ep.skip != nil {
				_ = ep.skip[yat+(mr-1)*ys+nr-1]
				skip = unsafe.Pointer(&ep.skip[yat])
			}
			kern[mr-1](a, bp, unsafe.Pointer(&y[yat]), 2*s.SW*cp, s.DH*rowBytes, s.KH, pairs, 4*ys,
				unsafe.Pointer(&ep.scale[n0]), unsafe.Pointer(&ep.shift[n0]), skip, ep.floor)
			return
		}
		// The last block of a channel count that is not a multiple of the
		// block width: the tile, then the epilogue on its channels.
		tile := unsafe.Slice((*float32)(unsafe.Pointer(t)), len(t))
		kern[mr-1](a, bp, unsafe.Pointer(t), 2*s.SW*cp, s.DH*rowBytes, s.KH, pairs, 4*32, nil, nil, nil, 0)
		if useAsmEpilogue {
			ep.epilogueTile(tile, yat, mr, ys, n0, n1-n0, y)
			return
		}
		epilogueTileGo(ep, tile, yat, mr, ys, n0, n1-n0, y)
	})
}

// bf16Input is what a bfloat16 convolution's staging reads: float32
// values x (in's outputs for them where in is not nil), or, where xb is
// not nil, bfloat16 values already (a gradient the batch norm's backward
// pass stored so).
type bf16Input struct {
	x  []float32
	in *ReLUAffine
	xb []uint16
}

// convert writes the input's elements [off, off+len(dst)) to dst as
// bfloat16 (off at a pixel's first of its c channels).
func (src bf16Input) convert(dst []uint16, off, c int) {
	if src.xb != nil {
		copy(dst, src.xb[off:off+len(dst)])
		return
	}
	toBF16Of(dst, src.x[off:off+len(dst)], src.in, c)
}

// stageRows stages the padded rows [e0, e1)/rowElems of s's input (N
// images of H+PT+PB rows, rowElems values each) into dst: zeros for a
// border row, fill(row, off) for the image's row at element off of the
// input.
func stageRows(s ConvShape, dst []uint16, e0, e1, rowElems int, fill func(row []uint16, off int)) {
	h := s.H + s.PT + s.PB
	for r := e0 / rowElems; r < e1/rowElems; r++ {
		row := dst[r*rowElems-e0:][:rowElems]
		img, iy := r/h, r%h-s.PT
		if iy < 0 || iy >= s.H {
			clear(row)
			continue
		}
		fill(row, (img*s.H+iy)*s.W*s.C)
	}
}

// stagePixels converts npix pixels of c channels (src's from element off)
// to bfloat16 pixels of cp channels (dst), zeros past c: the whole run
// converted at once into a scratch buffer (ToBF16's vector loop; a call a
// pixel cost as much as the convolution for CIFAR's 16-channel layers on
// AMX tiles), then spread out.
func stagePixels(dst []uint16, src bf16Input, off, npix, c, cp int) {
	n := npix * c
	dst = dst[:npix*cp]
	sb := getBytes(2 * n)
	defer putBytes(sb)
	tmp := u16Of(sb)[:n]
	src.convert(tmp, off, c)
	if hasAMXBF16 && cp <= 64 { // AVX512BW's masked moves, a pixel each
		spreadRuns(unsafe.Pointer(unsafe.SliceData(dst)), 2*cp, unsafe.Pointer(unsafe.SliceData(tmp)), 2*c, npix, 2*c, 2*cp)
		return
	}
	for px := range npix {
		o := dst[px*cp : (px+1)*cp]
		copy(o, tmp[px*c:(px+1)*c])
		clear(o[c:])
	}
}

// backwardDataPhasesBF16 computes a strided convolution's data gradient
// (add: added to dx) on kern as convBackwardDataFast does in float32, one
// direct convolution per output phase: dx's rows ih = ih0 + SH·k and
// columns iw = iw0 + SW·l are the stride-1 convolution of dy with the taps
// ky = ry + SH·j, kx = rx + SW·i (those of the phase) turned around,
// written SH rows and SW columns apart (outPlace); a phase without taps is
// zero. It reports false, computing nothing, for a dilated convolution or
// a phase whose first read lies inside dy (a negative padding, which the
// direct driver does not take).
func backwardDataPhasesBF16(s ConvShape, dy, w, dx []float32, add bool, kern bf16DirectSet) bool {
	return backwardDataPhasesOfBF16(s, bf16Input{x: dy}, w, dx, add, kern)
}

// dataPhasesOK reports whether backwardDataPhasesBF16 takes s (before it
// computes anything).
func dataPhasesOK(s ConvShape) bool {
	var stack [4]dataPhaseConv
	_, ok := dataPhaseConvs(s, stack[:0])
	return ok
}

// A dataPhaseConv is one phase of a strided data gradient
// (backwardDataPhasesBF16): the stride-1 convolution of dy that computes
// the phase's outputs, and where they go in dx.
type dataPhaseConv struct {
	t      ConvShape // its convolution; t.KH is 0 for a phase without taps
	pl     outPlace  // where its outputs go in dx
	ry, rx int
	nh, nw int // its rows and columns of dx
}

// dataPhaseConvs appends the phases of s's data gradient that have outputs
// to phases; ok is false where backwardDataPhasesBF16 does not take s
// (dilation, or a phase whose first read lies inside dy).
func dataPhaseConvs(s ConvShape, phases []dataPhaseConv) (_ []dataPhaseConv, ok bool) {
	if s.DH != 1 || s.DW != 1 {
		return phases, false
	}
	oh, ow := s.OH(), s.OW()
	for ry := range s.SH {
		for rx := range s.SW {
			ih0, iw0, nh, nw, jh, jw, q0h, q0w := dataPhase(s, ry, rx)
			if nh == 0 || nw == 0 {
				continue
			}
			ph := dataPhaseConv{pl: outPlace{YH: s.H, YW: s.W, Y0H: ih0, Y0W: iw0, YSH: s.SH, YSW: s.SW}, ry: ry, rx: rx, nh: nh, nw: nw}
			if jh > 0 && jw > 0 {
				// Output k of the phase reads dy rows q0h − (jh−1) + k + t.
				padT, padL := jh-1-q0h, jw-1-q0w
				padB, padR := nh-1+jh-oh-padT, nw-1+jw-ow-padL
				if min(padT, padL, padB, padR) < 0 {
					return phases, false
				}
				ph.t = ConvShape{N: s.N, H: oh, W: ow, C: s.OC, OC: s.C, KH: jh, KW: jw, SH: 1, SW: 1, DH: 1, DW: 1,
					PT: padT, PL: padL, PB: padB, PR: padR}
			}
			phases = append(phases, ph)
		}
	}
	return phases, true
}

// backwardDataPhasesOfBF16 is backwardDataPhasesBF16 of the gradient dyIn
// (float32 or bfloat16).
func backwardDataPhasesOfBF16(s ConvShape, dyIn bf16Input, w, dx []float32, add bool, kern bf16DirectSet) bool {
	var stack [4]dataPhaseConv // a stride of 2 has four
	phases, ok := dataPhaseConvs(s, stack[:0])
	if !ok {
		return false
	}
	ep := directEpilogue(s.C)
	if add {
		ep.skip = dx
	}
	for _, ph := range phases {
		if ph.t.KH == 0 {
			if !add {
				parallelFor(s.N*ph.nh, func(lo, hi int) {
					for r := lo; r < hi; r++ {
						row := (r/ph.nh*s.H + ph.pl.Y0H + r%ph.nh*s.SH) * s.W
						for k := range ph.nw {
							clear(dx[(row+ph.pl.Y0W+k*s.SW)*s.C:][:s.C])
						}
					}
				})
			}
			continue
		}
		l := kern.layout(ph.t)
		wbuf, wp := directWeightsBF16(ph.t, l)
		packPhaseBF16(s, w, wp, l, ph.ry, ph.rx, ph.t.KH, ph.t.KW)
		convDirectPlacedBF16(ph.t, dyIn, wp, dx, ep, kern, ph.pl)
		putBytes(wbuf)
	}
	return true
}

// backwardDataAsForwardOK reports whether s's data gradient is a forward
// convolution the direct path computes: stride 1, no horizontal dilation,
// and padding no wider than the kernel's reach (a "same" or "valid"
// convolution), so that the gradient's own padding is not negative.
func backwardDataAsForwardOK(s ConvShape) bool {
	rh, rw := s.DH*(s.KH-1), s.DW*(s.KW-1)
	return s.SH == 1 && s.SW == 1 && s.DW == 1 && s.PT <= rh && s.PB <= rh && s.PL <= rw && s.PR <= rw
}

// backwardDataDirectBF16 computes a stride-1 convolution's data gradient
// (add: added to dx) on kern as the forward convolution of dy with the weights
// turned around, on the direct kernels: dx[iy][ix][c] =
// Σ dy[iy − PT′ + ky′·DH][ix − PL′ + kx′][oc] · W′[ky′][kx′][oc][c] with
// W′[ky′][kx′][oc][c] = W[KH−1−ky′][KW−1−kx′][c][oc] and the padding
// PT′ = DH·(KH−1) − PT (and so on), whose output is H×W. The addition
// runs in the epilogue (dx as its skip term), in float32.
func backwardDataDirectBF16(s ConvShape, dy, w, dx []float32, add bool, kern bf16DirectSet) {
	backwardDataDirectOfBF16(s, bf16Input{x: dy}, w, dx, add, kern, nil)
}

// backwardDataDirectOfBF16 is backwardDataDirectBF16 of the gradient dyIn
// (float32 or bfloat16).
// Where gs is not nil and the sweep computes them, it fills gs's sums too.
func backwardDataDirectOfBF16(s ConvShape, dyIn bf16Input, w, dx []float32, add bool, kern bf16DirectSet, gs *DataGradSums) {
	rh, rw := s.DH*(s.KH-1), s.DW*(s.KW-1)
	t := ConvShape{N: s.N, H: s.OH(), W: s.OW(), C: s.OC, OC: s.C, KH: s.KH, KW: s.KW, SH: 1, SW: 1, DH: s.DH, DW: 1,
		PT: rh - s.PT, PL: rw - s.PL, PB: rh - s.PB, PR: rw - s.PR}
	l := kern.layout(t)
	wbuf, wp := directWeightsBF16(t, l)
	defer putBytes(wbuf)
	packTurnedBF16(s, w, wp, l)
	ep := directEpilogue(s.C)
	if add {
		ep.skip = dx
	}
	ep.gradSums = gs
	convDirectPlacedBF16(t, dyIn, wp, dx[:s.N*s.H*s.W*s.C], ep, kern, unplaced(t))
}

// epilogueTileGo applies ep to tile's rows ([rows][32] sums), stored at
// y[at + r·ys] (channels n0…n0+nc−1).
func epilogueTileGo(ep *convEpilogue, tile []float32, at, rows, ys, n0, nc int, y []float32) {
	scale, shift := ep.scale[n0:n0+nc], ep.shift[n0:n0+nc]
	for r := range rows {
		q := at + r*ys
		yr, ar := y[q:q+nc], tile[r*32:r*32+nc]
		if ep.skip != nil {
			sk := ep.skip[q : q+nc]
			for j, v := range ar {
				yr[j] = max(float32(v*scale[j])+shift[j]+sk[j], ep.floor)
			}
			continue
		}
		for j, v := range ar {
			yr[j] = max(float32(v*scale[j])+shift[j], ep.floor) // floor −∞ keeps NaN; the product rounded, as in the assembly
		}
	}
}

// bf16DirectOK reports whether the direct bfloat16 path computes s.
func bf16DirectOK(s ConvShape) bool { return s.DW == 1 }

// bf16DirectKernelGo is the direct kernel of mr rows and nr channels in
// Go, VDPBF16PS's arithmetic lane by lane as bf16KernelGo computes it: the
// model the tests run the driver with where the CPU lacks the instruction.
func bf16DirectKernelGo(mr, nr int) bf16DirectKernel {
	return func(a, b, c unsafe.Pointer, ps, rs, kh, pairs, cs int, scale, shift, skip unsafe.Pointer, floor float32) {
		bs := unsafe.Slice((*uint32)(b), kh*pairs*nr)
		var sc, sh []float32
		if scale != nil {
			sc, sh = unsafe.Slice((*float32)(scale), nr), unsafe.Slice((*float32)(shift), nr)
		}
		for p := range mr {
			row := unsafe.Slice((*float32)(unsafe.Add(c, p*cs)), nr)
			var sk []float32
			if skip != nil {
				sk = unsafe.Slice((*float32)(unsafe.Add(skip, p*cs)), nr)
			}
			for j := range nr {
				var acc float32
				for ky := range kh {
					as := unsafe.Slice((*uint32)(unsafe.Add(a, p*ps+ky*rs)), pairs)
					for q, av := range as {
						bv := bs[(ky*pairs+q)*nr+j]
						acc = ftz(acc + daz(uint16(av>>16))*daz(uint16(bv>>16)))
						acc = ftz(acc + daz(uint16(av))*daz(uint16(bv)))
					}
				}
				if sc != nil {
					acc = float32(acc*sc[j]) + sh[j]
					if sk != nil {
						acc += sk[j]
					}
					acc = max(acc, floor)
				}
				row[j] = acc
			}
		}
	}
}

// bf16DirectKernelsGo returns the Go models of the direct kernels, both
// widths.
func bf16DirectKernelsGo() bf16DirectSet {
	var k bf16DirectSet
	for mr := 1; mr <= directMR; mr++ {
		k.w32 = append(k.w32, bf16DirectKernelGo(mr, 32))
		k.w16 = append(k.w16, bf16DirectKernelGo(mr, 16))
	}
	return k
}
