//go:build amd64 && !purego

// Hand-written AVX2 rounding of float32 to bfloat16 (kept as float32):
// RoundSliceBF16's loop, eight lanes at a time. Its Go declaration is in
// bf16_amd64.go.

#include "textflag.h"

DATA bf16c<>+0(SB)/4, $0x00007fff // rounding bias
DATA bf16c<>+4(SB)/4, $0x00000001 // the kept half's lowest bit
DATA bf16c<>+8(SB)/4, $0xffff0000 // the upper half
DATA bf16c<>+12(SB)/4, $0x7fffffff // magnitude
DATA bf16c<>+16(SB)/4, $0x7f800000 // +Inf: larger magnitudes are NaN
DATA bf16c<>+20(SB)/4, $0x00400000 // the quiet bit
GLOBL bf16c<>(SB), RODATA|NOPTR, $24

// func roundBF16AVX2(dst, src unsafe.Pointer, n int)
// n is a multiple of 8. Per lane, with b the bits of src:
//   r = (b + 0x7fff + ((b >> 16) & 1)) & 0xffff0000   (nearest, ties to even)
//   NaN (b & 0x7fffffff > 0x7f800000): r = (b | 0x00400000) & 0xffff0000
TEXT ·roundBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	TESTQ CX, CX
	JZ rb_done
	VPBROADCASTD bf16c<>+0(SB), Y8
	VPBROADCASTD bf16c<>+4(SB), Y9
	VPBROADCASTD bf16c<>+8(SB), Y10
	VPBROADCASTD bf16c<>+12(SB), Y11
	VPBROADCASTD bf16c<>+16(SB), Y12
	VPBROADCASTD bf16c<>+20(SB), Y13
rb_loop:
	VMOVDQU (SI), Y0
	VPSRLD $16, Y0, Y1
	VPAND Y9, Y1, Y1
	VPADDD Y8, Y1, Y1
	VPADDD Y0, Y1, Y1
	VPAND Y10, Y1, Y1
	VPAND Y11, Y0, Y2
	VPCMPGTD Y12, Y2, Y2
	VPOR Y13, Y0, Y3
	VPAND Y10, Y3, Y3
	VPBLENDVB Y2, Y3, Y1, Y1
	VMOVDQU Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ rb_loop
rb_done:
	VZEROUPPER
	RET
