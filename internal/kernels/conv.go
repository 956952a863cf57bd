// Package kernels holds the numeric kernels behind residual's operations.
//
// Every kernel of the float32 operations is a reference implementation
// written once for float32 and float64 (the Float constraint; the bfloat16
// and int8 kernels have no such form): the finite-difference gradient checks run
// it on float64, and it is the float32 path where no faster kernel
// applies. The kernels that have faster float32 versions (convolutions,
// Gemm, batch norm, max pooling, ReLU, Add) are exported as
// float32 entry points: each takes the assembly kernels of the active
// level (see Level; resolved once, at start or by SetLevel) where the shape
// suits them, and its reference (the unexported generic function of the
// same name with a Ref suffix) otherwise. RESIDUAL_KERNELS=generic sends
// every entry point to its reference. The fast kernels are checked against
// the references, values and NaN/Inf propagation alike.
//
// Image tensors are NHWC; convolution weights are HWIO ([kh][kw][in][out]).
// Kernels overwrite their outputs unless the doc comment says they
// accumulate.
package kernels

import (
	"fmt"
	"math"
)

// Float is the element type of the reference kernels.
type Float interface{ ~float32 | ~float64 }

// ConvShape describes a 2-D convolution of an NHWC input [N,H,W,C] with an
// HWIO weight [KH,KW,C,OC].
type ConvShape struct {
	N, H, W, C     int // input
	OC             int // output channels
	KH, KW         int // kernel size
	SH, SW         int // strides (≥ 1)
	DH, DW         int // dilations (≥ 1)
	PT, PL, PB, PR int // zero padding: top, left, bottom, right
}

// OH returns the output height (0 for a kernel taller than the padded
// input: Go's division rounds a negative span toward zero, which with a
// stride above 1 would give 1).
func (s ConvShape) OH() int { return convOut(s.H+s.PT+s.PB-s.DH*(s.KH-1)-1, s.SH) }

// OW returns the output width (0 for a kernel wider than the padded input).
func (s ConvShape) OW() int { return convOut(s.W+s.PL+s.PR-s.DW*(s.KW-1)-1, s.SW) }

// convOut is span/stride + 1 outputs, none for a negative span.
func convOut(span, stride int) int {
	if span < 0 {
		return 0
	}
	return span/stride + 1
}

// Validate reports a shape that cannot be computed.
func (s ConvShape) Validate() error {
	switch {
	case s.N < 1 || s.H < 1 || s.W < 1 || s.C < 1 || s.OC < 1 || s.KH < 1 || s.KW < 1:
		return fmt.Errorf("conv: non-positive size in %+v", s)
	case s.SH < 1 || s.SW < 1 || s.DH < 1 || s.DW < 1:
		return fmt.Errorf("conv: stride and dilation must be ≥ 1, got %+v", s)
	case s.PT < 0 || s.PL < 0 || s.PB < 0 || s.PR < 0:
		return fmt.Errorf("conv: negative padding in %+v", s)
	case s.OH() < 1 || s.OW() < 1:
		return fmt.Errorf("conv: kernel %dx%d (dilation %d,%d) larger than padded input %dx%d",
			s.KH, s.KW, s.DH, s.DW, s.H+s.PT+s.PB, s.W+s.PL+s.PR)
	}
	return nil
}

// ConvForward computes y[N,OH,OW,OC] = conv(x, w): with the assembly
// kernels of the active level where they apply, with the reference
// (convForwardRef) otherwise.
func ConvForward(s ConvShape, x, w, y []float32) {
	if !convForwardFast(s, x, w, y, nil, nil) {
		convForwardRef(s, x, w, y)
	}
}

// ConvEpilogue is what ConvForwardEpilogue applies to each output as it
// is stored: y = Scale·conv + Shift (per output channel) + Skip (same
// layout as y; nil adds nothing), then max(·, 0) if ReLU. A nil Scale is
// 1 and a nil Shift 0. A batch norm in evaluation mode is a Scale and a
// Shift; a bias is a Shift alone. Skip may be y itself (the same slice):
// the residual is then added in place, as ONNX Runtime's fused Conv + Sum
// does, so that a residual block's last convolution neither reads one
// buffer nor fills another (each output reads its skip before it is
// stored). Skip must not overlap x.
//
// Stats, when not nil, is cleared, and where the epilogue adds nothing (no
// Scale, Shift, Skip or ReLU) receives the output's batch statistics per
// channel as the kernels store it, where the tiles keep each output in
// cache until it is stored (ConvStats).
type ConvEpilogue[T Float] struct {
	Scale, Shift []T
	Skip         []T
	ReLU         bool
	Stats        *ConvStats
}

