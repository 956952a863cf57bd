//go:build amd64 && !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasVNNI is whether the CPU runs the AVX-512 VNNI int8 kernels, and the
// tile epilogue's byte-masked stores on 128-bit registers (AVX512BW and VL:
// every CPU with VNNI has both, but the epilogue needs them).
var hasVNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL

var (
	int8AVX2Kernels   = int8AVX2[:]
	int8VNNIKernels   = int8VNNI[:]
	int8DirectKernels = int8Direct[:]
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

// quantizeU8AVX2 is QuantizeU8's loop, 8 elements at a time
// (int8_epilogue_amd64.s); n is a multiple of 8.
//
//go:noescape
func quantizeU8AVX2(x, dst unsafe.Pointer, n int, scale float32, zero int32)

// quantizeU8Vec quantizes the first multiple of 8 of x into dst with
// quantizeU8AVX2 and returns how many it did (none below the AVX2 level).
func quantizeU8Vec(x []float32, scale float32, zero int32, dst []uint8) int {
	n := len(x) &^ 7
	if n == 0 || active < AVX2 {
		return 0
	}
	_ = dst[n-1]
	quantizeU8AVX2(unsafe.Pointer(&x[0]), unsafe.Pointer(&dst[0]), n, scale, zero)
	return n
}

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

// requantizeTile512 and requantizeTileRes512 are the direct VNNI path's
// u8 epilogue over a whole tile (int8_epilogue_amd64.s): rows rows of 32
// int32 sums, the channels in mask, to rows outStride bytes apart; lo ≥ 0.
//
//go:noescape
func requantizeTile512(acc, bias, mult, out unsafe.Pointer, rows, outStride int, mask uint32, zero, lo int32)

//go:noescape
func requantizeTileRes512(acc, bias, mult, out unsafe.Pointer, rows, outStride int, mask uint32, zero, lo int32, res unsafe.Pointer, resZero int32, resMult float32)

// storeTile writes rows m0…m0+rows−1, channels n0…n0+nc−1 (nc ≤ 32) of a
// u8 output from tile ([rows][32] sums) through the epilogue, in one
// AVX-512 call.
func (ep *Int8Epilogue) storeTile(tile []int32, m0, rows, nch, n0, nc int, y []uint8) {
	mask := uint32(1)<<nc - 1
	if nc == 32 {
		mask = ^uint32(0)
	}
	lo := int32(0)
	if ep.ReLU {
		lo = max(ep.Zero, 0)
	}
	at := m0*nch + n0
	_ = y[at+(rows-1)*nch+nc-1]
	if ep.Res == nil {
		requantizeTile512(unsafe.Pointer(&tile[0]), unsafe.Pointer(&ep.Bias[n0]), unsafe.Pointer(&ep.Mult[n0]), unsafe.Pointer(&y[at]), rows, nch, mask, ep.Zero, lo)
		return
	}
	_ = ep.Res[at+(rows-1)*nch+nc-1]
	requantizeTileRes512(unsafe.Pointer(&tile[0]), unsafe.Pointer(&ep.Bias[n0]), unsafe.Pointer(&ep.Mult[n0]), unsafe.Pointer(&y[at]), rows, nch, mask, ep.Zero, lo, unsafe.Pointer(&ep.Res[at]), ep.ResZero, ep.ResMult)
}
