package autograd

import (
	"github.com/residual-nn/residual/internal/kernels"
)

// ConvParams are the geometry of a 2-D convolution or transposed
// convolution. Zero strides and dilations mean 1.
type ConvParams struct {
	Stride   [2]int // vertical, horizontal
	Dilation [2]int
	// Pad is the zero padding: top, left, bottom, right.
	Pad [4]int
	// OutputPadding adds rows/columns at the bottom/right of a transposed
	// convolution's output (PyTorch's output_padding); each must be
	// smaller than the larger of its stride and dilation.
	OutputPadding [2]int
}

// SymmetricPad returns padding of p on every side.
func SymmetricPad(ph, pw int) [4]int { return [4]int{ph, pw, ph, pw} }

// SamePad returns the padding for which a stride-s convolution with kernel
// k and dilation d gives ceil(in/s) outputs; extra padding goes at the end
// (ONNX's SAME_UPPER) or, with lower, at the start (SAME_LOWER).
func SamePad(in, k, s, d int, lower bool) (before, after int) {
	out := (in + s - 1) / s
	total := max((out-1)*s+d*(k-1)+1-in, 0)
	before = total / 2
	if lower {
		before = total - total/2
	}
	return before, total - before
}

func (p ConvParams) norm() ConvParams {
	for i := range 2 {
		if p.Stride[i] == 0 {
			p.Stride[i] = 1
		}
		if p.Dilation[i] == 0 {
			p.Dilation[i] = 1
		}
	}
	return p
}

// Conv2d convolves x [N,H,W,C] with w [KH,KW,C,OC] and adds b [OC] if not
// nil, giving [N,OH,OW,OC]. On a no-gradient tape its output is deferred,
// so that a batch norm in evaluation mode, an addition and a ReLU that
// follow run as it stores the output (fuse.go).
func Conv2d(x, w, b *Value, p ConvParams) *Value {
	p = p.norm()
	s := convShape("Conv2d", x, w, b, p)
	if y := deferConv(s, x, w, b); y != nil {
		return y
	}
	if y := convOfBatchNormReLU(s, x, w, b, p); y != nil {
		return y
	}
	y := result([]int{s.N, s.OH(), s.OW(), s.OC}, x, w, b)
	trace(y, OpConv2d, p, x, w, b)
	if y.dry() {
		return y
	}
	pr := y.tape.Precision()
	// The bias (if any) is added as the kernels store the output.
	e := kernels.ConvEpilogue[float32]{Shift: data(b), Stats: convStatsFor(y.tape, pr, b)}
	xb := dataBF16For(pr, s, x, w)
	if xb != nil {
		kernels.ConvForwardFromBF16(s, xb, w.Data.Data, y.Data.Data, e)
		dataBF16Reads.Add(1)
	} else {
		convForwardW(pr, s, x.Data.Data, w, y.Data.Data, e)
	}
	if e.Stats != nil && e.Stats.Done {
		y.stats = e.Stats
	}
	y.bf16Grad = bf16GradFor(y.tape, pr, s, b)
	recordConv(pr, s, x, w, b, y, x.Data.Data, nil, xb)
	return y
}

// recordConv records the backward step of y = Conv2d(x, w, b) at
// precision pr, whose input's values are xd (through in's map where in is
// not nil: x itself was never stored, convOfBatchNormReLU). The output
// gradient is float32, or bfloat16 where the batch norm after y stored it
// so (bf16GradFor), which the kernels read as it is where they take it and
// widened elsewhere. xb, where not nil, is x's bfloat16 copy
// (dataBF16For), which the weight gradient reads.
func recordConv(pr Precision, s kernels.ConvShape, x, w, b, y *Value, xd []float32, in *kernels.ReLUAffine, xb []uint16) {
	record(y, func() {
		tp, dyb := y.tape, y.gradBF16
		dy := func() []float32 { return y.gradF32() }
		// Where this gradient is the last of x's, its batch norm's first
		// pass is made as it is stored (fuse.go's lastGradSums).
		tp.contributeAdd(x, func(dst []float32) {
			if dyb == nil || !kernels.ConvBackwardDataSumsFromBF16(s, dyb, w.Data.Data, dst, false, lastGradSums(x, 1)) {
				convBackwardData(pr, s, dy(), w.Data.Data, dst)
			}
		}, func(dst []float32) {
			if dyb == nil || !kernels.ConvBackwardDataSumsFromBF16(s, dyb, w.Data.Data, dst, true, lastGradSums(x, 2)) {
				convBackwardDataAdd(pr, s, dy(), w.Data.Data, dst)
			}
		})
		tp.contribute(w, func(dst []float32) {
			switch {
			case xb != nil && dyb != nil && kernels.ConvBackwardWeightInputsBF16(s, xb, dyb, dst):
				dataBF16Reads.Add(1)
			case dyb != nil && kernels.ConvBackwardWeightFromBF16(s, xd, in, dyb, dst):
			case in == nil:
				convBackwardWeight(pr, s, xd, dy(), dst)
			case !kernels.ConvBackwardWeightReLUAffineBF16(s, xd, in, dy(), dst):
				x.Realize()
				convBackwardWeight(pr, s, x.Data.Data, dy(), dst)
			}
		})
		tp.contribute(b, func(dst []float32) { kernels.BiasBackward(dy(), dst) })
	}, x, w, b)
}

