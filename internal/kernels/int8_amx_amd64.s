//go:build amd64 && !purego

#include "textflag.h"

// AMX (Advanced Matrix Extensions) instructions, which Go's assembler does
// not know, as their encodings (checked against binutils in
// TestAMXEncodings). Registers: AX the tile configuration, then the
// second A tile's rows; SI the first A tile's; DX the A row stride; BX the
// weights; CX 128, the weights' and the output tile's row stride; DI the
// output tile.
#define LDTILECFG_AX BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0x00
#define TILEZERO_0 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc0
#define TILEZERO_1 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc8
#define TILEZERO_2 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xd0
#define TILEZERO_3 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xd8
#define TILEZERO_4 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xe0
#define TILEZERO_5 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xe8
#define TILEZERO_6 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xf0
#define TILEZERO_7 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xf8
// TILELOADD tmm0, (SI)(DX*1); tmm3, (AX)(DX*1); tmm1, (BX)(CX*1); tmm2, 64(BX)(CX*1)
#define LOAD_A0 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x04; BYTE $0x16
#define LOAD_A1 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x1c; BYTE $0x10
#define LOAD_B0 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x0c; BYTE $0x0b
#define LOAD_B1 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x54; BYTE $0x0b; BYTE $0x40
// TDPBUSD tmm4 += tmm0·tmm1, tmm5 += tmm0·tmm2, tmm6 += tmm3·tmm1, tmm7 += tmm3·tmm2
#define DP_40_1 BYTE $0xc4; BYTE $0xe2; BYTE $0x71; BYTE $0x5e; BYTE $0xe0
#define DP_50_2 BYTE $0xc4; BYTE $0xe2; BYTE $0x69; BYTE $0x5e; BYTE $0xe8
#define DP_63_1 BYTE $0xc4; BYTE $0xe2; BYTE $0x71; BYTE $0x5e; BYTE $0xf3
#define DP_73_2 BYTE $0xc4; BYTE $0xe2; BYTE $0x69; BYTE $0x5e; BYTE $0xfb
// TILESTORED (DI)(CX*1), tmm4; 64(DI)(CX*1), tmm5; (DI)(CX*1), tmm6; 64(DI)(CX*1), tmm7
#define STORE_4 BYTE $0xc4; BYTE $0xe2; BYTE $0x7a; BYTE $0x4b; BYTE $0x24; BYTE $0x0f
#define STORE_5 BYTE $0xc4; BYTE $0xe2; BYTE $0x7a; BYTE $0x4b; BYTE $0x6c; BYTE $0x0f; BYTE $0x40
#define STORE_6 BYTE $0xc4; BYTE $0xe2; BYTE $0x7a; BYTE $0x4b; BYTE $0x34; BYTE $0x0f
#define STORE_7 BYTE $0xc4; BYTE $0xe2; BYTE $0x7a; BYTE $0x4b; BYTE $0x7c; BYTE $0x0f; BYTE $0x40
#define TILERELEASE BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0xc0

#define TILEZERO_ALL TILEZERO_4; TILEZERO_5; TILEZERO_6; TILEZERO_7

// AMX_STEP multiplies 64 bytes of K: the two A tiles' (SI, AX) by the two
// weight tiles' (BX, BX+64), into the four accumulators, and moves on.
#define AMX_STEP LOAD_A0; LOAD_A1; LOAD_B0; LOAD_B1; DP_40_1; DP_50_2; DP_63_1; DP_73_2; ADDQ $64, SI; ADDQ $64, AX; ADDQ $2048, BX

// STORE_TILES writes the four accumulators as a 32×32 int32 tile at DI
// (rows CX = 128 bytes apart) and moves DI past it.
#define STORE_TILES STORE_4; STORE_5; ADDQ $2048, DI; STORE_6; STORE_7; ADDQ $2048, DI

// func amxInt8Conv32(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, chunks int, c unsafe.Pointer, blocks int, taps unsafe.Pointer, ntaps int)
// amxInt8Tiles32 for a convolution of stride 1 read in place: block i's
// 32 rows start at a + 32i·lda, and for each of the ntaps kernel taps
// (taps: their byte offsets, an []int) the rows are read from that
// offset on, chunks steps of 64 bytes; b runs on through the taps (the
// weights' K order is tap, then channel).
TEXT ·amxInt8Conv32(SB), NOSPLIT, $0-72
	MOVQ cfg+0(FP), AX
	LDTILECFG_AX
	MOVQ a+8(FP), R11
	MOVQ lda+16(FP), DX
	MOVQ b+24(FP), R10
	MOVQ chunks+32(FP), R13
	MOVQ c+40(FP), DI
	MOVQ blocks+48(FP), R9
	MOVQ $128, CX
conv_block:
	MOVQ R10, BX
	MOVQ taps+56(FP), R14
	MOVQ ntaps+64(FP), R12
	SHLQ $3, R12
	ADDQ R14, R12
	TILEZERO_ALL
conv_tap:
	MOVQ (R14), SI
	ADDQ R11, SI
	MOVQ DX, AX
	SHLQ $4, AX
	ADDQ SI, AX
	MOVQ R13, R8
conv_step:
	AMX_STEP
	DECQ R8
	JNZ conv_step
	ADDQ $8, R14
	CMPQ R14, R12
	JNE conv_tap
	STORE_TILES
	MOVQ DX, AX
	SHLQ $5, AX
	ADDQ AX, R11
	DECQ R9
	JNZ conv_block
	TILERELEASE
	RET

// func peakAMXInt8(cfg unsafe.Pointer, n int)
// n iterations of four independent TDPBUSD on zeroed tiles (tmm4–7 +=
// tmm0·tmm1, tmm0·tmm2, tmm3·tmm1, tmm3·tmm2): the AMX int8 throughput,
// 4·16·16·64 multiply-adds an iteration.
TEXT ·peakAMXInt8(SB), NOSPLIT, $0-16
	MOVQ cfg+0(FP), AX
	LDTILECFG_AX
	MOVQ n+8(FP), R8
	TILEZERO_ALL
	TILEZERO_0
	TILEZERO_1
	TILEZERO_2
	TILEZERO_3
amx_peak:
	DP_40_1
	DP_50_2
	DP_63_1
	DP_73_2
	DECQ R8
	JNZ amx_peak
	TILERELEASE
	RET
