// Package keras loads Keras ResNets (keras.applications' ResNet50 and its
// deeper siblings, the original v1 networks) saved in the TensorFlow.js
// layers format: a model.json holding the Keras topology and a weights
// manifest, and binary shards of little-endian float32 values.
//
// The network becomes a residual ResNet with torchvision's names and
// PyTorch's layouts, so everything that works on a torchvision model works
// on it. What differs from torchvision's ResNet is carried over exactly:
//
//   - the stride of a downsampling bottleneck sits on its first 1×1
//     convolution (v1), read from the topology;
//   - batch norm's ε is Keras's (1e-3), read from the topology;
//   - Keras convolutions have biases, which torchvision's do not. Each is
//     followed by a batch norm, so the bias b is folded into that batch
//     norm's running mean (μ − b): exact in evaluation, and in training the
//     batch statistics remove any per-channel constant anyway;
//   - kernels are HWIO and the classifier's is [in, out]; they are
//     transposed to OIHW and [out, in].
//
// The final Dense layer's softmax is left out: the model returns logits.
package keras

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/tensor"
)

// CaffePreprocess returns keras.applications' "caffe" mode for its
// ResNets, which residual stores in the checkpoint of an imported model
// (Model.Preprocess): RGB to BGR, pixels in [0, 255] less the ImageNet
// means (BGR order), no scaling; the image resized (shorter side 256) and
// centre-cropped to 224×224, as torchvision evaluates. Each call returns
// a value of its own (it was a variable whose Mean every checkpoint
// written from it shared).
func CaffePreprocess() checkpoint.Preprocess {
	return checkpoint.Preprocess{Height: 224, Width: 224, Channels: 3, ResizeShorter: 256,
		Normalisation: transform.Normalisation{Scale255: true, BGR: true, Mean: []float64{103.939, 116.779, 123.68}}}
}

// Model is a Keras network converted for residual.
type Model struct {
	// Config builds the network (models.Build).
	Config models.Config
	// State holds the weights by torchvision name, in PyTorch's layouts,
	// for nn.LoadTorchState.
	State map[string]*tensor.Tensor
	// Classes are the class names from the package's labels.json (nil when
	// there is none).
	Classes []string
	// Preprocess is how the network's inputs are made: CaffePreprocess.
	Preprocess checkpoint.Preprocess
}

// modelJSON is the part of a TensorFlow.js layers model.json that matters.
type modelJSON struct {
	Format        string          `json:"format"`
	ModelTopology json.RawMessage `json:"modelTopology"`
	Manifest      []struct {
		Paths   []string `json:"paths"`
		Weights []struct {
			Name         string          `json:"name"`
			Shape        json.RawMessage `json:"shape"` // limits.ParseShape
			DType        string          `json:"dtype"`
			Quantization json.RawMessage `json:"quantization"`
		} `json:"weights"`
	} `json:"weightsManifest"`
}

// layer is one Keras layer of the topology.
type layer struct {
	ClassName string `json:"class_name"`
	Name      string `json:"name"`
	Config    struct {
		Strides         []int           `json:"strides"`
		KernelSize      []int           `json:"kernel_size"`
		DilationRate    []int           `json:"dilation_rate"`
		Padding         any             `json:"padding"`
		UseBias         *bool           `json:"use_bias"`
		Epsilon         float64         `json:"epsilon"`
		Axis            json.RawMessage `json:"axis"`
		Activation      string          `json:"activation"`
		Units           int             `json:"units"`
		Filters         int             `json:"filters"`
		PoolSize        []int           `json:"pool_size"`
		DataFormat      string          `json:"data_format"`
		BatchInputShape []*int          `json:"batch_input_shape"`
	} `json:"config"`
	// InboundNodes are the layers it reads (checkGraph).
	InboundNodes json.RawMessage `json:"inbound_nodes"`
}

// Find returns the model.json of a TensorFlow.js model: path itself, the
// model.json in the folder path, or the only one in its sub-folders (an
// unpacked npm package).
func Find(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("keras: %w", err)
	}
	if !st.IsDir() {
		return path, nil
	}
	if _, err := os.Stat(filepath.Join(path, "model.json")); err == nil {
		return filepath.Join(path, "model.json"), nil
	}
	found, _ := filepath.Glob(filepath.Join(path, "*", "model.json"))
	if more, _ := filepath.Glob(filepath.Join(path, "package", "*", "model.json")); len(found) == 0 {
		found = more
	}
	if len(found) != 1 {
		return "", fmt.Errorf("keras: %s holds %d model.json files in it or its sub-folders; name the one to load", path, len(found))
	}
	return found[0], nil
}

