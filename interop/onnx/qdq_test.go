package onnx

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
	"google.golang.org/protobuf/proto"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/tensor"
)

// qdqCases reach every operation of the int8 graph: convolutions with
// fused ReLU and residual, option-A shortcuts (Slice + Pad on u8),
// projection shortcuts and max pooling (ResNet-18's stem), unfused
// additions, ReLUs and batch norms (pre-activation blocks), global
// pooling and linear layers.
func qdqCases(t *testing.T) []exportCase {
	preset := func(name string) models.Config {
		c, err := models.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		c, _ = c.Clone()
		return c
	}
	r20 := preset("resnet20")
	r20.Arch.(*models.ResNet).Layers = []int{1, 1, 1}
	pre := preset("resnet20")
	pa := pre.Arch.(*models.ResNet)
	pa.Layers, pa.Ordering, pa.Shortcut = []int{1, 1, 1}, resnet.PreActivation, resnet.ShortcutB
	r18 := preset("resnet18")
	a := r18.Arch.(*models.ResNet)
	a.Widths, a.StemWidth = []int{8, 8, 16, 16}, 8
	return []exportCase{{"resnet20-small", r20, []int{1, 16, 16, 3}}, {"preact-small", pre, []int{1, 16, 16, 3}}, {"resnet18-narrow", r18, []int{1, 32, 32, 3}}}
}

// quantizeCase builds the case's network (non-trivial batch norms) and
// quantizes it by min/max on two batches of hashed inputs.
func quantizeCase(t *testing.T, c exportCase) *quant.Model {
	t.Helper()
	net := build(t, c.cfg)
	calls := 0
	q, err := quant.Quantize(context.Background(), net, c.input, func() (*tensor.Tensor, error) {
		if calls++; calls > 2 {
			return nil, nil
		}
		shape := append([]int{4}, c.input[1:]...)
		x := tensor.New(shape...)
		for i, v := range fixture.Hashed(fmt.Sprintf("onnx.qdq.calibrate.%d", calls), x.Len()) {
			x.Data[i] = float32(v)
		}
		return x, nil
	}, quant.Options{Method: quant.MinMax})
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return q
}

// u8Names returns the ONNX name of each u8 value of an ExportInt8 graph
// ("" for the final layer's float output).
func u8Names(g *quant.Graph) []string {
	names := make([]string, g.Values)
	names[0] = "v0"
	for _, op := range g.Ops {
		switch {
		case op.Out == g.Output && (op.Kind == quant.OpConv || op.Kind == quant.OpLinear):
		case op.Kind == quant.OpGlobalAvgPool:
			names[op.Out] = fmt.Sprintf("v%d_flat", op.Out)
		default:
			names[op.Out] = fmt.Sprintf("v%d", op.Out)
		}
	}
	return names
}

// TestQDQExportStructure checks the exported graph's QDQ form: int8
// weights with per-channel scales on axis 0 and zero points 0, int32
// biases whose scale is the input scale times the weight scale, u8
// activations.
func TestQDQExportStructure(t *testing.T) {
	c := qdqCases(t)[0]
	q := quantizeCase(t, c)
	b, err := ExportInt8(q, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	// The float evaluator refuses it, pointing to the int8 import.
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "an int8 QDQ model is read by ImportInt8") {
		t.Errorf("Parse of a QDQ model: %v", err)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	if len(mp.MetadataProps) != 1 || mp.MetadataProps[0].GetKey() != "k" {
		t.Errorf("metadata %v", mp.MetadataProps)
	}
	inits := map[string]*onnxpb.TensorProto{}
	for _, i := range mp.Graph.Initializer {
		inits[i.GetName()] = i
	}
	convs := 0
	for _, n := range mp.Graph.Node {
		switch n.GetOpType() {
		case "Conv", "Gemm":
			convs++
		case "DequantizeLinear":
			x := inits[n.Input[0]]
			if x == nil {
				continue
			}
			dt := onnxpb.TensorProto_DataType(x.GetDataType())
			if dt != onnxpb.TensorProto_INT8 && dt != onnxpb.TensorProto_INT32 {
				t.Errorf("%s: dequantizes a %s initializer", n.GetName(), dt)
			}
			if attrs(n).int("axis", -1) != 0 || len(inits[n.Input[1]].Dims) != 1 || inits[n.Input[1]].Dims[0] != x.Dims[0] {
				t.Errorf("%s: not per output channel", n.GetName())
			}
			for _, z := range inits[n.Input[2]].RawData {
				if z != 0 {
					t.Errorf("%s: zero point %d", n.GetName(), z)
				}
			}
		}
	}
	if convs != len(q.Layers()) {
		t.Errorf("%d Conv/Gemm nodes for %d layers", convs, len(q.Layers()))
	}
	for name, l := range q.Layers() {
		bs := inits[name+".bias_scale"]
		if l.Bias == nil || bs == nil {
			continue
		}
		var sx float32
		for _, op := range q.Graph().Ops {
			if op.Layer == name {
				sx = float32(q.ValueParams(op.In[0]).Scale)
			}
		}
		for o := range l.OC {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(bs.RawData[4*o:])); got != sx*l.Scale[o] {
				t.Errorf("%s: bias scale %d = %v, want %v", name, o, got, sx*l.Scale[o])
			}
		}
	}
}

// ortOutput reads a tensor ort_run.js wrote.
func ortOutput(t *testing.T, path string) (raw []byte, dims []int, typ string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Dims []int  `json:"dims"`
		Type string `json:"type"`
	}
	b, err := os.ReadFile(path + ".json")
	if err != nil {
		if b, err = os.ReadFile(path + ".shape"); err != nil {
			t.Fatal(err)
		}
		info.Type = "float32"
		err = json.Unmarshal(b, &info.Dims)
	} else {
		err = json.Unmarshal(b, &info)
	}
	if err != nil {
		t.Fatal(err)
	}
	return raw, info.Dims, info.Type
}

