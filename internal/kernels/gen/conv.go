package main

import (
	"fmt"
)

// genConvFamily writes, for each instruction set and block width (one or
// two vectors of output channels), the conv and weight-gradient kernels
// of every tile height that fits the registers (and for AVX-512 the
// row-of-three kernels), with the tables that index them by height and
// their Go declarations.
func genConvFamily(e *emitter) {
	for _, is := range isas {
		for _, nv := range []int{1, 2} {
			nr := nv * is.width
			var conv, dw []string
			for mr := 1; mr <= maxMR && mr*nv <= is.maxAcc; mr++ {
				conv = append(conv, genConv(e, is, mr, nv))
			}
			for mr := 1; mr*nv <= is.maxAcc; mr++ {
				dw = append(dw, genDW(e, is, mr, nv))
			}
			if is.name == "AVX512" {
				var row3 []string
				for mr := 1; mr+2 <= maxPix && mr*nv+3*nv+2 <= is.nregs; mr++ {
					row3 = append(row3, genConvRow3(e, is, mr, nv))
				}
				e.gof("\n// convRow3%s_%d[mr-1] is the %s conv kernel for mr pixels × %d channels\n// of a row of three horizontal taps (stride 1, no dilation).\nvar convRow3%s_%d = [...]convKernel{", is.name, nr, is.name, nr, is.name, nr)
				for _, n := range row3 {
					e.gof("%s, ", n)
				}
				e.goText("}\n")
				for _, n := range row3 {
					e.gof("\n//go:noescape\nfunc %s(x unsafe.Pointer, xoff int, w unsafe.Pointer, y unsafe.Pointer, taps *int, ntaps, ic, xs, ys int, scale, shift, skip unsafe.Pointer, skipStride int, floor float32, tiles, pf int)\n", n)
				}
			}
			e.gof("\n// conv%s_%d[mr-1] is the %s conv kernel for mr pixels × %d channels.\nvar conv%s_%d = [...]convKernel{", is.name, nr, is.name, nr, is.name, nr)
			for _, n := range conv {
				e.gof("%s, ", n)
			}
			e.gof("}\n\n// dw%s_%d[mr-1] is the %s weight-gradient kernel for mr input × %d output channels.\nvar dw%s_%d = [...]dwKernel{", is.name, nr, is.name, nr, is.name, nr)
			for _, n := range dw {
				e.gof("%s, ", n)
			}
			e.goText("}\n")
			if is.name == "AVX512" {
				var dwb []string
				for mr := 1; mr*nv <= is.maxAcc; mr++ {
					dwb = append(dwb, genDWOf(e, is, mr, nv, true))
				}
				e.gof("\n// dwBF16%s_%d[mr-1] is the bfloat16 (VDPBF16PS) weight-gradient kernel for mr input × %d output channels.\nvar dwBF16%s_%d = [...]dwKernel{", is.name, nr, nr, is.name, nr)
				for _, n := range dwb {
					e.gof("%s, ", n)
				}
				e.goText("}\n")
				for _, n := range dwb {
					e.gof("\n//go:noescape\nfunc %s(x unsafe.Pointer, xoff int, dy unsafe.Pointer, dw unsafe.Pointer, rows, cols, xcs, xrs, dycs, dyrs, dws int)\n", n)
				}
			}
			for _, n := range conv {
				e.gof("\n//go:noescape\nfunc %s(x unsafe.Pointer, xoff int, w unsafe.Pointer, y unsafe.Pointer, taps *int, ntaps, ic, xs, ys int, scale, shift, skip unsafe.Pointer, skipStride int, floor float32, tiles, pf int)\n", n)
			}
			for _, n := range dw {
				e.gof("\n//go:noescape\nfunc %s(x unsafe.Pointer, xoff int, dy unsafe.Pointer, dw unsafe.Pointer, rows, cols, xcs, xrs, dycs, dyrs, dws int)\n", n)
			}
		}
	}
}

