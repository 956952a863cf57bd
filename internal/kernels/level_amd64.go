//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// detect returns the best level the CPU and operating system support.
func detect() Level {
	switch {
	case cpu.X86.HasAVX512F:
		return AVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return AVX2
	}
	return Generic
}

var (
	avx512Set = (&kernelSet{vec: 16, conv: [2][]convKernel{convAVX512_16[:], convAVX512_32[:]},
		row3: [2][]convKernel{convRow3AVX512_16[:], convRow3AVX512_32[:]}, dw: [2][]dwKernel{dwAVX512_16[:], dwAVX512_32[:]}}).init()
	avx2Set = (&kernelSet{vec: 8, conv: [2][]convKernel{convAVX2_8[:], convAVX2_16[:]}, dw: [2][]dwKernel{dwAVX2_8[:], dwAVX2_16[:]}}).init()
)

// Peak runs n iterations of independent, register-only FMAs at the active
// level on the calling goroutine and returns the FLOP performed (0 at the
// generic level): the ceiling every kernel is measured against.
func Peak(n int) float64 {
	switch active {
	case AVX512:
		peakAVX512(n)
		return float64(n) * peakAVX512FLOPPerIter
	case AVX2:
		peakAVX2(n)
		return float64(n) * peakAVX2FLOPPerIter
	}
	return 0
}