// TestQDQExportONNXRuntime runs the QDQ exports in ONNX Runtime 1.30 and
// compares every u8 activation and the logits with residual's int8
// network, at three settings: graph optimizations disabled (QDQ's
// reference semantics: DequantizeLinear, float32 Conv/Gemm/Add/Relu,
// QuantizeLinear); all of them (the Conv/Gemm units fused into
// QLinearConv/QGemm, int32 sums), which runs only on a CPU where ONNX
// Runtime's u8×s8 kernels cannot saturate (VNNI, or not x86); and all of
// them with the session option session.x64quantprecision, with which ONNX
// Runtime computes u8×u8 instead where its x86 kernels would saturate.
//
// The bound. Both compute each requantized value from the same u8 inputs
// and int8 weights: residual sums exactly in int32 and scales once in
// float32 (float32(acc+bias)·(sx·sw/sy)); ONNX Runtime either does the
// same (QLinearConv) or sums the dequantized products in float32 and
// divides by sy. The real values agree to float32 rounding (relative
// K·2⁻²⁴ for K terms), so the rounded u8 results agree except where the
// value lies that close to a rounding boundary (x.5), where they differ by
// one step: every u8 activation must agree within 1. The logits (the last
// linear layer, float32, no rounding) then differ by the one-step input
// differences times the weights plus float32 summation error:
// |Δy[n]| ≤ sx·sw[n]·(Σ_k |w[k][n]|·|Δx_k| + (K+1)·2⁻²³·(Σ_k |w[k][n]·(x_k−z)| + |b[n]|))
// (the bound is computed from ONNX Runtime's own u8 inputs to the layer).
func TestQDQExportONNXRuntime(t *testing.T) {
	ortAvailable(t)
	dir := t.TempDir()
	type job struct {
		Model        string   `json:"model"`
		Input        string   `json:"input"`
		Dims         []int    `json:"dims"`
		Output       string   `json:"output"`
		Optimization string   `json:"optimization"`
		Optimized    string   `json:"optimized,omitempty"`
		Fetch        []string `json:"fetch"`
		Extra        any      `json:"extra,omitempty"`
	}
	type check struct {
		name  string
		skip  string // why the case cannot run here
		q     *quant.Model
		x     *tensor.Tensor
		out   string
		fused string // the optimized model, for the fusion check
		names []string
	}
	var jobs []job
	var checks []check
	saturates := runtime.GOARCH == "amd64" && !cpu.X86.HasAVX512VNNI && !cpu.X86.HasAVXVNNI
	for i, c := range qdqCases(t) {
		q := quantizeCase(t, c)
		for _, level := range []string{"disabled", "all", "all-x64quantprecision"} {
			name := c.name + "/" + level
			if level == "all" && saturates {
				checks = append(checks, check{name: name, skip: "ONNX Runtime's fused u8×s8 kernels on a CPU without VNNI add products pairwise into int16 with saturation (VPMADDUBSW), " +
					"so int8 weights outside [-64, 63] give wrong sums there; the all-x64quantprecision case (its session option that avoids it) checks the fused kernels on this CPU"})
				continue
			}
			path, fetch, names := writeQDQForORT(t, dir, fmt.Sprintf("%d-%d", i, len(checks)), q)
			shape := append([]int{3}, c.input[1:]...)
			x := tensor.New(shape...)
			for j, h := range fixture.Hashed("onnx.qdq.input."+c.name, x.Len()) {
				x.Data[j] = float32(1.2 * h) // a little beyond the calibrated range: saturation is exercised
			}
			xo := toONNX(x)
			in := path + ".in"
			if err := os.WriteFile(in, floatBytes(xo.Data), 0o644); err != nil {
				t.Fatal(err)
			}
			out := path + ".out"
			j := job{Model: path, Input: in, Dims: xo.Shape, Output: out, Optimization: level, Fetch: fetch}
			if level == "all-x64quantprecision" {
				j.Optimization, j.Extra = "all", map[string]any{"session": map[string]string{"x64quantprecision": "1"}}
			}
			if j.Optimization == "all" {
				j.Optimized = out + ".onnx"
			}
			jobs = append(jobs, j)
			checks = append(checks, check{name: name, q: q, x: x, out: out, fused: j.Optimized, names: names})
		}
	}
	spec, _ := json.Marshal(jobs)
	specPath := filepath.Join(dir, "jobs.json")
	if err := os.WriteFile(specPath, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	runORT(t, specPath)
	for _, ck := range checks {
		t.Run(ck.name, func(t *testing.T) { checkQDQRun(t, ck.skip, ck.q, ck.x, ck.out, ck.fused, ck.names) })
	}
}

// checkQDQRun compares what ort_run.js wrote for a QDQ export (out, its
// u8 values under names, the optimized model fused) with residual's int8
// network on x, as TestQDQExportONNXRuntime explains.
func checkQDQRun(t *testing.T, skip string, q *quant.Model, x *tensor.Tensor, out, fused string, names []string) {
	if skip != "" {
		t.Skip(skip)
	}
	want, vals, err := q.Values(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int][]uint8{} // ONNX Runtime's u8 values in residual's layout
	differ, total := 0, 0
	// The one-step bound is per layer: it holds for a value whose inputs
	// agreed exactly. Downstream of a difference, a layer's gain (Σ|w| of
	// a convolution, |a| of an affine map, in steps of its input over
	// steps of its output) can widen it, so such values are counted, not
	// bounded.
	inputs := map[int][]int{}
	for _, op := range q.Graph().Ops {
		inputs[op.Out] = append(append([]int(nil), op.In...), op.Res)
	}
	diverged := map[int]bool{}
	propagated := 0
	for v, n := range names {
		if n == "" {
			continue
		}
		raw, dims, typ := ortOutput(t, out+"."+n)
		if typ != "uint8" || len(raw) != len(vals[v]) {
			t.Fatalf("value %d: ONNX Runtime gave %s %v, residual %d values", v, typ, dims, len(vals[v]))
		}
		u := raw
		if len(dims) == 4 { // NCHW → NHWC
			u = make([]uint8, len(raw))
			c, h, w := dims[1], dims[2], dims[3]
			for i := range raw {
				b, ch, y, xx := i/(c*h*w), i/(h*w)%c, i/w%h, i%w
				u[((b*h+y)*w+xx)*c+ch] = raw[i]
			}
		}
		got[v] = u
		upstream := false
		for _, in := range inputs[v] {
			upstream = upstream || diverged[in]
		}
		for i := range u {
			total++
			if d := int(u[i]) - int(vals[v][i]); d != 0 {
				diverged[v] = true
				switch {
				case upstream:
					propagated++
				case d < -1 || d > 1:
					t.Errorf("value %d element %d: ONNX Runtime %d, residual %d (more than one step, from equal inputs)", v, i, u[i], vals[v][i])
				default:
					differ++
				}
			}
		}
	}
	t.Logf("%d of %d u8 activations differ by one step from equal inputs; %d more differ downstream of a difference", differ, total, propagated)
	raw, dims, _ := ortOutput(t, out)
	if len(raw) != 4*want.Len() {
		t.Fatalf("output %v, want %v", dims, want.Shape)
	}
	g := q.Graph()
	last := g.Ops[len(g.Ops)-1]
	if last.Kind != quant.OpLinear || last.Res >= 0 {
		t.Fatalf("the test's bound is for a network ending in a linear layer")
	}
	l := q.Layers()[last.Layer]
	px := q.ValueParams(last.In[0])
	xr, xo := vals[last.In[0]], got[last.In[0]]
	k := l.IC
	for i := range want.Data {
		b, o := i/l.OC, i%l.OC
		var steps, mag float64
		for j := range k {
			w := math.Abs(float64(l.W[j*l.OC+o]))
			steps += w * math.Abs(float64(int(xo[b*k+j])-int(xr[b*k+j])))
			mag += w * math.Abs(float64(int(xr[b*k+j])-px.Zero))
		}
		if l.Bias != nil {
			mag += math.Abs(float64(l.Bias[o]))
		}
		bound := px.Scale * float64(l.Scale[o]) * (steps + mag*float64(k+1)*0x1p-23)
		g := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		if d := math.Abs(float64(g - want.Data[i])); d > bound {
			t.Errorf("logit %d: ONNX Runtime %v, residual %v: |Δ| %.3g > bound %.3g", i, g, want.Data[i], d, bound)
		}
	}
	if fused == "" {
		return
	}
	b, err := os.ReadFile(fused)
	if err != nil {
		t.Fatal(err)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, n := range mp.Graph.Node {
		ops[n.GetOpType()]++
	}
	t.Logf("ONNX Runtime's optimized graph: %v", ops)
	if ops["QLinearConv"] == 0 || ops["QGemm"] == 0 {
		t.Errorf("ONNX Runtime fused no convolution into QLinearConv or no linear layer into QGemm: %v", ops)
	}
}

// writeQDQForORT exports q with every u8 value also a graph output (so
// ONNX Runtime returns them) to dir/name.onnx; it returns the path, the
// extra outputs' names and each value's name (u8Names).
func writeQDQForORT(t *testing.T, dir, name string, q *quant.Model) (path string, fetch, names []string) {
	t.Helper()
	b, err := ExportInt8(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	names = u8Names(q.Graph())
	for _, n := range names {
		if n == "" {
			continue
		}
		fetch = append(fetch, n)
		mp.Graph.Output = append(mp.Graph.Output, &onnxpb.ValueInfoProto{Name: proto.String(n), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_UINT8))}}}})
	}
	path = filepath.Join(dir, name+".onnx")
	if err := os.WriteFile(path, mustMarshalModel(t, &mp), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, fetch, names
}

