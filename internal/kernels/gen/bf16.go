package main

import (
	"fmt"
	"strings"
)

// Go's assembler has no AVX512-BF16 mnemonics, so the bfloat16 kernels
// carry those instructions as their EVEX encodings (BYTE directives), made
// here and checked against binutils' disassembly in bf16_test.go.

// evex512 returns the EVEX encoding of a 512-bit, register-only
// instruction of opcode map 0F38 with W0, no masking and no broadcast:
// mandatory prefix pp (1: 66, 2: F3, 3: F2), reg the ModRM.reg operand (the
// destination), vvvv the second source, rm the ModRM.rm operand, each a
// ZMM register number 0–31.
func evex512(pp byte, opcode byte, reg, vvvv, rm int) []byte {
	bit := func(v, i int) byte { return byte(v>>i) & 1 }
	// P0: R X B R' 0 0 m m, with R, X, B and R' stored inverted: R and R'
	// extend reg (bits 3 and 4), B and X extend rm when it is a register.
	p0 := (1-bit(reg, 3))<<7 | (1-bit(rm, 4))<<6 | (1-bit(rm, 3))<<5 | (1-bit(reg, 4))<<4 | 0b10
	// P1: W vvvv 1 pp, vvvv inverted.
	p1 := byte(0)<<7 | (^byte(vvvv)&0xf)<<3 | 1<<2 | pp
	// P2: z L'L b V' aaa: L'L = 10 (512 bits), V' (vvvv's bit 4) inverted.
	p2 := byte(0b10)<<5 | (1-bit(vvvv, 4))<<3
	modrm := byte(0b11)<<6 | byte(reg&7)<<3 | byte(rm&7)
	return []byte{0x62, p0, p1, p2, opcode, modrm}
}

// vdpbf16ps encodes VDPBF16PS zmm(dst), zmm(a), zmm(b) (Intel's operand
// order): for each of 16 float32 lanes, dst += a.hi·b.hi + a.lo·b.lo over
// the lane's two bfloat16 halves.
func vdpbf16ps(dst, a, b int) []byte { return evex512(2, 0x52, dst, a, b) }

// vcvtne2ps2bf16 encodes VCVTNE2PS2BF16 zmm(dst), zmm(a), zmm(b): the 32
// bfloat16 values (round to nearest even) of b (low half of dst) and a
// (high half).
func vcvtne2ps2bf16(dst, a, b int) []byte { return evex512(3, 0x72, dst, a, b) }

// raw writes an encoded instruction as BYTE directives, its Intel
// mnemonic in a comment.
func (e *emitter) raw(code []byte, mnemonic string) {
	parts := make([]string, len(code))
	for i, b := range code {
		parts[i] = fmt.Sprintf("BYTE $0x%02x", b)
	}
	e.textf("\t%s // %s\n", strings.Join(parts, "; "), mnemonic)
}

// dpbf16 writes VDPBF16PS zmm(dst), zmm(a), zmm(b).
func (e *emitter) dpbf16(dst, a, b int) {
	e.raw(vdpbf16ps(dst, a, b), fmt.Sprintf("vdpbf16ps zmm%d, zmm%d, zmm%d", dst, a, b))
}

// bf16MaxMR is the tallest bfloat16 tile: two accumulators a row in
// Z0–Z23, the two weight vectors in Z28–Z29, the broadcasts in Z30–Z31.
const bf16MaxMR = 12

// genBF16 writes the bfloat16 micro-kernels gemmBF16AVX512_<mr> (see
// bf16Kernel in package kernels: c[p][0:32] += Σ_kk dp(a[p][kk], b[kk])),
// their table, and peakBF16.
func genBF16(e *emitter) {
	var names []string
	for mr := 1; mr <= bf16MaxMR; mr++ {
		names = append(names, genBF16Kernel(e, mr))
	}
	e.gof("\n// bf16KernelsAVX512[mr-1] is the VDPBF16PS micro-kernel of mr rows × 32 columns.\nvar bf16KernelsAVX512 = [...]bf16Kernel{%s}\n", strings.Join(names, ", "))
	genPeakBF16(e)
}

