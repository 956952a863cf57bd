//go:build amd64 && !purego

#include "textflag.h"

// AMX (Advanced Matrix Extensions) instructions, which Go's assembler does
// not know, as their encodings (checked against binutils in
// TestAMXEncodings). Registers: AX the tile configuration, then the
// second A tile's rows; SI the first A tile's; DX the A row stride; BX the
// weights; CX 128, the weights' and the output tile's row stride; DI the
// output tile. (AMX_GRAD, amxBF16Grad32 and amxBF16Grad16: BX and CX the B
// operand and its row stride, DI and R9 = 128 the accumulators'.)
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
// TDPBF16PS tmm4 += tmm0·tmm1, tmm5 += tmm0·tmm2, tmm6 += tmm3·tmm1, tmm7 += tmm3·tmm2
#define BF_40_1 BYTE $0xc4; BYTE $0xe2; BYTE $0x72; BYTE $0x5c; BYTE $0xe0
#define BF_50_2 BYTE $0xc4; BYTE $0xe2; BYTE $0x6a; BYTE $0x5c; BYTE $0xe8
#define BF_63_1 BYTE $0xc4; BYTE $0xe2; BYTE $0x72; BYTE $0x5c; BYTE $0xf3
#define BF_73_2 BYTE $0xc4; BYTE $0xe2; BYTE $0x6a; BYTE $0x5c; BYTE $0xfb
// TILESTORED (DI)(CX*1), tmm4; 64(DI)(CX*1), tmm5; (DI)(CX*1), tmm6; 64(DI)(CX*1), tmm7
#define STORE_4 BYTE $0xc4; BYTE $0xe2; BYTE $0x7a; BYTE $0x4b; BYTE $0x24; BYTE $0x0f
#define STORE_5 BYTE $0xc4; BYTE $0xe2; BYTE $0x7a; BYTE $0x4b; BYTE $0x6c; BYTE $0x0f; BYTE $0x40
#define STORE_6 BYTE $0xc4; BYTE $0xe2; BYTE $0x7a; BYTE $0x4b; BYTE $0x34; BYTE $0x0f
#define STORE_7 BYTE $0xc4; BYTE $0xe2; BYTE $0x7a; BYTE $0x4b; BYTE $0x7c; BYTE $0x0f; BYTE $0x40
// TILELOADD and TILESTORED of the accumulators tmm4–7 at (DI)(R9*1) and
// 64(DI)(R9*1), R9 128: a 32×32 float32 tile, as two halves of 16 rows.
#define LOADC_4 BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x24; BYTE $0x0f
#define LOADC_5 BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x6c; BYTE $0x0f; BYTE $0x40
#define LOADC_6 BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x34; BYTE $0x0f
#define LOADC_7 BYTE $0xc4; BYTE $0xa2; BYTE $0x7b; BYTE $0x4b; BYTE $0x7c; BYTE $0x0f; BYTE $0x40
#define STOREC_4 BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x24; BYTE $0x0f
#define STOREC_5 BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x6c; BYTE $0x0f; BYTE $0x40
#define STOREC_6 BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x34; BYTE $0x0f
#define STOREC_7 BYTE $0xc4; BYTE $0xa2; BYTE $0x7a; BYTE $0x4b; BYTE $0x7c; BYTE $0x0f; BYTE $0x40
#define TILERELEASE BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0xc0

#define TILEZERO_ALL TILEZERO_4; TILEZERO_5; TILEZERO_6; TILEZERO_7

// AMX_STEP_INT8 and AMX_STEP_BF16 multiply 64 bytes of K (64 u8 × s8, or
// 32 bfloat16 × bfloat16): the two A tiles' (SI, AX) by the two weight
// tiles' (BX, BX+64), into the four accumulators, and move on.
#define AMX_LOADS LOAD_A0; LOAD_A1; LOAD_B0; LOAD_B1
#define AMX_NEXT ADDQ $64, SI; ADDQ $64, AX; ADDQ $2048, BX
#define AMX_STEP_INT8 AMX_LOADS; DP_40_1; DP_50_2; DP_63_1; DP_73_2; AMX_NEXT
#define AMX_STEP_BF16 AMX_LOADS; BF_40_1; BF_50_2; BF_63_1; BF_73_2; AMX_NEXT

// AMX_STEP_BF16_16 is AMX_STEP_BF16 for a block whose real output channels
// are its first 16: the first weight tile only, into the left accumulators
// (tmm4, tmm6).
#define AMX_STEP_BF16_16 LOAD_A0; LOAD_A1; LOAD_B0; BF_40_1; BF_63_1; AMX_NEXT

