package main

import (
	"math"
	"strings"
)

// winoK4 is the constant table of the F(4×4, 3×3) kernels (wk4<> in the
// AVX-512 assembly, wk4y<> in the AVX2), read through vecOps.k.
var winoK4 = []float32{4, -5, -4, 2, -2, 8, 1.0 / 4, -1.0 / 6, 1.0 / 24, 1.0 / 12, -1.0 / 12, 1.0 / 6}

// genWinograd4 writes the transforms of Winograd's F(4×4, 3×3) (Lavin and
// Gray's points 0, ±1, ±2, ∞): winoIn4_512, winoOut4_512,
// winoOutSkip4_512 and winoWeights4_512, with the signatures of their
// F(2×2, 3×3) counterparts, over 6×6 windows and 36 positions.
//
//	Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
//	G = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1]
//	Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
func genWinograd4(e *emitter) {
	e.text("\n")
	for i, k := range winoK4 {
		e.op("DATA wk4<>+%d(SB)/4, $0x%08x", 4*i, math.Float32bits(k))
	}
	e.op("GLOBL wk4<>(SB), RODATA|NOPTR, $%d", 4*len(winoK4))
	vo := zmmOps(e)
	regs := func(base int) (r [6]string) {
		for i := range r {
			r[i] = z(base + i)
		}
		return
	}

	// Input transform: rows of the window (Z0..5 → Z6..11) stored at the
	// 36 positions, then columns read back (Z0..5 → Z6..11) and stored.
	e.decl("winoIn4_512", "src unsafe.Pointer, rs, cs int, dst unsafe.Pointer, ps, tiles, c int", 56)
	// R8 = 5·cs, R10 = 3·cs, R14 = 6·ps.
	e.text("\tMOVQ src+0(FP), SI\n\tMOVQ cs+16(FP), R9\n\tLEAQ (R9)(R9*4), R8\n\tLEAQ (R9)(R9*2), R10\n\tMOVQ dst+24(FP), DI\n\tMOVQ ps+32(FP), R11\n\tIMUL3Q $6, R11, R14\n\tMOVQ tiles+40(FP), BX\n")
	e.text("wi4_tile:\n\tTESTQ BX, BX\n\tJZ wi4_done\n\tMOVQ SI, R12\n\tMOVQ DI, R13\n\tMOVQ c+48(FP), CX\n\tSHRQ $4, CX\nwi4_cv:\n\tMOVQ R12, AX\n\tMOVQ R13, DX\n")
	for i := 0; i < 6; i++ {
		d := regs(0)
		for j, a := range []string{"(AX)", "(AX)(R9*1)", "(AX)(R9*2)", "(AX)(R10*1)", "(AX)(R9*4)", "(AX)(R8*1)"} {
			e.op("VMOVUPS %s, %s", a, d[j])
		}
		e.op("ADDQ rs+8(FP), AX")
		vo.bt4(d, regs(6), "Z12", "Z13")
		for j := 0; j < 6; j++ {
			e.op("VMOVUPS %s, (DX)", z(6+j))
			e.op("ADDQ R11, DX")
		}
	}
	for j := 0; j < 6; j++ {
		e.op("MOVQ R13, DX")
		for k := 0; k < j; k++ {
			e.op("ADDQ R11, DX")
		}
		e.op("MOVQ DX, AX")
		for i := 0; i < 6; i++ {
			e.op("VMOVUPS (AX), %s", z(i))
			if i < 5 {
				e.op("ADDQ R14, AX")
			}
		}
		vo.bt4(regs(0), regs(6), "Z12", "Z13")
		for i := 0; i < 6; i++ {
			e.op("VMOVUPS %s, (DX)", z(6+i))
			if i < 5 {
				e.op("ADDQ R14, DX")
			}
		}
	}
	e.text("\tADDQ $64, R12\n\tADDQ $64, R13\n\tDECQ CX\n\tJNZ wi4_cv\n")
	e.text("\tLEAQ (SI)(R9*4), SI\n\tMOVQ c+48(FP), AX\n\tSHLQ $2, AX\n\tADDQ AX, DI\n\tDECQ BX\n\tJMP wi4_tile\nwi4_done:\n\tVZEROUPPER\n\tRET\n")

	// Output transforms. Columns: S(i,j) = Z(6i+j), i < 4, from the six
	// products of column j (temporaries Z24..27); then each row i of S
	// gives four outputs through the epilogue (scale Z28, shift Z29, floor
	// Z30).
	for _, withSkip := range []bool{false, true} {
		name, l := "winoOut4_512", "wo4"
		if withSkip {
			name, l = "winoOutSkip4_512", "wos4"
		}
		e.decl(name, "m unsafe.Pointer, ps int, y unsafe.Pointer, rs, cs, tiles, k int, scale, shift unsafe.Pointer, skipDelta int, floor float32", 84)
		e.text("\tMOVQ m+0(FP), SI\n\tMOVQ ps+8(FP), R11\n\tMOVQ y+16(FP), DI\n\tMOVQ rs+24(FP), R8\n\tMOVQ cs+32(FP), R9\n\tLEAQ (R9)(R9*2), R14\n\tMOVQ tiles+40(FP), BX\n\tVBROADCASTSS floor+80(FP), Z30\n")
		e.textf("%s_tile:\n\tTESTQ BX, BX\n\tJZ %s_done\n\tMOVQ SI, R12\n\tMOVQ DI, R13\n\tXORQ R10, R10\n\tMOVQ k+48(FP), CX\n\tSHRQ $4, CX\n%s_cv:\n\tIMUL3Q $6, R11, DX\n", l, l, l)
		S := func(i, j int) string { return z(6*i + j) }
		t := regs(24)
		for j := 0; j < 6; j++ {
			e.op("MOVQ R12, AX")
			for k := 0; k < j; k++ {
				e.op("ADDQ R11, AX")
			}
			for i, r := range []string{S(0, j), t[0], t[1], t[2], t[3], S(3, j)} {
				e.op("VMOVUPS (AX), %s", r)
				if i < 5 {
					e.op("ADDQ DX, AX")
				}
			}
			e.op("VADDPS %s, %s, %s", t[1], t[0], S(2, j)) // p = m1+m2
			e.op("VSUBPS %s, %s, %s", t[1], t[0], S(1, j)) // q = m1−m2
			e.op("VADDPS %s, %s, %s", t[3], t[2], t[0])    // r = m3+m4
			e.op("VSUBPS %s, %s, %s", t[3], t[2], t[1])    // w = m3−m4
			e.op("VADDPS %s, %s, %s", S(2, j), S(0, j), S(0, j))
			e.op("VADDPS %s, %s, %s", t[0], S(0, j), S(0, j))
			e.op("VADDPS %s, %s, %s", S(1, j), S(3, j), S(3, j))
			vo.fma(8, t[1], S(3, j))
			vo.fma(2, t[1], S(1, j))
			vo.fma(4, t[0], S(2, j))
		}
		e.text("\tMOVQ scale+56(FP), AX\n\tVMOVUPS (AX)(R10*1), Z28\n\tMOVQ shift+64(FP), AX\n\tVMOVUPS (AX)(R10*1), Z29\n\tMOVQ R13, AX\n")
		for i := 0; i < 4; i++ {
			if withSkip { // DX: the skip's row
				e.op("MOVQ skipDelta+72(FP), DX\n\tADDQ AX, DX")
			}
			row := []string{S(i, 0), S(i, 1), S(i, 2), S(i, 3), S(i, 4), S(i, 5)}
			for o, y := range vo.aT4(row, t[:]) {
				addr := []string{"(AX)", "(AX)(R9*1)", "(AX)(R9*2)", "(AX)(R14*1)"}[o]
				e.op("VFMADD213PS Z29, Z28, %s", y)
				if withSkip {
					e.op("VADDPS %s, %s, %s", strings.Replace(addr, "(AX)", "(DX)", 1), y, y)
				}
				e.op("VMAXPS %s, Z30, %s\n\tVMOVUPS %s, %s", y, y, y, addr)
			}
			if i < 3 {
				e.op("ADDQ R8, AX")
			}
		}
		e.textf("\tADDQ $64, R12\n\tADDQ $64, R13\n\tADDQ $64, R10\n\tDECQ CX\n\tJNZ %s_cv\n", l)
		e.textf("\tMOVQ k+48(FP), AX\n\tSHLQ $2, AX\n\tADDQ AX, SI\n\tLEAQ (DI)(R9*4), DI\n\tDECQ BX\n\tJMP %s_tile\n%s_done:\n\tVZEROUPPER\n\tRET\n", l, l)
	}

	// Weight transform: U = G·g·Gᵀ.
	e.decl("winoWeights4_512", "src unsafe.Pointer, ts int, dst unsafe.Pointer, ps, n, ss, ds int", 56)
	e.text("\tMOVQ src+0(FP), SI\n\tMOVQ ts+8(FP), R8\n\tMOVQ dst+16(FP), DI\n\tMOVQ ps+24(FP), R11\n\tMOVQ n+32(FP), CX\n\tTESTQ CX, CX\n\tJZ ww4_done\nww4_loop:\n\tMOVQ SI, AX\n")
	for tap := 0; tap < 9; tap++ {
		e.op("VMOVUPS (AX), %s", z(tap))
		if tap < 8 {
			e.op("ADDQ R8, AX")
		}
	}
	// (G·g)[r][u] in Z(9+3r+u), r < 6.
	for u := 0; u < 3; u++ {
		var o [6]string
		for r := range o {
			o[r] = z(9 + 3*r + u)
		}
		vo.gg4(z(u), z(3+u), z(6+u), o, "Z27")
	}
	e.op("MOVQ DI, DX")
	for r := 0; r < 6; r++ {
		vo.gg4(z(9+3*r), z(10+3*r), z(11+3*r), regs(0), "Z6")
		for j := 0; j < 6; j++ {
			e.op("VMOVUPS %s, (DX)", z(j))
			if r < 5 || j < 5 {
				e.op("ADDQ R11, DX")
			}
		}
	}
	e.text("\tADDQ ss+40(FP), SI\n\tADDQ ds+48(FP), DI\n\tDECQ CX\n\tJNZ ww4_loop\nww4_done:\n\tVZEROUPPER\n\tRET\n")
}

