package keras

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
)

// synthetic returns a model.json and its weight shard for a Keras ResNet
// with the layout of keras.applications' ResNet-50 (its layers, settings
// and inbound nodes) but one block per stage and every convolution with
// one channel: what LoadTFJS reads, in a few kilobytes. The classifier has
// the given classes.
func synthetic(classes int) (model, bin []byte) {
	type w struct {
		Name  string `json:"name"`
		Shape []int  `json:"shape"`
		DType string `json:"dtype"`
	}
	var layers []map[string]any
	var weights []w
	var data []float32
	add := func(name string, shape []int, v float32) {
		weights = append(weights, w{name, shape, "float32"})
		n := 1
		for _, d := range shape {
			n *= d
		}
		for range n {
			data = append(data, v)
		}
	}
	// node appends a layer reading the named layers and returns its name.
	node := func(class, name string, config map[string]any, inputs ...string) string {
		var refs []any
		for _, in := range inputs {
			refs = append(refs, []any{in, 0, 0, map[string]any{}})
		}
		inbound := []any{}
		if len(refs) > 0 {
			inbound = []any{refs}
		}
		layers = append(layers, map[string]any{"class_name": class, "name": name, "config": config, "inbound_nodes": inbound})
		return name
	}
	// conv appends a k×k convolution and its batch norm, and a ReLU when
	// relu is set, reading in; it returns the last layer's name.
	conv := func(name, bn string, k, stride int, pad string, in string, relu bool) string {
		node("Conv2D", name, map[string]any{"strides": []int{stride, stride}, "use_bias": true, "kernel_size": []int{k, k}, "padding": pad,
			"dilation_rate": []int{1, 1}, "activation": "linear"}, in)
		out := node("BatchNormalization", bn, map[string]any{"epsilon": 1e-3, "axis": []int{3}}, name)
		add(name+"/kernel", []int{k, k, 1, 1}, 0.5)
		add(name+"/bias", []int{1}, 0.25)
		for _, p := range []string{"gamma", "beta", "moving_mean", "moving_variance"} {
			add(bn+"/"+p, []int{1}, 1)
		}
		if relu {
			out = node("Activation", name+"_relu", map[string]any{"activation": "relu"}, bn)
		}
		return out
	}
	x := node("InputLayer", "input_1", map[string]any{"batch_input_shape": []any{nil, 224, 224, 3}})
	x = node("ZeroPadding2D", "conv1_pad", map[string]any{"padding": [][]int{{3, 3}, {3, 3}}}, x)
	x = conv("conv1", "bn_conv1", 7, 2, "valid", x, true)
	x = node("ZeroPadding2D", "pool1_pad", map[string]any{"padding": [][]int{{1, 1}, {1, 1}}}, x)
	x = node("MaxPooling2D", "max_pooling2d", map[string]any{"pool_size": []int{3, 3}, "strides": []int{2, 2}, "padding": "valid"}, x)
	for s := 2; s <= 5; s++ {
		stride := 2
		if s == 2 {
			stride = 1
		}
		b := fmt.Sprintf("%da", s)
		y := conv("res"+b+"_branch2a", "bn"+b+"_branch2a", 1, stride, "valid", x, true)
		y = conv("res"+b+"_branch2b", "bn"+b+"_branch2b", 3, 1, "same", y, true)
		y = conv("res"+b+"_branch2c", "bn"+b+"_branch2c", 1, 1, "valid", y, false)
		short := conv("res"+b+"_branch1", "bn"+b+"_branch1", 1, stride, "valid", x, false)
		sum := node("Add", "add_"+b, map[string]any{}, y, short)
		x = node("Activation", "relu_"+b, map[string]any{"activation": "relu"}, sum)
	}
	x = node("GlobalAveragePooling2D", "avg_pool", map[string]any{}, x)
	node("Dense", "fc1000", map[string]any{"units": classes, "activation": "softmax"}, x)
	add("fc1000/kernel", []int{2048, classes}, 0.125)
	add("fc1000/bias", []int{classes}, 0)
	m := map[string]any{"format": "layers-model",
		"modelTopology":   map[string]any{"model_config": map[string]any{"config": map[string]any{"layers": layers}}},
		"weightsManifest": []map[string]any{{"paths": []string{"w.bin"}, "weights": weights}}}
	model, _ = json.Marshal(m)
	for _, v := range data {
		bin = binary.LittleEndian.AppendUint32(bin, math.Float32bits(v))
	}
	return model, bin
}

