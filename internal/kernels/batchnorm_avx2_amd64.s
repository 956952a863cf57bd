//go:build amd64 && !purego

// The AVX2 versions of batchnorm_amd64.s's kernels, instruction for
// instruction on 8-float vectors (c a multiple of 8); where those mask the
// gradient with K1 (y ≠ 0 or NaN), these AND it with VCMPPS's all-ones
// lanes (predicate 4, NEQ_UQ: true for NaN too). The Go declarations are
// in batchnorm_amd64.go.

#include "textflag.h"

// func chanShiftStatsAVX2(x unsafe.Pointer, rows, c int, shift, acc unsafe.Pointer)
TEXT ·chanShiftStatsAVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ rows+8(FP), BX
	MOVQ c+16(FP), R8
	SHLQ $2, R8
	MOVQ shift+24(FP), R9
	MOVQ acc+32(FP), DI
	LEAQ (DI)(R8*1), R11
	XORQ DX, DX
ssy_cv:
	CMPQ DX, R8
	JGE ssy_done
	LEAQ (SI)(DX*1), AX
	VMOVUPS (R9)(DX*1), Y1
	VPXOR Y0, Y0, Y0
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	MOVQ BX, CX
	SHRQ $1, CX
	JZ ssy_tail
ssy_row:
	VMOVUPS (AX), Y2
	VSUBPS Y1, Y2, Y2
	VADDPS Y2, Y3, Y3
	VFMADD231PS Y2, Y2, Y0
	VMOVUPS (AX)(R8*1), Y6
	VSUBPS Y1, Y6, Y6
	VADDPS Y6, Y5, Y5
	VFMADD231PS Y6, Y6, Y4
	LEAQ (AX)(R8*2), AX
	DECQ CX
	JNZ ssy_row
ssy_tail:
	TESTQ $1, BX
	JZ ssy_store
	VMOVUPS (AX), Y2
	VSUBPS Y1, Y2, Y2
	VADDPS Y2, Y3, Y3
	VFMADD231PS Y2, Y2, Y0
ssy_store:
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y3, Y3
	VADDPS (DI)(DX*1), Y0, Y0
	VMOVUPS Y0, (DI)(DX*1)
	VADDPS (R11)(DX*1), Y3, Y3
	VMOVUPS Y3, (R11)(DX*1)
	ADDQ $32, DX
	JMP ssy_cv
ssy_done:
	VZEROUPPER
	RET

// func chanDyStatsAVX2(x, dy, y, dz unsafe.Pointer, rows, c int, mean, acc unsafe.Pointer)
TEXT ·chanDyStatsAVX2(SB), NOSPLIT, $0-64
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), R10
	MOVQ rows+32(FP), BX
	MOVQ c+40(FP), R8
	SHLQ $2, R8
	MOVQ mean+48(FP), R9
	MOVQ acc+56(FP), DI
	LEAQ (DI)(R8*1), R11
	VPXOR Y6, Y6, Y6
	XORQ DX, DX
dsy_cv:
	CMPQ DX, R8
	JGE dsy_done
	LEAQ (SI)(DX*1), AX
	LEAQ (R10)(DX*1), R12
	MOVQ y+16(FP), R13
	ADDQ DX, R13
	MOVQ dz+24(FP), R14
	ADDQ DX, R14
	VMOVUPS (R9)(DX*1), Y1
	VPXOR Y0, Y0, Y0
	VPXOR Y3, Y3, Y3
	MOVQ BX, CX
	TESTQ CX, CX
	JZ dsy_store
dsy_row:
	VMOVUPS (R13), Y5
	VCMPPS $4, Y6, Y5, Y7
	VANDPS (R12), Y7, Y4
	CMPQ dz+24(FP), $0
	JEQ dsy_acc
	VMOVUPS Y4, (R14)
dsy_acc:
	VMOVUPS (AX), Y2
	VSUBPS Y1, Y2, Y2
	VADDPS Y4, Y0, Y0
	VFMADD231PS Y2, Y4, Y3
	ADDQ R8, AX
	ADDQ R8, R12
	ADDQ R8, R13
	ADDQ R8, R14
	DECQ CX
	JNZ dsy_row
dsy_store:
	VADDPS (DI)(DX*1), Y0, Y0
	VMOVUPS Y0, (DI)(DX*1)
	VADDPS (R11)(DX*1), Y3, Y3
	VMOVUPS Y3, (R11)(DX*1)
	ADDQ $32, DX
	JMP dsy_cv
dsy_done:
	VZEROUPPER
	RET

// func chanAffineAVX2(x, skip unsafe.Pointer, rows, c int, scale, shift, y unsafe.Pointer, relu, stream int)
TEXT ·chanAffineAVX2(SB), NOSPLIT, $0-72
	MOVQ x+0(FP), SI
	MOVQ skip+8(FP), R12
	MOVQ rows+16(FP), BX
	MOVQ c+24(FP), R8
	SHLQ $2, R8
	MOVQ scale+32(FP), R9
	MOVQ shift+40(FP), R10
	MOVQ y+48(FP), DI
	MOVQ relu+56(FP), R11
	MOVQ R12, R13
	VPXOR Y5, Y5, Y5
	TESTQ BX, BX
	JZ afy_done
afy_row:
	XORQ DX, DX
