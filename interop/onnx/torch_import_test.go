package onnx

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/residual-nn/residual/internal/onnxpb"

	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/tensor"
)

// TestImportTorchExports runs graphs written by torch.onnx.export (opset 13,
// dynamic batch; testdata/torch/gen_interop.py) — a torchvision-shaped
// ResNet and a valid-convolution U-Net whose crop torch expresses as shape
// arithmetic and Slice — and compares with PyTorch's outputs at 1e-4
// relative to the output's scale.
func TestImportTorchExports(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/torch/interop/onnx.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Cases map[string]struct {
			Input  []int
			Output fixture.Tensor
		}
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) != 2 {
		t.Fatalf("%d cases", len(ref.Cases))
	}
	for name, c := range ref.Cases {
		m, err := Load("../../testdata/torch/interop/" + name + ".onnx")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		x := fixture.Fill("input", c.Input...)
		out, err := m.Run(map[string]*tensor.Tensor{"input": x})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := fixture.Compare(out["output"], c.Output.Float32(), 1e-4); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestImportErrors checks that malformed graphs are refused with a message
// naming the problem: an unsupported operator, a missing initializer, a
// truncated file, an input of the wrong shape.
func TestImportErrors(t *testing.T) {
	b, err := os.ReadFile("../../testdata/torch/interop/small_resnet.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b[:len(b)/2]); err == nil {
		t.Error("a truncated model parsed")
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	m.graph.Node[0].OpType = strPtr("LSTM")
	if _, err := Parse(mustMarshal(t, m)); err == nil || !strings.Contains(err.Error(), "LSTM") {
		t.Errorf("unsupported op: %v", err)
	}
	m, _ = Parse(b)
	w := m.graph.Node[0].Input[1]
	for i, init := range m.graph.Initializer {
		if init.GetName() == w {
			m.graph.Initializer = append(m.graph.Initializer[:i], m.graph.Initializer[i+1:]...)
			break
		}
	}
	if _, err := Parse(mustMarshal(t, m)); err == nil || !strings.Contains(err.Error(), w) {
		t.Errorf("missing initializer %s: %v", w, err)
	}
	m, _ = Parse(b)
	// The graph declares its input's channels, and Run holds the input
	// to them (TestRunDeclaredShape).
	if _, err := m.Run(map[string]*tensor.Tensor{"input": tensor.New(1, 5, 40, 40)}); err == nil || !strings.Contains(err.Error(), `input "input" has shape [1 5 40 40], but the graph declares [-1 3 40 40]`) {
		t.Errorf("wrong channels: %v", err)
	}
	// Inputs that are nil, whose data does not fill their shape, that the
	// graph does not take, or one given under another name: errors naming
	// the input (a runtime error's text, or silence, before; for the last,
	// the names given and taken).
	short := tensor.New(1, 3, 8, 8)
	short.Data = short.Data[:5]
	for _, tc := range []struct {
		in   map[string]*tensor.Tensor
		want string
	}{
		{map[string]*tensor.Tensor{"input": nil}, `input "input" is nil`},
		{map[string]*tensor.Tensor{"input": short}, `input "input" has shape [1 3 8 8] (192 values) but 5 values`},
		{map[string]*tensor.Tensor{"input": {Shape: []int{1, -3, 8, 8}}}, "negative dimension"},
		{map[string]*tensor.Tensor{"input": tensor.New(1, 3, 8, 8), "extra": tensor.New(1)}, `input "extra" given, but the graph has no such input`},
		{map[string]*tensor.Tensor{"x": tensor.New(1, 3, 40, 40)}, `input "input" not given (the graph takes ["input"]; given ["x"])`},
	} {
		if _, err := m.Run(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error with %q, got %v", tc.want, err)
		}
	}
}

func strPtr(s string) *string { return &s }

// mustMarshal serialises a parsed model's graph again (opset 13).
func mustMarshal(t *testing.T, m *Model) []byte {
	b, err := proto.Marshal(&onnxpb.ModelProto{IrVersion: proto.Int64(7), Graph: m.graph,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: proto.Int64(13)}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParse feeds arbitrary bytes to the ONNX parser and, when a graph
// parses, runs it on a small input: neither may panic or hang. Besides two
// exported networks (12 and 27 KB, which the fuzzer mutates slowly: each
// input that parses runs a whole ResNet or U-Net), the seeds are graphs
// of a few nodes and a hundred bytes or so.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"small_resnet.onnx", "tiny_unet.onnx"} {
		b, err := os.ReadFile("../../testdata/torch/interop/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(graph(13, nil, node("Relu", []string{"x"}, []string{"y"})))
	f.Add(graph(13, map[string][]int{"w": {2, 1, 3, 3}, "b": {2}},
		node("Conv", []string{"x", "w", "b"}, []string{"c"}, ints("pads", 1, 1, 1, 1), ints("strides", 2, 2)),
		node("BatchNormalization", []string{"c", "b", "b", "b", "b"}, []string{"n"}),
		node("Relu", []string{"n"}, []string{"r"}),
		node("GlobalAveragePool", []string{"r"}, []string{"y"})))
	f.Add(graph(13, nil, node("MaxPool", []string{"x"}, []string{"m"}, ints("kernel_shape", 2, 2), ints("strides", 2, 2)),
		node("Add", []string{"m", "m"}, []string{"y"})))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		in := map[string]*tensor.Tensor{}
		for _, n := range m.Inputs() {
			in[n] = tensor.New(1, 1, 12, 12)
		}
		m.Run(in) // errors are fine; panics are not (Run recovers shape panics)
	})
}

// TestImportConvTransposeOutputPaddingPastTheStride runs PyTorch's
// transposed convolutions whose output padding is at least the stride
// (below the dilation; testdata/torch/gen_convtranspose_outpad.py) as ONNX
// ConvTranspose nodes and compares with PyTorch's outputs at 1e-5: they
// were refused as giving "no valid output" (the last two, whose padding
// leaves no input inside the output, as well). ONNX Runtime 1.30 takes the
// same bound (output_padding below max(stride, dilation)) but then fails
// them too ("output_padding may be too large for stride").
func TestImportConvTransposeOutputPaddingPastTheStride(t *testing.T) {
	f, err := fixture.Load("../../testdata/torch/convtranspose_outpad.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) != 6 {
		t.Fatalf("%d cases, want 6", len(f.Cases))
	}
	for i, c := range f.Cases {
		pair := func(name string) []int64 {
			l := c.Attrs[name].([]any)
			return []int64{int64(l[0].(float64)), int64(l[1].(float64))}
		}
		p := pair("pad")
		in := []string{"x", "w"}
		inits := []*onnxpb.TensorProto{encodeTensor("w", c.T("weight"))}
		if c.Has("bias") {
			in = append(in, "b")
			inits = append(inits, encodeTensor("b", c.T("bias")))
		}
		g := &onnxpb.GraphProto{Input: []*onnxpb.ValueInfoProto{{Name: strPtr("x")}}, Output: []*onnxpb.ValueInfoProto{{Name: strPtr("y")}},
			Initializer: inits, Node: []*onnxpb.NodeProto{node("ConvTranspose", in, []string{"y"}, ints("strides", pair("stride")...),
				ints("pads", p[0], p[1], p[0], p[1]), ints("output_padding", pair("output_padding")...), ints("dilations", pair("dilation")...))}}
		opset := int64(13)
		m, err := Parse(mustMarshalModel(t, &onnxpb.ModelProto{Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: &opset}}}))
		if err != nil {
			t.Fatal(err)
		}
		out, err := m.Run(map[string]*tensor.Tensor{"x": c.T("x")})
		if err != nil {
			t.Errorf("case %d %v: %v", i, c.Attrs, err)
			continue
		}
		if err := fixture.Compare(out["y"], c.T("out"), 1e-5); err != nil {
			t.Errorf("case %d %v: %v", i, c.Attrs, err)
		}
	}
}
