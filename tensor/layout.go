package tensor

import "fmt"

// NCHWToNHWC converts a 4-D tensor from channels-first (PyTorch, ONNX) to
// channels-last, the layout residual uses inside.
func NCHWToNHWC(t *Tensor) *Tensor {
	must4(t, "NCHWToNHWC")
	n, c, h, w := t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
	out := New(n, h, w, c)
	permute4(t.Data, out.Data, [4]int{n, c, h, w}, [4]int{0, 2, 3, 1})
	return out
}

// NHWCToNCHW converts a 4-D channels-last tensor back to channels-first.
func NHWCToNCHW(t *Tensor) *Tensor {
	must4(t, "NHWCToNCHW")
	n, h, w, c := t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
	out := New(n, c, h, w)
	permute4(t.Data, out.Data, [4]int{n, h, w, c}, [4]int{0, 3, 1, 2})
	return out
}

// OIHWToHWIO converts a convolution weight from PyTorch's [out, in, kh, kw]
// to residual's [kh, kw, in, out].
func OIHWToHWIO(t *Tensor) *Tensor {
	must4(t, "OIHWToHWIO")
	o, i, h, w := t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
	out := New(h, w, i, o)
	permute4(t.Data, out.Data, [4]int{o, i, h, w}, [4]int{2, 3, 1, 0})
	return out
}

// HWIOToOIHW converts a convolution weight from residual's [kh, kw, in, out]
// to PyTorch's [out, in, kh, kw].
func HWIOToOIHW(t *Tensor) *Tensor {
	must4(t, "HWIOToOIHW")
	h, w, i, o := t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
	out := New(o, i, h, w)
	permute4(t.Data, out.Data, [4]int{h, w, i, o}, [4]int{3, 2, 0, 1})
	return out
}

// IOHWToHWOI converts a transposed-convolution weight from PyTorch's
// [in, out, kh, kw] to residual's [kh, kw, out, in]. Stored this way, a
// transposed convolution is the data-gradient of an ordinary convolution
// from out to in channels, and shares its kernels.
func IOHWToHWOI(t *Tensor) *Tensor {
	must4(t, "IOHWToHWOI")
	i, o, h, w := t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
	out := New(h, w, o, i)
	permute4(t.Data, out.Data, [4]int{i, o, h, w}, [4]int{2, 3, 1, 0})
	return out
}

// HWOIToIOHW converts a transposed-convolution weight from residual's
// [kh, kw, out, in] back to PyTorch's [in, out, kh, kw].
func HWOIToIOHW(t *Tensor) *Tensor {
	must4(t, "HWOIToIOHW")
	h, w, o, i := t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
	out := New(i, o, h, w)
	permute4(t.Data, out.Data, [4]int{h, w, o, i}, [4]int{3, 2, 0, 1})
	return out
}

func must4(t *Tensor, op string) {
	if len(t.Shape) != 4 {
		panic(fmt.Sprintf("tensor: %s needs a 4-D tensor, got shape %v", op, t.Shape))
	}
}

// permute4 writes dst = src transposed so that dst's axis k is src's axis
// perm[k]; dims are src's dimensions.
func permute4(src, dst []float32, dims [4]int, perm [4]int) {
	var stride [4]int
	stride[3] = 1
	for k := 2; k >= 0; k-- {
		stride[k] = stride[k+1] * dims[k+1]
	}
	d0, d1, d2, d3 := dims[perm[0]], dims[perm[1]], dims[perm[2]], dims[perm[3]]
	s0, s1, s2, s3 := stride[perm[0]], stride[perm[1]], stride[perm[2]], stride[perm[3]]
	o := 0
	for a := 0; a < d0; a++ {
		for b := 0; b < d1; b++ {
			for c := 0; c < d2; c++ {
				base := a*s0 + b*s1 + c*s2
				for d := 0; d < d3; d++ {
					dst[o] = src[base+d*s3]
					o++
				}
			}
		}
	}
}

// Transpose2D returns the transpose of a matrix [r, c] as a new [c, r]
// tensor (e.g. a Keras Dense kernel [in, out] to PyTorch's Linear weight
// [out, in]).
func Transpose2D(t *Tensor) *Tensor {
	if t.Rank() != 2 {
		panic(fmt.Sprintf("tensor: Transpose2D of a rank-%d tensor %v", t.Rank(), t.Shape))
	}
	r, c := t.Shape[0], t.Shape[1]
	out := New(c, r)
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			out.Data[j*r+i] = t.Data[i*c+j]
		}
	}
	return out
}
