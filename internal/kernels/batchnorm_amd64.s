//go:build amd64 && !purego

// Hand-written AVX-512 kernels of batch norm: the per-channel sums of the
// statistics and of the backward pass, and the per-channel affine maps
// with the fused skip addition and ReLU. The Go declarations, with the
// loop each computes, are in batchnorm_amd64.go.

#include "textflag.h"

// Broadcast constants of ROUNDBF16Z0 (bf16_amd64.s's bf16c, a vector each).
DATA bnbf16one<>+0(SB)/4, $0x00000001
GLOBL bnbf16one<>(SB), RODATA|NOPTR, $4
DATA bnbf16bias<>+0(SB)/4, $0x00007fff
GLOBL bnbf16bias<>(SB), RODATA|NOPTR, $4
DATA bnbf16mag<>+0(SB)/4, $0x7fffffff
GLOBL bnbf16mag<>(SB), RODATA|NOPTR, $4
DATA bnbf16inf<>+0(SB)/4, $0x7f800000
GLOBL bnbf16inf<>(SB), RODATA|NOPTR, $4
DATA bnbf16quiet<>+0(SB)/4, $0x00400000
GLOBL bnbf16quiet<>(SB), RODATA|NOPTR, $4

// A2 sets Z0 to 16 values of the batch norm's dx at byte offset DX of
// the channel vectors: a·g − k·x + b with g = dy where y ≠ 0 (or is NaN)
// and 0 elsewhere (SI x, R12 dy, R13 y, R9 a, R10 k, R11 b; Z6 zero).
// A2MASK is A2 with the mask recomputed from x as chanAffine512 computes
// the output, max(x·scale + shift, 0) ≠ 0 (R15 scale, R13 shift).
#define A2 \
	VMOVUPS (R13)(DX*1), Z5 \
	VCMPPS $4, Z6, Z5, K1 \
	VMOVUPS.Z (R12)(DX*1), K1, Z0 \
	VMULPS (R9)(DX*1), Z0, Z0 \
	VMOVUPS (SI)(DX*1), Z1 \
	VFNMADD231PS (R10)(DX*1), Z1, Z0 \
	VADDPS (R11)(DX*1), Z0, Z0

#define A2MASK \
	VMOVUPS (SI)(DX*1), Z1 \
	VMOVAPS Z1, Z5 \
	VMOVUPS (R15)(DX*1), Z7 \
	VFMADD213PS (R13)(DX*1), Z7, Z5 \
	VMAXPS Z5, Z6, Z5 \
	VCMPPS $4, Z6, Z5, K1 \
	VMOVUPS.Z (R12)(DX*1), K1, Z0 \
	VMULPS (R9)(DX*1), Z0, Z0 \
	VFNMADD231PS (R10)(DX*1), Z1, Z0 \
	VADDPS (R11)(DX*1), Z0, Z0
// VCVTNE2PS2BF16 zmm3, zmm0, zmm0 (TestAMXEncodings): Z0's 16 float32
// rounded to bfloat16 in Y3 (and again in the upper half).
#define CVTNE2_3_0_0 BYTE $0x62; BYTE $0xf2; BYTE $0x7f; BYTE $0x48; BYTE $0x72; BYTE $0xd8 // vcvtne2ps2bf16 zmm3, zmm0, zmm0

// ROUNDBF16Z0 sets Y3 to Z0's 16 float32 rounded to bfloat16 in integer
// arithmetic (BF16FromFloat32, subnormals rounded: bf16_amd64.s's
// ROUNDBF16Z), for blocks VCVTNE2PS2BF16 would flush; clobbers Z3, Z4 and
// K1.
#define ROUNDBF16Z0 \
	VPSRLD $16, Z0, Z3 \
	VPANDD.BCST bnbf16one<>(SB), Z3, Z3 \
	VPADDD.BCST bnbf16bias<>(SB), Z3, Z3 \
	VPADDD Z0, Z3, Z3 \
	VPANDD.BCST bnbf16mag<>(SB), Z0, Z4 \
	VPCMPGTD.BCST bnbf16inf<>(SB), Z4, K1 \
	VPORD.BCST bnbf16quiet<>(SB), Z0, K1, Z3 \
	VPSRLD $16, Z3, Z3 \
	VPMOVDW Z3, Y3


