package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/atomicfile"
	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/internal/typednil"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// ExportOpset is the ONNX operator set exported graphs use.
const ExportOpset = 13

// Export traces m's forward pass in evaluation mode (it sets m to
// evaluation mode) on an input of the given shape — NHWC for images, as
// residual's models take them — and returns it as a serialised ONNX model
// (opset 13) holding m's weights as initializers under their state-dict
// (torchvision) names. It writes no metadata_props: ExportWith takes them.
//
// The graph is laid out as ONNX and PyTorch expect: its input "input" is
// NCHW, convolution weights OIHW, and an image output is NCHW. Its first
// dimension (the batch) is symbolic, so the graph runs on any batch size.
// The trace runs on a shape-only tape, so no arithmetic is done. An
// operation without an ONNX counterpart (a loss, training-mode dropout or
// batch norm) is an error.
func Export(m nn.Layer, input []int) ([]byte, error) {
	return ExportWith(m, input, ExportOptions{})
}

// ExportOptions is what ExportWith writes besides the graph.
type ExportOptions struct {
	// Props are stored in the model's metadata_props, sorted by key, as
	// ExportInt8 stores its props: a checkpoint's checkpoint.Meta.Props
	// (the model config, class names and preprocessing), which Describe
	// reads back and checkpoint.MetaFromProps decodes.
	Props map[string]string
}

// ExportWith is Export with the options opts: a checkpoint's metadata
// goes with its graph, so that a program running the file labels its
// outputs and preprocesses its images as the checkpoint did.
func ExportWith(m nn.Layer, input []int, opts ExportOptions) ([]byte, error) {
	if typednil.Is(m) {
		return nil, errors.New("onnx: export: no model (nil)")
	}
	nn.SetTraining(m, false)
	e := &exporter{g: &onnxpb.GraphProto{Name: proto.String("residual")}, names: map[*ag.Value]string{},
		nchw: map[*ag.Value]bool{}, converted: map[string]string{}, inits: map[string]bool{},
		byTensor: map[*tensor.Tensor]string{}, torch: nn.TorchState(m)}
	for _, en := range nn.StateDict(m) {
		e.byTensor[en.Tensor] = en.Name
	}
	tape := ag.NewShapeTape()
	tape.SetTracer(func(op ag.Op) {
		if e.err == nil {
			e.err = e.op(op)
		}
	})
	x := tape.Placeholder(input...)
	e.names[x] = "input"
	e.nchw[x] = len(input) == 4
	y, err := forward(m, x)
	if err != nil {
		return nil, err
	}
	if e.err != nil {
		return nil, fmt.Errorf("onnx: export: %w", e.err)
	}
	out, ok := e.names[y]
	if !ok {
		return nil, errors.New("onnx: export: the model's output was not produced by a traceable operation")
	}
	if e.nchw[y] || len(y.Shape()) != 4 {
		e.node("Identity", []string{out}, "output", nil)
	} else {
		e.node("Transpose", []string{out}, "output", []*onnxpb.AttributeProto{intsAttr("perm", 0, 3, 1, 2)})
	}
	e.g.Input = append(e.g.Input, valueInfo("input", onnxShape(input, len(input) == 4)))
	e.g.Output = append(e.g.Output, valueInfo("output", onnxShape(y.Shape(), len(y.Shape()) == 4)))
	return proto.Marshal(modelProto(e.g, opts.Props))
}

// ExportFile writes Export's model to path atomically.
func ExportFile(path string, m nn.Layer, input []int) error {
	return ExportFileWith(path, m, input, ExportOptions{})
}

// ExportFileWith writes ExportWith's model to path atomically.
func ExportFileWith(path string, m nn.Layer, input []int, opts ExportOptions) error {
	b, err := ExportWith(m, input, opts)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b)
}

// modelProto wraps an exported graph (Export's or ExportInt8's) in a
// model of opset ExportOpset, with props as its metadata_props in the
// order of their keys (so that an export is the same bytes every time).
func modelProto(g *onnxpb.GraphProto, props map[string]string) *onnxpb.ModelProto {
	mp := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(7),
		ProducerName: proto.String("residual"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(ExportOpset)}},
		Graph:        g,
	}
	for _, k := range slices.Sorted(maps.Keys(props)) {
		mp.MetadataProps = append(mp.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(props[k])})
	}
	return mp
}