// genConv writes one conv kernel. Arguments (ABI0, 8 bytes each):
// x, xoff, w, y, taps, ntaps, ic, xs, ys, the epilogue's, and tiles: the
// kernel computes that many tiles, each mr pixels past the one before
// (one call per run of equal tiles instead of one per tile). taps holds ntaps (xoffset,
// woffset) byte pairs; x+xoff+xoffset is the tap's first pixel; w+woffset
// its packed weights [ic][NR].
func genConv(e *emitter, is isa, mr, nv int) string {
	name := fmt.Sprintf("conv%s_%dx%d", is.name, mr, nv*is.width)
	wreg := []string{fmt.Sprintf("%s%d", is.reg, is.nregs-4), fmt.Sprintf("%s%d", is.reg, is.nregs-3)}
	breg := []string{fmt.Sprintf("%s%d", is.reg, is.nregs-2), fmt.Sprintf("%s%d", is.reg, is.nregs-1)}
	vb := is.width * 4
	// A small tile has too few accumulators to hide the FMA latency: it
	// sums successive input channels into separate sets of accumulators,
	// added together at the end.
	sets := 1
	for (sets+1)*mr*nv <= min(8, is.maxAcc) {
		sets++
	}
	e.textf("\n// func %s(x unsafe.Pointer, xoff int, w unsafe.Pointer, y unsafe.Pointer, taps *int, ntaps, ic, xs, ys int, scale, shift, skip unsafe.Pointer, skipStride int, floor float32, tiles, pf int)\nTEXT ·%s(SB), NOSPLIT, $0-128\n%s_tile:\n", name, name, name)
	for p := 0; p < sets*mr; p++ {
		for v := 0; v < nv; v++ {
			r := acc(is, p, v, nv)
			e.textf("\t%s %s, %s, %s\n", is.zero, r, r, r)
		}
	}
	genSkipPrefetch(e, name, mr, nv, vb)
	e.text("\tMOVQ x+0(FP), R12\n\tADDQ xoff+8(FP), R12\n\tMOVQ w+16(FP), R13\n\tMOVQ taps+32(FP), AX\n\tMOVQ ntaps+40(FP), BX\n\tMOVQ xs+56(FP), SI\n\tLEAQ (SI)(SI*2), DI\n")
	e.textf("\tTESTQ BX, BX\n\tJZ %s_store\n%s_tap:\n", name, name)
	e.text("\tMOVQ 0(AX), DX\n\tADDQ R12, DX\n\tMOVQ 8(AX), R11\n\tADDQ R13, R11\n\tMOVQ pf+120(FP), R14\n")
	if mr > 5 {
		e.text("\tLEAQ (DX)(SI*1), R8\n")
	}
	if mr > 10 {
		e.text("\tLEAQ (DX)(SI*2), R9\n\tLEAQ (DX)(DI*1), R10\n")
	}
	// step emits one input channel's FMAs, k channels past R11 and DX, into
	// accumulator set k.
	step := func(k int) {
		if mr*nv >= 4 {
			// The weights stream from memory on a block's first tile (a
			// layer's weights are out of cache in a network pass): ask for
			// them prefetchDist bytes ahead.
			e.textf("\tPREFETCHT0 %d(R11)\n", k*nv*vb+prefetchDist)
			// And the next channel block's weights into L2, at the same
			// place (pf bytes on, in R14; 0 for the last block): the
			// next block then starts from L2, its memory reads overlapped
			// with this block's arithmetic. Measured on Zen 5, steps
			// alternated in one process against pf = 0: ResNet-50 at
			// batch 1 5–8% faster (its stage-4 1×1 convolutions 20–30%),
			// batch 8 and CIFAR training and inference level (±1%).
			for v := 0; v < nv; v++ {
				e.textf("\tPREFETCHT1 %d(R11)(R14*1)\n", (k*nv+v)*vb)
			}
		}
		for v := 0; v < nv; v++ {
			e.textf("\tVMOVUPS %d(R11), %s\n", (k*nv+v)*vb, wreg[v])
		}
		for p := 0; p < mr; p++ {
			a := func(v int) string { return acc(is, k*mr+p, v, nv) }
			if nv == 1 && is.name == "AVX512" {
				// One FMA per activation: fold the broadcast into the FMA's
				// memory operand instead of spending a separate broadcast.
				e.textf("\tVFMADD231PS.BCST %s, %s, %s\n", pixAddr(p, 4*k), wreg[0], a(0))
				continue
			}
			b := breg[p%2]
			e.textf("\tVBROADCASTSS %s, %s\n", pixAddr(p, 4*k), b)
			for v := 0; v < nv; v++ {
				e.textf("\tVFMADD231PS %s, %s, %s\n", wreg[v], b, a(v))
			}
		}
	}
	advance := func(k int) {
		e.textf("\tADDQ $%d, R11\n\tADDQ $%d, DX\n", k*nv*vb, 4*k)
		if mr > 5 {
			e.textf("\tADDQ $%d, R8\n", 4*k)
		}
		if mr > 10 {
			e.textf("\tADDQ $%d, R9\n\tADDQ $%d, R10\n", 4*k, 4*k)
		}
	}
	e.text("\tMOVQ ic+48(FP), CX\n")
	if sets > 1 {
		// Channels in groups of sets, each into its own accumulators,
		// then the rest into set 0.
		e.textf("%s_icn:\n\tCMPQ CX, $%d\n\tJLT %s_ic1\n", name, sets, name)
		for k := 0; k < sets; k++ {
			step(k)
		}
		advance(sets)
		e.textf("\tSUBQ $%d, CX\n\tJMP %s_icn\n%s_ic1:\n\tTESTQ CX, CX\n\tJZ %s_next\n", sets, name, name, name)
		step(0)
		advance(1)
		e.textf("\tDECQ CX\n\tJMP %s_ic1\n%s_next:\n", name, name)
	} else {
		e.textf("%s_ic:\n", name)
		step(0)
		advance(1)
		e.textf("\tDECQ CX\n\tJNZ %s_ic\n", name)
	}
	e.textf("\tADDQ $16, AX\n\tDECQ BX\n\tJNZ %s_tap\n%s_store:\n", name, name)
	for k := 1; k < sets; k++ {
		for p := 0; p < mr; p++ {
			for v := 0; v < nv; v++ {
				e.textf("\tVADDPS %s, %s, %s\n", acc(is, k*mr+p, v, nv), acc(is, p, v, nv), acc(is, p, v, nv))
			}
		}
	}
	genStore(e, is, name, mr, nv, append(wreg, breg...))
	return name
}

