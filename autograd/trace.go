package autograd

import "github.com/residual-nn/residual/tensor"

// Op is one operation as a tracer sees it (SetTracer): enough to rebuild
// the computation elsewhere, as the ONNX exporter does.
//
// Inputs are in the function's argument order; an absent optional input
// (a nil bias) is nil. Attrs holds the operation's parameters, of the type
// its Kind's constant names, or is nil for an operation without any.
type Op struct {
	Kind   OpKind
	Inputs []*Value
	Output *Value
	Attrs  OpAttrs
}

// OpKind names a traced operation after the function that ran it. Each
// constant's comment gives the operation's Inputs and the type of its
// Attrs; functions built on another operation report that one (AddRouted
// is an Add, Flatten a Reshape, Linear a Gemm, CenterCrop a Crop).
type OpKind string

// The operations a tracer can see. The losses and training-mode Dropout
// have no kind and do not report themselves (Dropout in evaluation mode
// returns its input). Nothing fuses on a tape with a tracer (Tape.fuses,
// fuse.go), so a tracer sees a convolution, batch norm, addition and ReLU
// as four operations wherever they would otherwise run as one.
const (
	OpConv2d          OpKind = "Conv2d"          // x, w, b; ConvParams
	OpConvTranspose2d OpKind = "ConvTranspose2d" // x, w, b; ConvParams
	OpBatchNorm       OpKind = "BatchNorm"       // x, gamma, beta; BatchNormAttrs
	OpMaxPool2d       OpKind = "MaxPool2d"       // x; PoolParams
	OpAvgPool2d       OpKind = "AvgPool2d"       // x; PoolParams
	OpGlobalAvgPool   OpKind = "GlobalAvgPool"   // x; nil
	OpGemm            OpKind = "Gemm"            // a, b, c; GemmAttrs
	OpMatMul          OpKind = "MatMul"          // a, b; nil
	OpReLU            OpKind = "ReLU"            // x; nil
	OpAdd             OpKind = "Add"             // a, b; nil
	OpMul             OpKind = "Mul"             // a, b; nil
	OpScale           OpKind = "Scale"           // x; ScaleAttrs
	OpSum             OpKind = "Sum"             // x; nil
	OpReshape         OpKind = "Reshape"         // x; nil (the new shape is the output's)
	OpSoftmax         OpKind = "Softmax"         // x; AxisAttrs
	OpLogSoftmax      OpKind = "LogSoftmax"      // x; AxisAttrs
	OpConcat          OpKind = "Concat"          // the inputs; AxisAttrs
	OpCrop            OpKind = "Crop"            // x; CropAttrs
	OpPad             OpKind = "Pad"             // x; PadAttrs
	// OpSubsamplePadChannels is SubsamplePadChannels (the option-A
	// shortcut): x; SubsamplePadAttrs.
	OpSubsamplePadChannels OpKind = "SubsamplePadChannels"
)

// OpKinds lists every kind an operation can be traced as, so that a
// tracer (an exporter) can check that it handles them all.
func OpKinds() []OpKind {
	return []OpKind{OpConv2d, OpConvTranspose2d, OpBatchNorm, OpMaxPool2d, OpAvgPool2d, OpGlobalAvgPool,
		OpGemm, OpMatMul, OpReLU, OpAdd, OpMul, OpScale, OpSum, OpReshape, OpSoftmax, OpLogSoftmax,
		OpConcat, OpCrop, OpPad, OpSubsamplePadChannels}
}

// OpAttrs is the type of a traced operation's parameters. The set is
// closed: the types below are the only ones, so a tracer can switch on
// them exhaustively.
type OpAttrs interface{ opAttrs() }

func (ConvParams) opAttrs()        {}
func (PoolParams) opAttrs()        {}
func (BatchNormAttrs) opAttrs()    {}
func (GemmAttrs) opAttrs()         {}
func (ScaleAttrs) opAttrs()        {}
func (AxisAttrs) opAttrs()         {}
func (CropAttrs) opAttrs()         {}
func (PadAttrs) opAttrs()          {}
func (SubsamplePadAttrs) opAttrs() {}

// BatchNormAttrs are a traced BatchNorm's parameters and running
// statistics.
type BatchNormAttrs struct {
	BatchNormParams
	RunMean, RunVar *tensor.Tensor
}

// GemmAttrs are a traced Gemm's parameters (Linear is a Gemm with
// transB).
type GemmAttrs struct {
	Alpha, Beta    float32
	TransA, TransB bool
}

// ScaleAttrs is a traced Scale's factor.
type ScaleAttrs struct{ Factor float32 }

// AxisAttrs is the axis of a traced Softmax, LogSoftmax or Concat, in
// residual's axis order (an image's channels are axis 3) and never
// negative.
type AxisAttrs struct{ Axis int }

// CropAttrs are a traced Crop's window (CenterCrop is a Crop).
type CropAttrs struct{ Top, Left, Height, Width int }

// PadAttrs are a traced Pad's parameters.
type PadAttrs struct {
	Pads  [][2]int
	Mode  PadMode
	Value float32
}

// SubsamplePadAttrs are a traced SubsamplePadChannels' parameters: the
// spatial stride, and the zero channels added before and after the input's.
type SubsamplePadAttrs struct{ Stride, Before, After int }

// SetTracer makes every operation on this tape report itself to f, in the
// order they run; nil removes it. Operations that cannot be traced (the
// losses) do not report themselves: a tracer sees their outputs only as
// inputs of later operations that it has not seen produced.
func (tp *Tape) SetTracer(f func(Op)) { tp.tracer = f }

// trace reports an operation to its tape's tracer, if any.
func trace(y *Value, kind OpKind, attrs OpAttrs, xs ...*Value) {
	if y.tape != nil && y.tape.tracer != nil {
		y.tape.tracer(Op{Kind: kind, Inputs: xs, Output: y, Attrs: attrs})
	}
}
