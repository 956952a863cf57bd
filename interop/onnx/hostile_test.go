package onnx

import (
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/tensor"
)

// graph builds a one-input ModelProto (input "x", output "y") from nodes,
// with float initializers given by shape (zeros).
func graph(opset int64, inits map[string][]int, nodes ...*onnxpb.NodeProto) []byte {
	g := &onnxpb.GraphProto{Node: nodes, Input: []*onnxpb.ValueInfoProto{{Name: strPtr("x")}},
		Output: []*onnxpb.ValueInfoProto{{Name: strPtr("y")}}}
	for name, shape := range inits {
		g.Initializer = append(g.Initializer, encodeTensor(name, tensor.New(shape...)))
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
	cases := []struct {
		name string
		b    []byte
		in   []int
		want string
	}{
		{"MaxPool pads (68 GB)", graph(13, nil, node("MaxPool", []string{"x"}, []string{"y"}, ints("kernel_shape", 1, 1), pads)), []int{1, 1, 1, 1}, "MaxPool: output 0"},
		{"AveragePool pads", graph(13, nil, node("AveragePool", []string{"x"}, []string{"y"}, ints("kernel_shape", 1, 1), pads, iattr("count_include_pad", 1))), []int{1, 1, 1, 1}, "AveragePool: output 0"},
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

// FuzzShapeInference runs small graphs of the supported operators with
// fuzzed attributes and integer inputs: any graph the evaluator accepts
// must produce exactly the shapes its shape inference announced (evalNode
// reports a mismatch as a bug), and none may panic.
func FuzzShapeInference(f *testing.F) {
	ops := []string{}
	for op := range operators {
		ops = append(ops, op)
	}
	sortStrings(ops)
	f.Add(uint8(0), int64(1), int64(1), int64(0), int64(3), uint8(4), int64(1), int64(2))
	f.Add(uint8(5), int64(2), int64(2), int64(1), int64(2), uint8(4), int64(0), int64(-1))
	f.Add(uint8(14), int64(1), int64(3), int64(2), int64(1), uint8(2), int64(3), int64(4))
	f.Fuzz(func(t *testing.T, opIdx uint8, k, stride, pad, axis int64, rank uint8, i0, i1 int64) {
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
		attrs := []*onnxpb.AttributeProto{
			ints("kernel_shape", 1+abs(geo(k)), 1+abs(geo(k+1))), ints("strides", geo(stride), 1+abs(geo(stride+1))),
			ints("pads", geo(pad), geo(pad), abs(geo(pad+1)), geo(pad)), iattr("axis", axis%5), ints("perm", perm...),
		}
		inits := map[string][]int{"w": {2, 3, 1 + int(abs(geo(k)))%3, 1 + int(abs(geo(k+1)))%3}, "b": {2}}
		vals := []int64{i0 % 7, i1 % 7, (i0 + i1) % 7, abs(i0) % 3, abs(i1) % 3, 1, 0, 2}
		nodes := []*onnxpb.NodeProto{intConst("i", vals[:1+abs(axis)%8]...)}
		in := []string{"x", "w", "b"}
		switch op {
		case "Pad", "Reshape", "Slice", "Gather", "Unsqueeze", "Sub", "Div", "ReduceSum":
			in = []string{"x", "i", "i"}
		case "Shape", "Cast":
			in = []string{"x"}
		}
		nodes = append(nodes, node(op, in, []string{"y"}, attrs...))
		m, err := Parse(graph(13, inits, nodes...))
		if err != nil {
			return
		}
		_, err = m.Run(map[string]*tensor.Tensor{"x": tensor.New(shape...)})
		if err != nil && strings.Contains(err.Error(), "shape inference gave") {
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

func sortStrings(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

// A device is refused, not read without end.
func TestLoadRefusesDevices(t *testing.T) {
	if _, err := Load("/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/zero: %v", err)
	}
}
