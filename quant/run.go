package quant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Forward runs the quantized network on x [N,H,W,C] (float32, the
// float network's input; N ≥ 1, H, W, C as quantized) and returns its
// output in float32 ([N,classes] logits for a classifier). Another shape,
// values that do not fill it and a nil ctx are errors; it stops between
// operations when ctx is done, returning ctx's error.
func (m *Model) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	y, _, err := m.run(ctx, x, false)
	return y, err
}

// Values runs the quantized network like Forward and also returns every
// u8 value of its graph (Graph's value numbers, residual's NHWC layout;
// nil for the output of a layer that returns float32): for checking an
// export against another runtime value by value.
func (m *Model) Values(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, [][]uint8, error) {
	return m.run(ctx, x, true)
}

// run runs the network; with keep it returns every value it computed (by
// value number) instead of freeing each after its last reader.
func (m *Model) run(ctx context.Context, x *tensor.Tensor, keep bool) (*tensor.Tensor, [][]uint8, error) {
	switch {
	case m == nil || m.g == nil:
		return nil, nil, errors.New("quant: running no model (nil)")
	case ctx == nil:
		return nil, nil, errors.New("quant: running with a nil context")
	}
	in := m.g.input
	if x == nil || x.Rank() != len(in) || x.Shape[0] < 1 || !equalTail(x.Shape, in) {
		var shape []int
		if x != nil {
			shape = x.Shape
		}
		return nil, nil, fmt.Errorf("quant: input of shape %v, want %s", shape, batchOf(in))
	}
	if err := limits.CheckElements("quant: input", x.Shape...); err != nil { // before counting: N may overflow
		return nil, nil, err
	}
	if len(x.Data) != tensor.NumElements(x.Shape) {
		return nil, nil, fmt.Errorf("quant: input holds %d values for shape %v", len(x.Data), x.Shape)
	}
	n := x.Shape[0]
	vals := make([][]uint8, m.g.nvals)
	free, _ := m.bufs.Get().(*buffers)
	if free == nil {
		free = new(buffers)
	}
	if !keep {
		defer m.bufs.Put(free)
	}
	vals[0] = Quantize8(x.Data, m.qp[0], free.get(len(x.Data)))
	// lastUse frees each value after its last reader.
	lastUse := make([]int, m.g.nvals)
	for i, nd := range m.g.nodes {
		for _, v := range nd.in {
			lastUse[v] = i
		}
		if nd.res >= 0 {
			lastUse[nd.res] = i
		}
	}
	var out *tensor.Tensor
	for i, nd := range m.g.nodes {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		shape := append([]int{n}, nd.shape[1:]...)
		size := tensor.NumElements(shape)
		final := nd.out == m.g.output
		xs := append([]int{n}, nd.shapeIn[1:]...)
		a, qa, qy := vals[nd.in[0]], m.qp[nd.in[0]], m.qp[nd.out]
		var y []uint8
		// A convolution that is its residual's last reader writes the sum
		// over it (the epilogue reads each byte before it stores it): a
		// block's output takes its input's buffer.
		inPlace := nd.kind == kConv && !final && nd.res >= 0 && !keep && lastUse[nd.res] == i &&
			!slices.Contains(nd.in, nd.res) && len(vals[nd.res]) == size
		switch {
		case inPlace:
			y = vals[nd.res]
		case !(final && nd.kind == kConv):
			y = free.get(size) // every kind writes each of its bytes
		}
		switch nd.kind {
		case kConv:
			st := m.conv[i]
			s := convShape(nd, xs)
			ep := &kernels.Int8Epilogue{Bias: st.bias, Mult: st.mult, Zero: int32(qy.Zero), ReLU: nd.relu}
			if nd.res >= 0 {
				qr, sy := m.qp[nd.res], qy.Scale
				if final {
					sy = 1
				}
				ep.Res, ep.ResZero, ep.ResMult = vals[nd.res], int32(qr.Zero), float32(qr.Scale/sy)
			}
			if final {
				out = tensor.New(shape...)
				kernels.Int8Conv(s, a, uint8(qa.Zero), st.w, ep, nil, out.Data)
			} else {
				kernels.Int8Conv(s, a, uint8(qa.Zero), st.w, ep, y, nil)
			}
		case kAdd:
			b, qb := vals[nd.in[1]], m.qp[nd.in[1]]
			lo := 0
			if nd.relu {
				lo = qy.Zero
			}
			for j := range y {
				v := qa.Scale*float64(int(a[j])-qa.Zero) + qb.Scale*float64(int(b[j])-qb.Zero)
				y[j] = quantize1(v, qy, lo)
			}
		case kAffine:
			// In float32, one rounding per operation, as the exported
			// graph computes it (DequantizeLinear, Mul, Add,
			// QuantizeLinear): float64 arithmetic here rounds differently
			// near ties and put outputs a step or two from ONNX Runtime's.
			c := nd.shape[len(nd.shape)-1]
			sa, sy := float32(qa.Scale), float32(qy.Scale)
			for j := range y {
				v := float32(int(a[j])-qa.Zero) * sa
				v = float32(v*nd.a[j%c]) + nd.b[j%c] // the conversion keeps Mul and Add apart (no FMA)
				y[j] = quantize8(v, sy, qy.Zero)
			}
		case kReLU:
			for j, v := range a {
				y[j] = max(v, uint8(qa.Zero))
			}
		case kReshape:
			copy(y, a)
		case kMaxPool:
			maxPool(nd, xs, a, y)
		case kGAP:
			// The mean in real terms, requantized with the same scale:
			// round(mean(q) − z) + z, half to even as QuantizeLinear
			// rounds the real mean / scale.
			hw, c := xs[1]*xs[2], xs[3]
			for b := range n {
				for ch := range c {
					sum := -qa.Zero * hw
					for p := range hw {
						sum += int(a[(b*hw+p)*c+ch])
					}
					y[b*c+ch] = uint8(roundDiv(sum, hw) + qa.Zero)
				}
			}
		case kSubsamplePad:
			h, w, c := xs[1], xs[2], xs[3]
			oh, ow, oc := nd.shape[1], nd.shape[2], nd.shape[3]
			for j := range y {
				y[j] = uint8(qa.Zero)
			}
			for b := range n {
				for oy := range oh {
					for ox := range ow {
						src := a[((b*h+oy*nd.sub.Stride)*w+ox*nd.sub.Stride)*c:][:c]
						copy(y[((b*oh+oy)*ow+ox)*oc+nd.sub.Before:], src)
					}
				}
			}
		case kPad:
			pad(nd, xs, shape, a, y, uint8(qa.Zero))
		}
		if final && out == nil {
			out = Dequantize8(y, qy, shape)
		}
		if inPlace {
			vals[nd.res] = nil // now the output's buffer: not to be freed below
		}
		vals[nd.out] = y
		for v := range vals {
			if !keep && v != m.g.output && lastUse[v] == i && v != nd.out && vals[v] != nil {
				free.put(vals[v])
				vals[v] = nil
			}
		}
	}
	if out == nil { // the network is the identity
		out = Dequantize8(vals[0], m.qp[0], x.Shape)
	}
	return out, vals, nil
}

