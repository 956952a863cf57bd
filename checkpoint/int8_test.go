package checkpoint_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/tensor"
)

const mnistTiny = "../testdata/checkpoint/mnist-tiny.safetensors"

// quantizeTiny quantizes mnist-tiny, calibrated on random inputs (the
// file round trip does not depend on the calibration's quality).
func quantizeTiny(t *testing.T) (*checkpoint.Checkpoint, *quant.Model, *tensor.Tensor) {
	t.Helper()
	c, err := checkpoint.Load(mnistTiny)
	if err != nil {
		t.Fatal(err)
	}
	rng := tensor.NewRNG(7)
	x := tensor.New(6, 28, 28, 1)
	for i := range x.Data {
		x.Data[i] = float32(rng.Normal())
	}
	n := 0
	q, err := quant.Quantize(context.Background(), c.Net, []int{1, 28, 28, 1}, func() (*tensor.Tensor, error) {
		if n++; n > 1 {
			return nil, nil
		}
		return x, nil
	}, quant.Options{Method: quant.MinMax})
	if err != nil {
		t.Fatal(err)
	}
	return c, q, x
}

// An int8 checkpoint loads back to a model computing the same outputs,
// bit for bit, with its tensors stored as I8 weights, F32 scales and I32
// biases and the precision in the metadata.
func TestInt8RoundTrip(t *testing.T) {
	c, q, x := quantizeTiny(t)
	path := filepath.Join(t.TempDir(), "tiny8.safetensors")
	if err := checkpoint.WriteInt8(path, q, c.Meta); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !checkpoint.IsInt8(f) {
		t.Fatal("written file is not marked int8")
	}
	kinds := map[string]int{}
	for k, d := range f.Dtypes {
		switch {
		case strings.HasSuffix(k, ".weight_scale"):
			kinds["scale "+d]++
		case strings.HasSuffix(k, ".weight"):
			kinds["weight "+d]++
		case strings.HasSuffix(k, ".bias"):
			kinds["bias "+d]++
		default:
			t.Errorf("unexpected tensor %s (%s)", k, d)
		}
	}
	if kinds["weight I8"] == 0 || kinds["weight I8"] != kinds["scale F32"] || kinds["bias I32"] == 0 || len(kinds) != 3 {
		t.Errorf("tensors by kind and dtype: %v", kinds)
	}
	back, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Int8 == nil || back.Model.Name != c.Model.Name || !slices.Equal(back.Classes, c.Classes) {
		t.Fatalf("loaded int8 %v, model %q", back.Int8 != nil, back.Model.Name)
	}
	want, err := q.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	got, err := back.Int8.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Data, want.Data) {
		t.Errorf("loaded model's outputs differ: %v vs %v", got.Data[:5], want.Data[:5])
	}
}

