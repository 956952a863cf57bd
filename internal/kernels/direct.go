package kernels

import "sync"

// The direct convolutions of the int8 (int8direct.go) and bfloat16
// (bf16direct.go) paths share their kernels' shape (gen/direct.go: an
// mr×32 tile of output pixels read in place, 4-byte steps) and the way
// their work is split, which this file holds.

// directMR is the tallest direct tile.
const directMR = 14

// directGroupPixels is about the number of output pixels a task sweeps
// with one 32-channel block of weights (nine tiles): enough to repay the
// block's trip through the cache.
const directGroupPixels = 9 * directMR

// sweepDirect runs a direct convolution's tiles in parallel. The input it
// reads is laid out as h×wd pixels an image of cs stored elements each
// (the padded copy, or the input itself); flat says that the output pixels
// are adjacent in it (an unpadded 1×1 convolution of stride 1), so the
// whole batch is one row. It calls run(tile, b, m0, mr, at) for channel
// block b (of nb) and the mr ≤ directMR output pixels from m0, whose first
// receptive field starts at element at: rows split into tiles of equal
// size, one block at a time over a group of rows. tile is the calling
// task's scratch for the kernel's [mr][32] sums (4-byte elements), pooled
// so that a warmed-up step allocates none.
func sweepDirect(s ConvShape, flat bool, h, wd, cs, nb int, run func(tile *directTile, b, m0, mr, at int)) {
	oh, ow := s.OH(), s.OW()
	if s.N*oh*ow == 0 {
		return // no output (a kernel wider or taller than the padded input)
	}
	if flat {
		npix := s.N * oh * ow
		parallelFor((npix+directGroupPixels-1)/directGroupPixels, func(lo, hi int) {
			tile := tilePool.Get().(*directTile)
			defer tilePool.Put(tile)
			m0, m1 := lo*directGroupPixels, min(hi*directGroupPixels, npix)
			for b := range nb {
				for m := m0; m < m1; m += directMR {
					run(tile, b, m, min(directMR, m1-m), m*cs)
				}
			}
		})
		return
	}
	rows := s.N * oh
	perGroup := max(1, directGroupPixels/ow)
	tiles := (ow + directMR - 1) / directMR
	parallelFor((rows+perGroup-1)/perGroup, func(lo, hi int) {
		tile := tilePool.Get().(*directTile)
		defer tilePool.Put(tile)
		for b := range nb {
			for row := lo * perGroup; row < min(hi*perGroup, rows); row++ {
				n, oy := row/oh, row%oh
				at := (n*h + oy*s.SH) * wd * cs
				for t := range tiles {
					ox0, ox1 := t*ow/tiles, (t+1)*ow/tiles
					run(tile, b, row*ow+ox0, ox1-ox0, at+ox0*s.SW*cs)
				}
			}
		}
	})
}

// directTile is a task's [directMR][32] tile of int32 or float32 sums.
type directTile [directMR * 32]uint32

// tilePool recycles the tasks' tiles.
var tilePool = sync.Pool{New: func() any { return new(directTile) }}

// getBytes returns a pooled byte buffer of length n, not zeroed;
// putBytes gives it back.
func getBytes(n int) []uint8 { return bytePool.Get(n) }

func putBytes(b []uint8) { bytePool.Put(b) }