// convShape checks a convolution's operands (panicking with op's name)
// and returns its geometry.
func convShape(op string, x, w, b *Value, p ConvParams) kernels.ConvShape {
	xs, ws := x.Data.Shape, w.Data.Shape
	if len(xs) != 4 || len(ws) != 4 || xs[3] != ws[2] {
		shapeErr(op, "input %v does not fit weight %v (want NHWC input and HWIO weight with equal C)", xs, ws)
	}
	if b != nil && (b.numel() != ws[3]) {
		shapeErr(op, "bias %v for weight %v", b.Data.Shape, ws)
	}
	s := kernels.ConvShape{N: xs[0], H: xs[1], W: xs[2], C: xs[3], OC: ws[3], KH: ws[0], KW: ws[1],
		SH: p.Stride[0], SW: p.Stride[1], DH: p.Dilation[0], DW: p.Dilation[1],
		PT: p.Pad[0], PL: p.Pad[1], PB: p.Pad[2], PR: p.Pad[3]}
	if err := s.Validate(); err != nil {
		shapeErr(op, "input %v, weight %v: %v", xs, ws, err)
	}
	return s
}

// ConvTranspose2d is the transposed convolution (PyTorch's ConvTranspose2d)
// of x [N,H,W,IC] with w [KH,KW,OC,IC] (residual's layout for PyTorch's
// [IC,OC,KH,KW]; see tensor.IOHWToHWOI) plus b [OC], giving
// [N, (H−1)·s − pt − pb + d·(KH−1) + op + 1, …, OC]. Each output padding
// op must be below the larger of its stride and dilation, as in PyTorch;
// the rows and columns it adds that no input reaches hold the bias.
func ConvTranspose2d(x, w, b *Value, p ConvParams) *Value {
	p = p.norm()
	xs, ws := x.Data.Shape, w.Data.Shape
	if len(xs) != 4 || len(ws) != 4 || xs[3] != ws[3] {
		shapeErr("ConvTranspose2d", "input %v does not fit weight %v (want NHWC input and [KH,KW,OC,IC] weight)", xs, ws)
	}
	if b != nil && b.numel() != ws[2] {
		shapeErr("ConvTranspose2d", "bias %v for weight %v", b.Data.Shape, ws)
	}
	for i, dim := range [2]string{"height", "width"} {
		if op := p.OutputPadding[i]; op < 0 || op >= max(p.Stride[i], p.Dilation[i]) {
			shapeErr("ConvTranspose2d", "%s output padding %d (output padding %v) must be at least 0 and smaller than the larger of the stride %d and the dilation %d, as in PyTorch",
				dim, op, p.OutputPadding, p.Stride[i], p.Dilation[i])
		}
	}
	oh := (xs[1]-1)*p.Stride[0] - p.Pad[0] - p.Pad[2] + p.Dilation[0]*(ws[0]-1) + p.OutputPadding[0] + 1
	ow := (xs[2]-1)*p.Stride[1] - p.Pad[1] - p.Pad[3] + p.Dilation[1]*(ws[1]-1) + p.OutputPadding[1] + 1
	// The equivalent forward convolution maps the output [oh,ow,OC] to the
	// input [H,W,IC]: with a bottom pad pb' it has
	// ⌊((H−1)·s + op − pb + pb')/s⌋ + 1 outputs, H for pb − op ≤ pb' <
	// pb − op + s, and its windows do not depend on pb'. Where no pb' ≥ 0
	// is below pb − op + s (op ≥ pb + s, which a dilation above the stride
	// allows), the last op − pb − s + 1 rows, beyond every input's reach,
	// are left out of it (trim) and hold zeros.
	var trim [2]int
	pad := p.Pad
	for i := range 2 {
		st, op, pb := p.Stride[i], p.OutputPadding[i], p.Pad[i+2]
		trim[i] = max(op-pb-st+1, 0)
		pad[i+2] = min(pb, pb-op+trim[i]+st-1)
	}
	s := kernels.ConvShape{N: xs[0], H: oh - trim[0], W: ow - trim[1], C: ws[2], OC: ws[3], KH: ws[0], KW: ws[1],
		SH: p.Stride[0], SW: p.Stride[1], DH: p.Dilation[0], DW: p.Dilation[1],
		PT: pad[0], PL: pad[1], PB: pad[2], PR: pad[3]}
	// Where the trim leaves no row (or column), the top pad is past every
	// input's reach (pt ≥ H·s + d·(KH−1); with PyTorch's symmetric padding,
	// only for a kernel of 1 there): no input reaches the output, which
	// holds the bias alone, as PyTorch's does.
	if oh >= 1 && ow >= 1 && (s.H < 1 || s.W < 1) && min(xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], ws[2]) >= 1 {
		return convTransposeUnreached(x, w, b, p, []int{s.N, oh, ow, s.C})
	}
	if err := s.Validate(); err != nil || s.OH() != xs[1] || s.OW() != xs[2] {
		shapeErr("ConvTranspose2d", "input %v, weight %v, params %+v give no valid output", xs, ws, p)
	}
	y := result([]int{s.N, oh, ow, s.C}, x, w, b)
	trace(y, OpConvTranspose2d, p, x, w, b)
	if y.dry() {
		return y
	}
	pr := y.tape.Precision()
	if trim == [2]int{} {
		convBackwardData(pr, s, x.Data.Data, w.Data.Data, y.Data.Data)
	} else {
		z := y.tape.alloc(s.N * s.H * s.W * s.C)
		convBackwardData(pr, s, x.Data.Data, w.Data.Data, z)
		kernels.CropBackward(s.N, oh, ow, s.C, 0, 0, s.H, s.W, z, y.Data.Data) // z at the top left, zeros past it
		if y.tape != nil {
			y.tape.release(z)
		}
	}
	if b != nil {
		kernels.BiasForward(y.Data.Data, b.Data.Data)
	}
	record(y, func() {
		tp, dy := y.tape, y.Grad.Data
		dz := dy
		if trim != [2]int{} && (x.needsGrad || w.needsGrad) {
			dz = tp.alloc(s.N * s.H * s.W * s.C)
			kernels.CropForward(s.N, oh, ow, s.C, 0, 0, s.H, s.W, dy, dz)
		}
		tp.contribute(x, func(dst []float32) { convForward(pr, s, dz, w.Data.Data, dst, kernels.ConvEpilogue[float32]{}) })
		tp.contribute(w, func(dst []float32) { convBackwardWeight(pr, s, dz, x.Data.Data, dst) })
		if len(dz) != len(dy) {
			tp.release(dz)
		}
		tp.contribute(b, func(dst []float32) { kernels.BiasBackward(dy, dst) })
	}, x, w, b)
	return y
}

// convTransposeUnreached is ConvTranspose2d(x, w, b, p) of output shape
// where no input reaches any output: the output is b (zeros without one),
// x and w get zero gradients.
func convTransposeUnreached(x, w, b *Value, p ConvParams, shape []int) *Value {
	y := result(shape, x, w, b)
	trace(y, OpConvTranspose2d, p, x, w, b)
	if y.dry() {
		return y
	}
	clear(y.Data.Data) // a recycled buffer is not cleared
	if b != nil {
		kernels.BiasForward(y.Data.Data, b.Data.Data)
	}
	record(y, func() {
		tp, dy := y.tape, y.Grad.Data
		zero := func(dst []float32) { clear(dst) }
		tp.contribute(x, zero)
		tp.contribute(w, zero)
		tp.contribute(b, func(dst []float32) { kernels.BiasBackward(dy, dst) })
	}, x, w, b)
	return y
}
