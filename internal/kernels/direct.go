package kernels

import (
	"sync"
	"unsafe"
)

// The direct convolutions of the int8 (int8direct.go) and bfloat16
// (bf16direct.go) paths share their kernels' shape (gen/direct.go: an
// mr×32 tile of output pixels read in place, 4-byte steps) and the way
// their work is split, which this file holds.

// directMR is the tallest direct tile.
const directMR = 14

// directGroupPixels is about the fewest output pixels a task sweeps with
// one 32-channel block of weights (nine tiles): enough to repay the
// block's trip through the cache.
const directGroupPixels = 9 * directMR

// sweepDirect runs a direct convolution's tiles in parallel. The input it
// reads is laid out as h×wd pixels an image of cs stored elements each
// (the padded copy, or the input itself); flat says that the output pixels
// are adjacent in it (an unpadded 1×1 convolution of stride 1), so the
// whole batch is one row. It calls run(tile, buf, b, m0, mr, at) for
// channel block b (of nb) and the mr ≤ directMR output pixels from m0,
// whose first receptive field starts at element at: rows split into tiles
// of equal size, one block at a time over a task's rows (directSplit).
// tile is the calling task's scratch for the kernel's [mr][32] sums
// (4-byte elements), pooled so that a warmed-up step allocates none.
//
// With stage nil, buf is nil and at counts from the input's start. Else
// each task first calls stage(buf, e0, e1) to write elements [e0, e1) of
// the input — those its tiles read: whole rows from the first one's first
// to the last one's last, or a flat sweep's pixels — into a pooled buffer
// of its own (bfloat16 elements), and at counts from e0.
func sweepDirect(s ConvShape, flat bool, h, wd, cs, nb int, stage func(buf []uint16, e0, e1 int), run func(tile *directTile, buf []uint16, b, m0, mr, at int)) {
	oh, ow := s.OH(), s.OW()
	if s.N*oh*ow == 0 {
		return // no output (a kernel wider or taller than the padded input)
	}
	if flat {
		npix := s.N * oh * ow
		tiles := (npix + directMR - 1) / directMR
		d := splitDirect(tiles, directGroupPixels/directMR)
		parallelChunks(d.tasks(), d.k, func(task0, task1 int) {
			tile := tilePool.Get().(*directTile)
			defer tilePool.Put(tile)
			for task := task0; task < task1; task++ {
				t0, t1 := d.span(task)
				m0, m1 := t0*directMR, min(t1*directMR, npix)
				if m0 >= m1 {
					continue
				}
				buf, bb, base := stageInput(stage, m0*cs, m1*cs)
				for b := range nb {
					for m := m0; m < m1; m += directMR {
						run(tile, buf, b, m, min(directMR, m1-m), m*cs-base)
					}
				}
				if bb != nil {
					putBytes(bb)
				}
			}
		})
		return
	}
	rows := s.N * oh
	d := splitDirect(rows, max(1, directGroupPixels/ow))
	tiles := (ow + directMR - 1) / directMR
	rowElems := wd * cs
	parallelChunks(d.tasks(), d.k, func(task0, task1 int) {
		tile := tilePool.Get().(*directTile)
		defer tilePool.Put(tile)
		for task := task0; task < task1; task++ {
			r0, r1 := d.span(task)
			if r0 >= r1 {
				continue
			}
			// The padded rows that output rows [r0, r1) read.
			p0 := r0/oh*h + r0%oh*s.SH
			p1 := (r1-1)/oh*h + (r1-1)%oh*s.SH + (s.KH-1)*s.DH + 1
			buf, bb, base := stageInput(stage, p0*rowElems, p1*rowElems)
			for b := range nb {
				for row := r0; row < r1; row++ {
					n, oy := row/oh, row%oh
					at := (n*h+oy*s.SH)*rowElems - base
					for t := range tiles {
						ox0, ox1 := t*ow/tiles, (t+1)*ow/tiles
						run(tile, buf, b, row*ow+ox0, ox1-ox0, at+ox0*s.SW*cs)
					}
				}
			}
			if bb != nil {
				putBytes(bb)
			}
		}
	})
}

// A directSplit cuts a direct convolution's units of work (tiles or
// output rows) into tasks: first into one share for each goroutine that
// parallelFor runs, their sizes differing by at most one unit, then each
// share into k pieces of about equal size. Task t is piece t/p of share
// t%p, so that goroutines of equal speed, taking the tasks in turn, each
// end with one share, and one slowed down leaves its later pieces to the
// others. (Groups of a fixed size and a short last one left ResNet-50's
// 7×7 layers at batch 8 with four groups of 18, 18, 18 and 2 rows: one
// goroutine did 36 rows, the other 20.)
type directSplit struct{ units, p, k int }

// splitDirect splits units that are worth sweeping per at a time (a
// group: see directGroupPixels) into up to chunksPerGoroutine pieces a
// goroutine, none much smaller than a group.
func splitDirect(units, per int) directSplit {
	p, _ := chunking(units)
	groups := (units + per - 1) / per
	return directSplit{units, p, min(chunksPerGoroutine, max(1, groups/p))}
}

// tasks returns how many tasks d has: parallelChunks(d.tasks(), d.k, …)
// hands them out one at a time.
func (d directSplit) tasks() int { return d.p * d.k }

// span returns the units [lo, hi) of task t (empty where a share has
// fewer units than pieces).
func (d directSplit) span(t int) (lo, hi int) {
	s, j := t%d.p, t/d.p
	s0, s1 := s*d.units/d.p, (s+1)*d.units/d.p
	return s0 + j*(s1-s0)/d.k, s0 + (j+1)*(s1-s0)/d.k
}

// stageInput returns a buffer holding elements [e0, e1) of a direct
// convolution's input as stage writes them, the pooled bytes behind it
// (for putBytes), and e0; with stage nil, nils and 0 (the tiles read the
// input in place).
func stageInput(stage func(buf []uint16, e0, e1 int), e0, e1 int) (buf []uint16, bb []byte, base int) {
	if stage == nil {
		return nil, nil, 0
	}
	bb = getBytes(2 * (e1 - e0))
	buf = u16Of(bb)
	stage(buf, e0, e1)
	return buf, bb, e0
}

// directTile is a task's [directMR][32] tile of int32 or float32 sums.
type directTile [directMR * 32]uint32

// tilePool recycles the tasks' tiles.
var tilePool = sync.Pool{New: func() any { return new(directTile) }}

// u16Of views a byte buffer as its len/2 16-bit values (bfloat16).
func u16Of(b []byte) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/2)
}

// getBytes returns a pooled byte buffer of length n, not zeroed;
// putBytes gives it back.
func getBytes(n int) []uint8 { return bytePool.Get(n) }

func putBytes(b []uint8) { bytePool.Put(b) }
