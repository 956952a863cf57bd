package kernels

// Gemm computes C = alpha·op(A)·op(B) + beta·C, where op(A) is [M,K] and
// op(B) is [K,N], all row-major. A is [M,K] (or [K,M] if transA) with row
// stride lda; B is [K,N] (or [N,K] if transB) with row stride ldb. With
// beta = 0, C is overwritten (its old contents, even NaN, are ignored).
//
// It runs on the assembly kernels of the active level where they apply
// (products of at least minFastGemm), on the reference (gemmRef)
// otherwise.
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !gemmFast(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) {
		gemmRef(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
}

// gemmRef is Gemm's reference, for any Float. Every product is taken, a
// zero times NaN or ±Inf included (NaN, as IEEE 754 and PyTorch have it).
func gemmRef[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
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