// LoadTFJS reads a Keras ResNet in the TensorFlow.js layers format from a
// model.json, its folder, or the unpacked npm package that holds it.
func LoadTFJS(path string) (*Model, error) {
	file, err := Find(path)
	if err != nil {
		return nil, err
	}
	raw, err := limits.ReadFile(file, limits.HeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("keras: %w", err)
	}
	var mj modelJSON
	if err := json.Unmarshal(raw, &mj); err != nil {
		return nil, fmt.Errorf("keras: %s is not a TensorFlow.js model.json: %w", file, err)
	}
	if mj.Format != "" && mj.Format != "layers-model" {
		return nil, fmt.Errorf("keras: %s is a TensorFlow.js %q; only layers models (Keras) are supported", file, mj.Format)
	}
	layers, err := parseTopology(mj.ModelTopology)
	if err != nil {
		return nil, fmt.Errorf("keras: %s: %w", file, err)
	}
	weights, err := readWeights(filepath.Dir(file), &mj)
	if err != nil {
		return nil, fmt.Errorf("keras: %s: %w", file, err)
	}
	m, err := convert(layers, weights)
	if err != nil {
		return nil, fmt.Errorf("keras: %s: %w", file, err)
	}
	m.Classes, err = readLabels(filepath.Dir(file), m.Config.Classes())
	if err != nil {
		return nil, fmt.Errorf("keras: %w", err)
	}
	return m, nil
}

func parseTopology(raw json.RawMessage) ([]layer, error) {
	var top struct {
		ModelConfig *struct {
			Config struct {
				Layers []layer `json:"layers"`
			} `json:"config"`
		} `json:"model_config"`
		Config *struct {
			Layers []layer `json:"layers"`
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("bad modelTopology: %w", err)
	}
	var ls []layer
	switch {
	case top.ModelConfig != nil:
		ls = top.ModelConfig.Config.Layers
	case top.Config != nil:
		ls = top.Config.Layers
	}
	if len(ls) == 0 {
		return nil, errors.New("modelTopology has no layers")
	}
	return ls, nil
}

// readWeights reads every shard group of the manifest and cuts it into the
// named tensors (Keras layouts), once shardSizes has measured the shards.
func readWeights(dir string, mj *modelJSON) (map[string]*tensor.Tensor, error) {
	sizes, err := shardSizes(dir, mj)
	if err != nil {
		return nil, err
	}
	out := map[string]*tensor.Tensor{}
	for gi, g := range mj.Manifest {
		buf := make([]byte, 0, sum(sizes[gi]))
		for pi, p := range g.Paths {
			// Each shard within the size it had when it was measured (one
			// that has grown since is refused), so that the group stays
			// within its slice and all within the estimate.
			b, err := limits.ReadFile(filepath.Join(dir, p), sizes[gi][pi])
			if err != nil {
				return nil, fmt.Errorf("weight shard: %w", err)
			}
			buf = append(buf, b...)
		}
		need := 0
		for _, w := range g.Weights {
			if w.DType != "float32" || len(w.Quantization) > 0 {
				return nil, fmt.Errorf("weight %s is %s%s; only unquantised float32 is supported", w.Name, w.DType, map[bool]string{true: " (quantised)"}[len(w.Quantization) > 0])
			}
			var shape []int // none: a scalar, as encoding/json read it
			if len(w.Shape) > 0 {
				var err error
				var wide *limits.WideDimensionError
				if shape, err = limits.ParseShape(w.Shape); errors.As(err, &wide) {
					// Empty, as a shape an int holds is refused below: a
					// 32-bit platform would name the wide dimension
					// where a 64-bit one names the zero.
					return nil, emptyDimension(w.Name, wide.Shape)
				}
				if err != nil {
					return nil, fmt.Errorf("weight %s: %w", w.Name, err)
				}
			}
			if err := limits.CheckElements("weight "+w.Name, shape...); err != nil {
				return nil, err
			}
			n := tensor.NumElements(shape)
			if slices.Contains(shape, 0) { // CheckElements refused a negative one
				return nil, emptyDimension(w.Name, shape)
			}
			if int64(need)+4*int64(n) > int64(len(buf)) { // past a 32-bit int for a group over 1 GiB
				return nil, fmt.Errorf("weight group %d: its shards hold %d bytes, but the manifest needs more (truncated shard?) at %s", gi, len(buf), w.Name)
			}
			t := tensor.New(shape...)
			for i := range t.Data {
				t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[need+4*i:]))
			}
			need += 4 * n
			name := strings.TrimSuffix(w.Name, ":0")
			if _, dup := out[name]; dup {
				return nil, fmt.Errorf("weight %s appears twice in the manifest", name)
			}
			out[name] = t
		}
		if need != len(buf) {
			return nil, fmt.Errorf("weight group %d: its shards hold %d bytes, the manifest describes %d", gi, len(buf), need)
		}
	}
	return out, nil
}

