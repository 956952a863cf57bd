package onnx

import (
	"fmt"
	"math"
	"slices"
	"strings"

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
// quantize_static (per-channel int8 weights, u8 activations): each Conv or
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
// must have net's shapes and geometry. Every other activation's scale must
// be the one residual's int8 graph derives for it (max pooling, global
// pooling and reshapes keep their input's): a graph that requantizes
// elsewhere is refused, naming the value.
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
		p: quant.Params{Version: 1, Method: quant.FromQDQ, Ops: plan.Traced, Acts: map[int]quant.QParams{}}, layers: map[string]*quant.Layer{}}
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
	// seen are the scales and zero points the graph dequantizes each
	// value with, checked against what the int8 graph derives.
	seen []seenParams
}

type seenParams struct {
	values []int // the value, or either of an Add's operands
	q      quant.QParams
	node   string
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
		pa, err := im.dqParams(n.Input[0])
		if err != nil {
			return fmt.Errorf("Add %q: %w", n.GetName(), err)
		}
		pb, err := im.dqParams(n.Input[1])
		if err != nil {
			return fmt.Errorf("Add %q: %w", n.GetName(), err)
		}
		im.seen = append(im.seen, seenParams{op.In, pa, n.GetName()}, seenParams{op.In, pb, n.GetName()})
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
	return im.checkSeen()
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
// no layer or addition absorbed) as it does: a graph with operations the
// layers and scales read do not show is refused, not imported without
// them.
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
	px, err := im.dqParams(n.Input[0])
	if err != nil {
		return fmt.Errorf("input: %w", err)
	}
	im.seen = append(im.seen, seenParams{[]int{op.In[0]}, px, n.GetName()})
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
		pr, err := im.dqParams(other)
		if err != nil {
			return quant.QParams{}, fmt.Errorf("%s: residual Add %q: %w", name, add.GetName(), err)
		}
		im.seen = append(im.seen, seenParams{[]int{op.Res}, pr, add.GetName()})
		im.used[add] = true
		cur = add.Output[0]
	}
	relu := false
	if op.ReLU {
		skipQDQ("Relu")
		if r := im.only(cur, "Relu"); r != nil {
			cur, relu = r.Output[0], true
			im.used[r] = true
		}
	}
	if final {
		if layer {
			skipQDQ("")
			if id := im.only(cur, "Identity"); id != nil {
				cur = id.Output[0]
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
	return p, nil
}

// readAffine reads an unfolded batch norm: Mul by per-channel factors and
// Add of offsets (as ExportInt8 writes it) or a BatchNormalization, on a
// dequantized value, then a QuantizeLinear.
func (im *qdqImporter) readAffine(n *onnxpb.NodeProto, op quant.Op) error {
	c := len(op.A)
	px, err := im.dqParams(n.Input[0])
	if err != nil {
		return err
	}
	im.seen = append(im.seen, seenParams{[]int{op.In[0]}, px, n.GetName()})
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
	}
	q := im.only(out, "QuantizeLinear")
	if q == nil {
		return fmt.Errorf("its output is not read by a QuantizeLinear alone")
	}
	p, err := im.scalarParams(q)
	if err != nil {
		return err
	}
	im.p.Acts[op.Trace] = p
	if im.p.Affine == nil {
		im.p.Affine = map[int]quant.Affine{}
	}
	im.p.Affine[op.Trace] = quant.Affine{A: a, B: b}
	return nil
}

// checkSeen checks every scale and zero point the graph dequantizes a
// value with against the int8 graph's.
func (im *qdqImporter) checkSeen() error {
	qp := make([]quant.QParams, im.plan.Values)
	qp[0] = im.p.Input
	for _, op := range im.plan.Ops {
		if op.Calibrated() {
			qp[op.Out] = im.p.Acts[op.Trace]
		} else {
			qp[op.Out] = qp[op.In[0]]
		}
	}
	for _, s := range im.seen {
		ok := false
		for _, v := range s.values {
			want := qp[v]
			ok = ok || (float32(want.Scale) == float32(s.q.Scale) && want.Zero == s.q.Zero)
		}
		if !ok {
			want := qp[s.values[0]]
			return fmt.Errorf("node %q dequantizes value %d with scale %v and zero point %d; residual's int8 graph computes it with scale %v and zero point %d "+
				"(it requantizes only after layers, additions and unfolded batch norms; pooling and reshapes keep their input's scale)",
				s.node, s.values[0], s.q.Scale, s.q.Zero, want.Scale, want.Zero)
		}
	}
	return nil
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

// dqParams returns the scale and zero point of the DequantizeLinear that
// produces name from a u8 activation.
func (im *qdqImporter) dqParams(name string) (quant.QParams, error) {
	dq := im.producer[name]
	if dq == nil || dq.GetOpType() != "DequantizeLinear" {
		return quant.QParams{}, fmt.Errorf("%q is not the output of a DequantizeLinear", name)
	}
	if im.inits[dq.Input[0]] != nil {
		return quant.QParams{}, fmt.Errorf("DequantizeLinear %q dequantizes an initializer where an activation was expected", dq.GetName())
	}
	return im.scalarParams(dq)
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
		var d []int
		for _, x := range v.GetType().GetTensorType().GetShape().GetDim() {
			if x.GetDimParam() != "" || x.GetDimValue() <= 0 || x.GetDimValue() > maxGeometry {
				d = append(d, -1)
			} else {
				d = append(d, int(x.GetDimValue()))
			}
		}
		return d
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
