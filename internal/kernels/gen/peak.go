package main

// genPeak writes peak<ISA>(n): n iterations of 24 independent FMAs on
// registers (no memory), to measure the machine's FMA throughput.
func genPeak(e *emitter, is isa) {
	name := "peak" + is.name
	nacc := min(24, is.nregs-2)
	e.gof("\n// %s runs n iterations of %d independent %d-wide FMAs (%d FLOP each).\n//\n//go:noescape\nfunc %s(n int)\n\n// %sFLOPPerIter is the number of FLOP one iteration of %s performs.\nconst %sFLOPPerIter = %d\n",
		name, nacc, is.width, 2*is.width, name, name, name, name, 2*is.width*nacc)
	e.textf("\n// func %s(n int)\nTEXT ·%s(SB), NOSPLIT, $0-8\n\tMOVQ n+0(FP), CX\n", name, name)
	for i := 0; i < nacc; i++ {
		e.textf("\t%s %s%d, %s%d, %s%d\n", is.zero, is.reg, i, is.reg, i, is.reg, i)
	}
	a, b := is.nregs-2, is.nregs-1
	e.textf("\t%s %s%d, %s%d, %s%d\n\t%s %s%d, %s%d, %s%d\n", is.zero, is.reg, a, is.reg, a, is.reg, a, is.zero, is.reg, b, is.reg, b, is.reg, b)
	e.textf("%s_loop:\n", name)
	for i := 0; i < nacc; i++ {
		e.textf("\tVFMADD231PS %s%d, %s%d, %s%d\n", is.reg, a, is.reg, b, is.reg, i)
	}
	e.textf("\tDECQ CX\n\tJNZ %s_loop\n\tVZEROUPPER\n\tRET\n", name)
}
