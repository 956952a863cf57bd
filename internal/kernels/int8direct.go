package kernels

import "unsafe"

// int8DirectKernel computes an mr×32 int32 tile of a convolution whose
// receptive fields are read in place (gen/direct.go): pixel p of the tile
// starts at a + p·ps, each of the kh kernel rows is steps consecutive u8
// quads, rs bytes after the previous row; b is a block of the VNNI-packed
// weights, c receives the [mr][32] tile.
type int8DirectKernel func(a, b, c unsafe.Pointer, ps, rs, kh, steps int)

// int8DirectOK reports whether the direct VNNI path computes s: the taps
// of a kernel row adjacent in memory (no horizontal dilation).
func int8DirectOK(s ConvShape) bool {
	return len(int8DirectKernels) >= directMR && s.DW == 1
}

// int8ConvDirect is Int8Conv on the direct VNNI kernels. A padded input is
// first copied into a buffer with the padding filled with the zero point
// (the real value 0), so every tap reads memory; a kernel row of KW·C
// bytes is read in ⌈KW·C/4⌉ quads (packedDirect); the kernels then sweep
// tiles of up to directMR output pixels of one output row (or, for an
// unpadded 1×1 convolution of stride 1, of the whole contiguous batch),
// one 32-channel block of weights at a time over a group of rows, so that
// a block stays in cache while the rows pass. The zero point comes out of
// the sums through the bias: Σ(x−zx)·w = Σx·w − zx·Σw at every pixel,
// padding included.
func int8ConvDirect(s ConvShape, x []uint8, zx uint8, w *Int8Weights, ep *Int8Epilogue, y []uint8, yf []float32) {
	rowLen := s.KW * s.C
	e := *ep
	e.Bias = int32Pool.Get(s.OC)
	defer int32Pool.Put(e.Bias)
	for n := range e.Bias {
		e.Bias[n] = ep.Bias[n] - int32(zx)*w.ColSum[n]
	}
	if amxRowsOK(s, yf) {
		int8ConvAMXRows(s, x, zx, w.packedRows64(rowLen), &e, y)
		return
	}

	quads := (rowLen + 3) / 4
	p := w.packedDirect(rowLen)
	packed, blockSize := unsafe.Pointer(&p[0]), s.KH*quads*128
	nb := (s.OC + 31) / 32

	if int8ConvAMX(s, x, p, &e, y, yf) {
		return
	}
	if ss, sx, ok := subsampled(s, x, yf); ok {
		int8ConvAMX(ss, sx, p, &e, y, yf)
		putBytes(sx)
		return
	}
	if amxConvOK(s, yf) {
		int8ConvAMXStaged(s, x, zx, p, &e, y)
		return
	}
	// A kernel row that ends inside a quad reads up to 3 bytes past it:
	// such an input is always copied, with that much slack after it.
	src, h, wd := x, s.H, s.W
	padded := s.PT|s.PB|s.PL|s.PR != 0
	if padded || rowLen%4 != 0 {
		h, wd = s.H+s.PT+s.PB, s.W+s.PL+s.PR
		src = padU8(s, x, zx, h, wd, 3)
		defer putBytes(src)
	}
	rowBytes := wd * s.C
	flat := s.KH == 1 && s.KW == 1 && s.SH == 1 && s.SW == 1 && !padded // pixels adjacent: one long row
	sweepDirect(s, flat, h, wd, s.C, nb, nil, func(t *directTile, _ []uint16, b, m0, mr, at int) {
		tile := unsafe.Slice((*int32)(unsafe.Pointer(t)), len(t))
		int8DirectKernels[mr-1](unsafe.Pointer(&src[at]), unsafe.Add(packed, b*blockSize), unsafe.Pointer(t), s.SW*s.C, s.DH*rowBytes, s.KH, quads)
		n0 := b * 32
		n1 := min(n0+32, s.OC)
		if yf == nil {
			e.storeTile(tile, m0, mr, s.OC, n0, n1-n0, y)
			return
		}
		for r := range mr {
			e.store(m0+r, s.OC, n0, tile[r*32:r*32+n1-n0], y, yf)
		}
	})
}