// genSkipPrefetch writes, at the start of a conv kernel's tile, a
// prefetch of the tile's skip rows (mr pixels, nv vectors each) when the
// epilogue adds one: the residual addition's operand is a whole block's
// input, out of cache in a network pass, and its loads at the end of the
// tile otherwise wait for memory one after another.
func genSkipPrefetch(e *emitter, name string, mr, nv, vb int) {
	e.textf("\tMOVQ scale+72(FP), R11\n\tTESTQ R11, R11\n\tJZ %s_nopf\n\tMOVQ skipStride+96(FP), R14\n\tTESTQ R14, R14\n\tJZ %s_nopf\n\tMOVQ skip+88(FP), R13\n", name, name)
	for p := 0; p < mr; p++ {
		for v := 0; v < nv; v++ {
			e.textf("\tPREFETCHT0 %d(R13)\n", v*vb)
		}
		if p < mr-1 {
			e.text("\tADDQ R14, R13\n")
		}
	}
	e.textf("%s_nopf:\n", name)
}

// prefetchDist is how far ahead of its loads (bytes) a conv kernel
// prefetches its packed weights. ResNet-50 inference, alternated per step
// in one process against a prefetch of the line being loaded: 256-1024
// bytes were all faster at batch 1 (512: 4-9%) and training 3%; 2048 lost
// the gain.
const prefetchDist = 512