// ConvStats are a convolution's output statistics per output channel,
// over all its pixels, computed as the kernels store the output
// (ConvEpilogue.Stats), so that a batch norm in training that follows
// need not read the output once more to compute them (Fused.XStats). Only
// the bfloat16 forward convolution on AMX tiles computes them, from each
// tile of sums while it is in the core's L1 cache; where Done is false
// nothing was computed.
//
// They are sums about a shift, per task and block of 32 channels the
// task's first output (a sample of the batch: its deviations cancel
// little, whatever the mean), in float32 over at most 256 outputs, then in
// float64, the tasks merged in order (mergeMoments): the result depends
// only on the shape and the threads the kernels run on (GOMAXPROCS, or
// SetThreads' cap).
type ConvStats struct {
	Done bool
	N    int       // the outputs a channel, N·OH·OW
	Mean []float64 // the mean of each channel
	M2   []float64 // Σ (y − Mean)² of each channel
}

// ConvForwardEpilogue computes ConvForward followed by e, in the same pass
// over the output when the assembly kernels apply (the output is written
// once instead of written and read again).
func ConvForwardEpilogue(s ConvShape, x, w, y []float32, e ConvEpilogue[float32]) {
	ConvForwardPacked(s, x, w, nil, y, e)
}

// convForwardEpilogueRef is ConvForwardEpilogue's reference: the
// convolution, then the epilogue in a second pass.
func convForwardEpilogueRef[T Float](s ConvShape, x, w, y []T, e ConvEpilogue[T]) {
	if n := s.N * s.OH() * s.OW() * s.OC; n > 0 && len(e.Skip) >= n && &e.Skip[0] == &y[0] {
		e.Skip = append([]T(nil), e.Skip[:n]...) // in place: the first pass overwrites it
	}
	convForwardRef(s, x, w, y)
	parallelFor(s.N*s.OH()*s.OW(), func(lo, hi int) {
		for i := lo * s.OC; i < hi*s.OC; i++ {
			c := i % s.OC
			v := y[i]
			if e.Scale != nil {
				v *= e.Scale[c]
			}
			if e.Shift != nil {
				v += e.Shift[c]
			}
			if e.Skip != nil {
				v += e.Skip[i]
			}
			if e.ReLU {
				v = max(v, 0)
			}
			y[i] = v
		}
	})
}

// sharedOnes and sharedZeros stand in for a nil Scale or Shift of an
// epilogue (read only), so that a bias or an accumulation allocates no
// per-channel vectors in a training step.
var sharedOnes, sharedZeros = func() ([]float32, []float32) {
	o := make([]float32, 4096)
	for i := range o {
		o[i] = 1
	}
	return o, make([]float32, 4096)
}()

// unitsOr returns v, or when v is nil n copies of u (1 or 0): the shared
// vectors when they are long enough.
func unitsOr(v []float32, u float32, n int) []float32 {
	if v != nil {
		return v
	}
	shared := sharedZeros
	if u == 1 {
		shared = sharedOnes
	}
	if n <= len(shared) {
		return shared[:n]
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = u
	}
	return out
}

// convForwardRef is ConvForward's reference, for any Float.
func convForwardRef[T Float](s ConvShape, x, w, y []T) {
	oh, ow := s.OH(), s.OW()
	clear(y[:s.N*oh*ow*s.OC])
	parallelFor(s.N*oh, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			n, oy := r/oh, r%oh
			for ox := 0; ox < ow; ox++ {
				yo := y[((n*oh+oy)*ow+ox)*s.OC:][:s.OC]
				for kh := 0; kh < s.KH; kh++ {
					iy := oy*s.SH - s.PT + kh*s.DH
					if iy < 0 || iy >= s.H {
						continue
					}
					for kw := 0; kw < s.KW; kw++ {
						ix := ox*s.SW - s.PL + kw*s.DW
						if ix < 0 || ix >= s.W {
							continue
						}
						xi := x[((n*s.H+iy)*s.W+ix)*s.C:][:s.C]
						wk := w[(kh*s.KW+kw)*s.C*s.OC:][:s.C*s.OC]
						for c, xv := range xi {
							axpy(xv, wk[c*s.OC:][:s.OC], yo)
						}
					}
				}
			}
		}
	})
}

