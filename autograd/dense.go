package autograd

import "github.com/residual-nn/residual/internal/kernels"

// Gemm computes alpha·op(a)·op(b) + beta·c as ONNX's Gemm: a is [M,K] (or
// [K,M] with transA), b is [K,N] (or [N,K] with transB). c may be nil, or a
// scalar ([] or [1]), a row [N] / [1,N], a column [M,1], or [M,N]; it is
// repeated over the missing axes — that expansion is part of this
// operation's definition, not general broadcasting.
func Gemm(a, b, c *Value, alpha, beta float32, transA, transB bool) *Value {
	as, bs := a.Data.Shape, b.Data.Shape
	if len(as) != 2 || len(bs) != 2 {
		shapeErr("Gemm", "needs 2-D operands, got %v and %v", as, bs)
	}
	m, k := as[0], as[1]
	if transA {
		m, k = k, m
	}
	kb, n := bs[0], bs[1]
	if transB {
		kb, n = n, kb
	}
	if k != kb {
		shapeErr("Gemm", "inner dimensions differ: %v (transA %v) and %v (transB %v)", as, transA, bs, transB)
	}
	var cRow, cCol bool // c varies along columns (N) / rows (M)
	if c != nil {
		cs := c.Data.Shape
		switch {
		case c.numel() == 1:
		case len(cs) == 1 && cs[0] == n, len(cs) == 2 && cs[0] == 1 && cs[1] == n:
			cRow = true
		case len(cs) == 2 && cs[0] == m && cs[1] == 1:
			cCol = true
		case len(cs) == 2 && cs[0] == m && cs[1] == n:
			cRow, cCol = true, true
		default:
			shapeErr("Gemm", "bias %v does not fit output [%d %d]", cs, m, n)
		}
	}
	y := result([]int{m, n}, a, b, c)
	trace(y, OpGemm, GemmAttrs{alpha, beta, transA, transB}, a, b, c)
	if y.dry() {
		return y
	}
	yd, pr := y.Data.Data, y.tape.Precision()
	switch {
	case b.sealed != nil && pr == BF16: // inference: B packed once
		kernels.GemmPackedBF16(transA, m, n, k, alpha, a.Data.Data, as[1], b.Data.Data, bs[1], transB, b.packedGemmBBF16(transB, n, k, bs[1]), 0, yd, n)
	case b.sealed != nil:
		kernels.GemmPacked(transA, m, n, k, alpha, a.Data.Data, as[1], b.Data.Data, bs[1], transB, b.packedGemmB(transB, n, k, bs[1]), 0, yd, n)
	default:
		gemm(pr, transA, transB, m, n, k, alpha, a.Data.Data, as[1], b.Data.Data, bs[1], 0, yd, n)
	}
	if c != nil {
		cd := c.Data.Data
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				ci := 0
				if cRow {
					ci = j
				}
				if cCol {
					ci = ci + i*len(cd)/m
				}
				yd[i*n+j] += beta * cd[ci]
			}
		}
	}
	record(y, func() {
		tp, dy := y.tape, y.Grad.Data
		tp.contribute(a, func(dst []float32) {
			if transA { // dA [K,M] = alpha·op(B)·dYᵀ
				gemm(pr, transB, true, k, m, n, alpha, b.Data.Data, bs[1], dy, n, 0, dst, m)
			} else { // dA [M,K] = alpha·dY·op(B)ᵀ
				gemm(pr, false, !transB, m, k, n, alpha, dy, n, b.Data.Data, bs[1], 0, dst, k)
			}
		})
		tp.contribute(b, func(dst []float32) {
			if transB { // dB [N,K] = alpha·dYᵀ·op(A)
				gemm(pr, true, transA, n, k, m, alpha, dy, n, a.Data.Data, as[1], 0, dst, k)
			} else { // dB [K,N] = alpha·op(A)ᵀ·dY
				gemm(pr, !transA, false, k, n, m, alpha, a.Data.Data, as[1], dy, n, 0, dst, n)
			}
		})
		tp.contribute(c, func(dst []float32) {
			clear(dst)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					ci := 0
					if cRow {
						ci = j
					}
					if cCol {
						ci = ci + i*len(dst)/m
					}
					dst[ci] += beta * dy[i*n+j]
				}
			}
		})
	}, a, b, c)
	return y
}

// Linear computes x·wᵀ + b for x [N,in], w [out,in] (PyTorch's layout) and
// b [out] (may be nil).
func Linear(x, w, b *Value) *Value {
	if len(x.Data.Shape) != 2 || len(w.Data.Shape) != 2 || x.Data.Shape[1] != w.Data.Shape[1] {
		shapeErr("Linear", "input %v does not fit weight %v ([out,in])", x.Data.Shape, w.Data.Shape)
	}
	if b != nil && (len(b.Data.Shape) != 1 || b.Data.Shape[0] != w.Data.Shape[0]) {
		shapeErr("Linear", "bias %v for weight %v", b.Data.Shape, w.Data.Shape)
	}
	return Gemm(x, w, b, 1, 1, false, true)
}

// MatMul multiplies a [..., M, K] by b [..., K, N] with equal leading
// (batch) dimensions, giving [..., M, N].
func MatMul(a, b *Value) *Value {
	as, bs := a.Data.Shape, b.Data.Shape
	r := len(as)
	if r < 2 || len(bs) != r || as[r-1] != bs[r-2] {
		shapeErr("MatMul", "cannot multiply %v by %v", as, bs)
	}
	batch := 1
	for i := 0; i < r-2; i++ {
		if as[i] != bs[i] {
			shapeErr("MatMul", "batch dimensions of %v and %v differ (no broadcasting)", as, bs)
		}
		batch *= as[i]
	}
	m, k, n := as[r-2], as[r-1], bs[r-1]
	shape := append(append([]int(nil), as[:r-2]...), m, n)
	y := result(shape, a, b)
	trace(y, OpMatMul, nil, a, b)
	if y.dry() {
		return y
	}
	ad, bd, yd, pr := a.Data.Data, b.Data.Data, y.Data.Data, y.tape.Precision()
	for i := 0; i < batch; i++ {
		gemm(pr, false, false, m, n, k, 1, ad[i*m*k:], k, bd[i*k*n:], n, 0, yd[i*m*n:], n)
	}
	record(y, func() {
		tp, dy := y.tape, y.Grad.Data
		tp.contribute(a, func(dst []float32) {
			for i := 0; i < batch; i++ {
				gemm(pr, false, true, m, k, n, 1, dy[i*m*n:], n, bd[i*k*n:], n, 0, dst[i*m*k:], k)
			}
		})
		tp.contribute(b, func(dst []float32) {
			for i := 0; i < batch; i++ {
				gemm(pr, true, false, k, n, m, 1, ad[i*m*k:], k, dy[i*m*n:], n, 0, dst[i*k*n:], n)
			}
		})
	}, a, b)
	return y
}
