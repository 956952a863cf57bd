package checkpoint_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/tensor"
)

const (
	resnetV1 = "../testdata/checkpoint/resnet-v1.safetensors"
	unetV1   = "../testdata/checkpoint/unet-v1.safetensors"
)

// The first format's files (written by that format's code, see
// testdata/checkpoint/README.md) load: model, classes, preprocessing,
// position, optimizer state, and the batch norm counters from the JSON
// map.
func TestFirstFormatLoads(t *testing.T) {
	c, err := checkpoint.Load(resnetV1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.Name != "tiny" || c.Model.Kind() != "resnet" || len(c.Classes) != 10 || c.Preprocess.Height != 28 ||
		c.Position == nil || c.Position.Epoch != 1 || c.Position.Step != 6 || len(c.Position.RNG) == 0 ||
		c.DataSpec() != "mnist" || len(c.Optimizer) == 0 {
		t.Fatalf("loaded %+v, position %+v", c.Meta, c.Position)
	}
	for _, l := range nn.Layers(c.Net) {
		if b, ok := l.Layer.(*nn.BatchNorm); ok && b.NumBatchesTracked != 6 {
			t.Errorf("%s counted %d batches, the file's map says 6", l.Name, b.NumBatchesTracked)
		}
	}
	u, err := checkpoint.Load(unetV1)
	if err != nil {
		t.Fatal(err)
	}
	if !u.Model.Dense() || u.Position != nil || u.Train != nil || len(u.Preprocess.Mean) != 3 || len(u.Optimizer) != 0 {
		t.Errorf("U-Net loaded as %+v", u.Meta)
	}
}

// Writing a loaded checkpoint and loading it back gives the same weights,
// counters, optimizer state and metadata, in the current format: counters
// as I64 tensors, no JSON map.
func TestWriteRoundTrip(t *testing.T) {
	c, err := checkpoint.Load(resnetV1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Position == nil {
		t.Fatal("the fixture holds no position")
	}
	c.Position.EvalRead = map[string]string{"validation": "0a1b", "test": "2c3d"}
	path := filepath.Join(t.TempDir(), "c.safetensors")
	if err := checkpoint.Write(path, c.Net, c.Meta, c.Optimizer); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != checkpoint.Format || f.Metadata["num_batches_tracked"] != "" || f.Dtypes["bn1.num_batches_tracked"] != "I64" {
		t.Errorf("written as format %q, counters %q, dtype %q", f.Metadata["format"], f.Metadata["num_batches_tracked"], f.Dtypes["bn1.num_batches_tracked"])
	}
	if !strings.Contains(f.Metadata["model"], `"kind":"resnet"`) {
		t.Errorf("model stored as %s", f.Metadata["model"])
	}
	back, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, b := nn.TorchState(c.Net), nn.TorchState(back.Net)
	if len(a) != len(b) {
		t.Fatalf("%d tensors back, wrote %d", len(b), len(a))
	}
	for k, v := range a {
		if !slices.Equal(v.Data, b[k].Data) {
			t.Errorf("%s differs after the round trip", k)
		}
	}
	for k, v := range c.Optimizer {
		if !slices.Equal(v.Data, back.Optimizer[k].Data) {
			t.Errorf("optimizer %s differs after the round trip", k)
		}
	}
	m1, _ := json.Marshal(c.Meta)
	m2, _ := json.Marshal(back.Meta)
	if string(m1) != string(m2) {
		t.Errorf("metadata\n%s\nread back as\n%s", m1, m2)
	}
	if _, err := checkpoint.Load(filepath.Join(t.TempDir(), "none.safetensors")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

// Hostile or inconsistent metadata is refused with an error naming the
// field, before a model is built from it (issue #21's cases among them).
func TestHostileMetadata(t *testing.T) {
	f, err := safetensors.Read(resnetV1)
	if err != nil {
		t.Fatal(err)
	}
	model := f.Metadata["model"]
	cases := []struct {
		key, value, want string
	}{
		{"format", "pytorch", "not a residual checkpoint"},
		{"format", "", "becomes one with `residual import torch`"},
		{"model", "{", "model"},
		{"model", `{"name":"x","kind":"transformer","config":{}}`, "unknown kind"},
		{"model", strings.Replace(model, `"widths":[4,8]`, `"widths":[4,32768]`, 1), "parameters"},
		{"model", strings.Replace(model, `"widths":[4,8]`, `"widths":[4,64]`, 1), "the file holds 1"},
		{"model", strings.Replace(model, `"layers":[1,1]`, `"layers":[1,100000]`, 1), "layers[1]"},
		{"model", strings.Replace(model, `"classes":10`, `"classes":-3`, 1), "classes"},
		{"model", strings.Replace(model, `"in_channels":1`, `"in_channels":3`, 1), "Channels 1 for a model with 3 input channels"},
		{"classes", `["a","b"]`, "2 names for a model with 10 outputs"},
		{"classes", `{}`, "classes"},
		{"preprocess", `{"Height":28,"Width":28,"Channels":1,"Mean":[0.1,0.2,0.3],"Std":[0.3]}`, "Mean takes one value per channel (1), not 3"},
		{"preprocess", `{"Height":28,"Width":28,"Channels":1,"Mean":[0.1],"Std":[0]}`, "Std[0] = 0"},
		{"preprocess", `{"Height":-28,"Width":28,"Channels":1}`, "empty"},
		{"preprocess", `{"Height":28,"Width":28,"Channels":0}`, "Channels 0"},
		{"preprocess", `{"Height":1000000,"Width":28,"Channels":1}`, "limits.ImageSide"},
		{"preprocess", `{"Height":9000,"Width":9000,"Channels":1}`, "limits.TensorElements"},
		{"preprocess", `{"Height":28,"Width":28,"Channels":1,"ResizeShorter":-1}`, "ResizeShorter"},
		// Finite in float64, infinite in the float32 the model computes in.
		{"preprocess", `{"Height":28,"Width":28,"Channels":1,"Mean":[1e300],"Std":[1]}`, "Mean[0] = 1e+300 (want a finite float32)"},
		{"preprocess", `{"Height":28,"Width":28,"Channels":1,"Mean":[0],"Std":[1e-300]}`, "Std[0] = 1e-300 (want a finite float32 of at least 2^-126)"},
		{"epoch", "x", "epoch"},
		{"epoch", "-1", "negative epoch"},
		{"best_val_acc", "", "best_val_acc"},
		{"rng", "!!", "rng"},
		{"epoch_partial", `{"seen":"many"}`, "epoch_partial"},
		{"epoch_partial", `{"loss_sum":1e999}`, "epoch_partial"},
		{"epoch_partial", `{"loss_sum":2.5,"hits":3,"seen":-4}`, "epoch_partial holds a negative count"},
		{"epoch_partial", `{"loss_sum":2.5,"hits":3,"seen":4,"skipped":-1}`, "epoch_partial holds a negative count"},
		{"eval_read", `["0a1b"]`, "eval_read"},
		{"train", "{", "train"},
		{"num_batches_tracked", `{"bn1":-5}`, "num_batches_tracked"},
	}
	for _, tc := range cases {
		md := map[string]string{}
		for k, v := range f.Metadata {
			md[k] = v
		}
		md[tc.key] = tc.value
		path := filepath.Join(t.TempDir(), "bad.safetensors")
		if err := safetensors.Write(path, f.Tensors, md); err != nil {
			t.Fatal(err)
		}
		_, err := checkpoint.Load(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s = %.60s: error %v, want one naming the file and %q", tc.key, tc.value, err, tc.want)
		}
	}
}

// Write refuses metadata that Load would refuse, so no run writes a
// checkpoint it cannot read.
func TestWriteValidates(t *testing.T) {
	c, err := checkpoint.Load(resnetV1)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Meta
	m.Classes = m.Classes[:3]
	path := filepath.Join(t.TempDir(), "c.safetensors")
	if err := checkpoint.Write(path, c.Net, m, nil); err == nil || !strings.Contains(err.Error(), "3 names") {
		t.Errorf("3 class names for 10 outputs: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused checkpoint left a file: %v", err)
	}
	m = c.Meta
	m.Model = models.Config{Name: "none"}
	if err := checkpoint.Write(path, c.Net, m, nil); err == nil || !strings.Contains(err.Error(), "describes no network") {
		t.Errorf("no model config: %v", err)
	}
	if err := checkpoint.Write(path, nil, c.Meta, nil); err == nil || !strings.Contains(err.Error(), "no network") {
		t.Errorf("a nil network: %v", err)
	}
	u, err := checkpoint.Load(unetV1)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.Write(path, c.Net, u.Meta, nil); err == nil || !strings.Contains(err.Error(), "the network holds") {
		t.Errorf("a ResNet under a U-Net's config: %v", err)
	}
	// An input size the model does not take (a U-Net at a size that
	// does not halve evenly, 30×30): Load refused what Write had written.
	m = u.Meta
	m.Preprocess.Height, m.Preprocess.Width = 30, 30
	if err := checkpoint.Write(path, u.Net, m, nil); err == nil || !strings.Contains(err.Error(), "does not take 30x30 inputs") {
		t.Errorf("a U-Net at an input size it does not take: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused checkpoint left a file: %v", err)
	}
	// A network prepared for inference (batch norms folded into its
	// convolutions, which then have biases): Write wrote it and Load
	// refused it ("7 unexpected keys: conv1.bias, …"); ExportWeights, for
	// torchvision's load_state_dict, refuses it too, and no network.
	f, err := checkpoint.Load(resnetV1)
	if err != nil {
		t.Fatal(err)
	}
	if err := models.ForInference(f.Model, f.Net); err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func(nn.Layer) error{
		"Write":         func(n nn.Layer) error { return checkpoint.Write(path, n, f.Meta, nil) },
		"ExportWeights": func(n nn.Layer) error { return checkpoint.ExportWeights(path, n) },
	} {
		if err := write(f.Net); err == nil || !strings.Contains(err.Error(), "batch norms are folded") {
			t.Errorf("%s of a folded network: %v", name, err)
		}
		if err := write(nil); err == nil || !strings.Contains(err.Error(), "no network") {
			t.Errorf("%s of no network: %v", name, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: a refused checkpoint left a file: %v", name, err)
		}
	}
	if err := checkpoint.Write(path, c.Net, c.Meta, nil); err != nil { // the unfolded one still writes
		t.Error(err)
	}
}

// A checkpoint whose weights hold a NaN or an infinity is refused when
// loaded and when written, naming the tensor; such files once loaded
// everywhere, predicting "NaN%".
func TestNonFiniteWeightsRefused(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		f, err := safetensors.Read(resnetV1)
		if err != nil {
			t.Fatal(err)
		}
		w := f.Tensors["fc.weight"]
		w.Data[7], w.Data[9] = bad, bad
		if _, err := checkpoint.FromFile(f); err == nil || !strings.Contains(err.Error(), `"fc.weight" holds 2 non-finite values`) {
			t.Errorf("loading a weight of %v: %v", bad, err)
		}
		c, err := checkpoint.Load(resnetV1)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range nn.StateDict(c.Net) {
			if e.Name == "fc.weight" {
				e.Tensor.Data[3] = bad
			}
		}
		path := filepath.Join(t.TempDir(), "c.safetensors")
		if err := checkpoint.Write(path, c.Net, c.Meta, nil); err == nil || !strings.Contains(err.Error(), `"fc.weight" holds 1 non-finite`) {
			t.Errorf("writing a weight of %v: %v", bad, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a refused checkpoint left a file: %v", err)
		}
	}
	// A negative running variance is refused as loaded (every prediction
	// was NaN), and a training record that is not JSON as written (Load
	// refused the file Write had written).
	f, err := safetensors.Read(resnetV1)
	if err != nil {
		t.Fatal(err)
	}
	f.Tensors["bn1.running_var"].Data[1] = -1
	if _, err := checkpoint.FromFile(f); err == nil || !strings.Contains(err.Error(), `batch norm variance "bn1.running_var" holds -1 at 1`) {
		t.Errorf("a negative running variance: %v", err)
	}
	c, err := checkpoint.Load(resnetV1)
	if err != nil {
		t.Fatal(err)
	}
	c.Meta.Train = []byte("{")
	if err := checkpoint.Write(filepath.Join(t.TempDir(), "c.safetensors"), c.Net, c.Meta, nil); err == nil || !strings.Contains(err.Error(), "training config is not JSON") {
		t.Errorf("writing a training record that is not JSON: %v", err)
	}
}

// FuzzMetadata feeds arbitrary model configs, class lists and
// preprocessing records to the loader: it must return a checkpoint or an
// error, never panic or exhaust memory. The seeds are the fixture's own.
func FuzzMetadata(f *testing.F) {
	file, err := safetensors.Read(resnetV1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(file.Metadata["model"], file.Metadata["classes"], file.Metadata["preprocess"])
	f.Add(`{"name":"u","kind":"unet","config":{"in_channels":1,"classes":10,"depth":2,"base":4}}`, file.Metadata["classes"], file.Metadata["preprocess"])
	f.Fuzz(func(t *testing.T, model, classes, pre string) {
		md := map[string]string{}
		for k, v := range file.Metadata {
			md[k] = v
		}
		md["model"], md["classes"], md["preprocess"] = model, classes, pre
		c, err := checkpoint.FromFile(&safetensors.File{Tensors: file.Tensors, Metadata: md})
		if err == nil && len(c.Classes) != c.Model.Classes() {
			t.Errorf("accepted %d class names for %d outputs", len(c.Classes), c.Model.Classes())
		}
	})
}

// A model whose last feature map is 1×1 at its input size (ResNet-18 at
// 32×32), in training mode as a trainer holds it, is written and read
// back: the input check runs in evaluation mode (in training mode a batch
// norm refuses one value per channel, and the trainer lost the epoch it
// could not save), and leaves the model's mode as it was.
func TestWriteOneByOneFeatureMap(t *testing.T) {
	cfg, err := models.Preset("resnet18")
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetClasses(2)
	net, err := models.Build(cfg, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	nn.SetTraining(net, true)
	path := filepath.Join(t.TempDir(), "r18.safetensors")
	meta := checkpoint.Meta{Model: cfg, Classes: []string{"a", "b"}, Preprocess: checkpoint.Preprocess{Height: 32, Width: 32, Channels: 3}}
	if err := checkpoint.Write(path, net, meta, nil); err != nil {
		t.Fatalf("writing: %v", err)
	}
	if _, err := checkpoint.Load(path); err != nil {
		t.Errorf("reading: %v", err)
	}
	for _, l := range nn.Layers(net) {
		if bn, ok := l.Layer.(*nn.BatchNorm); ok && !bn.Training {
			t.Fatalf("%s left in evaluation mode by Write", l.Name)
		}
	}
}

// Props and MetaFromProps round-trip a checkpoint's metadata (what an
// exported ONNX model carries), with its data spec; props without
// "residual.model" are not residual's (ok false, no error), and a
// malformed one is an error naming the property.
func TestMetaProps(t *testing.T) {
	c, err := checkpoint.Load(resnetV1)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Meta
	m.Train = []byte(`{"data":"fashion-mnist","epochs":3}`)
	props, err := m.Props()
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := checkpoint.MetaFromProps(props)
	if err != nil || !ok {
		t.Fatalf("MetaFromProps: ok %v, %v", ok, err)
	}
	if !reflect.DeepEqual(got.Classes, m.Classes) || !reflect.DeepEqual(got.Preprocess, m.Preprocess) || got.Model.Name != m.Model.Name || got.DataSpec() != "fashion-mnist" {
		t.Errorf("round trip: %+v, want %+v", got, m)
	}
	if _, ok, err := checkpoint.MetaFromProps(map[string]string{"producer": "x"}); ok || err != nil {
		t.Errorf("props of another program: ok %v, %v", ok, err)
	}
	props["residual.classes"] = "[1,"
	if _, ok, err := checkpoint.MetaFromProps(props); !ok || err == nil || !strings.Contains(err.Error(), "residual.classes") {
		t.Errorf("malformed classes: ok %v, %v", ok, err)
	}
}

// FromFile and IsInt8 take a decoded file from the caller: a nil one is an
// error (not an int8 file), never a nil dereference.
func TestFromFileNil(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panicked on a nil file: %v", r)
		}
	}()
	if checkpoint.IsInt8(nil) {
		t.Error("IsInt8(nil) = true")
	}
	if c, err := checkpoint.FromFile(nil); err == nil || c != nil {
		t.Errorf("FromFile(nil) = %v, %v; want an error", c, err)
	}
}
