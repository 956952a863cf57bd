// Package onnx reads ONNX models and runs them on residual's engine.
//
// Supported operators (2-D spatial, float32): Conv, ConvTranspose,
// BatchNormalization, Relu, Add, Mul, MaxPool, AveragePool,
// GlobalAveragePool, Gemm, MatMul, Flatten, Concat, Slice, Softmax,
// LogSoftmax, Pad, Identity, Reshape, Transpose, Constant. A model using anything else is refused when it is loaded, with
// the unsupported operators named; an attribute the engine cannot honour
// (groups, 1-D/3-D kernels, integer data) is an error naming the node.
//
// Images flow through the graph channels-last: a value produced by a
// spatial operator stays NHWC until an operator needs ONNX's NCHW order
// (Flatten, Reshape, Softmax on a 4-D value, a graph output), where it is
// converted once.
//
// Int8 models (package quant) export as QDQ models — QuantizeLinear and
// DequantizeLinear around the float operators, int8 weights, int32
// biases — that ONNX Runtime runs with its int8 kernels (ExportInt8), and
// QDQ models import back into int8 models (ImportInt8); the evaluator
// (Run) itself computes in float32 and does not run QDQ graphs.
//
// A graph is untrusted input: before each node runs, the shapes of its
// outputs are inferred (with the engine's own shape rules where the
// engine computes it) and checked against limits.TensorElements, so a
// graph of a few bytes cannot ask for gigabytes; spatial attributes are
// bounded too, and initializers must hold the data their shapes claim.
package onnx

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// Model is a parsed ONNX graph with its initializers decoded, ready for
// Run, which interprets it with residual's operations (no ONNX Runtime).
type Model struct {
	graph  *onnxpb.GraphProto
	opset  int64
	inits  map[string]*value
	inputs []string // graph inputs that are not initializers
	// shapes holds the inputs' shapes as their types declare them
	// (declaredShape), for Run to check what it is given against.
	shapes map[string][]int
	output []string
}

