//go:build amd64 && !purego

package kernels

import "unsafe"

// chanOK reports whether the active level's per-channel kernels (batch
// norm's, max pooling's) handle c channels: a whole number of vectors (16
// floats for AVX-512, 8 for AVX2).
func chanOK(c int) bool { return use.vk != nil && c > 0 && c%use.vk.vec == 0 }

// vecKernels are one level's vector kernels outside the convolutions:
// batch norm's per-channel passes, the element-wise kernels and max
// pooling's pixel (their loops are described at the AVX-512 declarations;
// the AVX2 ones compute the same on 8-float vectors).
type vecKernels struct {
	vec                        int // floats per vector: c (or n) must be a multiple
	shiftStats, shiftStatsRows func(x unsafe.Pointer, rows, c int, shift, acc unsafe.Pointer)
	dyStats, dyStatsRows       func(x, dy, y, dz unsafe.Pointer, rows, c int, mean, acc unsafe.Pointer)
	affine                     func(x, skip unsafe.Pointer, rows, c int, scale, shift, y unsafe.Pointer, relu, stream int)
	affine2                    func(x, dy, y unsafe.Pointer, rows, c int, a, k, b, dx unsafe.Pointer)
	relu                       func(x, y unsafe.Pointer, n int)
	reluGrad, add              func(a, b, y unsafe.Pointer, n int)
	sgd                        func(w, grad, buf unsafe.Pointer, n int, coef unsafe.Pointer)
	maxPool                    func(x, offs unsafe.Pointer, ntaps, c int, y, arg, iota unsafe.Pointer)
}

var (
	vecAVX512 = &vecKernels{vec: 16, shiftStats: chanShiftStats512, shiftStatsRows: chanShiftStatsRows512, dyStats: chanDyStats512Whole, dyStatsRows: chanDyStatsRows512, affine: chanAffine512, affine2: chanAffine2512,
		relu: relu512, reluGrad: reluGrad512, add: add512, sgd: sgd512, maxPool: maxPool512}
	vecAVX2 = &vecKernels{vec: 8, shiftStats: chanShiftStatsAVX2, shiftStatsRows: chanShiftStatsRowsAVX2, dyStats: chanDyStatsAVX2, dyStatsRows: chanDyStatsRowsAVX2, affine: chanAffineAVX2, affine2: chanAffine2AVX2,
		relu: reluAVX2, reluGrad: reluGradAVX2, add: addAVX2, sgd: sgdAVX2, maxPool: maxPoolAVX2}
)

// vecKernelsFor returns level l's vector kernels (nil at the generic
// level).
func vecKernelsFor(l Level) *vecKernels {
	switch l {
	case AVX512:
		return vecAVX512
	case AVX2:
		return vecAVX2
	}
	return nil
}

// statRows is the number of rows one per-channel kernel call sums in
// float32 before the partial sums are combined in float64.
const statRows = 256

// chanSums32 returns per-channel, with dy, Σ g and Σ g·(x − mean); g is
// dy where y ≠ 0 and 0 elsewhere (dy itself when y is nil: a ReLU's mask),
// and it is stored in dz unless dz is nil. Without dy (the forward pass's
// statistics) it returns, with mean the shift K, Σ (x − K)² and Σ (x − K).
// Either way k = 2c sums, in one pass over the rows.
func chanSums32(x, dy, y, dz []float32, m, c int, mean []float32) []float64 {
	k := 2 * c
	bn := use.vk
	return parallelSums((m+statRows-1)/statRows, k, func(lo, hi int, acc []float64) {
		part := getBuf(k) // the float32 partial sums
		defer putBuf(part)
		for ch := lo; ch < hi; ch++ {
			r0, r1 := ch*statRows, min((ch+1)*statRows, m)
			clear(part)
			xp := unsafe.Pointer(&x[r0*c])
			// Narrow rows: each channel vector walks down the rows with its
			// sums in registers. Wide rows: each row is walked left to
			// right with the sums in part (in L1), since a walk down rows of
			// kilobytes would put every line in one cache set.
			wide := c >= wideRow
			switch {
			case dy != nil:
				yp, dzp := unsafe.Pointer(&dy[r0*c]), unsafe.Pointer(nil)
				if y != nil {
					yp = unsafe.Pointer(&y[r0*c])
				}
				if dz != nil {
					dzp = unsafe.Pointer(&dz[r0*c])
				}
				if wide {
					bn.dyStatsRows(xp, unsafe.Pointer(&dy[r0*c]), yp, dzp, r1-r0, c, unsafe.Pointer(&mean[0]), unsafe.Pointer(&part[0]))
				} else {
					bn.dyStats(xp, unsafe.Pointer(&dy[r0*c]), yp, dzp, r1-r0, c, unsafe.Pointer(&mean[0]), unsafe.Pointer(&part[0]))
				}
			case wide:
				bn.shiftStatsRows(xp, r1-r0, c, unsafe.Pointer(&mean[0]), unsafe.Pointer(&part[0]))
			default:
				bn.shiftStats(xp, r1-r0, c, unsafe.Pointer(&mean[0]), unsafe.Pointer(&part[0]))
			}
			for i, v := range part {
				acc[i] += float64(v)
			}
		}
	})
}

