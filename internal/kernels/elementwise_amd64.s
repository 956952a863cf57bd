//go:build amd64 && !purego

// Hand-written AVX-512 element-wise kernels: ReLU and its gradient, the
// addition and the SGD-with-momentum step. The Go declarations, with the
// loop each computes, are in elementwise_amd64.go.

#include "textflag.h"

// func relu512(x, y unsafe.Pointer, n int)
TEXT ·relu512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	VPXORD Z1, Z1, Z1
	TESTQ CX, CX
	JZ rl_done
rl_loop:
	VMAXPS (SI), Z1, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ rl_loop
rl_done:
	VZEROUPPER
	RET

// func reluGrad512(y, dy, dx unsafe.Pointer, n int)
TEXT ·reluGrad512(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), SI
	MOVQ dy+8(FP), R8
	MOVQ dx+16(FP), DI
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	VPXORD Z1, Z1, Z1
	TESTQ CX, CX
	JZ rg_done
rg_loop:
	VMOVUPS (SI), Z0
	VCMPPS $4, Z1, Z0, K1
	VMOVUPS.Z (R8), K1, Z2
	VMOVUPS Z2, (DI)
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, DI
	DECQ CX
	JNZ rg_loop
rg_done:
	VZEROUPPER
	RET

// func add512(a, b, y unsafe.Pointer, n int)
TEXT ·add512(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), R8
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	TESTQ CX, CX
	JZ ad_done
ad_loop:
	VMOVUPS (SI), Z0
	VADDPS (R8), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, DI
	DECQ CX
	JNZ ad_loop
ad_done:
	VZEROUPPER
	RET

// func sgd512(w, grad, buf unsafe.Pointer, n int, coef unsafe.Pointer)
TEXT ·sgd512(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ buf+16(FP), R8
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	MOVQ coef+32(FP), AX
	VBROADCASTSS 0(AX), Z4
	VBROADCASTSS 4(AX), Z5
	VBROADCASTSS 8(AX), Z6
	VBROADCASTSS 12(AX), Z7
	TESTQ CX, CX
	JZ sgd_done
sgd_loop:
	VMOVUPS (DI), Z0
	VMOVUPS (SI), Z1
	VFMADD231PS Z5, Z0, Z1
	VMULPS Z7, Z1, Z1
	VFMADD231PS (R8), Z6, Z1
	VMOVUPS Z1, (R8)
	VFNMADD231PS Z4, Z1, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	ADDQ $64, SI
	ADDQ $64, R8
	DECQ CX
	JNZ sgd_loop
sgd_done:
	VZEROUPPER
	RET
