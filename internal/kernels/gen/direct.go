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
// Arguments (ABI0): a, b, c, ps, rs, kh (≥ 1), steps (≥ 1); the bfloat16
// kernels also take cs, scale, shift, skip and floor (genDirectEpilogue):
// their rows are stored cs bytes apart, and with a scale the epilogue is
// applied on the way.
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
	// epilogue says the kernels store through genDirectEpilogue (the
	// bfloat16 ones) rather than to a tile 32 elements a row (int8).
	epilogue bool
}

// args is the Go argument list of f's kernels.
func (f directFamily) args() string {
	if f.epilogue {
		return "a, b, c unsafe.Pointer, ps, rs, kh, steps, cs int, scale, shift, skip unsafe.Pointer, floor float32"
	}
	return "a, b, c unsafe.Pointer, ps, rs, kh, steps int"
}

// directFamilies are the int8 and bfloat16 kernels.
var directFamilies = []directFamily{
	{"int8Direct", "int8Direct", "computes an mr×32 int32 tile of a convolution read in place (VPDPBUSD; gen/direct.go)",
		func(e *emitter, acc, bcast, w int) { e.op("VPDPBUSD %s, %s, %s", z(w), z(bcast), z(acc)) }, false},
	{"bf16Direct", "bf16Direct", "computes an mr×32 float32 tile of a convolution read in place and stores it, through the epilogue when given one (VDPBF16PS; gen/direct.go)",
		func(e *emitter, acc, bcast, w int) { e.dpbf16(acc, bcast, w) }, true},
}

// genDirect writes both families' kernels and tables, and the bfloat16
// family's tiles one vector (16 channels) wide, bf16Direct16, for
// convolutions of at most 16 output channels (which the 32-wide tiles
// would compute half in vain).
func genDirect(e *emitter) {
	bf16 := directFamilies[1]
	narrow := directFamily{"bf16Direct16", "bf16Direct", "computes an mr×16 float32 tile of a convolution read in place and stores it, through the epilogue when given one (VDPBF16PS; gen/direct.go)", bf16.mac, true}
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
			e.gof("\n//go:noescape\nfunc %s(%s)\n", n, f.args())
		}
	}
}

// genDirectTile writes one kernel of family f, mr pixels tall and nv
// vectors (16 channels each) wide; the weights hold 16·nv channels a step,
// and the tile's rows stay 32 elements apart.
func genDirectTile(e *emitter, f directFamily, mr, nv int) string {
	name := fmt.Sprintf("%s_%dx%d", f.name, mr, 16*nv)
	frame := 56
	if f.epilogue {
		frame = 92
	}
	e.textf("\n// func %s(%s)\nTEXT ·%s(SB), NOSPLIT, $0-%d\n", name, f.args(), name, frame)
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
	if f.epilogue {
		genDirectEpilogue(e, name, mr, nv)
		return name
	}
	for p := 0; p < mr; p++ {
		for v := 0; v < nv; v++ {
			e.op("VMOVUPS %s, %d(R11)", z(nv*p+v), p*128+64*v)
		}
	}
	e.op("VZEROUPPER")
	e.op("RET")
	return name
}

// genDirectEpilogue stores a bfloat16 kernel's sums: row p at c + p·cs,
// as they are when scale is nil, else as max(sum·scale + shift (+ skip),
// floor) per channel, scale and shift holding the tile's 16·nv channels
// and skip (nil for none) laid out as the output. The arithmetic is the
// separate epilogue's (epilogueTile512's EPIROW and EPIMAX): a product
// and two sums rounded one by one, and a maximum that keeps a NaN.
func genDirectEpilogue(e *emitter, name string, mr, nv int) {
	e.op("MOVQ c+16(FP), R11")
	e.op("MOVQ cs+56(FP), SI")
	e.op("MOVQ scale+64(FP), R10")
	e.op("TESTQ R10, R10")
	e.op("JNZ %s_epilogue", name)
	rows := func(skip bool, each func(a string, v int)) {
		for p := 0; p < mr; p++ {
			for v := 0; v < nv; v++ {
				each(z(nv*p+v), v)
			}
			if p < mr-1 {
				e.op("ADDQ SI, R11")
				if skip {
					e.op("ADDQ SI, R8")
				}
			}
		}
		e.op("VZEROUPPER")
		e.op("RET")
	}
	rows(false, func(a string, v int) { e.op("VMOVUPS %s, %d(R11)", a, 64*v) })
	e.textf("%s_epilogue:\n", name)
	e.op("MOVQ shift+72(FP), R12")
	e.op("MOVQ skip+80(FP), R8")
	e.op("VBROADCASTSS floor+88(FP), Z28")
	affine := func(a string, v int) {
		e.op("VMULPS %d(R10), %s, %s", 64*v, a, a)
		e.op("VADDPS %d(R12), %s, %s", 64*v, a, a)
	}
	store := func(a string, v int) {
		e.op("VCMPPS $7, %s, %s, K3", a, a)
		e.op("VMAXPS Z28, %s, K3, %s", a, a)
		e.op("VMOVUPS %s, %d(R11)", a, 64*v)
	}
	e.op("TESTQ R8, R8")
	e.op("JZ %s_noskip", name)
	rows(true, func(a string, v int) {
		affine(a, v)
		e.op("VADDPS %d(R8), %s, %s", 64*v, a, a)
		store(a, v)
	})
	e.textf("%s_noskip:\n", name)
	rows(false, func(a string, v int) {
		affine(a, v)
		store(a, v)
	})
}
