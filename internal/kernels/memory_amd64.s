//go:build amd64 && !purego

// Data movement for the direct convolutions: prefetching a weight-gradient
// unit's operands, and copying weight rows into their packed blocks.

#include "textflag.h"

// func prefetchT0(p unsafe.Pointer, lines, off int)
TEXT ·prefetchT0(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), AX
	ADDQ off+16(FP), AX
	MOVQ lines+8(FP), CX
	TESTQ CX, CX
	JLE done
loop:
	PREFETCHT0 (AX)
	ADDQ $64, AX
	DECQ CX
	JNZ loop
done:
	RET

// func copyRows(dst, src unsafe.Pointer, rows, vecs, dstStride, srcStride int)
//
// Copies rows rows of vecs 16-float vectors each, rows dstStride and
// srcStride bytes apart (AVX-512F).
TEXT ·copyRows(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	MOVQ dstStride+32(FP), DX
	MOVQ srcStride+40(FP), BX
	TESTQ CX, CX
	JLE done
row:
	MOVQ vecs+24(FP), R8
	XORQ R9, R9
vec:
	VMOVUPS (SI)(R9*1), Z0
	VMOVUPS Z0, (DI)(R9*1)
	ADDQ $64, R9
	DECQ R8
	JNZ vec
	ADDQ BX, SI
	ADDQ DX, DI
	DECQ CX
	JNZ row
done:
	VZEROUPPER
	RET
