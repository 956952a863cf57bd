package kernels

// Gemm computes C = alpha·op(A)·op(B) + beta·C, where op(A) is [M,K] and
// op(B) is [K,N], all row-major. A is [M,K] (or [K,M] if transA) with row
// stride lda; B is [K,N] (or [N,K] if transB) with row stride ldb. With
// beta = 0, C is overwritten (its old contents, even NaN, are ignored).
func Gemm[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if af, ok := any(a).([]float32); ok && gemmFast(transA, transB, m, n, k, float32(alpha), af, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc) {
		return
	}
	parallelFor(m, func(lo, hi int) {
		tmp := make([]T, n)
		for i := lo; i < hi; i++ {
			clear(tmp)
			for p := 0; p < k; p++ {
				var av T
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if av == 0 {
					continue
				}
				if transB {
					for j := 0; j < n; j++ {
						tmp[j] += av * b[j*ldb+p]
					}
				} else {
					axpy(av, b[p*ldb:p*ldb+n], tmp)
				}
			}
			storeScaled(c[i*ldc:i*ldc+n], tmp, alpha, beta)
		}
	})
}

// storeScaled writes row = alpha·v + beta·row; with beta = 0 the old row
// is ignored (even NaN).
func storeScaled[T Float](row, v []T, alpha, beta T) {
	v = v[:len(row)]
	if beta == 0 {
		for j := range row {
			row[j] = alpha * v[j]
		}
		return
	}
	for j := range row {
		row[j] = alpha*v[j] + beta*row[j]
	}
}
