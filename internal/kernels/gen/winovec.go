package main

import "fmt"

// vecOps writes the vector operations of the Winograd transforms for one
// instruction set. The F(4×4, 3×3) transforms multiply by constants: an
// AVX-512 instruction reads one as an embedded broadcast of wk4<>'s float,
// an AVX2 one as a whole vector of wk4y<>, the same floats repeated (AVX2
// has no embedded broadcast).
type vecOps struct {
	e      *emitter
	reg    func(i int) string // vector register i
	bcst   string             // the instruction suffix that broadcasts a constant: ".BCST" or ""
	table  string             // the constant table: wk4<> or wk4y<>
	stride int                // bytes a constant takes in it
	vbytes int                // bytes a vector
	name   string             // the suffix of the kernels' names: 512 or AVX2
}

func zmmOps(e *emitter) vecOps {
	return vecOps{e: e, reg: z, bcst: ".BCST", table: "wk4<>", stride: 4, vbytes: 64, name: "512"}
}

func ymmOps(e *emitter) vecOps {
	return vecOps{e: e, reg: func(i int) string { return fmt.Sprintf("Y%d", i) }, table: "wk4y<>", stride: 32, vbytes: 32, name: "AVX2"}
}

// k returns the address of constant c of winoK4 in v's table.
func (v vecOps) k(c float32) string {
	for i, k := range winoK4 {
		if k == c {
			return fmt.Sprintf("%s+%d(SB)", v.table, v.stride*i)
		}
	}
	panic(fmt.Sprint("no constant ", c))
}

// fma writes dst += src·c.
func (v vecOps) fma(c float32, src, dst string) {
	v.e.op("VFMADD231PS%s %s, %s, %s", v.bcst, v.k(c), src, dst)
}

// mul writes dst = src·c.
func (v vecOps) mul(c float32, src, dst string) {
	v.e.op("VMULPS%s %s, %s, %s", v.bcst, v.k(c), src, dst)
}

// regs returns n consecutive registers from base.
func (v vecOps) regs(base, n int) []string {
	r := make([]string, n)
	for i := range r {
		r[i] = v.reg(base + i)
	}
	return r
}

// bt4 writes t = Bᵀ·d for the six vectors d into the six registers t
// (distinct from d; d survives), with temporaries a, b.
func (v vecOps) bt4(d, t [6]string, a, b string) {
	v.e.op("VMOVAPS %s, %s", d[4], t[0])
	v.fma(-5, d[2], t[0])
	v.fma(4, d[0], t[0])
	v.e.op("VMOVAPS %s, %s", d[4], a)
	v.fma(-4, d[2], a)
	v.e.op("VMOVAPS %s, %s", d[3], b)
	v.fma(-4, d[1], b)
	v.e.op("VADDPS %s, %s, %s", b, a, t[1])
	v.e.op("VSUBPS %s, %s, %s", b, a, t[2])
	v.e.op("VSUBPS %s, %s, %s", d[2], d[4], a) // c = d4 − d2
	v.e.op("VSUBPS %s, %s, %s", d[1], d[3], b) // e = d3 − d1
	v.e.op("VMOVAPS %s, %s", a, t[3])
	v.fma(2, b, t[3])
	v.e.op("VMOVAPS %s, %s", a, t[4])
	v.fma(-2, b, t[4])
	v.e.op("VMOVAPS %s, %s", d[5], t[5])
	v.fma(4, d[1], t[5])
	v.fma(-5, d[3], t[5])
}

// gg4 writes the six rows G·(g0, g1, g2)
// into o, with the temporary tmp.
func (v vecOps) gg4(g0, g1, g2 string, o [6]string, tmp string) {
	v.mul(1.0/4, g0, o[0])
	v.e.op("VADDPS %s, %s, %s", g2, g0, tmp)
	v.e.op("VADDPS %s, %s, %s", g1, tmp, o[1])
	v.mul(-1.0/6, o[1], o[1])
	v.e.op("VSUBPS %s, %s, %s", g1, tmp, o[2])
	v.mul(-1.0/6, o[2], o[2])
	v.mul(1.0/24, g0, o[3])
	v.fma(1.0/6, g2, o[3])
	v.e.op("VMOVAPS %s, %s", o[3], o[4])
	v.fma(1.0/12, g1, o[3])
	v.fma(-1.0/12, g1, o[4])
	v.e.op("VMOVAPS %s, %s", g2, o[5])
}

