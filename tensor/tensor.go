// Package tensor provides dense float32 tensors and a seeded random number
// generator.
//
// A Tensor is a shape and a row-major slice of float32 values. Image tensors
// are stored channels-last (NHWC) inside residual; NCHWToNHWC and friends
// convert data at the boundaries (PyTorch, ONNX, files). Convolution weights
// are stored as HWIO ([kh, kw, in, out]); OIHWToHWIO converts PyTorch's layout.
//
// Shape errors inside computations panic with a message that names both
// shapes (as gonum does); functions that depend on data or files return
// errors.
package tensor

import (
	"fmt"
	"math"
	"strings"
)

// Tensor is a dense, row-major float32 tensor.
type Tensor struct {
	Shape []int
	Data  []float32
}

// New returns a zero-filled tensor of the given shape.
func New(shape ...int) *Tensor {
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, NumElements(shape))}
}

// FromData wraps data in a tensor of the given shape. It returns an error if
// a dimension is negative, the shape holds more elements than an int counts,
// or the number of values does not match the shape.
func FromData(data []float32, shape ...int) (*Tensor, error) {
	n, err := elements(shape)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("tensor: %d values do not fill shape %v (%d elements)", len(data), shape, n)
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}, nil
}

// MustFromData is FromData that panics on a size mismatch; for literals in
// code and tests.
func MustFromData(data []float32, shape ...int) *Tensor {
	t, err := FromData(data, shape...)
	if err != nil {
		panic(err)
	}
	return t
}

// Full returns a tensor of the given shape with every element set to v.
func Full(v float32, shape ...int) *Tensor {
	t := New(shape...)
	for i := range t.Data {
		t.Data[i] = v
	}
	return t
}

// NumElements returns the product of the dimensions of shape (1 for a
// scalar). It panics on a negative dimension and on a product that
// overflows an int, where it would otherwise return a wrong count.
func NumElements(shape []int) int {
	n, err := elements(shape)
	if err != nil {
		panic(err.Error())
	}
	return n
}

// elements is NumElements returning its error: a negative dimension, or a
// product that overflows an int (a shape with a zero dimension has none,
// whatever the others).
func elements(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor: negative dimension in shape %v", shape)
		}
		if d == 0 {
			n = 0
		}
	}
	if n == 0 {
		return 0, nil
	}
	for _, d := range shape {
		if n > math.MaxInt/d {
			return 0, fmt.Errorf("tensor: shape %v holds more elements than an int counts", shape)
		}
		n *= d
	}
	return n, nil
}

// Len returns the number of elements.
func (t *Tensor) Len() int { return len(t.Data) }

// Rank returns the number of dimensions.
func (t *Tensor) Rank() int { return len(t.Shape) }

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// Reshape returns a tensor sharing t's data with a new shape of the same size.
// It panics if the sizes differ.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	if NumElements(shape) != len(t.Data) {
		panic(fmt.Sprintf("tensor: cannot reshape %v to %v", t.Shape, shape))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: t.Data}
}

// SameShape reports whether a and b have identical shapes.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Zero sets every element to 0.
func (t *Tensor) Zero() { clear(t.Data) }

// Fill sets every element to v.
func (t *Tensor) Fill(v float32) {
	for i := range t.Data {
		t.Data[i] = v
	}
}

// CopyFrom copies src's values into t. It panics if the shapes differ.
func (t *Tensor) CopyFrom(src *Tensor) {
	if !SameShape(t.Shape, src.Shape) {
		panic(fmt.Sprintf("tensor: copy from %v into %v", src.Shape, t.Shape))
	}
	copy(t.Data, src.Data)
}

// At returns the element at the given index (one coordinate per
// dimension, row-major). It panics on a wrong number of coordinates or one
// out of range, as slice indexing does.
func (t *Tensor) At(idx ...int) float32 { return t.Data[t.offset(idx)] }

// Set stores v at the given index, with At's indexing and panics.
func (t *Tensor) Set(v float32, idx ...int) { t.Data[t.offset(idx)] = v }

func (t *Tensor) offset(idx []int) int {
	if len(idx) != len(t.Shape) {
		panic(fmt.Sprintf("tensor: index %v for shape %v", idx, t.Shape))
	}
	off := 0
	for i, v := range idx {
		if v < 0 || v >= t.Shape[i] {
			panic(fmt.Sprintf("tensor: index %v out of range for shape %v", idx, t.Shape))
		}
		off = off*t.Shape[i] + v
	}
	return off
}

// Sum returns the sum of all elements, accumulated in float64.
func (t *Tensor) Sum() float64 {
	s := 0.0
	for _, v := range t.Data {
		s += float64(v)
	}
	return s
}

// HasNaNOrInf reports whether any element is NaN or infinite.
func (t *Tensor) HasNaNOrInf() bool {
	for _, v := range t.Data {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return true
		}
	}
	return false
}

// String prints the shape and up to the first 8 values.
func (t *Tensor) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Tensor%v[", t.Shape)
	for i, v := range t.Data {
		if i == 8 {
			b.WriteString(" ...")
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.4g", v)
	}
	b.WriteByte(']')
	return b.String()
}
