//go:build amd64 && !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

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

// chanOK reports whether the AVX-512 per-channel kernels handle c channels.
func chanOK(c int) bool { return active == AVX512 && c > 0 && c%16 == 0 }

// wideRow is the channel count from which the per-channel sums walk rows
// left to right instead of channel vectors down the rows (a row of 512
// bytes; measured: better from 128 channels, worse at 32).
const wideRow = 128

// shiftedStats reports whether chanSums32 takes a batch norm's statistics
// in one pass about a shift (narrow rows).
func shiftedStats(c int) bool { return c < wideRow }

// statRows is the number of rows one per-channel kernel call sums in
// float32 before the partial sums are combined in float64.
const statRows = 256

// chanSums32 returns per-channel Σ x (k = c) or, with dy, Σ g and
// Σ g·(x − mean) (k = 2c), or with mean and no dy, Σ (x − mean)². g is dy
// where y ≠ 0 and 0 elsewhere (dy itself when y is nil: a ReLU's mask); it
// is stored in dz unless dz is nil.
//
// With shifted (and mean the shift K, no dy; narrow rows only), it returns
// Σ (x − K)² and Σ (x − K) (k = 2c) in one pass.
func chanSums32(x, dy, y, dz []float32, m, c int, mean []float32, shifted bool) []float64 {
	k := c
	if dy != nil || shifted {
		k = 2 * c
	}
	return parallelSums((m+statRows-1)/statRows, k, func(lo, hi int, acc []float64) {
		var arr [512]float32 // the float32 partial sums: on the stack when they fit
		part := arr[:min(k, len(arr))]
		if k > len(arr) {
			part = make([]float32, k)
		}
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
					chanDyStatsRows512(xp, unsafe.Pointer(&dy[r0*c]), yp, dzp, r1-r0, c, unsafe.Pointer(&mean[0]), unsafe.Pointer(&part[0]))
				} else {
					chanDyStats512(xp, unsafe.Pointer(&dy[r0*c]), yp, dzp, r1-r0, c, unsafe.Pointer(&mean[0]), unsafe.Pointer(&part[0]))
				}
			case shifted:
				chanShiftStats512(xp, r1-r0, c, unsafe.Pointer(&mean[0]), unsafe.Pointer(&part[0]))
			case mean != nil && wide:
				chanSqDevRows512(xp, r1-r0, c, unsafe.Pointer(&mean[0]), unsafe.Pointer(&part[0]))
			case mean != nil:
				chanSqDev512(xp, r1-r0, c, unsafe.Pointer(&mean[0]), unsafe.Pointer(&part[0]))
			case wide:
				chanSumRows512(xp, r1-r0, c, unsafe.Pointer(&part[0]))
			default:
				chanSum512(xp, r1-r0, c, unsafe.Pointer(&part[0]))
			}
			for i, v := range part {
				acc[i] += float64(v)
			}
		}
	})
}

// chanAffine32 writes y = x·scale + shift per channel, plus skip unless it
// is nil, then ReLU'd if relu.
func chanAffine32(x, skip []float32, m, c int, scale, shift, y []float32, relu bool) {
	r := 0
	if relu {
		r = 1
	}
	parallelFor((m+statRows-1)/statRows, func(lo, hi int) {
		r0, r1 := lo*statRows, min(hi*statRows, m)
		sp := unsafe.Pointer(nil)
		if skip != nil {
			sp = unsafe.Pointer(&skip[r0*c])
		}
		chanAffine512(unsafe.Pointer(&x[r0*c]), sp, r1-r0, c, unsafe.Pointer(&scale[0]), unsafe.Pointer(&shift[0]), unsafe.Pointer(&y[r0*c]), r)
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
		chanAffine2512(unsafe.Pointer(&x[r0*c]), unsafe.Pointer(&dy[r0*c]), unsafe.Pointer(&y[r0*c]), r1-r0, c,
			unsafe.Pointer(&a[0]), unsafe.Pointer(&k[0]), unsafe.Pointer(&b[0]), unsafe.Pointer(&dx[r0*c]))
	})
}

// elementwise32 runs an AVX-512 kernel over n elements in parallel chunks
// (the last n mod 16 are left to tail); it returns false without AVX-512.
func elementwise32(n int, kernel func(off, len int), tail func(off int)) bool {
	if active != AVX512 {
		return false
	}
	body := n &^ 15
	parallelFor(body/elemChunk+1, func(lo, hi int) {
		a, b := lo*elemChunk, min(hi*elemChunk, body)
		if b > a {
			kernel(a, b-a)
		}
	})
	tail(body)
	return true
}

func relu32(x, y []float32) bool {
	return elementwise32(len(x), func(o, n int) { relu512(unsafe.Pointer(&x[o]), unsafe.Pointer(&y[o]), n) },
		func(o int) {
			for i := o; i < len(x); i++ {
				y[i] = max(x[i], 0)
			}
		})
}

func reluGrad32(y, dy, dx []float32) bool {
	return elementwise32(len(y), func(o, n int) {
		reluGrad512(unsafe.Pointer(&y[o]), unsafe.Pointer(&dy[o]), unsafe.Pointer(&dx[o]), n)
	}, func(o int) {
		for i := o; i < len(y); i++ {
			if y[i] != 0 {
				dx[i] = dy[i]
			} else {
				dx[i] = 0
			}
		}
	})
}

func add32(a, b, y []float32) bool {
	return elementwise32(len(a), func(o, n int) {
		add512(unsafe.Pointer(&a[o]), unsafe.Pointer(&b[o]), unsafe.Pointer(&y[o]), n)
	}, func(o int) {
		for i := o; i < len(a); i++ {
			y[i] = a[i] + b[i]
		}
	})
}

// sgd32 runs sgd512 over w, g and buf in parallel chunks (coef = lr, wd,
// mu, damp), the last len mod 16 elements in Go; false without AVX-512.
func sgd32(w, g, buf []float32, coef *[4]float32) bool {
	lr, wd, mu, damp := coef[0], coef[1], coef[2], coef[3]
	return elementwise32(len(w), func(o, n int) {
		sgd512(unsafe.Pointer(&w[o]), unsafe.Pointer(&g[o]), unsafe.Pointer(&buf[o]), n, unsafe.Pointer(coef))
	}, func(o int) {
		for i := o; i < len(w); i++ {
			d := g[i] + wd*w[i]
			buf[i] = mu*buf[i] + damp*d
			w[i] -= lr * buf[i]
		}
	})
}

// iota16 is 0, 1, …, 15: the lanes of maxPool512's indices.
var iota16 = [16]int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// maxPoolPixel32 writes one output pixel's c channels of max pooling over
// the input pixels at element offsets offs (at least one).
func maxPoolPixel32(x []float32, offs []int, c int, y []float32, arg []int32) {
	maxPool512(unsafe.Pointer(&x[0]), unsafe.Pointer(&offs[0]), len(offs), c, unsafe.Pointer(&y[0]), unsafe.Pointer(&arg[0]), unsafe.Pointer(&iota16[0]))
}