// shardSizes returns the bytes of each weight group's shards, [group]
// [shard], as their files hold them now (0 for what is no regular file,
// which limits.ReadFile then refuses), before any is read: it refuses a
// path that leaves dir, a missing shard, shards past limits.TotalBytes in
// all, and shards that need more memory than is available
// (limits.CheckMemory): all of them decoded to float32 tensors, and the
// largest group's also joined in one slice before they are decoded. On a
// 32-bit platform that is at most 2³¹−1 bytes, which also bounds a
// group's slice: a group under 2 GiB exhausted the address space there
// as its shards were joined.
func shardSizes(dir string, mj *modelJSON) ([][]int64, error) {
	sizes := make([][]int64, len(mj.Manifest))
	total, largest := int64(0), int64(0)
	for gi, g := range mj.Manifest {
		for _, p := range g.Paths {
			if filepath.Base(p) != p || p == "." || p == ".." {
				return nil, fmt.Errorf("weight shard path %q leaves the model's folder", p)
			}
			st, err := os.Stat(filepath.Join(dir, p))
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("weight shard %s, listed in model.json's weightsManifest, is missing: %w", p, err)
			}
			if err != nil {
				return nil, fmt.Errorf("weight shard: %w", err)
			}
			n := int64(0)
			if st.Mode().IsRegular() {
				n = st.Size()
			}
			if n > limits.TotalBytes-total {
				return nil, fmt.Errorf("weight shards hold more than the %d bytes allowed in all (limits.TotalBytes), at %s of %d bytes", limits.TotalBytes, p, n)
			}
			total += n
			sizes[gi] = append(sizes[gi], n)
		}
		largest = max(largest, sum(sizes[gi]))
	}
	what := fmt.Sprintf("reading %d bytes of weights (%d in the largest group, joined before it is decoded)", total, largest)
	if err := limits.CheckMemory(what, total+largest); err != nil {
		return nil, err
	}
	return sizes, nil
}

// sum adds up a group's shard sizes.
func sum(sizes []int64) int64 {
	s := int64(0)
	for _, n := range sizes {
		s += n
	}
	return s
}

// emptyDimension is readWeights' error for a weight whose shape (ints,
// or *big.Ints where an int cannot hold one) has a zero dimension: a
// TensorFlow.js model holds no empty weight.
func emptyDimension(name string, shape any) error {
	return fmt.Errorf("weight %s has shape %v, with an empty dimension", name, shape)
}

// readLabels reads labels.json ({"0": "tench", ...}) from the model's
// folder or the package's assets folder; none is not an error.
func readLabels(dir string, classes int) ([]string, error) {
	for _, p := range []string{filepath.Join(dir, "labels.json"), filepath.Join(dir, "..", "assets", "labels.json")} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		raw, err := limits.ReadFile(p, limits.HeaderBytes)
		if err != nil {
			return nil, err
		}
		var m map[string]string
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		names := make([]string, classes)
		for k, v := range m {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= classes {
				return nil, fmt.Errorf("%s: label key %q is not a class index below %d", p, k, classes)
			}
			names[i] = v
		}
		for i, n := range names {
			if n == "" {
				names[i] = strconv.Itoa(i)
			}
		}
		return names, nil
	}
	return nil, nil
}

