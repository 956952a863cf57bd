//go:build amd64 && !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasBF16 is whether the CPU runs AVX512-BF16's VDPBF16PS (with the
// AVX-512 foundation the kernels' other instructions need).
var hasBF16 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BF16

// bf16Kernels are the VDPBF16PS micro-kernels, by rows (gen/bf16.go).
var bf16Kernels = bf16KernelsAVX512[:]

// PeakBF16 runs n iterations of independent, register-only VDPBF16PS on
// the calling goroutine and returns the FLOP performed (a multiply and an
// add per bfloat16 product); 0 where the CPU lacks AVX512-BF16.
func PeakBF16(n int) float64 {
	if !hasBF16 {
		return 0
	}
	peakBF16(n)
	return float64(n) * peakBF16FLOPPerIter
}

// roundBF16AVX2 writes n (a multiple of 8) float32 of src rounded to
// bfloat16 to dst: RoundBF16, eight lanes at a time (bf16_amd64.s).
//
//go:noescape
func roundBF16AVX2(dst, src unsafe.Pointer, n int)

// roundBF16Fast rounds the longest multiple-of-8 prefix of src into dst
// with roundBF16AVX2 where the level has AVX2, and returns its length.
func roundBF16Fast(dst, src []float32) int {
	n := len(src) &^ 7
	if use.k == nil || n == 0 {
		return 0
	}
	roundBF16AVX2(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), n)
	return n
}
