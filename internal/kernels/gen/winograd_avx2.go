package main

import "math"

// genWinogradAVX2 writes the AVX2 versions of the Winograd transforms, for
// F(2×2, 3×3) and F(4×4, 3×3), with the signatures of their AVX-512
// counterparts (winograd.go, winograd4.go) and "AVX2" for "512" in their
// names: winoInAVX2, winoIn4_AVX2, winoOutAVX2, winoOutSkipAVX2,
// winoOut4_AVX2, winoOutSkip4_AVX2, winoWeightsAVX2, winoWeights4_AVX2,
// winoGradAVX2, winoGrad4_AVX2 and winoGradOut4_AVX2. A vector is 8
// channels.
//
// AVX2 has 16 vector registers, too few to hold a transformed tile (16 or
// 36 vectors) the way the AVX-512 kernels do, so each 2-D transform runs
// as two passes of its 1-D transform, the first storing its results in a
// scratch on the stack that the second reads (the weight gradient's
// transform back: in the products being transformed, scratch that nothing
// reads afterwards). The destination's positions are often a multiple of
// 4 KB apart, so a first pass stored there and read back stalls on 4K
// aliasing; the stack's scratch is contiguous and stays in L1.
func genWinogradAVX2(e *emitter) {
	v := ymmOps(e)
	e.text("\n")
	for i, k := range winoK4 {
		for j := 0; j < 8; j++ {
			e.op("DATA wk4y<>+%d(SB)/4, $0x%08x", 32*i+4*j, math.Float32bits(k))
		}
	}
	e.op("GLOBL wk4y<>(SB), RODATA|NOPTR, $%d", 32*len(winoK4))

	// The 1-D transforms, each as the two passes call it.
	bt2 := func(d, t []string) { // Bᵀ of F(2×2): d0−d2, d1+d2, d2−d1, d1−d3
		e.op("VSUBPS %s, %s, %s", d[2], d[0], t[0])
		e.op("VADDPS %s, %s, %s", d[2], d[1], t[1])
		e.op("VSUBPS %s, %s, %s", d[1], d[2], t[2])
		e.op("VSUBPS %s, %s, %s", d[3], d[1], t[3])
	}
	bt4 := func(d, t []string) { v.bt4([6]string(d), [6]string(t), v.reg(12), v.reg(13)) }
	v.winoIn("winoInAVX2", 4, bt2)
	v.winoIn("winoIn4_AVX2", 6, bt4)

	// Aᵀ of F(2×2) in place: m0+m1+m2, m1−m2−m3.
	outT2 := func(m []string) []string {
		e.op("VADDPS %s, %s, %s", m[1], m[0], m[0])
		e.op("VADDPS %s, %s, %s", m[2], m[0], m[0])
		e.op("VSUBPS %s, %s, %s", m[2], m[1], m[1])
		e.op("VSUBPS %s, %s, %s", m[3], m[1], m[1])
		return m[:2]
	}
	// Aᵀ of F(4×4), over m0..m5 with the temporaries Y6..9.
	outT4 := func(m []string) []string { return v.aT4(m, v.regs(6, 4)) }
	for _, skip := range []bool{false, true} {
		s := ""
		if skip {
			s = "Skip"
		}
		v.winoOut("winoOut"+s+"AVX2", 4, 2, skip, outT2)
		v.winoOut("winoOut"+s+"4_AVX2", 6, 4, skip, outT4)
	}

	// G of F(2×2): g0, ½(g0+g1+g2), ½(g0−g1+g2), g2 (½ in Y15).
	gg2 := func(g, o []string) {
		tmp := v.reg(7)
		e.op("VMOVAPS %s, %s", g[0], o[0])
		e.op("VMOVAPS %s, %s", g[2], o[3])
		e.op("VADDPS %s, %s, %s", g[2], g[0], tmp)
		e.op("VADDPS %s, %s, %s", g[1], tmp, o[1])
		e.op("VMULPS Y15, %s, %s", o[1], o[1])
		e.op("VSUBPS %s, %s, %s", g[1], tmp, o[2])
		e.op("VMULPS Y15, %s, %s", o[2], o[2])
	}
	gg4 := func(g, o []string) { v.gg4(g[0], g[1], g[2], [6]string(o), v.reg(9)) }
	v.winoWeights("winoWeightsAVX2", 4, gg2)
	v.winoWeights("winoWeights4_AVX2", 6, gg4)

	// A of F(2×2), for the output gradient: g0, g0+g1, g0−g1, −g1 (zero in Y15).
	a2 := func(g, o []string) {
		e.op("VMOVAPS %s, %s", g[0], o[0])
		e.op("VADDPS %s, %s, %s", g[1], g[0], o[1])
		e.op("VSUBPS %s, %s, %s", g[1], g[0], o[2])
		e.op("VSUBPS %s, Y15, %s", g[1], o[3])
	}
	a4 := func(g, o []string) { v.at4([4]string(g), [6]string(o), v.reg(10), v.reg(11)) }
	v.winoGrad("winoGradAVX2", 2, 4, a2)
	v.winoGrad("winoGrad4_AVX2", 4, 6, a4)
	v.winoGradOut4()
}

