//go:build amd64 && !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasBF16 is whether the CPU runs AVX512-BF16's VDPBF16PS (with the
// AVX-512 foundation the kernels' other instructions need).
var hasBF16 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BF16

// bf16Kernels are the VDPBF16PS micro-kernels, by rows (gen/bf16.go, up to 12 rows).
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

// toBF16AVX2 writes n (a multiple of 16) float32 of src converted to
// bfloat16 (BF16FromFloat32) to dst (bf16_amd64.s).
//
//go:noescape
func toBF16AVX2(dst, src unsafe.Pointer, n int)

// toBF16AVX512 is toBF16AVX2 for n a multiple of 32, on AVX-512.
//
//go:noescape
func toBF16AVX512(dst, src unsafe.Pointer, n int)

// toBF16NE and pairBF16NE are toBF16AVX512 and pairBF16AVX512 on
// AVX512-BF16's conversion instruction (bf16_amd64.s; same results bit
// for bit), for CPUs with convertBF16.
//
//go:noescape
func toBF16NE(dst, src unsafe.Pointer, n int)

//go:noescape
func pairBF16NE(dst, a, b unsafe.Pointer, n int)

// convertBF16 is whether the AVX-512 conversions run on VCVTNE2PS2BF16
// (where the CPU has it, with AVX512BW's VPERMW for the pairs and
// AVX512DQ's VFPCLASSPS for the subnormal check) instead of rounding in
// integer arithmetic: a quarter to a third of the instructions.
// TestConvertBF16Paths runs both kinds on the same inputs.
var convertBF16 = hasBF16 && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ

// toBF16ReLUAffineNE and pairBF16ReLUAffineNE are toBF16NE and
// pairBF16NE of a ReLUAffine's output for the float32 read (n and c, the
// map's channels, multiples of 16; a nil b pairs with zeros).
//
//go:noescape
func toBF16ReLUAffineNE(dst, src, scale, shift unsafe.Pointer, n, c int)

//go:noescape
func pairBF16ReLUAffineNE(dst, a, b, scale, shift unsafe.Pointer, n, c int)

// pairWordsAVX512 pairs n (a multiple of 16) bfloat16 values of a and b
// (nil: zeros) as pairBF16 pairs float32 ones (bf16_amd64.s).
//
//go:noescape
func pairWordsAVX512(dst, a, b unsafe.Pointer, n int)

// pairWords writes dst[i] = a[i] | b[i]<<16 (b nil: zeros) for i <
// len(dst): image pairs of values already in bfloat16.
func pairWords(dst []uint32, a, b []uint16) {
	n := 0
	if use.avx512 {
		n = len(dst) &^ 15
		if n > 0 {
			_ = a[n-1]
			bp := unsafe.Pointer(nil)
			if b != nil {
				_ = b[n-1]
				bp = unsafe.Pointer(&b[0])
			}
			pairWordsAVX512(unsafe.Pointer(&dst[0]), unsafe.Pointer(&a[0]), bp, n)
		}
	}
	for i := n; i < len(dst); i++ {
		hi := uint32(0)
		if b != nil {
			hi = uint32(b[i])
		}
		dst[i] = uint32(a[i]) | hi<<16
	}
}

// reluAffineFast reports whether a ReLUAffine of c channels converts on
// toBF16ReLUAffineNE and pairBF16ReLUAffineNE.
func reluAffineFast(c int) bool { return convertBF16 && use.avx512 && c > 0 && c%16 == 0 }

// toBF16ReLUAffineFast converts in's output for src with
// toBF16ReLUAffineNE where it runs, reporting whether it did.
func toBF16ReLUAffineFast(dst []uint16, src []float32, in *ReLUAffine, c int) bool {
	if !reluAffineFast(c) || len(src) == 0 || len(src)%16 != 0 {
		return false
	}
	_ = dst[len(src)-1]
	toBF16ReLUAffineNE(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), unsafe.Pointer(&in.Scale[0]), unsafe.Pointer(&in.Shift[0]), len(src), c)
	return true
}

// pairReLUAffineFast pairs in's outputs for a and b (nil: zeros) with
// pairBF16ReLUAffineNE where it runs, reporting whether it did.
func pairReLUAffineFast(d []uint32, a, b []float32, in *ReLUAffine, c int) bool {
	if !reluAffineFast(c) || len(d) == 0 || len(d)%16 != 0 {
		return false
	}
	_ = a[len(d)-1]
	bp := unsafe.Pointer(nil)
	if b != nil {
		_ = b[len(d)-1]
		bp = unsafe.Pointer(&b[0])
	}
	pairBF16ReLUAffineNE(unsafe.Pointer(&d[0]), unsafe.Pointer(&a[0]), bp, unsafe.Pointer(&in.Scale[0]), unsafe.Pointer(&in.Shift[0]), len(d), c)
	return true
}

// toBF16Fast converts the longest multiple-of-16 prefix of src into dst
// with toBF16AVX2 where the level has AVX2 (its multiple-of-32 prefix
// with toBF16AVX512 at AVX-512), and returns its length.
func toBF16Fast(dst []uint16, src []float32) int {
	n := len(src) &^ 15
	if use.k == nil || n == 0 {
		return 0
	}
	_ = dst[n-1]
	done := 0
	if use.avx512 {
		done = n &^ 31
		switch {
		case done > 0 && convertBF16:
			toBF16NE(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), done)
		case done > 0:
			toBF16AVX512(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), done)
		}
	}
	if done < n {
		toBF16AVX2(unsafe.Pointer(&dst[done]), unsafe.Pointer(&src[done]), n-done)
	}
	return n
}

