package keras

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/residual-nn/residual/models/resnet"
)

// checkGraph checks that the layers compute the ResNet of config c, as
// convert built it from the layers' names: it follows the inbound nodes
// back from the classifier, block by block, to the input, and checks each
// layer's class and every setting that changes what it computes (kernel
// sizes, strides, paddings, dilations, pooling, activations, the
// channels of the input). A model.json that renames nothing but pools
// differently, adds a branch to itself or pads otherwise would otherwise
// import as another network than it is.
func checkGraph(byName map[string]layer, c resnet.Config, dense layer) error {
	g := graph{byName}
	if a := dense.Config.Activation; a != "" && a != "linear" && a != "softmax" {
		return fmt.Errorf("classifier %s applies %q; a ResNet's is softmax (left out: the model returns logits) or linear", dense.Name, a)
	}
	x, err := g.input(dense)
	if err != nil {
		return err
	}
	switch x.ClassName {
	case "GlobalAveragePooling2D":
	case "Flatten": // a 7×7 average pool of 224-pixel images' 7×7 map, as the first keras.applications releases ended (their stem, without pool1_pad, is refused below)
		if x, err = g.input(x); err != nil {
			return err
		}
		if x.ClassName != "AveragePooling2D" || !slices.Equal(x.Config.PoolSize, []int{7, 7}) {
			return fmt.Errorf("layer %s (%s, pool size %v) before the classifier's Flatten: want a 7×7 AveragePooling2D", x.Name, x.ClassName, x.Config.PoolSize)
		}
	default:
		return fmt.Errorf("layer %s before the classifier is a %s; want GlobalAveragePooling2D", x.Name, x.ClassName)
	}
	if x, err = g.input(x); err != nil {
		return err
	}
	for s := 5; s >= 2; s-- {
		for b := c.Layers[s-2] - 1; b >= 0; b-- {
			if x, err = g.block(x, s, b, c.StrideOn1x1); err != nil {
				return err
			}
		}
	}
	return g.stem(x)
}

// graph resolves the layers' inbound nodes by name.
type graph struct{ byName map[string]layer }

// inputs returns the layers l reads, from its first inbound node: the
// [["name", node, tensor, kwargs], …] of a TensorFlow.js layers model.
func (g graph) inputs(l layer) ([]layer, error) {
	var nodes [][][]json.RawMessage
	if err := json.Unmarshal(l.InboundNodes, &nodes); err != nil || len(nodes) != 1 {
		return nil, fmt.Errorf("layer %s: its inbound_nodes are not one call of named inputs (%s)", l.Name, l.InboundNodes)
	}
	var in []layer
	for _, ref := range nodes[0] {
		var name string
		if len(ref) == 0 || json.Unmarshal(ref[0], &name) != nil {
			return nil, fmt.Errorf("layer %s: an inbound node does not name its layer", l.Name)
		}
		src, ok := g.byName[name]
		if !ok {
			return nil, fmt.Errorf("layer %s reads %q, which the model does not have", l.Name, name)
		}
		in = append(in, src)
	}
	return in, nil
}

// input returns the one layer l reads.
func (g graph) input(l layer) (layer, error) {
	in, err := g.inputs(l)
	if err == nil && len(in) != 1 {
		err = fmt.Errorf("layer %s reads %d inputs; want one", l.Name, len(in))
	}
	if err != nil {
		return layer{}, err
	}
	return in[0], nil
}

