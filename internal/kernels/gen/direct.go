package main

import "fmt"

// The direct convolution kernels of the int8 (VPDPBUSD) and bfloat16
// (VDPBF16PS) paths: an mr×32 tile of output pixels whose receptive
// fields are read where they lie in the input (NHWC), with no im2col
// panel. Pixel p of the tile starts at a + p·ps; a kernel row of taps is
// steps consecutive 4-byte steps (u8 quads or bfloat16 pairs: the taps of
// one input row are adjacent in NHWC), and the kh kernel rows are rs
// bytes apart. b holds the weights packed [kh][steps][32] 4-byte groups;
// c receives the [mr][32] tile of int32 or float32 sums (stored, not
// added).
//
// Arguments (ABI0): a, b, c, ps, rs, kh (≥ 1), steps (≥ 1).
// Registers: AX the current kernel row's pixel 0; DX, R8, R9, R10 and
// SI, DI pixAddr's bases and stride; BX the weights; CX the step count;
// R12 the row count; R13 rs; R11 c; Z0–Z27 the accumulators, Z28–Z29 the
// weights, Z30–Z31 the broadcasts.

// directMaxMR is the tallest direct tile.
const directMaxMR = 14

// directFamily is one instruction set's direct kernels.
type directFamily struct {
	name string                              // kernel name prefix and Go table name
	typ  string                              // the Go kernel type: typ + "Kernel"
	doc  string                              // the table's doc comment
	mac  func(e *emitter, acc, bcast, w int) // acc += products of the broadcast and the weights
}

// directFamilies are the int8 and bfloat16 kernels.
var directFamilies = []directFamily{
	{"int8Direct", "int8Direct", "computes an mr×32 int32 tile of a convolution read in place (VPDPBUSD; gen/direct.go)",
		func(e *emitter, acc, bcast, w int) { e.op("VPDPBUSD %s, %s, %s", z(w), z(bcast), z(acc)) }},
	{"bf16Direct", "bf16Direct", "computes an mr×32 float32 tile of a convolution read in place (VDPBF16PS; gen/direct.go)",
		func(e *emitter, acc, bcast, w int) { e.dpbf16(acc, bcast, w) }},
}

// genDirect writes both families' kernels and tables, and the bfloat16
// family's tiles one vector (16 channels) wide, bf16Direct16, for
// convolutions of at most 16 output channels (which the 32-wide tiles
// would compute half in vain).
func genDirect(e *emitter) {
	bf16 := directFamilies[1]
	narrow := directFamily{"bf16Direct16", "bf16Direct", "computes an mr×16 float32 tile (rows 32 floats apart) of a convolution read in place (VDPBF16PS; gen/direct.go)", bf16.mac}
	for _, f := range append(directFamilies, narrow) {
		nv := 2
		if f.name == narrow.name {
			nv = 1
		}
		var names []string
		for mr := 1; mr <= directMaxMR; mr++ {
			names = append(names, genDirectTile(e, f, mr, nv))
		}
		e.gof("\n// %s[mr-1] %s.\nvar %s = [...]%sKernel{", f.name, f.doc, f.name, f.typ)
		for _, n := range names {
			e.gof("%s, ", n)
		}
		e.goText("}\n")
		for _, n := range names {
			e.gof("\n//go:noescape\nfunc %s(a, b, c unsafe.Pointer, ps, rs, kh, steps int)\n", n)
		}
	}
}

// genDirectTile writes one kernel of family f, mr pixels tall and nv
// vectors (16 channels each) wide; the weights hold 16·nv channels a step,
// and the tile's rows stay 32 elements apart.
func genDirectTile(e *emitter, f directFamily, mr, nv int) string {
	name := fmt.Sprintf("%s_%dx%d", f.name, mr, 16*nv)
	e.textf("\n// func %s(a, b, c unsafe.Pointer, ps, rs, kh, steps int)\nTEXT ·%s(SB), NOSPLIT, $0-56\n", name, name)
	e.op("MOVQ a+0(FP), AX")
	e.op("MOVQ b+8(FP), BX")
	e.op("MOVQ c+16(FP), R11")
	e.op("MOVQ ps+24(FP), SI")
	e.op("MOVQ rs+32(FP), R13")
	e.op("MOVQ kh+40(FP), R12")
	e.op("LEAQ (SI)(SI*2), DI")
	for i := 0; i < nv*mr; i++ {
		e.op("VPXORD %s, %s, %s", z(i), z(i), z(i))
	}
	// pixAddr's further bases: R8 for pixels 5 on, R9 and R10 for 10 on.
	bases := []string{"DX"}
	if mr > 5 {
		bases = append(bases, "R8")
	}
	if mr > 10 {
		bases = append(bases, "R9", "R10")
	}
	e.textf("%s_row:\n", name)
	e.op("MOVQ AX, DX")
	for _, r := range bases[1:] {
		e.op("LEAQ (DX)%s, %s", map[string]string{"R8": "(SI*1)", "R9": "(SI*2)", "R10": "(DI*1)"}[r], r)
	}
	e.op("MOVQ steps+48(FP), CX")
	e.textf("%s_step:\n", name)
	e.op("VMOVUPS (BX), Z28")
	if nv == 2 {
		e.op("VMOVUPS 64(BX), Z29")
	}
	for p := 0; p < mr; p++ {
		bc := 30 + p%2
		e.op("VPBROADCASTD %s, %s", pixAddr(p, 0), z(bc))
		for v := 0; v < nv; v++ {
			f.mac(e, nv*p+v, bc, 28+v)
		}
	}
	for _, r := range bases {
		e.op("ADDQ $4, %s", r)
	}
	e.op("ADDQ $%d, BX", 64*nv)
	e.op("DECQ CX")
	e.op("JNZ %s_step", name)
	e.op("ADDQ R13, AX")
	e.op("DECQ R12")
	e.op("JNZ %s_row", name)
	for p := 0; p < mr; p++ {
		for v := 0; v < nv; v++ {
			e.op("VMOVUPS %s, %d(R11)", z(nv*p+v), p*128+64*v)
		}
	}
	e.op("VZEROUPPER")
	e.op("RET")
	return name
}
