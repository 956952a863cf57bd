package autograd

import (
	"math"
	"sync/atomic"

	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// Fusion is decided in this file and nowhere else.
//
// A residual network spends much of its time outside the convolutions, in
// passes over memory: a batch norm, the residual addition and a ReLU read
// and write every activation three times. Two producers therefore leave
// their output deferred — shaped, but not yet computed — so that what
// follows can join them:
//
//   - a batch norm on a tape (training, or evaluation between training
//     steps): an Add of another value and then a ReLU join it, and it runs
//     as one pass forward and one backward that keeps only the final output
//     (kernels.BatchNormTrainForward/…Backward with a kernels.Fused);
//   - a convolution whose output needs no gradient, on a no-gradient tape
//     (inference): a batch norm in evaluation mode folds into a scale and a
//     shift of the convolution's output, then an Add and a ReLU join it, and
//     the kernels apply them all as they store the output
//     (kernels.ConvForwardEpilogue).
//
// Any other use of a deferred value computes it first (Realize): the
// operations of this package do so for their inputs, and so does Backward.
// Values without a tape (Constant, Param) are never deferred, and neither are
// values on a tape with a tracer or a layer hook (which must see every
// operation) or on a shape tape. Models therefore say nothing about fusion:
// relu(bn2(conv2(out)) + shortcut(x)) is one fused operation where it can
// be, and three where it cannot.

// A batch norm in training also reads its input once for the batch's
// statistics before it normalises it. Where the kernels compute a
// convolution's output statistics as they store it (kernels.ConvStats:
// bfloat16 on AMX tiles), a convolution on a training tape asks for them
// and leaves them on its output, and a batch norm of that value takes them
// (kernels.Fused.XStats) instead of reading it for them. The convolution
// cannot know what reads its output next: it asks whenever it may, and
// where no batch norm follows (ResNets and U-Nets have no such bias-free
// convolution) the statistics cost their sums over tiles already in
// cache, and a large output is streamed to memory all the same (kernels'
// streamedOutput).

// A batch norm's ReLU'd output on a bfloat16 training tape stays deferred
// after the ReLU (the ReLU of a batch norm without a skip addition): a
// convolution that reads it next (ResNet's conv2 after bn1 and ReLU)
// computes it as it converts its input to bfloat16
// (kernels.ConvForwardReLUAffineBF16) and as its weight gradient pairs
// the input, and the batch norm's backward pass recomputes its ReLU's mask
// from its own input (kernels.Fused.Mask): the output is never stored, a
// pass of writes and three of reads fewer (convOfBatchNormReLU). Anything
// else that reads it computes it (Realize), as before. The batch norm's
// backward step is recorded where the convolution reads it rather than at
// the ReLU: the results are the unfused ones bit for bit unless something
// recorded in between also adds to the batch norm's input gradient (the
// same sum, in another order).

// reluAffineInputs switches that fusion (the tests compare both ways).
var reluAffineInputs = true

// A training batch norm's backward step starts with a pass over its
// output gradient, its input and its ReLU's mask source for the sums Σg
// and Σg·(x − mean), g the gradient where the ReLU passes. On a bfloat16
// tape the convolution that reads the batch norm's ReLU'd output makes
// that pass as its data gradient stores each block of the gradient, in
// cache, reading the batch norm's input (and stored output, for the mask
// after a skip addition) beside it (kernels.DataGradSums, where AMX tiles
// compute the gradient), where the gradient it stores is the last of the
// output's: the convolution is the output's only reader (ResNet's conv2
// after bn1), or one of two and the other's gradient is in (a block's
// output, which the next block's conv1 and skip addition read; the skip's
// is recorded later, so it comes first). After a skip addition the
// gradient is stored masked, as the pass would have written it for the
// skip. The sums are added in another order (float32 over a tile group's
// 256 positions instead of the pass's 256 rows), so the gradients differ
// from the unfused ones by rounding.

// A bfloat16 convolution converts its float32 input to bfloat16 twice:
// for its forward pass's staging and for its weight gradient's pairs.
// A residual block's output — its second batch norm, skip addition and
// ReLU, computed in one pass at the ReLU — is read next by the next
// block's conv1. On a bfloat16 training tape that pass stores the output
// in bfloat16 too (kernels.Fused.YB: the bits the staging would make),
// and a convolution that finds such a copy on its input reads it both
// times (kernels.ConvForwardFromBF16, ConvBackwardWeightInputsBF16): half
// a write more, two conversions and half the bytes of two reads fewer.
// Results are the same bit for bit. The float32 output is still stored:
// the next skip addition and the batch norm's own backward pass read it.
// The copy is a tape buffer held until the tape's Reset, as the output
// is: training holds half again of its block outputs' bytes. Only where
// AMX tiles compute the convolutions (kernels.AMXBF16), which read such
// copies; where none reads it (a network's last block, a strided 1×1
// shortcut), it is written for nothing.

// dataBF16Inputs switches that (the tests compare both ways);
// dataBF16Reads counts the convolutions' forward passes and weight
// gradients that read such a copy (for the tests).
var (
	dataBF16Inputs = true
	dataBF16Reads  atomic.Int64
)

// storesDataBF16 reports whether a training batch norm with a skip
// addition and ReLU, of c channels, stores its output y in bfloat16 too.
func storesDataBF16(y *Value, c int) bool {
	tp := y.tape
	return dataBF16Inputs && tp != nil && tp.Precision() == BF16 && !tp.noGrad && tp.plans == nil && kernels.AMXBF16() && kernels.BatchNormForwardToBF16OK(c)
}

// dataBF16For returns x's bfloat16 copy where a convolution of shape s at
// precision pr with weight w reads it (storesDataBF16 stored it), else nil.
func dataBF16For(pr Precision, s kernels.ConvShape, x, w *Value) []uint16 {
	if pr != BF16 || x.dataBF16 == nil || w.sealed != nil || !kernels.InputBF16OK(s) {
		return nil
	}
	return x.dataBF16
}

// gradSumsInData switches that (the tests compare both ways);
// gradSumsTaken counts the batch norms that took the sums (for the tests).
var (
	gradSumsInData = true
	gradSumsTaken  atomic.Int64
)

// gradSumsFor returns what a batch norm in training on y's tape, of input
// x with batch mean mean, asks the convolution that reads its output y
// for (y.gradSums): with in, its ReLU's map from x, else its ReLU's
// stored output y; nil off a bfloat16 tape.
func gradSumsFor(y, x *Value, mean []float32, in *kernels.ReLUAffine) *kernels.DataGradSums {
	if !gradSumsInData || y.tape == nil || y.tape.Precision() != BF16 || y.tape.noGrad {
		return nil
	}
	if in != nil {
		return &kernels.DataGradSums{X: x.Data.Data, Mean: mean, Mask: in}
	}
	return &kernels.DataGradSums{X: x.Data.Data, Mean: mean, Y: y.Data.Data}
}

// lastGradSums returns x.gradSums where a convolution's data gradient
// that is the uses-th contribution to x's gradient makes x's batch norm's
// first pass: x has exactly uses readers (so it is the last), and where
// the gradient is stored masked nothing else reads it; nil elsewhere.
func lastGradSums(x *Value, uses int32) *kernels.DataGradSums {
	gs := x.gradSums
	if gs == nil || x.uses != uses || gs.Y != nil && (x.retain || x.requiresGrad) {
		return nil
	}
	return gs
}

// reluAffineDeferred is the output of a batch norm and ReLU whose
// statistics and backward pass are done, left to be computed from its
// input x (in's map) if anything reads it.
type reluAffineDeferred struct {
	x  *Value
	in *kernels.ReLUAffine
}

// keepsReLUDeferred reports whether a ReLU of d's value stays deferred
// for a convolution to compute as it reads it: a training batch norm with
// no skip addition (and no synchronised statistics) on a bfloat16 tape.
func keepsReLUDeferred(tp *Tape, d *deferred) bool {
	if !reluAffineInputs || d == nil || d.skip != nil || tp.Precision() != BF16 || tp.plans != nil || tp.noGrad {
		return false
	}
	op, ok := d.op.(*bnDeferred)
	return ok && op.p.Training && op.p.Sync == nil
}

// convOfBatchNormReLU returns Conv2d(x, w, b) where x is a batch norm's
// ReLU'd output left deferred for it (keepsReLUDeferred) and the kernels
// take the shape, else nil. The batch norm's statistics are computed and
// its backward pass recorded first (what Realize would have done, less the
// output), then the convolution reads its input through the map.
func convOfBatchNormReLU(s kernels.ConvShape, x, w, b *Value, p ConvParams) *Value {
	d := x.lazy
	if d == nil || !d.relu || w.sealed != nil || !keepsReLUDeferred(x.tape, d) || !kernels.ConvReLUAffineBF16OK(s) {
		return nil
	}
	op := d.op.(*bnDeferred)
	in := batchNormStats(x, op)
	if in == nil {
		return nil
	}
	x.lazy = &deferred{op: &reluAffineDeferred{x: op.x, in: in}, relu: true}
	tp, bx := x.tape, op.x
	w.Realize()
	b.Realize()
	y := &Value{Data: tp.newTensor([]int{s.N, s.OH(), s.OW(), s.OC}), tape: tp}
	trace(y, OpConv2d, p, x, w, b)
	e := kernels.ConvEpilogue[float32]{Shift: data(b), Stats: convStatsFor(tp, BF16, b)}
	kernels.ConvForwardReLUAffineBF16(s, bx.Data.Data, in, w.Data.Data, y.Data.Data, e)
	if e.Stats != nil && e.Stats.Done {
		y.stats = e.Stats
	}
	y.bf16Grad = bf16GradFor(tp, BF16, s, b)
	recordConv(BF16, s, x, w, b, y, bx.Data.Data, in, nil)
	return y
}

// A bfloat16 convolution's backward step converts its output gradient to
// bfloat16 twice, for the data gradient's staging and the weight
// gradient's pairs. Where the kernels take it so (kernels.ConvGradBF16OK:
// AMX tiles) and a training batch norm is the output's only reader
// (Value.uses), the batch norm stores it as bfloat16
// (kernels.BatchNormTrainBackwardToBF16, bit for bit the conversion the
// convolution would make): half the bytes written and read twice. A
// reader that needs it in float32 widens it (Value.gradF32; exact).

// bf16GradFor reports whether a convolution of shape s on tp at precision
// pr, with bias b, takes its output gradient as bfloat16.
func bf16GradFor(tp *Tape, pr Precision, s kernels.ConvShape, b *Value) bool {
	return bf16GradInputs && pr == BF16 && b == nil && tp != nil && !tp.noGrad && tp.plans == nil && kernels.ConvGradBF16OK(s)
}

// bf16GradInputs switches that (the tests compare both ways);
// bf16GradsStored counts the gradients stored so (for the tests).
var (
	bf16GradInputs  = true
	bf16GradsStored atomic.Int64
)

// convStatsFor returns what a convolution on tp at precision pr, with bias
// b, asks its kernels to fill with its output's statistics; nil where none
// would compute them (float32), where the bias makes the stored outputs
// other than the sums, or where fusion is off.
func convStatsFor(tp *Tape, pr Precision, b *Value) *kernels.ConvStats {
	if !tp.fuses() || tp.noGrad || pr != BF16 || b != nil {
		return nil
	}
	return new(kernels.ConvStats)
}

// deferred is what a deferred value will be: its producer's computation,
// then + skip, then ReLU'd.
type deferred struct {
	op   any // *convDeferred, *bnDeferred or *reluAffineDeferred
	skip *Value
	relu bool
}

// convDeferred is a convolution (with its bias, and the batch norm in
// evaluation mode that may have folded into it) whose output nobody has
// read yet.
type convDeferred struct {
	s            kernels.ConvShape
	x, w, b      *Value
	scale, shift []float32 // per output channel; nil: 1 and 0
}

// bnDeferred is a batch norm whose output nobody has read yet.
type bnDeferred struct {
	x, gamma, beta  *Value
	runMean, runVar *tensor.Tensor
	p               BatchNormParams
	// updated is shared by every value computed from this application of
	// the batch norm: its running statistics are updated once, by the
	// first of them to be realized.
	updated *bool
}

// fuses reports whether operations on tp may defer their outputs: the one
// predicate of fusion. Values without a tape are computed at once (their
// callers read Data straight away); a tracer, a layer hook and a shape
// tape must see each operation as itself.
func (tp *Tape) fuses() bool {
	return tp != nil && tp.tracer == nil && tp.hook == nil && !tp.shapeOnly
}

// records reports whether an operation on tp with inputs xs records a
// backward step (the condition of record).
func records(tp *Tape, xs ...*Value) bool {
	if tp == nil || tp.noGrad {
		return false
	}
	for _, x := range xs {
		if x != nil && x.needsGrad {
			return true
		}
	}
	return false
}

// deferValue returns a value of the given shape on tp that d will compute
// when it is realized.
func deferValue(tp *Tape, shape []int, d *deferred, needsGrad bool) *Value {
	return &Value{Data: &tensor.Tensor{Shape: append([]int(nil), shape...)}, tape: tp, lazy: d, needsGrad: needsGrad}
}

// open reports whether an Add can still join d (no skip, no ReLU yet).
func (d *deferred) open() bool { return d != nil && d.skip == nil && !d.relu }

// Realize computes v's data if an operation left it deferred (see the
// fusion rules in this package's fuse.go: a batch norm's output on a tape,
// a convolution's on a no-gradient tape, until the addition and ReLU that
// follow are known). Operations and Backward realize their inputs
// themselves; code that reads Data of a value produced on a tape calls
// Realize first, or reads it through Tensor.
func (v *Value) Realize() {
	if v == nil || v.lazy == nil {
		return
	}
	d := v.lazy
	v.lazy = nil
	if v.tape.plans != nil { // a step of the memory plan reading what the producer reads (memplan.go)
		switch op := d.op.(type) {
		case *convDeferred:
			v.tape.memStep(op.x, op.w, op.b, d.skip)
		case *bnDeferred:
			v.tape.memStep(op.x, op.gamma, op.beta, d.skip)
		}
	}
	skip := data(d.skip)
	if op, ok := d.op.(*convDeferred); ok && d.skip != nil {
		// The skip's last reader: the output takes its buffer and the
		// residual is added in place (the next allocation of its size is
		// the buffer just released).
		v.tape.memReleaseLast(d.skip, op.x, op.w, op.b)
	}
	v.Data.Data = v.tape.alloc(v.numel())
	v.tape.memOwn(v)
	switch op := d.op.(type) {
	case *reluAffineDeferred:
		c := op.x.Data.Shape[len(op.x.Data.Shape)-1]
		kernels.ApplyReLUAffine(op.x.numel()/c, c, op.x.Data.Data, op.in, v.Data.Data)
	case *convDeferred:
		convForwardW(v.tape.Precision(), op.s, op.x.Data.Data, op.w, v.Data.Data,
			kernels.ConvEpilogue[float32]{Scale: op.scale, Shift: op.shift, Skip: skip, ReLU: d.relu})
	case *bnDeferred:
		rm, rv := op.runMean, op.runVar
		if op.p.Training {
			if *op.updated {
				rm, rv = nil, nil // the batch's statistics went into them already
			}
			*op.updated = true
		}
		batchNorm(v, op.x, op.gamma, op.beta, d.skip, d.relu, rm, rv, op.p)
	}
}

// Tensor returns v's data, computing it first if it was deferred.
func (v *Value) Tensor() *tensor.Tensor {
	v.Realize()
	v.memCheck()
	return v.Data
}

// deferConv returns Conv2d's output deferred when the tape fuses and no
// gradient will flow through it, else nil.
func deferConv(s kernels.ConvShape, x, w, b *Value) *Value {
	tp := tapeOf(x, w, b)
	if !tp.fuses() || records(tp, x, w, b) {
		return nil
	}
	x.Realize()
	return deferValue(tp, []int{s.N, s.OH(), s.OW(), s.OC}, &deferred{op: &convDeferred{s: s, x: x, w: w, b: b, shift: data(b)}}, false)
}

// deferBatchNorm returns BatchNorm's output deferred when the tape fuses,
// else nil. A batch norm in evaluation mode after a deferred convolution
// folds into it.
func deferBatchNorm(x, gamma, beta *Value, runMean, runVar *tensor.Tensor, p BatchNormParams) *Value {
	tp := tapeOf(x, gamma, beta)
	if !tp.fuses() {
		return nil
	}
	if c, ok := x.lazy.opConv(); ok && !p.Training && c.scale == nil && !records(tp, gamma, beta) {
		if tp.plans != nil { // the fold reads them now
			tp.memStep(gamma, beta, c.b)
		}
		scale, shift := foldBatchNorm(data(gamma), data(beta), c.shift, runMean.Data, runVar.Data, p.Eps)
		fc := *c
		fc.scale, fc.shift = scale, shift
		return deferValue(tp, x.Data.Shape, &deferred{op: &fc}, false)
	}
	x.Realize()
	d := &bnDeferred{x: x, gamma: gamma, beta: beta, runMean: runMean, runVar: runVar, p: p, updated: new(bool)}
	return deferValue(tp, x.Data.Shape, &deferred{op: d}, records(tp, x, gamma, beta))
}

// opConv returns the deferred convolution of d if d is one that nothing has
// joined yet.
func (d *deferred) opConv() (*convDeferred, bool) {
	if !d.open() {
		return nil, false
	}
	c, ok := d.op.(*convDeferred)
	return c, ok
}

// deferAdd returns a + b deferred when one of them is a deferred value
// that an addition can join (the other becomes its skip), else nil.
func deferAdd(a, b *Value) *Value {
	if !a.lazy.open() {
		a, b = b, a
	}
	if !a.lazy.open() || !tensor.SameShape(a.Data.Shape, b.Data.Shape) {
		return nil
	}
	tp := tapeOf(a, b)
	_, conv := a.lazy.op.(*convDeferred)
	if conv && records(tp, b) {
		return nil // a convolution's epilogue has no backward pass for the skip
	}
	b.Realize()
	return deferValue(tp, a.Data.Shape, &deferred{op: a.lazy.op, skip: b}, a.needsGrad || records(tp, b))
}

// fuseReLU returns ReLU(x) computed in x's deferred operation, or nil when
// x is not deferred or is a ReLU's output already (a batch norm's ReLU
// left deferred for a convolution: the second ReLU is an operation of its
// own, with its own backward step).
func fuseReLU(x *Value) *Value {
	if x.lazy == nil || x.lazy.relu {
		return nil
	}
	y := deferValue(x.tape, x.Data.Shape, &deferred{op: x.lazy.op, skip: x.lazy.skip, relu: true}, x.needsGrad)
	if !keepsReLUDeferred(x.tape, y.lazy) {
		y.Realize()
	}
	return y
}

// foldBatchNorm returns the per-channel scale and shift that a batch norm
// in evaluation mode applies to conv + bias (bias may be nil): scale =
// γ/√(var+ε), shift = β + (bias − mean)·scale, computed in float64. A nil
// γ is 1 and a nil β 0.
func foldBatchNorm(gamma, beta, bias, runMean, runVar []float32, eps float64) (scale, shift []float32) {
	scale, shift = make([]float32, len(runMean)), make([]float32, len(runMean))
	for c := range scale {
		g, bt, b := 1.0, 0.0, 0.0
		if gamma != nil {
			g = float64(gamma[c])
		}
		if beta != nil {
			bt = float64(beta[c])
		}
		if bias != nil {
			b = float64(bias[c])
		}
		sc := g / math.Sqrt(float64(runVar[c])+eps)
		scale[c] = float32(sc)
		shift[c] = float32(bt + (b-float64(runMean[c]))*sc)
	}
	return scale, shift
}

// FoldBatchNorm returns the weights and bias of a convolution (weight
// HWIO, bias nil or [OC]) followed by a batch norm in evaluation mode as
// one convolution: w·scale and shift per output channel (see
// foldBatchNorm), as PyTorch's fuse_conv_bn_eval. nn.FoldBatchNorm applies
// it to a model.
func FoldBatchNorm(w, bias, gamma, beta, runMean, runVar *tensor.Tensor, eps float64) (fw, fb *tensor.Tensor) {
	oc := w.Shape[len(w.Shape)-1]
	d := func(t *tensor.Tensor) []float32 {
		if t == nil {
			return nil
		}
		return t.Data
	}
	if runMean.Len() != oc || runVar.Len() != oc || (gamma != nil && gamma.Len() != oc) || (beta != nil && beta.Len() != oc) || (bias != nil && bias.Len() != oc) {
		shapeErr("FoldBatchNorm", "batch norm of %d channels after a convolution to %d", runMean.Len(), oc)
	}
	scale, shift := foldBatchNorm(d(gamma), d(beta), d(bias), runMean.Data, runVar.Data, eps)
	fw = w.Clone()
	for i := range fw.Data {
		fw.Data[i] *= scale[i%oc]
	}
	return fw, tensor.MustFromData(shift, oc)
}
