//go:build amd64 && !purego

// Hand-written rounding of float32 to bfloat16: RoundSliceBF16's loop,
// eight lanes at a time on AVX2, and the conversions to bfloat16 bits of
// the direct and native bf16 paths, eight lanes at a time on AVX2 and
// sixteen on AVX-512, and on AVX512-BF16's VCVTNE2PS2BF16 where the CPU
// has it. Their Go declarations are in bf16_amd64.go.

#include "textflag.h"

DATA bf16c<>+0(SB)/4, $0x00007fff // rounding bias
DATA bf16c<>+4(SB)/4, $0x00000001 // the kept half's lowest bit
DATA bf16c<>+8(SB)/4, $0xffff0000 // the upper half
DATA bf16c<>+12(SB)/4, $0x7fffffff // magnitude
DATA bf16c<>+16(SB)/4, $0x7f800000 // +Inf: larger magnitudes are NaN
DATA bf16c<>+20(SB)/4, $0x00400000 // the quiet bit
GLOBL bf16c<>(SB), RODATA|NOPTR, $24

// VCVTNE2PS2BF16 (AVX512-BF16), which Go's assembler does not know, as its
// EVEX encoding (TestAMXEncodings holds it to binutils'): the 32
// bfloat16 values, rounded to nearest even, of the second source (low
// half of the destination) and the first (high half); subnormal inputs
// become zeros of their sign.
#define CVTNE2_2_1_0 BYTE $0x62; BYTE $0xf2; BYTE $0x77; BYTE $0x48; BYTE $0x72; BYTE $0xd0 // vcvtne2ps2bf16 zmm2, zmm1, zmm0

// pairWords interleaves the two halves of 32 words: word 2i from word i,
// word 2i+1 from word 16+i (VPERMW's indices).
DATA pairWords<>+0(SB)/8, $0x0011000100100000
DATA pairWords<>+8(SB)/8, $0x0013000300120002
DATA pairWords<>+16(SB)/8, $0x0015000500140004
DATA pairWords<>+24(SB)/8, $0x0017000700160006
DATA pairWords<>+32(SB)/8, $0x0019000900180008
DATA pairWords<>+40(SB)/8, $0x001b000b001a000a
DATA pairWords<>+48(SB)/8, $0x001d000d001c000c
DATA pairWords<>+56(SB)/8, $0x001f000f001e000e
GLOBL pairWords<>(SB), RODATA|NOPTR, $64

// ROUNDBF16 sets dst to src's 8 float32 rounded to bfloat16 (upper half
// of each lane, lower half zero), per lane, with b the bits of src:
//   r = (b + 0x7fff + ((b >> 16) & 1)) & 0xffff0000   (nearest, ties to even)
//   NaN (b & 0x7fffffff > 0x7f800000): r = (b | 0x00400000) & 0xffff0000
// t1, t2 are scratch; Y8–Y13 hold bf16c's constants in order.
#define ROUNDBF16(src, dst, t1, t2) \
	VPSRLD $16, src, dst \
	VPAND Y9, dst, dst \
	VPADDD Y8, dst, dst \
	VPADDD src, dst, dst \
	VPAND Y10, dst, dst \
	VPAND Y11, src, t1 \
	VPCMPGTD Y12, t1, t1 \
	VPOR Y13, src, t2 \
	VPAND Y10, t2, t2 \
	VPBLENDVB t1, t2, dst, dst

// BF16CONSTANTS loads bf16c's constants into Y8–Y13.
#define BF16CONSTANTS \
	VPBROADCASTD bf16c<>+0(SB), Y8 \
	VPBROADCASTD bf16c<>+4(SB), Y9 \
	VPBROADCASTD bf16c<>+8(SB), Y10 \
	VPBROADCASTD bf16c<>+12(SB), Y11 \
	VPBROADCASTD bf16c<>+16(SB), Y12 \
	VPBROADCASTD bf16c<>+20(SB), Y13

// func roundBF16AVX2(dst, src unsafe.Pointer, n int)
// n is a multiple of 8; each lane as ROUNDBF16 rounds it.
TEXT ·roundBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	TESTQ CX, CX
	JZ rb_done
	BF16CONSTANTS
rb_loop:
	VMOVDQU (SI), Y0
	ROUNDBF16(Y0, Y1, Y2, Y3)
	VMOVDQU Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ rb_loop