afy_cv:
	VMOVUPS (SI)(DX*1), Y0
	VMOVUPS (R9)(DX*1), Y2
	VFMADD213PS (R10)(DX*1), Y2, Y0
	TESTQ R13, R13
	JZ afy_relu
	VADDPS (R12)(DX*1), Y0, Y0
afy_relu:
	TESTQ R11, R11
	JZ afy_store
	VMAXPS Y0, Y5, Y0
afy_store:
	VMOVUPS Y0, (DI)(DX*1)
	ADDQ $32, DX
	CMPQ DX, R8
	JL afy_cv
	ADDQ R8, SI
	ADDQ R8, R12
	ADDQ R8, DI
	DECQ BX
	JNZ afy_row
afy_done:
	VZEROUPPER
	RET

// func chanAffine2AVX2(x, dy, y unsafe.Pointer, rows, c int, a, k, b, dx unsafe.Pointer)
TEXT ·chanAffine2AVX2(SB), NOSPLIT, $0-72
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), R12
	MOVQ y+16(FP), R13
	MOVQ rows+24(FP), BX
	MOVQ c+32(FP), R8
	SHLQ $2, R8
	MOVQ a+40(FP), R9
	MOVQ k+48(FP), R10
	MOVQ b+56(FP), R11
	MOVQ dx+64(FP), DI
	VPXOR Y6, Y6, Y6
	TESTQ BX, BX
	JZ a2y_done
a2y_row:
	XORQ DX, DX
a2y_cv:
	VMOVUPS (R13)(DX*1), Y5
	VCMPPS $4, Y6, Y5, Y7
	VANDPS (R12)(DX*1), Y7, Y0
	VMULPS (R9)(DX*1), Y0, Y0
	VMOVUPS (SI)(DX*1), Y1
	VFNMADD231PS (R10)(DX*1), Y1, Y0
	VADDPS (R11)(DX*1), Y0, Y0
	VMOVUPS Y0, (DI)(DX*1)
	ADDQ $32, DX
	CMPQ DX, R8
	JL a2y_cv
	ADDQ R8, SI
	ADDQ R8, R12
	ADDQ R8, R13
	ADDQ R8, DI
	DECQ BX
	JNZ a2y_row
a2y_done:
	VZEROUPPER
	RET

// func chanDyStatsRowsAVX2(x, dy, y, dz unsafe.Pointer, rows, c int, mean, acc unsafe.Pointer)
TEXT ·chanDyStatsRowsAVX2(SB), NOSPLIT, $0-64
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), R10
	MOVQ y+16(FP), R13
	MOVQ dz+24(FP), R14
	MOVQ rows+32(FP), BX
	MOVQ c+40(FP), R8
	SHLQ $2, R8
	MOVQ mean+48(FP), R9
	MOVQ acc+56(FP), DI
	LEAQ (DI)(R8*1), R11
	VPXOR Y6, Y6, Y6
	TESTQ BX, BX
	JZ dry_done
dry_row:
	XORQ DX, DX
dry_cv:
	VMOVUPS (R13)(DX*1), Y5
	VCMPPS $4, Y6, Y5, Y7
	VANDPS (R10)(DX*1), Y7, Y4
	TESTQ R14, R14
	JZ dry_acc
	VMOVUPS Y4, (R14)(DX*1)
dry_acc:
	VMOVUPS (SI)(DX*1), Y2
	VSUBPS (R9)(DX*1), Y2, Y2
	VADDPS (DI)(DX*1), Y4, Y0
	VMOVUPS Y0, (DI)(DX*1)
	VMOVUPS (R11)(DX*1), Y3
	VFMADD231PS Y2, Y4, Y3
	VMOVUPS Y3, (R11)(DX*1)
	ADDQ $32, DX
	CMPQ DX, R8
	JL dry_cv
	ADDQ R8, SI
	ADDQ R8, R10
	ADDQ R8, R13
	TESTQ R14, R14
	JZ dry_next
	ADDQ R8, R14
dry_next:
	DECQ BX
	JNZ dry_row
dry_done:
	VZEROUPPER
	RET

// func chanShiftStatsRowsAVX2(x unsafe.Pointer, rows, c int, shift, acc unsafe.Pointer)
TEXT ·chanShiftStatsRowsAVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ rows+8(FP), BX
	MOVQ c+16(FP), R8
	SHLQ $2, R8
	MOVQ shift+24(FP), R9
	MOVQ acc+32(FP), DI
	LEAQ (DI)(R8*1), R11
	TESTQ BX, BX
	JZ szy_done
szy_row:
	XORQ DX, DX
szy_cv:
	VMOVUPS (SI)(DX*1), Y2
	VSUBPS (R9)(DX*1), Y2, Y2
	VMOVUPS (DI)(DX*1), Y0
	VMOVUPS (R11)(DX*1), Y3
	VFMADD231PS Y2, Y2, Y0
	VADDPS Y2, Y3, Y3
	VMOVUPS Y0, (DI)(DX*1)
	VMOVUPS Y3, (R11)(DX*1)
	ADDQ $32, DX
	CMPQ DX, R8
	JL szy_cv
	ADDQ R8, SI
	DECQ BX
	JNZ szy_row
szy_done:
	VZEROUPPER
	RET