// func chanShiftStats512(x unsafe.Pointer, rows, c int, shift, acc unsafe.Pointer)
TEXT ·chanShiftStats512(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ rows+8(FP), BX
	MOVQ c+16(FP), R8
	SHLQ $2, R8
	MOVQ shift+24(FP), R9
	MOVQ acc+32(FP), DI
	LEAQ (DI)(R8*1), R11
	XORQ DX, DX
ss_cv:
	CMPQ DX, R8
	JGE ss_done
	LEAQ (SI)(DX*1), AX
	VMOVUPS (R9)(DX*1), Z1
	VPXORD Z0, Z0, Z0
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	MOVQ BX, CX
	SHRQ $1, CX
	JZ ss_tail
ss_row:
	VMOVUPS (AX), Z2
	VSUBPS Z1, Z2, Z2
	VADDPS Z2, Z3, Z3
	VFMADD231PS Z2, Z2, Z0
	VMOVUPS (AX)(R8*1), Z6
	VSUBPS Z1, Z6, Z6
	VADDPS Z6, Z5, Z5
	VFMADD231PS Z6, Z6, Z4
	LEAQ (AX)(R8*2), AX
	DECQ CX
	JNZ ss_row
ss_tail:
	TESTQ $1, BX
	JZ ss_store
	VMOVUPS (AX), Z2
	VSUBPS Z1, Z2, Z2
	VADDPS Z2, Z3, Z3
	VFMADD231PS Z2, Z2, Z0
ss_store:
	VADDPS Z4, Z0, Z0
	VADDPS Z5, Z3, Z3
	VADDPS (DI)(DX*1), Z0, Z0
	VMOVUPS Z0, (DI)(DX*1)
	VADDPS (R11)(DX*1), Z3, Z3
	VMOVUPS Z3, (R11)(DX*1)
	ADDQ $64, DX
	JMP ss_cv
ss_done:
	VZEROUPPER
	RET

// func chanDyStats512(x, dy, y, dz unsafe.Pointer, rows, c, stride int, mean, acc unsafe.Pointer)
TEXT ·chanDyStats512(SB), NOSPLIT, $0-72
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), R10
	MOVQ rows+32(FP), BX
	MOVQ c+40(FP), R8
	SHLQ $2, R8
	MOVQ stride+48(FP), R15
	SHLQ $2, R15
	MOVQ mean+56(FP), R9
	MOVQ acc+64(FP), DI
	LEAQ (DI)(R8*1), R11
	VPXORD Z6, Z6, Z6
	XORQ DX, DX
ds_cv:
	CMPQ DX, R8
	JGE ds_done
	LEAQ (SI)(DX*1), AX
	LEAQ (R10)(DX*1), R12
	MOVQ y+16(FP), R13
	ADDQ DX, R13
	MOVQ dz+24(FP), R14
	ADDQ DX, R14
	VMOVUPS (R9)(DX*1), Z1
	VPXORD Z0, Z0, Z0
	VPXORD Z3, Z3, Z3
	MOVQ BX, CX
	TESTQ CX, CX
	JZ ds_store
ds_row:
	VMOVUPS (R13), Z5
	VCMPPS $4, Z6, Z5, K1
	VMOVUPS.Z (R12), K1, Z4
	CMPQ dz+24(FP), $0
	JEQ ds_acc
	VMOVUPS Z4, (R14)
ds_acc:
	VMOVUPS (AX), Z2
	VSUBPS Z1, Z2, Z2
	VADDPS Z4, Z0, Z0
	VFMADD231PS Z2, Z4, Z3
	ADDQ R15, AX
	ADDQ R15, R12
	ADDQ R15, R13
	ADDQ R15, R14
	DECQ CX
	JNZ ds_row
ds_store:
	VADDPS (DI)(DX*1), Z0, Z0
	VMOVUPS Z0, (DI)(DX*1)
	VADDPS (R11)(DX*1), Z3, Z3
	VMOVUPS Z3, (R11)(DX*1)
	ADDQ $64, DX
	JMP ds_cv
ds_done:
	VZEROUPPER
	RET

// func chanAffine2512(x, dy, y unsafe.Pointer, rows, c int, a, k, b, dx unsafe.Pointer)
TEXT ·chanAffine2512(SB), NOSPLIT, $0-72
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
	VPXORD Z6, Z6, Z6
	TESTQ BX, BX
	JZ a2_done
a2_row:
	XORQ DX, DX
a2_cv:
	A2
	VMOVUPS Z0, (DI)(DX*1)
	ADDQ $64, DX
	CMPQ DX, R8
	JL a2_cv
	ADDQ R8, SI
	ADDQ R8, R12
	ADDQ R8, R13
	ADDQ R8, DI
	DECQ BX
	JNZ a2_row
a2_done:
	VZEROUPPER
	RET

