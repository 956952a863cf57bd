//go:build !amd64 || purego

package kernels

// No int8 assembly on this platform: ActiveInt8 is the reference.
var (
	hasVNNI, hasAMX                  = false, false
	int8AVX2Kernels, int8VNNIKernels []int8Kernel
	int8DirectKernels                []int8DirectKernel
)

func peakInt8(n int, vnni bool) float64 { return 0 }

// quantizeU8Vec: no vector loop here (see int8_amd64.go).
func quantizeU8Vec(x []float32, scale float32, zero int32, dst []uint8) int { return 0 }

// requantizeVec: no vector loops here (see int8_amd64.go).
func requantizeVec(acc, bias []int32, mult []float32, out, res []uint8, zero, lo, resZero int32, resMult float32) int {
	return 0
}

// storeTile is int8_amd64.go's tile epilogue, row by row (the direct path
// that calls it does not run here).
func (ep *Int8Epilogue) storeTile(tile []int32, m0, rows, nch, n0, nc int, y []uint8) {
	for r := range rows {
		ep.store(m0+r, nch, n0, tile[r*32:r*32+nc], y, nil)
	}
}

// int8ConvAMX: no AMX here (see int8_amx_amd64.go).
func int8ConvAMX(s ConvShape, src []uint8, packed []int8, e *Int8Epilogue, y []uint8, yf []float32) bool {
	return false
}

// amxConvOK: no AMX here (see int8_amx_amd64.go).
func amxConvOK(s ConvShape, yf []float32) bool { return false }

// amxRowsOK: no AMX here (see int8_amx_amd64.go).
func amxRowsOK(s ConvShape, yf []float32) bool { return false }

func int8ConvAMXRows(s ConvShape, x []uint8, zx uint8, packed []int8, e *Int8Epilogue, y []uint8) {
	panic("kernels: no AMX on this platform")
}

func int8ConvAMXStaged(s ConvShape, x []uint8, zx uint8, packed []int8, e *Int8Epilogue, y []uint8) {
	panic("kernels: no AMX on this platform")
}

// PeakAMX: no AMX here (see amx_amd64.go).
func PeakAMX(n int) float64 { return 0 }
