package main

import (
	"fmt"
)

// genWinograd writes the AVX-512 transforms of Winograd's F(2×2, 3×3)
// convolution (see winograd_amd64.go), one channel vector at a time:
//
//	winoIn512(src, rs, cs, dst, ps, tiles, c): for each of tiles 4×4 input
//	  windows (rows rs bytes apart, pixels cs, window t at src + 2·t·cs),
//	  V = Bᵀ·d·B, position i·4+j of tile t stored at dst + (i·4+j)·ps + t·c·4.
//	winoOut512(m, ps, y, rs, cs, tiles, k, scale, shift, skipDelta, floor):
//	  for each tile t, Y = Aᵀ·M·A from the 16 positions at m + pos·ps + t·k·4,
//	  then y = max(Y·scale + shift [+ skip], floor) stored as 2×2 pixels at
//	  y + 2·t·cs (rows rs apart); winoOutSkip512 adds the skip read at
//	  skipDelta bytes from each output.
//	winoGrad512(dy, rs, cs, dst, ps, tiles, k): for each 2×2 output-gradient
//	  tile, Z = A·g·Aᵀ (4×4), stored as winoIn512 stores V.
func genWinograd(e *emitter) {
	// store16 stores Z0..Z15 at DX, DX+R11, … (position stride R11).
	store16 := func() {
		e.text("\tMOVQ R13, DX\n")
		for p := 0; p < 16; p++ {
			e.textf("\tVMOVUPS %s, (DX)\n", z(p))
			if p < 15 {
				e.text("\tADDQ R11, DX\n")
			}
		}
	}
	// Input transform. d[i][j] in Z(4i+j); e = Bᵀd in Z16..31; V in Z0..15.
	e.decl("winoIn512", "src unsafe.Pointer, rs, cs int, dst unsafe.Pointer, ps, tiles, c int", 56)
	e.text("\tMOVQ src+0(FP), SI\n\tMOVQ rs+8(FP), R8\n\tMOVQ cs+16(FP), R9\n\tLEAQ (R9)(R9*2), R10\n\tMOVQ dst+24(FP), DI\n\tMOVQ ps+32(FP), R11\n\tMOVQ tiles+40(FP), BX\n\tMOVQ c+48(FP), R14\n\tSHRQ $4, R14\n")
	e.text("wi_tile:\n\tTESTQ BX, BX\n\tJZ wi_done\n\tMOVQ SI, R12\n\tMOVQ DI, R13\n\tMOVQ R14, CX\nwi_cv:\n\tMOVQ R12, AX\n")
	for i := 0; i < 4; i++ {
		for j, a := range []string{"(AX)", "(AX)(R9*1)", "(AX)(R9*2)", "(AX)(R10*1)"} {
			e.textf("\tVMOVUPS %s, %s\n", a, z(4*i+j))
		}
		if i < 3 {
			e.text("\tADDQ R8, AX\n")
		}
	}
	for j := 0; j < 4; j++ { // rows: e0 = d0−d2, e1 = d1+d2, e2 = d2−d1, e3 = d1−d3
		e.textf("\tVSUBPS %s, %s, %s\n", z(8+j), z(j), z(16+j))
		e.textf("\tVADDPS %s, %s, %s\n", z(8+j), z(4+j), z(20+j))
		e.textf("\tVSUBPS %s, %s, %s\n", z(4+j), z(8+j), z(24+j))
		e.textf("\tVSUBPS %s, %s, %s\n", z(12+j), z(4+j), z(28+j))
	}
	for i := 0; i < 4; i++ { // columns, the same combinations
		ej := func(j int) string { return z(16 + 4*i + j) }
		e.textf("\tVSUBPS %s, %s, %s\n", ej(2), ej(0), z(4*i))
		e.textf("\tVADDPS %s, %s, %s\n", ej(2), ej(1), z(4*i+1))
		e.textf("\tVSUBPS %s, %s, %s\n", ej(1), ej(2), z(4*i+2))
		e.textf("\tVSUBPS %s, %s, %s\n", ej(3), ej(1), z(4*i+3))
	}
	store16()
	e.text("\tADDQ $64, R12\n\tADDQ $64, R13\n\tDECQ CX\n\tJNZ wi_cv\n")
	e.text("\tLEAQ (SI)(R9*2), SI\n\tMOVQ c+48(FP), AX\n\tSHLQ $2, AX\n\tADDQ AX, DI\n\tDECQ BX\n\tJMP wi_tile\nwi_done:\n\tVZEROUPPER\n\tRET\n")

	// Output transforms, with and without a skip.
	for _, withSkip := range []bool{false, true} {
		name, l := "winoOut512", "wo"
		if withSkip {
			name, l = "winoOutSkip512", "wos"
		}
		e.decl(name, "m unsafe.Pointer, ps int, y unsafe.Pointer, rs, cs, tiles, k int, scale, shift unsafe.Pointer, skipDelta int, floor float32", 84)
		e.text("\tMOVQ m+0(FP), SI\n\tMOVQ ps+8(FP), R11\n\tMOVQ y+16(FP), DI\n\tMOVQ rs+24(FP), R8\n\tMOVQ cs+32(FP), R9\n\tMOVQ tiles+40(FP), BX\n\tMOVQ skipDelta+72(FP), R14\n\tVBROADCASTSS floor+80(FP), Z30\n")
		e.textf("%s_tile:\n\tTESTQ BX, BX\n\tJZ %s_done\n\tMOVQ SI, R12\n\tMOVQ DI, R13\n\tXORQ R10, R10\n\tMOVQ k+48(FP), CX\n\tSHRQ $4, CX\n%s_cv:\n\tMOVQ R12, AX\n", l, l, l)
		for p := 0; p < 16; p++ {
			e.textf("\tVMOVUPS (AX), %s\n", z(p))
			if p < 15 {
				e.text("\tADDQ R11, AX\n")
			}
		}
		for j := 0; j < 4; j++ { // rows: s0 = m0+m1+m2, s1 = m1−m2−m3
			e.textf("\tVADDPS %s, %s, %s\n\tVADDPS %s, %s, %s\n", z(4+j), z(j), z(16+j), z(8+j), z(16+j), z(16+j))
			e.textf("\tVSUBPS %s, %s, %s\n\tVSUBPS %s, %s, %s\n", z(8+j), z(4+j), z(20+j), z(12+j), z(20+j), z(20+j))
		}
		for i := 0; i < 2; i++ { // columns: y0 = s0+s1+s2, y1 = s1−s2−s3
			q := func(j int) string { return z(16 + 4*i + j) }
			y0, y1 := z(24+2*i), z(25+2*i)
			e.textf("\tVADDPS %s, %s, %s\n\tVADDPS %s, %s, %s\n", q(1), q(0), y0, q(2), y0, y0)
			e.textf("\tVSUBPS %s, %s, %s\n\tVSUBPS %s, %s, %s\n", q(2), q(1), y1, q(3), y1, y1)
		}
		e.text("\tMOVQ scale+56(FP), AX\n\tVMOVUPS (AX)(R10*1), Z28\n\tMOVQ shift+64(FP), AX\n\tVMOVUPS (AX)(R10*1), Z29\n\tMOVQ R13, AX\n")
		for o, step := range []string{"\tADDQ R9, AX\n", "\tLEAQ (R13)(R8*1), AX\n", "\tADDQ R9, AX\n", ""} {
			y := z(24 + o)
			e.textf("\tVFMADD213PS Z29, Z28, %s\n", y)
			if withSkip {
				e.textf("\tVADDPS (AX)(R14*1), %s, %s\n", y, y)
			}
			e.textf("\tVMAXPS %s, Z30, %s\n\tVMOVUPS %s, (AX)\n%s", y, y, y, step)
		}
		e.textf("\tADDQ $64, R12\n\tADDQ $64, R13\n\tADDQ $64, R10\n\tDECQ CX\n\tJNZ %s_cv\n", l)
		e.textf("\tMOVQ k+48(FP), AX\n\tSHLQ $2, AX\n\tADDQ AX, SI\n\tLEAQ (DI)(R9*2), DI\n\tDECQ BX\n\tJMP %s_tile\n%s_done:\n\tVZEROUPPER\n\tRET\n", l, l)
	}

	// Output-gradient transform for the weight gradient: Z = A·g·Aᵀ, A =
	// [1 0; 1 1; 1 −1; 0 −1]. g[i][j] in Z(16+2i+j); rows h (4×2) in
	// Z20..27; Z in Z0..15.
	e.decl("winoGrad512", "dy unsafe.Pointer, rs, cs int, dst unsafe.Pointer, ps, tiles, k int", 56)
	e.text("\tMOVQ dy+0(FP), SI\n\tMOVQ rs+8(FP), R8\n\tMOVQ cs+16(FP), R9\n\tMOVQ dst+24(FP), DI\n\tMOVQ ps+32(FP), R11\n\tMOVQ tiles+40(FP), BX\n\tMOVQ k+48(FP), R14\n\tSHRQ $4, R14\n\tVPXORD Z31, Z31, Z31\n")
	e.text("wg_tile:\n\tTESTQ BX, BX\n\tJZ wg_done\n\tMOVQ SI, R12\n\tMOVQ DI, R13\n\tMOVQ R14, CX\nwg_cv:\n\tMOVQ R12, AX\n")
	e.text("\tVMOVUPS (AX), Z16\n\tVMOVUPS (AX)(R9*1), Z17\n\tADDQ R8, AX\n\tVMOVUPS (AX), Z18\n\tVMOVUPS (AX)(R9*1), Z19\n")
	for j := 0; j < 2; j++ { // rows: h0 = g0, h1 = g0+g1, h2 = g0−g1, h3 = −g1
		g0, g1 := z(16+j), z(18+j)
		h := func(i int) string { return z(20 + 2*i + j) }
		e.textf("\tVMOVAPS %s, %s\n\tVADDPS %s, %s, %s\n\tVSUBPS %s, %s, %s\n\tVSUBPS %s, Z31, %s\n", g0, h(0), g1, g0, h(1), g1, g0, h(2), g1, h(3))
	}
	for i := 0; i < 4; i++ { // columns, the same
		a, b := z(20+2*i), z(21+2*i)
		e.textf("\tVMOVAPS %s, %s\n\tVADDPS %s, %s, %s\n\tVSUBPS %s, %s, %s\n\tVSUBPS %s, Z31, %s\n", a, z(4*i), b, a, z(4*i+1), b, a, z(4*i+2), b, z(4*i+3))
	}
	store16()
	e.text("\tADDQ $64, R12\n\tADDQ $64, R13\n\tDECQ CX\n\tJNZ wg_cv\n")
	e.text("\tLEAQ (SI)(R9*2), SI\n\tMOVQ k+48(FP), AX\n\tSHLQ $2, AX\n\tADDQ AX, DI\n\tDECQ BX\n\tJMP wg_tile\nwg_done:\n\tVZEROUPPER\n\tRET\n")
}