// subsampled returns, for an unpadded 1×1 convolution of stride st > 1
// that AMX tiles can run once compacted (int8ConvAMX), the shape of stride
// 1 over its input's pixels (st·oy, st·ox) and those pixels copied side by
// side into a pooled buffer: ResNet's downsampling shortcuts, which read a
// quarter of their input. Otherwise ok is false.
func subsampled(s ConvShape, x []uint8, yf []float32) (sub ConvShape, sx []uint8, ok bool) {
	if !hasAMX || yf != nil || s.KH != 1 || s.KW != 1 || s.SH != s.SW || s.SH < 2 || s.PT|s.PB|s.PL|s.PR != 0 || s.C%64 != 0 || s.OC%32 != 0 {
		return s, nil, false
	}
	oh, ow := s.OH(), s.OW()
	sub = s
	sub.H, sub.W, sub.SH, sub.SW = oh, ow, 1, 1
	sx = getBytes(s.N * oh * ow * s.C)
	parallelFor(s.N*oh, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			n, oy := r/oh, r%oh
			for ox := range ow {
				copy(sx[(r*ow+ox)*s.C:][:s.C], x[((n*s.H+oy*s.SH)*s.W+ox*s.SW)*s.C:])
			}
		}
	})
	return sub, sx, true
}

// stagePhase writes into dst the count pixels (C bytes each) of phase
// (ry, rx) of x padded and strided by s (int8ConvAMXStaged's phases, hp×wp
// pixels an image) from phase pixel q0 on: padded pixel (SH·py + ry,
// SW·px + rx) of each image, the zero point zx in the border, past the
// padded image and past the last image. At stride 1 the one phase is the
// padded input itself, as padU8 lays it out, and its rows are copied in
// runs.
func stagePhase(s ConvShape, x []uint8, zx uint8, hp, wp, ry, rx, q0, count int, dst []uint8) {
	c := s.C
	dst = dst[:count*c]
	for q := q0; q < q0+count; {
		row := q / wp // phase row over the batch
		px := q - row*wp
		run := min(wp-px, q0+count-q) // pixels to this row's end
		out := dst[(q-q0)*c : (q-q0+run)*c]
		q += run
		n, iy := row/hp, row%hp*s.SH+ry-s.PT
		if n >= s.N || iy < 0 || iy >= s.H {
			fillU8(out, zx)
			continue
		}
		src := x[(n*s.H+iy)*s.W*c : (n*s.H+iy+1)*s.W*c]
		if s.SW == 1 {
			// Columns [px, px+run) of the padded row: left border, image,
			// right border.
			l := min(max(s.PL-px, 0), run)
			fillU8(out[:l*c], zx)
			x0, x1 := max(px-s.PL, 0), min(px+run-s.PL, s.W)
			if x1 > x0 {
				copy(out[l*c:], src[x0*c:x1*c])
			}
			fillU8(out[(l+max(x1-x0, 0))*c:], zx)
			continue
		}
		for i := range run {
			o := out[i*c : (i+1)*c]
			if ix := (px+i)*s.SW + rx - s.PL; ix >= 0 && ix < s.W {
				copy(o, src[ix*c:(ix+1)*c])
			} else {
				fillU8(o, zx)
			}
		}
	}
}

// padU8 returns x (NHWC u8) inside a border of zero points, in a pooled
// buffer (putBytes it): h×wd pixels an image, the input at row PT, column
// PL, followed by slack bytes of the zero point for reads past the image.
func padU8(s ConvShape, x []uint8, zx uint8, h, wd, slack int) []uint8 {
	n := s.N * h * wd * s.C
	out := getBytes(n + slack)
	fillU8(out[n:n+slack], zx)
	parallelFor(s.N*h, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			n, iy := r/h, r%h-s.PT
			dst := out[r*wd*s.C : (r+1)*wd*s.C]
			if iy < 0 || iy >= s.H {
				fillU8(dst, zx)
				continue
			}
			fillU8(dst[:s.PL*s.C], zx)
			copy(dst[s.PL*s.C:], x[(n*s.H+iy)*s.W*s.C:(n*s.H+iy+1)*s.W*s.C])
			fillU8(dst[(s.PL+s.W)*s.C:], zx)
		}
	})
	return out
}

// fillU8 sets every byte of b to v, by doubling copies (memmove) rather
// than a byte at a time: the zero points of padded borders.
func fillU8(b []uint8, v uint8) {
	if len(b) == 0 {
		return
	}
	b[0] = v
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}
