//go:build amd64 && !purego

// Hand-written AVX-512 max pooling of one output pixel. The Go
// declaration, with the loop it computes, is in pool_amd64.go.

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