func mustMarshalModel(t *testing.T, mp *onnxpb.ModelProto) []byte {
	t.Helper()
	b, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQDQImportRoundTrip exports each case and imports the export into a
// freshly built network of the same architecture: the int8 weights, weight
// scales, biases, activation scales and zero points and unfolded batch
// norms must come back identical (all but the logits' scale, which the
// float output does not use and the graph does not hold), and so must the
// outputs, bit for bit.
func TestQDQImportRoundTrip(t *testing.T) {
	for _, c := range qdqCases(t) {
		t.Run(c.name, func(t *testing.T) {
			q := quantizeCase(t, c)
			b, err := ExportInt8(q, nil)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := models.Build(c.cfg, tensor.NewRNG(9))
			if err != nil {
				t.Fatal(err)
			}
			q2, err := ImportInt8(b, fresh, c.input)
			if err != nil {
				t.Fatal(err)
			}
			if len(q2.Layers()) != len(q.Layers()) {
				t.Fatalf("%d layers back, %d exported", len(q2.Layers()), len(q.Layers()))
			}
			for name, l := range q.Layers() {
				l2 := q2.Layers()[name]
				if l2 == nil || !slices.Equal(l.W, l2.W) || !slices.Equal(l.Scale, l2.Scale) || !slices.Equal(l.Bias, l2.Bias) ||
					l.KH != l2.KH || l.KW != l2.KW || l.IC != l2.IC || l.OC != l2.OC {
					t.Errorf("layer %s differs after the round trip", name)
				}
			}
			p, p2 := q.Params(), q2.Params()
			out := q.Graph().Ops[len(q.Graph().Ops)-1].Trace
			if p.Input != p2.Input || len(p.Acts) != len(p2.Acts) {
				t.Errorf("input %+v, %d activations; back %+v, %d", p.Input, len(p.Acts), p2.Input, len(p2.Acts))
			}
			for k, v := range p.Acts {
				if k != out && p2.Acts[k] != v {
					t.Errorf("activation %d: %+v, back %+v", k, v, p2.Acts[k])
				}
			}
			for k, v := range p.Affine {
				if !slices.Equal(v.A, p2.Affine[k].A) || !slices.Equal(v.B, p2.Affine[k].B) {
					t.Errorf("affine %d differs", k)
				}
			}
			x := input(append([]int{2}, c.input[1:]...))
			want, _ := q.Forward(context.Background(), x)
			got, err := q2.Forward(context.Background(), x)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(want.Data, got.Data) {
				t.Errorf("outputs differ after the round trip")
			}
		})
	}
}

// TestQDQImportMalformed feeds ImportInt8 broken variants of a valid
// export: each must fail with an error naming the problem (never a panic,
// which ImportInt8 would report as "malformed model"), and random byte
// corruptions of the file must fail or import without panicking.
func TestQDQImportMalformed(t *testing.T) {
	c := qdqCases(t)[0]
	q := quantizeCase(t, c)
	good, err := ExportInt8(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	load := func() *onnxpb.ModelProto {
		var mp onnxpb.ModelProto
		if err := proto.Unmarshal(good, &mp); err != nil {
			t.Fatal(err)
		}
		return &mp
	}
	// find returns the first node of the type, and an initializer by name.
	node := func(mp *onnxpb.ModelProto, op string, nth int) *onnxpb.NodeProto {
		for _, n := range mp.Graph.Node {
			if n.GetOpType() == op {
				if nth == 0 {
					return n
				}
				nth--
			}
		}
		t.Fatalf("no %s", op)
		return nil
	}
	init := func(mp *onnxpb.ModelProto, name string) *onnxpb.TensorProto {
		for _, i := range mp.Graph.Initializer {
			if i.GetName() == name {
				return i
			}
		}
		t.Fatalf("no initializer %s", name)
		return nil
	}
	producer := func(mp *onnxpb.ModelProto, name string) *onnxpb.NodeProto {
		for _, n := range mp.Graph.Node {
			if slices.Contains(n.Output, name) {
				return n
			}
		}
		t.Fatalf("nothing produces %s", name)
		return nil
	}
	wdq := func(mp *onnxpb.ModelProto) *onnxpb.NodeProto { return producer(mp, node(mp, "Conv", 0).Input[1]) }
	cases := []struct {
		name, want string
		mutate     func(mp *onnxpb.ModelProto)
	}{
		{"weight scale missing", "has no scale", func(mp *onnxpb.ModelProto) { wdq(mp).Input = wdq(mp).Input[:1] }},
		{"weight axis 1", "axis 1", func(mp *onnxpb.ModelProto) { wdq(mp).Attribute = []*onnxpb.AttributeProto{intAttr("axis", 1)} }},
		{"uint8 weights", "int8 weights are INT8", func(mp *onnxpb.ModelProto) {
			init(mp, wdq(mp).Input[0]).DataType = proto.Int32(int32(onnxpb.TensorProto_UINT8))
		}},
		{"float weights", "not the output of a DequantizeLinear", func(mp *onnxpb.ModelProto) {
			conv := node(mp, "Conv", 0)
			conv.Input[1] = wdq(mp).Input[1] // the scale tensor, a float initializer
		}},
		{"weight zero point 3", "zero point 3", func(mp *onnxpb.ModelProto) { init(mp, wdq(mp).Input[2]).RawData[0] = 3 }},
		{"weight zero point uint8", "zero point of type UINT8", func(mp *onnxpb.ModelProto) {
			init(mp, wdq(mp).Input[2]).DataType = proto.Int32(int32(onnxpb.TensorProto_UINT8))
		}},
		{"weight shape", "has shape", func(mp *onnxpb.ModelProto) { init(mp, wdq(mp).Input[0]).Dims[2] = 5 }},
		{"huge weight shape", "has shape", func(mp *onnxpb.ModelProto) { init(mp, wdq(mp).Input[0]).Dims = []int64{1 << 40, 1 << 40, 3, 3} }},
		{"weight data short", "needs 432 values", func(mp *onnxpb.ModelProto) {
			w := init(mp, wdq(mp).Input[0])
			w.RawData = w.RawData[:len(w.RawData)-1]
		}},
		{"scales count", "scales for", func(mp *onnxpb.ModelProto) {
			s := init(mp, wdq(mp).Input[1])
			s.Dims, s.RawData = []int64{2}, s.RawData[:8]
		}},
		{"negative weight scale", "finite and positive", func(mp *onnxpb.ModelProto) {
			copy(init(mp, wdq(mp).Input[1]).RawData, floatBytes([]float32{-1}))
		}},
		{"NaN activation scale", "finite and positive", func(mp *onnxpb.ModelProto) {
			copy(init(mp, "v0_scale").RawData, floatBytes([]float32{float32(math.NaN())}))
		}},
		{"int8 activations", "UINT8", func(mp *onnxpb.ModelProto) {
			init(mp, "v0_zero_point").DataType = proto.Int32(int32(onnxpb.TensorProto_INT8))
		}},
		{"scale not an initializer", "not an initializer", func(mp *onnxpb.ModelProto) { wdq(mp).Input[1] = "v0" }},
		{"bias scale", "bias scale", func(mp *onnxpb.ModelProto) {
			bdq := producer(mp, node(mp, "Conv", 0).Input[2])
			copy(init(mp, bdq.Input[1]).RawData, floatBytes([]float32{1}))
		}},
		{"int8 bias", "quantized biases are INT32", func(mp *onnxpb.ModelProto) {
			bdq := producer(mp, node(mp, "Conv", 0).Input[2])
			b := init(mp, bdq.Input[0])
			b.DataType, b.RawData = proto.Int32(int32(onnxpb.TensorProto_INT8)), b.RawData[:len(b.RawData)/4]
		}},
		{"strides", "strides", func(mp *onnxpb.ModelProto) {
			node(mp, "Conv", 0).Attribute = append(node(mp, "Conv", 0).Attribute, intsAttr("strides", 2, 2))
			a := node(mp, "Conv", 0).Attribute
			for i := range a[:len(a)-1] {
				if a[i].GetName() == "strides" {
					a[i] = a[len(a)-1]
				}
			}
			node(mp, "Conv", 0).Attribute = a[:len(a)-1]
		}},
		{"requantized elsewhere", "dequantizes value", func(mp *onnxpb.ModelProto) {
			// A residual read with another scale than its own.
			dq := producer(mp, node(mp, "Add", 0).Input[1])
			mp.Graph.Initializer = append(mp.Graph.Initializer, float32Init("other_scale", nil, []float32{0.5}))
			dq.Input[1] = "other_scale"
		}},
		{"input not quantized", "QuantizeLinear", func(mp *onnxpb.ModelProto) {
			q := node(mp, "QuantizeLinear", 0)
			q.OpType = proto.String("Identity")
		}},
		{"layer missing", "Conv and Gemm nodes", func(mp *onnxpb.ModelProto) { node(mp, "Gemm", 0).OpType = proto.String("MatMul") }},
		{"extra Relu", "Relu nodes", func(mp *onnxpb.ModelProto) {
			// A Relu before the pooling, which the int8 graph does not have.
			gap := node(mp, "GlobalAveragePool", 0)
			mp.Graph.Node = append(mp.Graph.Node, &onnxpb.NodeProto{OpType: proto.String("Relu"), Name: proto.String("extra"), Input: []string{gap.Input[0]}, Output: []string{"extra_relu"}})
			gap.Input[0] = "extra_relu"
		}},
		{"unknown operator", "no counterpart", func(mp *onnxpb.ModelProto) { node(mp, "Flatten", 0).OpType = proto.String("Softmax") }},
		{"DequantizeLinear without inputs", "has no scale", func(mp *onnxpb.ModelProto) { wdq(mp).Input = nil }},
		{"Add without outputs", "has no output", func(mp *onnxpb.ModelProto) { node(mp, "Add", 0).Output = nil }},
		{"Add of one input", "has 1 inputs", func(mp *onnxpb.ModelProto) { node(mp, "Add", 0).Input = node(mp, "Add", 0).Input[:1] }},
		{"old opset", "opset", func(mp *onnxpb.ModelProto) { mp.OpsetImport[0].Version = proto.Int64(10) }},
		{"no graph", "no graph", func(mp *onnxpb.ModelProto) { mp.Graph = nil }},
	}
	for _, tc := range cases {
		mp := load()
		tc.mutate(mp)
		b, err := proto.Marshal(mp)
		if err != nil {
			t.Fatal(err)
		}
		fresh, _ := models.Build(c.cfg, tensor.NewRNG(9))
		_, err = ImportInt8(b, fresh, c.input)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "malformed model") {
			t.Errorf("%s: %v (want an error containing %q)", tc.name, err, tc.want)
		}
	}
	fresh, _ := models.Build(c.cfg, tensor.NewRNG(9))
	if _, err := ImportInt8(good[:len(good)/2], fresh, c.input); err == nil {
		t.Error("a truncated file imported")
	}
	// A different architecture: the layers do not match.
	other, _ := models.Build(qdqCases(t)[2].cfg, tensor.NewRNG(9))
	if _, err := ImportInt8(good, other, qdqCases(t)[2].input); err == nil {
		t.Error("resnet20's export imported into a resnet18")
	}
	rng := tensor.NewRNG(11)
	for i := range 200 {
		b := slices.Clone(good)
		for range 1 + i%4 {
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		fresh, _ := models.Build(c.cfg, tensor.NewRNG(9))
		if _, err := ImportInt8(b, fresh, c.input); err != nil && strings.Contains(err.Error(), "malformed model") {
			t.Errorf("corruption %d: %v", i, err)
		}
	}
}

// padNet is a network whose int8 graph pads, max-pools with a stride and
// flattens an image (OpPad, OpReshape: Transpose, Reshape in the QDQ
// graph), which no zoo model does.
type padNet struct {
	C  *nn.Conv2d
	FC *nn.Linear
}

func newPadNet() *padNet {
	rng := tensor.NewRNG(5)
	n := &padNet{C: nn.NewConv2d(rng, 3, 4, 3, nn.ConvOptions{}), FC: nn.NewLinear(rng, 48, 5, true)}
	nn.Name(n)
	return n
}

func (p *padNet) Forward(x *ag.Value) *ag.Value {
	y := ag.ReLU(p.C.Forward(x)) // [N,6,6,4]
	y = ag.Pad(y, [][2]int{{0, 0}, {1, 2}, {0, 1}, {0, 0}}, ag.PadConstant, 0)
	y = ag.MaxPool2d(y, ag.PoolParams{Kernel: [2]int{2, 2}, Stride: [2]int{2, 2}}) // [N,4,3,4]
	return p.FC.Forward(ag.Flatten(y, 1))
}

// TestQDQImportRefusesOtherComputations changes what the operations that
// keep their input's scale compute (pooling, option-A shortcuts, padding,
// reshapes), inserts nodes the int8 graph does not have, or makes a layer
// read another value of the same scale: each graph is refused with an
// error naming the node, where the import used to read the model's own
// operation in its place. Equivalent forms (a Slice per axis, a Reshape
// for the Flatten) import, with the same outputs.
func TestQDQImportRefusesOtherComputations(t *testing.T) {
	cases := qdqCases(t)
	type variant struct {
		name   string
		mutate func(g *onnxpb.GraphProto) []string // the substrings the error must hold; nil: it imports
	}
	r20 := []variant{
		{"Slice from the second pixel", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "Slice", 0)
			n.Input[1] = addInt64s(g, "starts1", 1, 1)
			return []string{fmt.Sprintf("the Slice nodes up to Slice %q take 8 entries of axis 2 from 1 every 2", n.GetName())}
		}},
		{"Slice of every pixel", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "Slice", 0)
			n.Input[4] = addInt64s(g, "steps1", 1, 1)
			return []string{fmt.Sprintf("Slice %q take 16 entries of axis 2 from 0 every 1", n.GetName())}
		}},
		{"Pad channels before", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "Pad", 0)
			n.Input[1] = addInt64s(g, "pads1", 0, 16, 0, 0, 0, 0, 0, 0)
			return []string{fmt.Sprintf("Pad %q: pads [0 16 0 0 0 0 0 0]; the model's int8 graph pads [0 8 0 0 0 8 0 0]", n.GetName())}
		}},
		{"Pad by another value", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "Pad", 0)
			g.Initializer = append(g.Initializer, rawInit("seven", onnxpb.TensorProto_UINT8, nil, []byte{7}))
			n.Input[2] = "seven"
			return []string{fmt.Sprintf("Pad %q: pads with 7", n.GetName())}
		}},
		{"Reshape before the classifier", func(g *onnxpb.GraphProto) []string {
			gemm := nodeOf(t, g, "Gemm", 0)
			dq := producerOf(t, g, gemm.Input[0])
			g.Node = append(g.Node, &onnxpb.NodeProto{OpType: proto.String("Reshape"), Name: proto.String("extra"),
				Input: []string{dq.Input[0], addInt64s(g, "flat", 0, -1)}, Output: []string{"reshaped"}})
			dq.Input[0] = "reshaped"
			return []string{`Reshape "extra"`, "is not part of residual's int8 graph"}
		}},
		{"Flatten on axis 2", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "Flatten", 0)
			n.Attribute = []*onnxpb.AttributeProto{intAttr("axis", 2)}
			return []string{fmt.Sprintf("Flatten %q: axis 2", n.GetName())}
		}},
		{"a Slice per axis", func(g *onnxpb.GraphProto) []string {
			for i, n := range g.Node {
				if n.GetOpType() != "Slice" {
					continue
				}
				h := &onnxpb.NodeProto{OpType: proto.String("Slice"), Name: proto.String(n.GetName() + "_h"), Output: []string{n.Output[0] + "_h"},
					Input: []string{n.Input[0], addInt64s(g, n.GetName()+"s", 0), addInt64s(g, n.GetName()+"e", math.MaxInt64), addInt64s(g, n.GetName()+"a", 2),
						addInt64s(g, n.GetName()+"st", 2)}}
				n.Input = []string{h.Output[0], addInt64s(g, n.GetName()+"s3", 0), addInt64s(g, n.GetName()+"e3", 1<<62), addInt64s(g, n.GetName()+"a3", -1),
					addInt64s(g, n.GetName()+"st3", 2)}
				g.Node = slices.Insert(g.Node, i, h)
				break
			}
			return nil
		}},
		{"Reshape for the Flatten", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "Flatten", 0)
			n.OpType, n.Attribute = proto.String("Reshape"), nil
			n.Input = append(n.Input, addInt64s(g, "flat", -1, 64))
			return nil
		}},
	}
	r18 := []variant{
		{"MaxPool k2 s2 p0", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "MaxPool", 0)
			n.Attribute = []*onnxpb.AttributeProto{intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2), intsAttr("pads", 0, 0, 0, 0)}
			return []string{fmt.Sprintf("MaxPool %q: kernel_shape [2 2], the model's max pooling has [3 3]", n.GetName())}
		}},
		{"MaxPool ceil_mode", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "MaxPool", 0)
			for _, a := range n.Attribute {
				if a.GetName() == "ceil_mode" {
					a.I = proto.Int64(1)
				}
			}
			return []string{fmt.Sprintf("MaxPool %q: ceil_mode 1, the model's max pooling has 0", n.GetName())}
		}},
		{"MaxPool ceil_mode of type FLOAT", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "MaxPool", 0)
			for _, a := range n.Attribute {
				if a.GetName() == "ceil_mode" {
					a.Type, a.I, a.F = onnxpb.AttributeProto_FLOAT.Enum(), nil, proto.Float32(1)
				}
			}
			return []string{fmt.Sprintf("MaxPool %q: attribute ceil_mode is a FLOAT; the operator reads an INT", n.GetName())}
		}},
		{"MaxPool storage_order", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "MaxPool", 0)
			n.Attribute = append(n.Attribute, intAttr("storage_order", 1))
			return []string{fmt.Sprintf("MaxPool %q: storage_order 1", n.GetName())}
		}},
		{"Transpose after the input", func(g *onnxpb.GraphProto) []string {
			q := nodeOf(t, g, "QuantizeLinear", 0)
			tr := &onnxpb.NodeProto{OpType: proto.String("Transpose"), Input: []string{"v0_pre"}, Output: []string{q.Output[0]},
				Attribute: []*onnxpb.AttributeProto{intsAttr("perm", 0, 1, 3, 2)}}
			q.Output[0] = "v0_pre"
			g.Node = slices.Insert(g.Node, 1, tr)
			return []string{`Transpose (output "v0") (reading ["v0_pre"]) is not part of residual's int8 graph`}
		}},
		{"Identity after the pooling", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "MaxPool", 0)
			y := n.Output[0]
			n.Output[0] = y + "_pre"
			g.Node = append(g.Node, &onnxpb.NodeProto{OpType: proto.String("Identity"), Name: proto.String("id"), Input: []string{y + "_pre"}, Output: []string{y}})
			return []string{`Identity "id"`, "is not part of residual's int8 graph"}
		}},
		{"a layer reads the pooling's input", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "MaxPool", 0)
			for _, d := range g.Node {
				if d.GetOpType() == "DequantizeLinear" && d.Input[0] == n.Output[0] {
					d.Input[0] = n.Input[0] // the same scale and zero point
					break
				}
			}
			return []string{fmt.Sprintf("reads %q, the output of QuantizeLinear", n.Input[0]), fmt.Sprintf("reads value 2 (%q) there", n.Output[0])}
		}},
	}
	// toBN writes the first unfolded batch norm (Mul, Add) as the
	// BatchNormalization of the same map (mean 0, variance 1, epsilon 0)
	// with the given attributes and outputs after its first.
	toBN := func(g *onnxpb.GraphProto, extra []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
		mul := nodeOf(t, g, "Mul", 0)
		var add *onnxpb.NodeProto
		for _, n := range g.Node {
			if n.GetOpType() == "Add" && n.Input[0] == mul.Output[0] {
				add = n
			}
		}
		if add == nil {
			t.Fatal("test premise: the Mul is not followed by an Add")
		}
		c := 0
		for _, in := range g.Initializer { // BatchNormalization's are 1-D, [C]
			if name := in.GetName(); name == mul.Input[1] || name == add.Input[1] {
				v := proto.Clone(in).(*onnxpb.TensorProto)
				c = len(v.RawData) / 4
				v.Name, v.Dims = proto.String("bn_"+name), []int64{int64(c)}
				g.Initializer = append(g.Initializer, v)
			}
		}
		dims := []int64{int64(c)}
		g.Initializer = append(g.Initializer, float32Init("bn_mean", dims, make([]float32, c)), float32Init("bn_var", dims, slices.Repeat([]float32{1}, c)))
		bn := &onnxpb.NodeProto{OpType: proto.String("BatchNormalization"), Name: proto.String("bn"), Input: []string{mul.Input[0], "bn_" + mul.Input[1], "bn_" + add.Input[1], "bn_mean", "bn_var"},
			Output: append([]string{add.Output[0]}, extra...), Attribute: append([]*onnxpb.AttributeProto{floatAttr("epsilon", 0)}, attrs...)}
		var out []*onnxpb.NodeProto
		for _, n := range g.Node {
			switch n {
			case mul:
				out = append(out, bn)
			case add:
			default:
				out = append(out, n)
			}
		}
		g.Node = out
		return bn
	}
	pre := []variant{
		{"BatchNormalization for the Mul and Add", func(g *onnxpb.GraphProto) []string {
			toBN(g, nil, intAttr("training_mode", 0))
			return nil
		}},
		{"BatchNormalization in training mode", func(g *onnxpb.GraphProto) []string {
			toBN(g, nil, intAttr("training_mode", 1))
			return []string{`BatchNormalization "bn": training_mode 1: it normalises by each batch's statistics`}
		}},
		{"BatchNormalization with running statistics", func(g *onnxpb.GraphProto) []string {
			toBN(g, []string{"running_mean", "running_var"})
			return []string{`BatchNormalization "bn": outputs ["running_mean" "running_var"]: a batch norm's statistics are outputs only in training mode`}
		}},
		{"QuantizeLinear to UINT8 by output_dtype", func(g *onnxpb.GraphProto) []string {
			q := nodeOf(t, g, "QuantizeLinear", 0)
			q.Attribute = append(q.Attribute, intAttr("output_dtype", int64(onnxpb.TensorProto_UINT8)))
			return nil
		}},
		{"QuantizeLinear to INT8 by output_dtype", func(g *onnxpb.GraphProto) []string {
			q := nodeOf(t, g, "QuantizeLinear", 1)
			q.Attribute = append(q.Attribute, intAttr("output_dtype", int64(onnxpb.TensorProto_INT8)))
			return []string{fmt.Sprintf("QuantizeLinear %q: output_dtype INT8; residual's activations are UINT8", q.GetName())}
		}},
		{"QuantizeLinear output_dtype of type FLOAT", func(g *onnxpb.GraphProto) []string {
			q := nodeOf(t, g, "QuantizeLinear", 0)
			q.Attribute = append(q.Attribute, floatAttr("output_dtype", 2))
			return []string{fmt.Sprintf("QuantizeLinear %q: attribute output_dtype is a FLOAT; the operator reads an INT", q.GetName())}
		}},
	}
	pn := []variant{
		{"as exported", func(*onnxpb.GraphProto) []string { return nil }},
		{"Pad by other pads", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "Pad", 0)
			n.Input[1] = addInt64s(g, "pads1", 0, 0, 2, 0, 0, 0, 1, 1)
			return []string{fmt.Sprintf("Pad %q: pads [0 0 2 0 0 0 1 1]; the model's int8 graph pads [0 0 1 0 0 0 2 1]", n.GetName())}
		}},
		{"Reshape in NCHW order", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "Transpose", 0)
			n.Attribute = []*onnxpb.AttributeProto{intsAttr("perm", 0, 1, 2, 3)}
			return []string{fmt.Sprintf("Transpose %q: perm [0 1 2 3]; the model's int8 graph reorders [0 2 3 1] here", n.GetName())}
		}},
		{"Reshape to other dimensions", func(g *onnxpb.GraphProto) []string {
			n := nodeOf(t, g, "Reshape", 0)
			n.Input[1] = addInt64s(g, "shape1", 0, 12, 4)
			return []string{fmt.Sprintf("Reshape %q: shape [0 12 4]; the model's int8 graph has shape [1 48] here", n.GetName())}
		}},
	}
	run := func(t *testing.T, q *quant.Model, build func() nn.Layer, in []int, vs []variant) {
		good, err := ExportInt8(q, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			var mp onnxpb.ModelProto
			if err := proto.Unmarshal(good, &mp); err != nil {
				t.Fatal(err)
			}
			want := v.mutate(mp.Graph)
			q2, err := ImportInt8(mustMarshalModel(t, &mp), build(), in)
			if want == nil {
				if err != nil {
					t.Errorf("%s: %v", v.name, err)
					continue
				}
				x := input(append([]int{2}, in[1:]...))
				y, _ := q.Forward(context.Background(), x)
				y2, err := q2.Forward(context.Background(), x)
				if err != nil || !slices.Equal(y.Data, y2.Data) {
					t.Errorf("%s: the outputs differ (%v)", v.name, err)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s: imported", v.name)
				continue
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: %v\nwant an error containing %s", v.name, err, w)
				}
			}
		}
	}
	for _, c := range []struct {
		c  exportCase
		vs []variant
	}{{cases[0], r20}, {cases[1], pre}, {cases[2], r18}} {
		t.Run(c.c.name, func(t *testing.T) {
			run(t, quantizeCase(t, c.c), func() nn.Layer {
				net, err := models.Build(c.c.cfg, tensor.NewRNG(9))
				if err != nil {
					t.Fatal(err)
				}
				return net
			}, c.c.input, c.vs)
		})
	}
	t.Run("pad-reshape", func(t *testing.T) {
		in := []int{1, 8, 8, 3}
		calls := 0
		q, err := quant.Quantize(context.Background(), newPadNet(), in, func() (*tensor.Tensor, error) {
			if calls++; calls > 2 {
				return nil, nil
			}
			return input([]int{2, 8, 8, 3}), nil
		}, quant.Options{Method: quant.MinMax})
		if err != nil {
			t.Fatal(err)
		}
		run(t, q, func() nn.Layer { return newPadNet() }, in, pn)
	})
}

