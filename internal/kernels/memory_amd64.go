//go:build amd64 && !purego

package kernels

import "unsafe"

// prefetchLines asks for the cache lines of the n bytes at p
// (PREFETCHT0 on each); it reads nothing and cannot fault.
func prefetchLines(p unsafe.Pointer, n int) {
	if n <= 0 {
		return
	}
	start := uintptr(p) &^ 63
	prefetchT0(p, int((uintptr(p)+uintptr(n)+63-start)/64), int(start-uintptr(p)))
}

// prefetchT0 issues PREFETCHT0 on lines cache lines from p+off, 64 bytes
// apart (off aligns p down to its line).
//
//go:noescape
func prefetchT0(p unsafe.Pointer, lines, off int)

// copyRows copies rows rows of vecs 16-float vectors each (vecs ≥ 1), rows
// dstStride and srcStride bytes apart (AVX-512F only: copyRuns, which
// masks its bytes, needs AVX512BW, which the avx512 level does not).
//
//go:noescape
func copyRows(dst, src unsafe.Pointer, rows, vecs, dstStride, srcStride int)
