package onnx

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// graph builds a one-input ModelProto (input "x", output "y") from nodes,
// with float initializers given by shape (zeros).
func graph(opset int64, inits map[string][]int, nodes ...*onnxpb.NodeProto) []byte {
	g := &onnxpb.GraphProto{Node: nodes, Input: []*onnxpb.ValueInfoProto{{Name: strPtr("x")}},
		Output: []*onnxpb.ValueInfoProto{{Name: strPtr("y")}}}
	for _, name := range slices.Sorted(maps.Keys(inits)) { // the same bytes every run
		g.Initializer = append(g.Initializer, encodeTensor(name, tensor.New(inits[name]...)))
	}
	b, err := proto.Marshal(&onnxpb.ModelProto{Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: &opset}}})
	if err != nil {
		panic(err)
	}
	return b
}

func node(op string, in, out []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: strPtr(op), Input: in, Output: out, Attribute: attrs}
}

func ints(name string, v ...int64) *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_INTS
	return &onnxpb.AttributeProto{Name: strPtr(name), Ints: v, Type: &t}
}

func iattr(name string, v int64) *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_INT
	return &onnxpb.AttributeProto{Name: strPtr(name), I: &v, Type: &t}
}

func intConst(name string, v ...int64) *onnxpb.NodeProto {
	dt := int32(onnxpb.TensorProto_INT64)
	tt := onnxpb.AttributeProto_TENSOR
	return node("Constant", nil, []string{name}, &onnxpb.AttributeProto{Name: strPtr("value"), Type: &tt,
		T: &onnxpb.TensorProto{Dims: []int64{int64(len(v))}, DataType: &dt, Int64Data: v}})
}

// Graphs of a few hundred bytes that ask the evaluator for gigabytes are
// refused by shape inference before any operator allocates, naming the
// operator and limits.TensorElements.
func TestHostileGraphs(t *testing.T) {
	pads := ints("pads", 65535, 65535, 65535, 65535)
	poolPads := ints("pads", 65534, 65534, 65534, 65534)
	cases := []struct {
		name string
		b    []byte
		in   []int
		want string
	}{
		// A pooling's pads must be smaller than its kernel.
		{"MaxPool pads (17 GB)", graph(13, nil, node("MaxPool", []string{"x"}, []string{"y"}, ints("kernel_shape", 65535, 65535), poolPads)), []int{1, 1, 1, 1}, "MaxPool: output 0"},
		{"AveragePool pads", graph(13, nil, node("AveragePool", []string{"x"}, []string{"y"}, ints("kernel_shape", 65535, 65535), poolPads, iattr("count_include_pad", 1))), []int{1, 1, 1, 1}, "AveragePool: output 0"},
		{"Conv pads (409 GB)", graph(13, map[string][]int{"w": {6, 1, 1, 1}}, node("Conv", []string{"x", "w"}, []string{"y"}, pads)), []int{1, 1, 1, 1}, "Conv: output 0"},
		{"ConvTranspose output_shape", graph(13, map[string][]int{"w": {1, 8, 1, 1}}, node("ConvTranspose", []string{"x", "w"}, []string{"y"}, ints("strides", 60000, 60000))), []int{1, 1, 2, 2}, "ConvTranspose: output 0"},
		{"Gemm of grown inputs", graph(13, nil,
			intConst("p", 0, 0, 30000, 0),
			node("Pad", []string{"x", "p"}, []string{"a"}),
			node("Transpose", []string{"a"}, []string{"b"}),
			node("Gemm", []string{"a", "b"}, []string{"y"})), []int{1, 1}, "Gemm: output 0"},
		{"MatMul of grown inputs", graph(13, nil,
			intConst("p", 0, 0, 30000, 0),
			node("Pad", []string{"x", "p"}, []string{"a"}),
			node("Transpose", []string{"a"}, []string{"b"}),
			node("MatMul", []string{"a", "b"}, []string{"y"})), []int{1, 1}, "MatMul: output 0"},
		{"Pad", graph(13, nil, intConst("p", 0, 0, 65535, 65535, 0, 0, 65535, 65535), node("Pad", []string{"x", "p"}, []string{"y"})), []int{1, 1, 1, 1}, "Pad: output 0"},
		{"Concat of many copies", graph(13, nil,
			intConst("p", 0, 0, 0, 0, 0, 0, 1023, 1023),
			node("Pad", []string{"x", "p"}, []string{"a"}),
			node("Concat", copies("a", 300), []string{"y"}, iattr("axis", 0))), []int{1, 1, 1, 1}, "Concat: output 0"},
		{"Constant without data", graph(13, nil, func() *onnxpb.NodeProto {
			dt := int32(onnxpb.TensorProto_FLOAT)
			tt := onnxpb.AttributeProto_TENSOR
			return node("Constant", nil, []string{"y"}, &onnxpb.AttributeProto{Name: strPtr("value"), Type: &tt,
				T: &onnxpb.TensorProto{Dims: []int64{1 << 30, 1 << 30}, DataType: &dt}})
		}()), []int{1}, "Constant: output 0"},
		{"Reshape to a huge rank", graph(13, nil, intConst("s", make([]int64, 100)...), node("Reshape", []string{"x", "s"}, []string{"y"})), []int{1}, "rank 100"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			m, err := Parse(c.b)
			if err == nil {
				_, err = m.Run(map[string]*tensor.Tensor{"x": tensor.New(c.in...)})
			}
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			} else if !strings.Contains(err.Error(), "limits.TensorElements") && !strings.Contains(err.Error(), "rank") {
				t.Errorf("error %q does not name the limit", err)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
				t.Errorf("allocated %d MB before refusing", d>>20)
			}
		})
	}
}

