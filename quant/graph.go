package quant

import (
	"fmt"
	"math"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// kind is what a node of the quantized graph does.
type kind int

const (
	kConv         kind = iota // convolution or linear layer, int8, with its fused epilogue
	kAdd                      // a + b requantized (a sum not fused into a convolution)
	kReLU                     // clamp at the zero point, the input's scale kept
	kMaxPool                  // on u8 values, the input's scale kept
	kGAP                      // global average pool, the input's scale kept
	kReshape                  // the values as they are
	kSubsamplePad             // option-A shortcut: subsample, pad channels with the zero point
	kPad                      // constant padding by the zero point (value 0), the scale kept
	kAffine                   // a batch norm not folded, or a scale: per-channel y = a·x + b, requantized
)

// node is one operation of the quantized graph. Values are numbered: 0 is
// the input, node i writes value out.
type node struct {
	kind kind
	op   int   // index of the traced operation whose output is out
	in   []int // input values
	out  int
	// kConv
	name    string        // the layer's state-dict prefix ("layer1.0.conv1")
	geom    ag.ConvParams // for a convolution; a linear layer has a zero Stride
	linear  bool
	w       *tensor.Tensor // float weights, HWIO ([K][N] for a linear layer after transposing); nil once quantized
	bias    []float32      // nil: none
	res     int            // the residual added in the epilogue (−1: none)
	relu    bool
	pool    ag.PoolParams
	sub     ag.SubsamplePadAttrs
	pads    [][2]int
	a, b    []float32 // kAffine per channel
	shapeIn []int     // the traced input shape of in[0]
	shape   []int     // the traced output shape
}

// graph is a traced, folded network as the quantized model runs it.
type graph struct {
	input  []int // traced input shape
	nodes  []node
	nvals  int
	output int     // the output value
	shapes [][]int // each value's traced shape
	nops   int     // operations in the trace (the calibration run must see as many)
}

// traceGraph traces net (evaluation mode, batch norms already folded) on a
// shape tape at the given input shape and builds the quantized graph:
// a convolution or linear layer absorbs a following addition (the
// residual) and ReLU when it is their only reader; identity batch norms
// (the folded ones) and evaluation-mode dropouts disappear.
func traceGraph(net nn.Layer, input []int) (g *graph, err error) {
	names := map[*tensor.Tensor]string{}
	for _, e := range nn.StateDict(net) {
		names[e.Tensor] = e.Name
	}
	var ops []ag.Op
	tape := ag.NewShapeTape()
	tape.SetTracer(func(op ag.Op) { ops = append(ops, op) })
	x := tape.Placeholder(input...)
	var y *ag.Value
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("quant: the model does not run on input %v: %v", input, r)
			}
		}()
		y = net.Forward(x)
	}()
	if err != nil {
		return nil, err
	}
	g = &graph{input: append([]int(nil), input...), nops: len(ops)}
	id := map[*ag.Value]int{x: 0}
	g.shapes = [][]int{g.input}
	uses := map[*ag.Value]int{}
	for _, op := range ops {
		for _, v := range op.Inputs {
			uses[v]++
		}
	}
	uses[y]++                       // the output is read by the caller
	produced := map[*ag.Value]int{} // value → node index
	val := func(v *ag.Value) (int, error) {
		i, ok := id[v]
		if !ok {
			return 0, fmt.Errorf("quant: an operation reads a value no traced operation produced (shape %v)", v.Shape())
		}
		return i, nil
	}
	newVal := func(v *ag.Value) int {
		id[v] = len(g.shapes)
		g.shapes = append(g.shapes, v.Shape())
		return id[v]
	}
	alias := func(out, in *ag.Value) error {
		i, err := val(in)
		id[out] = i
		if n, ok := produced[in]; ok {
			produced[out] = n
		}
		uses[in] += uses[out] - 1
		return err
	}
	for oi, op := range ops {
		var n node
		n.op, n.res = oi, -1
		in0, err := val(op.Inputs[0])
		if err != nil {
			return nil, err
		}
		n.in = []int{in0}
		n.shapeIn = op.Inputs[0].Shape()
		switch op.Kind {
		case ag.OpConv2d:
			p := op.Attrs.(ag.ConvParams)
			w := op.Inputs[1].Data
			if w.Shape[2] != n.shapeIn[3] {
				return nil, fmt.Errorf("quant: grouped convolution (%v weights on %d channels) is not supported", w.Shape, n.shapeIn[3])
			}
			n.kind, n.geom, n.w = kConv, p, w
			n.name = layerName(names, w)
			if b := op.Inputs[2]; b != nil {
				n.bias = b.Data.Data
			}
		case ag.OpGemm:
			a := op.Attrs.(ag.GemmAttrs)
			if !a.TransB || a.TransA || a.Alpha != 1 || len(op.Inputs) < 2 || op.Inputs[1].Data.Data == nil {
				return nil, fmt.Errorf("quant: only linear layers (x·Wᵀ + b) are supported as Gemm, got %+v", a)
			}
			w := op.Inputs[1].Data // [out,in]
			ws := w.Shape
			hw := tensor.New(1, 1, ws[1], ws[0])
			for o := range ws[0] {
				for i := range ws[1] {
					hw.Data[i*ws[0]+o] = w.Data[o*ws[1]+i]
				}
			}
			n.kind, n.linear, n.w = kConv, true, hw
			n.name = layerName(names, w)
			if len(op.Inputs) > 2 && op.Inputs[2] != nil {
				if a.Beta != 1 {
					return nil, fmt.Errorf("quant: linear layer %s with beta %v", n.name, a.Beta)
				}
				n.bias = op.Inputs[2].Data.Data
			}
		case ag.OpBatchNorm:
			a := op.Attrs.(ag.BatchNormAttrs)
			if a.Training {
				return nil, fmt.Errorf("quant: a batch norm in training mode")
			}
			sc, sh := bnAffine(op, a)
			if isIdentity(sc, sh) {
				if err := alias(op.Output, op.Inputs[0]); err != nil {
					return nil, err
				}
				continue
			}
			n.kind, n.a, n.b = kAffine, sc, sh
		case ag.OpScale:
			c := n.shapeIn[len(n.shapeIn)-1]
			n.kind, n.a, n.b = kAffine, make([]float32, c), make([]float32, c)
			for i := range n.a {
				n.a[i] = op.Attrs.(ag.ScaleAttrs).Factor
			}
		case ag.OpAdd:
			b, err := val(op.Inputs[1])
			if err != nil {
				return nil, err
			}
			// Fuse into the convolution that made one operand, if the
			// sum is its only reader and the other operand is older.
			for k, v := range op.Inputs {
				other := op.Inputs[1-k]
				ci, ok := produced[v]
				if !ok || uses[v] != 1 || g.nodes[ci].kind != kConv || g.nodes[ci].res >= 0 || g.nodes[ci].relu {
					continue
				}
				if oi, ok := produced[other]; ok && oi > ci {
					// The other operand is computed after the convolution
					// (an option-A shortcut): run the convolution last,
					// which its inputs (older still) and its only reader
					// (this sum) allow.
					c := g.nodes[ci]
					g.nodes = append(g.nodes[:ci], g.nodes[ci+1:]...)
					for v, j := range produced {
						if j > ci {
							produced[v] = j - 1
						} else if j == ci {
							produced[v] = len(g.nodes)
						}
					}
					g.nodes = append(g.nodes, c)
					ci = len(g.nodes) - 1
				}
				g.nodes[ci].res = id[other]
				g.shapes[g.nodes[ci].out] = op.Output.Shape()
				id[op.Output] = g.nodes[ci].out
				produced[op.Output] = ci
				g.nodes[ci].op = oi
				goto next
			}
			n.kind, n.in = kAdd, []int{in0, b}
		case ag.OpReLU:
			if ci, ok := produced[op.Inputs[0]]; ok && uses[op.Inputs[0]] == 1 && g.nodes[ci].kind == kConv && !g.nodes[ci].relu {
				g.nodes[ci].relu = true
				id[op.Output] = g.nodes[ci].out
				produced[op.Output] = ci
				g.nodes[ci].op = oi
				continue
			}
			if ci, ok := produced[op.Inputs[0]]; ok && uses[op.Inputs[0]] == 1 && g.nodes[ci].kind == kAdd && !g.nodes[ci].relu {
				g.nodes[ci].relu = true
				id[op.Output] = g.nodes[ci].out
				produced[op.Output] = ci
				g.nodes[ci].op = oi
				continue
			}
			n.kind = kReLU
		case ag.OpMaxPool2d:
			n.kind, n.pool = kMaxPool, op.Attrs.(ag.PoolParams)
		case ag.OpGlobalAvgPool:
			n.kind = kGAP
		case ag.OpReshape:
			n.kind = kReshape
		case ag.OpSubsamplePadChannels:
			n.kind, n.sub = kSubsamplePad, op.Attrs.(ag.SubsamplePadAttrs)
		case ag.OpPad:
			a := op.Attrs.(ag.PadAttrs)
			if a.Mode != ag.PadConstant || a.Value != 0 {
				return nil, fmt.Errorf("quant: padding other than by zeros (%v, value %v) is not supported", a.Mode, a.Value)
			}
			n.kind, n.pads = kPad, a.Pads
		default:
			return nil, fmt.Errorf("quant: operation %s is not supported in int8 (ResNet-style classifiers are)", op.Kind)
		}
		n.out = newVal(op.Output)
		n.shape = op.Output.Shape()
		produced[op.Output] = len(g.nodes)
		g.nodes = append(g.nodes, n)
	next:
	}
	out, err := val(y)
	if err != nil {
		return nil, err
	}
	g.output, g.nvals = out, len(g.shapes)
	return g, nil
}