// func chanDyStatsRows512(x, dy, y, dz unsafe.Pointer, rows, c int, mean, acc unsafe.Pointer)
TEXT ·chanDyStatsRows512(SB), NOSPLIT, $0-64
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
	VPXORD Z6, Z6, Z6
	TESTQ BX, BX
	JZ dr_done
dr_row:
	XORQ DX, DX
dr_cv:
	VMOVUPS (R13)(DX*1), Z5
	VCMPPS $4, Z6, Z5, K1
	VMOVUPS.Z (R10)(DX*1), K1, Z4
	TESTQ R14, R14
	JZ dr_acc
	VMOVUPS Z4, (R14)(DX*1)
dr_acc:
	VMOVUPS (SI)(DX*1), Z2
	VSUBPS (R9)(DX*1), Z2, Z2
	VADDPS (DI)(DX*1), Z4, Z0
	VMOVUPS Z0, (DI)(DX*1)
	VMOVUPS (R11)(DX*1), Z3
	VFMADD231PS Z2, Z4, Z3
	VMOVUPS Z3, (R11)(DX*1)
	ADDQ $64, DX
	CMPQ DX, R8
	JL dr_cv
	ADDQ R8, SI
	ADDQ R8, R10
	ADDQ R8, R13
	TESTQ R14, R14
	JZ dr_next
	ADDQ R8, R14
dr_next:
	DECQ BX
	JNZ dr_row
dr_done:
	VZEROUPPER
	RET

// func chanShiftStatsRows512(x unsafe.Pointer, rows, c int, shift, acc unsafe.Pointer)
TEXT ·chanShiftStatsRows512(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ rows+8(FP), BX
	MOVQ c+16(FP), R8
	SHLQ $2, R8
	MOVQ shift+24(FP), R9
	MOVQ acc+32(FP), DI
	LEAQ (DI)(R8*1), R11
	TESTQ BX, BX
	JZ szr_done
szr_row:
	XORQ DX, DX
szr_cv:
	VMOVUPS (SI)(DX*1), Z2
	VSUBPS (R9)(DX*1), Z2, Z2
	VMOVUPS (DI)(DX*1), Z0
	VMOVUPS (R11)(DX*1), Z3
	VFMADD231PS Z2, Z2, Z0
	VADDPS Z2, Z3, Z3
	VMOVUPS Z0, (DI)(DX*1)
	VMOVUPS Z3, (R11)(DX*1)
	ADDQ $64, DX
	CMPQ DX, R8
	JL szr_cv
	ADDQ R8, SI
	DECQ BX
	JNZ szr_row
szr_done:
	VZEROUPPER
	RET


// The backward kernels of a batch norm whose ReLU's output was never
// stored (ReLUAffine): the mask is recomputed from x as chanAffine512
// computes the output, z = max(x·scale + shift, 0) (the same FMA and
// VMAXPS operand order, so that z ≠ 0 exactly where the stored output
// would be), in place of reading y.

// func chanDyStatsMask512(x, dy, dz unsafe.Pointer, rows, c, stride int, mean, scale, shift, acc unsafe.Pointer)
TEXT ·chanDyStatsMask512(SB), NOSPLIT, $0-80
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), R10
	MOVQ rows+24(FP), BX
	MOVQ c+32(FP), R8
	SHLQ $2, R8
	MOVQ stride+40(FP), R13
	SHLQ $2, R13
	MOVQ mean+48(FP), R9
	MOVQ scale+56(FP), R15
	MOVQ shift+64(FP), DI
	VPXORD Z6, Z6, Z6
	XORQ DX, DX
dm_cv:
	CMPQ DX, R8
	JGE dm_done
	LEAQ (SI)(DX*1), AX
	LEAQ (R10)(DX*1), R12
	MOVQ dz+16(FP), R14
	ADDQ DX, R14
	VMOVUPS (R9)(DX*1), Z1
	VMOVUPS (R15)(DX*1), Z7
	VMOVUPS (DI)(DX*1), Z8
	VPXORD Z0, Z0, Z0
	VPXORD Z3, Z3, Z3
	MOVQ BX, CX
	TESTQ CX, CX
	JZ dm_store
dm_row:
	VMOVUPS (AX), Z2
	VMOVAPS Z2, Z5
	VFMADD213PS Z8, Z7, Z5
	VMAXPS Z5, Z6, Z5
	VCMPPS $4, Z6, Z5, K1
	VMOVUPS.Z (R12), K1, Z4
	CMPQ dz+16(FP), $0
	JEQ dm_acc
	VMOVUPS Z4, (R14)
dm_acc:
	VSUBPS Z1, Z2, Z2
	VADDPS Z4, Z0, Z0
	VFMADD231PS Z2, Z4, Z3
	ADDQ R13, AX
	ADDQ R13, R12
	ADDQ R13, R14
	DECQ CX
	JNZ dm_row