// winoIn writes an input transform (winoIn512's signature) for n×n
// windows; see winoTiles.
func (v vecOps) winoIn(name string, n int, t1 func(d, t []string)) {
	v.winoTiles(name, "src", "c", n, n, n-2, t1)
}

// winoTiles writes a transform of tiles of m×m pixels, the tile t at src +
// t·step·cs (rows rs bytes apart, pixels cs), into n×n positions (ps bytes
// apart, the tile's at dst + t·c·4): each of the tile's rows through t1
// into a row of an n×m stack scratch, then each column of that through
// t1 into a column of positions. t1 reads m vectors (Y0..)
// and writes n (from Y4 or Ym). src and c name the first and last
// arguments (winoIn512's or winoGrad512's names).
func (v vecOps) winoTiles(name, src, c string, m, n, step int, t1 func(d, t []string)) {
	e, l := v.e, name
	e.declLocals(name, src+" unsafe.Pointer, rs, cs int, dst unsafe.Pointer, ps, tiles, "+c+" int", 56, m*n*32)
	// R8 = 5·cs, R10 = 3·cs, R14 = n·ps; Y15 = 0.
	e.textf("\tMOVQ %s+0(FP), SI\n\tMOVQ cs+16(FP), R9\n\tLEAQ (R9)(R9*4), R8\n\tLEAQ (R9)(R9*2), R10\n\tMOVQ dst+24(FP), DI\n\tMOVQ ps+32(FP), R11\n\tIMUL3Q $%d, R11, R14\n\tMOVQ tiles+40(FP), BX\n\tVXORPS Y15, Y15, Y15\n", src, n)
	e.textf("%s_tile:\n\tTESTQ BX, BX\n\tJZ %s_done\n\tMOVQ SI, R12\n\tMOVQ DI, R13\n\tMOVQ %s+48(FP), CX\n\tSHRQ $3, CX\n%s_cv:\n\tMOVQ R12, AX\n", l, l, c, l)
	d, t := v.regs(0, m), v.regs(max(m, 4), n)
	for i := 0; i < m; i++ {
		for j, a := range []string{"(AX)", "(AX)(R9*1)", "(AX)(R9*2)", "(AX)(R10*1)", "(AX)(R9*4)", "(AX)(R8*1)"}[:m] {
			e.op("VMOVUPS %s, %s", a, d[j])
		}
		e.op("ADDQ rs+8(FP), AX")
		t1(d, t)
		for j := 0; j < n; j++ {
			e.op("VMOVUPS %s, %d(SP)", t[j], (i*n+j)*32)
		}
	}
	for j := 0; j < n; j++ {
		for i := 0; i < m; i++ {
			e.op("VMOVUPS %d(SP), %s", (i*n+j)*32, d[i])
		}
		t1(d, t)
		v.column("DX", "R13", j)
		for i := 0; i < n; i++ {
			e.op("VMOVUPS %s, (DX)", t[i])
			if i < n-1 {
				e.op("ADDQ R14, DX")
			}
		}
	}
	e.textf("\tADDQ $32, R12\n\tADDQ $32, R13\n\tDECQ CX\n\tJNZ %s_cv\n", l)
	e.textf("\tLEAQ (SI)(R9*%d), SI\n\tMOVQ %s+48(FP), AX\n\tSHLQ $2, AX\n\tADDQ AX, DI\n\tDECQ BX\n\tJMP %s_tile\n%s_done:\n\tVZEROUPPER\n\tRET\n", step, c, l, l)
}

// column writes reg = base + j·ps (ps in R11).
func (v vecOps) column(reg, base string, j int) {
	v.e.op("MOVQ %s, %s", base, reg)
	for k := 0; k < j; k++ {
		v.e.op("ADDQ R11, %s", reg)
	}
}