// genWinoGemms writes the Winograd products' kernels (each instruction
// set, one and two vectors of output channels, every tile count that fits
// the registers), their tables and Go declarations.
func genWinoGemms(e *emitter) {
	for _, is := range isas {
		genWinoGemmSet(e, is)
	}
}

func genWinoGemmSet(e *emitter, is isa) {
	for nv := 1; nv <= 2; nv++ {
		var names []string
		for mr := 1; mr <= maxMR && mr*nv <= is.maxAcc; mr++ {
			names = append(names, genWinoGemm(e, is, mr, nv))
		}
		e.gof("\n// winoGemm%s_%d[mr-1] is the Winograd products' kernel for mr tiles × %d channels.\nvar winoGemm%s_%d = [...]winoGemmKernel{", is.name, nv*is.width, nv*is.width, is.name, nv*is.width)
		for _, n := range names {
			e.gof("%s, ", n)
		}
		e.goText("}\n")
		for _, n := range names {
			e.gof("\n//go:noescape\nfunc %s(v, u, m unsafe.Pointer, c, cs, ms, vps, ups, mps, npos int)\n", n)
		}
	}
}

// genWinoGemm writes one kernel of the Winograd path's per-position
// products: for each of the npos positions (16 or 36), an mr×NR tile of
// m[pos][tile][:] = Σ_c v[pos][tile][c]·u[pos][c][:], then the next
// position (v, u and m advance by vps, ups and mps bytes). Tiles are cs
// bytes apart in v and ms apart in m. Arguments: v, u, m, c, cs, ms, vps,
// ups, mps, npos.
func genWinoGemm(e *emitter, is isa, mr, nv int) string {
	name := fmt.Sprintf("winoGemm%s_%dx%d", is.name, mr, nv*is.width)
	wreg := []string{fmt.Sprintf("%s%d", is.reg, is.nregs-4), fmt.Sprintf("%s%d", is.reg, is.nregs-3)}
	breg := []string{fmt.Sprintf("%s%d", is.reg, is.nregs-2), fmt.Sprintf("%s%d", is.reg, is.nregs-1)}
	vb := is.width * 4
	e.textf("\n// func %s(v, u, m unsafe.Pointer, c, cs, ms, vps, ups, mps, npos int)\nTEXT ·%s(SB), NOSPLIT, $0-80\n", name, name)
	e.text("\tMOVQ v+0(FP), R12\n\tMOVQ u+8(FP), R13\n\tMOVQ m+16(FP), R14\n\tMOVQ cs+32(FP), SI\n\tLEAQ (SI)(SI*2), DI\n\tMOVQ npos+72(FP), BX\n")
	e.textf("%s_pos:\n", name)
	for p := 0; p < mr; p++ {
		for v := 0; v < nv; v++ {
			r := acc(is, p, v, nv)
			e.textf("\t%s %s, %s, %s\n", is.zero, r, r, r)
		}
	}
	e.text("\tMOVQ R12, DX\n\tMOVQ R13, R11\n\tLEAQ (DX)(SI*1), R8\n\tLEAQ (DX)(SI*2), R9\n\tLEAQ (DX)(DI*1), R10\n\tMOVQ c+24(FP), CX\n")
	e.textf("%s_ic:\n", name)
	for v := 0; v < nv; v++ {
		e.textf("\tVMOVUPS %d(R11), %s\n", v*vb, wreg[v])
	}
	for p := 0; p < mr; p++ {
		if nv == 1 && is.name == "AVX512" {
			e.textf("\tVFMADD231PS.BCST %s, %s, %s\n", pixAddr(p, 0), wreg[0], acc(is, p, 0, nv))
			continue
		}
		b := breg[p%2]
		e.textf("\tVBROADCASTSS %s, %s\n", pixAddr(p, 0), b)
		for v := 0; v < nv; v++ {
			e.textf("\tVFMADD231PS %s, %s, %s\n", wreg[v], b, acc(is, p, v, nv))
		}
	}
	e.textf("\tADDQ $%d, R11\n\tADDQ $4, DX\n\tADDQ $4, R8\n\tADDQ $4, R9\n\tADDQ $4, R10\n\tDECQ CX\n\tJNZ %s_ic\n", nv*vb, name)
	e.text("\tMOVQ R14, DX\n\tMOVQ ms+40(FP), AX\n")
	for p := 0; p < mr; p++ {
		for v := 0; v < nv; v++ {
			e.textf("\tVMOVUPS %s, %d(DX)\n", acc(is, p, v, nv), v*vb)
		}
		if p < mr-1 {
			e.text("\tADDQ AX, DX\n")
		}
	}
	e.textf("\tADDQ vps+48(FP), R12\n\tADDQ ups+56(FP), R13\n\tADDQ mps+64(FP), R14\n\tDECQ BX\n\tJNZ %s_pos\n\tVZEROUPPER\n\tRET\n", name)
	return name
}

