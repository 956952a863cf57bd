package autograd

import (
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// ReLU returns max(x, 0). After a deferred batch norm or convolution (and
// an addition) it runs in their pass over memory (fuse.go).
func ReLU(x *Value) *Value {
	if y := fuseReLU(x); y != nil {
		return y
	}
	y := result(x.Data.Shape, x)
	trace(y, OpReLU, nil, x)
	if y.dry() {
		return y
	}
	kernels.ReLUForward(x.Data.Data, y.Data.Data)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) { kernels.ReLUBackward(y.Data.Data, y.Grad.Data, dst) })
	}, x)
	return y
}

// Add returns a + b. The shapes must be equal: there is no broadcasting.
// When a or b is a deferred batch norm or convolution, the other is added
// in its pass over memory (fuse.go).
func Add(a, b *Value) *Value {
	if y := deferAdd(a, b); y != nil {
		return y
	}
	return add("Add", a, b, true, true)
}

// AddRouted returns a + b like Add, but its backward pass sends the
// gradient only to the inputs selected by toA and toB: with a residual
// block's branch and shortcut as a and b, it makes the backward pass follow
// one path of an unraveled residual network (Veit et al. 2016).
func AddRouted(a, b *Value, toA, toB bool) *Value { return add("AddRouted", a, b, toA, toB) }

func add(op string, a, b *Value, toA, toB bool) *Value {
	if !tensor.SameShape(a.Data.Shape, b.Data.Shape) {
		shapeErr(op, "shapes differ: %v and %v (no broadcasting)", a.Data.Shape, b.Data.Shape)
	}
	y := result(a.Data.Shape, a, b)
	trace(y, OpAdd, nil, a, b)
	if y.dry() {
		return y
	}
	kernels.Add(a.Data.Data, b.Data.Data, y.Data.Data)
	record(y, func() {
		// y's gradient is final when this runs: a takes the buffer over
		// (no copy) unless y's gradient is retained; b gets its own copy.
		tp, dy := y.tape, y.Grad.Data
		if toB {
			tp.contribute(b, func(dst []float32) { copy(dst, dy) })
		}
		if !toA {
			return
		}
		if y.retain {
			tp.contribute(a, func(dst []float32) { copy(dst, dy) })
		} else if a.needsGrad && a.Grad == nil && !a.requiresGrad {
			y.gradLent = tp.give(a, dy)
		} else {
			tp.contribute(a, func(dst []float32) { copy(dst, dy) })
		}
	}, a, b)
	return y
}

// Mul returns a ⊙ b (element-wise). The shapes must be equal.
func Mul(a, b *Value) *Value {
	if !tensor.SameShape(a.Data.Shape, b.Data.Shape) {
		shapeErr("Mul", "shapes differ: %v and %v (no broadcasting)", a.Data.Shape, b.Data.Shape)
	}
	y := result(a.Data.Shape, a, b)
	trace(y, OpMul, nil, a, b)
	if y.dry() {
		return y
	}
	kernels.Mul(a.Data.Data, b.Data.Data, y.Data.Data)
	record(y, func() {
		tp, dy := y.tape, y.Grad.Data
		tp.contribute(a, func(dst []float32) { kernels.Mul(dy, b.Data.Data, dst) })
		tp.contribute(b, func(dst []float32) { kernels.Mul(dy, a.Data.Data, dst) })
	}, a, b)
	return y
}

// Scale returns s·x elementwise, in a new value of x's shape (the gradient
// of x is s times the output's).
func Scale(x *Value, s float32) *Value {
	y := result(x.Data.Shape, x)
	trace(y, OpScale, ScaleAttrs{s}, x)
	if y.dry() {
		return y
	}
	kernels.Scale(s, x.Data.Data, y.Data.Data)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) { kernels.Scale(s, y.Grad.Data, dst) })
	}, x)
	return y
}

// Sum returns the sum of all elements as a scalar (shape []).
func Sum(x *Value) *Value {
	y := result(nil, x)
	trace(y, OpSum, nil, x)
	if y.dry() {
		return y
	}
	y.Data.Data[0] = float32(x.Data.Sum())
	record(y, func() {
		g := y.Grad.Data[0]
		y.tape.contribute(x, func(dst []float32) {
			for i := range dst {
				dst[i] = g
			}
		})
	}, x)
	return y
}

// Reshape returns x with a new shape of the same size, sharing its data.
func Reshape(x *Value, shape ...int) *Value {
	if tensor.NumElements(shape) != x.numel() {
		shapeErr("Reshape", "cannot reshape %v to %v", x.Data.Shape, shape)
	}
	if x.dry() {
		y := &Value{Data: &tensor.Tensor{Shape: append([]int(nil), shape...)}, tape: x.tape}
		trace(y, OpReshape, nil, x)
		return y
	}
	x.Realize()
	x.memCheck()
	y := &Value{Data: x.Data.Reshape(shape...), tape: x.tape}
	x.tape.memAlias(x, y)
	trace(y, OpReshape, nil, x)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) { copy(dst, y.Grad.Data) })
	}, x)
	return y
}