dm_store:
	MOVQ acc+72(FP), R11
	VADDPS (R11)(DX*1), Z0, Z0
	VMOVUPS Z0, (R11)(DX*1)
	ADDQ R8, R11
	VADDPS (R11)(DX*1), Z3, Z3
	VMOVUPS Z3, (R11)(DX*1)
	ADDQ $64, DX
	JMP dm_cv
dm_done:
	VZEROUPPER
	RET

// func chanDyStatsRowsMask512(x, dy, dz unsafe.Pointer, rows, c int, mean, scale, shift, acc unsafe.Pointer)
TEXT ·chanDyStatsRowsMask512(SB), NOSPLIT, $0-72
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), R10
	MOVQ dz+16(FP), R14
	MOVQ rows+24(FP), BX
	MOVQ c+32(FP), R8
	SHLQ $2, R8
	MOVQ mean+40(FP), R9
	MOVQ scale+48(FP), R15
	MOVQ shift+56(FP), R13
	MOVQ acc+64(FP), DI
	LEAQ (DI)(R8*1), R11
	VPXORD Z6, Z6, Z6
	TESTQ BX, BX
	JZ drm_done
drm_row:
	XORQ DX, DX
drm_cv:
	VMOVUPS (SI)(DX*1), Z2
	VMOVAPS Z2, Z5
	VMOVUPS (R15)(DX*1), Z7
	VFMADD213PS (R13)(DX*1), Z7, Z5
	VMAXPS Z5, Z6, Z5
	VCMPPS $4, Z6, Z5, K1
	VMOVUPS.Z (R10)(DX*1), K1, Z4
	TESTQ R14, R14
	JZ drm_acc
	VMOVUPS Z4, (R14)(DX*1)
drm_acc:
	VSUBPS (R9)(DX*1), Z2, Z2
	VADDPS (DI)(DX*1), Z4, Z0
	VMOVUPS Z0, (DI)(DX*1)
	VMOVUPS (R11)(DX*1), Z3
	VFMADD231PS Z2, Z4, Z3
	VMOVUPS Z3, (R11)(DX*1)
	ADDQ $64, DX
	CMPQ DX, R8
	JL drm_cv
	ADDQ R8, SI
	ADDQ R8, R10
	TESTQ R14, R14
	JZ drm_next
	ADDQ R8, R14
drm_next:
	DECQ BX
	JNZ drm_row
drm_done:
	VZEROUPPER
	RET

// func chanAffine2Mask512(x, dy unsafe.Pointer, rows, c int, a, k, b, scale, shift, dx unsafe.Pointer)
TEXT ·chanAffine2Mask512(SB), NOSPLIT, $0-80
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), R12
	MOVQ rows+16(FP), BX
	MOVQ c+24(FP), R8
	SHLQ $2, R8
	MOVQ a+32(FP), R9
	MOVQ k+40(FP), R10
	MOVQ b+48(FP), R11
	MOVQ scale+56(FP), R15
	MOVQ shift+64(FP), R13
	MOVQ dx+72(FP), DI
	VPXORD Z6, Z6, Z6
	TESTQ BX, BX
	JZ a2m_done
a2m_row:
	XORQ DX, DX
a2m_cv:
	A2MASK
	VMOVUPS Z0, (DI)(DX*1)
	ADDQ $64, DX
	CMPQ DX, R8
	JL a2m_cv
	ADDQ R8, SI
	ADDQ R8, R12
	ADDQ R8, DI
	DECQ BX
	JNZ a2m_row
a2m_done:
	VZEROUPPER
	RET

// The batch norm's last backward pass with dx stored as bfloat16
// (BF16FromFloat32's bits), for a convolution's gradient that its
// backward pass reads only as bfloat16: VCVTNE2PS2BF16, or ROUNDBF16Z0 for
// a vector with a subnormal value.

// func chanAffine2ToBF16512(x, dy, y unsafe.Pointer, rows, c int, a, k, b, dxb unsafe.Pointer)
TEXT ·chanAffine2ToBF16512(SB), NOSPLIT, $0-72
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), R12
	MOVQ y+16(FP), R13
	MOVQ rows+24(FP), BX
	MOVQ c+32(FP), R8
	SHLQ $2, R8
	MOVQ a+40(FP), R9
	MOVQ k+48(FP), R10
	MOVQ b+56(FP), R11
	MOVQ dxb+64(FP), DI
	VPXORD Z6, Z6, Z6
	TESTQ BX, BX
	JZ a2b_done
a2b_row:
	XORQ DX, DX
	XORQ R15, R15
