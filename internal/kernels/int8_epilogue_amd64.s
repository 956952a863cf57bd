//go:build amd64 && !purego

// The int8 epilogue's requantization (Int8Epilogue.store, requantize) on
// 8-lane AVX2 vectors, operation for operation as the Go code computes it:
// int32 sum + bias, converted to float32 (VCVTDQ2PS, round to nearest
// even as Go's conversion), times the multiplier, plus (with a residual)
// float32(res − zero) times its multiplier, clamped to ±1e6, rounded to
// an integer half to even (VCVTPS2DQ under the default MXCSR, which Go
// keeps), plus the output zero point, clamped to [lo, 255] and stored as
// bytes (VPACKUSDW makes a negative lo 0). A NaN becomes 1e6: VMINPS
// returns its second source, the constant, when one is NaN. n is a
// multiple of 8. The Go declarations are in int8_amd64.go.

#include "textflag.h"

// CONSTANTS sets Y12 to 255 in each lane and Y13, Y14 to ±1e6 (uses AX).
#define CONSTANTS \
	MOVL $255, AX \
	VMOVD AX, X12 \
	VPBROADCASTD X12, Y12 \
	MOVL $0x49742400, AX \
	VMOVD AX, X13 \
	VBROADCASTSS X13, Y13 \
	MOVL $0xc9742400, AX \
	VMOVD AX, X14 \
	VBROADCASTSS X14, Y14

// STORE clamps the floats in Y0 to ±1e6, rounds them half to even, adds
// the zero point (Y10), clamps to [lo (Y11), 255 (Y12)] and stores the 8
// bytes at (DI).
#define STORE \
	VMINPS Y13, Y0, Y0 \
	VMAXPS Y14, Y0, Y0 \
	VCVTPS2DQ Y0, Y0 \
	VPADDD Y10, Y0, Y0 \
	VPMAXSD Y11, Y0, Y0 \
	VPMINSD Y12, Y0, Y0 \
	VEXTRACTI128 $1, Y0, X1 \
	VPACKUSDW X1, X0, X0 \
	VPACKUSWB X0, X0, X0 \
	VMOVQ X0, (DI)

// func requantizeAVX2(acc, bias, mult, out unsafe.Pointer, n int, zero, lo int32)
TEXT ·requantizeAVX2(SB), NOSPLIT, $0-48
	MOVQ acc+0(FP), SI
	MOVQ bias+8(FP), BX
	MOVQ mult+16(FP), DX
	MOVQ out+24(FP), DI
	MOVQ n+32(FP), CX
	SHRQ $3, CX
	MOVL zero+40(FP), AX
	VMOVD AX, X10
	VPBROADCASTD X10, Y10
	MOVL lo+44(FP), AX
	VMOVD AX, X11
	VPBROADCASTD X11, Y11
	CONSTANTS
	TESTQ CX, CX
	JZ rq_done
rq_loop:
	VMOVDQU (SI), Y0
	VPADDD (BX), Y0, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS (DX), Y0, Y0
	STORE
	ADDQ $32, SI
	ADDQ $32, BX
	ADDQ $32, DX
	ADDQ $8, DI
	DECQ CX
	JNZ rq_loop
rq_done:
	VZEROUPPER
	RET

// func requantizeResAVX2(acc, bias, mult, out, res unsafe.Pointer, n int, zero, lo, resZero int32, resMult float32)
TEXT ·requantizeResAVX2(SB), NOSPLIT, $0-64
	MOVQ acc+0(FP), SI
	MOVQ bias+8(FP), BX
	MOVQ mult+16(FP), DX
	MOVQ out+24(FP), DI
	MOVQ res+32(FP), R8
	MOVQ n+40(FP), CX
	SHRQ $3, CX
	MOVL zero+48(FP), AX
	VMOVD AX, X10
	VPBROADCASTD X10, Y10
	MOVL lo+52(FP), AX
	VMOVD AX, X11
	VPBROADCASTD X11, Y11
	MOVL resZero+56(FP), AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9
	VBROADCASTSS resMult+60(FP), Y8
	CONSTANTS
	TESTQ CX, CX
	JZ rr_done
rr_loop:
	VMOVDQU (SI), Y0
	VPADDD (BX), Y0, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS (DX), Y0, Y0
	VPMOVZXBD (R8), Y2
	VPSUBD Y9, Y2, Y2
	VCVTDQ2PS Y2, Y2
	VMULPS Y8, Y2, Y2
	VADDPS Y2, Y0, Y0
	STORE
	ADDQ $32, SI
	ADDQ $32, BX
	ADDQ $32, DX
	ADDQ $8, DI
	ADDQ $8, R8
	DECQ CX
	JNZ rr_loop
rr_done:
	VZEROUPPER
	RET
