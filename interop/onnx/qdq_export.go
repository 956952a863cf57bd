package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/residual-nn/residual/internal/atomicfile"
	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/quant"
)

// ExportInt8 returns a quantized model (package quant) as an ONNX model in
// the QDQ format (opset 13) that ONNX Runtime fuses into its int8 kernels
// (QLinearConv, QGemm):
//
//   - the input "input" (float32, NCHW, any batch size) goes through a
//     QuantizeLinear to u8 with the model's input scale and zero point;
//   - each convolution or linear layer reads DequantizeLinear(x) and
//     DequantizeLinear of its int8 weight initializer (OIHW, or [out,in];
//     per output channel: axis 0, zero points 0) and of its int32 bias
//     (scale input scale × weight scale, zero point 0), and its output —
//     after the residual Add and the Relu it absorbs, in that order, as
//     residual's epilogue computes them — goes through a QuantizeLinear
//     with the activation's scale and zero point;
//   - the operations that keep their input's scale run on the u8 values
//     where ONNX defines them for uint8 (MaxPool, Slice, Pad by the zero
//     point, Reshape, Transpose, Flatten) and between a DequantizeLinear
//     and a QuantizeLinear of the same parameters otherwise (Relu,
//     GlobalAveragePool);
//   - the output "output" is float32: the last layer's real output, as
//     quant.Model.Forward returns it (NCHW if it is an image).
//
// A convolution that absorbed a residual addition has no QuantizeLinear
// between the Conv and the Add, because residual rounds only the sum;
// ONNX Runtime runs such a Conv in float32 on the dequantized operands
// (docs/QUANTIZATION.md). props are stored in the model's metadata_props,
// sorted by key, as ExportWith stores ExportOptions.Props: a checkpoint's
// checkpoint.Meta.Props, from which residual import onnx
// rebuilds its metadata (checkpoint.MetaFromProps; ImportInt8 takes the
// network).
func ExportInt8(q *quant.Model, props map[string]string) ([]byte, error) {
	if q == nil {
		return nil, errors.New("onnx: export int8: no quantized model (nil)")
	}
	g := q.Graph()
	e := &qdqExporter{exporter: &exporter{g: &onnxpb.GraphProto{Name: proto.String("residual-int8")}, converted: map[string]string{}, inits: map[string]bool{}},
		q: q, graph: g, u8: make([]string, g.Values)}
	if err := e.build(); err != nil {
		return nil, fmt.Errorf("onnx: export int8: %w", err)
	}
	return proto.Marshal(modelProto(e.g, props))
}

// ExportInt8File writes ExportInt8's model to path atomically.
func ExportInt8File(path string, q *quant.Model, props map[string]string) error {
	b, err := ExportInt8(q, props)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b)
}

type qdqExporter struct {
	*exporter
	q     *quant.Model
	graph *quant.Graph
	u8    []string // each value's u8 tensor (NCHW if 4-D)
}

// params returns the names of value v's scale (float32 scalar) and zero
// point (uint8 scalar) initializers.
func (e *qdqExporter) params(v int) (scale, zero string) {
	p := e.q.ValueParams(v)
	scale, zero = fmt.Sprintf("v%d_scale", v), fmt.Sprintf("v%d_zero_point", v)
	if !e.inits[scale] {
		e.inits[scale], e.inits[zero] = true, true
		e.g.Initializer = append(e.g.Initializer, float32Init(scale, nil, []float32{float32(p.Scale)}),
			rawInit(zero, onnxpb.TensorProto_UINT8, nil, []byte{uint8(p.Zero)}))
	}
	return scale, zero
}

// dq dequantizes value v for one reader (a DequantizeLinear per reader,
// as ONNX Runtime's QDQ node units expect).
func (e *qdqExporter) dq(v int) string {
	s, z := e.params(v)
	out := e.fresh(fmt.Sprintf("v%d_dq", v))
	e.node("DequantizeLinear", []string{e.u8[v], s, z}, out, nil)
	return out
}

// quantize writes value v as QuantizeLinear(x).
func (e *qdqExporter) quantize(x string, v int) {
	s, z := e.params(v)
	e.u8[v] = fmt.Sprintf("v%d", v)
	e.node("QuantizeLinear", []string{x, s, z}, e.u8[v], nil)
}

func (e *qdqExporter) build() error {
	g := e.graph
	in := g.Input
	image := len(in) == 4
	e.quantize("input", 0)
	for _, op := range g.Ops {
		if err := e.op(op); err != nil {
			return fmt.Errorf("%s %s (value %d): %w", op.Kind, op.Layer, op.Out, err)
		}
	}
	out := g.Input
	if len(g.Ops) > 0 {
		out = g.Ops[len(g.Ops)-1].Shape
	}
	if e.u8[g.Output] != "" { // a u8 output (the last operation is not a layer's): dequantize it
		s, z := e.params(g.Output)
		e.node("DequantizeLinear", []string{e.u8[g.Output], s, z}, "output", nil)
	}
	e.g.Input = append(e.g.Input, valueInfo("input", onnxShape(in, image)))
	e.g.Output = append(e.g.Output, valueInfo("output", onnxShape(out, len(out) == 4)))
	return nil
}