// at4 writes the six A·(g0..g3) into o: g0, e+o, e−o, e'+o', e'−o', g3
// with e = g0+g2, o = g1+g3, e' = g0+4g2, o' = 2g1+8g3; t1, t2 are
// temporaries. o may not alias g.
func (v vecOps) at4(gv [4]string, o [6]string, t1, t2 string) {
	v.e.op("VMOVAPS %s, %s", gv[0], o[0])
	v.e.op("VMOVAPS %s, %s", gv[3], o[5])
	v.e.op("VADDPS %s, %s, %s", gv[2], gv[0], t1)
	v.e.op("VADDPS %s, %s, %s", gv[3], gv[1], t2)
	v.e.op("VADDPS %s, %s, %s", t2, t1, o[1])
	v.e.op("VSUBPS %s, %s, %s", t2, t1, o[2])
	v.e.op("VMOVAPS %s, %s", gv[0], t1)
	v.fma(4, gv[2], t1)
	v.mul(2, gv[1], t2)
	v.fma(8, gv[3], t2)
	v.e.op("VADDPS %s, %s, %s", t2, t1, o[3])
	v.e.op("VSUBPS %s, %s, %s", t2, t1, o[4])
}

// gt4 writes the three Gᵀ·(m0..m5) into o (distinct from m):
// ¼m0 − ⅙(m1+m2) + (m3+m4)/24, ⅙(m2−m1) + (m3−m4)/12,
// −⅙(m1+m2) + ⅙(m3+m4) + m5; t1, t2 are temporaries.
func (v vecOps) gt4(m [6]string, o [3]string, t1, t2 string) {
	v.e.op("VADDPS %s, %s, %s", m[2], m[1], t1) // m1+m2
	v.e.op("VADDPS %s, %s, %s", m[4], m[3], t2) // m3+m4
	v.mul(1.0/4, m[0], o[0])
	v.fma(-1.0/6, t1, o[0])
	v.fma(1.0/24, t2, o[0])
	v.e.op("VMOVAPS %s, %s", m[5], o[2])
	v.fma(-1.0/6, t1, o[2])
	v.fma(1.0/6, t2, o[2])
	v.e.op("VSUBPS %s, %s, %s", m[1], m[2], t1) // m2−m1
	v.e.op("VSUBPS %s, %s, %s", m[4], m[3], t2) // m3−m4
	v.mul(1.0/6, t1, o[1])
	v.fma(1.0/12, t2, o[1])
}

// aT4 writes Aᵀ·(m0..m5) of F(4×4, 3×3) in place, with the temporaries t
// (four): m0+p+r, q+2w, p+4r, q+8w+m5 for p, q = m1±m2 and r, w = m3±m4.
// It returns the four registers of the results: m0, t1, t0, m5.
func (v vecOps) aT4(m, t []string) []string {
	v.e.op("VADDPS %s, %s, %s", m[2], m[1], t[0]) // p
	v.e.op("VSUBPS %s, %s, %s", m[2], m[1], t[1]) // q
	v.e.op("VADDPS %s, %s, %s", m[4], m[3], t[2]) // r
	v.e.op("VSUBPS %s, %s, %s", m[4], m[3], t[3]) // w
	v.e.op("VADDPS %s, %s, %s", t[0], m[0], m[0])
	v.e.op("VADDPS %s, %s, %s", t[2], m[0], m[0])
	v.e.op("VADDPS %s, %s, %s", t[1], m[5], m[5])
	v.fma(8, t[3], m[5])
	v.fma(2, t[3], t[1])
	v.fma(4, t[2], t[0])
	return []string{m[0], t[1], t[0], m[5]}
}