// block checks block b of stage s (keras' res{s}{a+b}), given its output
// x (the ReLU after the Add), and returns its input.
func (g graph) block(x layer, s, b int, strideOn1x1 bool) (layer, error) {
	kb := fmt.Sprintf("%d%c", s, 'a'+b)
	if err := relu(x); err != nil {
		return layer{}, fmt.Errorf("block res%s's output: %w", kb, err)
	}
	add, err := g.input(x)
	if err != nil {
		return layer{}, err
	}
	sum, err := g.inputs(add)
	if err != nil {
		return layer{}, err
	}
	if add.ClassName != "Add" || len(sum) != 2 {
		return layer{}, fmt.Errorf("layer %s before block res%s's ReLU is a %s of %d inputs; want the Add of the block's two branches", add.Name, kb, add.ClassName, len(sum))
	}
	main, short := sum[0], sum[1]
	if short.Name == "bn"+kb+"_branch2c" {
		main, short = short, main
	}
	if main.Name != "bn"+kb+"_branch2c" {
		return layer{}, fmt.Errorf("block res%s's Add reads %s and %s; want bn%s_branch2c and the shortcut", kb, sum[0].Name, sum[1].Name, kb)
	}
	stride := 1
	if s > 2 && b == 0 {
		stride = 2
	}
	s2a, s2b := stride, 1
	if !strideOn1x1 {
		s2a, s2b = 1, stride
	}
	if s2b == 2 {
		return layer{}, fmt.Errorf("res%s_branch2b downsamples with padding same, which TensorFlow pads asymmetrically (0 before, 1 after) where residual's ResNets pad 1 on every side; only models that downsample on the 1×1 convolution (keras.applications') are supported", kb)
	}
	// The main branch, backwards: bn 2c ← 1×1 ← ReLU ← bn 2b ← 3×3 ← ReLU ← bn 2a ← 1×1.
	in := main
	for i, br := range []struct {
		name   string
		k, s   int
		padded string
	}{{"2c", 1, 1, "valid"}, {"2b", 3, s2b, "same"}, {"2a", 1, s2a, "valid"}} {
		if i > 0 {
			if err := relu(in); err != nil {
				return layer{}, fmt.Errorf("block res%s, before bn%s_branch%s: %w", kb, kb, []string{"", "2b", "2a"}[i], err)
			}
			if in, err = g.input(in); err != nil {
				return layer{}, err
			}
		}
		if in, err = g.convBN(in, "res"+kb+"_branch"+br.name, "bn"+kb+"_branch"+br.name, br.k, br.s, br.padded); err != nil {
			return layer{}, err
		}
	}
	blockIn := in
	if short.Name == "bn"+kb+"_branch1" {
		if b != 0 {
			return layer{}, fmt.Errorf("block res%s has a projection shortcut (branch1); only a stage's first block has one", kb)
		}
		if in, err = g.convBN(short, "res"+kb+"_branch1", "bn"+kb+"_branch1", 1, stride, "valid"); err != nil {
			return layer{}, err
		}
		if in.Name != blockIn.Name {
			return layer{}, fmt.Errorf("block res%s's branches read %s and %s; want one input", kb, blockIn.Name, in.Name)
		}
	} else if b == 0 || short.Name != blockIn.Name {
		return layer{}, fmt.Errorf("block res%s's Add reads %s as its shortcut; want %s", kb, short.Name, map[bool]string{true: "bn" + kb + "_branch1", false: blockIn.Name + " (the block's input)"}[b == 0])
	}
	return blockIn, nil
}

// convBN checks that bnLayer is the batch norm named bn of the convolution
// named conv (k×k, stride s, padding pad, no dilation) and returns the
// convolution's input.
func (g graph) convBN(bnLayer layer, conv, bn string, k, s int, pad string) (layer, error) {
	if bnLayer.Name != bn || bnLayer.ClassName != "BatchNormalization" {
		return layer{}, fmt.Errorf("layer %s (%s) where %s, a BatchNormalization, belongs", bnLayer.Name, bnLayer.ClassName, bn)
	}
	if a := bnLayer.Config.Axis; a != nil && !channelAxis(a) {
		return layer{}, fmt.Errorf("batch norm %s normalises axis %s; want the channels' (3)", bn, a)
	}
	cl, err := g.input(bnLayer)
	if err != nil {
		return layer{}, err
	}
	if cl.Name != conv || cl.ClassName != "Conv2D" {
		return layer{}, fmt.Errorf("batch norm %s reads %s (%s); want the Conv2D %s", bn, cl.Name, cl.ClassName, conv)
	}
	if err := checkConv(cl, k, s, pad); err != nil {
		return layer{}, err
	}
	return g.input(cl)
}

// channelAxis reports whether a batch norm's axis, a number or a list of
// one, is the channels' of NHWC: 3 or -1.
func channelAxis(raw json.RawMessage) bool {
	var a int
	var as []int
	if json.Unmarshal(raw, &a) != nil {
		if json.Unmarshal(raw, &as) != nil || len(as) != 1 {
			return false
		}
		a = as[0]
	}
	return a == 3 || a == -1
}

