package autograd

import (
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// BatchNormParams configure BatchNorm.
type BatchNormParams struct {
	// Training selects batch statistics (and updates the running ones);
	// otherwise the running statistics normalise.
	Training bool
	Momentum float64 // PyTorch's momentum (0.1 by default in nn)
	Eps      float64 // added to the variance (1e-5 by default in nn)
	// Sync, when set, makes a training-mode batch norm use the statistics
	// of the whole batch across processes (synchronised batch norm): it is
	// called with per-channel sums and must replace them, in place, by
	// their sums over every process (an all-reduce), in the same order on
	// every process. Package distributed provides one.
	Sync func(sums []float64) `json:"-"`
}

// BatchNorm normalises x over every axis but the last (channels): NHWC
// images ([N,H,W,C], BatchNorm2d) or [N,C] features (BatchNorm1d). gamma and
// beta ([C]) may be nil. runMean and runVar ([C]) are read in evaluation
// mode and updated in training mode (the unbiased batch variance goes into
// runVar, as in PyTorch). On a tape its output is deferred, so that an
// addition and a ReLU that follow run in its pass over memory, forward and
// backward, and after a deferred convolution in inference it folds into the
// convolution (fuse.go).
func BatchNorm(x, gamma, beta *Value, runMean, runVar *tensor.Tensor, p BatchNormParams) *Value {
	checkBatchNorm("BatchNorm", x, gamma, beta, runMean, runVar, p)
	if y := deferBatchNorm(x, gamma, beta, runMean, runVar, p); y != nil {
		return y
	}
	y := result(x.Data.Shape, x, gamma, beta)
	trace(y, OpBatchNorm, BatchNormAttrs{p, runMean, runVar}, x, gamma, beta)
	if y.dry() {
		return y
	}
	batchNorm(y, x, gamma, beta, nil, false, runMean, runVar, p)
	return y
}

// checkBatchNorm validates a batch norm's operands, panicking with
// op's name.
func checkBatchNorm(op string, x, gamma, beta *Value, runMean, runVar *tensor.Tensor, p BatchNormParams) {
	xs := x.Data.Shape
	c := xs[len(xs)-1]
	m := x.numel() / c
	for _, v := range []*Value{gamma, beta} {
		if v != nil && v.numel() != c {
			shapeErr(op, "affine parameter %v for input %v", v.Data.Shape, xs)
		}
	}
	for _, t := range []*tensor.Tensor{runMean, runVar} {
		if t != nil && t.Len() != c {
			shapeErr(op, "running statistic %v for input %v", t.Shape, xs)
		}
	}
	if !p.Training && (runMean == nil || runVar == nil) {
		shapeErr(op, "evaluation mode needs running statistics")
	}
	if p.Training && m < 2 {
		shapeErr(op, "training needs more than one value per channel, input %v", xs)
	}
}

// batchNormBuffers returns the kernels' Fused for y's backward pass (the
// output's mask and a buffer for the skip's gradient) and the buffer for
// x's gradient. When dy dies with this step, the kernels write over it
// (they read each element before writing it): the skip's gradient (the
// masked dy) if the skip can take the buffer over, else x's. Writing over
// dy, whose lines the pass has just read, saves a fresh buffer's reads
// for ownership.
func batchNormBuffers(y, x, skip *Value, relu bool, dy []float32, wantDX bool) (kernels.Fused[float32], []float32) {
	tp := y.tape
	bf := kernels.Fused[float32]{ReLU: relu, Y: y.Data.Data}
	var dx []float32
	if skip != nil && skip.needsGrad {
		if y.handsOn(skip) {
			bf.DSkip, y.gradLent = dy, true
		} else {
			bf.DSkip = tp.alloc(len(dy))
		}
	}
	switch {
	case !wantDX:
	case !y.gradLent && y.handsOn(x):
		dx, y.gradLent = dy, true
	default:
		dx = tp.alloc(len(dy))
	}
	return bf, dx
}

// recordBatchNormTrain records a training batch norm's backward pass (the
// batch's mean and invStd; mask, where not nil, the map its ReLU's mask is
// recomputed through from x, instead of reading the output).
func recordBatchNormTrain(y, x, gamma, beta, skip *Value, relu bool, mean, invStd []float32, mask *kernels.ReLUAffine) {
	c := len(mean)
	m := x.numel() / c
	g := data(gamma)
	record(y, func() {
		tp, dy := y.tape, y.gradF32()
		dg, db := tp.alloc(c), tp.alloc(c)
		// The first pass, where the convolution that read y made it (it
		// was asked with this batch norm's own mask source: gradSumsFor).
		var sums []float64
		if gs := y.gradSums; gs != nil && gs.Done {
			sums = gs.Sums
			gradSumsTaken.Add(1)
		}
		y.gradSums = nil
		if x.bf16Grad && x.uses == 1 && x.needsGrad && x.Grad == nil && !x.retain && !x.requiresGrad &&
			kernels.BatchNormBackwardToBF16OK(c, mask != nil) {
			// Only a bfloat16 convolution's backward step reads x's
			// gradient, as bfloat16, and this batch norm is x's only
			// reader (no other gradient is added to it): stored so (half
			// the bytes written and read twice).
			bf, _ := batchNormBuffers(y, x, skip, relu, dy, false)
			if mask != nil {
				bf.Y, bf.Mask = nil, mask
			}
			bf.Sums = sums
			buf := tp.alloc((len(dy) + 1) / 2)
			dxb := kernels.BF16Of(buf, len(dy))
			if !kernels.BatchNormTrainBackwardToBF16(m, c, x.Data.Data, g, mean, invStd, dy, dxb, dg, db, bf) {
				panic("autograd: BatchNormTrainBackwardToBF16 refused what BatchNormBackwardToBF16OK promised")
			}
			x.gradBF16, x.gradBF16Buf = dxb, buf
			bf16GradsStored.Add(1)
			tp.give(gamma, dg)
			tp.give(beta, db)
			tp.give(skip, bf.DSkip)
			return
		}
		bf, dx := batchNormBuffers(y, x, skip, relu, dy, true)
		if mask != nil {
			bf.Y, bf.Mask = nil, mask
		}
		bf.Sums = sums
		kernels.BatchNormTrainBackward(m, c, x.Data.Data, g, mean, invStd, dy, dx, dg, db, bf)
		tp.give(x, dx) // fresh buffers (or dy's): the inputs take them over
		tp.give(gamma, dg)
		tp.give(beta, db)
		tp.give(skip, bf.DSkip)
	}, x, gamma, beta, skip)
}

// batchNormStats is batchNorm in training with a ReLU and no skip for y
// (deferred: op's output, ReLU'd), less the output: the batch's
// statistics, the running statistics' update and the backward pass, which
// recomputes the ReLU's mask from x (kernels.Fused.Mask). It returns the
// map from x to y, or nil (having done nothing) where the kernels lack
// the per-channel passes for x's channels.
func batchNormStats(y *Value, op *bnDeferred) *kernels.ReLUAffine {
	x, gamma, beta, p := op.x, op.gamma, op.beta, op.p
	xs := x.Data.Shape
	c := xs[len(xs)-1]
	m := x.numel() / c
	rm, rv := op.runMean, op.runVar
	if *op.updated {
		rm, rv = nil, nil // the batch's statistics went into them already
	}
	mean, invStd := make([]float32, c), make([]float32, c)
	in, ok := kernels.BatchNormTrainStats(m, c, x.Data.Data, data(gamma), data(beta), mean, invStd, data32(rm), data32(rv), p.Momentum, p.Eps, x.stats)
	if !ok {
		return nil
	}
	*op.updated = true
	y.gradSums = gradSumsFor(y, x, mean, in)
	recordBatchNormTrain(y, x, gamma, beta, nil, true, mean, invStd, in)
	return in
}

// batchNorm computes y = BatchNorm(x) (+ skip, then ReLU when relu) and
// records its backward pass.
func batchNorm(y, x, gamma, beta, skip *Value, relu bool, runMean, runVar *tensor.Tensor, p BatchNormParams) {
	xs := x.Data.Shape
	c := xs[len(xs)-1]
	m := x.numel() / c
	g, b := data(gamma), data(beta)
	f := kernels.Fused[float32]{Skip: data(skip), ReLU: relu, XStats: x.stats}
	if p.Training && p.Sync != nil {
		syncBatchNorm(y, x, gamma, beta, skip, relu, runMean, runVar, p)
		return
	}
	if p.Training && relu && skip == nil && kernels.MaskFromXOK(c) {
		// The output is stored, but the backward pass recomputes the
		// ReLU's mask from x instead of reading it (two passes over the
		// output fewer).
		mean, invStd := make([]float32, c), make([]float32, c)
		in, _ := kernels.BatchNormTrainStats(m, c, x.Data.Data, g, b, mean, invStd, data32(runMean), data32(runVar), p.Momentum, p.Eps, x.stats)
		kernels.ApplyReLUAffine(m, c, x.Data.Data, in, y.Data.Data)
		y.gradSums = gradSumsFor(y, x, mean, in)
		recordBatchNormTrain(y, x, gamma, beta, nil, true, mean, invStd, in)
		return
	}
	if p.Training {
		mean, invStd := make([]float32, c), make([]float32, c)
		if relu && skip != nil && storesDataBF16(y, c) { // for the bfloat16 convolution that reads y next (fuse.go)
			y.dataBF16Buf = y.tape.alloc((len(y.Data.Data) + 1) / 2)
			y.dataBF16 = kernels.BF16Of(y.dataBF16Buf, len(y.Data.Data))
			f.YB = y.dataBF16
		}
		kernels.BatchNormTrainForward(m, c, x.Data.Data, g, b, y.Data.Data, mean, invStd, data32(runMean), data32(runVar), p.Momentum, p.Eps, f)
		if relu {
			y.gradSums = gradSumsFor(y, x, mean, nil)
		}
		recordBatchNormTrain(y, x, gamma, beta, skip, relu, mean, invStd, nil)
		return
	}
	kernels.BatchNormEvalForward(m, c, x.Data.Data, g, b, runMean.Data, runVar.Data, y.Data.Data, p.Eps, f)
	record(y, func() {
		tp, dy := y.tape, y.Grad.Data
		bf, dx := batchNormBuffers(y, x, skip, relu, dy, true)
		dg, db := tp.alloc(c), tp.alloc(c)
		kernels.BatchNormEvalBackward(m, c, x.Data.Data, g, runMean.Data, runVar.Data, dy, dx, dg, db, p.Eps, bf)
		tp.give(x, dx)
		tp.give(gamma, dg)
		tp.give(beta, db)
		tp.give(skip, bf.DSkip)
	}, x, gamma, beta, skip)
}

func data(v *Value) []float32 {
	if v == nil {
		return nil
	}
	return v.Data.Data
}

func data32(t *tensor.Tensor) []float32 {
	if t == nil {
		return nil
	}
	return t.Data
}

// PoolParams are the geometry of 2-D pooling. Zero strides default to the
// kernel size (PyTorch's default), zero dilations to 1.
type PoolParams struct {
	Kernel   [2]int
	Stride   [2]int
	Dilation [2]int // max pooling only
	Pad      [4]int // top, left, bottom, right
	CeilMode bool
	// CountIncludePad: average pooling divides by the full window (padding
	// included) rather than by the real inputs in it.
	CountIncludePad bool
}

// norm gives the zero fields their meaning: a stride of 0 is the
// kernel's size (PyTorch's default), a dilation of 0 is 1. The pools
// trace the normalised parameters, so that what reads a traced graph
// (exporters, package quant) sees the strides the pool used.
func (p PoolParams) norm() PoolParams {
	for i := range 2 {
		if p.Stride[i] == 0 {
			p.Stride[i] = p.Kernel[i]
		}
		if p.Dilation[i] == 0 {
			p.Dilation[i] = 1
		}
	}
	return p
}

func poolShape(op string, x *Value, p PoolParams) kernels.PoolShape {
	xs := x.Data.Shape
	if len(xs) != 4 {
		shapeErr(op, "needs an NHWC input, got %v", xs)
	}
	p = p.norm()
	s := kernels.PoolShape{N: xs[0], H: xs[1], W: xs[2], C: xs[3], KH: p.Kernel[0], KW: p.Kernel[1],
		SH: p.Stride[0], SW: p.Stride[1], DH: p.Dilation[0], DW: p.Dilation[1],
		PT: p.Pad[0], PL: p.Pad[1], PB: p.Pad[2], PR: p.Pad[3], CeilMode: p.CeilMode, CountIncludePad: p.CountIncludePad}
	if s.KH >= 1 && s.KW >= 1 && s.DH >= 1 && s.DW >= 1 {
		halfWindowPad(op, p)
	}
	if err := s.Validate(); err != nil {
		shapeErr(op, "input %v: %v", xs, err)
	}
	return s
}

// halfWindowPad refuses PyTorch's way a pad past half the effective
// kernel size, dilation·(kernel−1)+1 (dilation 1 for average pooling), on
// each side of each dimension: PyTorch's pools refuse it ("pad should be
// at most half of effective kernel size"). The kernels compute wider
// padding (interop/onnx runs ONNX's, which allows a pad up to the
// kernel's size less one, through them), but a PyTorch model never has it.
func halfWindowPad(op string, p PoolParams) {
	for i, dim := range [2]string{"height", "width"} {
		eff := p.Dilation[i]*(p.Kernel[i]-1) + 1
		if pad := max(p.Pad[i], p.Pad[i+2]); pad > eff/2 {
			shapeErr(op, "%s padding %d (pads %v: top, left, bottom, right) is past half the effective kernel size %d (kernel %d, dilation %d): pad should be at most %d, as in PyTorch",
				dim, pad, p.Pad, eff, p.Kernel[i], p.Dilation[i], eff/2)
		}
	}
}

// MaxPool2d max-pools x [N,H,W,C].
func MaxPool2d(x *Value, p PoolParams) *Value {
	p = p.norm()
	s := poolShape("MaxPool2d", x, p)
	y := result([]int{s.N, s.OH(), s.OW(), s.C}, x)
	trace(y, OpMaxPool2d, p, x)
	if y.dry() {
		return y
	}
	arg := y.tape.allocInt32(y.numel())
	kernels.MaxPoolForward(s, x.Data.Data, y.Data.Data, arg)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) { kernels.MaxPoolBackward(y.Grad.Data, arg, dst) })
	}, x)
	return y
}