// maskKernelsOK reports whether the level has the per-channel kernels of
// a batch norm whose mask comes from x (Fused.Mask): AVX-512's.
func maskKernelsOK() bool { return use.vk == vecAVX512 }

// chanSumsMasked32 is chanSums32 with dy for a batch norm whose mask comes
// from x through ma (Fused.Mask), on AVX-512 (maskKernelsOK).
func chanSumsMasked32(x, dy, dz []float32, m, c int, mean []float32, ma *ReLUAffine) []float64 {
	k := 2 * c
	return parallelSums((m+statRows-1)/statRows, k, func(lo, hi int, acc []float64) {
		part := getBuf(k) // the float32 partial sums
		defer putBuf(part)
		for ch := lo; ch < hi; ch++ {
			r0, r1 := ch*statRows, min((ch+1)*statRows, m)
			clear(part)
			dzp := unsafe.Pointer(nil)
			if dz != nil {
				dzp = unsafe.Pointer(&dz[r0*c])
			}
			if c >= wideRow { // as chanSums32 walks them
				chanDyStatsRowsMask512(unsafe.Pointer(&x[r0*c]), unsafe.Pointer(&dy[r0*c]), dzp, r1-r0, c, unsafe.Pointer(&mean[0]),
					unsafe.Pointer(&ma.Scale[0]), unsafe.Pointer(&ma.Shift[0]), unsafe.Pointer(&part[0]))
			} else {
				chanDyStatsMask512(unsafe.Pointer(&x[r0*c]), unsafe.Pointer(&dy[r0*c]), dzp, r1-r0, c, c, unsafe.Pointer(&mean[0]),
					unsafe.Pointer(&ma.Scale[0]), unsafe.Pointer(&ma.Shift[0]), unsafe.Pointer(&part[0]))
			}
			for i, v := range part {
				acc[i] += float64(v)
			}
		}
	})
}

// chanAffine2Masked32 is chanAffine2_32 for a batch norm whose mask comes
// from x through ma, on AVX-512 (maskKernelsOK).
func chanAffine2Masked32(x, dy []float32, m, c int, a, k, b []float32, ma *ReLUAffine, dx []float32) {
	parallelFor((m+statRows-1)/statRows, func(lo, hi int) {
		r0, r1 := lo*statRows, min(hi*statRows, m)
		chanAffine2Mask512(unsafe.Pointer(&x[r0*c]), unsafe.Pointer(&dy[r0*c]), r1-r0, c,
			unsafe.Pointer(&a[0]), unsafe.Pointer(&k[0]), unsafe.Pointer(&b[0]),
			unsafe.Pointer(&ma.Scale[0]), unsafe.Pointer(&ma.Shift[0]), unsafe.Pointer(&dx[r0*c]))
	})
}

// toBF16DXOK reports whether the batch norm's backward pass stores dx as
// bfloat16 on its own kernels (BatchNormTrainBackwardToBF16): AVX-512's,
// with AVX512-BF16's conversion.
func toBF16DXOK(c int) bool { return use.vk == vecAVX512 && chanOK(c) && convertBF16 }

// chanAffine2ToBF16 is chanAffine2_32 (ma nil) or chanAffine2Masked32
// storing dx as bfloat16 in dxb (toBF16DXOK).
func chanAffine2ToBF16(x, dy, y []float32, m, c int, a, k, b []float32, ma *ReLUAffine, dxb []uint16) {
	if y == nil {
		y = dy
	}
	_ = dxb[m*c-1]
	parallelFor((m+statRows-1)/statRows, func(lo, hi int) {
		r0, r1 := lo*statRows, min(hi*statRows, m)
		if ma != nil {
			chanAffine2MaskToBF16512(unsafe.Pointer(&x[r0*c]), unsafe.Pointer(&dy[r0*c]), r1-r0, c,
				unsafe.Pointer(&a[0]), unsafe.Pointer(&k[0]), unsafe.Pointer(&b[0]),
				unsafe.Pointer(&ma.Scale[0]), unsafe.Pointer(&ma.Shift[0]), unsafe.Pointer(&dxb[r0*c]))
			return
		}
		chanAffine2ToBF16512(unsafe.Pointer(&x[r0*c]), unsafe.Pointer(&dy[r0*c]), unsafe.Pointer(&y[r0*c]), r1-r0, c,
			unsafe.Pointer(&a[0]), unsafe.Pointer(&k[0]), unsafe.Pointer(&b[0]), unsafe.Pointer(&dxb[r0*c]))
	})
}

