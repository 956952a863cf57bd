package kernels

import (
	"sync"
	"unsafe"
)

// int8DirectKernel computes an mr×32 int32 tile of a convolution whose
// receptive fields are read in place (gen/int8.go's genInt8Direct): pixel
// p of the tile starts at a + p·ps, each of the kh kernel rows is quads
// consecutive u8 quads, rs bytes after the previous row; b is a block of
// the VNNI-packed weights, c receives the [mr][32] tile.
type int8DirectKernel func(a, b, c unsafe.Pointer, ps, rs, kh, quads int)

// int8DirectMR is the tallest tile the direct path uses.
const int8DirectMR = 14

// int8DirectOK reports whether the direct VNNI path computes s: the taps
// of a kernel row adjacent in memory (no horizontal dilation).
func int8DirectOK(s ConvShape) bool {
	return len(int8DirectKernels) >= int8DirectMR && s.DW == 1
}

// int8ConvDirect is Int8Conv on the direct VNNI kernels. A padded input is
// first copied into a buffer with the padding filled with the zero point
// (the real value 0), so every tap reads memory; a kernel row of KW·C
// bytes is read in ⌈KW·C/4⌉ quads (packedDirect); the kernels then sweep
// tiles of up to int8DirectMR output pixels of one output row (or, for an
// unpadded 1×1 convolution of stride 1, of the whole contiguous batch),
// one 32-channel block of weights at a time over a group of rows, so that
// a block stays in cache while the rows pass. The zero point comes out of
// the sums through the bias: Σ(x−zx)·w = Σx·w − zx·Σw at every pixel,
// padding included.
func int8ConvDirect(s ConvShape, x []uint8, zx uint8, w *Int8Weights, ep *Int8Epilogue, y []uint8, yf []float32) {
	oh, ow := s.OH(), s.OW()
	rowLen := s.KW * s.C
	quads := (rowLen + 3) / 4
	p := w.packedDirect(rowLen)
	packed, blockSize := unsafe.Pointer(&p[0]), s.KH*quads*128
	nb := (s.OC + 31) / 32

	e := *ep
	e.Bias = make([]int32, s.OC)
	for n := range e.Bias {
		e.Bias[n] = ep.Bias[n] - int32(zx)*w.ColSum[n]
	}

	// A kernel row that ends inside a quad reads up to 3 bytes past it:
	// such an input is always copied, with that much slack after it.
	src, h, wd := x, s.H, s.W
	padded := s.PT|s.PB|s.PL|s.PR != 0
	if padded || rowLen%4 != 0 {
		h, wd = s.H+s.PT+s.PB, s.W+s.PL+s.PR
		n := s.N * h * wd * s.C
		buf := getBytes(n + 3)
		defer putBytes(buf)
		src = padU8(s, x, zx, h, wd, *buf)
		fillU8((*buf)[n:], zx)
	}
	rowBytes := wd * s.C

	// The units of work: rows of output pixels, split into tiles of at
	// most int8DirectMR pixels of equal size, and a group of rows per
	// task with enough pixels to repay a block's trip through the cache.
	flat := s.KH == 1 && s.KW == 1 && s.SH == 1 && s.SW == 1 && !padded // pixels adjacent: one long row
	rows, rowLen := s.N*oh, ow
	if flat {
		rows, rowLen = 1, s.N*oh*ow
	}
	const groupPixels = 9 * int8DirectMR
	perGroup := max(1, groupPixels/rowLen)
	groups := (rows + perGroup - 1) / perGroup
	if flat {
		groups = (rowLen + groupPixels - 1) / groupPixels
	}
	parallelFor(groups, func(lo, hi int) {
		var tile [int8DirectMR * 32]int32
		c := unsafe.Pointer(&tile[0])
		// run computes output pixels m0… (mr of them, mr ≤ int8DirectMR)
		// whose first receptive field starts at byte at of src, for
		// channel block b.
		run := func(b, m0, mr, at int) {
			int8DirectKernels[mr-1](unsafe.Pointer(&src[at]), unsafe.Add(packed, b*blockSize), c, s.SW*s.C, s.DH*rowBytes, s.KH, quads)
			n0 := b * 32
			n1 := min(n0+32, s.OC)
			if yf == nil {
				e.storeTile(tile[:], m0, mr, s.OC, n0, n1-n0, y)
				return
			}
			for r := range mr {
				e.store(m0+r, s.OC, n0, tile[r*32:r*32+n1-n0], y, yf)
			}
		}
		for b := range nb {
			if flat {
				m0, m1 := lo*groupPixels, min(hi*groupPixels, rowLen)
				for m := m0; m < m1; m += int8DirectMR {
					mr := min(int8DirectMR, m1-m)
					run(b, m, mr, m*s.C)
				}
				continue
			}
			for row := lo * perGroup; row < min(hi*perGroup, rows); row++ {
				n, oy := row/oh, row%oh
				at := (n*h + oy*s.SH) * rowBytes
				tiles := (ow + int8DirectMR - 1) / int8DirectMR
				for t := range tiles {
					ox0, ox1 := t*ow/tiles, (t+1)*ow/tiles
					run(b, row*ow+ox0, ox1-ox0, at+ox0*s.SW*s.C)
				}
			}
		}
	})
}

// padU8 returns x (NHWC u8) inside a border of zero points, written to
// out: h×wd pixels an image, the input at row PT, column PL.
func padU8(s ConvShape, x []uint8, zx uint8, h, wd int, out []uint8) []uint8 {
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

// bytePool recycles the padded copies.
var bytePool sync.Pool

// getBytes returns a pooled byte buffer of length n; putBytes gives it back.
func getBytes(n int) *[]uint8 {
	if b, ok := bytePool.Get().(*[]uint8); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]uint8, n)
	return &b
}

func putBytes(b *[]uint8) { bytePool.Put(b) }

func fillU8(b []uint8, v uint8) {
	for i := range b {
		b[i] = v
	}
}
