//go:build amd64 && !purego

package kernels

import (
	"unsafe"
)

// oneTap is a 1×1 convolution's tap offsets for amxInt8Conv32.
var oneTap = [1]int{0}

// amxGroup is how many 32-pixel blocks int8ConvAMX runs against one
// 32-channel block of weights before the next: the weights block stays in
// cache while the group's pixels pass.
const amxGroup = 8

// int8ConvAMX is int8ConvDirect's sweep for an unpadded 1×1 convolution
// of stride 1 (the batch one long row of pixels) with a multiple of 64
// input channels and of 32 output ones, on AMX tiles: 32 pixels by 32
// channels a tile, the same int32 sums as the VNNI kernels, then the same
// epilogue. The last pixels short of 32 are copied into a tile of their
// own, its other rows zeros, whose sums are dropped: they are a third of
// ResNet-50's 7×7 layers at batch 1, and the VNNI kernels run at a
// seventh of the tiles' rate. It reports whether it applied (a float32
// output, or other shapes: not).
func int8ConvAMX(s ConvShape, src []uint8, packed []int8, e *Int8Epilogue, y []uint8, yf []float32) bool {
	if !hasAMX || yf != nil || s.C%64 != 0 || s.OC%32 != 0 || s.KH != 1 || s.KW != 1 || s.SH != 1 || s.SW != 1 || s.PT|s.PB|s.PL|s.PR != 0 {
		return false
	}
	npix, nb := s.N*s.H*s.W, s.OC/32
	blocks := npix / 32
	blockSize := s.C * 32 // bytes of one 32-channel block of packed weights
	cfg := unsafe.Pointer(&amxConfig[0])
	groups := (blocks + amxGroup - 1) / amxGroup
	units := groups // and the tail, if any
	if npix%32 != 0 {
		units++
	}
	parts := amxParts(units, nb)
	parallelFor(units*parts, func(lo, hi int) {
		acc := int32Pool.Get(amxGroup * 32 * 32)
		defer int32Pool.Put(acc)
		for job := lo; job < hi; job++ {
			// Pixel group g (the tail of pixels short of a tile past the
			// last), channel blocks [c0, c1).
			g, c0, c1 := amxJob(job, parts, nb)
			if g == groups { // the tail, copied into a tile of 32 rows
				tail := npix - blocks*32
				rows := getBytes(32 * s.C)
				copy(rows, src[blocks*32*s.C:npix*s.C])
				clear(rows[tail*s.C:])
				for b := c0; b < c1; b++ {
					amxInt8Conv32(cfg, unsafe.Pointer(&rows[0]), s.C, unsafe.Pointer(&packed[b*blockSize]), s.C/64, unsafe.Pointer(&acc[0]), 1, unsafe.Pointer(&oneTap[0]), 1)
					e.storeTile(acc, blocks*32, tail, s.OC, b*32, 32, y)
				}
				putBytes(rows)
				continue
			}
			b0, b1 := g*amxGroup, min((g+1)*amxGroup, blocks)
			for b := c0; b < c1; b++ {
				amxInt8Conv32(cfg, unsafe.Pointer(&src[b0*32*s.C]), s.C, unsafe.Pointer(&packed[b*blockSize]), s.C/64, unsafe.Pointer(&acc[0]), b1-b0, unsafe.Pointer(&oneTap[0]), 1)
				for blk := b0; blk < b1; blk++ {
					e.storeTile(acc[(blk-b0)*1024:], blk*32, 32, s.OC, b*32, 32, y)
				}
			}
		}
	})
	return true
}

// amxParts is how many ranges of its nb channel blocks an AMX sweep cuts
// the work on each of its units of pixels (a group of blocks, or
// int8ConvAMXStaged's span) into (a job: one unit, one range): enough for
// two jobs a goroutine where there are few units, one where there are
// many. A goroutine's consecutive jobs take the same unit. ResNet-50's
// 7×7 and 14×14 layers at batch 1 are one unit each: uncut, one core
// would run them while the other waits.
func amxParts(groups, nb int) int {
	return min(max((2*threads()+groups-1)/max(groups, 1), 1), nb)
}

// amxJob returns job's unit of pixels and its range [c0, c1) of the nb
// channel blocks, cut into parts ranges (amxParts).
func amxJob(job, parts, nb int) (g, c0, c1 int) {
	part := job % parts
	return job / parts, part * nb / parts, (part + 1) * nb / parts
}