// AvgPool2d average-pools x [N,H,W,C].
func AvgPool2d(x *Value, p PoolParams) *Value {
	p.Dilation = [2]int{1, 1}
	p = p.norm()
	s := poolShape("AvgPool2d", x, p)
	y := result([]int{s.N, s.OH(), s.OW(), s.C}, x)
	trace(y, OpAvgPool2d, p, x)
	if y.dry() {
		return y
	}
	kernels.AvgPoolForward(s, x.Data.Data, y.Data.Data)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) { kernels.AvgPoolBackward(s, y.Grad.Data, dst) })
	}, x)
	return y
}

// GlobalAvgPool averages x [N,H,W,C] over H and W, giving [N,C].
func GlobalAvgPool(x *Value) *Value {
	xs := x.Data.Shape
	if len(xs) != 4 {
		shapeErr("GlobalAvgPool", "needs an NHWC input, got %v", xs)
	}
	n, hw, c := xs[0], xs[1]*xs[2], xs[3]
	y := result([]int{n, c}, x)
	trace(y, OpGlobalAvgPool, nil, x)
	if y.dry() {
		return y
	}
	kernels.GlobalAvgPoolForward(n, hw, c, x.Data.Data, y.Data.Data)
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) { kernels.GlobalAvgPoolBackward(n, hw, c, y.Grad.Data, dst) })
	}, x)
	return y
}