// STORE_TILES writes the four accumulators as a 32×32 int32 tile at DI
// (rows CX = 128 bytes apart) and moves DI past it; STORE_TILES_16 writes
// the left two, the tile's first 16 columns (the others are left as they
// were).
#define STORE_TILES STORE_4; STORE_5; ADDQ $2048, DI; STORE_6; STORE_7; ADDQ $2048, DI
#define STORE_TILES_16 STORE_4; ADDQ $2048, DI; STORE_6; ADDQ $2048, DI

// AMX_CONV32 is the body of a 32×32 convolution kernel whose step is
// STEP (AMX_STEP_INT8, AMX_STEP_BF16 or AMX_STEP_BF16_16) and whose
// store is STORE (STORE_TILES, or STORE_TILES_16 after AMX_STEP_BF16_16):
// block i's 32 rows start at a + 32i·lda, and for each of the ntaps
// kernel taps (taps: their byte offsets, an []int) the rows are read from
// that offset on, chunks steps of 64 bytes; b runs on through the taps
// (the weights' K order is tap, then K within the tap). Each block's
// accumulators go to c as a 32×32 tile of 4-byte sums, rows 128 bytes
// apart (STORE_TILES_16: its first 16 columns).
#define AMX_CONV32(STEP, STORE) \
	MOVQ cfg+0(FP), AX \
	LDTILECFG_AX \
	MOVQ a+8(FP), R11 \
	MOVQ lda+16(FP), DX \
	MOVQ b+24(FP), R10 \
	MOVQ chunks+32(FP), R13 \
	MOVQ c+40(FP), DI \
	MOVQ blocks+48(FP), R9 \
	MOVQ $128, CX \
conv_block: \
	MOVQ R10, BX \
	MOVQ taps+56(FP), R14 \
	MOVQ ntaps+64(FP), R12 \
	SHLQ $3, R12 \
	ADDQ R14, R12 \
	TILEZERO_ALL \
conv_tap: \
	MOVQ (R14), SI \
	ADDQ R11, SI \
	MOVQ DX, AX \
	SHLQ $4, AX \
	ADDQ SI, AX \
	MOVQ R13, R8 \
conv_step: \
	STEP \
	DECQ R8 \
	JNZ conv_step \
	ADDQ $8, R14 \
	CMPQ R14, R12 \
	JNE conv_tap \
	STORE \
	MOVQ DX, AX \
	SHLQ $5, AX \
	ADDQ AX, R11 \
	DECQ R9 \
	JNZ conv_block \
	TILERELEASE \
	RET

// AMX_GRAD is the body of amxBF16Grad32 and amxBF16Grad16: LOADC loads
// the accumulators of a tile at DI, PRODUCTS multiplies a step's A rows
// (SI, AX) by its B columns (BX), STOREC stores the accumulators and moves
// DI to the next tile.
#define AMX_GRAD(LOADC, PRODUCTS, STOREC) \
	MOVQ cfg+0(FP), AX \
	LDTILECFG_AX \
	MOVQ a+8(FP), R10 \
	MOVQ lda+16(FP), DX \
	MOVQ b+24(FP), R11 \
	MOVQ ldb+32(FP), CX \
	MOVQ c+48(FP), DI \
	MOVQ $128, R9 \
	MOVQ CX, R13 \
	SHLQ $4, R13 \
	MOVQ offs+56(FP), R14 \
	MOVQ noffs+64(FP), R12 \
	SHLQ $3, R12 \
	ADDQ R14, R12 \
grad_off: \
	CMPB load+72(FP), $0 \
	JNE grad_load \
	TILEZERO_ALL \
	JMP grad_loaded \
grad_load: \
	LOADC \
grad_loaded: \
	MOVQ R10, SI \
	MOVQ DX, AX \
	SHLQ $4, AX \
	ADDQ SI, AX \
	MOVQ (R14), BX \
	ADDQ R11, BX \
	MOVQ steps+40(FP), R8 \
grad_step: \
	PRODUCTS \
	ADDQ $64, SI \
	ADDQ $64, AX \
	ADDQ R13, BX \
	DECQ R8 \
	JNZ grad_step \
	STOREC \
	ADDQ $8, R14 \
	CMPQ R14, R12 \
	JNE grad_off \
	TILERELEASE \
	RET