// amxConvOK reports whether int8ConvAMXStaged computes s: the same
// stride both ways, no dilation, a multiple of 64 input channels and of
// 32 output ones, a u8 output.
func amxConvOK(s ConvShape, yf []float32) bool {
	return hasAMX && yf == nil && s.C%64 == 0 && s.OC%32 == 0 && s.SH == s.SW && s.SH > 0 && s.DH == 1 && s.DW == 1
}

// amxStage is how many groups of 32-position blocks (amxGroup blocks a
// group) int8ConvAMXStaged copies the input of at once, at most: about a
// thousand positions, whose pixels (64 KB at 64 channels and stride 1)
// stay in a core's L2 while their tiles read them, so that the halo each
// copy repeats (the kernel's reach: KH−1 rows and KW−1 pixels of the
// padded input at stride 1, (KH−1)/st rows of each phase at stride st)
// is an eighth of it at ResNet-50's first stage.
const amxStage = 4

// int8ConvAMXStaged is int8ConvDirect's sweep on AMX tiles (amxConvOK).
//
// At stride 1 it computes over the input as if padded with zero points
// to h×wd pixels an image: output pixel (oy, ox) of image n reads the
// padded input from pixel p = n·h·wd + oy·wd + ox on, at offset
// (ky·wd + kx) for each tap, so the positions p of a 32-row tile are
// consecutive, their rows C bytes apart, as an AMX tile reads them,
// whatever image row they fall on. The positions past an output row's
// last pixel (ox ≥ OW) or an image's last row compute outputs that are
// dropped: 2 columns in 58 for ResNet-50's first stage.
//
// At stride st > 1 the padded input is split into st² phases, phase
// (ry, rx) holding padded pixels (st·py + ry, st·px + rx), each an image
// of hp×wp pixels (hp = OH + (KH−1)/st, wp = OW + (KW−1)/st): tap (ky,
// kx) reads phase (ky mod st, kx mod st) from pixel (oy + ky/st, ox +
// kx/st) on, so the same sweep runs at stride 1 over positions
// p = n·hp·wp + oy·wp + ox, its taps in the phases they read. The
// positions past OW in a row and past OH in an image are dropped (15 in
// 64 an image for ResNet-50's last 3×3 of stride 2), where sweeping the
// padded input at stride st dropped more than half (79 in 128).
//
// The padded input is never stored whole: each job copies the pixels
// its positions read (its blocks' span and the kernel's reach past it,
// in each phase that a tap reads) into a buffer of its parallel chunk
// of jobs, in cache while its tiles read it, instead of a padded copy of
// the batch written to memory and read back; consecutive jobs of one
// unit (other channel blocks) copy it once.
func int8ConvAMXStaged(s ConvShape, x []uint8, zx uint8, packed []int8, e *Int8Epilogue, y []uint8) {
	oh, ow, st := s.OH(), s.OW(), s.SH
	hp, wp := oh+(s.KH-1)/st, ow+(s.KW-1)/st // a phase's pixels (st = 1: the padded image's)
	img := hp * wp                           // positions an image
	total := (s.N-1)*img + (oh-1)*wp + ow    // positions up to the last output
	blocks := (total + 31) / 32
	nb := s.OC / 32
	blockSize := s.KH * s.KW * s.C * 32
	// Blocks a job stages: amxStage groups, fewer where the batch has
	// too few for four jobs a goroutine.
	span := min(amxStage*amxGroup, max(blocks/(4*threads()), 1))
	reach := (s.KH-1)/st*wp + (s.KW-1)/st + 1 // pixels a position reads in a phase from its own on
	region := 32*span + reach                 // a phase's pixels in a job's buffer
	taps := make([]int, 0, s.KH*s.KW)         // byte offsets in the buffer from a position's first phase pixel
	read := make([]bool, st*st)               // the phases a tap reads
	for ky := range s.KH {
		for kx := range s.KW {
			phase := ky%st*st + kx%st
			taps = append(taps, (phase*region+ky/st*wp+kx/st)*s.C)
			read[phase] = true
		}
	}
	cfg := unsafe.Pointer(&amxConfig[0])
	units := (blocks + span - 1) / span
	parts := amxParts(units, nb)
	parallelFor(units*parts, func(lo, hi int) {
		acc := int32Pool.Get(amxGroup * 32 * 32)
		defer int32Pool.Put(acc)
		buf := getBytes(st * st * region * s.C)
		defer putBytes(buf)
		staged := -1 // the unit in buf
		for job := lo; job < hi; job++ {
			u, c0, c1 := amxJob(job, parts, nb) // blocks [u·span, …), channel blocks [c0, c1)
			u0, u1 := u*span, min((u+1)*span, blocks)
			// The phase pixels the unit reads, and one more (the last
			// position's last tap reads up to reach−1 pixels past it).
			q0, count := 32*u0, 32*(u1-u0)+reach
			if u != staged {
				for phase, r := range read {
					if r {
						stagePhase(s, x, zx, hp, wp, phase/st, phase%st, q0, count, buf[phase*region*s.C:(phase+1)*region*s.C])
					}
				}
				staged = u
			}
			for b0 := u0; b0 < u1; b0 += amxGroup {
				b1 := min(b0+amxGroup, u1)
				a := unsafe.Pointer(&buf[(32*b0-q0)*s.C])
				for b := c0; b < c1; b++ {
					amxInt8Conv32(cfg, a, s.C, unsafe.Pointer(&packed[b*blockSize]), s.C/64, unsafe.Pointer(&acc[0]), b1-b0, unsafe.Pointer(&taps[0]), len(taps))
					// Store the outputs among the positions, in runs along an
					// output row.
					for p := b0 * 32; p < min(b1*32, total); {
						n, r := p/img, p%img
						oy, ox := r/wp, r%wp
						if oy >= oh || ox >= ow {
							p++
							continue
						}
						run := min(ow-ox, b1*32-p, total-p)
						e.storeTile(acc[(p-b0*32)*32:], (n*oh+oy)*ow+ox, run, s.OC, b*32, 32, y)
						p += run
					}
				}
			}
		}
	})
}

