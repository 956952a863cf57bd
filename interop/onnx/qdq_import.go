package onnx

import (
	"fmt"
	"math"
	"slices"
	"strings"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/quant"
)

// ImportInt8 reads a QDQ ONNX model as the int8 model of net (a network
// of the same architecture, built from its config: its float weights do
// not matter, its batch norms are folded) for inputs of the given shape
// (NHWC), ready for checkpoint.WriteInt8.
//
// It reads what ExportInt8 writes, and the QDQ form of ONNX Runtime's
// quantize_static (per-channel int8 weights, u8 activations: a
// QuantizeLinear's output_dtype, where given, is UINT8): each Conv or
// Gemm must read DequantizeLinear of its input (u8) and of an INT8 weight
// initializer (per output channel on axis 0, or one scale; zero points
// 0), and of an INT32 bias whose scale is the input's times the weight's
// (a float bias is quantized to that unit); after it come the residual
// Add and the Relu that residual's int8 graph fuses into the layer, then
// a QuantizeLinear giving the activation's scale and zero point. A Relu
// that quantize_static removed (a QuantizeLinear with zero point 0 clamps
// at 0) is accepted, and so is a QuantizeLinear–DequantizeLinear pair
// between a Conv and the Add it feeds, or after the last layer: residual
// does not round there (it adds before rounding; its logits are float),
// which changes the result by at most half a step of that dropped
// quantization. Layers are matched to net's by their weight names
// (state-dict names, as both exporters keep them) or else in order, and
// must have net's shapes and geometry. An unfolded batch norm is a Mul and
// an Add or a BatchNormalization in inference mode (training_mode 0, one
// output). Every other activation's scale must
// be the one residual's int8 graph derives for it (max pooling, global
// pooling and reshapes keep their input's): a graph that requantizes
// elsewhere is refused, naming the value. The operations that keep the
// scale (on the u8 tensor, or between a DequantizeLinear and a
// QuantizeLinear of that scale) must be net's too: MaxPool with its
// kernel, strides, pads, dilations and ceil_mode, an option-A shortcut's
// Slice nodes and Pad by the zero point, padding and reshapes as
// ExportInt8 writes them (the pooled [N,C,1,1] flattened by Flatten or
// Reshape). Each DequantizeLinear must read the u8 tensor of the value the
// int8 graph reads there, and a node the output depends on that no
// operation of the int8 graph accounts for (a Transpose, an Identity but
// before the output) is refused, naming it.
func ImportInt8(b []byte, net nn.Layer, input []int) (q *quant.Model, err error) {
	defer func() {
		if r := recover(); r != nil {
			q, err = nil, fmt.Errorf("onnx: import int8: malformed model: %v", r)
		}
	}()
	mp, err := unmarshalModel(b)
	if err != nil {
		return nil, fmt.Errorf("onnx: import int8: %w", err)
	}
	g := mp.GetGraph()
	if g == nil {
		return nil, fmt.Errorf("onnx: import int8: the model has no graph")
	}
	var opset int64
	for _, o := range mp.OpsetImport {
		if d := o.GetDomain(); d == "" || d == "ai.onnx" {
			opset = o.GetVersion()
		}
	}
	if opset < 13 {
		return nil, fmt.Errorf("onnx: import int8: opset %d; per-channel DequantizeLinear needs opset 13 or later", opset)
	}
	plan, err := quant.Plan(net, input)
	if err != nil {
		return nil, err
	}
	im := &qdqImporter{g: g, plan: plan, inits: map[string]*onnxpb.TensorProto{}, producer: map[string]*onnxpb.NodeProto{},
		consumers: map[string][]*onnxpb.NodeProto{}, outputs: map[string]bool{}, used: map[*onnxpb.NodeProto]bool{},
		p: quant.Params{Version: 1, Method: quant.FromQDQ, Ops: plan.Traced, Acts: map[int]quant.QParams{}}, layers: map[string]*quant.Layer{},
		u8: make([]string, plan.Values), claimed: map[*onnxpb.NodeProto]bool{}}
	if err := im.index(); err != nil {
		return nil, fmt.Errorf("onnx: import int8: %w", err)
	}
	if err := im.read(); err != nil {
		return nil, fmt.Errorf("onnx: import int8: %w", err)
	}
	return quant.New(net, input, im.p, im.layers)
}

type qdqImporter struct {
	g         *onnxpb.GraphProto
	plan      *quant.Graph
	inits     map[string]*onnxpb.TensorProto
	producer  map[string]*onnxpb.NodeProto
	consumers map[string][]*onnxpb.NodeProto
	outputs   map[string]bool
	used      map[*onnxpb.NodeProto]bool // Add nodes a layer absorbed
	p         quant.Params
	layers    map[string]*quant.Layer
	// seen are the u8 tensors the graph dequantizes for the layers,
	// additions and batch norms, with their scales and zero points,
	// checked against the values the int8 graph reads there.
	seen []seenParams
	// u8 names each value's u8 tensor in the graph ("" for the final
	// layer's float output).
	u8 []string
	// claimed are the nodes read as part of an operation of the int8
	// graph; the graph may have no others.
	claimed map[*onnxpb.NodeProto]bool
}

type seenParams struct {
	values []int // the value, or either of an Add's operands
	q      quant.QParams
	node   string
	u8     string // the tensor dequantized
}

// qdqAttrTypes are the types of the attributes the import reads (of the
// operators qdqOperators allows): one of another type would read as 0.
var qdqAttrTypes = map[string]onnxpb.AttributeProto_AttributeType{
	"kernel_shape": onnxpb.AttributeProto_INTS, "strides": onnxpb.AttributeProto_INTS, "pads": onnxpb.AttributeProto_INTS,
	"dilations": onnxpb.AttributeProto_INTS, "perm": onnxpb.AttributeProto_INTS,
	"group": onnxpb.AttributeProto_INT, "transA": onnxpb.AttributeProto_INT, "transB": onnxpb.AttributeProto_INT,
	"ceil_mode": onnxpb.AttributeProto_INT, "storage_order": onnxpb.AttributeProto_INT, "axis": onnxpb.AttributeProto_INT,
	"allowzero": onnxpb.AttributeProto_INT, "training_mode": onnxpb.AttributeProto_INT, "output_dtype": onnxpb.AttributeProto_INT,
	"alpha": onnxpb.AttributeProto_FLOAT, "beta": onnxpb.AttributeProto_FLOAT, "epsilon": onnxpb.AttributeProto_FLOAT,
	"auto_pad": onnxpb.AttributeProto_STRING, "mode": onnxpb.AttributeProto_STRING,
}