rb_done:
	VZEROUPPER
	RET

// func toBF16AVX2(dst, src unsafe.Pointer, n int)
// n is a multiple of 16: dst (uint16) gets BF16FromFloat32 of each float32
// of src, computed as roundBF16AVX2 computes it, the upper halves then
// packed two registers at a time (VPACKUSDW packs within 128-bit lanes;
// VPERMQ puts the lanes back in order).
TEXT ·toBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	TESTQ CX, CX
	JZ tb_done
	BF16CONSTANTS
tb_loop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y4
	ROUNDBF16(Y0, Y1, Y2, Y3)
	ROUNDBF16(Y4, Y5, Y6, Y7)
	VPSRLD $16, Y1, Y1
	VPSRLD $16, Y5, Y5
	VPACKUSDW Y5, Y1, Y1
	VPERMQ $0xd8, Y1, Y1
	VMOVDQU Y1, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	DECQ CX
	JNZ tb_loop
tb_done:
	VZEROUPPER
	RET

// The direct bfloat16 path's epilogue over a tile (bf16direct.go): rows
// rows of 32 float32 sums (128 bytes apart) to rows of y (ystride bytes
// apart), channels by mask: y = max(floor, sum·scale + shift [+ skip]),
// a multiply and an add each rounded (no FMA, as the Go loop computes
// it), the floor applied as Go's max applies it (EPIMAX). Scale, shift
// and skip are read under the mask; a full block runs a loop with no
// masked access (slower on AMD's cores).

// EPISETUP sets K1, K2 from the mask in AX and loads Z16, Z17 the scale
// (at R10) and Z18, Z19 the shift (at R11) under it.
#define EPISETUP \
	KMOVW AX, K1 \
	SHRL $16, AX \
	KMOVW AX, K2 \
	VMOVUPS.Z (R10), K1, Z16 \
	VMOVUPS.Z 64(R10), K2, Z17 \
	VMOVUPS.Z (R11), K1, Z18 \
	VMOVUPS.Z 64(R11), K2, Z19

// EPIROW computes a row's two vectors into Z0, Z1 from (SI).
#define EPIROW \
	VMULPS (SI), Z16, Z0 \
	VMULPS 64(SI), Z17, Z1 \
	VADDPS Z18, Z0, Z0 \
	VADDPS Z19, Z1, Z1

// EPIMAX applies the floor as Go's max does: on the lanes that are not
// NaN (K3, K4), max with the floor returned on a tie (so max(−0, +0) is
// +0); a NaN lane keeps its NaN (the masked-off lanes are left as they
// are).
#define EPIMAX \
	VCMPPS $7, Z0, Z0, K3 \
	VCMPPS $7, Z1, Z1, K4 \
	VMAXPS Z20, Z0, K3, Z0 \
	VMAXPS Z20, Z1, K4, Z1

// func epilogueTile512(tile, y unsafe.Pointer, rows, ystride int, scale, shift, skip unsafe.Pointer, mask uint32, floor float32, stream bool)
TEXT ·epilogueTile512(SB), NOSPLIT, $0-65
	MOVQ tile+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ rows+16(FP), CX
	MOVQ ystride+24(FP), R9
	MOVQ scale+32(FP), R10
	MOVQ shift+40(FP), R11
	MOVQ skip+48(FP), R8
	MOVL floor+60(FP), AX
	VPBROADCASTD AX, Z20
	MOVL mask+56(FP), AX
	EPISETUP
	TESTQ R8, R8
	JNZ ep_skip
	CMPB stream+64(FP), $0
	JEQ ep_cached
	CMPL mask+56(FP), $-1
	JEQ ep_streamfull
	CMPL mask+56(FP), $0xffff
	JEQ ep_streamhalf
ep_cached:
	CMPL mask+56(FP), $-1
	JEQ ep_full
ep_masked:
	EPIROW
	EPIMAX
	VMOVUPS Z0, K1, (DI)
	VMOVUPS Z1, K2, 64(DI)
	ADDQ $128, SI
	ADDQ R9, DI
	DECQ CX
	JNZ ep_masked
	VZEROUPPER
	RET
ep_full:
	EPIROW
	EPIMAX
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ $128, SI
	ADDQ R9, DI
	DECQ CX
	JNZ ep_full
	VZEROUPPER
	RET