// op emits one operation of the int8 graph.
func (e *qdqExporter) op(op quant.Op) error {
	final := op.Out == e.graph.Output
	switch op.Kind {
	case quant.OpConv, quant.OpLinear:
		return e.layer(op, final)
	case quant.OpAdd:
		y := e.fresh("Add")
		e.node("Add", []string{e.dq(op.In[0]), e.dq(op.In[1])}, y, nil)
		if op.ReLU {
			r := e.fresh("Relu")
			e.node("Relu", []string{y}, r, nil)
			y = r
		}
		e.quantize(y, op.Out)
	case quant.OpReLU:
		y := e.fresh("Relu")
		e.node("Relu", []string{e.dq(op.In[0])}, y, nil)
		e.quantize(y, op.Out)
	case quant.OpGlobalAvgPool:
		y := e.fresh("GlobalAveragePool")
		e.node("GlobalAveragePool", []string{e.dq(op.In[0])}, y, nil)
		e.quantize(y, op.Out)
		pooled := e.u8[op.Out]
		e.u8[op.Out] = fmt.Sprintf("v%d_flat", op.Out)
		e.node("Flatten", []string{pooled}, e.u8[op.Out], []*onnxpb.AttributeProto{intAttr("axis", 1)})
	case quant.OpMaxPool:
		p := op.Pool
		stride := p.Stride
		if stride == [2]int{} {
			stride = p.Kernel
		}
		attrs := []*onnxpb.AttributeProto{intsAttr("kernel_shape", int64(p.Kernel[0]), int64(p.Kernel[1])),
			intsAttr("strides", int64(stride[0]), int64(stride[1])),
			intsAttr("pads", int64(p.Pad[0]), int64(p.Pad[1]), int64(p.Pad[2]), int64(p.Pad[3])), intAttr("ceil_mode", b2i(p.CeilMode)),
			intsAttr("dilations", int64(max(p.Dilation[0], 1)), int64(max(p.Dilation[1], 1)))}
		e.u8[op.Out] = fmt.Sprintf("v%d", op.Out)
		e.node("MaxPool", []string{e.u8[op.In[0]]}, e.u8[op.Out], attrs)
	case quant.OpReshape:
		x := e.u8[op.In[0]]
		if len(op.InShape) == 4 {
			x = e.transposed(x, 0, 2, 3, 1) // residual reshapes in NHWC order
		}
		shape := make([]int64, len(op.Shape))
		for i, d := range op.Shape {
			shape[i] = int64(d)
		}
		if len(op.Shape) == 0 || len(op.InShape) == 0 || op.Shape[0] != op.InShape[0] {
			return fmt.Errorf("a reshape of %v to %v changes the batch dimension", op.InShape, op.Shape)
		}
		shape[0] = 0 // the batch dimension, whatever it is
		y := fmt.Sprintf("v%d", op.Out)
		if len(op.Shape) == 4 {
			y = e.fresh("Reshape")
		}
		e.node("Reshape", []string{x, e.ints(shape...)}, y, nil)
		if len(op.Shape) == 4 {
			e.node("Transpose", []string{y}, fmt.Sprintf("v%d", op.Out), []*onnxpb.AttributeProto{intsAttr("perm", 0, 3, 1, 2)})
		}
		e.u8[op.Out] = fmt.Sprintf("v%d", op.Out)
	case quant.OpSubsamplePad:
		_, z := e.params(op.In[0])
		sub := e.fresh("Slice")
		st := int64(op.Sub.Stride)
		e.node("Slice", []string{e.u8[op.In[0]], e.ints(0, 0), e.ints(math.MaxInt64, math.MaxInt64), e.ints(2, 3), e.ints(st, st)}, sub, nil)
		e.u8[op.Out] = fmt.Sprintf("v%d", op.Out)
		e.node("Pad", []string{sub, e.ints(0, int64(op.Sub.Before), 0, 0, 0, int64(op.Sub.After), 0, 0), z}, e.u8[op.Out],
			[]*onnxpb.AttributeProto{stringAttr("mode", "constant")})
	case quant.OpPad:
		_, z := e.params(op.In[0])
		e.u8[op.Out] = fmt.Sprintf("v%d", op.Out)
		e.node("Pad", []string{e.u8[op.In[0]], e.ints(onnxPads(op.Pads, len(op.InShape))...), z}, e.u8[op.Out], []*onnxpb.AttributeProto{stringAttr("mode", "constant")})
	case quant.OpAffine:
		c := len(op.A)
		dims := []int64{int64(c)}
		if len(op.InShape) == 4 {
			dims = []int64{1, int64(c), 1, 1}
		}
		a, b := e.fresh("affine_scale"), e.fresh("affine_shift")
		e.inits[a], e.inits[b] = true, true
		e.g.Initializer = append(e.g.Initializer, float32Init(a, dims, op.A), float32Init(b, dims, op.B))
		m, y := e.fresh("Mul"), e.fresh("Add")
		e.node("Mul", []string{e.dq(op.In[0]), a}, m, nil)
		e.node("Add", []string{m, b}, y, nil)
		e.quantize(y, op.Out)
	default:
		return fmt.Errorf("no QDQ export for this operation")
	}
	if final && e.u8[op.Out] == "" {
		return fmt.Errorf("the output was not produced (a bug in the QDQ export)")
	}
	return nil
}