// forward runs the model, turning a shape panic into an error.
func forward(m nn.Layer, x *ag.Value) (y *ag.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("onnx: export: the model does not run on input %v: %v", x.Shape(), r)
		}
	}()
	return m.Forward(x), nil
}

type exporter struct {
	g         *onnxpb.GraphProto
	names     map[*ag.Value]string // the ONNX name of each value produced so far
	nchw      map[*ag.Value]bool   // the value is a 4-D image held NCHW in the graph
	converted map[string]string    // name → name of its transposed copy
	inits     map[string]bool
	byTensor  map[*tensor.Tensor]string // the state-dict name of each model tensor
	torch     map[string]*tensor.Tensor // the state dict in PyTorch's layouts
	n         int
	err       error
}

// nhwcToNCHW maps an NHWC axis to its NCHW position.
var nhwcToNCHW = [4]int{0, 2, 3, 1}

// onnxPads is ONNX Pad's pads input (all befores, then all afters) for
// padding of each axis of a rank-r value, NHWC axes moved to NCHW when r
// is 4.
func onnxPads(pads [][2]int, r int) []int64 {
	out := make([]int64, 2*r)
	for ax, p := range pads {
		at := ax
		if r == 4 {
			at = nhwcToNCHW[ax]
		}
		out[at], out[r+at] = int64(p[0]), int64(p[1])
	}
	return out
}

func (e *exporter) fresh(prefix string) string {
	e.n++
	return fmt.Sprintf("%s_%d", prefix, e.n)
}

func (e *exporter) node(op string, in []string, out string, attrs []*onnxpb.AttributeProto) {
	e.g.Node = append(e.g.Node, &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(out), Input: in, Output: []string{out}, Attribute: attrs})
}

// initializer adds a float tensor (once per name) and returns its name.
func (e *exporter) initializer(name string, t *tensor.Tensor) string {
	if !e.inits[name] {
		e.inits[name] = true
		e.g.Initializer = append(e.g.Initializer, encodeTensor(name, t))
	}
	return name
}

func (e *exporter) ints(vals ...int64) string {
	name := e.fresh("const")
	e.inits[name] = true
	raw := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	e.g.Initializer = append(e.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: []int64{int64(len(vals))},
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), RawData: raw})
	return name
}

// name returns the ONNX name of an operation input: a traced value, a
// model tensor (as a state-dict initializer in PyTorch's layout) or any
// other constant.
func (e *exporter) name(v *ag.Value) (string, error) {
	if n, ok := e.names[v]; ok {
		return n, nil
	}
	if v.Data == nil || v.Data.Data == nil {
		return "", fmt.Errorf("an input of shape %v comes from an operation that cannot be exported", v.Shape())
	}
	if sd, ok := e.byTensor[v.Data]; ok {
		e.names[v] = e.initializer(sd, e.torch[sd])
		return e.names[v], nil
	}
	e.names[v] = e.initializer(e.fresh("const"), v.Data)
	return e.names[v], nil
}

// weight returns the name of a convolution weight in ONNX's layout (OIHW,
// or IOHW for a transposed convolution): a model tensor is in the state
// dict's PyTorch layout already; another constant, or a weight computed
// in the graph, is turned from residual's HWIO (HWOI).
func (e *exporter) weight(v *ag.Value) (string, error) {
	if _, ok := e.byTensor[v.Data]; ok {
		return e.name(v)
	}
	if _, traced := e.names[v]; traced || v.Data == nil || v.Data.Data == nil {
		n, err := e.name(v)
		if err != nil {
			return "", err
		}
		return e.transposed(n, 3, 2, 0, 1), nil
	}
	return e.initializer(e.fresh("const"), tensor.HWIOToOIHW(v.Data)), nil
}

// image returns v's name as an NCHW image, transposing once if needed.
func (e *exporter) image(v *ag.Value) (string, error) {
	n, err := e.name(v)
	if err != nil || e.nchw[v] {
		return n, err
	}
	if len(v.Shape()) != 4 {
		return "", fmt.Errorf("an image operation got shape %v", v.Shape())
	}
	return e.transposed(n, 0, 3, 1, 2), nil
}