// amxRowsOK reports whether int8ConvAMXRows computes s: kernel rows of
// at most 64 bytes (KW·C) over fewer than 64 channels (the stem's 7×3),
// no horizontal dilation, a multiple of 32 output channels, a u8 output.
func amxRowsOK(s ConvShape, yf []float32) bool {
	return hasAMX && yf == nil && s.C%64 != 0 && s.KW*s.C <= 64 && s.DW == 1 && s.OC%32 == 0 && s.N*s.OH()*s.OW() > 0
}

// int8ConvAMXRows is int8ConvDirect on AMX tiles for convolutions whose
// kernel rows are at most one 64-byte step (amxRowsOK): ResNet's stem, 7
// pixels of 3 channels a row. Each output row is a sweep of 32-pixel
// blocks whose tile rows are output pixels, SW·C bytes apart in the
// padded input, each reading the 64 bytes from its first kernel row's
// pixel on: the kernel row's KW·C bytes and what follows, which weights
// padded with zeros to 64 (packedRows64) cancel. There is one step of
// 64 bytes a kernel row, KH a tile; the positions past an output row's
// end are computed and dropped (16 in 128 for the stem at 112 wide).
// The padded copy of x carries slack for the last reads past it.
func int8ConvAMXRows(s ConvShape, x []uint8, zx uint8, packed []int8, e *Int8Epilogue, y []uint8) {
	oh, ow := s.OH(), s.OW()
	h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
	blocksRow := (ow + 31) / 32
	src := padU8(s, x, zx, h, wd, 32*blocksRow*s.SW*s.C+64) // the last row's blocks read on past the image
	defer putBytes(src)
	taps := make([]int, s.KH) // the kernel rows' byte offsets
	for ky := range taps {
		taps[ky] = ky * s.DH * wd * s.C
	}
	nb, blockSize := s.OC/32, s.KH*2048
	cfg := unsafe.Pointer(&amxConfig[0])
	parallelFor(s.N*oh, func(lo, hi int) {
		acc := int32Pool.Get(amxGroup * 32 * 32)
		defer int32Pool.Put(acc)
		for r := lo; r < hi; r++ {
			at := (r/oh*h + r%oh*s.SH) * wd * s.C // the output row's first pixel's first kernel row
			for g := 0; g < blocksRow; g += amxGroup {
				gb := min(amxGroup, blocksRow-g)
				a := unsafe.Pointer(&src[at+32*g*s.SW*s.C])
				for b := range nb {
					amxInt8Conv32(cfg, a, s.SW*s.C, unsafe.Pointer(&packed[b*blockSize]), 1, unsafe.Pointer(&acc[0]), gb, unsafe.Pointer(&taps[0]), len(taps))
					for i := range gb {
						ox := 32 * (g + i)
						e.storeTile(acc[i*1024:], r*ow+ox, min(32, ow-ox), s.OC, b*32, 32, y)
					}
				}
			}
		}
	})
}
