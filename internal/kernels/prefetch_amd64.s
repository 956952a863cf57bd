//go:build amd64 && !purego

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