// winoOut writes an output transform (winoOut512's signature) from n×n
// positions to m×m outputs: the columns of the positions through t1 into
// an m×n stack scratch, then its rows through t1 into outputs,
// each through the epilogue (scale Y13, shift Y14, floor Y15) and, with
// skip, the skip's value. t1 reads n vectors (Y0..), which it may
// overwrite, and returns the m registers of its results (among Y0..Y9).
func (v vecOps) winoOut(name string, n, m int, skip bool, t1 func(m []string) []string) {
	e, l := v.e, name
	e.declLocals(name, "m unsafe.Pointer, ps int, y unsafe.Pointer, rs, cs, tiles, k int, scale, shift unsafe.Pointer, skipDelta int, floor float32", 84, m*n*32)
	e.text("\tMOVQ m+0(FP), SI\n\tMOVQ ps+8(FP), R11\n\tMOVQ y+16(FP), DI\n\tMOVQ rs+24(FP), R8\n\tMOVQ cs+32(FP), R9\n\tLEAQ (R9)(R9*2), R14\n\tMOVQ tiles+40(FP), BX\n\tVBROADCASTSS floor+80(FP), Y15\n")
	e.textf("%s_tile:\n\tTESTQ BX, BX\n\tJZ %s_done\n\tMOVQ SI, R12\n\tMOVQ DI, R13\n\tXORQ R10, R10\n\tMOVQ k+48(FP), CX\n\tSHRQ $3, CX\n%s_cv:\n", l, l, l)
	in := v.regs(0, n)
	// DX = n·ps, the column stride.
	e.op("IMUL3Q $%d, R11, DX", n)
	for j := 0; j < n; j++ {
		v.column("AX", "R12", j)
		for i := 0; i < n; i++ {
			e.op("VMOVUPS (AX), %s", in[i])
			if i < n-1 {
				e.op("ADDQ DX, AX")
			}
		}
		out := t1(in)
		for i, r := range out {
			e.op("VMOVUPS %s, %d(SP)", r, (i*n+j)*32)
		}
	}
	e.text("\tMOVQ scale+56(FP), AX\n\tVMOVUPS (AX)(R10*1), Y13\n\tMOVQ shift+64(FP), AX\n\tVMOVUPS (AX)(R10*1), Y14\n")
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			e.op("VMOVUPS %d(SP), %s", (i*n+j)*32, in[j])
		}
		out := t1(in)
		// DX: output row i; AX: its skip.
		e.op("MOVQ R13, DX")
		for k := 0; k < i; k++ {
			e.op("ADDQ R8, DX")
		}
		if skip {
			e.op("MOVQ skipDelta+72(FP), AX")
			e.op("ADDQ DX, AX")
		}
		for o, y := range out {
			idx := []string{"", "(R9*1)", "(R9*2)", "(R14*1)"}[o]
			e.op("VFMADD213PS Y14, Y13, %s", y)
			if skip {
				e.op("VADDPS (AX)%s, %s, %s", idx, y, y)
			}
			e.op("VMAXPS %s, Y15, %s", y, y)
			e.op("VMOVUPS %s, (DX)%s", y, idx)
		}
	}
	e.textf("\tADDQ $32, R12\n\tADDQ $32, R13\n\tADDQ $32, R10\n\tDECQ CX\n\tJNZ %s_cv\n", l)
	e.textf("\tMOVQ k+48(FP), AX\n\tSHLQ $2, AX\n\tADDQ AX, SI\n\tLEAQ (DI)(R9*%d), DI\n\tDECQ BX\n\tJMP %s_tile\n%s_done:\n\tVZEROUPPER\n\tRET\n", m, l, l)
}