// Streaming stores (VMOVNTPS: the lines are written without being read
// first and bypass the caches) for a whole block or its first 16
// channels, then SFENCE, which orders them before the stores that follow.
ep_streamfull:
	EPIROW
	EPIMAX
	VMOVNTPS Z0, (DI)
	VMOVNTPS Z1, 64(DI)
	ADDQ $128, SI
	ADDQ R9, DI
	DECQ CX
	JNZ ep_streamfull
	SFENCE
	VZEROUPPER
	RET
ep_streamhalf:
	EPIROW
	EPIMAX
	VMOVNTPS Z0, (DI)
	ADDQ $128, SI
	ADDQ R9, DI
	DECQ CX
	JNZ ep_streamhalf
	SFENCE
	VZEROUPPER
	RET
ep_skip:
	CMPL mask+56(FP), $-1
	JEQ ep_skipfull
ep_skipmasked:
	EPIROW
	VMOVUPS.Z (R8), K1, Z2
	VMOVUPS.Z 64(R8), K2, Z3
	VADDPS Z2, Z0, Z0
	VADDPS Z3, Z1, Z1
	EPIMAX
	VMOVUPS Z0, K1, (DI)
	VMOVUPS Z1, K2, 64(DI)
	ADDQ $128, SI
	ADDQ R9, DI
	ADDQ R9, R8
	DECQ CX
	JNZ ep_skipmasked
	VZEROUPPER
	RET
ep_skipfull:
	EPIROW
	VADDPS (R8), Z0, Z0
	VADDPS 64(R8), Z1, Z1
	EPIMAX
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ $128, SI
	ADDQ R9, DI
	ADDQ R9, R8
	DECQ CX
	JNZ ep_skipfull
	VZEROUPPER
	RET

// func pairBF16AVX2(dst, a, b unsafe.Pointer, n int)
// n is a multiple of 8: dst[i] (uint32) = BF16FromFloat32(a[i]) |
// BF16FromFloat32(b[i])<<16, the pair VDPBF16PS reads (a the even
// element).
TEXT ·pairBF16AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	TESTQ CX, CX
	JZ pb_done
	BF16CONSTANTS
pb_loop:
	VMOVDQU (SI), Y0
	VMOVDQU (DX), Y4
	ROUNDBF16(Y0, Y1, Y2, Y3)
	ROUNDBF16(Y4, Y5, Y6, Y7)
	VPSRLD $16, Y1, Y1
	VPOR Y5, Y1, Y1
	VMOVDQU Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ pb_loop
pb_done:
	VZEROUPPER
	RET

// The same conversions sixteen lanes at a time on AVX-512 (the level's
// other kernels need its foundation, which these do too): ROUNDBF16's
// arithmetic on Z registers, its NaN lanes chosen by a mask.

// ROUNDBF16Z sets dst to src's 16 float32 rounded to bfloat16 (upper
// half of each lane, lower half not cleared), as ROUNDBF16 rounds them;
// t is scratch, K1 is clobbered; Z8–Z13 hold bf16c's constants.
#define ROUNDBF16Z(src, dst, t) \
	VPSRLD $16, src, dst \
	VPANDD Z9, dst, dst \
	VPADDD Z8, dst, dst \
	VPADDD src, dst, dst \
	VPANDD Z11, src, t \
	VPCMPGTD Z12, t, K1 \
	VPORD Z13, src, K1, dst

// BF16CONSTANTSZ loads bf16c's constants into Z8–Z13.
#define BF16CONSTANTSZ \
	VPBROADCASTD bf16c<>+0(SB), Z8 \
	VPBROADCASTD bf16c<>+4(SB), Z9 \
	VPBROADCASTD bf16c<>+8(SB), Z10 \
	VPBROADCASTD bf16c<>+12(SB), Z11 \
	VPBROADCASTD bf16c<>+16(SB), Z12 \
	VPBROADCASTD bf16c<>+20(SB), Z13

// func toBF16AVX512(dst, src unsafe.Pointer, n int)
// n is a multiple of 32: toBF16AVX2's conversion, the upper halves
// narrowed by VPMOVDW.
TEXT ·toBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $5, CX
	TESTQ CX, CX
	JZ tz_done
	BF16CONSTANTSZ
