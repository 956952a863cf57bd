package onnx

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

var update = flag.Bool("update", false, "rewrite testdata/export_golden.json from the current exporter")

const goldenPath = "testdata/export_golden.json"

// goldenCases are the models whose exports are pinned: every model Preset
// knows, the block variants of exportCases, and opsLayer, which reaches
// every operation the exporter handles that the zoo does not use.
func goldenCases(t *testing.T) []exportCase {
	var cs []exportCase
	for _, name := range models.Names() {
		c, err := models.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		var input []int
		switch {
		case c.Kind() == "resnet":
			input = c.InputShape(1, 64)
		case name == "unet":
			input = []int{1, 188, 188, 1}
		case name == "unet-padded":
			input = []int{1, 32, 48, 1}
		default:
			input = []int{4, 1}
		}
		cs = append(cs, exportCase{"zoo-" + name, c, input})
	}
	for _, c := range exportCases(t) {
		if _, err := models.Preset(c.name); err != nil { // a variant, not a preset already above
			cs = append(cs, c)
		}
	}
	return cs
}

// TestExportGolden pins the exported bytes: each model's export must hash
// to the SHA-256 recorded in testdata/export_golden.json, so a change to
// the exporter or to the trace records that alters any graph — a node, an
// attribute, a name, an initializer — shows here. The hashes were made by
// the exporter before its operations moved into a table keyed by
// autograd.OpKind; regenerate them with -update only for a change meant to
// alter exported graphs, and say so in its commit.
func TestExportGolden(t *testing.T) {
	got := map[string]string{}
	hash := func(name string, m nn.Layer, input []int) {
		b, err := Export(m, input)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s := sha256.Sum256(b)
		got[name] = hex.EncodeToString(s[:])
	}
	for _, c := range goldenCases(t) {
		if testing.Short() && c.name != "zoo-resnet20" && strings.HasPrefix(c.name, "zoo-") {
			continue // the presets take ten seconds on two cores
		}
		hash(c.name, build(t, c.cfg), c.input)
	}
	hash("ops", opsLayer{}, []int{2, 8, 8, 3})
	if *update {
		b, err := json.MarshalIndent(got, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]string
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%s: %v", goldenPath, err)
	}
	for name, h := range got {
		if want[name] == "" {
			t.Errorf("%s: no golden hash (run with -update to record one)", name)
		} else if h != want[name] {
			t.Errorf("%s: export hashes to %s, golden %s", name, h, want[name])
		}
	}
}

// opsLayer applies, in one small graph, the traced operations no model of
// the zoo uses (or uses only in one layout): softmaxes along an image axis
// and a plain one, element-wise products, scaling, dilated max pooling,
// every padding mode, a batch norm without affine parameters, a matrix
// product and a sum.
type opsLayer struct{}

func (opsLayer) Forward(x *ag.Value) *ag.Value {
	c := func(shape ...int) *ag.Value {
		t := tensor.New(shape...)
		for i := range t.Data {
			t.Data[i] = float32(i%7) - 3
		}
		return ag.Constant(t)
	}
	one := [2]int{1, 1}
	y := ag.Mul(ag.Softmax(x, 3), ag.LogSoftmax(x, 1))
	y = ag.Scale(y, 0.5)
	y = ag.MaxPool2d(y, ag.PoolParams{Kernel: [2]int{2, 2}, Stride: one, Dilation: [2]int{2, 2}, Pad: [4]int{1, 1, 1, 1}})
	y = ag.Pad(y, [][2]int{{0, 0}, {1, 2}, {2, 1}, {0, 0}}, ag.PadReflect, 0)
	y = ag.Pad(y, [][2]int{{0, 0}, {1, 0}, {0, 1}, {0, 0}}, ag.PadEdge, 0)
	y = ag.Pad(y, [][2]int{{0, 0}, {0, 0}, {0, 0}, {1, 1}}, ag.PadConstant, 0.25)
	mean, variance := tensor.New(5), tensor.New(5)
	variance.Fill(2)
	y = ag.BatchNorm(y, nil, nil, mean, variance, ag.BatchNormParams{Momentum: 0.1, Eps: 1e-5})
	y = ag.GlobalAvgPool(y)
	y = ag.MatMul(y, c(5, 4))
	y = ag.Softmax(ag.Pad(y, [][2]int{{0, 0}, {1, 1}}, ag.PadConstant, 0), 1)
	return ag.Sum(y)
}

// TestExportOpsRoundTrip runs the exports of opsLayer and constLayer in
// residual's ONNX evaluator: each graph computes what its layer does (at
// 1e-5 relative to the output's scale, as TestExportRoundTrip).
func TestExportOpsRoundTrip(t *testing.T) {
	shape := []int{2, 8, 8, 3}
	for _, m := range []nn.Layer{opsLayer{}, constLayer{}} {
		b, err := Export(m, shape)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		g, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		x := input(shape)
		out, err := g.Run(map[string]*tensor.Tensor{"input": toONNX(x)})
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if err := fixture.Compare(out["output"], toONNX(m.Forward(ag.Constant(x)).Data), 1e-5); err != nil {
			t.Errorf("%T: %v", m, err)
		}
	}
}

// constLayer convolves with weights that are not a model's parameters
// (the exporter must still write them in ONNX's layout), average-pools
// (with the window counting padding, and rounding up) and convolves back
// with a transposed convolution.
type constLayer struct{}

func (constLayer) Forward(x *ag.Value) *ag.Value {
	c := func(shape ...int) *ag.Value {
		t := tensor.New(shape...)
		for i := range t.Data {
			t.Data[i] = float32(i%5)/4 - 0.5
		}
		return ag.Constant(t)
	}
	one := [2]int{1, 1}
	y := ag.Conv2d(x, c(3, 3, 3, 4), c(4), ag.ConvParams{Stride: one, Dilation: one, Pad: ag.SymmetricPad(1, 1)})
	y = ag.AvgPool2d(y, ag.PoolParams{Kernel: [2]int{3, 3}, Stride: [2]int{2, 2}, Pad: [4]int{1, 1, 1, 1}, CeilMode: true, CountIncludePad: true})
	return ag.ConvTranspose2d(y, c(2, 2, 5, 4), nil, ag.ConvParams{Stride: [2]int{2, 2}, Dilation: one})
}

// TestExportsEveryOpKind checks that the exporter's table has an entry for
// every operation autograd can trace, and nothing else.
func TestExportsEveryOpKind(t *testing.T) {
	kinds := ag.OpKinds()
	for _, k := range kinds {
		if exports[k] == nil {
			t.Errorf("%s has no export", k)
		}
	}
	if len(exports) != len(kinds) {
		t.Errorf("%d exports for %d traced kinds", len(exports), len(kinds))
	}
}