// writeModel writes a model.json and its shard into a new folder.
func writeModel(t *testing.T, model, bin []byte) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.json"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	if bin != nil {
		if err := os.WriteFile(filepath.Join(dir, "w.bin"), bin, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSyntheticModel(t *testing.T) {
	model, bin := synthetic(3)
	m, err := LoadTFJS(writeModel(t, model, bin))
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config.Arch.(*models.ResNet).Config
	if c.Classes != 3 || len(c.Layers) != 4 || c.Layers[3] != 1 || !c.StrideOn1x1 || c.BNEps != 1e-3 {
		t.Errorf("config %+v", c)
	}
	// The conv bias (0.25) is folded into the BN's running mean (1).
	if got := m.State["layer1.0.bn1.running_mean"].Data[0]; got != 0.75 {
		t.Errorf("folded running mean %v, want 0.75", got)
	}
}

// Hostile or broken model.json files and shards get errors naming the
// problem, never a panic, and allocate little before refusing.
func TestHostileModels(t *testing.T) {
	model, bin := synthetic(3)
	edit := func(old, new string) []byte { return []byte(strings.Replace(string(model), old, new, 1)) }
	noKernel := func() []byte { // the manifest without the classifier's kernel (and the shard without its values)
		var mj map[string]any
		json.Unmarshal(model, &mj)
		g := mj["weightsManifest"].([]any)[0].(map[string]any)
		var kept []any
		for _, w := range g["weights"].([]any) {
			if w.(map[string]any)["name"] != "fc1000/kernel" {
				kept = append(kept, w)
			}
		}
		g["weights"] = kept
		b, _ := json.Marshal(mj)
		return b
	}
	fcStart := len(bin) - 4*(2048*3+3)
	cases := []struct {
		name       string
		model, bin []byte
		want       string
	}{
		{"no classifier kernel", noKernel(), append(append([]byte{}, bin[:fcStart]...), bin[len(bin)-12:]...), "no kernel for the classifier fc1000"},
		{"epsilon 0", edit(`"epsilon":0.001`, `"epsilon":0`), bin, "epsilon 0"},
		{"negative epsilon", edit(`"epsilon":0.001`, `"epsilon":-1`), bin, "epsilon -1"},
		{"huge shape", edit(`"shape":[2048,3]`, `"shape":[65536,65536,65536]`), bin, "limits.TensorElements"},
		// Dimensions an int cannot hold (2³² past a 32-bit one) get the
		// same error on every platform.
		{"overflowing shape", edit(`"shape":[2048,3]`, `"shape":[4294967296,4294967296,4294967296,4294967296]`), bin, "weight fc1000/kernel: shape [4294967296 4294967296 4294967296 4294967296] holds more than 268435456 values (limits.TensorElements)"},
		{"shape past 64 bits", edit(`"shape":[2048,3]`, `"shape":[99999999999999999999,3]`), bin, "weight fc1000/kernel: shape [99999999999999999999 3] holds more than 268435456 values (limits.TensorElements)"},
		// An empty one is refused as empty whatever its other dimensions:
		// past a 32-bit int, 386 named the wide dimension and amd64 the
		// zero.
		{"empty shape", edit(`"shape":[2048,3]`, `"shape":[0,3]`), bin, "weight fc1000/kernel has shape [0 3], with an empty dimension"},
		{"empty shape past 32 bits", edit(`"shape":[2048,3]`, `"shape":[0,4294967296]`), bin, "weight fc1000/kernel has shape [0 4294967296], with an empty dimension"},
		{"empty shape past 64 bits", edit(`"shape":[2048,3]`, `"shape":[0,99999999999999999999]`), bin, "weight fc1000/kernel has shape [0 99999999999999999999], with an empty dimension"},
		{"class count the shard lacks", edit(`"shape":[2048,3]`, `"shape":[2048,100000]`), bin, "truncated shard"},
		{"negative dimension", edit(`"shape":[2048,3]`, `"shape":[-2048,-3]`), bin, "negative dimension"},
		{"missing shard", model, nil, "w.bin"},
		// Layouts that name every layer as keras.applications does but
		// compute another network (each imported as a ResNet-50 before).
		{"stem stride 1", edit(`"kernel_size":[7,7],"padding":"valid","strides":[2,2]`, `"kernel_size":[7,7],"padding":"valid","strides":[1,1]`), bin, "convolution conv1 has strides [1 1]"},
		{"7×7 max pool", edit(`"pool_size":[3,3]`, `"pool_size":[7,7]`), bin, "pool size [7 7]"},
		{"a block adding a branch to itself", edit(`["bn2a_branch1",0,0,{}]`, `["bn2a_branch2c",0,0,{}]`), bin, "block res2a's Add reads bn2a_branch2c as its shortcut; want bn2a_branch1"},
		{"7 input channels", edit(`"batch_input_shape":[null,224,224,3]`, `"batch_input_shape":[null,224,224,7]`), bin, "input input_1 has shape [null,224,224,7]"},
		{"negative padding", edit(`"padding":[[3,3],[3,3]]`, `"padding":[[-3,-3],[-3,-3]]`), bin, "before conv1: layer conv1_pad is a ZeroPadding2D with padding"},
		{"0×0 kernel", edit(`"kernel_size":[3,3]`, `"kernel_size":[0,0]`), bin, "convolution res2a_branch2b has kernel size [0 0]"},
		{"unknown classifier activation", edit(`"activation":"softmax"`, `"activation":"zzz"`), bin, `classifier fc1000 applies "zzz"`},
		{"dilated", edit(`"dilation_rate":[1,1],"kernel_size":[3,3]`, `"dilation_rate":[2,2],"kernel_size":[3,3]`), bin, "res2a_branch2b has dilation [2 2]"},
		{"no inbound nodes", edit(`"inbound_nodes":[[["avg_pool",0,0,{}]]]`, `"inbound_nodes":[]`), bin, "layer fc1000: its inbound_nodes are not one call"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := LoadTFJS(writeModel(t, c.model, c.bin))
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
				t.Errorf("allocated %d MB before refusing", d>>20)
			}
		})
	}
	t.Run("device as shard", func(t *testing.T) {
		dir := writeModel(t, model, nil)
		if err := os.Symlink("/dev/zero", filepath.Join(dir, "w.bin")); err != nil {
			t.Skipf("cannot link to /dev/zero: %v", err)
		}
		if _, err := LoadTFJS(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("classes over the limit", func(t *testing.T) {
		old := limits.Classes
		limits.Classes = 2
		defer func() { limits.Classes = old }()
		if _, err := LoadTFJS(writeModel(t, model, bin)); err == nil || !strings.Contains(err.Error(), "limits.Classes") {
			t.Errorf("got %v", err)
		}
	})
}

// A weight group's shards are joined in one slice and then decoded, all
// groups' tensors held together: on a 32-bit platform that may take no
// more than 2³¹−1 bytes, so the shards are measured and refused before
// any is read. A shard that took its group past 2³¹−1 bytes was refused
// only once the shards before it had been read, and a group of three
// 600 MiB shards, within a slice, exhausted the address space as they
// were joined (fatal error: out of memory). The shards are sparse: they
// take no disk.
func TestShardsPastSlice(t *testing.T) {
	if strconv.IntSize != 32 {
		t.Skipf("%d-bit ints: the memory a group takes is bounded by the machine's alone (TestShardsPastMemory)", strconv.IntSize)
	}
	model, bin := synthetic(3)
	for _, sizes := range [][]int64{{math.MaxInt32}, {600 << 20, 600 << 20, 600 << 20}} {
		var paths []string
		total := int64(len(bin))
		for i, n := range sizes {
			paths = append(paths, fmt.Sprintf(`"more%d.bin"`, i))
			total += n
		}
		more := strings.Replace(string(model), `"paths":["w.bin"]`, `"paths":["w.bin",`+strings.Join(paths, ",")+`]`, 1)
		if more == string(model) {
			t.Fatal(`no "paths":["w.bin"] in the model.json`)
		}
		dir := writeModel(t, []byte(more), bin)
		for i, n := range sizes {
			p := filepath.Join(dir, fmt.Sprintf("more%d.bin", i))
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, n); err != nil {
				t.Fatal(err)
			}
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := LoadTFJS(dir)
		runtime.ReadMemStats(&after)
		want := fmt.Sprintf("reading %d bytes of weights (%d in the largest group, joined before it is decoded) needs at least %.1f GB of memory; a 32-bit process holds 2.1 GB at most", total, total, float64(2*total)/1e9)
		if err == nil || !strings.HasSuffix(err.Error(), ": "+want) {
			t.Errorf("a group of %d bytes and %v: %v; want %s", len(bin), sizes, err, want)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
			t.Errorf("a group of %d bytes and %v: allocated %d MB before refusing", len(bin), sizes, d>>20)
		}
	}
}

// Before any shard is read, the shards are measured against
// limits.TotalBytes and the memory they take decoded (every group's
// bytes as float32 tensors, the largest group's also joined) against
// limits.CheckMemory, on every platform: here, a model of two groups
// whose second is missing its last shard.
func TestShardsPastMemory(t *testing.T) {
	model, bin := synthetic(3)
	// A second group: the shard w.bin again, then one that is missing
	// (found before the first is read).
	var mj map[string]any
	if err := json.Unmarshal(model, &mj); err != nil {
		t.Fatal(err)
	}
	groups := mj["weightsManifest"].([]any)
	mj["weightsManifest"] = append(groups, map[string]any{"paths": []string{"w.bin", "gone.bin"}, "weights": []any{}})
	two, err := json.Marshal(mj)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeModel(t, two, bin)
	n := int64(len(bin))
	defer func(m, b int64) { limits.Memory, limits.TotalBytes = m, b }(limits.Memory, limits.TotalBytes)
	if _, err := LoadTFJS(dir); err == nil || !strings.Contains(err.Error(), "weight shard gone.bin, listed in model.json's weightsManifest, is missing") {
		t.Errorf("a missing shard: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gone.bin"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		memory, total int64
		want          string
	}{
		{3*n - 1, 2 * n, fmt.Sprintf("reading %d bytes of weights (%d in the largest group, joined before it is decoded) needs at least %.1f MB of memory; %.1f MB is available", 2*n, n, float64(3*n)/1e6, float64(3*n-1)/1e6)},
		{3 * n, 2*n - 1, fmt.Sprintf("weight shards hold more than the %d bytes allowed in all (limits.TotalBytes), at w.bin of %d bytes", 2*n-1, n)},
		{3 * n, 2 * n, "weight group 1: its shards hold " + strconv.FormatInt(n, 10) + " bytes, the manifest describes 0"},
	} {
		limits.Memory, limits.TotalBytes = c.memory, c.total
		if _, err := LoadTFJS(dir); err == nil || !strings.HasSuffix(err.Error(), ": "+c.want) {
			t.Errorf("limits.Memory %d, limits.TotalBytes %d: %v; want %s", c.memory, c.total, err, c.want)
		}
	}
}
