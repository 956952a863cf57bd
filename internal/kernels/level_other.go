//go:build !amd64 || purego

package kernels

import "unsafe"

// detect reports that only the reference kernels exist on this platform.
func detect() Level { return Generic }

var avx512Set, avx2Set *kernelSet

// Peak reports no assembly FMA loop on this platform.
func Peak(n int) float64 { return 0 }

func chanOK(c int) bool { return false }

type vecKernels struct{}

func vecKernelsFor(l Level) *vecKernels { return nil }

func chanSums32(x, dy, y, dz []float32, m, c int, mean []float32) []float64 {
	panic("no AVX-512")
}
func chanAffine32(x, skip []float32, m, c int, scale, shift, y []float32, r, stream bool) {
	panic("no AVX-512")
}
func chanAffineTo(x, skip []float32, m, c int, scale, shift, y []float32, yb []uint16, r, stream bool) {
	panic("no AVX-512")
}
func chanAffine2_32(x, dy, y []float32, m, c int, a, k, b, dx []float32) { panic("no AVX-512") }
func maskKernelsOK() bool                                                { return false }
func toBF16DXOK(c int) bool                                              { return false }
func chanAffine2ToBF16(x, dy, y []float32, m, c int, a, k, b []float32, ma *ReLUAffine, dxb []uint16) {
	panic("no AVX-512")
}
func chanSumsMasked32(x, dy, dz []float32, m, c int, mean []float32, ma *ReLUAffine) []float64 {
	panic("no AVX-512")
}
func chanAffine2Masked32(x, dy []float32, m, c int, a, k, b []float32, ma *ReLUAffine, dx []float32) {
	panic("no AVX-512")
}
func relu32(x, y []float32) bool          { return false }
func reluGrad32(y, dy, dx []float32) bool { return false }
func add32(a, b, y []float32) bool        { return false }

func sgd32(w, g, buf []float32, coef *[4]float32) bool { return false }
func maxPoolPixel32(x []float32, offs []int, c int, y []float32, arg []int32) {
	panic("no AVX-512")
}

func winoConv(s ConvShape, src weightSource, ep *convEpilogue, x, y []float32, pre *winoPacked) bool {
	return false
}

type winoPacked struct{}

func packWino(s ConvShape, w []float32) *winoPacked        { return nil }
func winoWeightGrad(s ConvShape, x, dy, dw []float32) bool { return false }

// maxU8 sets dst[i] = max(dst[i], src[i]) (len(src) ≥ len(dst)).
func maxU8(dst, src []uint8) {
	for i := range dst {
		dst[i] = max(dst[i], src[i])
	}
}

// prefetchLines does nothing where there are no assembly kernels (the
// weight-gradient tiles that it serves are theirs).
func prefetchLines(p unsafe.Pointer, n int) {}

func copyRows(dst, src unsafe.Pointer, rows, vecs, dstStride, srcStride int) { panic("no AVX-512") }