// winoWeights writes a weight transform (winoWeights512's or
// winoWeights4_512's signature) into n×n positions: the three columns of
// taps through t1 into an n×3 scratch on the stack, then each of its rows
// through t1 into a row of positions. t1 reads three vectors (Y0..2) and
// writes n (Y3..). (A first pass stored in the positions, 4 KB apart,
// and read back stalled on 4K aliasing: ResNet-20 at batch 1 spent 83%
// of its time here.)
func (v vecOps) winoWeights(name string, n int, t1 func(g, o []string)) {
	e, l := v.e, name
	args, frame := "src unsafe.Pointer, ts int, dst unsafe.Pointer, ps, n, ss, ds int", 56
	if n == 4 {
		args, frame = args+", half float32", 60
	}
	e.declLocals(name, args, frame, n*3*32)
	// R9 = 3·ts.
	e.text("\tMOVQ src+0(FP), SI\n\tMOVQ ts+8(FP), R8\n\tLEAQ (R8)(R8*2), R9\n\tMOVQ dst+16(FP), DI\n\tMOVQ ps+24(FP), R11\n\tMOVQ n+32(FP), CX\n")
	if n == 4 {
		e.op("VBROADCASTSS half+56(FP), Y15")
	}
	e.textf("\tTESTQ CX, CX\n\tJZ %s_done\n%s_loop:\n", l, l)
	g, o := v.regs(0, 3), v.regs(3, n)
	for u := 0; u < 3; u++ {
		e.op("MOVQ SI, AX")
		for k := 0; k < u; k++ {
			e.op("ADDQ R8, AX")
		}
		e.op("VMOVUPS (AX), %s\n\tVMOVUPS (AX)(R9*1), %s\n\tVMOVUPS (AX)(R9*2), %s", g[0], g[1], g[2])
		t1(g, o)
		for r := 0; r < n; r++ {
			e.op("VMOVUPS %s, %d(SP)", o[r], (3*r+u)*32)
		}
	}
	e.op("MOVQ DI, DX")
	for r := 0; r < n; r++ {
		e.op("VMOVUPS %d(SP), %s\n\tVMOVUPS %d(SP), %s\n\tVMOVUPS %d(SP), %s", 3*r*32, g[0], (3*r+1)*32, g[1], (3*r+2)*32, g[2])
		t1(g, o)
		for j := 0; j < n; j++ {
			e.op("VMOVUPS %s, (DX)", o[j])
			if r < n-1 || j < n-1 {
				e.op("ADDQ R11, DX")
			}
		}
	}
	e.textf("\tADDQ ss+40(FP), SI\n\tADDQ ds+48(FP), DI\n\tDECQ CX\n\tJNZ %s_loop\n%s_done:\n\tVZEROUPPER\n\tRET\n", l, l)
}

// winoGrad writes an output-gradient transform (winoGrad512's signature)
// from m×m tiles of the gradient to n×n positions; see winoTiles.
func (v vecOps) winoGrad(name string, m, n int, t1 func(g, o []string)) {
	v.winoTiles(name, "dy", "k", m, n, m, t1)
}

// winoGradOut4 writes winoGradOut4_AVX2 (winoGradOut4_512's signature):
// the columns of the 6×6 positions through Gᵀ into their first three
// rows, in place, then those rows through Gᵀ into the 3×3 taps.
func (v vecOps) winoGradOut4() {
	e := v.e
	e.decl("winoGradOut4_AVX2", "src unsafe.Pointer, ps int, dst unsafe.Pointer, ts, n int", 40)
	e.text("\tMOVQ src+0(FP), SI\n\tMOVQ ps+8(FP), R11\n\tIMUL3Q $6, R11, R14\n\tMOVQ dst+16(FP), DI\n\tMOVQ ts+24(FP), R8\n\tMOVQ n+32(FP), CX\n\tTESTQ CX, CX\n\tJZ wgo4y_done\nwgo4y_loop:\n")
	mm, o := v.regs(0, 6), v.regs(6, 3)
	gt := func() { v.gt4([6]string(mm), [3]string(o), v.reg(9), v.reg(10)) }
	for j := 0; j < 6; j++ {
		v.column("AX", "SI", j)
		for i := 0; i < 6; i++ {
			e.op("VMOVUPS (AX), %s", mm[i])
			if i < 5 {
				e.op("ADDQ R14, AX")
			}
		}
		gt()
		v.column("AX", "SI", j)
		for r := 0; r < 3; r++ {
			e.op("VMOVUPS %s, (AX)", o[r])
			if r < 2 {
				e.op("ADDQ R14, AX")
			}
		}
	}
	e.op("MOVQ DI, DX")
	for r := 0; r < 3; r++ {
		e.op("MOVQ SI, AX")
		for k := 0; k < r; k++ {
			e.op("ADDQ R14, AX")
		}
		for j := 0; j < 6; j++ {
			e.op("VMOVUPS (AX), %s", mm[j])
			if j < 5 {
				e.op("ADDQ R11, AX")
			}
		}
		gt()
		for u := 0; u < 3; u++ {
			e.op("VMOVUPS %s, (DX)", o[u])
			e.op("ADDQ R8, DX")
		}
	}
	e.text("\tADDQ $32, SI\n\tADDQ $32, DI\n\tDECQ CX\n\tJNZ wgo4y_loop\nwgo4y_done:\n\tVZEROUPPER\n\tRET\n")
}
