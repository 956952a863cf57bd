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

// The same requantization on a whole tile of the direct VNNI path, 16
// lanes a vector (AVX-512): rows rows of acc (32 int32 each, 128 bytes
// apart) to rows of out (outStride bytes apart), channels by mask (bit j:
// channel j; the bias, multipliers and residual are read under it, so
// nothing past the last channel is touched). lo is at least 0 here
// (VPMOVDB truncates; the caller passes max(lo, 0)).

// TILESETUP loads the tile's per-channel and constant operands, with the
// mask in AX: K1, K2 the two halves of the mask, Z16, Z17 the bias, Z18,
// Z19 the multipliers, Z23 1e6, Z24 −1e6 (uses AX). The
// functions load Z20 (the zero point) and Z21 (lo) themselves.
#define TILESETUP \
	KMOVW AX, K1 \
	SHRL $16, AX \
	KMOVW AX, K2 \
	VMOVDQU32.Z (BX), K1, Z16 \
	VMOVDQU32.Z 64(BX), K2, Z17 \
	VMOVUPS.Z (DX), K1, Z18 \
	VMOVUPS.Z 64(DX), K2, Z19 \
	MOVL $0x49742400, AX \
	VPBROADCASTD AX, Z23 \
	MOVL $0xc9742400, AX \
	VPBROADCASTD AX, Z24

// TILEFINISH finishes Z0 (channels 0–15) and Z1 (16–31) as STORE does,
// leaving their bytes in X0 and X1, with the clamp at 255 in the
// unsigned saturation of the narrowing (VPMOVUSDB).
#define TILEFINISH \
	VMINPS Z23, Z0, Z0 \
	VMINPS Z23, Z1, Z1 \
	VMAXPS Z24, Z0, Z0 \
	VMAXPS Z24, Z1, Z1 \
	VCVTPS2DQ Z0, Z0 \
	VCVTPS2DQ Z1, Z1 \
	VPADDD Z20, Z0, Z0 \
	VPADDD Z20, Z1, Z1 \
	VPMAXSD Z21, Z0, Z0 \
	VPMAXSD Z21, Z1, Z1 \
	VPMOVUSDB Z0, X0 \
	VPMOVUSDB Z1, X1

// TILESTORE stores X0, X1 at (DI) under the mask; TILESTOREFULL all 32
// bytes (masked loads and stores are slower on AMD's cores: the loops
// for a full channel block use none).
#define TILESTORE \
	VMOVDQU8 X0, K1, (DI) \
	VMOVDQU8 X1, K2, 16(DI)

#define TILESTOREFULL \
	VMOVDQU X0, (DI) \
	VMOVDQU X1, 16(DI)

// TILEACC loads a tile row's sums (SI) into Z0, Z1 as floats: (sum +
// bias) · multiplier.
#define TILEACC \
	VPADDD (SI), Z16, Z0 \
	VPADDD 64(SI), Z17, Z1 \
	VCVTDQ2PS Z0, Z0 \
	VCVTDQ2PS Z1, Z1 \
	VMULPS Z18, Z0, Z0 \
	VMULPS Z19, Z1, Z1

// TILERES adds the residual bytes, widened into Z2, Z3, in output units:
// (res − Z25) · Z26.
#define TILERES \
	VPSUBD Z25, Z2, Z2 \
	VPSUBD Z25, Z3, Z3 \
	VCVTDQ2PS Z2, Z2 \
	VCVTDQ2PS Z3, Z3 \
	VMULPS Z26, Z2, Z2 \
	VMULPS Z26, Z3, Z3 \
	VADDPS Z2, Z0, Z0 \
	VADDPS Z3, Z1, Z1

// func requantizeTile512(acc, bias, mult, out unsafe.Pointer, rows, outStride int, mask uint32, zero, lo int32)
TEXT ·requantizeTile512(SB), NOSPLIT, $0-60
	MOVQ acc+0(FP), SI
	MOVQ bias+8(FP), BX
	MOVQ mult+16(FP), DX
	MOVQ out+24(FP), DI
	MOVQ rows+32(FP), CX
	MOVQ outStride+40(FP), R9
	MOVL zero+52(FP), AX
	VPBROADCASTD AX, Z20
	MOVL lo+56(FP), AX
	VPBROADCASTD AX, Z21
	MOVL mask+48(FP), AX
	TILESETUP
	CMPL mask+48(FP), $-1
	JEQ tq_full
tq_loop:
	TILEACC
	TILEFINISH
	TILESTORE
	ADDQ $128, SI
	ADDQ R9, DI
	DECQ CX
	JNZ tq_loop
	VZEROUPPER
	RET
tq_full:
	TILEACC
	TILEFINISH
	TILESTOREFULL
	ADDQ $128, SI
	ADDQ R9, DI
	DECQ CX
	JNZ tq_full
	VZEROUPPER
	RET

// func requantizeTileRes512(acc, bias, mult, out unsafe.Pointer, rows, outStride int, mask uint32, zero, lo int32, res unsafe.Pointer, resZero int32, resMult float32)
TEXT ·requantizeTileRes512(SB), NOSPLIT, $0-80
	MOVQ acc+0(FP), SI
	MOVQ bias+8(FP), BX
	MOVQ mult+16(FP), DX
	MOVQ out+24(FP), DI
	MOVQ rows+32(FP), CX
	MOVQ outStride+40(FP), R9
	MOVQ res+64(FP), R8
	MOVL zero+52(FP), AX
	VPBROADCASTD AX, Z20
	MOVL lo+56(FP), AX
	VPBROADCASTD AX, Z21
	MOVL resZero+72(FP), AX
	VPBROADCASTD AX, Z25
	MOVL resMult+76(FP), AX
	VPBROADCASTD AX, Z26
	MOVL mask+48(FP), AX
	TILESETUP
	CMPL mask+48(FP), $-1
	JEQ tr_full
tr_loop:
	TILEACC
	VPMOVZXBD.Z (R8), K1, Z2
	VPMOVZXBD.Z 16(R8), K2, Z3
	TILERES
	TILEFINISH
	TILESTORE
	ADDQ $128, SI
	ADDQ R9, DI
	ADDQ R9, R8
	DECQ CX
	JNZ tr_loop
	VZEROUPPER
	RET
tr_full:
	TILEACC
	VPMOVZXBD (R8), Z2
	VPMOVZXBD 16(R8), Z3
	TILERES
	TILEFINISH
	TILESTOREFULL
	ADDQ $128, SI
	ADDQ R9, DI
	ADDQ R9, R8
	DECQ CX
	JNZ tr_full
	VZEROUPPER
	RET

// func quantizeU8AVX2(x, dst unsafe.Pointer, n int, scale float32, zero int32)
// QuantizeU8's loop, 8 lanes at a time (n a multiple of 8): x/scale
// (VDIVPS, rounded as Go's division), a NaN lane made 0, then STORE with
// lo = 0.
TEXT ·quantizeU8AVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	VBROADCASTSS scale+24(FP), Y9
	MOVL zero+28(FP), AX
	VMOVD AX, X10
	VPBROADCASTD X10, Y10
	VPXOR Y11, Y11, Y11
	CONSTANTS
	TESTQ CX, CX
	JZ qu_done
qu_loop:
	VMOVUPS (SI), Y0
	VDIVPS Y9, Y0, Y0
	VCMPPS $3, Y0, Y0, Y1
	VANDNPS Y0, Y1, Y0
	STORE
	ADDQ $32, SI
	ADDQ $8, DI
	DECQ CX
	JNZ qu_loop
qu_done:
	VZEROUPPER
	RET