// layerName returns the state-dict prefix of the layer that owns weight w.
func layerName(names map[*tensor.Tensor]string, w *tensor.Tensor) string {
	n := names[w]
	if len(n) > len(".weight") && n[len(n)-len(".weight"):] == ".weight" {
		return n[:len(n)-len(".weight")]
	}
	return n
}

// bnAffine returns an evaluation-mode batch norm as y = sc·x + sh per
// channel.
func bnAffine(op ag.Op, a ag.BatchNormAttrs) (sc, sh []float32) {
	c := len(a.RunMean.Data)
	sc, sh = make([]float32, c), make([]float32, c)
	for i := range c {
		g, b := 1.0, 0.0
		if op.Inputs[1] != nil {
			g = float64(op.Inputs[1].Data.Data[i])
		}
		if len(op.Inputs) > 2 && op.Inputs[2] != nil {
			b = float64(op.Inputs[2].Data.Data[i])
		}
		s := g / math.Sqrt(float64(a.RunVar.Data[i])+a.Eps)
		sc[i], sh[i] = float32(s), float32(b-s*float64(a.RunMean.Data[i]))
	}
	return sc, sh
}

func isIdentity(sc, sh []float32) bool {
	for i := range sc {
		if sc[i] != 1 || sh[i] != 0 {
			return false
		}
	}
	return true
}