// layer emits a convolution or linear layer: DequantizeLinear of the
// input, the int8 weights and the int32 bias, Conv or Gemm, the residual
// Add and the Relu, and a QuantizeLinear (none for the final output).
func (e *qdqExporter) layer(op quant.Op, final bool) error {
	l := e.q.Layers()[op.Layer]
	if l == nil {
		return fmt.Errorf("no int8 weights")
	}
	sx := float32(e.q.ValueParams(op.In[0]).Scale)
	// Weights: residual's [K][N] (K = (ky·KW + kx)·IC + ic) to OIHW, or
	// [out,in] for a linear layer.
	k := l.KH * l.KW * l.IC
	raw := make([]byte, k*l.OC)
	for i := range k {
		ky, kx, ic := i/(l.KW*l.IC), i/l.IC%l.KW, i%l.IC
		for o := range l.OC {
			raw[((o*l.IC+ic)*l.KH+ky)*l.KW+kx] = byte(l.W[i*l.OC+o])
		}
	}
	dims := []int64{int64(l.OC), int64(l.IC), int64(l.KH), int64(l.KW)}
	if op.Kind == quant.OpLinear {
		dims = dims[:2]
	}
	oc := []int64{int64(l.OC)}
	wq, ws, wz := op.Layer+".weight_quantized", op.Layer+".weight_scale", op.Layer+".weight_zero_point"
	e.g.Initializer = append(e.g.Initializer, rawInit(wq, onnxpb.TensorProto_INT8, dims, raw), float32Init(ws, oc, l.Scale),
		rawInit(wz, onnxpb.TensorProto_INT8, oc, make([]byte, l.OC)))
	w := op.Layer + ".weight"
	e.node("DequantizeLinear", []string{wq, ws, wz}, w, []*onnxpb.AttributeProto{intAttr("axis", 0)})
	args := []string{e.dq(op.In[0]), w}
	if l.Bias != nil {
		braw := make([]byte, 4*l.OC)
		bs := make([]float32, l.OC)
		for o, v := range l.Bias {
			binary.LittleEndian.PutUint32(braw[4*o:], uint32(v))
			bs[o] = sx * l.Scale[o] // float32 product, as ONNX Runtime's quantizer computes it
		}
		bq, bsn, bz := op.Layer+".bias_quantized", op.Layer+".bias_scale", op.Layer+".bias_zero_point"
		e.g.Initializer = append(e.g.Initializer, rawInit(bq, onnxpb.TensorProto_INT32, oc, braw), float32Init(bsn, oc, bs),
			rawInit(bz, onnxpb.TensorProto_INT32, oc, make([]byte, 4*l.OC)))
		b := op.Layer + ".bias"
		e.node("DequantizeLinear", []string{bq, bsn, bz}, b, []*onnxpb.AttributeProto{intAttr("axis", 0)})
		args = append(args, b)
	}
	y := e.fresh(op.Layer)
	if op.Kind == quant.OpLinear {
		e.node("Gemm", args, y, []*onnxpb.AttributeProto{floatAttr("alpha", 1), floatAttr("beta", 1), intAttr("transA", 0), intAttr("transB", 1)})
	} else {
		p := op.Conv
		e.node("Conv", args, y, []*onnxpb.AttributeProto{intsAttr("kernel_shape", int64(l.KH), int64(l.KW)),
			intsAttr("strides", int64(max(p.Stride[0], 1)), int64(max(p.Stride[1], 1))),
			intsAttr("dilations", int64(max(p.Dilation[0], 1)), int64(max(p.Dilation[1], 1))),
			intsAttr("pads", int64(p.Pad[0]), int64(p.Pad[1]), int64(p.Pad[2]), int64(p.Pad[3])), intAttr("group", 1)})
	}
	if op.Res >= 0 {
		s := e.fresh("Add")
		e.node("Add", []string{y, e.dq(op.Res)}, s, nil)
		y = s
	}
	if op.ReLU {
		r := e.fresh("Relu")
		e.node("Relu", []string{y}, r, nil)
		y = r
	}
	if final {
		last := e.g.Node[len(e.g.Node)-1]
		last.Output[0], last.Name = "output", proto.String("output")
		return nil
	}
	e.quantize(y, op.Out)
	return nil
}

// rawInit returns an initializer of raw little-endian data.
func rawInit(name string, dt onnxpb.TensorProto_DataType, dims []int64, raw []byte) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(dt)), RawData: raw}
}

func float32Init(name string, dims []int64, v []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return rawInit(name, onnxpb.TensorProto_FLOAT, dims, raw)
}