// genWinoGrad4 writes the weight gradient's kernels of F(4×4, 3×3):
// winoGrad4_512, the output-gradient transform Z = A·dY·Aᵀ (winoGrad512's
// signature; A = Aᵀ's transpose, 6×4), and winoGradOut4_512(src, ps, dst,
// ts, n), the transform back dw = Gᵀ·M·G of n consecutive vectors: M's 36
// positions ps bytes apart at src, dw's 9 taps ts bytes apart at dst, both
// advancing 64 bytes a vector.
func genWinoGrad4(e *emitter) {
	vo := zmmOps(e)
	// Rows: h[i][0..5] in Z(6i+j) from dY's row i (Z24..27); then columns
	// j: Z0..5 of (h[0..3][j]) stored at positions 6p+j.
	e.decl("winoGrad4_512", "dy unsafe.Pointer, rs, cs int, dst unsafe.Pointer, ps, tiles, k int", 56)
	e.text("\tMOVQ dy+0(FP), SI\n\tMOVQ rs+8(FP), R8\n\tMOVQ cs+16(FP), R9\n\tLEAQ (R9)(R9*2), R10\n\tMOVQ dst+24(FP), DI\n\tMOVQ ps+32(FP), R11\n\tIMUL3Q $6, R11, R14\n\tMOVQ tiles+40(FP), BX\n")
	e.text("wg4_tile:\n\tTESTQ BX, BX\n\tJZ wg4_done\n\tMOVQ SI, R12\n\tMOVQ DI, R13\n\tMOVQ k+48(FP), CX\n\tSHRQ $4, CX\nwg4_cv:\n\tMOVQ R12, AX\n")
	for i := 0; i < 4; i++ {
		for j, a := range []string{"(AX)", "(AX)(R9*1)", "(AX)(R9*2)", "(AX)(R10*1)"} {
			e.op("VMOVUPS %s, %s", a, z(24+j))
		}
		if i < 3 {
			e.op("ADDQ R8, AX")
		}
		var o [6]string
		for j := range o {
			o[j] = z(6*i + j)
		}
		vo.at4([4]string{"Z24", "Z25", "Z26", "Z27"}, o, "Z28", "Z29")
	}
	for j := 0; j < 6; j++ {
		e.op("MOVQ R13, DX")
		for k := 0; k < j; k++ {
			e.op("ADDQ R11, DX")
		}
		o := [6]string{"Z24", "Z25", "Z26", "Z27", "Z30", "Z31"}
		vo.at4([4]string{z(j), z(6 + j), z(12 + j), z(18 + j)}, o, "Z28", "Z29")
		for p := 0; p < 6; p++ {
			e.op("VMOVUPS %s, (DX)", o[p])
			if p < 5 {
				e.op("ADDQ R14, DX")
			}
		}
	}
	e.text("\tADDQ $64, R12\n\tADDQ $64, R13\n\tDECQ CX\n\tJNZ wg4_cv\n")
	e.text("\tLEAQ (SI)(R9*4), SI\n\tMOVQ k+48(FP), AX\n\tSHLQ $2, AX\n\tADDQ AX, DI\n\tDECQ BX\n\tJMP wg4_tile\nwg4_done:\n\tVZEROUPPER\n\tRET\n")

	// Columns j: h[0..2][j] in Z(3j+r) (Z0..17) from M's column (Z18..23);
	// then rows r: dw[r][0..2] (Z24..26) from h[r][0..5].
	e.decl("winoGradOut4_512", "src unsafe.Pointer, ps int, dst unsafe.Pointer, ts, n int", 40)
	e.text("\tMOVQ src+0(FP), SI\n\tMOVQ ps+8(FP), R11\n\tIMUL3Q $6, R11, R14\n\tMOVQ dst+16(FP), DI\n\tMOVQ ts+24(FP), R8\n\tMOVQ n+32(FP), CX\n\tTESTQ CX, CX\n\tJZ wgo4_done\nwgo4_loop:\n")
	for j := 0; j < 6; j++ {
		e.op("MOVQ SI, AX")
		for k := 0; k < j; k++ {
			e.op("ADDQ R11, AX")
		}
		var m [6]string
		for i := range m {
			m[i] = z(18 + i)
			e.op("VMOVUPS (AX), %s", m[i])
			if i < 5 {
				e.op("ADDQ R14, AX")
			}
		}
		vo.gt4(m, [3]string{z(3 * j), z(3*j + 1), z(3*j + 2)}, "Z24", "Z25")
	}
	e.op("MOVQ DI, DX")
	for r := 0; r < 3; r++ {
		var h [6]string
		for j := range h {
			h[j] = z(3*j + r)
		}
		o := [3]string{"Z26", "Z27", "Z28"}
		vo.gt4(h, o, "Z24", "Z25")
		for u := 0; u < 3; u++ {
			e.op("VMOVUPS %s, (DX)", o[u])
			if r < 2 || u < 2 {
				e.op("ADDQ R8, DX")
			}
		}
	}
	e.text("\tADDQ $64, SI\n\tADDQ $64, DI\n\tDECQ CX\n\tJNZ wgo4_loop\nwgo4_done:\n\tVZEROUPPER\n\tRET\n")
}