// nodeOf returns the graph's nth node of type op.
func nodeOf(t *testing.T, g *onnxpb.GraphProto, op string, nth int) *onnxpb.NodeProto {
	t.Helper()
	for _, n := range g.Node {
		if n.GetOpType() == op {
			if nth == 0 {
				return n
			}
			nth--
		}
	}
	t.Fatalf("no %s", op)
	return nil
}

// producerOf returns the node that produces name.
func producerOf(t *testing.T, g *onnxpb.GraphProto, name string) *onnxpb.NodeProto {
	t.Helper()
	for _, n := range g.Node {
		if slices.Contains(n.Output, name) {
			return n
		}
	}
	t.Fatalf("nothing produces %s", name)
	return nil
}

// addInt64s adds an INT64 initializer and returns its name.
func addInt64s(g *onnxpb.GraphProto, name string, v ...int64) string {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	g.Initializer = append(g.Initializer, rawInit(name, onnxpb.TensorProto_INT64, []int64{int64(len(v))}, raw))
	return name
}

// ortStyle rewrites an ExportInt8 graph into the forms ONNX Runtime's
// quantize_static writes: a QuantizeLinear–DequantizeLinear pair between
// each Conv and the residual Add it feeds, the Relus before a
// QuantizeLinear of zero point 0 removed, MaxPool between a
// DequantizeLinear and a QuantizeLinear of its input's parameters, the
// logits quantized and dequantized, and the first layer's bias a float
// initializer.
func ortStyle(t *testing.T, mp *onnxpb.ModelProto) {
	g := mp.Graph
	inits := map[string]*onnxpb.TensorProto{}
	for _, i := range g.Initializer {
		inits[i.GetName()] = i
	}
	producer := map[string]*onnxpb.NodeProto{}
	consumers := map[string][]*onnxpb.NodeProto{}
	for _, n := range g.Node {
		for _, o := range n.Output {
			producer[o] = n
		}
		for _, i := range n.Input {
			consumers[i] = append(consumers[i], n)
		}
	}
	node := func(op, out string, in ...string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(out + "_" + op), Input: in, Output: []string{out}}
	}
	var out []*onnxpb.NodeProto
	floatBias := false
	for _, n := range g.Node {
		switch n.GetOpType() {
		case "Relu":
			c := consumers[n.Output[0]]
			if p := producer[n.Input[0]]; len(c) == 1 && c[0].GetOpType() == "QuantizeLinear" && inits[c[0].Input[2]].RawData[0] == 0 && p.GetOpType() != "DequantizeLinear" {
				c[0].Input[0] = n.Input[0]
				continue
			}
		case "Add":
			for k, in := range n.Input {
				if p := producer[in]; p != nil && p.GetOpType() == "Conv" {
					out = append(out, node("QuantizeLinear", in+"_q", in, "v0_scale", "v0_zero_point"),
						node("DequantizeLinear", in+"_dq", in+"_q", "v0_scale", "v0_zero_point"))
					n.Input[k] = in + "_dq"
				}
			}
		case "MaxPool":
			x := n.Input[0]
			s, z := x+"_scale", x+"_zero_point"
			out = append(out, node("DequantizeLinear", x+"_dqm", x, s, z))
			n.Input[0] = x + "_dqm"
			y := n.Output[0]
			n.Output[0] = y + "_f"
			out = append(out, n, node("QuantizeLinear", y, y+"_f", s, z))
			continue
		case "Gemm":
			if n.Output[0] == "output" {
				n.Output[0] = "logits"
				out = append(out, n, node("QuantizeLinear", "logits_q", "logits", "v0_scale", "v0_zero_point"),
					node("DequantizeLinear", "output", "logits_q", "v0_scale", "v0_zero_point"))
				continue
			}
		case "Conv":
			if !floatBias && len(n.Input) == 3 {
				floatBias = true
				bdq := producer[n.Input[2]]
				q, s := inits[bdq.Input[0]], inits[bdq.Input[1]]
				b := make([]float32, q.Dims[0])
				for o := range b {
					b[o] = float32(int32(binary.LittleEndian.Uint32(q.RawData[4*o:]))) * math.Float32frombits(binary.LittleEndian.Uint32(s.RawData[4*o:]))
				}
				g.Initializer = append(g.Initializer, float32Init("float_bias", q.Dims, b))
				n.Input[2] = "float_bias"
			}
		}
		out = append(out, n)
	}
	g.Node = out
	if !floatBias {
		t.Fatal("test premise: no convolution with a bias")
	}
}

