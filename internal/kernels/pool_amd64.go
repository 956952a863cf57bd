//go:build amd64 && !purego

package kernels

import "unsafe"

// iota16 is 0, 1, …, 15: the lanes of maxPool512's (and, its first eight,
// maxPoolAVX2's) indices.
var iota16 = [16]int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// maxPoolPixel32 writes one output pixel's c channels of max pooling over
// the input pixels at element offsets offs (at least one).
func maxPoolPixel32(x []float32, offs []int, c int, y []float32, arg []int32) {
	use.vk.maxPool(unsafe.Pointer(&x[0]), unsafe.Pointer(&offs[0]), len(offs), c, unsafe.Pointer(&y[0]), unsafe.Pointer(&arg[0]), unsafe.Pointer(&iota16[0]))
}

// maxPool512 (pool_amd64.s, AVX-512) writes, for j < c (a multiple of
// 16), y[j] = the maximum over the taps t < ntaps of x[offs[t]+j] and
// arg[j] = offs[t]+j of the first maximum, a NaN counting as greater than
// any number (the first NaN wins, as in maxPoolPixelRef); iota points at
// iota16.
//
//go:noescape
func maxPool512(x, offs unsafe.Pointer, ntaps, c int, y, arg, iota unsafe.Pointer)

// maxPoolAVX2 is maxPool512 for c a multiple of 8.
//
//go:noescape
func maxPoolAVX2(x, offs unsafe.Pointer, ntaps, c int, y, arg, iota unsafe.Pointer)

// maxU8AVX2 (pool_amd64.s) sets dst[i] = max(dst[i], src[i]) for i < n, a
// multiple of 32.
//
//go:noescape
func maxU8AVX2(dst, src unsafe.Pointer, n int)

// maxU8 sets dst[i] = max(dst[i], src[i]) (len(src) ≥ len(dst)).
func maxU8(dst, src []uint8) {
	n := 0
	if active >= AVX2 {
		n = len(dst) &^ 31
		if n > 0 {
			_ = src[n-1]
			maxU8AVX2(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), n)
		}
	}
	for i := n; i < len(dst); i++ {
		dst[i] = max(dst[i], src[i])
	}
}