// Every operator the evaluator accepts has a shape rule, so that no
// output escapes the check.
func TestEveryOperatorHasAShapeRule(t *testing.T) {
	for op := range operators {
		if shapeRules[op] == nil {
			t.Errorf("%s has no shape rule", op)
		}
	}
	for op := range shapeRules {
		if operators[op] == nil {
			t.Errorf("shape rule for %s, which is no operator", op)
		}
	}
}

// oneNode builds and runs a graph of one node of the op'th operator (in
// sorted order) on an input of rank 1 to 4, with attributes and integer
// inputs made from the other arguments; it returns the operator and
// Run's error.
func oneNode(opIdx uint8, k, stride, pad, axis int64, rank uint8, i0, i1 int64) (string, error) {
	ops := make([]string, 0, len(operators))
	for op := range operators {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	op := ops[int(opIdx)%len(ops)]
	r := 1 + int(rank)%4
	shape := []int{2, 3, 5, 4}[:r]
	if r == 4 {
		shape = []int{1, 3, 5, 4}
	}
	geo := func(v int64) int64 { return v % 8 }
	perm := make([]int64, r)
	for j := range perm {
		perm[j] = (int64(j) + abs(i0)) % int64(r)
	}
	kh, kw := 1+abs(geo(k))%3, 1+abs(geo(k+1))%3
	attrs := []*onnxpb.AttributeProto{
		ints("kernel_shape", kh, kw), ints("strides", geo(stride), 1+abs(geo(stride+1))),
		ints("pads", geo(pad), geo(pad), abs(geo(pad+1)), geo(pad)), iattr("axis", axis%5), ints("perm", perm...),
		iattr("to", map[bool]int64{true: 1, false: 7}[i0%2 == 0]), iattr("transB", i1%2),
	}
	inits := map[string][]int{"w": {2, 3, int(kh), int(kw)}, "wt": {3, 2, int(kh), int(kw)}, "b": {2}, "s": {shape[min(1, r-1)]}, "m": {shape[r-1], 2}}
	vals := []int64{i0 % 7, i1 % 7, (i0 + i1) % 7, abs(i0) % 3, abs(i1) % 3, 1, 0, 2}
	nodes := []*onnxpb.NodeProto{intConst("i", vals[:1+abs(axis)%8]...)}
	in := map[string][]string{
		"Conv": {"x", "w", "b"}, "ConvTranspose": {"x", "wt", "b"}, "BatchNormalization": {"x", "s", "s", "s", "s"},
		"Gemm": {"x", "m"}, "MatMul": {"x", "m"}, "Concat": {"x", "x"}, "Add": {"x", "x"}, "Mul": {"x", "x"},
		"Gather": {"i", "i"}, "Sub": {"i", "i"}, "Div": {"i", "i"}, "Unsqueeze": {"i", "i"},
		"Pad": {"x", "i"}, "Reshape": {"x", "i"}, "Slice": {"x", "i", "i"},
	}[op]
	if in == nil {
		in = []string{"x"}
	}
	if op == "Constant" {
		in = nil
		tt := onnxpb.AttributeProto_TENSOR
		attrs = append(attrs, &onnxpb.AttributeProto{Name: strPtr("value"), Type: &tt, T: encodeTensor("", tensor.New(shape...))})
	}
	nodes = append(nodes, node(op, in, []string{"y"}, attrs...))
	m, err := Parse(graph(13, inits, nodes...))
	if err != nil {
		return op, err
	}
	_, err = m.Run(map[string]*tensor.Tensor{"x": tensor.New(shape...)})
	return op, err
}

// The harness of FuzzShapeInference reaches every operator: over a small
// sweep of its inputs each operator runs to the end at least once.
func TestShapeInferenceReachesEveryOperator(t *testing.T) {
	ran := map[string]int{}
	for opIdx := range len(operators) {
		// Up to 48: the first pooling whose pads are smaller than its
		// kernel, as they must be, comes at 42.
		for v := int64(0); v < 48; v++ {
			op, err := oneNode(uint8(opIdx), v, v/3, v/5, v%8, uint8(v+v/8), v/2, v/4)
			if err == nil {
				ran[op]++
			} else if strings.Contains(err.Error(), "shape inference gave") {
				t.Fatal(err)
			}
		}
	}
	for op := range operators {
		if ran[op] == 0 {
			t.Errorf("%s never ran", op)
		}
	}
}

// FuzzShapeInference runs one-node graphs of every operator with fuzzed
// attributes and integer inputs: whatever the evaluator accepts must
// produce exactly the shapes its shape inference announced (evalNode
// reports a mismatch as its own bug), and nothing may panic.
func FuzzShapeInference(f *testing.F) {
	f.Add(uint8(0), int64(1), int64(1), int64(0), int64(3), uint8(4), int64(1), int64(2))
	f.Add(uint8(5), int64(2), int64(2), int64(1), int64(2), uint8(4), int64(0), int64(-1))
	f.Add(uint8(14), int64(1), int64(3), int64(2), int64(1), uint8(2), int64(3), int64(4))
	f.Fuzz(func(t *testing.T, opIdx uint8, k, stride, pad, axis int64, rank uint8, i0, i1 int64) {
		if _, err := oneNode(opIdx, k, stride, pad, axis, rank, i0, i1); err != nil && strings.Contains(err.Error(), "shape inference gave") {
			t.Fatal(err)
		}
	})
}

func copies(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// The values alive at once are bounded by limits.TotalBytes, each dropped
// after its last reader: a chain of nodes that each produce a large value
// runs (a 274-byte graph padding to 2^28 values and chaining a dozen Relus
// ran out of memory when every value was kept), and a node that needs many
// at once is refused.
func TestLiveValuesBounded(t *testing.T) {
	defer func(b int64) { limits.TotalBytes = b }(limits.TotalBytes)
	limits.TotalBytes = 64 << 20 // 16 M float32 values; each below is 4 M
	grow := intConst("p", 0, 0, 0, 0, 0, 0, 2047, 2047)
	chain := []*onnxpb.NodeProto{grow, node("Pad", []string{"x", "p"}, []string{"a0"})}
	for i := range 12 {
		out := fmt.Sprintf("a%d", i+1)
		if i == 11 {
			out = "y"
		}
		chain = append(chain, node("Relu", []string{fmt.Sprintf("a%d", i)}, []string{out}))
	}
	m, err := Parse(graph(13, nil, chain...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(map[string]*tensor.Tensor{"x": tensor.New(1, 1, 1, 1)}); err != nil {
		t.Errorf("a chain of 12 Relus of 4 M values under a 16 M limit: %v", err)
	}
	wide := []*onnxpb.NodeProto{grow, node("Pad", []string{"x", "p"}, []string{"a0"})}
	for i := range 4 {
		wide = append(wide, node("Relu", []string{"a0"}, []string{fmt.Sprintf("b%d", i)}))
	}
	wide = append(wide, node("Concat", []string{"b0", "b1", "b2", "b3"}, []string{"y"}, iattr("axis", 0)))
	m, err = Parse(graph(13, nil, wide...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(map[string]*tensor.Tensor{"x": tensor.New(1, 1, 1, 1)}); err == nil || !strings.Contains(err.Error(), "values alive") {
		t.Errorf("five values of 4 M alive under a 16 M limit: %v; want the limit named", err)
	}
}

// TestBadAttributes runs one node whose attributes ONNX Runtime refuses:
// each is an error naming the node and the attribute (a zero stride or
// dilation was read as 1, a max pooling's zero stride as its kernel,
// padding as wide as the window gave windows of padding alone, −Inf or
// NaN, SAME padding with a zero stride divided by zero, an attribute of
// another type than the operator's read as 0 or empty); or one on inputs
// the evaluator got wrong, which must give the right result (integer
// arithmetic on an empty tensor and a scalar indexed element −1, Flatten of
// an empty [0,3] gave [0,0]).
func TestBadAttributes(t *testing.T) {
	str := func(name, v string) *onnxpb.AttributeProto {
		t := onnxpb.AttributeProto_STRING
		return &onnxpb.AttributeProto{Name: strPtr(name), S: []byte(v), Type: &t}
	}
	k := ints("kernel_shape", 2, 2)
	w := map[string][]int{"w": {1, 1, 2, 2}}
	conv := func(attrs ...*onnxpb.AttributeProto) []byte {
		return graph(13, w, node("Conv", []string{"x", "w"}, []string{"y"}, attrs...))
	}
	one := func(op string, attrs ...*onnxpb.AttributeProto) []byte {
		return graph(13, nil, node(op, []string{"x"}, []string{"y"}, attrs...))
	}
	cases := []struct {
		name string
		b    []byte
		in   []int
		want string // the error's text, or "shape [...]" for the output's shape
	}{
		{"Conv stride 0", conv(ints("strides", 0, 1)), []int{1, 1, 4, 4}, `node 0 (Conv ""): Conv: strides [0 1]: each must be at least 1`},
		{"Conv dilation 0", conv(ints("dilations", 1, 0)), []int{1, 1, 4, 4}, "Conv: dilations [1 0]: each must be at least 1"},
		{"Conv SAME stride 0", conv(str("auto_pad", "SAME_UPPER"), ints("strides", 0, 0)), []int{1, 1, 4, 4}, "Conv: strides [0 0]: each must be at least 1"},
		{"ConvTranspose stride 0", graph(13, w, node("ConvTranspose", []string{"x", "w"}, []string{"y"}, ints("strides", 0, 2))), []int{1, 1, 4, 4},
			"ConvTranspose: strides [0 2]: each must be at least 1"},
		{"ConvTranspose dilation 0", graph(13, w, node("ConvTranspose", []string{"x", "w"}, []string{"y"}, ints("dilations", 0, 0))), []int{1, 1, 4, 4},
			"ConvTranspose: dilations [0 0]: each must be at least 1"},
		{"ConvTranspose output_padding of the stride", graph(13, w, node("ConvTranspose", []string{"x", "w"}, []string{"y"}, ints("strides", 2, 2), ints("output_padding", 0, 2))), []int{1, 1, 4, 4},
			"ConvTranspose2d: width output padding 2 (output padding [0 2]) must be at least 0 and smaller than the larger of the stride 2 and the dilation 1"},
		// An output_padding already past the bound, where output_shape
		// grows the output further, is named itself (it was "output_shape
		// [8 11] is 1 past the 10 …: with output_padding 2, at most -1").
		{"ConvTranspose output_padding of the stride, output_shape past it", graph(13, w, node("ConvTranspose", []string{"x", "w"}, []string{"y"}, ints("strides", 2, 2), ints("output_padding", 0, 2), ints("output_shape", 8, 11))), []int{1, 1, 4, 4},
			"ConvTranspose: output_padding [0 2] in spatial dimension 1: 2 is not smaller than the larger of the stride 2 and the dilation 1"},
		{"ConvTranspose output_shape past the stride", graph(13, w, node("ConvTranspose", []string{"x", "w"}, []string{"y"}, ints("strides", 2, 2), ints("output_shape", 9, 11))), []int{1, 1, 4, 4},
			"ConvTranspose: output_shape [9 11] is 3 past the 8 that the input gives in spatial dimension 1: with output_padding 0, at most 1 (max(stride 2, dilation 1) − 1)"},
		// A negative output_padding, refused without output_shape by
		// autograd, is refused where output_shape makes up for it too.
		{"ConvTranspose negative output_padding, output_shape past it", graph(13, w, node("ConvTranspose", []string{"x", "w"}, []string{"y"}, ints("strides", 2, 2), ints("output_padding", 0, -1), ints("output_shape", 8, 9))), []int{1, 1, 4, 4},
			"ConvTranspose: output_padding [0 -1]: each must be at least 0"},
		{"ConvTranspose output_padding below the dilation", graph(13, w, node("ConvTranspose", []string{"x", "w"}, []string{"y"}, ints("dilations", 2, 2), ints("output_padding", 1, 1))), []int{1, 1, 4, 4},
			"shape [1 1 7 7]"},
		{"MaxPool stride 0", one("MaxPool", k, ints("strides", 0, 0)), []int{1, 1, 4, 4}, "MaxPool: strides [0 0]: each must be at least 1"},
		{"MaxPool dilation 0", one("MaxPool", k, ints("dilations", 0, 1)), []int{1, 1, 4, 4}, "MaxPool: dilations [0 1]: each must be at least 1"},
		{"MaxPool SAME stride 0", one("MaxPool", k, str("auto_pad", "SAME_LOWER"), ints("strides", 0, 1)), []int{1, 1, 4, 4}, "MaxPool: strides [0 1]: each must be at least 1"},
		{"MaxPool pads of the kernel", one("MaxPool", k, ints("pads", 2, 0, 0, 0)), []int{1, 1, 4, 4}, "MaxPool: pads [2 0 0 0]: each must be smaller than the kernel_shape [2 2]"},
		{"AveragePool pads beyond the kernel", one("AveragePool", k, ints("pads", 0, 0, 0, 3)), []int{1, 1, 4, 4}, "AveragePool: pads [0 0 0 3]: each must be smaller than the kernel_shape [2 2]"},
		// ONNX (and ONNX Runtime) take pads past half the kernel that
		// autograd's pools, like PyTorch's, refuse: the importer runs them.
		{"MaxPool pads past half the kernel", one("MaxPool", ints("kernel_shape", 3, 3), ints("pads", 2, 2, 2, 2)), []int{1, 1, 4, 4}, "shape [1 1 6 6]"},
		{"AveragePool pads past half the kernel", one("AveragePool", ints("kernel_shape", 3, 3), ints("pads", 2, 0, 2, 0)), []int{1, 1, 4, 4}, "shape [1 1 6 2]"},
		{"AveragePool stride 0", one("AveragePool", k, ints("strides", 1, 0)), []int{1, 1, 4, 4}, "AveragePool: strides [1 0]: each must be at least 1"},
		{"Gemm alpha of type INT", graph(13, map[string][]int{"b": {2, 2}}, node("Gemm", []string{"x", "b"}, []string{"y"}, iattr("alpha", 2))), []int{2, 2},
			`node 0 (Gemm ""): attribute alpha is an INT; the operator reads a FLOAT`},
		{"Conv strides of type INT", conv(iattr("strides", 2)), []int{1, 1, 4, 4}, "attribute strides is an INT; the operator reads INTS"},
		{"Flatten axis of type INTS", one("Flatten", ints("axis", 1)), []int{2, 3}, "attribute axis is INTS; the operator reads an INT"},
		{"Pad mode of type INT", graph(13, nil, intConst("p", 0, 1, 0, 1), node("Pad", []string{"x", "p"}, []string{"y"}, iattr("mode", 1))), []int{2, 3},
			"attribute mode is an INT; the operator reads a STRING"},
		{"Flatten of [0,3]", one("Flatten"), []int{0, 3}, "shape [0 3]"},
		{"Flatten of [2,0,3] on axis 2", one("Flatten", iattr("axis", 2)), []int{2, 0, 3}, "shape [0 3]"},
		{"Flatten of [0,3] on axis 0", one("Flatten", iattr("axis", 0)), []int{0, 3}, "shape [1 0]"},
		{"integer Add of an empty tensor and a scalar", graph(13, nil, intConst("e"), intConst("s", 5), node("Add", []string{"e", "s"}, []string{"y"})), []int{1}, "shape [0]"},
		{"integer Sub of a scalar and an empty tensor", graph(13, nil, intConst("e"), intConst("s", 5), node("Sub", []string{"s", "e"}, []string{"y"})), []int{1}, "shape [0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse(c.b)
			if err != nil {
				t.Fatal(err)
			}
			out, err := m.Run(map[string]*tensor.Tensor{"x": tensor.New(c.in...)})
			got := fmt.Sprint(err)
			if err == nil {
				got = fmt.Sprintf("shape %v", out["y"].Shape)
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}