tz_loop:
	VMOVDQU32 (SI), Z0
	VMOVDQU32 64(SI), Z4
	ROUNDBF16Z(Z0, Z1, Z2)
	ROUNDBF16Z(Z4, Z5, Z6)
	VPSRLD $16, Z1, Z1
	VPSRLD $16, Z5, Z5
	VPMOVDW Z1, (DI)
	VPMOVDW Z5, 32(DI)
	ADDQ $128, SI
	ADDQ $64, DI
	DECQ CX
	JNZ tz_loop
tz_done:
	VZEROUPPER
	RET

// func pairBF16AVX512(dst, a, b unsafe.Pointer, n int)
// n is a multiple of 16: pairBF16AVX2's pairs.
TEXT ·pairBF16AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	TESTQ CX, CX
	JZ pz_done
	BF16CONSTANTSZ
pz_loop:
	VMOVDQU32 (SI), Z0
	VMOVDQU32 (DX), Z4
	ROUNDBF16Z(Z0, Z1, Z2)
	ROUNDBF16Z(Z4, Z5, Z6)
	VPSRLD $16, Z1, Z1
	VPANDD Z10, Z5, Z5
	VPORD Z5, Z1, Z1
	VMOVDQU32 Z1, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ pz_loop
pz_done:
	VZEROUPPER
	RET