func (im *qdqImporter) index() error {
	for _, t := range im.g.Initializer {
		im.inits[t.GetName()] = t
	}
	for _, n := range im.g.Node {
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			return fmt.Errorf("node %q: operator %s.%s is not standard ONNX", n.GetName(), d, n.GetOpType())
		}
		if len(n.Output) == 0 || n.Output[0] == "" {
			return fmt.Errorf("node %q (%s) has no output", n.GetName(), n.GetOpType())
		}
		a := attrs(n)
		for _, at := range n.Attribute {
			if t, ok := qdqAttrTypes[at.GetName()]; ok {
				a.get(at.GetName(), t)
			}
		}
		if *a.bad != nil {
			return fmt.Errorf("%s: %w", describe(n), *a.bad)
		}
		switch t := n.GetOpType(); {
		case (t == "QuantizeLinear" || t == "DequantizeLinear") && (len(n.Input) < 2 || n.Input[0] == "" || n.Input[1] == ""):
			return fmt.Errorf("%s %q has no scale (inputs %q)", t, n.GetName(), n.Input)
		case (t == "Add" || t == "Mul") && len(n.Input) != 2:
			return fmt.Errorf("%s %q has %d inputs", t, n.GetName(), len(n.Input))
		}
		for _, in := range n.Input {
			if in != "" {
				im.consumers[in] = append(im.consumers[in], n)
			}
		}
		for _, out := range n.Output {
			if im.producer[out] != nil {
				return fmt.Errorf("value %q is produced twice", out)
			}
			im.producer[out] = n
		}
	}
	for _, o := range im.g.Output {
		im.outputs[o.GetName()] = true
	}
	return nil
}

// read fills the parameters and layers from the graph.
func (im *qdqImporter) read() error {
	var inputs []string
	for _, in := range im.g.Input {
		if im.inits[in.GetName()] == nil {
			inputs = append(inputs, in.GetName())
		}
	}
	if len(inputs) != 1 {
		return fmt.Errorf("the graph has %d inputs, want 1 (the image)", len(inputs))
	}
	q := im.only(inputs[0], "QuantizeLinear")
	if q == nil {
		return fmt.Errorf("the input %q is not read by a QuantizeLinear alone", inputs[0])
	}
	var err error
	if im.p.Input, err = im.scalarParams(q); err != nil {
		return err
	}
	im.claimed[q], im.u8[0] = true, q.Output[0]
	if err := im.readLayers(); err != nil {
		return err
	}
	var adds, affines []quant.Op
	for _, op := range im.plan.Ops {
		switch op.Kind {
		case quant.OpAdd:
			adds = append(adds, op)
		case quant.OpAffine:
			affines = append(affines, op)
		}
	}
	// The additions no layer absorbed: Add nodes of two dequantized
	// operands, in order.
	var addNodes, affNodes []*onnxpb.NodeProto
	for _, n := range im.g.Node {
		switch n.GetOpType() {
		case "Add":
			if !im.used[n] && len(n.Input) == 2 && im.isDQ(n.Input[0]) && im.isDQ(n.Input[1]) {
				addNodes = append(addNodes, n)
			}
		case "Mul", "BatchNormalization":
			if len(n.Input) >= 2 && im.isDQ(n.Input[0]) && im.inits[n.Input[1]] != nil {
				affNodes = append(affNodes, n)
			}
		}
	}
	if len(addNodes) != len(adds) {
		return fmt.Errorf("the graph has %d Add nodes of two dequantized values outside the layers, the model's int8 graph %d additions", len(addNodes), len(adds))
	}
	for i, op := range adds {
		n := addNodes[i]
		_, a, err := im.readDQ(n.Input[0], op.In, n.GetName())
		if err != nil {
			return fmt.Errorf("Add %q: %w", n.GetName(), err)
		}
		_, b, err := im.readDQ(n.Input[1], op.In, n.GetName())
		if err != nil {
			return fmt.Errorf("Add %q: %w", n.GetName(), err)
		}
		if a == b && op.In[0] != op.In[1] {
			return fmt.Errorf("the Add %q adds %q to itself; the model's int8 graph adds two values", n.GetName(), a)
		}
		im.claimed[n] = true
		y, err := im.epilogue(n.GetName(), n.Output[0], op, false)
		if err != nil {
			return err
		}
		im.p.Acts[op.Trace] = y
	}
	if len(affNodes) != len(affines) {
		return fmt.Errorf("the graph has %d Mul or BatchNormalization nodes on dequantized values, the model's int8 graph %d batch norms that do not fold", len(affNodes), len(affines))
	}
	for i, op := range affines {
		if err := im.readAffine(affNodes[i], op); err != nil {
			return fmt.Errorf("%s %q: %w", affNodes[i].GetOpType(), affNodes[i].GetName(), err)
		}
	}
	if err := im.checkOperators(); err != nil {
		return err
	}
	qp := im.valueParams()
	if err := im.readKept(qp); err != nil {
		return err
	}
	if err := im.readOutput(qp); err != nil {
		return err
	}
	// Every node the output depends on must be part of an operation read.
	live := map[*onnxpb.NodeProto]bool{}
	var stack []*onnxpb.NodeProto
	for _, o := range im.g.Output {
		if p := im.producer[o.GetName()]; p != nil {
			stack = append(stack, p)
		}
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if live[n] {
			continue
		}
		live[n] = true
		for _, in := range n.Input {
			if p := im.producer[in]; p != nil {
				stack = append(stack, p)
			}
		}
	}
	for _, n := range im.g.Node {
		if live[n] && !im.claimed[n] {
			return fmt.Errorf("%s (reading %q) is not part of residual's int8 graph there: the import refuses an operation it would not compute", describe(n), n.Input)
		}
	}
	return im.checkSeen(qp)
}

// qdqOperators are the operators a QDQ graph of residual's int8 graph
// uses; qdqCounted maps those that must appear as often as an operation
// of the int8 graph to it.
var (
	qdqOperators = map[string]bool{"QuantizeLinear": true, "DequantizeLinear": true, "Conv": true, "Gemm": true, "Add": true,
		"Mul": true, "BatchNormalization": true, "Relu": true, "MaxPool": true, "GlobalAveragePool": true, "Flatten": true,
		"Reshape": true, "Transpose": true, "Slice": true, "Pad": true, "Identity": true}
	qdqCounted = map[string]quant.OpKind{"MaxPool": quant.OpMaxPool, "GlobalAveragePool": quant.OpGlobalAvgPool, "Relu": quant.OpReLU}
)

// checkOperators checks that the graph uses only operators residual's
// int8 graph has, and as many max and global poolings and lone Relus (those
// no layer or addition absorbed) as it does (readKept then reads each, and
// read refuses any node no operation of the int8 graph accounts for).
func (im *qdqImporter) checkOperators() error {
	count := map[string]int{}
	for _, n := range im.g.Node {
		t := n.GetOpType()
		if !qdqOperators[t] {
			return fmt.Errorf("node %q: operator %s has no counterpart in residual's int8 graph", n.GetName(), t)
		}
		if !im.used[n] {
			count[t]++
		}
	}
	for t, k := range qdqCounted {
		want := 0
		for _, op := range im.plan.Ops {
			if op.Kind == k {
				want++
			}
		}
		if count[t] != want {
			return fmt.Errorf("the graph has %d %s nodes (outside the layers), the model's int8 graph %d", count[t], t, want)
		}
	}
	return nil
}

