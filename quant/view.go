package quant

import (
	"errors"
	"fmt"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/typednil"
	"github.com/residual-nn/residual/nn"
)

// OpKind names what an Op of a quantized graph computes.
type OpKind string

// The operations of a quantized graph.
const (
	// OpConv is a convolution with int8 weights: u8 input, the bias, the
	// residual Res (if any) and the ReLU (if set) applied to the real
	// sum before it is requantized (or, for the graph's output, returned
	// in float32).
	OpConv OpKind = "conv"
	// OpLinear is a linear layer, y = x·Wᵀ + b, with OpConv's epilogue.
	OpLinear OpKind = "linear"
	// OpAdd adds two u8 values in real terms and requantizes the sum (a
	// sum no convolution absorbed), ReLU if set.
	OpAdd OpKind = "add"
	// OpReLU clamps at the input's zero point (the scale is kept).
	OpReLU OpKind = "relu"
	// OpMaxPool is max pooling on the u8 values (the scale is kept).
	OpMaxPool OpKind = "maxpool"
	// OpGlobalAvgPool averages each channel ([N,H,W,C] → [N,C]), the
	// scale kept: the mean of the u8 values minus the zero point,
	// rounded half to even, plus the zero point.
	OpGlobalAvgPool OpKind = "globalavgpool"
	// OpReshape passes the values on in a new shape (NHWC order).
	OpReshape OpKind = "reshape"
	// OpSubsamplePad is an option-A shortcut: every Sub.Stride-th pixel,
	// channels padded with the zero point.
	OpSubsamplePad OpKind = "subsamplepad"
	// OpPad pads with the zero point (the real value 0).
	OpPad OpKind = "pad"
	// OpAffine is y = A[c]·x + B[c] per channel in real terms,
	// requantized (a batch norm not folded, or a scale).
	OpAffine OpKind = "affine"
)

var opKinds = map[kind]OpKind{kAdd: OpAdd, kReLU: OpReLU, kMaxPool: OpMaxPool, kGAP: OpGlobalAvgPool,
	kReshape: OpReshape, kSubsamplePad: OpSubsamplePad, kPad: OpPad, kAffine: OpAffine}

// Op is one operation of a quantized graph as an exporter or importer
// sees it (interop/onnx's QDQ models). Values are numbered: 0 is the
// network's input, each Op writes value Out; shapes are residual's (NHWC
// images), at the batch size traced.
type Op struct {
	Kind OpKind
	// In are the values read (two for OpAdd).
	In  []int
	Out int
	// Res is the value a convolution adds before its ReLU (−1: none).
	Res  int
	ReLU bool
	// Layer is a convolution's or linear layer's state-dict prefix, its
	// key in Model.Layers.
	Layer string
	// Bias is whether a convolution or linear layer has a bias (every
	// convolution a batch norm folded into has one).
	Bias bool
	// Weight is a convolution's or linear layer's weight shape, HWIO
	// ([1, 1, in, out] for a linear layer).
	Weight []int
	// Conv is a convolution's geometry.
	Conv ag.ConvParams
	Pool ag.PoolParams
	Sub  ag.SubsamplePadAttrs
	Pads [][2]int
	A, B []float32 // OpAffine
	// InShape and Shape are the traced shapes of In[0] and Out.
	InShape, Shape []int
	// Trace is the index of the traced operation whose output is Out:
	// Params.Acts's key for the operations that get their own scale
	// (Calibrated).
	Trace int
}

// Calibrated reports whether the operation's output gets its own scale
// and zero point (Params.Acts[Trace]); the others keep their input's.
func (o Op) Calibrated() bool {
	return o.Kind == OpConv || o.Kind == OpLinear || o.Kind == OpAdd || o.Kind == OpAffine
}

// Graph is a network's int8 graph: its operations in order of execution.
type Graph struct {
	Ops []Op
	// Values is the number of values; Output the one the network returns.
	Values, Output int
	// Input is the input shape traced (NHWC for images).
	Input []int
	// Traced is the number of operations in the float trace (Params.Ops).
	Traced int
}

func (g *graph) view() *Graph {
	v := &Graph{Values: g.nvals, Output: g.output, Input: append([]int(nil), g.input...), Traced: g.nops}
	for _, n := range g.nodes {
		k := opKinds[n.kind]
		if n.kind == kConv {
			k = OpConv
			if n.linear {
				k = OpLinear
			}
		}
		var ws []int
		if n.w != nil {
			ws = append(ws, n.w.Shape...)
		}
		v.Ops = append(v.Ops, Op{Kind: k, Weight: ws, Bias: n.bias != nil, In: append([]int(nil), n.in...), Out: n.out, Res: n.res, ReLU: n.relu, Layer: n.name,
			Conv: n.geom, Pool: n.pool, Sub: n.sub, Pads: n.pads, A: n.a, B: n.b, InShape: n.shapeIn, Shape: n.shape, Trace: n.op})
	}
	return v
}

// Graph returns the model's int8 graph (not to be changed).
func (m *Model) Graph() *Graph { return m.g.view() }

// ValueParams returns the scale and zero point of value v of the graph
// (0 to Graph().Values−1; it panics for another v, as indexing does).
func (m *Model) ValueParams(v int) QParams { return m.qp[v] }

// Plan folds net's batch norms (net must not be trained afterwards) and
// returns the int8 graph Quantize would run for inputs of the given shape,
// without calibrating: what an importer fills in before New.
func Plan(net nn.Layer, input []int) (*Graph, error) {
	if typednil.Is(net) {
		return nil, errors.New("quant: no network to plan (net is nil)")
	}
	if err := checkInput(input); err != nil {
		return nil, err
	}
	if _, err := nn.FoldBatchNorm(net, input); err != nil {
		return nil, fmt.Errorf("quant: %w", err)
	}
	g, err := traceGraph(net, input)
	if err != nil {
		return nil, err
	}
	return g.view(), nil
}