#define GRAD_LOADC_32 LOADC_4; LOADC_5; ADDQ $2048, DI; LOADC_6; LOADC_7; SUBQ $2048, DI
#define GRAD_PRODUCTS_32 AMX_LOADS; BF_40_1; BF_50_2; BF_63_1; BF_73_2
#define GRAD_STOREC_32 STOREC_4; STOREC_5; ADDQ $2048, DI; STOREC_6; STOREC_7; ADDQ $2048, DI
#define GRAD_PRODUCTS_16 LOAD_A0; LOAD_B0; BF_40_1
#define GRAD_STOREC_16 STOREC_4; ADDQ $4096, DI

// AMX_PEAK(DPS) runs n iterations of DPS, four independent tile products
// on zeroed tiles (tmm4–7 += tmm0·tmm1, tmm0·tmm2, tmm3·tmm1, tmm3·tmm2).
#define AMX_PEAK(DPS) \
	MOVQ cfg+0(FP), AX \
	LDTILECFG_AX \
	MOVQ n+8(FP), R8 \
	TILEZERO_ALL \
	TILEZERO_0 \
	TILEZERO_1 \
	TILEZERO_2 \
	TILEZERO_3 \
amx_peak: \
	DPS \
	DECQ R8 \
	JNZ amx_peak \
	TILERELEASE \
	RET

#define PEAK_INT8 DP_40_1; DP_50_2; DP_63_1; DP_73_2
#define PEAK_BF16 BF_40_1; BF_50_2; BF_63_1; BF_73_2

// func amxInt8Conv32(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, chunks int, c unsafe.Pointer, blocks int, taps unsafe.Pointer, ntaps int)
// AMX_CONV32 on u8 inputs and VNNI-packed s8 weights: int32 sums.
TEXT ·amxInt8Conv32(SB), NOSPLIT, $0-72
	AMX_CONV32(AMX_STEP_INT8, STORE_TILES)

// func amxBF16Conv32(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, chunks int, c unsafe.Pointer, blocks int, taps unsafe.Pointer, ntaps int)
// AMX_CONV32 on bfloat16 inputs and weights packed as pairs: float32 sums.
TEXT ·amxBF16Conv32(SB), NOSPLIT, $0-72
	AMX_CONV32(AMX_STEP_BF16, STORE_TILES)

// func amxBF16Conv32Left(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, chunks int, c unsafe.Pointer, blocks int, taps unsafe.Pointer, ntaps int)
// amxBF16Conv32 for blocks whose real channels are the first 16: half the
// products, the tiles' first 16 columns stored.
TEXT ·amxBF16Conv32Left(SB), NOSPLIT, $0-72
	AMX_CONV32(AMX_STEP_BF16_16, STORE_TILES_16)

// func amxBF16Grad32(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, ldb int, steps int, c unsafe.Pointer, offs unsafe.Pointer, noffs int, load bool)
// For each of the noffs byte offsets offs (an []int), adds to the 32×32
// float32 tile at c (or, load false, to zeros) (rows 128 bytes apart; the next offset's tile 4,096
// bytes on) the products of a's 32 rows (lda bytes apart: bfloat16 pairs
// along K) by the 32 columns of pairs at b + offset (rows ldb bytes apart,
// 16 rows a step), steps steps of 32 K values (16 pairs).
TEXT ·amxBF16Grad32(SB), NOSPLIT, $0-73
	AMX_GRAD(GRAD_LOADC_32, GRAD_PRODUCTS_32, GRAD_STOREC_32)

// func amxBF16Grad16(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, ldb int, steps int, c unsafe.Pointer, offs unsafe.Pointer, noffs int, load bool)
// amxBF16Grad32 for a's first 16 rows by b's first 16 columns: one tile
// product a step, into each 32×32 tile's first 16 rows and columns (the
// rest left as they were).
TEXT ·amxBF16Grad16(SB), NOSPLIT, $0-73
	AMX_GRAD(LOADC_4, GRAD_PRODUCTS_16, GRAD_STOREC_16)

// func peakAMXInt8(cfg unsafe.Pointer, n int)
// AMX_PEAK on TDPBUSD: the AMX int8 throughput, 4·16·16·64 multiply-adds
// an iteration.
TEXT ·peakAMXInt8(SB), NOSPLIT, $0-16
	AMX_PEAK(PEAK_INT8)

// func peakAMXBF16(cfg unsafe.Pointer, n int)
// AMX_PEAK on TDPBF16PS: 4·16·16·32 multiply-adds an iteration.
TEXT ·peakAMXBF16(SB), NOSPLIT, $0-16
	AMX_PEAK(PEAK_BF16)