// func transpose16x16(dst unsafe.Pointer, dstStride int, src unsafe.Pointer, srcStride int, mask uint16)
// Writes the transpose of the 16×16 block of 32-bit values at src (rows
// srcStride bytes apart) to dst (rows dstStride bytes apart), the
// columns of each output row that mask selects: unpacking dwords, then
// quadwords, gives each 128-bit lane a 4×4 block transposed; two rounds
// of VSHUFI32X4 transpose the 4×4 arrangement of lanes.
TEXT ·transpose16x16(SB), NOSPLIT, $0-34
	MOVQ src+16(FP), SI
	MOVQ srcStride+24(FP), DX
	MOVQ dst+0(FP), DI
	MOVQ dstStride+8(FP), CX
	KMOVW mask+32(FP), K1
	VMOVDQU32 (SI), Z0
	ADDQ DX, SI
	VMOVDQU32 (SI), Z1
	ADDQ DX, SI
	VMOVDQU32 (SI), Z2
	ADDQ DX, SI
	VMOVDQU32 (SI), Z3
	ADDQ DX, SI
	VMOVDQU32 (SI), Z4
	ADDQ DX, SI
	VMOVDQU32 (SI), Z5
	ADDQ DX, SI
	VMOVDQU32 (SI), Z6
	ADDQ DX, SI
	VMOVDQU32 (SI), Z7
	ADDQ DX, SI
	VMOVDQU32 (SI), Z8
	ADDQ DX, SI
	VMOVDQU32 (SI), Z9
	ADDQ DX, SI
	VMOVDQU32 (SI), Z10
	ADDQ DX, SI
	VMOVDQU32 (SI), Z11
	ADDQ DX, SI
	VMOVDQU32 (SI), Z12
	ADDQ DX, SI
	VMOVDQU32 (SI), Z13
	ADDQ DX, SI
	VMOVDQU32 (SI), Z14
	ADDQ DX, SI
	VMOVDQU32 (SI), Z15
	VPUNPCKLDQ Z1, Z0, Z16
	VPUNPCKHDQ Z1, Z0, Z17
	VPUNPCKLDQ Z3, Z2, Z18
	VPUNPCKHDQ Z3, Z2, Z19
	VPUNPCKLDQ Z5, Z4, Z20
	VPUNPCKHDQ Z5, Z4, Z21
	VPUNPCKLDQ Z7, Z6, Z22
	VPUNPCKHDQ Z7, Z6, Z23
	VPUNPCKLDQ Z9, Z8, Z24
	VPUNPCKHDQ Z9, Z8, Z25
	VPUNPCKLDQ Z11, Z10, Z26
	VPUNPCKHDQ Z11, Z10, Z27
	VPUNPCKLDQ Z13, Z12, Z28
	VPUNPCKHDQ Z13, Z12, Z29
	VPUNPCKLDQ Z15, Z14, Z30
	VPUNPCKHDQ Z15, Z14, Z31
	VPUNPCKLQDQ Z18, Z16, Z0
	VPUNPCKHQDQ Z18, Z16, Z4
	VPUNPCKLQDQ Z19, Z17, Z8
	VPUNPCKHQDQ Z19, Z17, Z12
	VPUNPCKLQDQ Z22, Z20, Z1
	VPUNPCKHQDQ Z22, Z20, Z5
	VPUNPCKLQDQ Z23, Z21, Z9
	VPUNPCKHQDQ Z23, Z21, Z13
	VPUNPCKLQDQ Z26, Z24, Z2
	VPUNPCKHQDQ Z26, Z24, Z6
	VPUNPCKLQDQ Z27, Z25, Z10
	VPUNPCKHQDQ Z27, Z25, Z14
	VPUNPCKLQDQ Z30, Z28, Z3
	VPUNPCKHQDQ Z30, Z28, Z7
	VPUNPCKLQDQ Z31, Z29, Z11
	VPUNPCKHQDQ Z31, Z29, Z15
	VSHUFI32X4 $0x44, Z1, Z0, Z16
	VSHUFI32X4 $0xee, Z1, Z0, Z17
	VSHUFI32X4 $0x44, Z3, Z2, Z18
	VSHUFI32X4 $0xee, Z3, Z2, Z19
	VSHUFI32X4 $0x44, Z5, Z4, Z20
	VSHUFI32X4 $0xee, Z5, Z4, Z21
	VSHUFI32X4 $0x44, Z7, Z6, Z22
	VSHUFI32X4 $0xee, Z7, Z6, Z23
	VSHUFI32X4 $0x44, Z9, Z8, Z24
	VSHUFI32X4 $0xee, Z9, Z8, Z25
	VSHUFI32X4 $0x44, Z11, Z10, Z26
	VSHUFI32X4 $0xee, Z11, Z10, Z27
	VSHUFI32X4 $0x44, Z13, Z12, Z28
	VSHUFI32X4 $0xee, Z13, Z12, Z29
	VSHUFI32X4 $0x44, Z15, Z14, Z30
	VSHUFI32X4 $0xee, Z15, Z14, Z31
	VSHUFI32X4 $0x88, Z18, Z16, Z0
	VSHUFI32X4 $0xdd, Z18, Z16, Z4
	VSHUFI32X4 $0x88, Z19, Z17, Z8
	VSHUFI32X4 $0xdd, Z19, Z17, Z12
	VSHUFI32X4 $0x88, Z22, Z20, Z1
	VSHUFI32X4 $0xdd, Z22, Z20, Z5
	VSHUFI32X4 $0x88, Z23, Z21, Z9
	VSHUFI32X4 $0xdd, Z23, Z21, Z13
	VSHUFI32X4 $0x88, Z26, Z24, Z2
	VSHUFI32X4 $0xdd, Z26, Z24, Z6
	VSHUFI32X4 $0x88, Z27, Z25, Z10
	VSHUFI32X4 $0xdd, Z27, Z25, Z14
	VSHUFI32X4 $0x88, Z30, Z28, Z3
	VSHUFI32X4 $0xdd, Z30, Z28, Z7
	VSHUFI32X4 $0x88, Z31, Z29, Z11
	VSHUFI32X4 $0xdd, Z31, Z29, Z15
	VMOVDQU32 Z0, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z1, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z2, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z3, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z4, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z5, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z6, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z7, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z8, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z9, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z10, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z11, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z12, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z13, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z14, K1, (DI)
	ADDQ CX, DI
	VMOVDQU32 Z15, K1, (DI)
	VZEROUPPER
	RET

// func copyRuns(dst unsafe.Pointer, dstStride int, src unsafe.Pointer, srcStride int, n int, load0, load1, store0, store1 uint64)
// Copies n runs of up to 128 bytes: run i's bytes that the load masks
// select (load0 the first 64, load1 the next 64; the others read as zeros)
// from src + i·srcStride to dst + i·dstStride, where the store masks
// select (AVX512BW; masked-off bytes are neither read nor written).
TEXT ·copyRuns(SB), NOSPLIT, $0-72
	MOVQ dst+0(FP), DI
	MOVQ dstStride+8(FP), DX
	MOVQ src+16(FP), SI
	MOVQ srcStride+24(FP), CX
	MOVQ n+32(FP), R8
	KMOVQ load0+40(FP), K1
	KMOVQ load1+48(FP), K2
	KMOVQ store0+56(FP), K3
	KMOVQ store1+64(FP), K4
	TESTQ R8, R8
	JZ cr_done