// genWinoWeights writes winoWeights512(src, ts, dst, ps, n, ss, ds, half):
// for n input channels, U = G·g·Gᵀ of a 3×3 kernel whose taps are vectors
// of 16 output channels at src + tap·ts, stored as positions at dst +
// pos·ps; src and dst then advance by ss and ds bytes. half is ½.
func genWinoWeights(e *emitter) {
	e.decl("winoWeights512", "src unsafe.Pointer, ts int, dst unsafe.Pointer, ps, n, ss, ds int, half float32", 60)
	e.text("\tMOVQ src+0(FP), SI\n\tMOVQ ts+8(FP), R8\n\tMOVQ dst+16(FP), DI\n\tMOVQ ps+24(FP), R11\n\tMOVQ n+32(FP), CX\n\tVBROADCASTSS half+56(FP), Z31\n\tTESTQ CX, CX\n\tJZ ww_done\nww_loop:\n\tMOVQ SI, AX\n")
	for tap := 0; tap < 9; tap++ {
		e.textf("\tVMOVUPS (AX), %s\n", z(tap))
		if tap < 8 {
			e.text("\tADDQ R8, AX\n")
		}
	}
	// (G·g)[r][u] in Z(9+3r+u): rows g0, ½(g0+g1+g2), ½(g0−g1+g2), g2.
	gg := func(r, u int) string { return z(9 + 3*r + u) }
	for u := 0; u < 3; u++ {
		a0, a1, a2 := z(u), z(3+u), z(6+u)
		e.textf("\tVMOVAPS %s, %s\n\tVMOVAPS %s, %s\n", a0, gg(0, u), a2, gg(3, u))
		e.textf("\tVADDPS %s, %s, Z21\n", a2, a0)
		e.textf("\tVADDPS %s, Z21, %s\n\tVMULPS Z31, %s, %s\n", a1, gg(1, u), gg(1, u), gg(1, u))
		e.textf("\tVSUBPS %s, Z21, %s\n\tVMULPS Z31, %s, %s\n", a1, gg(2, u), gg(2, u), gg(2, u))
	}
	e.text("\tMOVQ DI, DX\n")
	for r := 0; r < 4; r++ {
		b0, b1, b2 := gg(r, 0), gg(r, 1), gg(r, 2)
		e.textf("\tVADDPS %s, %s, Z21\n", b2, b0)
		e.textf("\tVADDPS %s, Z21, Z22\n\tVMULPS Z31, Z22, Z22\n", b1)
		e.textf("\tVSUBPS %s, Z21, Z23\n\tVMULPS Z31, Z23, Z23\n", b1)
		for i, v := range []string{b0, "Z22", "Z23", b2} {
			e.textf("\tVMOVUPS %s, (DX)\n", v)
			if r < 3 || i < 3 {
				e.text("\tADDQ R11, DX\n")
			}
		}
	}
	e.text("\tADDQ ss+40(FP), SI\n\tADDQ ds+48(FP), DI\n\tDECQ CX\n\tJNZ ww_loop\nww_done:\n\tVZEROUPPER\n\tRET\n")
}

