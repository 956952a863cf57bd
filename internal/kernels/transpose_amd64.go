//go:build amd64 && !purego

package kernels

import "unsafe"

// transpose16 sets dst[i][k] = src[k][i] for a 16×16 block of floats whose
// rows are dstStride and srcStride bytes apart (AVX-512F only).
//
//go:noescape
func transpose16(dst, src unsafe.Pointer, dstStride, srcStride int)

// copyRows copies rows rows of vecs 16-float vectors each (vecs ≥ 1), rows
// dstStride and srcStride bytes apart (AVX-512F only).
//
//go:noescape
func copyRows(dst, src unsafe.Pointer, rows, vecs, dstStride, srcStride int)