// chanAffine32 writes y = x·scale + shift per channel, plus skip unless it
// is nil, then ReLU'd if relu; with stream, in streaming stores where the
// level has them (AVX-512) and y is 64-byte aligned (its rows are: c is a
// whole number of vectors).
func chanAffine32(x, skip []float32, m, c int, scale, shift, y []float32, relu, stream bool) {
	chanAffineTo(x, skip, m, c, scale, shift, y, nil, relu, stream)
}

// chanAffineTo is chanAffine32 that also stores y as bfloat16 in yb where
// yb is not nil (BatchNormForwardToBF16OK).
func chanAffineTo(x, skip []float32, m, c int, scale, shift, y []float32, yb []uint16, relu, stream bool) {
	r, st := 0, 0
	if relu {
		r = 1
	}
	if stream && m*c > 0 && uintptr(unsafe.Pointer(&y[0]))%64 == 0 {
		st = 1
	}
	if yb != nil && m*c > 0 {
		_ = yb[m*c-1]
	}
	parallelFor((m+statRows-1)/statRows, func(lo, hi int) {
		r0, r1 := lo*statRows, min(hi*statRows, m)
		sp := unsafe.Pointer(nil)
		if skip != nil {
			sp = unsafe.Pointer(&skip[r0*c])
		}
		if yb != nil {
			chanAffineToBF16512(unsafe.Pointer(&x[r0*c]), sp, r1-r0, c, unsafe.Pointer(&scale[0]), unsafe.Pointer(&shift[0]), unsafe.Pointer(&y[r0*c]), unsafe.Pointer(&yb[r0*c]), r, st)
			return
		}
		use.vk.affine(unsafe.Pointer(&x[r0*c]), sp, r1-r0, c, unsafe.Pointer(&scale[0]), unsafe.Pointer(&shift[0]), unsafe.Pointer(&y[r0*c]), r, st)
	})
}

// chanAffine2_32 writes dx = a·g − k·x + b per channel, g = dy where y ≠ 0
// and 0 elsewhere (dy itself when y is nil).
func chanAffine2_32(x, dy, y []float32, m, c int, a, k, b, dx []float32) {
	if y == nil {
		y = dy
	}
	parallelFor((m+statRows-1)/statRows, func(lo, hi int) {
		r0, r1 := lo*statRows, min(hi*statRows, m)
		use.vk.affine2(unsafe.Pointer(&x[r0*c]), unsafe.Pointer(&dy[r0*c]), unsafe.Pointer(&y[r0*c]), r1-r0, c,
			unsafe.Pointer(&a[0]), unsafe.Pointer(&k[0]), unsafe.Pointer(&b[0]), unsafe.Pointer(&dx[r0*c]))
	})
}

// The per-channel kernels of batch norm (batchnorm_amd64.s), AVX-512. x
// holds rows of c channels (c a multiple of 16); every row pointer
// advances by c floats a row. The column kernels walk each channel vector
// down the rows with its sums in registers; the Rows kernels walk each row
// left to right with the sums in acc (for wide rows, whose columns would
// land every line in one cache set).

// chanShiftStats512 adds, with d = x[r][j] − shift[j], Σ_r d² to acc[j]
// and Σ_r d to acc[c+j] (two rows per iteration into two sets of sums).
//
//go:noescape
func chanShiftStats512(x unsafe.Pointer, rows, c int, shift, acc unsafe.Pointer)

// chanDyStats512 adds, with g = dy[r][j] where y[r][j] ≠ 0 (or is NaN) and
// 0 elsewhere, Σ_r g to acc[j] and Σ_r g·(x[r][j] − mean[j]) to acc[c+j],
// and stores g at dz[r][j] unless dz is nil (dz may be dy). Pass y = dy
// for g = dy. Rows are stride floats apart in all four (c for whole rows;
// more for the first c channels of wider rows, as a convolution's data
// gradient sums a block of them as it stores it: DataGradSums).
//
//go:noescape
func chanDyStats512(x, dy, y, dz unsafe.Pointer, rows, c, stride int, mean, acc unsafe.Pointer)

// chanDyStats512Whole is chanDyStats512 on whole rows (vecKernels.dyStats).
func chanDyStats512Whole(x, dy, y, dz unsafe.Pointer, rows, c int, mean, acc unsafe.Pointer) {
	chanDyStats512(x, dy, y, dz, rows, c, c, mean, acc)
}