// genConvRow3 writes one conv kernel for the interior of a 3-wide kernel
// at stride 1: taps holds one (xoffset, woffset) pair per kernel row, for
// its left tap; the row's three taps u = 0, 1, 2 read pixels q = p+u and
// weights woffset + u·ic·NR·4. Each broadcast activation x[q][c] then
// feeds the three outputs p = q−u that use it — three times the FMAs per
// load of genConv, which matters most for one-vector (16-channel) tiles,
// where genConv does one load per FMA. It ignores pf: genConv's prefetch of
// the next block made ResNet-50's 7×7 3×3 convolutions (590 KB of weights a
// block, two of them more than L2 holds) 20–30% slower here.
func genConvRow3(e *emitter, is isa, mr, nv int) string {
	name := fmt.Sprintf("convRow3%s_%dx%d", is.name, mr, nv*is.width)
	vb := is.width * 4
	wreg := func(u, v int) string { return fmt.Sprintf("%s%d", is.reg, mr*nv+u*nv+v) }
	breg := []string{fmt.Sprintf("%s%d", is.reg, is.nregs-2), fmt.Sprintf("%s%d", is.reg, is.nregs-1)}
	e.textf("\n// func %s(x unsafe.Pointer, xoff int, w unsafe.Pointer, y unsafe.Pointer, taps *int, ntaps, ic, xs, ys int, scale, shift, skip unsafe.Pointer, skipStride int, floor float32, tiles, pf int)\nTEXT ·%s(SB), NOSPLIT, $0-128\n%s_tile:\n", name, name, name)
	for p := 0; p < mr; p++ {
		for v := 0; v < nv; v++ {
			r := acc(is, p, v, nv)
			e.textf("\t%s %s, %s, %s\n", is.zero, r, r, r)
		}
	}
	// R14 = the weight stride between horizontal taps: ic·NR·4 bytes.
	e.textf("\tMOVQ x+0(FP), R12\n\tADDQ xoff+8(FP), R12\n\tMOVQ w+16(FP), R13\n\tMOVQ taps+32(FP), AX\n\tMOVQ ntaps+40(FP), BX\n\tMOVQ xs+56(FP), SI\n\tLEAQ (SI)(SI*2), DI\n\tMOVQ ic+48(FP), R14\n\tIMULQ $%d, R14\n", nv*vb)
	e.textf("\tTESTQ BX, BX\n\tJZ %s_store\n%s_tap:\n", name, name)
	e.text("\tMOVQ 0(AX), DX\n\tADDQ R12, DX\n\tMOVQ 8(AX), R11\n\tADDQ R13, R11\n\tLEAQ (DX)(SI*1), R8\n\tLEAQ (DX)(SI*2), R9\n\tLEAQ (DX)(DI*1), R10\n")
	e.textf("\tMOVQ ic+48(FP), CX\n%s_ic:\n", name)
	for u := 0; u < 3; u++ {
		for v := 0; v < nv; v++ {
			base := "(R11)"
			if u > 0 {
				base = fmt.Sprintf("(R11)(R14*%d)", u)
			}
			if v > 0 {
				base = fmt.Sprintf("%d%s", v*vb, base)
			}
			e.textf("\tVMOVUPS %s, %s\n", base, wreg(u, v))
		}
	}
	for q := 0; q < mr+2; q++ {
		b := breg[q%2]
		e.textf("\tVBROADCASTSS %s, %s\n", pixAddr(q, 0), b)
		for u := 0; u < 3; u++ {
			if p := q - u; p >= 0 && p < mr {
				for v := 0; v < nv; v++ {
					e.textf("\tVFMADD231PS %s, %s, %s\n", wreg(u, v), b, acc(is, p, v, nv))
				}
			}
		}
	}
	e.textf("\tADDQ $%d, R11\n\tADDQ $4, DX\n\tADDQ $4, R8\n\tADDQ $4, R9\n\tADDQ $4, R10\n", nv*vb)
	e.textf("\tDECQ CX\n\tJNZ %s_ic\n\tADDQ $16, AX\n\tDECQ BX\n\tJNZ %s_tap\n%s_store:\n", name, name, name)
	free := append([]string(nil), breg...)
	for u := 0; u < 3; u++ {
		for v := 0; v < nv; v++ {
			free = append(free, wreg(u, v))
		}
	}
	genStore(e, is, name, mr, nv, free)
	return name
}

