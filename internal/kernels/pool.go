package kernels

import (
	"fmt"
	"math"
)

// PoolShape describes 2-D max or average pooling over an NHWC input.
type PoolShape struct {
	N, H, W, C     int
	KH, KW         int
	SH, SW         int
	DH, DW         int // dilations (max pooling only; 1 for average)
	PT, PL, PB, PR int
	// CeilMode rounds the output size up, as PyTorch's ceil_mode; a window
	// that would start in the bottom/right padding is dropped.
	CeilMode bool
	// CountIncludePad makes average pooling divide by the window size
	// clipped to the padded input rather than by the number of real inputs.
	CountIncludePad bool
}

func poolOut(in, pa, pb, k, s, d int, ceil bool) int {
	span := in + pa + pb - d*(k-1) - 1
	if span < 0 {
		return 0
	}
	out := span/s + 1
	if ceil && span%s != 0 {
		out++
		if (out-1)*s >= in+pa {
			out--
		}
	}
	return out
}

// OH returns the output height.
func (s PoolShape) OH() int { return poolOut(s.H, s.PT, s.PB, s.KH, s.SH, s.DH, s.CeilMode) }

// OW returns the output width.
func (s PoolShape) OW() int { return poolOut(s.W, s.PL, s.PR, s.KW, s.SW, s.DW, s.CeilMode) }

// Validate reports a shape that cannot be computed.
func (s PoolShape) Validate() error {
	switch {
	case s.N < 1 || s.H < 1 || s.W < 1 || s.C < 1 || s.KH < 1 || s.KW < 1:
		return fmt.Errorf("pool: non-positive size in %+v", s)
	case s.SH < 1 || s.SW < 1 || s.DH < 1 || s.DW < 1:
		return fmt.Errorf("pool: stride and dilation must be ≥ 1, got %+v", s)
	case s.PT < 0 || s.PL < 0 || s.PB < 0 || s.PR < 0:
		return fmt.Errorf("pool: negative padding in %+v", s)
	case max(s.PT, s.PB) >= s.DH*(s.KH-1)+1 || max(s.PL, s.PR) >= s.DW*(s.KW-1)+1:
		// A window of padding alone: −Inf from max pooling, 0/0 from an
		// average that leaves the padding out (PyTorch refuses any pad
		// over half the window; ONNX Runtime one as wide as the kernel).
		return fmt.Errorf("pool: padding %d,%d,%d,%d (top, left, bottom, right) as wide as the %dx%d window: a window would hold padding alone", s.PT, s.PL, s.PB, s.PR, s.DH*(s.KH-1)+1, s.DW*(s.KW-1)+1)
	case s.OH() < 1 || s.OW() < 1:
		return fmt.Errorf("pool: window %dx%d larger than padded input %dx%d", s.KH, s.KW, s.H+s.PT+s.PB, s.W+s.PL+s.PR)
	}
	return nil
}

// MaxPoolForward computes y[N,OH,OW,C] and, for the backward pass, the flat
// index into x of each maximum (arg): the first maximum of each window, a
// NaN counting as greater than any number (so that a NaN propagates, as in
// PyTorch). Padding never wins: a window must hold at least one real input
// (guaranteed by Validate's output size).
//
// It takes the active level's kernel where it applies (chanOK), the reference
// (maxPoolForwardRef) otherwise.
func MaxPoolForward(s PoolShape, x, y []float32, arg []int32) {
	if !chanOK(s.C) {
		maxPoolForwardRef(s, x, y, arg)
		return
	}
	oh, ow := s.OH(), s.OW()
	parallelFor(s.N*oh, func(lo, hi int) {
		var offs []int // the valid taps' element offsets
		for r := lo; r < hi; r++ {
			n, oy := r/oh, r%oh
			for ox := 0; ox < ow; ox++ {
				o := ((n*oh+oy)*ow + ox) * s.C
				offs = offs[:0]
				for kh := 0; kh < s.KH; kh++ {
					if iy := oy*s.SH - s.PT + kh*s.DH; iy >= 0 && iy < s.H {
						for kw := 0; kw < s.KW; kw++ {
							if ix := ox*s.SW - s.PL + kw*s.DW; ix >= 0 && ix < s.W {
								offs = append(offs, ((n*s.H+iy)*s.W+ix)*s.C)
							}
						}
					}
				}
				if len(offs) > 0 {
					maxPoolPixel32(x, offs, s.C, y[o:o+s.C], arg[o:o+s.C])
				} else {
					maxPoolPixelRef(s, x, y[o:o+s.C], arg[o:o+s.C], n, oy, ox)
				}
			}
		}
	})
}

// MaxPoolU8 is MaxPoolForward for u8 values (an int8 network's
// activations, whose order is their real values' order) without the
// indices: each output pixel's channels start as its first real input's
// and take the byte-wise maximum with the others. Padding never wins.
func MaxPoolU8(s PoolShape, x, y []uint8) {
	oh, ow := s.OH(), s.OW()
	parallelFor(s.N*oh, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			n, oy := r/oh, r%oh
			for ox := range ow {
				out := y[(r*ow+ox)*s.C:][:s.C]
				first := true
				for kh := range s.KH {
					iy := oy*s.SH - s.PT + kh*s.DH
					if iy < 0 || iy >= s.H {
						continue
					}
					for kw := range s.KW {
						ix := ox*s.SW - s.PL + kw*s.DW
						if ix < 0 || ix >= s.W {
							continue
						}
						in := x[((n*s.H+iy)*s.W+ix)*s.C:][:s.C]
						if first {
							copy(out, in)
							first = false
						} else {
							maxU8(out, in)
						}
					}
				}
				if first { // a window of padding only: the lowest value
					clear(out)
				}
			}
		}
	})
}

