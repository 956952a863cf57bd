//go:build !amd64 || purego

package kernels

// No int8 assembly on this platform: ActiveInt8 is the reference.
var (
	hasVNNI                          = false
	int8AVX2Kernels, int8VNNIKernels []int8Kernel
)

func peakInt8(n int, vnni bool) float64 { return 0 }

// requantizeVec: no vector loops here (see int8_amd64.go).
func requantizeVec(acc, bias []int32, mult []float32, out, res []uint8, zero, lo, resZero int32, resMult float32) int {
	return 0
}