cr_loop:
	VMOVDQU8.Z (SI), K1, Z0
	VMOVDQU8.Z 64(SI), K2, Z1
	VMOVDQU8 Z0, K3, (DI)
	VMOVDQU8 Z1, K4, 64(DI)
	ADDQ CX, SI
	ADDQ DX, DI
	DECQ R8
	JNZ cr_loop
cr_done:
	VZEROUPPER
	RET

// The same conversions with AVX512-BF16's VCVTNE2PS2BF16, which rounds
// as BF16FromFloat32 does except that it flushes subnormal inputs to
// zero: a block of 32 values with a subnormal among them (VFPCLASSPS's
// class 0x20) is converted by ROUNDBF16Z's arithmetic instead, so the
// results are BF16FromFloat32's bit for bit.

// func toBF16NE(dst, src unsafe.Pointer, n int)
// n is a multiple of 32: toBF16AVX512's conversion.
TEXT ·toBF16NE(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $5, CX
	TESTQ CX, CX
	JZ tn_done
tn_loop:
	VMOVDQU32 (SI), Z0
	VMOVDQU32 64(SI), Z1
	VFPCLASSPSZ $0x20, Z0, K1
	VFPCLASSPSZ $0x20, Z1, K2
	KORTESTW K1, K2
	JNZ tn_sub
	CVTNE2_2_1_0
	VMOVDQU32 Z2, (DI)
tn_next:
	ADDQ $128, SI
	ADDQ $64, DI
	DECQ CX
	JNZ tn_loop
tn_done:
	VZEROUPPER
	RET
tn_sub:
	BF16CONSTANTSZ
	ROUNDBF16Z(Z0, Z3, Z4)
	ROUNDBF16Z(Z1, Z5, Z6)
	VPSRLD $16, Z3, Z3
	VPSRLD $16, Z5, Z5
	VPMOVDW Z3, (DI)
	VPMOVDW Z5, 32(DI)
	JMP tn_next

// func pairBF16NE(dst, a, b unsafe.Pointer, n int)
// n is a multiple of 16: pairBF16AVX512's pairs.
TEXT ·pairBF16NE(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	TESTQ CX, CX
	JZ pn_done
	VMOVDQU32 pairWords<>(SB), Z7
pn_loop:
	VMOVDQU32 (SI), Z0
	VMOVDQU32 (DX), Z1
	VFPCLASSPSZ $0x20, Z0, K1
	VFPCLASSPSZ $0x20, Z1, K2
	KORTESTW K1, K2
	JNZ pn_sub
	CVTNE2_2_1_0
	VPERMW Z2, Z7, Z2
	VMOVDQU32 Z2, (DI)
pn_next:
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ pn_loop
pn_done:
	VZEROUPPER
	RET
pn_sub:
	BF16CONSTANTSZ
	ROUNDBF16Z(Z0, Z3, Z4)
	ROUNDBF16Z(Z1, Z5, Z6)
	VPSRLD $16, Z3, Z3
	VPANDD Z10, Z5, Z5
	VPORD Z5, Z3, Z3
	VMOVDQU32 Z3, (DI)
	JMP pn_next

// The same conversions of a batch norm's output computed as they read it
// (ReLUAffine): each value becomes max(x·scale + shift, 0) first, with
// chanAffine512's FMA and VMAXPS, scale and shift per channel (c
// channels, 4c bytes at R8; the runs start at a pixel's channel 0).

// AFFINE16 sets dst to max(src·scale + shift, 0) for the 16 channels at
// byte offset DX of R9 (scale) and R10 (shift), Z6 zero, and steps DX to
// the next 16 channels, back to 0 past the pixel's last (R8 bytes).
#define AFFINE16(src, dst) \
	VMOVUPS (R9)(DX*1), dst \
	VFMADD213PS (R10)(DX*1), dst, src \
	VMAXPS src, Z6, dst \
	ADDQ $64, DX \
	CMPQ DX, R8 \
	JNE 2(PC) \
	XORQ DX, DX

// func toBF16ReLUAffineNE(dst, src, scale, shift unsafe.Pointer, n, c int)
// n and c are multiples of 16.
TEXT ·toBF16ReLUAffineNE(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ scale+16(FP), R9
	MOVQ shift+24(FP), R10
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), R8
	SHLQ $2, R8
	SHRQ $4, CX
	XORQ DX, DX
	VPXORD Z6, Z6, Z6
ta_loop:
	CMPQ CX, $2
	JL ta_tail
	VMOVUPS (SI), Z3
	AFFINE16(Z3, Z0)
	VMOVUPS 64(SI), Z4
	AFFINE16(Z4, Z1)
	VFPCLASSPSZ $0x20, Z0, K1
	VFPCLASSPSZ $0x20, Z1, K2
	KORTESTW K1, K2
	JNZ ta_sub
	CVTNE2_2_1_0
	VMOVDQU32 Z2, (DI)
ta_next:
	ADDQ $128, SI
	ADDQ $64, DI
	SUBQ $2, CX
	JMP ta_loop
ta_sub:
	BF16CONSTANTSZ
	ROUNDBF16Z(Z0, Z3, Z4)
	ROUNDBF16Z(Z1, Z5, Z7)
	VPSRLD $16, Z3, Z3
	VPSRLD $16, Z5, Z5
	VPMOVDW Z3, (DI)
	VPMOVDW Z5, 32(DI)
	JMP ta_next
ta_tail:
	TESTQ CX, CX
	JZ ta_done
	VMOVUPS (SI), Z3
	AFFINE16(Z3, Z0)
	BF16CONSTANTSZ
	ROUNDBF16Z(Z0, Z3, Z4)
	VPSRLD $16, Z3, Z3
	VPMOVDW Z3, (DI)
ta_done:
	VZEROUPPER
	RET

// func pairBF16ReLUAffineNE(dst, a, b, scale, shift unsafe.Pointer, n, c int)
// n and c are multiples of 16; a nil b pairs a with zeros (not with the
// map's output for zeros).
TEXT ·pairBF16ReLUAffineNE(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), R11
	MOVQ scale+24(FP), R9
	MOVQ shift+32(FP), R10
	MOVQ n+40(FP), CX
	MOVQ c+48(FP), R8
	SHLQ $2, R8
	SHRQ $4, CX
	TESTQ CX, CX
	JZ pa_done
	XORQ DX, DX
	VPXORD Z6, Z6, Z6
	VMOVDQU32 pairWords<>(SB), Z7
pa_loop:
	VPXORD Z1, Z1, Z1
	TESTQ R11, R11
	JZ pa_a
	VMOVUPS (R11), Z4
	VMOVUPS (R9)(DX*1), Z1
	VFMADD213PS (R10)(DX*1), Z1, Z4
	VMAXPS Z4, Z6, Z1
	ADDQ $64, R11
pa_a:
	VMOVUPS (SI), Z3
	AFFINE16(Z3, Z0)
	VFPCLASSPSZ $0x20, Z0, K1
	VFPCLASSPSZ $0x20, Z1, K2
	KORTESTW K1, K2
	JNZ pa_sub
	CVTNE2_2_1_0
	VPERMW Z2, Z7, Z2
	VMOVDQU32 Z2, (DI)
pa_next:
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ pa_loop
pa_done:
	VZEROUPPER
	RET
pa_sub:
	BF16CONSTANTSZ
	ROUNDBF16Z(Z0, Z3, Z4)
	ROUNDBF16Z(Z1, Z5, Z2)
	VPSRLD $16, Z3, Z3
	VPANDD Z10, Z5, Z5
	VPORD Z5, Z3, Z3
	VMOVDQU32 Z3, (DI)
	JMP pa_next

// func pairWordsAVX512(dst, a, b unsafe.Pointer, n int)
// n is a multiple of 16: dst[i] (uint32) = a[i] | b[i]<<16 for bfloat16
// bits a and b (a nil b: zeros), pairBF16's layout for values already
// converted.
TEXT ·pairWordsAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	TESTQ CX, CX
	JZ pw_done
	VPXORD Z1, Z1, Z1
pw_loop:
	VPMOVZXWD (SI), Z0
	TESTQ DX, DX
	JZ pw_store
	VPMOVZXWD (DX), Z1
	VPSLLD $16, Z1, Z1
	ADDQ $32, DX
pw_store:
	VPORD Z1, Z0, Z0
	VMOVDQU32 Z0, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JNZ pw_loop
pw_done:
	VZEROUPPER
	RET