// plain returns v's name in residual's own axis order.
func (e *exporter) plain(v *ag.Value) (string, error) {
	n, err := e.name(v)
	if err != nil || !e.nchw[v] {
		return n, err
	}
	return e.transposed(n, 0, 2, 3, 1), nil
}

// inLayout returns v's name as an NCHW image if image, else in residual's
// own order.
func (e *exporter) inLayout(v *ag.Value, image bool) (string, error) {
	if image {
		return e.image(v)
	}
	return e.plain(v)
}

// args returns the names of an operation's inputs (absent ones left out)
// in one layout, as inLayout gives them.
func (e *exporter) args(vs []*ag.Value, image bool) ([]string, error) {
	var names []string
	for _, v := range vs {
		if v == nil {
			continue
		}
		n, err := e.inLayout(v, image)
		if err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, nil
}

func (e *exporter) transposed(n string, perm ...int64) string {
	key := fmt.Sprint(n, perm)
	if t, ok := e.converted[key]; ok {
		return t
	}
	t := e.fresh(n + "_t")
	e.node("Transpose", []string{n}, t, []*onnxpb.AttributeProto{intsAttr("perm", perm...)})
	e.converted[key] = t
	return t
}

// exportFunc emits the nodes of one traced operation, the last of them
// named out; image reports that out is an NCHW image.
type exportFunc func(e *exporter, op ag.Op, out string) (image bool, err error)

// exports maps each traced operation to its ONNX export (the importer's
// operators table read the other way).
var exports = map[ag.OpKind]exportFunc{
	ag.OpConv2d:               convExport("Conv"),
	ag.OpConvTranspose2d:      convExport("ConvTranspose"),
	ag.OpBatchNorm:            exportBatchNorm,
	ag.OpMaxPool2d:            poolExport("MaxPool"),
	ag.OpAvgPool2d:            poolExport("AveragePool"),
	ag.OpGlobalAvgPool:        exportGlobalAvgPool,
	ag.OpGemm:                 exportGemm,
	ag.OpMatMul:               exportMatMul,
	ag.OpSum:                  exportSum,
	ag.OpReshape:              exportReshape,
	ag.OpReLU:                 elementwise("Relu"),
	ag.OpAdd:                  elementwise("Add"),
	ag.OpMul:                  elementwise("Mul"),
	ag.OpScale:                exportScale,
	ag.OpSoftmax:              softmaxExport("Softmax"),
	ag.OpLogSoftmax:           softmaxExport("LogSoftmax"),
	ag.OpConcat:               exportConcat,
	ag.OpCrop:                 exportCrop,
	ag.OpSubsamplePadChannels: exportSubsamplePad,
	ag.OpPad:                  exportPad,
}

// op emits the nodes of one traced operation.
func (e *exporter) op(op ag.Op) error {
	f, ok := exports[op.Kind]
	if !ok {
		return fmt.Errorf("operation %s has no ONNX export", op.Kind)
	}
	out := e.fresh(string(op.Kind))
	image, err := f(e, op, out)
	if err != nil {
		return err
	}
	e.names[op.Output] = out
	e.nchw[op.Output] = image
	return nil
}

// attrsOf returns op's attributes as the type its kind carries.
func attrsOf[T ag.OpAttrs](op ag.Op) (T, error) {
	a, ok := op.Attrs.(T)
	if !ok {
		return a, fmt.Errorf("%s: traced with attributes %T, want %T", op.Kind, op.Attrs, a)
	}
	return a, nil
}

// convExport exports Conv2d or ConvTranspose2d as the ONNX operator kind.
func convExport(kind string) exportFunc {
	return func(e *exporter, op ag.Op, out string) (bool, error) {
		p, err := attrsOf[ag.ConvParams](op)
		if err != nil {
			return false, err
		}
		x, err := e.image(op.Inputs[0])
		if err != nil {
			return false, err
		}
		w, err := e.weight(op.Inputs[1])
		if err != nil {
			return false, err
		}
		args := []string{x, w}
		if b := op.Inputs[2]; b != nil {
			bn, err := e.name(b)
			if err != nil {
				return false, err
			}
			args = append(args, bn)
		}
		ws := op.Inputs[1].Shape()
		attrs := []*onnxpb.AttributeProto{intsAttr("kernel_shape", int64(ws[0]), int64(ws[1])),
			intsAttr("strides", int64(p.Stride[0]), int64(p.Stride[1])), intsAttr("dilations", int64(p.Dilation[0]), int64(p.Dilation[1])),
			intsAttr("pads", int64(p.Pad[0]), int64(p.Pad[1]), int64(p.Pad[2]), int64(p.Pad[3])), intAttr("group", 1)}
		if kind == "ConvTranspose" {
			attrs = append(attrs, intsAttr("output_padding", int64(p.OutputPadding[0]), int64(p.OutputPadding[1])))
		}
		e.node(kind, args, out, attrs)
		return true, nil
	}
}

// exportBatchNorm exports an evaluation-mode BatchNorm as
// BatchNormalization; absent affine parameters become ones and zeros.
func exportBatchNorm(e *exporter, op ag.Op, out string) (bool, error) {
	a, err := attrsOf[ag.BatchNormAttrs](op)
	if err != nil {
		return false, err
	}
	if a.Training {
		return false, errors.New("a batch norm in training mode cannot be exported (the model is put in evaluation mode: a layer ignores it?)")
	}
	in0 := op.Inputs[0]
	c := in0.Shape()[len(in0.Shape())-1]
	image := len(in0.Shape()) == 4
	x, err := e.inLayout(in0, image)
	if err != nil {
		return false, err
	}
	args := []string{x}
	for i, p := range []*ag.Value{op.Inputs[1], op.Inputs[2]} {
		if p == nil {
			t := tensor.New(c)
			if i == 0 {
				t.Fill(1)
			}
			args = append(args, e.initializer(e.fresh("const"), t))
			continue
		}
		n, err := e.name(p)
		if err != nil {
			return false, err
		}
		args = append(args, n)
	}
	for _, t := range []*tensor.Tensor{a.RunMean, a.RunVar} {
		n, ok := e.byTensor[t]
		if ok {
			n = e.initializer(n, e.torch[n])
		} else {
			n = e.initializer(e.fresh("const"), t)
		}
		args = append(args, n)
	}
	e.node("BatchNormalization", args, out, []*onnxpb.AttributeProto{floatAttr("epsilon", float32(a.Eps)), floatAttr("momentum", float32(1-a.Momentum))})
	return image, nil
}

// poolExport exports MaxPool2d or AvgPool2d as the ONNX operator kind.
func poolExport(kind string) exportFunc {
	return func(e *exporter, op ag.Op, out string) (bool, error) {
		p, err := attrsOf[ag.PoolParams](op)
		if err != nil {
			return false, err
		}
		x, err := e.image(op.Inputs[0])
		if err != nil {
			return false, err
		}
		stride := p.Stride
		if stride == [2]int{} {
			stride = p.Kernel
		}
		attrs := []*onnxpb.AttributeProto{intsAttr("kernel_shape", int64(p.Kernel[0]), int64(p.Kernel[1])),
			intsAttr("strides", int64(stride[0]), int64(stride[1])),
			intsAttr("pads", int64(p.Pad[0]), int64(p.Pad[1]), int64(p.Pad[2]), int64(p.Pad[3])), intAttr("ceil_mode", b2i(p.CeilMode))}
		if kind == "AveragePool" {
			attrs = append(attrs, intAttr("count_include_pad", b2i(p.CountIncludePad)))
		} else if p.Dilation != [2]int{} && p.Dilation != [2]int{1, 1} { // ONNX's default is 1
			attrs = append(attrs, intsAttr("dilations", int64(max(p.Dilation[0], 1)), int64(max(p.Dilation[1], 1))))
		}
		e.node(kind, []string{x}, out, attrs)
		return true, nil
	}
}

// exportGlobalAvgPool exports GlobalAvgPool, whose output is [N,C], as
// GlobalAveragePool ([N,C,1,1]) and a Flatten.
func exportGlobalAvgPool(e *exporter, op ag.Op, out string) (bool, error) {
	x, err := e.image(op.Inputs[0])
	if err != nil {
		return false, err
	}
	pooled := e.fresh("GlobalAveragePool")
	e.node("GlobalAveragePool", []string{x}, pooled, nil)
	e.node("Flatten", []string{pooled}, out, []*onnxpb.AttributeProto{intAttr("axis", 1)})
	return false, nil
}

func exportGemm(e *exporter, op ag.Op, out string) (bool, error) {
	a, err := attrsOf[ag.GemmAttrs](op)
	if err != nil {
		return false, err
	}
	args, err := e.args(op.Inputs, false)
	if err != nil {
		return false, err
	}
	e.node("Gemm", args, out, []*onnxpb.AttributeProto{floatAttr("alpha", a.Alpha), floatAttr("beta", a.Beta),
		intAttr("transA", b2i(a.TransA)), intAttr("transB", b2i(a.TransB))})
	return false, nil
}

func exportMatMul(e *exporter, op ag.Op, out string) (bool, error) {
	args, err := e.args(op.Inputs, false)
	if err != nil {
		return false, err
	}
	e.node("MatMul", args, out, nil)
	return false, nil
}

// exportSum exports Sum (over every element, to a scalar) as ReduceSum
// without axes.
func exportSum(e *exporter, op ag.Op, out string) (bool, error) {
	args, err := e.args(op.Inputs, false)
	if err != nil {
		return false, err
	}
	e.node("ReduceSum", args, out, []*onnxpb.AttributeProto{intAttr("keepdims", 0)})
	return false, nil
}

// exportReshape exports Reshape to its output's shape, in residual's own
// axis order, with the batch dimension left to the input (0) when it is
// kept, so the graph runs on any batch size.
func exportReshape(e *exporter, op ag.Op, out string) (bool, error) {
	args, err := e.args(op.Inputs, false)
	if err != nil {
		return false, err
	}
	in0 := op.Inputs[0]
	shape := make([]int64, len(op.Output.Shape()))
	for i, d := range op.Output.Shape() {
		shape[i] = int64(d)
	}
	if len(shape) > 0 && len(in0.Shape()) > 0 && shape[0] == int64(in0.Shape()[0]) {
		shape[0] = 0 // keep the batch dimension, whatever it is
	}
	e.node("Reshape", append(args, e.ints(shape...)), out, nil)
	return false, nil
}

// sameLayout returns the names of an element-wise operation's inputs in
// the layout they share: NCHW when all are images held so, else
// residual's own.
func (e *exporter) sameLayout(op ag.Op) (args []string, image bool, err error) {
	image = len(op.Inputs[0].Shape()) == 4
	for _, v := range op.Inputs {
		image = image && e.nchw[v]
	}
	args, err = e.args(op.Inputs, image)
	return args, image, err
}

// elementwise exports ReLU, Add or Mul as the ONNX operator kind, in the
// inputs' layout.
func elementwise(kind string) exportFunc {
	return func(e *exporter, op ag.Op, out string) (bool, error) {
		args, image, err := e.sameLayout(op)
		if err != nil {
			return false, err
		}
		e.node(kind, args, out, nil)
		return image, nil
	}
}

// exportScale exports Scale as a Mul by a scalar.
func exportScale(e *exporter, op ag.Op, out string) (bool, error) {
	a, err := attrsOf[ag.ScaleAttrs](op)
	if err != nil {
		return false, err
	}
	args, image, err := e.sameLayout(op)
	if err != nil {
		return false, err
	}
	s := tensor.New()
	s.Data = []float32{a.Factor}
	e.node("Mul", append(args, e.initializer(e.fresh("const"), s)), out, nil)
	return image, nil
}

// softmaxExport exports Softmax or LogSoftmax as the ONNX operator kind,
// its axis moved to where the input's layout holds it.
func softmaxExport(kind string) exportFunc {
	return func(e *exporter, op ag.Op, out string) (bool, error) {
		a, err := attrsOf[ag.AxisAttrs](op)
		if err != nil {
			return false, err
		}
		args, image, err := e.sameLayout(op)
		if err != nil {
			return false, err
		}
		axis := a.Axis
		if image {
			axis = nhwcToNCHW[axis]
		}
		e.node(kind, args, out, []*onnxpb.AttributeProto{intAttr("axis", int64(axis))})
		return image, nil
	}
}

// exportConcat exports Concat; images are joined NCHW.
func exportConcat(e *exporter, op ag.Op, out string) (bool, error) {
	a, err := attrsOf[ag.AxisAttrs](op)
	if err != nil {
		return false, err
	}
	image := len(op.Inputs[0].Shape()) == 4
	args, err := e.args(op.Inputs, image)
	if err != nil {
		return false, err
	}
	axis := a.Axis
	if image {
		axis = nhwcToNCHW[axis]
	}
	e.node("Concat", args, out, []*onnxpb.AttributeProto{intAttr("axis", int64(axis))})
	return image, nil
}

// exportCrop exports Crop as a Slice of the spatial axes.
func exportCrop(e *exporter, op ag.Op, out string) (bool, error) {
	c, err := attrsOf[ag.CropAttrs](op)
	if err != nil {
		return false, err
	}
	x, err := e.image(op.Inputs[0])
	if err != nil {
		return false, err
	}
	e.node("Slice", []string{x, e.ints(int64(c.Top), int64(c.Left)), e.ints(int64(c.Top+c.Height), int64(c.Left+c.Width)), e.ints(2, 3)}, out, nil)
	return true, nil
}

// exportSubsamplePad exports SubsamplePadChannels as a strided Slice and
// a Pad of the channels with zeros.
func exportSubsamplePad(e *exporter, op ag.Op, out string) (bool, error) {
	a, err := attrsOf[ag.SubsamplePadAttrs](op)
	if err != nil {
		return false, err
	}
	x, err := e.image(op.Inputs[0])
	if err != nil {
		return false, err
	}
	sub := e.fresh("Slice")
	e.node("Slice", []string{x, e.ints(0, 0), e.ints(math.MaxInt64, math.MaxInt64), e.ints(2, 3), e.ints(int64(a.Stride), int64(a.Stride))}, sub, nil)
	e.node("Pad", []string{sub, e.ints(0, int64(a.Before), 0, 0, 0, int64(a.After), 0, 0)}, out, []*onnxpb.AttributeProto{stringAttr("mode", "constant")})
	return true, nil
}

// padModes are the ONNX names of the padding modes.
var padModes = map[ag.PadMode]string{ag.PadConstant: "constant", ag.PadReflect: "reflect", ag.PadEdge: "edge"}

// exportPad exports Pad; an image is padded NCHW.
func exportPad(e *exporter, op ag.Op, out string) (bool, error) {
	a, err := attrsOf[ag.PadAttrs](op)
	if err != nil {
		return false, err
	}
	in0 := op.Inputs[0]
	rank := len(in0.Shape())
	image := rank == 4
	x, err := e.inLayout(in0, image)
	if err != nil {
		return false, err
	}
	pads := onnxPads(a.Pads, rank)
	mode, ok := padModes[a.Mode]
	if !ok {
		return false, fmt.Errorf("Pad: mode %v has no ONNX counterpart", a.Mode)
	}
	v := tensor.New()
	v.Data = []float32{a.Value}
	e.node("Pad", []string{x, e.ints(pads...), e.initializer(e.fresh("const"), v)}, out, []*onnxpb.AttributeProto{stringAttr("mode", mode)})
	return image, nil
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func intsAttr(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func stringAttr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// onnxShape returns a value's ONNX dimensions (NCHW for images) with a
// symbolic batch.
func onnxShape(s []int, image bool) []any {
	if image {
		s = []int{s[0], s[3], s[1], s[2]}
	}
	out := make([]any, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	if len(out) > 0 {
		out[0] = "batch"
	}
	return out
}

func valueInfo(name string, dims []any) *onnxpb.ValueInfoProto {
	sp := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		switch d := d.(type) {
		case int64:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
		case string:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}
		}
		sp.Dim = append(sp.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: sp}}}}
}
