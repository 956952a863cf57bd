//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// hasVNNI is whether the CPU runs the AVX-512 VNNI int8 kernels.
var hasVNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI

var (
	int8AVX2Kernels = int8AVX2[:]
	int8VNNIKernels = int8VNNI[:]
)

func peakInt8(n int, vnni bool) float64 {
	if vnni {
		peakInt8VNNI(n)
		return float64(n) * peakInt8VNNIOpsPerIter
	}
	peakInt8AVX2(n)
	return float64(n) * peakInt8AVX2OpsPerIter
}
