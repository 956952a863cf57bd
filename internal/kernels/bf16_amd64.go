//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

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