a2b_cv:
	A2
	VFPCLASSPSZ $0x20, Z0, K2
	KORTESTW K2, K2
	JNZ a2b_sub
	CVTNE2_3_0_0
a2b_store:
	VMOVDQU Y3, (DI)(R15*1)
	ADDQ $64, DX
	ADDQ $32, R15
	CMPQ DX, R8
	JL a2b_cv
	ADDQ R8, SI
	ADDQ R8, R12
	ADDQ R8, R13
	ADDQ R15, DI
	DECQ BX
	JNZ a2b_row
a2b_done:
	VZEROUPPER
	RET
a2b_sub:
	ROUNDBF16Z0
	JMP a2b_store

// func chanAffine2MaskToBF16512(x, dy unsafe.Pointer, rows, c int, a, k, b, scale, shift, dxb unsafe.Pointer)
TEXT ·chanAffine2MaskToBF16512(SB), NOSPLIT, $0-80
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), R12
	MOVQ rows+16(FP), BX
	MOVQ c+24(FP), R8
	SHLQ $2, R8
	MOVQ a+32(FP), R9
	MOVQ k+40(FP), R10
	MOVQ b+48(FP), R11
	MOVQ scale+56(FP), R15
	MOVQ shift+64(FP), R13
	MOVQ dxb+72(FP), DI
	VPXORD Z6, Z6, Z6
	TESTQ BX, BX
	JZ a2mb_done
a2mb_row:
	XORQ DX, DX
	XORQ R14, R14
a2mb_cv:
	A2MASK
	VFPCLASSPSZ $0x20, Z0, K2
	KORTESTW K2, K2
	JNZ a2mb_sub
	CVTNE2_3_0_0
a2mb_store:
	VMOVDQU Y3, (DI)(R14*1)
	ADDQ $64, DX
	ADDQ $32, R14
	CMPQ DX, R8
	JL a2mb_cv
	ADDQ R8, SI
	ADDQ R8, R12
	ADDQ R14, DI
	DECQ BX
	JNZ a2mb_row
a2mb_done:
	VZEROUPPER
	RET
a2mb_sub:
	ROUNDBF16Z0
	JMP a2mb_store


// func chanAffineToBF16512(x, skip unsafe.Pointer, rows, c int, scale, shift, y, yb unsafe.Pointer, relu, stream int)
TEXT ·chanAffineToBF16512(SB), NOSPLIT, $0-80
	MOVQ x+0(FP), SI
	MOVQ skip+8(FP), R12
	MOVQ rows+16(FP), BX
	MOVQ c+24(FP), R8
	SHLQ $2, R8
	MOVQ scale+32(FP), R9
	MOVQ shift+40(FP), R10
	MOVQ y+48(FP), DI
	MOVQ yb+56(FP), CX
	MOVQ relu+64(FP), R11
	MOVQ stream+72(FP), R14
	MOVQ R12, R13
	VPXORD Z5, Z5, Z5
	TESTQ BX, BX
	JZ ab_done
ab_row:
	XORQ DX, DX
	XORQ R15, R15
ab_cv:
	VMOVUPS (SI)(DX*1), Z0
	VMOVUPS (R9)(DX*1), Z2
	VFMADD213PS (R10)(DX*1), Z2, Z0
	TESTQ R13, R13
	JZ ab_relu
	VADDPS (R12)(DX*1), Z0, Z0
ab_relu:
	TESTQ R11, R11
	JZ ab_store
	VMAXPS Z0, Z5, Z0
ab_store:
	TESTQ R14, R14
	JNZ ab_stream
	VMOVUPS Z0, (DI)(DX*1)
	JMP ab_half
ab_stream:
	VMOVNTPS Z0, (DI)(DX*1)
ab_half:
	TESTQ CX, CX
	JZ ab_next
	VFPCLASSPSZ $0x20, Z0, K2
	KORTESTW K2, K2
	JNZ ab_sub
	CVTNE2_3_0_0
ab_bstore:
	VMOVDQU Y3, (CX)(R15*1)
ab_next:
	ADDQ $64, DX
	ADDQ $32, R15
	CMPQ DX, R8
	JL ab_cv
	ADDQ R8, SI
	ADDQ R8, R12
	ADDQ R8, DI
	TESTQ CX, CX
	JZ ab_nexty
	ADDQ R15, CX
ab_nexty:
	DECQ BX
	JNZ ab_row
ab_done:
	TESTQ R14, R14
	JZ ab_ret
	SFENCE
ab_ret:
	VZEROUPPER
	RET
ab_sub:
	ROUNDBF16Z0
	JMP ab_bstore