// readLayers matches the graph's Conv and Gemm nodes with the int8
// graph's layers and reads each.
func (im *qdqImporter) readLayers() error {
	var ops []quant.Op
	byName := map[string]int{}
	for _, op := range im.plan.Ops {
		if op.Kind == quant.OpConv || op.Kind == quant.OpLinear {
			byName[op.Layer] = len(ops)
			ops = append(ops, op)
		}
	}
	var nodes []*onnxpb.NodeProto
	for _, n := range im.g.Node {
		if t := n.GetOpType(); t == "Conv" || t == "Gemm" {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) != len(ops) {
		return fmt.Errorf("the graph has %d Conv and Gemm nodes, the model's int8 graph %d layers", len(nodes), len(ops))
	}
	// Match by the weights' names when every one names a distinct
	// layer; else in order.
	match := make([]int, len(nodes))
	taken := map[int]bool{}
	byNames := true
	for i, n := range nodes {
		name := ""
		if len(n.Input) > 1 {
			if dq := im.producer[n.Input[1]]; dq != nil && dq.GetOpType() == "DequantizeLinear" && len(dq.Input) > 0 {
				name = dq.Input[0]
			}
		}
		name = strings.TrimSuffix(name, "_quantized")
		name = strings.TrimSuffix(name, ".weight")
		j, ok := byName[name]
		if !ok || taken[j] {
			byNames = false
			break
		}
		match[i], taken[j] = j, true
	}
	for i, n := range nodes {
		if !byNames {
			match[i] = i
		}
		op := ops[match[i]]
		if err := im.readLayer(n, op); err != nil {
			return fmt.Errorf("%s %q (layer %s): %w", n.GetOpType(), n.GetName(), op.Layer, err)
		}
	}
	return nil
}

// readLayer reads one Conv or Gemm node as the int8 layer op.
func (im *qdqImporter) readLayer(n *onnxpb.NodeProto, op quant.Op) error {
	ws := op.Weight // HWIO
	kh, kw, ic, oc := ws[0], ws[1], ws[2], ws[3]
	a := attrs(n)
	if op.Kind == quant.OpLinear {
		if n.GetOpType() != "Gemm" {
			return fmt.Errorf("the model's layer is linear")
		}
		if a.int("transA", 0) != 0 || a.int("transB", 0) != 1 || a.float("alpha", 1) != 1 || a.float("beta", 1) != 1 {
			return fmt.Errorf("Gemm with transA %d, transB %d, alpha %v, beta %v; a linear layer is transB 1, the others default",
				a.int("transA", 0), a.int("transB", 0), a.float("alpha", 1), a.float("beta", 1))
		}
	} else {
		if n.GetOpType() != "Conv" {
			return fmt.Errorf("the model's layer is a convolution")
		}
		p := op.Conv
		want := map[string][]int{"strides": {max(p.Stride[0], 1), max(p.Stride[1], 1)}, "dilations": {max(p.Dilation[0], 1), max(p.Dilation[1], 1)},
			"pads": {p.Pad[0], p.Pad[1], p.Pad[2], p.Pad[3]}, "kernel_shape": {kh, kw}}
		def := map[string][]int{"strides": {1, 1}, "dilations": {1, 1}, "pads": {0, 0, 0, 0}, "kernel_shape": {kh, kw}}
		for name, w := range want {
			if got := a.ints(name, def[name]); !slices.Equal(got, w) {
				return fmt.Errorf("%s %v, the model's layer has %v", name, got, w)
			}
		}
		if g := a.int("group", 1); g != 1 {
			return fmt.Errorf("group %d (grouped convolutions are not supported in int8)", g)
		}
		if p := a.str("auto_pad", "NOTSET"); p != "NOTSET" {
			return fmt.Errorf("auto_pad %s (explicit pads only)", p)
		}
	}
	if len(n.Input) < 2 || len(n.Input) > 3 {
		return fmt.Errorf("%d inputs", len(n.Input))
	}
	px, _, err := im.readDQ(n.Input[0], []int{op.In[0]}, n.GetName())
	if err != nil {
		return fmt.Errorf("input: %w", err)
	}
	im.claimed[n] = true
	l := &quant.Layer{KH: kh, KW: kw, IC: ic, OC: oc, W: make([]int8, kh*kw*ic*oc)}
	wdims := []int{oc, ic, kh, kw}
	if op.Kind == quant.OpLinear {
		wdims = wdims[:2]
	}
	w, scale, err := im.weights(n.Input[1], wdims)
	if err != nil {
		return fmt.Errorf("weight: %w", err)
	}
	l.Scale = scale
	for o := range oc {
		for c := range ic {
			for y := range kh {
				for x := range kw {
					l.W[((y*kw+x)*ic+c)*oc+o] = int8(w[((o*ic+c)*kh+y)*kw+x])
				}
			}
		}
	}
	if len(n.Input) == 3 && n.Input[2] != "" {
		if l.Bias, err = im.bias(n.Input[2], oc, float32(px.Scale), scale); err != nil {
			return fmt.Errorf("bias: %w", err)
		}
	} else if op.Bias {
		l.Bias = make([]int32, oc) // a folded batch norm gave the model a bias the graph does without
	}
	if l.Bias != nil && !op.Bias {
		return fmt.Errorf("a bias, which the model's layer does not have")
	}
	y, err := im.epilogue(n.GetName(), n.Output[0], op, true)
	if err != nil {
		return err
	}
	if op.Out != im.plan.Output {
		im.p.Acts[op.Trace] = y
	} else {
		im.p.Acts[op.Trace] = quant.QParams{Scale: 1} // the logits are float; the scale is not used
	}
	im.layers[op.Layer] = l
	return nil
}

// epilogue follows a layer's or an Add's output through what residual's
// int8 graph fuses into it — the residual Add (layer), the Relu — to the
// QuantizeLinear that gives its scale and zero point. layer marks a Conv
// or Gemm (whose residual Add it absorbs).
func (im *qdqImporter) epilogue(name, out string, op quant.Op, layer bool) (quant.QParams, error) {
	cur := out
	final := op.Out == im.plan.Output
	// skipQDQ steps over a QuantizeLinear–DequantizeLinear pair that
	// residual does not have (it rounds only the fused result) when the
	// pair leads to the operation next (or, for "", to the graph output).
	skipQDQ := func(next string) {
		if q := im.only(cur, "QuantizeLinear"); q != nil {
			if dq := im.only(q.Output[0], "DequantizeLinear"); dq != nil {
				y := dq.Output[0]
				if (next == "" && im.outputs[y]) || (next != "" && im.only(y, next) != nil) {
					cur = y
					im.claimed[q], im.claimed[dq] = true, true
				}
			}
		}
	}
	if layer && op.Res >= 0 {
		skipQDQ("Add")
		add := im.only(cur, "Add")
		if add == nil {
			return quant.QParams{}, fmt.Errorf("%s: the model adds a residual after this layer; its output is not read by an Add alone", name)
		}
		other := add.Input[0]
		if other == cur {
			other = add.Input[1]
		}
		if _, _, err := im.readDQ(other, []int{op.Res}, add.GetName()); err != nil {
			return quant.QParams{}, fmt.Errorf("%s: residual Add %q: %w", name, add.GetName(), err)
		}
		im.used[add], im.claimed[add] = true, true
		cur = add.Output[0]
	}
	relu := false
	if op.ReLU {
		skipQDQ("Relu")
		if r := im.only(cur, "Relu"); r != nil {
			cur, relu = r.Output[0], true
			im.used[r], im.claimed[r] = true, true
		}
	}
	if final {
		if layer {
			skipQDQ("")
			if id := im.only(cur, "Identity"); id != nil {
				cur = id.Output[0]
				im.claimed[id] = true
			}
			if !im.outputs[cur] {
				return quant.QParams{}, fmt.Errorf("%s: the model's output comes from this layer; the graph does not output it", name)
			}
			if op.ReLU && !relu {
				return quant.QParams{}, fmt.Errorf("%s: the model applies a ReLU to its output; the graph does not", name)
			}
			return quant.QParams{}, nil
		}
	}
	q := im.only(cur, "QuantizeLinear")
	if q == nil {
		return quant.QParams{}, fmt.Errorf("%s: its output is not read by a QuantizeLinear alone (what the int8 graph computes next: residual %v, ReLU %v)", name, op.Res >= 0, op.ReLU)
	}
	p, err := im.scalarParams(q)
	if err != nil {
		return quant.QParams{}, err
	}
	if op.ReLU && !relu && p.Zero != 0 {
		return quant.QParams{}, fmt.Errorf("%s: the model applies a ReLU here; the graph has no Relu and its QuantizeLinear's zero point %d does not clamp at 0", name, p.Zero)
	}
	if !op.ReLU && relu {
		return quant.QParams{}, fmt.Errorf("%s: the graph applies a Relu the model's int8 graph does not have here", name)
	}
	im.claimed[q], im.u8[op.Out] = true, q.Output[0]
	return p, nil
}

// readAffine reads an unfolded batch norm: Mul by per-channel factors and
// Add of offsets (as ExportInt8 writes it) or a BatchNormalization, on a
// dequantized value, then a QuantizeLinear.
func (im *qdqImporter) readAffine(n *onnxpb.NodeProto, op quant.Op) error {
	c := len(op.A)
	_, _, err := im.readDQ(n.Input[0], []int{op.In[0]}, n.GetName())
	if err != nil {
		return err
	}
	im.claimed[n] = true
	vec := func(name string) ([]float32, error) {
		v, err := im.floats(name)
		if err != nil {
			return nil, err
		}
		if len(v) != c {
			return nil, fmt.Errorf("%q holds %d values for %d channels", name, len(v), c)
		}
		return v, nil
	}
	var a, b []float32
	out := n.Output[0]
	if n.GetOpType() == "BatchNormalization" {
		if len(n.Input) != 5 {
			return fmt.Errorf("%d inputs, want 5", len(n.Input))
		}
		// Training mode normalises by the batch's statistics (and writes
		// running ones); the int8 graph's batch norm is the fixed affine
		// map of the stored mean and variance.
		if m := attrs(n).int("training_mode", 0); m != 0 {
			return fmt.Errorf("training_mode %d: it normalises by each batch's statistics; residual's int8 graph applies the stored mean and variance (training_mode 0)", m)
		}
		if slices.ContainsFunc(n.Output[1:], func(o string) bool { return o != "" }) {
			return fmt.Errorf("outputs %q: a batch norm's statistics are outputs only in training mode; residual's int8 graph has one output", n.Output[1:])
		}
		var p [4][]float32
		for i := range p {
			if p[i], err = vec(n.Input[i+1]); err != nil {
				return err
			}
		}
		eps := float64(attrs(n).float("epsilon", 1e-5))
		a, b = make([]float32, c), make([]float32, c)
		for i := range c {
			s := float64(p[0][i]) / math.Sqrt(float64(p[3][i])+eps)
			a[i], b[i] = float32(s), float32(float64(p[1][i])-s*float64(p[2][i]))
		}
	} else {
		if a, err = vec(n.Input[1]); err != nil {
			return err
		}
		add := im.only(out, "Add")
		if add == nil || len(add.Input) != 2 || add.Input[0] != out {
			return fmt.Errorf("the Mul is not followed by an Add of per-channel offsets")
		}
		if b, err = vec(add.Input[1]); err != nil {
			return err
		}
		out = add.Output[0]
		im.claimed[add] = true
	}
	q := im.only(out, "QuantizeLinear")
	if q == nil {
		return fmt.Errorf("its output is not read by a QuantizeLinear alone")
	}
	p, err := im.scalarParams(q)
	if err != nil {
		return err
	}
	im.claimed[q], im.u8[op.Out] = true, q.Output[0]
	im.p.Acts[op.Trace] = p
	if im.p.Affine == nil {
		im.p.Affine = map[int]quant.Affine{}
	}
	im.p.Affine[op.Trace] = quant.Affine{A: a, B: b}
	return nil
}

// valueParams returns the scale and zero point of each value of the int8
// graph, from those read.
func (im *qdqImporter) valueParams() []quant.QParams {
	qp := make([]quant.QParams, im.plan.Values)
	qp[0] = im.p.Input
	for _, op := range im.plan.Ops {
		if op.Calibrated() {
			qp[op.Out] = im.p.Acts[op.Trace]
		} else {
			qp[op.Out] = qp[op.In[0]]
		}
	}
	return qp
}

// checkSeen checks that the layers, additions and batch norms dequantize
// the u8 tensors of the values the int8 graph reads there, with those
// values' scales and zero points.
func (im *qdqImporter) checkSeen(qp []quant.QParams) error {
	for _, s := range im.seen {
		v := -1
		for _, c := range s.values {
			if im.u8[c] == s.u8 {
				v = c
				break
			}
		}
		if v < 0 {
			var want []string
			for _, c := range s.values {
				want = append(want, fmt.Sprintf("value %d (%q)", c, im.u8[c]))
			}
			return fmt.Errorf("node %q reads %q%s; residual's int8 graph reads %s there", s.node, s.u8, im.origin(s.u8), strings.Join(want, " and "))
		}
		if err := sameParams(s.node, v, s.q, qp[v]); err != nil {
			return err
		}
	}
	return nil
}

// sameParams checks that node dequantizes value v with the scale and zero
// point the int8 graph gives it.
func sameParams(node string, v int, got, want quant.QParams) error {
	if float32(want.Scale) == float32(got.Scale) && want.Zero == got.Zero {
		return nil
	}
	return fmt.Errorf("node %q dequantizes value %d with scale %v and zero point %d; residual's int8 graph computes it with scale %v and zero point %d "+
		"(it requantizes only after layers, additions and unfolded batch norms; pooling and reshapes keep their input's scale)",
		node, v, got.Scale, got.Zero, want.Scale, want.Zero)
}

// origin says where a tensor comes from, for errors.
func (im *qdqImporter) origin(name string) string {
	if p := im.producer[name]; p != nil {
		return ", the output of " + describe(p)
	}
	return ", which no node produces"
}

// readers lists, for errors, the nodes reading x that no operation read
// has claimed.
func (im *qdqImporter) readers(x string) string {
	var r []string
	for _, c := range im.consumers[x] {
		if !im.claimed[c] {
			r = append(r, describe(c))
		}
	}
	if len(r) == 0 {
		return ""
	}
	return "; it is read by " + strings.Join(r, ", ")
}

// describe names a node for errors: its type and name, or its output when
// it has no name.
func describe(n *onnxpb.NodeProto) string {
	if n.GetName() != "" {
		return fmt.Sprintf("%s %q", n.GetOpType(), n.GetName())
	}
	if len(n.Output) > 0 {
		return fmt.Sprintf("%s (output %q)", n.GetOpType(), n.Output[0])
	}
	return n.GetOpType()
}

// readOutput checks the graph's output: the final layer's (which its
// epilogue read) or a DequantizeLinear of the model's output value.
func (im *qdqImporter) readOutput(qp []quant.QParams) error {
	if len(im.g.Output) != 1 {
		return fmt.Errorf("the graph has %d outputs; residual's int8 graph has one", len(im.g.Output))
	}
	for _, op := range im.plan.Ops {
		if op.Out == im.plan.Output && (op.Kind == quant.OpConv || op.Kind == quant.OpLinear) {
			return nil
		}
	}
	v, name := im.plan.Output, im.g.Output[0].GetName()
	dq := im.producer[name]
	if dq == nil || dq.GetOpType() != "DequantizeLinear" || dq.Input[0] != im.u8[v] {
		return fmt.Errorf("the graph's output %q is not a DequantizeLinear of %q, the model's output (value %d)", name, im.u8[v], v)
	}
	p, err := im.scalarParams(dq)
	if err != nil {
		return err
	}
	im.claimed[dq] = true
	return sameParams(dq.GetName(), v, p, qp[v])
}

// readKept reads the operations that keep their input's scale (max and
// global pooling, lone ReLUs, reshapes, padding and option-A shortcuts),
// in the int8 graph's order, from the u8 tensor of the value each reads:
// each must be there, with the model's parameters, and gives the u8
// tensor of its output.
func (im *qdqImporter) readKept(qp []quant.QParams) error {
	for _, op := range im.plan.Ops {
		if op.Calibrated() {
			continue
		}
		v := op.In[0]
		x := im.u8[v]
		if x == "" {
			return fmt.Errorf("the model's %s of value %d: the graph does not quantize that value", op.Kind, v)
		}
		what := fmt.Sprintf("the model's %s of value %d (%q)", op.Kind, v, x)
		must := func(x string, types []string, u8 bool, check func(*onnxpb.NodeProto, bool) error) (string, error) {
			y, ok, err := im.step(x, qp[v], types, u8, check)
			switch {
			case err != nil:
				err = fmt.Errorf("%s: %w", what, err)
			case !ok:
				err = fmt.Errorf("%s: no %s reads %q (directly or through a DequantizeLinear)%s", what, strings.Join(types, " or "), x, im.readers(x))
			}
			return y, err
		}
		var y string
		var err error
		switch op.Kind {
		case quant.OpMaxPool:
			y, err = must(x, []string{"MaxPool"}, true, im.checkMaxPool(op.Pool))
		case quant.OpReLU:
			y, err = must(x, []string{"Relu"}, false, oneInput)
		case quant.OpGlobalAvgPool:
			// ONNX's pooling gives [N,C,1,1], residual's [N,C].
			if y, err = must(x, []string{"GlobalAveragePool"}, false, oneInput); err == nil {
				c := op.Shape[len(op.Shape)-1]
				y, err = must(y, []string{"Flatten", "Reshape"}, true, im.checkFlatten(append([]int{op.Shape[0], c}, 1, 1), []int{op.Shape[0], c}))
			}
		case quant.OpReshape:
			// As ExportInt8 writes it: residual reshapes in NHWC order.
			y = x
			if len(op.InShape) == 4 {
				y, err = must(y, []string{"Transpose"}, true, checkPerm(0, 2, 3, 1))
			}
			if err == nil {
				y, err = must(y, []string{"Reshape"}, true, im.checkFlatten(op.InShape, op.Shape))
			}
			if err == nil && len(op.Shape) == 4 {
				y, err = must(y, []string{"Transpose"}, true, checkPerm(0, 3, 1, 2))
			}
		case quant.OpSubsamplePad:
			if y, err = im.readSubsample(x, qp[v], op, what); err == nil {
				s := op.Sub
				y, err = must(y, []string{"Pad"}, true, im.checkPad([]int64{0, int64(s.Before), 0, 0, 0, int64(s.After), 0, 0}, qp[v].Zero))
			}
		case quant.OpPad:
			y, err = must(x, []string{"Pad"}, true, im.checkPad(onnxPads(op.Pads, len(op.InShape)), qp[v].Zero))
		default:
			err = fmt.Errorf("%s: not an operation a QDQ graph can hold", what)
		}
		if err != nil {
			return err
		}
		im.u8[op.Out] = y
	}
	return nil
}

// step finds the first unclaimed node of one of types that reads the u8
// tensor x, directly (where u8 is set: ONNX defines the operator on
// uint8) or through a DequantizeLinear of x whose output the node reads,
// the node's output then read by a QuantizeLinear alone; the
// DequantizeLinear and the QuantizeLinear must have x's scale and zero
// point, want. It checks the node with check (told which form it has),
// claims the nodes and returns the u8 tensor computed; ok is false when
// there is no such node.
func (im *qdqImporter) step(x string, want quant.QParams, types []string, u8 bool, check func(*onnxpb.NodeProto, bool) error) (y string, ok bool, err error) {
	var n, dq *onnxpb.NodeProto
	for _, c := range im.consumers[x] {
		if len(c.Input) == 0 || c.Input[0] != x {
			continue
		}
		if u8 && !im.claimed[c] && slices.Contains(types, c.GetOpType()) {
			n = c
			break
		}
		if c.GetOpType() == "DequantizeLinear" {
			for _, d := range im.consumers[c.Output[0]] {
				if !im.claimed[d] && slices.Contains(types, d.GetOpType()) && d.Input[0] == c.Output[0] {
					n, dq = d, c
					break
				}
			}
			if n != nil {
				break
			}
		}
	}
	if n == nil {
		return "", false, nil
	}
	if err := check(n, dq == nil); err != nil {
		return "", false, fmt.Errorf("%s: %w", describe(n), err)
	}
	im.claimed[n] = true
	if dq == nil {
		return n.Output[0], true, nil
	}
	p, err := im.scalarParams(dq)
	if err != nil {
		return "", false, err
	}
	if float32(p.Scale) != float32(want.Scale) || p.Zero != want.Zero {
		return "", false, fmt.Errorf("DequantizeLinear %q dequantizes %q, of scale %v and zero point %d, with scale %v and zero point %d", dq.GetName(), x, want.Scale, want.Zero, p.Scale, p.Zero)
	}
	q := im.only(n.Output[0], "QuantizeLinear")
	if q == nil {
		return "", false, fmt.Errorf("%s: its output is not read by a QuantizeLinear alone", describe(n))
	}
	if p, err = im.scalarParams(q); err != nil {
		return "", false, err
	}
	if float32(p.Scale) != float32(want.Scale) || p.Zero != want.Zero {
		return "", false, fmt.Errorf("QuantizeLinear %q after %s requantizes with scale %v and zero point %d; residual's int8 graph keeps the input's, %v and %d",
			q.GetName(), describe(n), p.Scale, p.Zero, want.Scale, want.Zero)
	}
	im.claimed[dq], im.claimed[q] = true, true
	return q.Output[0], true, nil
}

func oneInput(n *onnxpb.NodeProto, _ bool) error {
	if len(n.Input) != 1 {
		return fmt.Errorf("%d inputs", len(n.Input))
	}
	return nil
}

// checkMaxPool checks a MaxPool's attributes against the model's max
// pooling p.
func (im *qdqImporter) checkMaxPool(p ag.PoolParams) func(*onnxpb.NodeProto, bool) error {
	return func(n *onnxpb.NodeProto, _ bool) error {
		if err := oneInput(n, false); err != nil {
			return err
		}
		if len(n.Output) > 1 && n.Output[1] != "" {
			return fmt.Errorf("its Indices output is used; residual's max pooling has none")
		}
		stride := p.Stride
		if stride == [2]int{} {
			stride = p.Kernel
		}
		a := attrs(n)
		for _, c := range []struct {
			name      string
			want, def []int
		}{
			{"kernel_shape", p.Kernel[:], nil},
			{"strides", stride[:], []int{1, 1}},
			{"pads", p.Pad[:], []int{0, 0, 0, 0}},
			{"dilations", []int{max(p.Dilation[0], 1), max(p.Dilation[1], 1)}, []int{1, 1}},
		} {
			if got := a.ints(c.name, c.def); !slices.Equal(got, c.want) {
				return fmt.Errorf("%s %v, the model's max pooling has %v", c.name, got, c.want)
			}
		}
		if got, want := a.int("ceil_mode", 0), int(b2i(p.CeilMode)); got != want {
			return fmt.Errorf("ceil_mode %d, the model's max pooling has %d", got, want)
		}
		if got := a.int("storage_order", 0); got != 0 {
			return fmt.Errorf("storage_order %d (residual's max pooling is 0, the default)", got)
		}
		if got := a.str("auto_pad", "NOTSET"); got != "NOTSET" {
			return fmt.Errorf("auto_pad %s (explicit pads only)", got)
		}
		return nil
	}
}

// checkPerm checks a Transpose's perm.
func checkPerm(perm ...int) func(*onnxpb.NodeProto, bool) error {
	return func(n *onnxpb.NodeProto, _ bool) error {
		if err := oneInput(n, false); err != nil {
			return err
		}
		if got := attrs(n).ints("perm", nil); !slices.Equal(got, perm) {
			return fmt.Errorf("perm %v; the model's int8 graph reorders %v here", got, perm)
		}
		return nil
	}
}

// checkFlatten checks that a Flatten (axis 1, for a 2-D result) or a
// Reshape (by a constant shape) turns a tensor of shape in into one of
// shape out (batch first: in[0] = out[0]) in row-major order.
func (im *qdqImporter) checkFlatten(in, out []int) func(*onnxpb.NodeProto, bool) error {
	return func(n *onnxpb.NodeProto, _ bool) error {
		a := attrs(n)
		if n.GetOpType() == "Flatten" {
			if err := oneInput(n, false); err != nil {
				return err
			}
			axis := a.int("axis", 1)
			if len(out) != 2 || (axis != 1 && axis != 1-len(in)) {
				return fmt.Errorf("axis %d; the model's int8 graph has shape %v here", axis, out)
			}
			return nil
		}
		if len(n.Input) != 2 || n.Input[1] == "" {
			return fmt.Errorf("%d inputs, want the tensor and its shape", len(n.Input))
		}
		s, err := im.ints(n.Input[1])
		if err != nil {
			return fmt.Errorf("shape: %w", err)
		}
		ok := len(s) == len(out)
		unknown := 0
		for i := 0; ok && i < len(s); i++ {
			switch {
			case s[i] == -1:
				unknown++
			case s[i] == 0 && a.int("allowzero", 0) == 0:
				ok = i < len(in) && in[i] == out[i]
			default:
				ok = s[i] == int64(out[i])
			}
		}
		if !ok || unknown > 1 {
			return fmt.Errorf("shape %v; the model's int8 graph has shape %v here", s, out)
		}
		return nil
	}
}

// checkPad checks a Pad: constant, by the given pads (ONNX's order: the
// starts of every axis, then the ends) and by the zero point zero on the
// u8 tensor or by 0 between a DequantizeLinear and a QuantizeLinear (the
// same real value).
func (im *qdqImporter) checkPad(want []int64, zero int) func(*onnxpb.NodeProto, bool) error {
	return func(n *onnxpb.NodeProto, u8 bool) error {
		if len(n.Input) < 2 || n.Input[1] == "" {
			return fmt.Errorf("no pads input")
		}
		if len(n.Input) > 3 && n.Input[3] != "" {
			return fmt.Errorf("an axes input; the model's padding gives every axis")
		}
		if m := attrs(n).str("mode", "constant"); m != "constant" {
			return fmt.Errorf("mode %s; the model pads with a constant", m)
		}
		pads, err := im.ints(n.Input[1])
		if err != nil {
			return fmt.Errorf("pads: %w", err)
		}
		if !slices.Equal(pads, want) {
			return fmt.Errorf("pads %v; the model's int8 graph pads %v here", pads, want)
		}
		value, real := 0.0, "0"
		if len(n.Input) > 2 && n.Input[2] != "" {
			if u8 {
				v, err := im.ints(n.Input[2])
				if err != nil || len(v) != 1 {
					return fmt.Errorf("constant_value %q is not one integer (%v)", n.Input[2], err)
				}
				value = float64(v[0])
			} else {
				v, err := im.floats(n.Input[2])
				if err != nil || len(v) != 1 {
					return fmt.Errorf("constant_value %q is not one float (%v)", n.Input[2], err)
				}
				value = float64(v[0])
			}
		}
		if u8 {
			real = fmt.Sprintf("its zero point, %d", zero)
		}
		if (u8 && value != float64(zero)) || (!u8 && value != 0) {
			return fmt.Errorf("pads with %v; the model pads with the real value 0 (%s)", value, real)
		}
		return nil
	}
}

// readSubsample reads the Slice nodes (one or more in a row) of an
// option-A shortcut op on the u8 tensor x: together they must take every
// Sub.Stride-th row and column from the first, and all of the batch and
// channels. It returns the tensor they give.
func (im *qdqImporter) readSubsample(x string, want quant.QParams, op quant.Op, what string) (string, error) {
	// Each axis (ONNX's order) of what the slices took so far: the
	// entries start + step·i for i < n of the input's.
	type taken struct{ start, step, n int64 }
	in := op.InShape // NHWC
	sel := [4]taken{{0, 1, int64(in[0])}, {0, 1, int64(in[3])}, {0, 1, int64(in[1])}, {0, 1, int64(in[2])}}
	var last *onnxpb.NodeProto
	slice := func(n *onnxpb.NodeProto, _ bool) error {
		last = n
		if len(n.Input) < 3 || n.Input[1] == "" || n.Input[2] == "" {
			return fmt.Errorf("no starts and ends")
		}
		list := make([][]int64, 4)
		for i := 1; i < len(n.Input) && i < 5; i++ {
			if n.Input[i] == "" {
				continue
			}
			v, err := im.ints(n.Input[i])
			if err != nil {
				return err
			}
			list[i-1] = v
		}
		starts, ends, axes, steps := list[0], list[1], list[2], list[3]
		if axes == nil {
			for i := range starts {
				axes = append(axes, int64(i))
			}
		}
		if steps == nil {
			steps = slices.Repeat([]int64{1}, len(starts))
		}
		if len(ends) != len(starts) || len(axes) != len(starts) || len(steps) != len(starts) {
			return fmt.Errorf("%d starts, %d ends, %d axes, %d steps", len(starts), len(ends), len(axes), len(steps))
		}
		done := [4]bool{}
		for k, ax := range axes {
			if ax < 0 {
				ax += 4
			}
			if ax < 0 || ax >= 4 || done[ax] {
				return fmt.Errorf("axes %v for rank 4", axes)
			}
			done[ax] = true
			if steps[k] < 1 || steps[k] > maxGeometry {
				return fmt.Errorf("step %d (the model's shortcut takes positive steps)", steps[k])
			}
			t := &sel[ax]
			clamp := func(v int64) int64 {
				if v < 0 {
					v += t.n
				}
				return min(max(v, 0), t.n)
			}
			lo, hi, cnt := clamp(starts[k]), clamp(ends[k]), int64(0)
			if hi > lo {
				cnt = (hi-lo-1)/steps[k] + 1
			}
			t.start, t.step, t.n = t.start+t.step*lo, t.step*steps[k], cnt
			if t.n <= 1 {
				t.step = 1 // one entry: no step
			}
		}
		return nil
	}
	y := x
	for {
		z, ok, err := im.step(y, want, []string{"Slice"}, true, slice)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		if !ok {
			break
		}
		y = z
	}
	if last == nil {
		return "", fmt.Errorf("%s: no Slice reads %q (directly or through a DequantizeLinear)%s", what, x, im.readers(x))
	}
	s := int64(op.Sub.Stride)
	for ax, t := range sel {
		step, n := int64(1), []int64{int64(in[0]), int64(in[3])}
		if ax >= 2 {
			step, n = s, []int64{(int64(in[1]) + s - 1) / s, (int64(in[2]) + s - 1) / s}
		}
		wantN := n[ax%2]
		if t.start != 0 || t.n != wantN || (t.n > 1 && t.step != step) {
			return "", fmt.Errorf("%s: the Slice nodes up to %s take %d entries of axis %d from %d every %d; the model's shortcut takes %d from 0 every %d",
				what, describe(last), t.n, ax, t.start, t.step, wantN, step)
		}
	}
	return y, nil
}

// only returns the single node reading name if it is of type op (and
// name is not also a graph output).
func (im *qdqImporter) only(name, op string) *onnxpb.NodeProto {
	c := im.consumers[name]
	if len(c) != 1 || c[0].GetOpType() != op || im.outputs[name] || len(c[0].Output) == 0 {
		return nil
	}
	return c[0]
}

func (im *qdqImporter) isDQ(name string) bool {
	p := im.producer[name]
	return p != nil && p.GetOpType() == "DequantizeLinear"
}

// readDQ reads the DequantizeLinear that produces name, which reader
// reads as one of values: it returns its scale and zero point and the u8
// tensor it dequantizes (which checkSeen checks is that value's, once
// every value's is known).
func (im *qdqImporter) readDQ(name string, values []int, reader string) (quant.QParams, string, error) {
	dq := im.producer[name]
	if dq == nil || dq.GetOpType() != "DequantizeLinear" {
		return quant.QParams{}, "", fmt.Errorf("%q is not the output of a DequantizeLinear", name)
	}
	if im.inits[dq.Input[0]] != nil {
		return quant.QParams{}, "", fmt.Errorf("DequantizeLinear %q dequantizes an initializer where an activation was expected", dq.GetName())
	}
	p, err := im.scalarParams(dq)
	if err != nil {
		return quant.QParams{}, "", err
	}
	im.claimed[dq] = true
	im.seen = append(im.seen, seenParams{values: values, q: p, node: reader, u8: dq.Input[0]})
	return p, dq.Input[0], nil
}

// scalarParams reads a per-tensor (scalar) scale and u8 zero point of a
// QuantizeLinear or DequantizeLinear node.
func (im *qdqImporter) scalarParams(n *onnxpb.NodeProto) (quant.QParams, error) {
	if len(n.Input) < 2 || n.Input[1] == "" {
		return quant.QParams{}, fmt.Errorf("%s %q has no scale", n.GetOpType(), n.GetName())
	}
	s, err := im.floats(n.Input[1])
	if err != nil {
		return quant.QParams{}, fmt.Errorf("%s %q: scale: %w", n.GetOpType(), n.GetName(), err)
	}
	if len(s) != 1 {
		return quant.QParams{}, fmt.Errorf("%s %q: %d scales; activations take one (per tensor)", n.GetOpType(), n.GetName(), len(s))
	}
	if !(s[0] > 0) || math.IsInf(float64(s[0]), 0) {
		return quant.QParams{}, fmt.Errorf("%s %q: scale %v (want finite and positive)", n.GetOpType(), n.GetName(), s[0])
	}
	// Opset 21's output_dtype sets the type a QuantizeLinear without a
	// zero point gives (UINT8 by default).
	if dt := onnxpb.TensorProto_DataType(attrs(n).int("output_dtype", 0)); n.GetOpType() == "QuantizeLinear" && dt != 0 && dt != onnxpb.TensorProto_UINT8 {
		return quant.QParams{}, fmt.Errorf("%s %q: output_dtype %s; residual's activations are UINT8", n.GetOpType(), n.GetName(), dt)
	}
	p := quant.QParams{Scale: float64(s[0])}
	if len(n.Input) > 2 && n.Input[2] != "" {
		t := im.inits[n.Input[2]]
		if t == nil {
			return quant.QParams{}, fmt.Errorf("%s %q: zero point %q is not an initializer", n.GetOpType(), n.GetName(), n.Input[2])
		}
		if dt := onnxpb.TensorProto_DataType(t.GetDataType()); dt != onnxpb.TensorProto_UINT8 {
			return quant.QParams{}, fmt.Errorf("%s %q: zero point of type %s; residual's activations are UINT8", n.GetOpType(), n.GetName(), dt)
		}
		z, err := im.ints(n.Input[2])
		if err != nil {
			return quant.QParams{}, err
		}
		if len(z) != 1 {
			return quant.QParams{}, fmt.Errorf("%s %q: %d zero points; activations take one", n.GetOpType(), n.GetName(), len(z))
		}
		p.Zero = int(z[0])
	} // without one, the zero point is 0 and the type UINT8
	return p, nil
}

// weights reads the int8 weight a DequantizeLinear produces as name:
// dims (ONNX's layout) and one scale per output channel (axis 0) or one
// for all, zero points 0.
func (im *qdqImporter) weights(name string, dims []int) ([]int64, []float32, error) {
	dq := im.producer[name]
	if dq == nil || dq.GetOpType() != "DequantizeLinear" {
		return nil, nil, fmt.Errorf("%q is not the output of a DequantizeLinear (float weights are not int8)", name)
	}
	t := im.inits[dq.Input[0]]
	if t == nil {
		return nil, nil, fmt.Errorf("DequantizeLinear %q: %q is not an initializer", dq.GetName(), dq.Input[0])
	}
	if dt := onnxpb.TensorProto_DataType(t.GetDataType()); dt != onnxpb.TensorProto_INT8 {
		return nil, nil, fmt.Errorf("%q is %s; int8 weights are INT8", t.GetName(), dt)
	}
	if !slices.Equal(int64s(t.Dims), dims) {
		return nil, nil, fmt.Errorf("%q has shape %v, the model's layer %v", t.GetName(), t.Dims, dims)
	}
	w, err := im.ints(dq.Input[0])
	if err != nil {
		return nil, nil, err
	}
	scale, err := im.channelParams(dq, dims[0], onnxpb.TensorProto_INT8)
	if err != nil {
		return nil, nil, err
	}
	im.claimed[dq] = true
	return w, scale, nil
}

// bias reads a layer's bias in units of sx·sw[n]: an INT32 initializer
// through a DequantizeLinear whose scale is that unit, or a float
// initializer (quantized to it, half to even).
func (im *qdqImporter) bias(name string, oc int, sx float32, sw []float32) ([]int32, error) {
	out := make([]int32, oc)
	if t := im.inits[name]; t != nil { // a float bias
		b, err := im.floats(name)
		if err != nil {
			return nil, err
		}
		if len(b) != oc {
			return nil, fmt.Errorf("%q holds %d values for %d channels", name, len(b), oc)
		}
		for o, v := range b {
			r := math.RoundToEven(float64(v) / float64(sx*sw[o]))
			if math.IsNaN(r) || math.Abs(r) > 1<<24 {
				return nil, fmt.Errorf("%q channel %d: %v is not representable in units of %v", name, o, v, sx*sw[o])
			}
			out[o] = int32(r)
		}
		return out, nil
	}
	dq := im.producer[name]
	if dq == nil || dq.GetOpType() != "DequantizeLinear" {
		return nil, fmt.Errorf("%q is neither an initializer nor the output of a DequantizeLinear", name)
	}
	t := im.inits[dq.Input[0]]
	if t == nil {
		return nil, fmt.Errorf("DequantizeLinear %q: %q is not an initializer", dq.GetName(), dq.Input[0])
	}
	if dt := onnxpb.TensorProto_DataType(t.GetDataType()); dt != onnxpb.TensorProto_INT32 {
		return nil, fmt.Errorf("%q is %s; quantized biases are INT32", t.GetName(), dt)
	}
	b, err := im.ints(dq.Input[0])
	if err != nil {
		return nil, err
	}
	if len(b) != oc || len(t.Dims) != 1 {
		return nil, fmt.Errorf("%q has shape %v for %d channels", t.GetName(), t.Dims, oc)
	}
	bs, err := im.channelParams(dq, oc, onnxpb.TensorProto_INT32)
	if err != nil {
		return nil, err
	}
	for o := range oc {
		unit := sx * sw[o]
		if d := math.Abs(float64(bs[o]-unit)) / float64(unit); d > 1e-6 {
			return nil, fmt.Errorf("channel %d: bias scale %v, want the input scale times the weight scale, %v", o, bs[o], unit)
		}
		if b[o] < -(1<<24) || b[o] > 1<<24 {
			return nil, fmt.Errorf("channel %d: bias %d beyond ±2²⁴ units", o, b[o])
		}
		out[o] = int32(b[o])
	}
	im.claimed[dq] = true
	return out, nil
}

// channelParams reads a weight's or bias's DequantizeLinear scales (n per
// output channel on axis 0, or one, repeated) and checks that its zero
// points (of type dt) are absent or 0.
func (im *qdqImporter) channelParams(dq *onnxpb.NodeProto, n int, dt onnxpb.TensorProto_DataType) ([]float32, error) {
	if len(dq.Input) < 2 || dq.Input[1] == "" {
		return nil, fmt.Errorf("DequantizeLinear %q has no scale", dq.GetName())
	}
	s, err := im.floats(dq.Input[1])
	if err != nil {
		return nil, fmt.Errorf("DequantizeLinear %q: scale: %w", dq.GetName(), err)
	}
	switch {
	case len(s) == n && len(s) > 1:
		if axis := attrs(dq).int("axis", 1); axis != 0 {
			return nil, fmt.Errorf("DequantizeLinear %q: %d scales on axis %d; per-channel weights are on axis 0 (the output channels)", dq.GetName(), len(s), axis)
		}
	case len(s) == 1:
		s = slices.Repeat(s, n)
	default:
		return nil, fmt.Errorf("DequantizeLinear %q: %d scales for %d output channels", dq.GetName(), len(s), n)
	}
	for o, v := range s {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("DequantizeLinear %q: scale %d is %v (want finite and positive)", dq.GetName(), o, v)
		}
	}
	if len(dq.Input) > 2 && dq.Input[2] != "" {
		t := im.inits[dq.Input[2]]
		if t == nil {
			return nil, fmt.Errorf("DequantizeLinear %q: zero point %q is not an initializer", dq.GetName(), dq.Input[2])
		}
		if got := onnxpb.TensorProto_DataType(t.GetDataType()); got != dt {
			return nil, fmt.Errorf("DequantizeLinear %q: zero point of type %s, want %s", dq.GetName(), got, dt)
		}
		z, err := im.ints(dq.Input[2])
		if err != nil {
			return nil, err
		}
		for _, v := range z {
			if v != 0 {
				return nil, fmt.Errorf("DequantizeLinear %q: zero point %d; residual's weights are symmetric (zero point 0)", dq.GetName(), v)
			}
		}
	}
	return s, nil
}