// pairBF16AVX2 writes n (a multiple of 8) pairs dst[i] =
// BF16FromFloat32(a[i]) | BF16FromFloat32(b[i])<<16 (bf16_amd64.s).
//
//go:noescape
func pairBF16AVX2(dst, a, b unsafe.Pointer, n int)

// pairBF16AVX512 is pairBF16AVX2 for n a multiple of 16, on AVX-512.
//
//go:noescape
func pairBF16AVX512(dst, a, b unsafe.Pointer, n int)

// pairBF16 writes dst[i] = bf16Pair(a[i], b[i]) for i < len(dst), eight
// at a time where the level has AVX2, sixteen at AVX-512.
func pairBF16(dst []uint32, a, b []float32) {
	n := 0
	if use.k != nil {
		n = len(dst) &^ 7
		done := 0
		if n > 0 {
			_, _ = a[n-1], b[n-1]
			if use.avx512 {
				done = n &^ 15
				switch {
				case done > 0 && convertBF16:
					pairBF16NE(unsafe.Pointer(&dst[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0]), done)
				case done > 0:
					pairBF16AVX512(unsafe.Pointer(&dst[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0]), done)
				}
			}
		}
		if done < n {
			pairBF16AVX2(unsafe.Pointer(&dst[done]), unsafe.Pointer(&a[done]), unsafe.Pointer(&b[done]), n-done)
		}
	}
	for i := n; i < len(dst); i++ {
		dst[i] = bf16Pair(a[i], b[i])
	}
}

// bf16DWSet holds the native weight-gradient tiles (gen/conv.go's dwBF16
// family) in the float32 tiles' places, for convBackwardWeightTiles.
var bf16DWSet = (&kernelSet{vec: 16, dw: [2][]dwKernel{dwBF16AVX512_16[:], dwBF16AVX512_32[:]}}).init()

// bf16DirectKernels are the direct convolution kernels (gen/direct.go),
// and AMX tiles where the CPU has them.
var bf16DirectKernels = bf16DirectSet{w32: bf16Direct[:], w16: bf16Direct16[:], amx: true}

// epilogueTile512 applies the direct path's float32 epilogue to a tile
// (bf16_amd64.s): rows rows of 32 sums to y rows ystride bytes apart,
// channels by mask: max(floor, sum·scale + shift [+ skip]), skip (nil:
// none) laid out as y. With stream, a mask of all 32 channels or the first
// 16 and no skip, the rows are stored with streaming stores (y and
// ystride multiples of 64 bytes).
//
//go:noescape
func epilogueTile512(tile, y unsafe.Pointer, rows, ystride int, scale, shift, skip unsafe.Pointer, mask uint32, floor float32, stream bool)

// epilogueTile applies ep to the tile's rows, stored at y[at + r·ys]
// (channels n0…n0+nc−1), in one AVX-512 call.
func (ep *convEpilogue) epilogueTile(tile []float32, at, rows, ys, n0, nc int, y []float32) {
	mask := uint32(1)<<nc - 1
	if nc == 32 {
		mask = ^uint32(0)
	}
	_ = y[at+(rows-1)*ys+nc-1]
	var skip unsafe.Pointer
	if ep.skip != nil {
		_ = ep.skip[at+(rows-1)*ys+nc-1]
		skip = unsafe.Pointer(&ep.skip[at])
	}
	p := unsafe.Pointer(&y[at])
	stream := ep.stream && (uintptr(p)|uintptr(4*ys))%64 == 0 // VMOVNTPS's alignment
	epilogueTile512(unsafe.Pointer(&tile[0]), p, rows, 4*ys, unsafe.Pointer(&ep.scale[n0]), unsafe.Pointer(&ep.shift[n0]), skip, mask, ep.floor, stream)
}

// transpose16x16 writes the transpose of the 16×16 block of 32-bit values
// at src (rows srcStride bytes apart) to dst (rows dstStride bytes apart),
// the columns of each output row that mask selects (bf16_amd64.s; AVX-512).
//
//go:noescape
func transpose16x16(dst unsafe.Pointer, dstStride int, src unsafe.Pointer, srcStride int, mask uint16)

// copyRuns copies n runs of up to 128 bytes from src (runs srcStride bytes
// apart) to dst (dstStride apart): the bytes the load masks select (the
// others read as zeros), stored where the store masks select
// (bf16_amd64.s; AVX512BW).
//
//go:noescape
func copyRuns(dst unsafe.Pointer, dstStride int, src unsafe.Pointer, srcStride int, n int, load0, load1, store0, store1 uint64)

// byteMasks returns the masks of copyRuns for the first k of 128 bytes.
func byteMasks(k int) (lo, hi uint64) {
	bits := func(n int) uint64 {
		if n >= 64 {
			return ^uint64(0)
		}
		return uint64(1)<<max(n, 0) - 1
	}
	return bits(k), bits(k - 64)
}

// spreadRuns copies n runs of length bytes (at most 128) from src (srcStride
// bytes apart) to dst (dstStride apart), each followed by zeros up to pad
// bytes (length ≤ pad ≤ 128).
func spreadRuns(dst unsafe.Pointer, dstStride int, src unsafe.Pointer, srcStride, n, length, pad int) {
	l0, l1 := byteMasks(length)
	s0, s1 := byteMasks(pad)
	copyRuns(dst, dstStride, src, srcStride, n, l0, l1, s0, s1)
}
