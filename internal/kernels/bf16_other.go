//go:build !amd64 || purego

package kernels

import "unsafe"

// hasBF16 is false: no VDPBF16PS kernels on this platform.
const hasBF16 = false

// bf16Kernels are the Go models of the micro-kernels (bf16native.go),
// which the native path never reaches here (hasBF16 is false).
var bf16Kernels = bf16KernelsGo(12)

// PeakBF16 reports no VDPBF16PS loop on this platform.
func PeakBF16(n int) float64 { return 0 }

// roundBF16Fast rounds nothing: no assembly here.
func roundBF16Fast(dst, src []float32) int { return 0 }

// toBF16Fast converts nothing: no assembly here.
func toBF16Fast(dst []uint16, src []float32) int { return 0 }

// bf16DirectKernels are the Go models of the direct kernels
// (bf16direct.go), which the native path never reaches here.
var bf16DirectKernels = bf16DirectKernelsGo()

// epilogueTile applies ep to rows m0… of the tile row by row (the direct
// path runs here only on the tests' Go models).
func (ep *convEpilogue) epilogueTile(tile []float32, at, rows, ys, n0, nc int, y []float32) {
	epilogueTileGo(ep, tile, at, rows, ys, n0, nc, y)
}

// convertBF16: no VCVTNE2PS2BF16 here.
const convertBF16 = false

// reluAffineFast: no assembly conversions here.
func reluAffineFast(c int) bool { return false }

func toBF16ReLUAffineFast(dst []uint16, src []float32, in *ReLUAffine, c int) bool { return false }

func pairReLUAffineFast(d []uint32, a, b []float32, in *ReLUAffine, c int) bool { return false }

// pairBF16 writes dst[i] = bf16Pair(a[i], b[i]) for i < len(dst).
func pairBF16(dst []uint32, a, b []float32) {
	for i := range dst {
		dst[i] = bf16Pair(a[i], b[i])
	}
}

// bf16DWSet holds the Go models of the native weight-gradient tiles.
var bf16DWSet = bf16DWSetGo()

// hasAMXBF16 is false: no AMX on this platform.
const hasAMXBF16 = false

// amxBF16OK: no AMX here (see bf16_amx_amd64.go).
func amxBF16OK(s ConvShape) bool { return false }

// amxChannels: the layout's channels off AMX (see bf16_amx_amd64.go).
func amxChannels(s ConvShape) int { return (s.C + 1) &^ 1 }

// convDirectAMXBF16 is never reached here (amxBF16OK is false).
func convDirectAMXBF16(s ConvShape, wp []uint32, y []float32, ep *convEpilogue, pl outPlace, stage func([]uint16, int, int), cp, nb, blockPairs int) {
	panic("kernels: no AMX on this platform")
}

// PeakAMXBF16: no AMX here (see amx_amd64.go).
func PeakAMXBF16(n int) float64 { return 0 }

// convBackwardWeightAMXBF16: no AMX here (see bf16_amx_amd64.go).
func convBackwardWeightAMXBF16(s ConvShape, xIn, dyIn bf16Input, dw []float32) bool {
	return false
}

// amxGradOK: no AMX here (see bf16_amx_amd64.go).
func amxGradOK(s ConvShape) bool { return false }

// convUnfoldedAMXBF16 is never reached here (AMXBF16 is false).
func convUnfoldedAMXBF16(s, u ConvShape, x []float32, in *ReLUAffine, wp []uint32, y []float32, ep *convEpilogue) {
	panic("kernels: no AMX on this platform")
}

// transpose16x16 is never reached here (its callers need AVX-512).
func transpose16x16(dst unsafe.Pointer, dstStride int, src unsafe.Pointer, srcStride int, mask uint16) {
	panic("kernels: no AVX-512 on this platform")
}

// spreadRuns is never reached here (it runs where hasAMXBF16 holds).
func spreadRuns(dst unsafe.Pointer, dstStride int, src unsafe.Pointer, srcStride, n, length, pad int) {
	panic("kernels: no AVX512BW on this platform")
}