// blockName matches the convolutions of keras.applications' ResNets:
// res{stage}{block}_branch{1|2a|2b|2c}.
var blockName = regexp.MustCompile(`^res([2-5])([a-z]+)_branch(1|2a|2b|2c)$`)

// known lists the Keras layer classes a ResNet is made of.
var known = map[string]bool{"InputLayer": true, "ZeroPadding2D": true, "Conv2D": true, "BatchNormalization": true,
	"Activation": true, "MaxPooling2D": true, "Add": true, "GlobalAveragePooling2D": true, "AveragePooling2D": true,
	"Flatten": true, "Dense": true}

// convert checks that the topology is a v1 ResNet residual can build and
// maps its weights onto torchvision's names.
func convert(layers []layer, w map[string]*tensor.Tensor) (*Model, error) {
	byName := map[string]layer{}
	blocks := map[int]map[string]bool{}
	var dense []layer
	eps := 0.0
	for _, l := range layers {
		if !known[l.ClassName] {
			return nil, fmt.Errorf("layer %s is a %s, which a Keras ResNet does not have; only %s are supported", l.Name, l.ClassName, strings.Join(sortedKeys(known), ", "))
		}
		if l.Config.DataFormat != "" && l.Config.DataFormat != "channels_last" {
			return nil, fmt.Errorf("layer %s is %s; only channels_last is supported", l.Name, l.Config.DataFormat)
		}
		byName[l.Name] = l
		switch l.ClassName {
		case "Activation":
			if l.Config.Activation != "relu" {
				return nil, fmt.Errorf("layer %s applies %q; a ResNet uses relu", l.Name, l.Config.Activation)
			}
		case "BatchNormalization":
			if e := l.Config.Epsilon; !(e > 0) || math.IsInf(e, 0) {
				return nil, fmt.Errorf("batch norm %s has epsilon %g; it must be positive and finite", l.Name, e)
			}
			if eps != 0 && l.Config.Epsilon != eps {
				return nil, fmt.Errorf("batch norms use different epsilons (%g and %g at %s)", eps, l.Config.Epsilon, l.Name)
			}
			eps = l.Config.Epsilon
		case "Dense":
			dense = append(dense, l)
		case "Conv2D":
			if m := blockName.FindStringSubmatch(l.Name); m != nil {
				s, _ := strconv.Atoi(m[1])
				if blocks[s] == nil {
					blocks[s] = map[string]bool{}
				}
				blocks[s][m[2]] = true
			} else if l.Name != "conv1" {
				return nil, fmt.Errorf("convolution %s is not one of a Keras ResNet (conv1, res{2..5}{a,b,...}_branch{1,2a,2b,2c})", l.Name)
			}
		}
	}
	if len(dense) != 1 {
		return nil, fmt.Errorf("a ResNet has one Dense classifier, this model has %d", len(dense))
	}
	if _, ok := byName["conv1"]; !ok {
		return nil, errors.New("no conv1 layer: not a keras.applications ResNet")
	}
	c, err := resnet.Preset("resnet50")
	if err != nil {
		return nil, err
	}
	c.Layers = nil
	for s := 2; s <= 5; s++ {
		n := len(blocks[s])
		for i := 0; i < n; i++ {
			if !blocks[s][string(rune('a'+i))] {
				return nil, fmt.Errorf("stage %d has %d blocks but no block %q", s, n, string(rune('a'+i)))
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("stage %d has no blocks", s)
		}
		c.Layers = append(c.Layers, n)
	}
	if _, ok := byName["res2a_branch2c"]; !ok {
		return nil, errors.New("no res2a_branch2c: only bottleneck ResNets (50, 101, 152) are supported")
	}
	c.StrideOn1x1 = stride(byName["res3a_branch2a"]) == 2
	if !c.StrideOn1x1 && stride(byName["res3a_branch2b"]) != 2 {
		return nil, errors.New("res3a downsamples on neither its 1×1 nor its 3×3 convolution")
	}
	if err := checkGraph(byName, c, dense[0]); err != nil {
		return nil, err
	}
	if eps != 1e-5 {
		c.BNEps = eps
	}
	kernel := w[dense[0].Name+"/kernel"]
	switch {
	case kernel == nil:
		return nil, fmt.Errorf("the weights manifest has no kernel for the classifier %s (%s/kernel)", dense[0].Name, dense[0].Name)
	case kernel.Rank() != 2 || kernel.Shape[0] != 2048:
		return nil, fmt.Errorf("classifier %s has kernel %v; want [2048, classes]", dense[0].Name, kernel.Shape)
	case kernel.Shape[1] > limits.Classes:
		return nil, fmt.Errorf("classifier %s has %d classes, more than %d (limits.Classes)", dense[0].Name, kernel.Shape[1], limits.Classes)
	}
	c.Classes = kernel.Shape[1]
	depth := 3*(c.Layers[0]+c.Layers[1]+c.Layers[2]+c.Layers[3]) + 2

	st := map[string]*tensor.Tensor{}
	used := map[string]bool{}
	take := func(name string) (*tensor.Tensor, error) {
		t, ok := w[name]
		if !ok {
			return nil, fmt.Errorf("the weights have no %s", name)
		}
		used[name] = true
		return t, nil
	}
	// convBN maps a Keras conv and the batch norm after it.
	convBN := func(kconv, kbn, tconv, tbn string) error {
		k, err := take(kconv + "/kernel")
		if err != nil {
			return err
		}
		if ks := byName[kconv].Config.KernelSize; k.Rank() != 4 || len(ks) != 2 || k.Shape[0] != ks[0] || k.Shape[1] != ks[1] {
			return fmt.Errorf("%s/kernel has shape %v; want HWIO with the layer's %v kernel", kconv, k.Shape, ks)
		}
		st[tconv+".weight"] = tensor.HWIOToOIHW(k)
		for kn, tn := range map[string]string{"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"} {
			t, err := take(kbn + "/" + kn)
			if err != nil {
				return err
			}
			st[tbn+"."+tn] = t.Clone()
		}
		if byName[kconv].Config.UseBias != nil && *byName[kconv].Config.UseBias {
			b, err := take(kconv + "/bias")
			if err != nil {
				return err
			}
			mean := st[tbn+".running_mean"]
			if b.Len() != mean.Len() {
				return fmt.Errorf("%s/bias has %d values for %d channels", kconv, b.Len(), mean.Len())
			}
			for i, v := range b.Data {
				mean.Data[i] -= v
			}
		}
		return nil
	}
	if err := convBN("conv1", "bn_conv1", "conv1", "bn1"); err != nil {
		return nil, err
	}
	for s := 2; s <= 5; s++ {
		for i := 0; i < c.Layers[s-2]; i++ {
			kb := fmt.Sprintf("%d%c", s, 'a'+i)
			tb := fmt.Sprintf("layer%d.%d", s-1, i)
			for j, br := range []string{"2a", "2b", "2c"} {
				if err := convBN("res"+kb+"_branch"+br, "bn"+kb+"_branch"+br, fmt.Sprintf("%s.conv%d", tb, j+1), fmt.Sprintf("%s.bn%d", tb, j+1)); err != nil {
					return nil, err
				}
			}
			if _, ok := byName["res"+kb+"_branch1"]; ok {
				if err := convBN("res"+kb+"_branch1", "bn"+kb+"_branch1", tb+".downsample.0", tb+".downsample.1"); err != nil {
					return nil, err
				}
			}
		}
	}
	k, _ := take(dense[0].Name + "/kernel")
	st["fc.weight"] = tensor.Transpose2D(k)
	b, err := take(dense[0].Name + "/bias")
	if err != nil {
		return nil, err
	}
	st["fc.bias"] = b.Clone()
	var extra []string
	for n := range w {
		if !used[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, fmt.Errorf("%d weights belong to no layer of the ResNet: %s", len(extra), strings.Join(extra, ", "))
	}
	m := &Model{Config: models.Config{Name: fmt.Sprintf("keras-resnet%d", depth), Arch: &models.ResNet{Config: c}}, State: st, Preprocess: CaffePreprocess()}
	if err := m.Config.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func stride(l layer) int {
	if len(l.Config.Strides) == 0 {
		return 1
	}
	return l.Config.Strides[0]
}

func sortedKeys(m map[string]bool) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