// genBF16Kernel writes one micro-kernel. Arguments (ABI0, 8 bytes each):
// a, lda, b, c, ldc, kp. Row p of a is read through pixAddr (DX = a,
// SI = lda), the pair kk of every row 4·kk bytes on; b advances 128 bytes
// (32 pairs) a pair; the tile is loaded from c, accumulated, stored back.
func genBF16Kernel(e *emitter, mr int) string {
	name := fmt.Sprintf("gemmBF16AVX512_%d", mr)
	e.gof("\n//go:noescape\nfunc %s(a unsafe.Pointer, lda int, b unsafe.Pointer, c unsafe.Pointer, ldc int, kp int)\n", name)
	e.textf("\n// func %s(a unsafe.Pointer, lda int, b unsafe.Pointer, c unsafe.Pointer, ldc int, kp int)\nTEXT ·%s(SB), NOSPLIT, $0-48\n", name, name)
	e.op("MOVQ a+0(FP), DX")
	e.op("MOVQ lda+8(FP), SI")
	e.op("MOVQ b+16(FP), BX")
	e.op("MOVQ c+24(FP), R11")
	e.op("MOVQ ldc+32(FP), R12")
	e.op("MOVQ kp+40(FP), CX")
	e.op("LEAQ (SI)(SI*2), DI")
	e.op("LEAQ (DX)(SI*1), R8")
	e.op("LEAQ (DX)(SI*2), R9")
	e.op("LEAQ (DX)(DI*1), R10")
	e.op("MOVQ R11, R13")
	for p := 0; p < mr; p++ {
		e.op("VMOVUPS (R13), %s", z(2*p))
		e.op("VMOVUPS 64(R13), %s", z(2*p+1))
		if p < mr-1 {
			e.op("ADDQ R12, R13")
		}
	}
	e.textf("%s_loop:\n", name)
	e.op("VMOVUPS (BX), Z28")
	e.op("VMOVUPS 64(BX), Z29")
	for p := 0; p < mr; p++ {
		bc := 30 + p%2
		e.op("VPBROADCASTD %s, %s", pixAddr(p, 0), z(bc))
		e.dpbf16(2*p, bc, 28)
		e.dpbf16(2*p+1, bc, 29)
	}
	e.op("ADDQ $4, DX")
	e.op("ADDQ $4, R8")
	e.op("ADDQ $4, R9")
	e.op("ADDQ $4, R10")
	e.op("ADDQ $128, BX")
	e.op("DECQ CX")
	e.op("JNZ %s_loop", name)
	e.op("MOVQ R11, R13")
	for p := 0; p < mr; p++ {
		e.op("VMOVUPS %s, (R13)", z(2*p))
		e.op("VMOVUPS %s, 64(R13)", z(2*p+1))
		if p < mr-1 {
			e.op("ADDQ R12, R13")
		}
	}
	e.op("VZEROUPPER")
	e.op("RET")
	return name
}

// genPeakBF16 writes peakBF16(n): n iterations of 24 independent
// VDPBF16PS on registers, the bfloat16 peak.
func genPeakBF16(e *emitter) {
	const nacc = 24
	e.gof("\n// peakBF16 runs n iterations of %d independent VDPBF16PS (%d FLOP each: 16 lanes × 2 products, a multiply and an add each).\n//\n//go:noescape\nfunc peakBF16(n int)\n\n// peakBF16FLOPPerIter is the number of FLOP one iteration of peakBF16 performs.\nconst peakBF16FLOPPerIter = %d\n", nacc, 64, 64*nacc)
	e.text("\n// func peakBF16(n int)\nTEXT ·peakBF16(SB), NOSPLIT, $0-8\n\tMOVQ n+0(FP), CX\n")
	for i := 0; i < nacc; i++ {
		e.op("VPXORD %s, %s, %s", z(i), z(i), z(i))
	}
	e.op("VPXORD Z30, Z30, Z30")
	e.op("VPXORD Z31, Z31, Z31")
	e.text("peakBF16_loop:\n")
	for i := 0; i < nacc; i++ {
		e.dpbf16(i, 30, 31)
	}
	e.text("\tDECQ CX\n\tJNZ peakBF16_loop\n\tVZEROUPPER\n\tRET\n")
}
