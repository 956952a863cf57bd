//go:build amd64 && !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

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

// requantizeAVX2 and requantizeResAVX2 are Int8Epilogue.store's u8 loops
// without and with a residual, 8 channels at a time
// (int8_epilogue_amd64.s); n is a multiple of 8.
//
//go:noescape
func requantizeAVX2(acc, bias, mult, out unsafe.Pointer, n int, zero, lo int32)

//go:noescape
func requantizeResAVX2(acc, bias, mult, out, res unsafe.Pointer, n int, zero, lo, resZero int32, resMult float32)

// requantizeVec runs the vector loops over the first multiple of 8 of acc
// and returns how many it did (none below the AVX2 level).
func requantizeVec(acc, bias []int32, mult []float32, out, res []uint8, zero, lo, resZero int32, resMult float32) int {
	n := len(acc) &^ 7
	if n == 0 || active < AVX2 {
		return 0
	}
	if res == nil {
		requantizeAVX2(unsafe.Pointer(&acc[0]), unsafe.Pointer(&bias[0]), unsafe.Pointer(&mult[0]), unsafe.Pointer(&out[0]), n, zero, lo)
	} else {
		requantizeResAVX2(unsafe.Pointer(&acc[0]), unsafe.Pointer(&bias[0]), unsafe.Pointer(&mult[0]), unsafe.Pointer(&out[0]), unsafe.Pointer(&res[0]), n, zero, lo, resZero, resMult)
	}
	return n
}
