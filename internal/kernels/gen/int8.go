package main

import "fmt"

// Int8 micro-kernels. Each computes an MR×NR tile of int32 dot products
// c[r][n] = Σ_s Σ_j a[s][r][j] · b[s][n][j] over steps s, from a packed
// panel of activations (step-major: the MR rows' values of one step are
// adjacent, 4 bytes a row) and packed weights (step-major: NR channels of
// 4 bytes each), and stores the tile to c ([MR][NR] int32, no epilogue:
// the requantization runs on the tile in Go while it is in cache).
//
//   - AVX2: the widened path. A step is a pair of int16 values, the
//     activations with their zero point already subtracted (−255…255)
//     and the weights (−127…127); VPMADDWD multiplies pairs to int32
//     sums, which cannot saturate (|sum| ≤ 2·255·127), so the result is
//     exact for the full u8 × s8 range. VPMADDUBSW would do twice the
//     products per instruction, but its int16 pair sums saturate
//     (2·255·127 > 32767) unless activations or weights lose a bit.
//   - VNNI (AVX-512 VNNI): a step is four u8 activations (zero point
//     not subtracted: the caller corrects with the weights' column sums)
//     and four s8 weights; VPDPBUSD sums the four products into int32
//     exactly.
//
// Go's assembler knows VPDPBUSD (EVEX); the encoding it emits is checked
// against binutils' disassembly in int8_test.go.

// The tallest tiles the registers hold.
const (
	int8AVX2MaxMR = 5  // 2·MR accumulators + 2 weights + 1 broadcast + 2 products ≤ 16
	int8VNNIMaxMR = 14 // 2·MR accumulators + 2 weights + 1 broadcast ≤ 32
)

// genInt8 writes the AVX2 and VNNI int8 tile kernels and their tables.
func genInt8(e *emitter) {
	var avx2, vnni []string
	for mr := 1; mr <= int8AVX2MaxMR; mr++ {
		avx2 = append(avx2, genInt8Tile(e, "AVX2", mr))
	}
	for mr := 1; mr <= int8VNNIMaxMR; mr++ {
		vnni = append(vnni, genInt8Tile(e, "VNNI", mr))
	}
	e.goText("\n// int8AVX2[mr-1] computes an mr×16 int32 tile from int16 pairs (VPMADDWD).\nvar int8AVX2 = [...]int8Kernel{")
	for _, n := range avx2 {
		e.gof("%s, ", n)
	}
	e.goText("}\n\n// int8VNNI[mr-1] computes an mr×32 int32 tile from u8×s8 quads (VPDPBUSD).\nvar int8VNNI = [...]int8Kernel{")
	for _, n := range vnni {
		e.gof("%s, ", n)
	}
	e.goText("}\n")
	for _, n := range append(avx2, vnni...) {
		e.gof("\n//go:noescape\nfunc %s(a, b unsafe.Pointer, steps int, c unsafe.Pointer)\n", n)
	}
}