// genWinoGradOut writes winoGradOut512(src, ps, dst, ts, n, half), the
// weight gradient's transform back of F(2×2, 3×3), dw = Gᵀ·M·G (Gᵀ = [1 ½
// ½ 0; 0 ½ −½ 0; 0 ½ ½ 1]), of n consecutive vectors: M's 16 positions ps
// bytes apart at src, dw's 9 taps ts bytes apart at dst, both advancing
// 64 bytes a vector (winoGradOut4_512's layout). half is ½.
func genWinoGradOut(e *emitter) {
	e.decl("winoGradOut512", "src unsafe.Pointer, ps int, dst unsafe.Pointer, ts, n int, half float32", 44)
	e.text("\tMOVQ src+0(FP), SI\n\tMOVQ ps+8(FP), R11\n\tMOVQ dst+16(FP), DI\n\tMOVQ ts+24(FP), R8\n\tMOVQ n+32(FP), CX\n\tVBROADCASTSS half+40(FP), Z31\n\tTESTQ CX, CX\n\tJZ wgo_done\nwgo_loop:\n\tMOVQ SI, AX\n")
	for p := 0; p < 16; p++ {
		e.op("VMOVUPS (AX), %s", z(p))
		if p < 15 {
			e.op("ADDQ R11, AX")
		}
	}
	// gt writes Gᵀ·(a0, a1, a2, a3) into o: a0 + ½(a1+a2), ½(a1−a2),
	// ½(a1+a2) + a3 (Z28: a1+a2).
	gt := func(a [4]string, o [3]string) {
		e.op("VADDPS %s, %s, Z28", a[2], a[1])
		e.op("VSUBPS %s, %s, %s", a[2], a[1], o[1])
		e.op("VMULPS Z31, %s, %s", o[1], o[1])
		e.op("VMOVAPS %s, %s", a[0], o[0])
		e.op("VFMADD231PS Z31, Z28, %s", o[0])
		e.op("VMOVAPS %s, %s", a[3], o[2])
		e.op("VFMADD231PS Z31, Z28, %s", o[2])
	}
	// Columns j of M (positions 4i+j): h[r][j] in Z(16+4r+j); then rows r
	// of h: taps 3r+u.
	for j := 0; j < 4; j++ {
		gt([4]string{z(j), z(4 + j), z(8 + j), z(12 + j)}, [3]string{z(16 + j), z(20 + j), z(24 + j)})
	}
	e.op("MOVQ DI, DX")
	for r := 0; r < 3; r++ {
		o := [3]string{z(0), z(1), z(2)}
		gt([4]string{z(16 + 4*r), z(17 + 4*r), z(18 + 4*r), z(19 + 4*r)}, o)
		for u := 0; u < 3; u++ {
			e.op("VMOVUPS %s, (DX)", o[u])
			if r < 2 || u < 2 {
				e.op("ADDQ R8, DX")
			}
		}
	}
	e.text("\tADDQ $64, SI\n\tADDQ $64, DI\n\tDECQ CX\n\tJNZ wgo_loop\nwgo_done:\n\tVZEROUPPER\n\tRET\n")
}