// genStore writes a conv kernel's store of its mr×nv accumulators at y
// (pixel stride ys). With scale nil it stores them as they are; otherwise
// it applies the epilogue y = max(acc·scale + shift + skip, floor) per
// output channel — a batch norm in evaluation mode, a bias, a residual
// addition and a ReLU (floor 0; −∞ for none) — reading skip with its own
// pixel stride (0 to add a block of zeros). free lists vector registers
// the kernel no longer needs (nv+1 of them are used).
func genStore(e *emitter, is isa, name string, mr, nv int, free []string) {
	vb := is.width * 4
	e.textf("\tMOVQ y+24(FP), DX\n\tMOVQ ys+64(FP), SI\n\tMOVQ scale+72(FP), R11\n\tTESTQ R11, R11\n\tJNZ %s_epilogue\n", name)
	for p := 0; p < mr; p++ {
		for v := 0; v < nv; v++ {
			e.textf("\tVMOVUPS %s, %d(DX)\n", acc(is, p, v, nv), v*vb)
		}
		if p < mr-1 {
			e.text("\tADDQ SI, DX\n")
		}
	}
	e.textf("\tJMP %s_more\n%s_epilogue:\n", name, name)
	floor, sc := free[0], free[1:1+nv]
	e.textf("\tMOVQ shift+80(FP), R12\n\tMOVQ skip+88(FP), R13\n\tMOVQ skipStride+96(FP), R14\n\tVBROADCASTSS floor+104(FP), %s\n", floor)
	for v := 0; v < nv; v++ {
		e.textf("\tVMOVUPS %d(R11), %s\n", v*vb, sc[v])
	}
	for p := 0; p < mr; p++ {
		for v := 0; v < nv; v++ {
			a := acc(is, p, v, nv)
			e.textf("\tVFMADD213PS %d(R12), %s, %s\n\tVADDPS %d(R13), %s, %s\n\tVMAXPS %s, %s, %s\n\tVMOVUPS %s, %d(DX)\n",
				v*vb, sc[v], a, v*vb, a, a, a, floor, a, a, v*vb)
		}
		if p < mr-1 {
			e.text("\tADDQ SI, DX\n\tADDQ R14, R13\n")
		}
	}
	// The next tile, if any, starts mr pixels on: its input xs·mr bytes,
	// its output ys·mr and its skip skipStride·mr further (arguments are
	// the callee's to change).
	e.textf("%s_more:\n\tDECQ tiles+112(FP)\n\tJLE %s_done\n", name, name)
	for _, a := range []struct{ stride, ptr string }{{"xs+56(FP)", "xoff+8(FP)"}, {"ys+64(FP)", "y+24(FP)"}, {"skipStride+96(FP)", "skip+88(FP)"}} {
		e.textf("\tMOVQ %s, AX\n\tIMULQ $%d, AX\n\tADDQ AX, %s\n", a.stride, mr, a.ptr)
	}
	e.textf("\tJMP %s_tile\n%s_done:\n\tVZEROUPPER\n\tRET\n", name, name)
}

// genDW writes one weight-gradient kernel. Arguments: x, xoff, dy, dw,
// rows, cols, xcs, xrs, dycs, dyrs, dws (strides in bytes; the row strides
// go from one row's first pixel to the next's).
func genDW(e *emitter, is isa, mr, nv int) string { return genDWOf(e, is, mr, nv, false) }