// genInt8Tile writes one kernel. Arguments (ABI0): a (SI), b (DI), steps
// (CX, ≥ 1), c (R8).
func genInt8Tile(e *emitter, family string, mr int) string {
	reg, nv, vb, step := "Y", 2, 32, 2*8*4
	if family == "VNNI" {
		reg, nv, vb = "Z", 2, 64
		step = 2 * 16 * 4
	}
	nr := nv * vb / 4
	name := fmt.Sprintf("int8%s_%dx%d", family, mr, nr)
	r := func(i int) string { return fmt.Sprintf("%s%d", reg, i) }
	acc := func(row, v int) string { return r(row*nv + v) }
	e.textf("\n// func %s(a, b unsafe.Pointer, steps int, c unsafe.Pointer)\nTEXT ·%s(SB), NOSPLIT, $0-32\n", name, name)
	e.op("MOVQ a+0(FP), SI")
	e.op("MOVQ b+8(FP), DI")
	e.op("MOVQ steps+16(FP), CX")
	e.op("MOVQ c+24(FP), R8")
	for i := 0; i < mr*nv; i++ {
		if family == "VNNI" {
			e.op("VPXORD %s, %s, %s", r(i), r(i), r(i))
		} else {
			e.op("VPXOR %s, %s, %s", r(i), r(i), r(i))
		}
	}
	e.textf("%s_loop:\n", name)
	if family == "VNNI" {
		w0, w1, b := r(28), r(29), r(30)
		e.op("VMOVDQU32 (DI), %s", w0)
		e.op("VMOVDQU32 64(DI), %s", w1)
		for row := 0; row < mr; row++ {
			e.op("VPBROADCASTD %d(SI), %s", 4*row, b)
			// Intel: VPDPBUSD acc, b (unsigned activations), w (signed weights).
			e.op("VPDPBUSD %s, %s, %s", w0, b, acc(row, 0))
			e.op("VPDPBUSD %s, %s, %s", w1, b, acc(row, 1))
		}
	} else {
		w0, w1, b, t0, t1 := r(10), r(11), r(12), r(13), r(14)
		e.op("VMOVDQU (DI), %s", w0)
		e.op("VMOVDQU 32(DI), %s", w1)
		for row := 0; row < mr; row++ {
			e.op("VPBROADCASTD %d(SI), %s", 4*row, b)
			e.op("VPMADDWD %s, %s, %s", w0, b, t0)
			e.op("VPADDD %s, %s, %s", t0, acc(row, 0), acc(row, 0))
			e.op("VPMADDWD %s, %s, %s", w1, b, t1)
			e.op("VPADDD %s, %s, %s", t1, acc(row, 1), acc(row, 1))
		}
	}
	e.op("ADDQ $%d, SI", 4*mr)
	e.op("ADDQ $%d, DI", step)
	e.op("DECQ CX")
	e.op("JNZ %s_loop", name)
	mov := "VMOVDQU"
	if family == "VNNI" {
		mov = "VMOVDQU32"
	}
	for row := 0; row < mr; row++ {
		for v := 0; v < nv; v++ {
			e.op("%s %s, %d(R8)", mov, acc(row, v), row*nr*4+v*vb)
		}
	}
	e.op("VZEROUPPER")
	e.op("RET")
	return name
}

// genPeakInt8 writes peakInt8AVX2(n) and peakInt8VNNI(n): n iterations of
// independent register-only multiply-adds of int8 data (VPMADDWD and the
// VPADDD that accumulates it for the widened AVX2 path, 16 products each;
// VPDPBUSD, 64 products each), to
// measure the machine's int8 throughput.
func genPeakInt8(e *emitter) {
	for _, f := range []struct {
		name, reg, zero, op string
		nacc, macs          int
	}{
		{"peakInt8AVX2", "Y", "VPXOR", "VPMADDWD", 6, 16},
		{"peakInt8VNNI", "Z", "VPXORD", "VPDPBUSD", 24, 64},
	} {
		e.gof("\n// %s runs n iterations of %d independent %s (%d int8 multiply-adds each).\n//\n//go:noescape\nfunc %s(n int)\n\n// %sOpsPerIter is the number of int8 operations (2 per multiply-add) one iteration of %s performs.\nconst %sOpsPerIter = %d\n",
			f.name, f.nacc, f.op, f.macs, f.name, f.name, f.name, f.name, 2*f.macs*f.nacc)
		e.textf("\n// func %s(n int)\nTEXT ·%s(SB), NOSPLIT, $0-8\n\tMOVQ n+0(FP), CX\n", f.name, f.name)
		a, b := f.nacc, f.nacc+1
		for i := 0; i <= b; i++ {
			e.op("%s %s%d, %s%d, %s%d", f.zero, f.reg, i, f.reg, i, f.reg, i)
		}
		e.textf("%s_loop:\n", f.name)
		for i := 0; i < f.nacc; i++ {
			if f.op == "VPMADDWD" { // no accumulating form: a product, then an add, as the kernels do
				e.op("VPMADDWD %s%d, %s%d, %s%d", f.reg, a, f.reg, b, f.reg, i+8)
				e.op("VPADDD %s%d, %s%d, %s%d", f.reg, i+8, f.reg, i, f.reg, i)
			} else {
				e.op("VPDPBUSD %s%d, %s%d, %s%d", f.reg, a, f.reg, b, f.reg, i)
			}
		}
		e.textf("\tDECQ CX\n\tJNZ %s_loop\n\tVZEROUPPER\n\tRET\n", f.name)
	}
}
