//go:build amd64 && !purego

package kernels

import "unsafe"

// amxBF16Positions is about how many positions (output pixels and those
// computed and dropped) a task of convDirectAMXBF16 sweeps with one
// 32-channel block of weights before the next: amxGroup blocks of 32.
const amxBF16Positions = amxGroup * 32

// amxBF16OK reports whether convDirectAMXBF16 computes s on kernels of
// block width nr with cp channels stored a pixel: AMX-BF16 is on (set.amx),
// the blocks are 32 channels wide, a kernel row is whole 32-element steps
// (KW·cp a multiple of 32), and one stride both ways divides the padded
// image's pixels.
func amxBF16OK(s ConvShape, set bf16DirectSet, nr, cp int) bool {
	h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
	return set.amx && hasAMXBF16 && nr == 32 && s.KW*cp%32 == 0 && s.SH == s.SW && s.SH > 0 && h*wd%s.SH == 0 && s.DW == 1
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
						case ox >= ow: // past the row's last output
							p += wd - ox
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