// A damaged int8 checkpoint is an error naming the problem: a weight not
// stored as I8, missing calibration record, scales of the wrong length.
func TestInt8Damaged(t *testing.T) {
	c, q, _ := quantizeTiny(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "tiny8.safetensors")
	// Metadata of another model is refused at writing, as loading would
	// refuse the file (it was written, and failed only when loaded).
	other := c.Meta
	var err error
	if other.Model, err = c.Model.Clone(); err != nil {
		t.Fatal(err)
	}
	other.Model.SetClasses(c.Model.Classes() + 1)
	other.Classes = append(slices.Clone(c.Classes), "extra")
	if err := checkpoint.WriteInt8(path, q, other); err == nil || !strings.Contains(err.Error(), "does not describe the quantized model") {
		t.Errorf("int8 model written with another model's metadata: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the refused write left %s (%v)", path, err)
	}
	if err := checkpoint.WriteInt8(path, q, c.Meta); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(name string, edit func(ts map[string]*tensor.Tensor, dt, md map[string]string)) string {
		ts, dt, md := map[string]*tensor.Tensor{}, map[string]string{}, map[string]string{}
		for k, v := range f.Tensors {
			ts[k] = v.Clone()
			if d := f.Dtypes[k]; d != "F32" {
				dt[k] = d
			}
		}
		for k, v := range f.Metadata {
			md[k] = v
		}
		edit(ts, dt, md)
		p := filepath.Join(dir, name)
		if err := safetensors.WriteDtypes(p, ts, dt, md); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var some string
	for k := range f.Tensors {
		if s, ok := strings.CutSuffix(k, ".weight_scale"); ok {
			some = s
			break
		}
	}
	// A quantized model holding a layer its graph does not run is not
	// written: Load would refuse the file.
	extra := maps.Clone(q.Layers())
	extra["nolayer"] = extra[some]
	qx, err := quant.New(c.Net, []int{1, 28, 28, 1}, q.Params(), extra)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.WriteInt8(filepath.Join(dir, "extra.safetensors"), qx, c.Meta); err == nil || !strings.Contains(err.Error(), "1 layers its graph does not run: nolayer") {
		t.Errorf("int8 model with a layer not in its graph written: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		edit       func(ts map[string]*tensor.Tensor, dt, md map[string]string)
	}{
		{"f32weight", "want an I8", func(ts map[string]*tensor.Tensor, dt, md map[string]string) { delete(dt, some+".weight") }},
		{"noquant", "quant", func(ts map[string]*tensor.Tensor, dt, md map[string]string) { delete(md, "quant") }},
		{"shortscale", "scales", func(ts map[string]*tensor.Tensor, dt, md map[string]string) {
			s := ts[some+".weight_scale"]
			ts[some+".weight_scale"] = &tensor.Tensor{Shape: []int{1}, Data: s.Data[:1]}
		}},
		{"nanweightscale", "weight scale", func(ts map[string]*tensor.Tensor, dt, md map[string]string) {
			ts[some+".weight_scale"].Data[0] = float32(math.NaN())
		}},
		// A subnormal scale multiplies every sum into zero (1e-45 gave
		// every class 10%); quantize never makes one.
		{"subnormalweightscale", "at least 2^-126", func(ts map[string]*tensor.Tensor, dt, md map[string]string) {
			ts[some+".weight_scale"].Data[0] = 1e-45
		}},
		{"badscale", "scale", func(ts map[string]*tensor.Tensor, dt, md map[string]string) {
			md["quant"] = strings.Replace(md["quant"], `"scale":`, `"scale":-`, 1)
		}},
		{"bogusmethod", `unknown method "bogus"`, func(ts map[string]*tensor.Tensor, dt, md map[string]string) {
			md["quant"] = regexp.MustCompile(`"method":"[a-z-]*"`).ReplaceAllString(md["quant"], `"method":"bogus"`)
		}},
		{"extraact", "1 more than the model's operations read", func(ts map[string]*tensor.Tensor, dt, md map[string]string) {
			md["quant"] = strings.Replace(md["quant"], `"activations":{`, `"activations":{"9999":{"scale":1,"zero_point":0},`, 1)
		}},
		// Tensors no layer reads are refused, as a float checkpoint's
		// unexpected keys are (they were ignored): a stray key, an
		// optimizer's state, a layer the model does not have.
		{"junk", "1 unexpected keys: junk", func(ts map[string]*tensor.Tensor, dt, md map[string]string) {
			ts["junk"] = tensor.New(3)
		}},
		{"optimizer", "1 unexpected keys: optimizer.x", func(ts map[string]*tensor.Tensor, dt, md map[string]string) {
			ts["optimizer.x"] = tensor.New(3)
		}},
		{"nolayer", "2 unexpected keys: nolayer.weight, nolayer.weight_scale", func(ts map[string]*tensor.Tensor, dt, md map[string]string) {
			ts["nolayer.weight"], dt["nolayer.weight"] = ts[some+".weight"].Clone(), "I8"
			ts["nolayer.weight_scale"] = ts[some+".weight_scale"].Clone()
		}},
		{"manyjunk", "10 unexpected keys: junk0, junk1, junk2, junk3, junk4, junk5, junk6, junk7 and 2 more", func(ts map[string]*tensor.Tensor, dt, md map[string]string) {
			for i := range 10 {
				ts[fmt.Sprintf("junk%d", i)] = tensor.New(1)
			}
		}},
		{"noprecision", `no "precision"`, func(ts map[string]*tensor.Tensor, dt, md map[string]string) { delete(md, "precision") }},
		{"otherprecision", `precision "fp8"`, func(ts map[string]*tensor.Tensor, dt, md map[string]string) { md["precision"] = "fp8" }},
	} {
		_, err := checkpoint.Load(rewrite(tc.name+".safetensors", tc.edit))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}