// buffers are the u8 buffers of values no longer read, kept for the
// values that follow and for later runs (a ResNet-50 batch allocated and
// cleared a quarter of its time's worth of fresh memory otherwise).
type buffers struct{ b [][]uint8 }

// get returns a buffer of length n, the smallest free one that holds it
// (its old contents left in place) or a new one.
func (f *buffers) get(n int) []uint8 {
	best := -1
	for i, b := range f.b {
		if cap(b) >= n && (best < 0 || cap(b) < cap(f.b[best])) {
			best = i
		}
	}
	if best < 0 {
		return make([]uint8, n)
	}
	b := f.b[best][:n]
	f.b[best] = f.b[len(f.b)-1]
	f.b = f.b[:len(f.b)-1]
	return b
}

// put gives back a buffer no value reads any more.
func (f *buffers) put(b []uint8) { f.b = append(f.b, b) }

// quantize1 quantizes one real value: round half to even, add the zero
// point, clamp to [lo, 255].
func quantize1(v float64, q QParams, lo int) uint8 {
	r := math.RoundToEven(v/q.Scale) + float64(q.Zero)
	return uint8(min(max(r, float64(lo)), 255))
}

// roundDiv returns a/b rounded half to even (b > 0).
func roundDiv(a, b int) int {
	if a < 0 {
		return -roundDiv(-a, b)
	}
	q, r := a/b, a%b
	if 2*r > b || (2*r == b && q%2 == 1) {
		q++
	}
	return q
}

