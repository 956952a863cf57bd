package onnx

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// exportCase is a model of the zoo (or a variant) with an input shape.
type exportCase struct {
	name  string
	cfg   models.Config
	input []int
}

func exportCases(t *testing.T) []exportCase {
	preset := func(name string) models.Config {
		c, err := models.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	small := func(mod func(c *resnet.Config)) models.Config {
		c := preset("resnet20")
		r := c.Arch.(*models.ResNet)
		r.Layers = []int{1, 1, 1}
		mod(&r.Config)
		return c
	}
	var cs []exportCase
	add := func(name string, c models.Config, input ...int) { cs = append(cs, exportCase{name, c, input}) }
	add("resnet20", preset("resnet20"), 2, 32, 32, 3)
	add("plain20", preset("plain20"), 2, 32, 32, 3)
	add("resnet18", preset("resnet18"), 2, 64, 64, 3)
	add("resnet50", preset("resnet50"), 1, 64, 64, 3)
	for _, o := range []resnet.Ordering{resnet.BNAfterAdd, resnet.ReLUBeforeAdd, resnet.ReLUOnlyPreAct, resnet.PreActivation} {
		add("small-"+string(o), small(func(c *resnet.Config) { c.Ordering, c.Shortcut = o, resnet.ShortcutB }), 2, 16, 16, 3)
	}
	add("small-bottleneck-v1-scaled", small(func(c *resnet.Config) {
		c.Block, c.StrideOn1x1, c.BranchScale, c.Shortcut = "bottleneck", true, 0.5, resnet.ShortcutC
	}), 2, 16, 16, 3)
	add("small-preact-bottleneck", small(func(c *resnet.Config) {
		c.Block, c.Ordering, c.Shortcut = "bottleneck", resnet.PreActivation, resnet.ShortcutB
	}), 2, 16, 16, 3)
	add("unet", preset("unet"), 1, 188, 188, 1)
	add("unet-padded", preset("unet-padded"), 2, 32, 48, 1)
	add("resmlp", preset("resmlp"), 4, 1)
	return cs
}

// build makes the model with non-trivial batch-norm statistics and affine
// parameters, so an export that dropped or misplaced one would show.
func build(t *testing.T, c models.Config) nn.Layer {
	m, err := models.Build(c, tensor.NewRNG(3))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range nn.StateDict(m) {
		if e.Layout != "" || len(e.Tensor.Shape) != 1 {
			continue
		}
		v := fixture.Fill(e.Name, e.Tensor.Shape...)
		copy(e.Tensor.Data, v.Data)
	}
	nn.SetTraining(m, false)
	return m
}

func input(shape []int) *tensor.Tensor {
	x := tensor.New(shape...)
	for i, v := range fixture.Hashed("onnx.export.input", x.Len()) {
		x.Data[i] = float32(v)
	}
	return x
}

// toONNX returns a 4-D NHWC tensor in NCHW order (others unchanged).
func toONNX(t *tensor.Tensor) *tensor.Tensor {
	if t.Rank() == 4 {
		return tensor.NHWCToNCHW(t)
	}
	return t
}

// TestExportRoundTrip exports models of every family and block variant and
// runs the ONNX graph with residual's own ONNX evaluator: the outputs must
// match the model's at 1e-5 (relative to the output's scale; the two run
// the same kernels in the same order but the evaluator's layout
// conversions).
func TestExportRoundTrip(t *testing.T) {
	for _, c := range exportCases(t) {
		t.Run(c.name, func(t *testing.T) {
			m := build(t, c.cfg)
			b, err := Export(m, c.input)
			if err != nil {
				t.Fatal(err)
			}
			x := input(c.input)
			want := toONNX(m.Forward(ag.Constant(x)).Data)
			g, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if g.Opset() != ExportOpset || len(g.Inputs()) != 1 || g.Inputs()[0] != "input" {
				t.Fatalf("opset %d, inputs %v", g.Opset(), g.Inputs())
			}
			for _, n := range g.graph.Node {
				if n.GetOpType() == "Transpose" { // the zoo never needs residual's layout inside the graph
					t.Errorf("node %s is a Transpose", n.GetName())
				}
			}
			out, err := g.Run(map[string]*tensor.Tensor{"input": toONNX(x)})
			if err != nil {
				t.Fatal(err)
			}
			if err := fixture.Compare(out["output"], want, 1e-5); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestExportONNXRuntime runs the exported models in ONNX Runtime 1.30 (npm
// onnxruntime-node, which .ci/run installs into testdata/external/ort) and
// compares its outputs with residual's at 1e-4 relative to the output's
// scale — the bound for an independent implementation.
func TestExportONNXRuntime(t *testing.T) {
	ortAvailable(t)
	dir := t.TempDir()
	type job struct {
		Model  string `json:"model"`
		Input  string `json:"input"`
		Dims   []int  `json:"dims"`
		Output string `json:"output"`
	}
	var jobs []job
	wants := map[string]*tensor.Tensor{}
	for i, c := range exportCases(t) {
		m := build(t, c.cfg)
		path := filepath.Join(dir, fmt.Sprintf("%d.onnx", i))
		// With a checkpoint's metadata_props, as export onnx writes
		// them: ONNX Runtime must load such a file as it loads a bare one.
		if err := ExportFileWith(path, m, c.input, ExportOptions{Props: checkpointProps(t, c.cfg)}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		x := input(c.input)
		xo := toONNX(x)
		in := filepath.Join(dir, fmt.Sprintf("%d.in", i))
		if err := os.WriteFile(in, floatBytes(xo.Data), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, fmt.Sprintf("%d.out", i))
		jobs = append(jobs, job{path, in, xo.Shape, out})
		wants[c.name+"\x00"+out] = toONNX(m.Forward(ag.Constant(x)).Data)
	}
	spec, _ := json.Marshal(jobs)
	specPath := filepath.Join(dir, "jobs.json")
	if err := os.WriteFile(specPath, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	runORT(t, specPath)
	for key, want := range wants {
		name, out, _ := strings.Cut(key, "\x00")
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var shape []int
		if b, err := os.ReadFile(out + ".shape"); err != nil || json.Unmarshal(b, &shape) != nil {
			t.Fatalf("%s: no output shape: %v", name, err)
		}
		got := tensor.New(shape...)
		if len(raw) != 4*got.Len() {
			t.Fatalf("%s: %d bytes for shape %v", name, len(raw), shape)
		}
		for i := range got.Data {
			got.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		if err := fixture.Compare(got, want, 1e-4); err != nil {
			t.Errorf("%s: ONNX Runtime vs residual: %v", name, err)
		}
	}
}

// ortAvailable skips the test unless ONNX Runtime (npm onnxruntime-node,
// which .ci/run installs into testdata/external/ort) and node are here.
func ortAvailable(t *testing.T) {
	t.Helper()
	modules, _ := filepath.Abs("../../testdata/external/ort/node_modules")
	if _, err := os.Stat(filepath.Join(modules, "onnxruntime-node")); err != nil {
		t.Skipf("ONNX Runtime is not installed (%v): .ci/run installs npm onnxruntime-node into testdata/external/ort", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skipf("no node to run ONNX Runtime: %v", err)
	}
}

// runORT runs testdata/ort_run.js on a jobs file (ortAvailable first).
func runORT(t *testing.T, specPath string) {
	t.Helper()
	modules, _ := filepath.Abs("../../testdata/external/ort/node_modules")
	cmd := exec.Command("node", "testdata/ort_run.js", specPath)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ONNX Runtime: %v\n%s", err, b)
	}
}

func floatBytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// checkpointProps returns the metadata_props of a checkpoint of model c
// (checkpoint.Meta.Props) whose class names, preprocessing and
// normalisation are none of the defaults: "class-0"… names, a crop from
// a resize of the shorter side, a mean and std per channel, Caffe's
// [0, 255] scale and BGR order.
func checkpointProps(t *testing.T, c models.Config) map[string]string {
	t.Helper()
	meta := exportMeta(c)
	props, err := meta.Props()
	if err != nil {
		t.Fatal(err)
	}
	return props
}

// exportMeta is checkpointProps's metadata.
func exportMeta(c models.Config) checkpoint.Meta {
	classes := make([]string, c.Classes())
	for i := range classes {
		classes[i] = fmt.Sprintf("class-%d", i)
	}
	ch := c.InChannels()
	p := checkpoint.Preprocess{Height: 32, Width: 48, Channels: ch, ResizeShorter: 40,
		Normalisation: transform.Normalisation{Mean: make([]float64, ch), Std: make([]float64, ch), Scale255: true, BGR: ch == 3}}
	for i := range ch {
		p.Mean[i], p.Std[i] = 100+float64(i), 50+float64(i)
	}
	return checkpoint.Meta{Model: c, Classes: classes, Preprocess: p}
}

// TestExportWithMetadata: a float export given a checkpoint's metadata
// carries it in metadata_props, as ExportInt8's files do, and reads back
// (Describe, checkpoint.MetaFromProps) as the checkpoint's class names
// and preprocessing; the graph is Export's, bit for bit, and still runs.
// Export took no metadata, so a float file lost the labels and the
// normalisation its network needs.
func TestExportWithMetadata(t *testing.T) {
	c := exportCases(t)[0] // resnet20
	m := build(t, c.cfg)
	want := exportMeta(c.cfg)
	props, err := want.Props()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ExportWith(m, c.input, ExportOptions{Props: props})
	if err != nil {
		t.Fatal(err)
	}
	info, err := Describe(b)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := checkpoint.MetaFromProps(info.Props)
	if !ok || err != nil {
		t.Fatalf("metadata_props %v: residual metadata %v, %v", info.Props, ok, err)
	}
	if !reflect.DeepEqual(got.Classes, want.Classes) || !reflect.DeepEqual(got.Preprocess, want.Preprocess) || got.Model.Name != want.Model.Name {
		t.Errorf("read back %s, classes %q, preprocess %+v; want %s, %q, %+v", got.Model.Name, got.Classes, got.Preprocess, want.Model.Name, want.Classes, want.Preprocess)
	}
	// The keys in order (the same bytes every time), as ExportInt8's.
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range mp.MetadataProps {
		keys = append(keys, p.GetKey())
	}
	if !slices.IsSorted(keys) || len(keys) != len(props) {
		t.Errorf("metadata_props keys %q, want the %d of Props sorted", keys, len(props))
	}
	bare, err := Export(m, c.input)
	if err != nil {
		t.Fatal(err)
	}
	var bp onnxpb.ModelProto
	if err := proto.Unmarshal(bare, &bp); err != nil {
		t.Fatal(err)
	}
	if len(bp.MetadataProps) != 0 || !proto.Equal(bp.GetGraph(), mp.GetGraph()) {
		t.Errorf("Export wrote metadata %v, or a graph other than ExportWith's", bp.MetadataProps)
	}
	g, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	x := input(c.input)
	out, err := g.Run(map[string]*tensor.Tensor{"input": toONNX(x)})
	if err != nil {
		t.Fatal(err)
	}
	if err := fixture.Compare(out["output"], toONNX(m.Forward(ag.Constant(x)).Data), 1e-5); err != nil {
		t.Error(err)
	}
}

// TestExportErrors checks that what cannot be exported says so.
func TestExportErrors(t *testing.T) {
	m := build(t, exportCases(t)[0].cfg)
	if _, err := Export(m, []int{1, 32, 32, 5}); err == nil || !strings.Contains(err.Error(), "does not run on input") {
		t.Errorf("wrong channels: %v", err)
	}
	lossy := nn.Sequential{m, lossLayer{}}
	if _, err := Export(lossy, []int{1, 32, 32, 3}); err == nil || !strings.Contains(err.Error(), "cannot be exported") {
		t.Errorf("loss: %v", err)
	}
}

// lossLayer applies an operation the exporter does not know (a loss).
type lossLayer struct{}

func (lossLayer) Forward(x *ag.Value) *ag.Value {
	return ag.ReLU(ag.MSE(x, tensor.New(x.Shape()...)))
}

// sumLayer ends a network in autograd.Sum, which exports as ReduceSum.
type sumLayer struct{}

func (sumLayer) Forward(x *ag.Value) *ag.Value { return ag.Sum(x) }

// TestExportReduceSumRoundTrip exports a model ending in a sum and reads it
// back: residual's evaluator runs the ReduceSum it wrote (over every axis,
// keepdims 0) and refuses a sum over some axes by name.
func TestExportReduceSumRoundTrip(t *testing.T) {
	m := nn.Sequential{build(t, exportCases(t)[0].cfg), sumLayer{}}
	b, err := Export(m, []int{2, 32, 32, 3})
	if err != nil {
		t.Fatal(err)
	}
	x := input([]int{2, 32, 32, 3})
	want := m.Forward(ag.Constant(x)).Data
	g, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := g.Run(map[string]*tensor.Tensor{"input": toONNX(x)})
	if err != nil {
		t.Fatal(err)
	}
	if err := fixture.Compare(out["output"], want, 1e-5); err != nil {
		t.Error(err)
	}
	var last *onnxpb.NodeProto
	for _, n := range g.graph.Node {
		if n.GetOpType() == "ReduceSum" {
			last = n
		}
	}
	if last == nil {
		t.Fatal("no ReduceSum node in the export")
	}
	last.Attribute = append(last.Attribute, intAttr("axes", 1)) // an opset-11 style partial sum
	axes := last.Attribute[len(last.Attribute)-1]
	axes.Type, axes.I, axes.Ints = onnxpb.AttributeProto_INTS.Enum(), nil, []int64{1}
	g2, err := Parse(mustMarshal(t, g))
	if err == nil {
		_, err = g2.Run(map[string]*tensor.Tensor{"input": toONNX(x)})
	}
	if err == nil || !strings.Contains(err.Error(), "ReduceSum over axes [1]") {
		t.Errorf("partial ReduceSum: %v", err)
	}
}

// No model where one is wanted is an error naming it: ExportInt8 and Run
// panicked on nil, and Export reported the nil pointer dereference it had
// recovered from its trace.
func TestNilModels(t *testing.T) {
	var none *resnet.Net
	if _, err := Export(none, []int{1, 28, 28, 1}); err == nil || !strings.Contains(err.Error(), "no model (nil)") {
		t.Errorf("Export(nil): %v", err)
	}
	if _, err := ExportInt8(nil, nil); err == nil || !strings.Contains(err.Error(), "no quantized model (nil)") {
		t.Errorf("ExportInt8(nil): %v", err)
	}
	path := filepath.Join(t.TempDir(), "q.onnx")
	if err := ExportInt8File(path, nil, nil); err == nil {
		t.Error("ExportInt8File(nil): no error")
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("ExportInt8File(nil) wrote a file")
	}
	var m *Model
	if _, err := m.Run(nil); err == nil || !strings.Contains(err.Error(), "no model (nil)") {
		t.Errorf("(*Model)(nil).Run: %v", err)
	}
}

// TestRunDeclaredShape checks that Run holds its inputs to the shape the
// graph declares, as ONNX Runtime does: an NHWC image given to an NCHW
// graph is named as that (it failed inside the first Conv, in terms of
// the engine's NHWC input and HWIO weight), another rank or a fixed
// dimension that differs is refused naming both shapes, and the symbolic
// batch takes any size.
func TestRunDeclaredShape(t *testing.T) {
	c := exportCases(t)[0] // resnet20 at 32×32×3, batch symbolic
	b, err := Export(build(t, c.cfg), c.input)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		shape []int
		want  string // "" runs
	}{
		{[]int{1, 3, 32, 32}, ""},
		{[]int{5, 3, 32, 32}, ""},
		{[]int{1, 32, 32, 3}, `input "input" has shape [1 32 32 3], but the graph declares [-1 3 32 32] (-1: any size): the image is NHWC, the graph's input NCHW (tensor.NHWCToNCHW converts it)`},
		{[]int{1, 3, 16, 16}, `input "input" has shape [1 3 16 16], but the graph declares [-1 3 32 32] (-1: any size)`},
		{[]int{3, 32, 32}, `input "input" has shape [3 32 32], but the graph declares [-1 3 32 32]`},
	} {
		_, err := m.Run(map[string]*tensor.Tensor{"input": input(tc.shape)})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.shape, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: got %v, want an error with %q", tc.shape, err, tc.want)
		case tc.want != "" && strings.Contains(err.Error(), "NHWC") != (tc.shape[len(tc.shape)-1] == 3 && len(tc.shape) == 4):
			t.Errorf("%v: %v says NHWC wrongly", tc.shape, err)
		}
	}
	// A graph whose input declares no shape is not held to one: the NHWC
	// image reaches the Conv, which refuses it.
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	mp.Graph.Input[0].Type.GetTensorType().Shape = nil
	if b, err = proto.Marshal(&mp); err != nil {
		t.Fatal(err)
	}
	if m, err = Parse(b); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(map[string]*tensor.Tensor{"input": input([]int{1, 32, 32, 3})}); err == nil || strings.Contains(err.Error(), "declares") {
		t.Errorf("no declared shape: %v", err)
	}
	if _, err := m.Run(map[string]*tensor.Tensor{"input": input([]int{1, 3, 32, 32})}); err != nil {
		t.Errorf("no declared shape: %v", err)
	}
}