// Load reads and parses an ONNX file. It must be a regular file of at most
// limits.TotalBytes + limits.HeaderBytes (a device or a pipe is refused
// rather than read without end).
func Load(path string) (*Model, error) {
	b, err := limits.ReadFile(path, limits.TotalBytes+limits.HeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Parse decodes a serialised ModelProto and checks that every operator is
// supported and every node input is defined.
func Parse(b []byte) (*Model, error) {
	mp, err := unmarshalModel(b)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	g := mp.GetGraph()
	if g == nil {
		return nil, fmt.Errorf("onnx: model has no graph")
	}
	m := &Model{graph: g, inits: map[string]*value{}, shapes: map[string][]int{}}
	for _, o := range mp.OpsetImport {
		if d := o.GetDomain(); d == "" || d == "ai.onnx" {
			m.opset = o.GetVersion()
		}
	}
	if m.opset == 0 {
		return nil, fmt.Errorf("onnx: model imports no default-domain opset")
	}
	for _, t := range g.Initializer {
		v, err := decodeTensor(t)
		if err != nil {
			return nil, fmt.Errorf("onnx: initializer: %w", err)
		}
		m.inits[t.GetName()] = v
	}
	defined := map[string]bool{"": true}
	for name := range m.inits {
		defined[name] = true
	}
	for _, in := range g.Input {
		if _, ok := m.inits[in.GetName()]; !ok {
			m.inputs = append(m.inputs, in.GetName())
			if d, ok := declaredShape(in); ok {
				m.shapes[in.GetName()] = d
			}
		}
		defined[in.GetName()] = true
	}
	var unsupported []string
	for i, n := range g.Node {
		if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
			unsupported = append(unsupported, n.GetDomain()+"."+n.GetOpType())
		} else if _, ok := operators[n.GetOpType()]; !ok {
			unsupported = append(unsupported, n.GetOpType())
		}
		for _, in := range n.Input {
			if !defined[in] {
				return nil, fmt.Errorf("onnx: node %d (%s %q) reads %q, which no initializer, input or earlier node defines", i, n.GetOpType(), n.GetName(), in)
			}
		}
		for _, out := range n.Output {
			defined[out] = true
		}
	}
	if len(unsupported) > 0 {
		sort.Strings(unsupported)
		return nil, fmt.Errorf("onnx: unsupported operators: %s", strings.Join(uniq(unsupported), ", "))
	}
	for _, o := range g.Output {
		if !defined[o.GetName()] {
			return nil, fmt.Errorf("onnx: graph output %q is never computed", o.GetName())
		}
		m.output = append(m.output, o.GetName())
	}
	return m, nil
}

func uniq(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Opset returns the default-domain opset version the model imports.
func (m *Model) Opset() int64 { return m.opset }

// Inputs returns the names of the graph inputs that must be supplied.
func (m *Model) Inputs() []string { return m.inputs }

// Outputs returns the names of the graph outputs, the keys of Run's
// result, in the graph's order.
func (m *Model) Outputs() []string { return m.output }

// Run evaluates the graph (inference only) on inputs given in ONNX's layout
// (NCHW images) and returns every graph output in ONNX's layout.
// Integer-valued inputs (e.g. Pad's pads) may be passed as float tensors
// holding whole numbers. An input must have the rank and the fixed
// dimensions its type declares, as ONNX Runtime requires: an NHWC image
// given to a graph that declares NCHW is an error naming both shapes.
func (m *Model) Run(inputs map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	if m == nil {
		return nil, errors.New("onnx: Run: no model (nil)")
	}
	in := map[string]*value{}
	for _, name := range m.inputs {
		t, ok := inputs[name]
		if !ok {
			return nil, fmt.Errorf("onnx: input %q not given (the graph takes %q; given %q)", name, m.inputs, slices.Sorted(maps.Keys(inputs)))
		}
		if err := checkInputTensor(name, t); err != nil {
			return nil, err
		}
		in[name] = floatValue(t)
	}
	for _, name := range slices.Sorted(maps.Keys(inputs)) {
		if _, ok := in[name]; !ok {
			return nil, fmt.Errorf("onnx: input %q given, but the graph has no such input (it takes %q)", name, m.inputs)
		}
	}
	for _, name := range m.inputs {
		if err := checkDeclaredShape(name, inputs[name].Shape, m.shapes[name]); err != nil {
			return nil, err
		}
	}
	return m.run(in)
}

// checkInputTensor refuses an input that is nil or whose data does not
// fill its shape.
func checkInputTensor(name string, t *tensor.Tensor) error {
	if t == nil {
		return fmt.Errorf("onnx: input %q is nil", name)
	}
	if err := limits.CheckElements("onnx: input "+name, t.Shape...); err != nil {
		return err
	}
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	if len(t.Data) != n {
		return fmt.Errorf("onnx: input %q has shape %v (%d values) but %d values", name, t.Shape, n, len(t.Data))
	}
	return nil
}

// declaredShape returns the shape a graph value's type declares, −1 for a
// dimension that is symbolic or unknown (or out of the bounds of an image
// network's geometry); ok is false when the type declares no shape.
func declaredShape(v *onnxpb.ValueInfoProto) (dims []int, ok bool) {
	shape := v.GetType().GetTensorType().GetShape()
	if shape == nil {
		return nil, false
	}
	dims = []int{}
	for _, x := range shape.GetDim() {
		if x.GetDimParam() != "" || x.GetDimValue() <= 0 || x.GetDimValue() > maxGeometry {
			dims = append(dims, -1)
		} else {
			dims = append(dims, int(x.GetDimValue()))
		}
	}
	return dims, true
}

// checkDeclaredShape refuses an input whose shape has another rank than
// the declared one (nil: none declared) or differs in a fixed dimension;
// for a 4-D image in NHWC where the graph declares NCHW it says so.
func checkDeclaredShape(name string, shape, declared []int) error {
	if declared == nil {
		return nil
	}
	fits := func(s []int) bool {
		if len(s) != len(declared) {
			return false
		}
		for i, d := range declared {
			if d >= 0 && s[i] != d {
				return false
			}
		}
		return true
	}
	if fits(shape) {
		return nil
	}
	err := fmt.Errorf("onnx: input %q has shape %v, but the graph declares %v (-1: any size)", name, shape, declared)
	if len(shape) == 4 && fits([]int{shape[0], shape[3], shape[1], shape[2]}) {
		err = fmt.Errorf("%w: the image is NHWC, the graph's input NCHW (tensor.NHWCToNCHW converts it)", err)
	}
	return err
}

// run evaluates the graph on values (which may be integer tensors).
func (m *Model) run(inputs map[string]*value) (map[string]*tensor.Tensor, error) {
	env := map[string]*value{}
	for k, v := range m.inits {
		env[k] = v
	}
	for _, name := range m.inputs {
		v, ok := inputs[name]
		if !ok {
			return nil, fmt.Errorf("onnx: input %q not given", name)
		}
		env[name] = v
	}
	// Each value computed is dropped after the last node that reads it
	// (the graph's outputs are kept), and the values alive at once may not
	// hold more than limits.TotalBytes: every output is bounded by
	// limits.TensorElements, but a chain of a dozen nodes of that size
	// kept whole ran a 274-byte graph out of memory.
	last := map[string]int{}
	for i, n := range m.graph.Node {
		for _, in := range n.Input {
			last[in] = i
		}
	}
	for _, name := range m.output {
		last[name] = len(m.graph.Node)
	}
	var live int64 // elements of the computed values alive
	for i, n := range m.graph.Node {
		args := make([]*value, len(n.Input))
		for j, in := range n.Input {
			if in != "" {
				args[j] = env[in]
			}
		}
		res, err := m.evalNode(n, args)
		if err != nil {
			return nil, fmt.Errorf("onnx: node %d (%s %q): %w", i, n.GetOpType(), n.GetName(), err)
		}
		for j, name := range n.Output {
			if j < len(res) && name != "" {
				if old := env[name]; old != nil && m.inits[name] == nil {
					live -= old.elements() // an output defined twice
				}
				if _, read := last[name]; read {
					env[name] = res[j]
					live += res[j].elements()
				}
			}
		}
		if live > limits.TotalBytes/4 {
			return nil, fmt.Errorf("onnx: node %d (%s %q): the values alive after it hold more than %d bytes (limits.TotalBytes)", i, n.GetOpType(), n.GetName(), limits.TotalBytes)
		}
		for _, in := range n.Input {
			if v := env[in]; v != nil && last[in] == i && m.inits[in] == nil && !slices.Contains(m.inputs, in) {
				live -= v.elements()
				delete(env, in)
			}
		}
	}
	out := map[string]*tensor.Tensor{}
	for _, name := range m.output {
		v := env[name]
		if v == nil {
			return nil, fmt.Errorf("onnx: output %q was not produced", name)
		}
		if v.isInt {
			t := tensor.New(v.shape...)
			for i, x := range v.ints {
				t.Data[i] = float32(x)
			}
			out[name] = t
			continue
		}
		out[name] = v.nchw()
	}
	return out, nil
}

// evalNode runs one node, turning the engine's shape panics into errors.
// Every node's outputs are inferred (shapeRules) and checked against
// limits.TensorElements before the operator runs, so a small graph cannot
// ask for gigabytes; what the operator produces must then have exactly
// the inferred shapes.
func (m *Model) evalNode(n *onnxpb.NodeProto, args []*value) (res []*value, err error) {
	a := attrs(n)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
		// An attribute of another type than the operator's was read as
		// its zero value: whatever followed is not what the graph says.
		if *a.bad != nil {
			res, err = nil, *a.bad
		}
	}()
	for _, name := range []string{"strides", "pads", "dilations", "output_padding", "output_shape", "kernel_shape"} {
		for _, v := range a.ints(name, nil) {
			if v > maxGeometry || v < -maxGeometry {
				return nil, fmt.Errorf("attribute %s holds %d, beyond the ±%d an image network can use", name, v, maxGeometry)
			}
		}
	}
	op := n.GetOpType()
	shapes, err := shapeRules[op](m, a, args)
	if err != nil {
		return nil, err
	}
	for i, s := range shapes {
		if len(s) > maxRank {
			return nil, fmt.Errorf("output %d would have rank %d, more than %d", i, len(s), maxRank)
		}
		if err := limits.CheckElements(fmt.Sprintf("%s: output %d", op, i), s...); err != nil {
			return nil, err
		}
	}
	if res, err = operators[op](m, a, args); err != nil {
		return nil, err
	}
	if len(res) != len(shapes) {
		return nil, fmt.Errorf("shape inference gave %d outputs, the operator %d (a bug in residual's evaluator)", len(shapes), len(res))
	}
	for i, v := range res {
		if got := v.onnxShape(); !tensor.SameShape(got, shapes[i]) {
			return nil, fmt.Errorf("shape inference gave output %d shape %v, the operator %v (a bug in residual's evaluator)", i, shapes[i], got)
		}
	}
	return res, nil
}

// maxGeometry bounds the spatial attributes a graph may use (strides,
// pads, dilations, kernel and output sizes), so that no geometry
// arithmetic overflows; limits.TensorElements bounds every value an
// operator produces.
const maxGeometry = 1 << 16

// attrMap gives typed access to a node's attributes, and tells how many
// outputs the node asks for.
type attrMap struct {
	m       map[string]*onnxpb.AttributeProto
	outputs int
	// bad records the first attribute read as another type than its own
	// (which reads as that type's zero value); evalNode reports it.
	bad *error
}

func attrs(n *onnxpb.NodeProto) attrMap {
	a := attrMap{m: map[string]*onnxpb.AttributeProto{}, outputs: len(n.Output), bad: new(error)}
	for _, at := range n.Attribute {
		a.m[at.GetName()] = at
	}
	return a
}

// get returns the attribute name, recording in a.bad that it is not of
// type want. An attribute without a type (an old writer's) has the type of
// the field it sets.
func (a attrMap) get(name string, want onnxpb.AttributeProto_AttributeType) (*onnxpb.AttributeProto, bool) {
	at, ok := a.m[name]
	if !ok {
		return nil, false
	}
	got := at.GetType()
	if got == onnxpb.AttributeProto_UNDEFINED {
		switch {
		case at.F != nil:
			got = onnxpb.AttributeProto_FLOAT
		case at.I != nil:
			got = onnxpb.AttributeProto_INT
		case at.S != nil:
			got = onnxpb.AttributeProto_STRING
		case at.T != nil:
			got = onnxpb.AttributeProto_TENSOR
		case len(at.Floats) > 0:
			got = onnxpb.AttributeProto_FLOATS
		case len(at.Ints) > 0:
			got = onnxpb.AttributeProto_INTS
		case len(at.Strings) > 0:
			got = onnxpb.AttributeProto_STRINGS
		}
	}
	if got != want && got != onnxpb.AttributeProto_UNDEFINED && *a.bad == nil {
		*a.bad = fmt.Errorf("attribute %s is %s; the operator reads %s", name, attrType(got), attrType(want))
	}
	return at, true
}

// attrType names an attribute type with its article, for errors.
func attrType(t onnxpb.AttributeProto_AttributeType) string {
	switch t {
	case onnxpb.AttributeProto_INT, onnxpb.AttributeProto_UNDEFINED:
		return "an " + t.String()
	case onnxpb.AttributeProto_FLOAT, onnxpb.AttributeProto_STRING, onnxpb.AttributeProto_TENSOR, onnxpb.AttributeProto_GRAPH:
		return "a " + t.String()
	}
	return t.String()
}

func (a attrMap) ints(name string, def []int) []int {
	at, ok := a.get(name, onnxpb.AttributeProto_INTS)
	if !ok {
		return def
	}
	out := make([]int, len(at.Ints))
	for i, v := range at.Ints {
		out[i] = int(v)
	}
	return out
}

func (a attrMap) int(name string, def int) int {
	if at, ok := a.get(name, onnxpb.AttributeProto_INT); ok {
		return int(at.GetI())
	}
	return def
}

func (a attrMap) float(name string, def float32) float32 {
	if at, ok := a.get(name, onnxpb.AttributeProto_FLOAT); ok {
		return at.GetF()
	}
	return def
}

func (a attrMap) str(name, def string) string {
	if at, ok := a.get(name, onnxpb.AttributeProto_STRING); ok {
		return string(at.GetS())
	}
	return def
}