// ConvBackwardData computes dx[N,H,W,C] from dy[N,OH,OW,OC] and w.
func ConvBackwardData(s ConvShape, dy, w, dx []float32) {
	if !convBackwardDataFast(s, dy, w, dx, nil) && !convBackwardDataNarrow(s, dy, w, dx, false, false) && !convBackwardDataCols(s, dy, w, dx, false) {
		convBackwardDataRef(s, dy, w, dx)
	}
}

// col2imAdd adds col, the column ([KH][KW][C]) of output pixel (oy, ox)
// of image n, onto dx where its taps land, skipping those in the padding.
func col2imAdd(s ConvShape, n, oy, ox int, col, dx []float32) {
	for kh := 0; kh < s.KH; kh++ {
		iy := oy*s.SH - s.PT + kh*s.DH
		if iy < 0 || iy >= s.H {
			continue
		}
		for kw := 0; kw < s.KW; kw++ {
			ix := ox*s.SW - s.PL + kw*s.DW
			if ix < 0 || ix >= s.W {
				continue
			}
			d := dx[((n*s.H+iy)*s.W+ix)*s.C:][:s.C]
			for c, v := range col[(kh*s.KW+kw)*s.C:][:s.C] {
				d[c] += v
			}
		}
	}
}

// colsChunk bounds convBackwardDataCols' columns buffer (floats).
const colsChunk = 1 << 22

// convBackwardDataCols computes the data gradient (add: adds it to dx) as
// a matrix product and col2im, for the shapes the direct kernels decline
// (input channels not a multiple of the vector width: a network's first
// layer, when the gradient of its input is wanted — the reference's
// scalar dot products ran ResNet-50's stem at 7 GFLOP/s): the columns
// cols[q][(kh, kw, c)] = Σ_oc dy[q][oc]·W[kh][kw][c][oc] of a chunk of
// images by Gemm, then each image's columns added onto its dx, the taps
// that fall in the padding skipped (as the reference skips them). It
// reports false, computing nothing, without the assembly kernels.
func convBackwardDataCols(s ConvShape, dy, w, dx []float32, add bool) bool {
	if use.k == nil {
		return false
	}
	oh, ow := s.OH(), s.OW()
	k, per := s.KH*s.KW*s.C, oh*ow
	if !add {
		clear(dx[:s.N*s.H*s.W*s.C])
	}
	if per == 0 || k == 0 {
		return true
	}
	imgs := min(s.N, max(1, colsChunk/(per*k)))
	cols := getBuf(imgs * per * k)
	defer putBuf(cols)
	for n0 := 0; n0 < s.N; n0 += imgs {
		n1 := min(n0+imgs, s.N)
		Gemm(false, true, (n1-n0)*per, k, s.OC, 1, dy[n0*per*s.OC:], s.OC, w, s.OC, 0, cols, k)
		parallelFor(n1-n0, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				n := n0 + i
				for q := range per {
					col2imAdd(s, n, q/ow, q%ow, cols[(i*per+q)*k:][:k], dx)
				}
			}
		})
	}
	return true
}

// ConvBackwardDataAdd adds ConvBackwardData's result to dx. With the
// assembly kernels the sum is made as the kernels store (dx is read and
// written once); otherwise through a scratch buffer.
func ConvBackwardDataAdd(s ConvShape, dy, w, dx []float32) {
	ep := &convEpilogue{scale: unitsOr(nil, 1, s.C), shift: unitsOr(nil, 0, s.C), skip: dx, floor: float32(math.Inf(-1))}
	if !convBackwardDataFast(s, dy, w, dx, ep) && !convBackwardDataNarrow(s, dy, w, dx, true, false) && !convBackwardDataCols(s, dy, w, dx, true) {
		convBackwardDataAddRef(s, dy, w, dx)
	}
}

