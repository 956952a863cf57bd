//go:build amd64 && !purego

// The AVX2 versions of elementwise_amd64.s's kernels, instruction for
// instruction on 8-float vectors (n a multiple of 8); the ReLU gradient
// ANDs VCMPPS's NEQ_UQ lanes where AVX-512 masks with K1. The Go
// declarations are in elementwise_amd64.go.

#include "textflag.h"

// func reluAVX2(x, y unsafe.Pointer, n int)
TEXT ·reluAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	VPXOR Y1, Y1, Y1
	TESTQ CX, CX
	JZ rl_done
rl_loop:
	VMAXPS (SI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ rl_loop
rl_done:
	VZEROUPPER
	RET

// func reluGradAVX2(y, dy, dx unsafe.Pointer, n int)
TEXT ·reluGradAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), SI
	MOVQ dy+8(FP), R8
	MOVQ dx+16(FP), DI
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	VPXOR Y1, Y1, Y1
	TESTQ CX, CX
	JZ rg_done
rg_loop:
	VMOVUPS (SI), Y0
	VCMPPS $4, Y1, Y0, Y3
	VANDPS (R8), Y3, Y2
	VMOVUPS Y2, (DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, DI
	DECQ CX
	JNZ rg_loop
rg_done:
	VZEROUPPER
	RET

// func addAVX2(a, b, y unsafe.Pointer, n int)
TEXT ·addAVX2(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), R8
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	TESTQ CX, CX
	JZ ad_done
ad_loop:
	VMOVUPS (SI), Y0
	VADDPS (R8), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, DI
	DECQ CX
	JNZ ad_loop
ad_done:
	VZEROUPPER
	RET

// func sgdAVX2(w, grad, buf unsafe.Pointer, n int, coef unsafe.Pointer)
TEXT ·sgdAVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ buf+16(FP), R8
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	MOVQ coef+32(FP), AX
	VBROADCASTSS 0(AX), Y4
	VBROADCASTSS 4(AX), Y5
	VBROADCASTSS 8(AX), Y6
	VBROADCASTSS 12(AX), Y7
	TESTQ CX, CX
	JZ sgd_done
sgd_loop:
	VMOVUPS (DI), Y0
	VMOVUPS (SI), Y1
	VFMADD231PS Y5, Y0, Y1
	VMULPS Y7, Y1, Y1
	VFMADD231PS (R8), Y6, Y1
	VMOVUPS Y1, (R8)
	VFNMADD231PS Y4, Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, R8
	DECQ CX
	JNZ sgd_loop
sgd_done:
	VZEROUPPER
	RET