// TestQDQImportORTStyle imports the forms ONNX Runtime's quantize_static
// writes (ortStyle) of the resnet18-narrow export: what residual's int8
// graph does not round is dropped, the rest must come back as exported —
// the same weights, biases (the float one quantized back exactly), scales
// and outputs. ONNX Runtime runs the rewritten graph too (when installed),
// so the rewrite is a valid model.
func TestQDQImportORTStyle(t *testing.T) {
	c := qdqCases(t)[2]
	q := quantizeCase(t, c)
	b, err := ExportInt8(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	relus := 0
	for _, n := range mp.Graph.Node {
		if n.GetOpType() == "Relu" {
			relus++
		}
	}
	ortStyle(t, &mp)
	for _, n := range mp.Graph.Node {
		if n.GetOpType() == "Relu" {
			relus--
		}
	}
	if relus == 0 {
		t.Fatal("test premise: no Relu removed")
	}
	b = mustMarshalModel(t, &mp)
	fresh, _ := models.Build(c.cfg, tensor.NewRNG(9))
	q2, err := ImportInt8(b, fresh, c.input)
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range q.Layers() {
		l2 := q2.Layers()[name]
		if l2 == nil || !slices.Equal(l.W, l2.W) || !slices.Equal(l.Scale, l2.Scale) || !slices.Equal(l.Bias, l2.Bias) {
			t.Errorf("layer %s differs", name)
		}
	}
	x := input(append([]int{2}, c.input[1:]...))
	want, _ := q.Forward(context.Background(), x)
	got, err := q2.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(want.Data, got.Data) {
		t.Errorf("outputs differ")
	}
	if _, err := exec.LookPath("node"); err != nil {
		return
	}
	modules, _ := filepath.Abs("../../testdata/external/ort/node_modules")
	if _, err := os.Stat(filepath.Join(modules, "onnxruntime-node")); err != nil {
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	xo := toONNX(x)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".in", floatBytes(xo.Data), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal([]map[string]any{{"model": path, "input": path + ".in", "dims": xo.Shape, "output": path + ".out"}})
	if err := os.WriteFile(filepath.Join(dir, "jobs.json"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	runORT(t, filepath.Join(dir, "jobs.json"))
	if raw, _, _ := ortOutput(t, path+".out"); len(raw) != 4*want.Len() {
		t.Errorf("ONNX Runtime gave %d bytes for %d logits", len(raw), want.Len())
	}
}