// floats decodes a FLOAT initializer.
func (im *qdqImporter) floats(name string) ([]float32, error) {
	t := im.inits[name]
	if t == nil {
		return nil, fmt.Errorf("%q is not an initializer (quantization parameters must be, as ONNX Runtime's quantize_static and residual write them; torch.onnx.export's QDQ graphs compute them with Constant nodes, which import onnx does not read)", name)
	}
	if dt := onnxpb.TensorProto_DataType(t.GetDataType()); dt != onnxpb.TensorProto_FLOAT {
		return nil, fmt.Errorf("%q is %s, want FLOAT", name, dt)
	}
	v, err := decodeTensor(t)
	if err != nil {
		return nil, err
	}
	return v.f.Data, nil
}

// ints decodes an INT8, UINT8 or INT32 initializer.
func (im *qdqImporter) ints(name string) ([]int64, error) {
	t := im.inits[name]
	if t == nil {
		return nil, fmt.Errorf("%q is not an initializer", name)
	}
	v, err := decodeTensorOf(t, true)
	if err != nil {
		return nil, err
	}
	if !v.isInt {
		return nil, fmt.Errorf("%q is not an integer tensor", name)
	}
	return v.ints, nil
}

func int64s(d []int64) []int {
	out := make([]int, len(d))
	for i, v := range d {
		out[i] = int(v)
	}
	return out
}