// chanAffine512 writes y[r][j] = x[r][j]·scale[j] + shift[j], plus
// skip[r][j] unless skip is nil, then max(·, 0) if relu ≠ 0 (NaN stays
// NaN); with stream ≠ 0, in streaming stores (y 64-byte aligned), then
// SFENCE (chanAffineToBF16512 without the copy).
func chanAffine512(x, skip unsafe.Pointer, rows, c int, scale, shift, y unsafe.Pointer, relu, stream int) {
	chanAffineToBF16512(x, skip, rows, c, scale, shift, y, nil, relu, stream)
}

// chanAffineToBF16512 is chanAffine512 that also stores each y as
// bfloat16 (BF16FromFloat32's bits) at yb, 2c bytes a row, unless yb is
// nil: the copy a bfloat16 convolution's staging would make of y; it
// needs AVX512-BF16 (convertBF16) where yb is not nil.
//
//go:noescape
func chanAffineToBF16512(x, skip unsafe.Pointer, rows, c int, scale, shift, y, yb unsafe.Pointer, relu, stream int)

// chanAffine2512 writes dx[r][j] = a[j]·g − k[j]·x[r][j] + b[j], g =
// dy[r][j] where y[r][j] ≠ 0 (or is NaN) and 0 elsewhere. Pass y = dy for
// g = dy.
//
//go:noescape
func chanAffine2512(x, dy, y unsafe.Pointer, rows, c int, a, k, b, dx unsafe.Pointer)

// chanShiftStatsRows512 is chanShiftStats512 walking rows (one set of
// sums, in acc).
//
//go:noescape
func chanShiftStatsRows512(x unsafe.Pointer, rows, c int, shift, acc unsafe.Pointer)

// chanDyStatsMask512 is chanDyStats512 with the mask recomputed from x:
// g = dy[r][j] where max(x[r][j]·scale[j] + shift[j], 0) ≠ 0 (or is NaN),
// as chanAffine512 with relu computes it; on rows stride floats apart in
// x, dy and dz (c for whole rows; more for the first c channels of wider
// rows, as a convolution's data gradient sums a block of them as it
// stores it: DataGradSums).
//
//go:noescape
func chanDyStatsMask512(x, dy, dz unsafe.Pointer, rows, c, stride int, mean, scale, shift, acc unsafe.Pointer)

// chanDyStatsRowsMask512 is chanDyStatsMask512 walking rows.
//
//go:noescape
func chanDyStatsRowsMask512(x, dy, dz unsafe.Pointer, rows, c int, mean, scale, shift, acc unsafe.Pointer)

// chanAffine2Mask512 is chanAffine2512 with chanDyStatsMask512's mask.
//
//go:noescape
func chanAffine2Mask512(x, dy unsafe.Pointer, rows, c int, a, k, b, scale, shift, dx unsafe.Pointer)

// chanAffine2ToBF16512 and chanAffine2MaskToBF16512 are chanAffine2512
// and chanAffine2Mask512 storing dx as bfloat16 (BF16FromFloat32's bits)
// at dxb, 2c bytes a row; they need AVX512-BF16 (convertBF16).
//
//go:noescape
func chanAffine2ToBF16512(x, dy, y unsafe.Pointer, rows, c int, a, k, b, dxb unsafe.Pointer)

//go:noescape
func chanAffine2MaskToBF16512(x, dy unsafe.Pointer, rows, c int, a, k, b, scale, shift, dxb unsafe.Pointer)

// chanDyStatsRows512 is chanDyStats512 walking rows.
//
//go:noescape
func chanDyStatsRows512(x, dy, y, dz unsafe.Pointer, rows, c int, mean, acc unsafe.Pointer)

// The AVX2 versions (batchnorm_avx2_amd64.s): the same loops as the
// AVX-512 kernels above, on 8-float vectors.

//go:noescape
func chanShiftStatsAVX2(x unsafe.Pointer, rows, c int, shift, acc unsafe.Pointer)

//go:noescape
func chanDyStatsAVX2(x, dy, y, dz unsafe.Pointer, rows, c int, mean, acc unsafe.Pointer)

// chanAffineAVX2 stores through the caches whatever stream says.
//
//go:noescape
func chanAffineAVX2(x, skip unsafe.Pointer, rows, c int, scale, shift, y unsafe.Pointer, relu, stream int)

//go:noescape
func chanAffine2AVX2(x, dy, y unsafe.Pointer, rows, c int, a, k, b, dx unsafe.Pointer)

//go:noescape
func chanShiftStatsRowsAVX2(x unsafe.Pointer, rows, c int, shift, acc unsafe.Pointer)

//go:noescape
func chanDyStatsRowsAVX2(x, dy, y, dz unsafe.Pointer, rows, c int, mean, acc unsafe.Pointer)
