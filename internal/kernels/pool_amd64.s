//go:build amd64 && !purego

// Hand-written max pooling of one output pixel, AVX-512 and AVX2. The Go
// declarations, with the loop they compute, are in pool_amd64.go.

#include "textflag.h"

// func maxPool512(x, offs unsafe.Pointer, ntaps, c int, y, arg, iota unsafe.Pointer)
TEXT ·maxPool512(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ offs+8(FP), R8
	MOVQ ntaps+16(FP), BX
	MOVQ c+24(FP), R9
	MOVQ y+32(FP), DI
	MOVQ arg+40(FP), R10
	MOVQ iota+48(FP), R11
	VMOVDQU32 (R11), Z7
	XORQ DX, DX
mp_cv:
	CMPQ DX, R9
	JGE mp_done
	MOVQ 0(R8), AX
	ADDQ DX, AX
	VMOVUPS (SI)(AX*4), Z0
	VPBROADCASTD AX, Z1
	VPADDD Z7, Z1, Z1
	MOVQ $1, CX
mp_tap:
	CMPQ CX, BX
	JGE mp_store
	MOVQ (R8)(CX*8), AX
	ADDQ DX, AX
	VMOVUPS (SI)(AX*4), Z2
	VCMPPS $0x07, Z0, Z0, K2
	VCMPPS $0x16, Z0, Z2, K2, K1
	VMOVUPS Z2, K1, Z0
	VPBROADCASTD AX, Z3
	VPADDD Z7, Z3, Z3
	VMOVDQU32 Z3, K1, Z1
	INCQ CX
	JMP mp_tap
mp_store:
	VMOVUPS Z0, (DI)(DX*4)
	VMOVDQU32 Z1, (R10)(DX*4)
	ADDQ $16, DX
	JMP mp_cv
mp_done:
	VZEROUPPER
	RET

// func maxPoolAVX2(x, offs unsafe.Pointer, ntaps, c int, y, arg, iota unsafe.Pointer)
//
// maxPool512 on 8-float vectors: the new value wins where the maximum so
// far is ordered (predicate 7) and the value is not ≤ it (predicate 0x16,
// NLE_UQ: greater, or NaN), blended with VBLENDVPS instead of K1.
TEXT ·maxPoolAVX2(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ offs+8(FP), R8
	MOVQ ntaps+16(FP), BX
	MOVQ c+24(FP), R9
	MOVQ y+32(FP), DI
	MOVQ arg+40(FP), R10
	MOVQ iota+48(FP), R11
	VMOVDQU (R11), Y7
	XORQ DX, DX
mq_cv:
	CMPQ DX, R9
	JGE mq_done
	MOVQ 0(R8), AX
	ADDQ DX, AX
	VMOVUPS (SI)(AX*4), Y0
	VMOVD AX, X1
	VPBROADCASTD X1, Y1
	VPADDD Y7, Y1, Y1
	MOVQ $1, CX
mq_tap:
	CMPQ CX, BX
	JGE mq_store
	MOVQ (R8)(CX*8), AX
	ADDQ DX, AX
	VMOVUPS (SI)(AX*4), Y2
	VCMPPS $0x07, Y0, Y0, Y4
	VCMPPS $0x16, Y0, Y2, Y5
	VANDPS Y4, Y5, Y5
	VBLENDVPS Y5, Y2, Y0, Y0
	VMOVD AX, X3
	VPBROADCASTD X3, Y3
	VPADDD Y7, Y3, Y3
	VBLENDVPS Y5, Y3, Y1, Y1
	INCQ CX
	JMP mq_tap
mq_store:
	VMOVUPS Y0, (DI)(DX*4)
	VMOVDQU Y1, (R10)(DX*4)
	ADDQ $8, DX
	JMP mq_cv
mq_done:
	VZEROUPPER
	RET

// func maxU8AVX2(dst, src unsafe.Pointer, n int)
// dst[i] = max(dst[i], src[i]) for i < n, a multiple of 32.
TEXT ·maxU8AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $5, CX
	JZ maxu8_done
maxu8_loop:
	VMOVDQU (SI), Y0
	VPMAXUB (DI), Y0, Y0
	VMOVDQU Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ maxu8_loop
maxu8_done:
	VZEROUPPER
	RET