// Quantize8 quantizes float32 values to u8 as ONNX's QuantizeLinear does
// (and ONNX Runtime computes it): x / scale in float32, rounded half to
// even, plus the zero point, saturated to 0…255; into dst if it is long
// enough. NaN becomes the zero point.
func Quantize8(xs []float32, q QParams, dst []uint8) []uint8 {
	if len(dst) < len(xs) {
		dst = make([]uint8, len(xs))
	}
	kernels.QuantizeU8(xs, float32(q.Scale), int32(q.Zero), dst)
	return dst[:len(xs)]
}

// quantize8 is QuantizeLinear of one value: v / s in float32, rounded half
// to even, plus zero, saturated to 0…255 (NaN gives zero).
func quantize8(v, s float32, zero int) uint8 {
	f := v / s
	if f != f {
		f = 0
	}
	r := math.RoundToEven(float64(max(min(f, 1e6), -1e6))) + float64(zero)
	return uint8(min(max(r, 0), 255))
}

// Dequantize8 returns u8 values as a float32 tensor of the given shape:
// Scale·(q − Zero). It panics, naming both, if the shape does not hold
// len(q) values.
func Dequantize8(q []uint8, p QParams, shape []int) *tensor.Tensor {
	if n := tensor.NumElements(shape); n != len(q) {
		panic(fmt.Sprintf("quant: Dequantize8 of %d values into shape %v (%d elements)", len(q), shape, n))
	}
	t := tensor.New(shape...)
	for i, v := range q {
		t.Data[i] = float32(p.Scale * float64(int(v)-p.Zero))
	}
	return t
}

// convShape returns a conv node's geometry for input shape xs (NHWC; a
// linear layer's [N,K] runs as a 1×1 convolution of [N,1,1,K]).
func convShape(nd node, xs []int) kernels.ConvShape {
	ws := nd.w.Shape
	if nd.linear {
		return kernels.ConvShape{N: xs[0], H: 1, W: 1, C: xs[1], OC: ws[3], KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1}
	}
	p := nd.geom
	return kernels.ConvShape{N: xs[0], H: xs[1], W: xs[2], C: xs[3], OC: ws[3], KH: ws[0], KW: ws[1],
		SH: max(p.Stride[0], 1), SW: max(p.Stride[1], 1), DH: max(p.Dilation[0], 1), DW: max(p.Dilation[1], 1),
		PT: p.Pad[0], PL: p.Pad[1], PB: p.Pad[2], PR: p.Pad[3]}
}

// maxPool runs max pooling on u8 values through the float kernel (u8
// values are exact in float32, and the maximum commutes with the
// monotonic quantization).
func maxPool(nd node, xs []int, a, y []uint8) {
	p := nd.pool
	s := kernels.PoolShape{N: xs[0], H: xs[1], W: xs[2], C: xs[3], KH: p.Kernel[0], KW: p.Kernel[1],
		SH: max(p.Stride[0], 1), SW: max(p.Stride[1], 1), DH: max(p.Dilation[0], 1), DW: max(p.Dilation[1], 1),
		PT: p.Pad[0], PL: p.Pad[1], PB: p.Pad[2], PR: p.Pad[3], CeilMode: p.CeilMode}
	kernels.MaxPoolU8(s, a, y)
}

// pad pads a by the zero point (the real value 0).
func pad(nd node, xs, ys []int, a, y []uint8, z uint8) {
	for i := range y {
		y[i] = z
	}
	// Walk every input index and place it at its padded position.
	r := len(xs)
	idx := make([]int, r)
	for i := range a {
		o := 0
		for d := range r {
			o = o*ys[d] + idx[d] + nd.pads[d][0]
		}
		y[o] = a[i]
		for d := r - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < xs[d] {
				break
			}
			idx[d] = 0
		}
	}
}

// Layer returns the model as an nn.Layer, for code written against one
// (evaluation loops): its Forward runs the int8 network on the input's
// values and returns them as a constant (no tape, no gradient). An input
// it cannot take panics, as a layer's does.
func (m *Model) Layer() nn.Layer { return asLayer{m} }

type asLayer struct{ m *Model }

func (l asLayer) Forward(x *ag.Value) *ag.Value {
	y, err := l.m.Forward(context.Background(), x.Tensor())
	if err != nil {
		panic(err)
	}
	return ag.Constant(y)
}

// batchOf describes the inputs that shape's per-image tail takes: "[N H W
// C] with N ≥ 1".
func batchOf(shape []int) string {
	return fmt.Sprintf("[N %s] with N ≥ 1", strings.Trim(fmt.Sprint(shape[1:]), "[]"))
}