// Flatten reshapes x to 2-D [d0·…·d(axis−1), d(axis)·…] (ONNX's Flatten;
// axis 1 is PyTorch's flatten(1)). Images are NHWC, so an image flattens in
// H, W, C order.
func Flatten(x *Value, axis int) *Value {
	s := x.Data.Shape
	if axis < 0 {
		axis += len(s)
	}
	if axis < 0 || axis > len(s) {
		shapeErr("Flatten", "axis %d for shape %v", axis, s)
	}
	// The product of the sizes after axis, not the element count over the
	// outer size: an empty [0,3] flattens to [0,3].
	return Reshape(x, tensor.NumElements(s[:axis]), tensor.NumElements(s[axis:]))
}

// axisSplit returns the sizes before, at, and after axis.
func axisSplit(op string, shape []int, axis int) (outer, k, inner, a int) {
	if axis < 0 {
		axis += len(shape)
	}
	if axis < 0 || axis >= len(shape) {
		shapeErr(op, "axis %d for shape %v", axis, shape)
	}
	return tensor.NumElements(shape[:axis]), shape[axis], tensor.NumElements(shape[axis+1:]), axis
}

// Softmax normalises x along axis (negative counts from the end).
func Softmax(x *Value, axis int) *Value {
	o, k, in, a := axisSplit("Softmax", x.Data.Shape, axis)
	y := result(x.Data.Shape, x)
	trace(y, OpSoftmax, AxisAttrs{a}, x)
	if y.dry() {
		return y
	}
	kernels.SoftmaxForward(o, k, in, x.Data.Data, y.Data.Data)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) { kernels.SoftmaxBackward(o, k, in, y.Data.Data, y.Grad.Data, dst) })
	}, x)
	return y
}

// LogSoftmax returns log(softmax(x)) along axis, computed stably.
func LogSoftmax(x *Value, axis int) *Value {
	o, k, in, a := axisSplit("LogSoftmax", x.Data.Shape, axis)
	y := result(x.Data.Shape, x)
	trace(y, OpLogSoftmax, AxisAttrs{a}, x)
	if y.dry() {
		return y
	}
	kernels.LogSoftmaxForward(o, k, in, x.Data.Data, y.Data.Data)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) { kernels.LogSoftmaxBackward(o, k, in, y.Data.Data, y.Grad.Data, dst) })
	}, x)
	return y
}

// Concat joins the inputs along axis; all other dimensions must agree. On
// NHWC images, axis 3 (or −1) is the channel concatenation of a U-Net.
func Concat(axis int, xs ...*Value) *Value {
	if len(xs) == 0 {
		shapeErr("Concat", "no inputs")
	}
	first := xs[0].Data.Shape
	outer, _, inner, a := axisSplit("Concat", first, axis)
	dims := make([]int, len(xs))
	total := 0
	for i, x := range xs {
		s := x.Data.Shape
		ok := len(s) == len(first)
		for j := 0; ok && j < len(s); j++ {
			ok = j == a || s[j] == first[j]
		}
		if !ok {
			shapeErr("Concat", "input %d has shape %v, input 0 has %v (axis %d)", i, s, first, axis)
		}
		dims[i] = s[a]
		total += s[a]
	}
	shape := append([]int(nil), first...)
	shape[a] = total
	y := result(shape, xs...)
	trace(y, OpConcat, AxisAttrs{a}, xs...)
	if y.dry() {
		return y
	}
	in := make([][]float32, len(xs))
	for i, x := range xs {
		in[i] = x.Data.Data
	}
	kernels.ConcatForward(outer, inner, dims, in, y.Data.Data)
	record(y, func() {
		for i, x := range xs {
			y.tape.contribute(x, func(dst []float32) {
				parts := make([][]float32, len(xs))
				parts[i] = dst
				kernels.ConcatBackward(outer, inner, dims, y.Grad.Data, parts)
			})
		}
	}, xs...)
	return y
}

// Crop returns the window of height h and width w at (top, left) of every
// image of x [N,H,W,C].
func Crop(x *Value, top, left, h, w int) *Value {
	s := x.Data.Shape
	if len(s) != 4 || top < 0 || left < 0 || h < 1 || w < 1 || top+h > s[1] || left+w > s[2] {
		shapeErr("Crop", "window %dx%d at (%d,%d) outside input %v", h, w, top, left, s)
	}
	y := result([]int{s[0], h, w, s[3]}, x)
	trace(y, OpCrop, CropAttrs{top, left, h, w}, x)
	if y.dry() {
		return y
	}
	kernels.CropForward(s[0], s[1], s[2], s[3], top, left, h, w, x.Data.Data, y.Data.Data)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) {
			kernels.CropBackward(s[0], s[1], s[2], s[3], top, left, h, w, y.Grad.Data, dst)
		})
	}, x)
	return y
}