// checkConv checks a convolution's kernel size, stride, padding,
// dilation and activation.
func checkConv(l layer, k, s int, pad string) error {
	c := l.Config
	strides := c.Strides
	if strides == nil {
		strides = []int{1, 1}
	}
	switch {
	case !slices.Equal(c.KernelSize, []int{k, k}):
		return fmt.Errorf("convolution %s has kernel size %v; this ResNet's is %d×%d", l.Name, c.KernelSize, k, k)
	case !slices.Equal(strides, []int{s, s}):
		return fmt.Errorf("convolution %s has strides %v; this ResNet's are %d×%d", l.Name, strides, s, s)
	case c.Padding != pad:
		return fmt.Errorf("convolution %s has padding %v; this ResNet's is %q", l.Name, c.Padding, pad)
	case c.DilationRate != nil && !slices.Equal(c.DilationRate, []int{1, 1}):
		return fmt.Errorf("convolution %s has dilation %v; a ResNet's is 1", l.Name, c.DilationRate)
	case c.Activation != "" && c.Activation != "linear":
		return fmt.Errorf("convolution %s applies %q itself; a ResNet's batch norm comes first", l.Name, c.Activation)
	}
	return nil
}

// stem checks the layers from the max pool (x) back to the input:
// ZeroPadding2D 3 ← Conv2D 7×7 /2 ← BN ← ReLU ← ZeroPadding2D 1 ←
// MaxPooling2D 3×3 /2, read backwards, as torchvision's stem computes.
func (g graph) stem(x layer) error {
	strides := x.Config.Strides
	if strides == nil { // Keras' default: the pool size
		strides = x.Config.PoolSize
	}
	if x.ClassName != "MaxPooling2D" || !slices.Equal(x.Config.PoolSize, []int{3, 3}) || !slices.Equal(strides, []int{2, 2}) || x.Config.Padding != "valid" {
		return fmt.Errorf("layer %s before res2a is a %s (pool size %v, strides %v, padding %v); want a 3×3 MaxPooling2D of stride 2, padding valid after a ZeroPadding2D of 1",
			x.Name, x.ClassName, x.Config.PoolSize, x.Config.Strides, x.Config.Padding)
	}
	pad, err := g.input(x)
	if err != nil {
		return err
	}
	if err := zeroPadding(pad, 1); err != nil {
		return fmt.Errorf("before the max pool %s: %w (without it the pool's output differs from torchvision's)", x.Name, err)
	}
	r, err := g.input(pad)
	if err != nil {
		return err
	}
	if err := relu(r); err != nil {
		return fmt.Errorf("after bn_conv1: %w", err)
	}
	bn, err := g.input(r)
	if err != nil {
		return err
	}
	in, err := g.convBN(bn, "conv1", "bn_conv1", 7, 2, "valid")
	if err != nil {
		return err
	}
	if err := zeroPadding(in, 3); err != nil {
		return fmt.Errorf("before conv1: %w", err)
	}
	if in, err = g.input(in); err != nil {
		return err
	}
	if in.ClassName != "InputLayer" {
		return fmt.Errorf("conv1's padding reads %s (%s); want the InputLayer", in.Name, in.ClassName)
	}
	if shape := in.Config.BatchInputShape; len(shape) != 4 || shape[3] == nil || *shape[3] != 3 {
		return fmt.Errorf("input %s has shape %s; want [batch, height, width, 3] (RGB)", in.Name, shapeText(shape))
	}
	return nil
}

// zeroPadding checks that l pads p pixels on every side: padding p,
// [p, p] or [[p, p], [p, p]].
func zeroPadding(l layer, p int) error {
	ok := false
	switch v := l.Config.Padding.(type) {
	case float64:
		ok = v == float64(p)
	case []any:
		ok = len(v) == 2
		for _, e := range v {
			switch e := e.(type) {
			case float64:
				ok = ok && e == float64(p)
			case []any:
				ok = ok && len(e) == 2 && e[0] == float64(p) && e[1] == float64(p)
			default:
				ok = false
			}
		}
	}
	if l.ClassName != "ZeroPadding2D" || !ok {
		return fmt.Errorf("layer %s is a %s with padding %v; want a ZeroPadding2D of %d on every side", l.Name, l.ClassName, l.Config.Padding, p)
	}
	return nil
}

// relu checks that l is a ReLU activation layer.
func relu(l layer) error {
	if l.ClassName != "Activation" || l.Config.Activation != "relu" {
		return fmt.Errorf("layer %s is a %s (%q); want a relu Activation", l.Name, l.ClassName, l.Config.Activation)
	}
	return nil
}

// shapeText writes a batch_input_shape, null dimensions as "null".
func shapeText(s []*int) string {
	b, _ := json.Marshal(s)
	return string(b)
}