// maxPoolForwardRef is MaxPoolForward's reference, for any Float.
func maxPoolForwardRef[T Float](s PoolShape, x, y []T, arg []int32) {
	oh, ow := s.OH(), s.OW()
	parallelFor(s.N*oh, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			n, oy := r/oh, r%oh
			for ox := 0; ox < ow; ox++ {
				o := ((n*oh+oy)*ow + ox) * s.C
				maxPoolPixelRef(s, x, y[o:o+s.C], arg[o:o+s.C], n, oy, ox)
			}
		}
	})
}

// maxPoolPixelRef computes output pixel (oy, ox) of image n into yo and
// ao: the first maximum of each channel's window, the first NaN if there
// is one (−∞ and index −1 for a window with no real input).
func maxPoolPixelRef[T Float](s PoolShape, x, yo []T, ao []int32, n, oy, ox int) {
	for c := range yo {
		yo[c] = T(math.Inf(-1))
		ao[c] = -1
	}
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
			base := ((n*s.H+iy)*s.W + ix) * s.C
			for c, v := range x[base : base+s.C] {
				// v wins if it is greater, or the first input, or the
				// first NaN.
				if ao[c] < 0 || v > yo[c] || v != v && yo[c] == yo[c] {
					yo[c] = v
					ao[c] = int32(base + c)
				}
			}
		}
	}
}

// MaxPoolBackward computes dx from dy and the arg indices of the forward
// pass.
func MaxPoolBackward[T Float](dy []T, arg []int32, dx []T) {
	clear(dx)
	for i, g := range dy {
		if a := arg[i]; a >= 0 {
			dx[a] += g
		}
	}
}

// avgWindow returns the clipped window [h0,h1)×[w0,w1) and the divisor.
func (s PoolShape) avgWindow(oy, ox int) (h0, h1, w0, w1 int, div float64) {
	h0 = oy*s.SH - s.PT
	w0 = ox*s.SW - s.PL
	h1 = min(h0+s.KH, s.H+s.PB)
	w1 = min(w0+s.KW, s.W+s.PR)
	padded := (h1 - h0) * (w1 - w0)
	h0, w0 = max(h0, 0), max(w0, 0)
	h1, w1 = min(h1, s.H), min(w1, s.W)
	if s.CountIncludePad {
		div = float64(padded)
	} else {
		div = float64((h1 - h0) * (w1 - w0))
	}
	return
}

// AvgPoolForward computes y[N,OH,OW,C] by average pooling.
func AvgPoolForward[T Float](s PoolShape, x, y []T) {
	oh, ow := s.OH(), s.OW()
	parallelFor(s.N*oh, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			n, oy := r/oh, r%oh
			for ox := 0; ox < ow; ox++ {
				yo := y[((n*oh+oy)*ow+ox)*s.C:][:s.C]
				clear(yo)
				h0, h1, w0, w1, div := s.avgWindow(oy, ox)
				for iy := h0; iy < h1; iy++ {
					for ix := w0; ix < w1; ix++ {
						xi := x[((n*s.H+iy)*s.W+ix)*s.C:][:s.C]
						for c, v := range xi {
							yo[c] += v
						}
					}
				}
				inv := T(1 / div)
				for c := range yo {
					yo[c] *= inv
				}
			}
		}
	})
}

// AvgPoolBackward computes dx from dy for average pooling.
func AvgPoolBackward[T Float](s PoolShape, dy, dx []T) {
	oh, ow := s.OH(), s.OW()
	clear(dx[:s.N*s.H*s.W*s.C])
	parallelFor(s.N, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					g := dy[((n*oh+oy)*ow+ox)*s.C:][:s.C]
					h0, h1, w0, w1, div := s.avgWindow(oy, ox)
					inv := T(1 / div)
					for iy := h0; iy < h1; iy++ {
						for ix := w0; ix < w1; ix++ {
							axpy(inv, g, dx[((n*s.H+iy)*s.W+ix)*s.C:][:s.C])
						}
					}
				}
			}
		}
	})
}

// GlobalAvgPoolForward averages x[N,H,W,C] over H and W into y[N,C].
func GlobalAvgPoolForward[T Float](n, hw, c int, x, y []T) {
	acc := make([]float64, c)
	for i := 0; i < n; i++ {
		clear(acc)
		for p := 0; p < hw; p++ {
			for j, v := range x[(i*hw+p)*c:][:c] {
				acc[j] += float64(v)
			}
		}
		for j := range acc {
			y[i*c+j] = T(acc[j] / float64(hw))
		}
	}
}

// GlobalAvgPoolBackward spreads dy[N,C] evenly over dx[N,H,W,C].
func GlobalAvgPoolBackward[T Float](n, hw, c int, dy, dx []T) {
	inv := 1 / T(hw)
	for i := 0; i < n; i++ {
		g := dy[i*c:][:c]
		for p := 0; p < hw; p++ {
			d := dx[(i*hw+p)*c:][:c]
			for j, v := range g {
				d[j] = v * inv
			}
		}
	}
}