// Info is what an ONNX model says about itself without being run: its
// metadata_props, the dimensions of its (first) graph input that is
// not an initializer and of its first output, in ONNX's order, −1 where a
// dimension is symbolic, and whether it quantizes (QDQ: it has
// QuantizeLinear nodes, which ImportInt8 needs).
type Info struct {
	Props         map[string]string
	Input, Output []int
	QDQ           bool
}

// Describe reads a serialised model's Info.
func Describe(b []byte) (Info, error) {
	mp, err := unmarshalModel(b)
	if err != nil {
		return Info{}, fmt.Errorf("onnx: %w", err)
	}
	info := Info{Props: map[string]string{}}
	for _, p := range mp.MetadataProps {
		info.Props[p.GetKey()] = p.GetValue()
	}
	g := mp.GetGraph()
	if g == nil {
		return Info{}, fmt.Errorf("onnx: the model has no graph")
	}
	inits := map[string]bool{}
	for _, t := range g.Initializer {
		inits[t.GetName()] = true
	}
	dims := func(v *onnxpb.ValueInfoProto) []int {
		if d, _ := declaredShape(v); len(d) > 0 {
			return d
		}
		return nil
	}
	for _, in := range g.Input {
		if !inits[in.GetName()] {
			info.Input = dims(in)
			break
		}
	}
	if len(g.Output) > 0 {
		info.Output = dims(g.Output[0])
	}
	for _, n := range g.Node {
		if n.GetOpType() == "QuantizeLinear" {
			info.QDQ = true
			break
		}
	}
	return info, nil
}