// CenterCrop returns the central h×w window of every image of x (the
// crop of a valid-convolution U-Net's skip connection). An odd margin puts
// the extra row/column at the bottom/right, as torchvision's center_crop.
func CenterCrop(x *Value, h, w int) *Value {
	s := x.Data.Shape
	if len(s) != 4 {
		shapeErr("CenterCrop", "needs an NHWC input, got %v", s)
	}
	return Crop(x, (s[1]-h)/2, (s[2]-w)/2, h, w)
}

// PadMode selects how Pad fills the border.
type PadMode = kernels.PadMode

// Padding modes: a constant, the mirror image without repeating the edge
// (PyTorch's reflect), or the edge value repeated (PyTorch's replicate).
const (
	PadConstant = kernels.PadConstant
	PadReflect  = kernels.PadReflect
	PadEdge     = kernels.PadEdge
)

// Pad pads every axis a of x by pads[a][0] before and pads[a][1] after
// (non-negative). Reflect needs pads smaller than the axis.
func Pad(x *Value, pads [][2]int, mode PadMode, value float32) *Value {
	s := x.Data.Shape
	if len(pads) != len(s) {
		shapeErr("Pad", "%d pad pairs for shape %v", len(pads), s)
	}
	maps := make([][]int, len(s))
	shape := make([]int, len(s))
	for a, p := range pads {
		if p[0] < 0 || p[1] < 0 || (mode == PadReflect && (p[0] >= s[a] || p[1] >= s[a])) || (mode != PadConstant && s[a] == 0) {
			shapeErr("Pad", "pads %v invalid for shape %v in mode %d", pads, s, mode)
		}
		maps[a] = kernels.PadIndex(s[a], p[0], p[1], mode)
		shape[a] = s[a] + p[0] + p[1]
	}
	y := result(shape, x)
	trace(y, OpPad, PadAttrs{pads, mode, value}, x)
	if y.dry() {
		return y
	}
	kernels.PadForward(s, maps, value, x.Data.Data, y.Data.Data)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) { kernels.PadBackward(s, maps, y.Grad.Data, dst) })
	}, x)
	return y
}

// SubsamplePadChannels is the parameter-free option-A shortcut of He et al.
// 2015: keep every stride-th pixel of x [N,H,W,C] (giving ceil(H/stride)
// rows, like x[:, :, ::s, ::s] in PyTorch) and add before zero channels in
// front and after behind.
func SubsamplePadChannels(x *Value, stride, before, after int) *Value {
	s := x.Data.Shape
	if len(s) != 4 || stride < 1 || before < 0 || after < 0 {
		shapeErr("SubsamplePadChannels", "input %v, stride %d, pad %d+%d", s, stride, before, after)
	}
	n, h, w, c := s[0], s[1], s[2], s[3]
	y := result([]int{n, (h + stride - 1) / stride, (w + stride - 1) / stride, before + c + after}, x)
	trace(y, OpSubsamplePadChannels, SubsamplePadAttrs{stride, before, after}, x)
	if y.dry() {
		return y
	}
	kernels.SubsamplePadForward(n, h, w, c, stride, before, after, x.Data.Data, y.Data.Data)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) {
			kernels.SubsamplePadBackward(n, h, w, c, stride, before, after, y.Grad.Data, dst)
		})
	}, x)
	return y
}

// Dropout zeroes each element with probability p and scales the rest by
// 1/(1−p) (inverted dropout), drawing from rng. With training false or p = 0
// it returns x; with p = 1, zeros (as PyTorch's nn.Dropout(1)).
func Dropout(x *Value, p float64, training bool, rng *tensor.RNG) *Value {
	if !training || p == 0 {
		return x
	}
	if !(p >= 0 && p <= 1) {
		shapeErr("Dropout", "probability %g outside [0, 1]", p)
	}
	if p == 1 {
		return Scale(x, 0)
	}
	y := result(x.Data.Shape, x)
	if y.dry() { // a shape tape computes nothing, and draws nothing from rng
		return y
	}
	mask := make([]float32, x.numel())
	keep := float32(1 / (1 - p))
	for i := range mask {
		if rng.Float64() >= p {
			mask[i] = keep
		}
	}
	kernels.Mul(x.Data.Data, mask, y.Data.Data)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) { kernels.Mul(y.Grad.Data, mask, dst) })
	}, x)
	return y
}