// genDWOf writes genDW's kernel, or with bf16 its bfloat16 counterpart
// (AVX-512 only): x and dy hold bfloat16 pairs where the float32 kernel
// reads floats (4 bytes each either way), and VDPBF16PS adds each pair's
// two products where the float32 kernel adds one.
func genDWOf(e *emitter, is isa, mr, nv int, bf16 bool) string {
	name := fmt.Sprintf("dw%s_%dx%d", is.name, mr, nv*is.width)
	if bf16 {
		name = fmt.Sprintf("dwBF16%s_%dx%d", is.name, mr, nv*is.width)
	}
	dreg := []string{fmt.Sprintf("%s%d", is.reg, is.nregs-4), fmt.Sprintf("%s%d", is.reg, is.nregs-3)}
	breg := []string{fmt.Sprintf("%s%d", is.reg, is.nregs-2), fmt.Sprintf("%s%d", is.reg, is.nregs-1)}
	vb := is.width * 4
	e.textf("\n// func %s(x unsafe.Pointer, xoff int, dy unsafe.Pointer, dw unsafe.Pointer, rows, cols, xcs, xrs, dycs, dyrs, dws int)\nTEXT ·%s(SB), NOSPLIT, $0-88\n", name, name)
	e.text("\tMOVQ dw+24(FP), R13\n\tMOVQ dws+80(FP), R12\n\tMOVQ R13, DX\n")
	for p := 0; p < mr; p++ {
		for v := 0; v < nv; v++ {
			e.textf("\tVMOVUPS %d(DX), %s\n", v*vb, acc(is, p, v, nv))
		}
		if p < mr-1 {
			e.text("\tADDQ R12, DX\n")
		}
	}
	e.text("\tMOVQ x+0(FP), R8\n\tADDQ xoff+8(FP), R8\n\tMOVQ dy+16(FP), R9\n\tMOVQ rows+32(FP), BX\n\tMOVQ xcs+48(FP), SI\n\tMOVQ dycs+64(FP), DI\n")
	e.textf("\tTESTQ BX, BX\n\tJZ %s_store\n%s_row:\n\tMOVQ R8, AX\n\tMOVQ R9, R10\n\tMOVQ cols+40(FP), CX\n\tTESTQ CX, CX\n\tJZ %s_next\n%s_col:\n", name, name, name, name)
	for v := 0; v < nv; v++ {
		e.textf("\tVMOVUPS %d(R10), %s\n", v*vb, dreg[v])
	}
	for p := 0; p < mr; p++ {
		if bf16 {
			b := is.nregs - 2 + p%2
			e.op("VPBROADCASTD %d(AX), %s", 4*p, z(b))
			for v := 0; v < nv; v++ {
				e.dpbf16(p*nv+v, b, is.nregs-4+v)
			}
			continue
		}
		if nv == 1 && is.name == "AVX512" {
			// One FMA per activation: broadcast from memory in the FMA.
			e.textf("\tVFMADD231PS.BCST %d(AX), %s, %s\n", 4*p, dreg[0], acc(is, p, 0, nv))
			continue
		}
		b := breg[p%2]
		e.textf("\tVBROADCASTSS %d(AX), %s\n", 4*p, b)
		for v := 0; v < nv; v++ {
			e.textf("\tVFMADD231PS %s, %s, %s\n", dreg[v], b, acc(is, p, v, nv))
		}
	}
	e.textf("\tADDQ SI, AX\n\tADDQ DI, R10\n\tDECQ CX\n\tJNZ %s_col\n%s_next:\n\tADDQ xrs+56(FP), R8\n\tADDQ dyrs+72(FP), R9\n\tDECQ BX\n\tJNZ %s_row\n%s_store:\n\tMOVQ R13, DX\n", name, name, name, name)
	for p := 0; p < mr; p++ {
		for v := 0; v < nv; v++ {
			e.textf("\tVMOVUPS %s, %d(DX)\n", acc(is, p, v, nv), v*vb)
		}
		if p < mr-1 {
			e.text("\tADDQ R12, DX\n")
		}
	}
	e.text("\tVZEROUPPER\n\tRET\n")
	return name
}