// convBackwardDataAddRef is ConvBackwardDataAdd's reference.
func convBackwardDataAddRef[T Float](s ConvShape, dy, w, dx []T) {
	tmp := make([]T, s.N*s.H*s.W*s.C)
	convBackwardDataRef(s, dy, w, tmp)
	addRef(dx, tmp, dx)
}

// convBackwardDataRef is ConvBackwardData's reference.
func convBackwardDataRef[T Float](s ConvShape, dy, w, dx []T) {
	oh, ow := s.OH(), s.OW()
	clear(dx[:s.N*s.H*s.W*s.C])
	// Parallel over images: each image's dx is written by one goroutine.
	parallelFor(s.N, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					g := dy[((n*oh+oy)*ow+ox)*s.OC:][:s.OC]
					for kh := 0; kh < s.KH; kh++ {
						iy := oy*s.SH - s.PT + kh*s.DH
						if iy < 0 || iy >= s.H {
							continue
						}
						for kw := 0; kw < s.KW; kw++ {
							ix := ox*s.SW - s.PL + kw*s.DW
							if ix < 0 || ix >= s.W {
								continue
							}
							xi := dx[((n*s.H+iy)*s.W+ix)*s.C:][:s.C]
							wk := w[(kh*s.KW+kw)*s.C*s.OC:][:s.C*s.OC]
							for c := range xi {
								xi[c] += dot(g, wk[c*s.OC:][:s.OC])
							}
						}
					}
				}
			}
		}
	})
}

// ConvBackwardWeight computes dw[KH,KW,C,OC] from x and dy.
func ConvBackwardWeight(s ConvShape, x, dy, dw []float32) {
	if !convBackwardWeightFast(s, x, dy, dw) {
		convBackwardWeightRef(s, x, dy, dw)
	}
}

// convBackwardWeightRef is ConvBackwardWeight's reference.
func convBackwardWeightRef[T Float](s ConvShape, x, dy, dw []T) {
	oh, ow := s.OH(), s.OW()
	clear(dw[:s.KH*s.KW*s.C*s.OC])
	// Parallel over kernel rows: each goroutine owns dw[kh].
	parallelFor(s.KH, func(lo, hi int) {
		for kh := lo; kh < hi; kh++ {
			for n := 0; n < s.N; n++ {
				for oy := 0; oy < oh; oy++ {
					iy := oy*s.SH - s.PT + kh*s.DH
					if iy < 0 || iy >= s.H {
						continue
					}
					for ox := 0; ox < ow; ox++ {
						g := dy[((n*oh+oy)*ow+ox)*s.OC:][:s.OC]
						for kw := 0; kw < s.KW; kw++ {
							ix := ox*s.SW - s.PL + kw*s.DW
							if ix < 0 || ix >= s.W {
								continue
							}
							xi := x[((n*s.H+iy)*s.W+ix)*s.C:][:s.C]
							wk := dw[(kh*s.KW+kw)*s.C*s.OC:][:s.C*s.OC]
							for c, xv := range xi {
								axpy(xv, g, wk[c*s.OC:][:s.OC])
							}
						}
					}
				}
			}
		}
	})
}

// BiasForward adds b[C] to every row of y viewed as [rows, C].
func BiasForward[T Float](y, b []T) {
	c := len(b)
	for i := 0; i < len(y); i += c {
		row := y[i : i+c]
		for j := range row {
			row[j] += b[j]
		}
	}
}

// BiasBackward computes db[C] = sum of dy's rows.
func BiasBackward[T Float](dy, db []T) {
	c := len(db)
	acc := make([]float64, c)
	for i := 0; i < len(dy); i += c {
		for j, v := range dy[i : i+c] {
			acc[j] += float64(v)
		}
	}
	for j := range db {
		db[j] = T(acc[j])
	}
}

func axpy[T Float](a T, x, y []T) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}

func dot[T Float](x, y []T) T {
	y = y[:len(x)]
	var s T
	for i, v := range x {
		s += v * y[i]
	}
	return s
}
