// Package resnet builds residual networks and their plain counterparts:
// the ImageNet ResNets of torchvision, the CIFAR ResNets of He et al. 2015,
// the pre-activation ResNets of He et al. 2016, and any variant between
// them (block ordering, bottleneck stride, shortcut option, branch scale).
//
// Parameter names are torchvision's state_dict keys (conv1.weight,
// layer1.0.bn2.running_var, layer2.0.downsample.0.weight, fc.bias), so
// weights move one to one between residual and PyTorch.
package resnet

import (
	"errors"
	"fmt"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Ordering is the order of the layers in a block (He et al. 2016, Fig. 4).
type Ordering string

// The block orderings.
const (
	PostActivation Ordering = "post"            // (a) original: …-BN, add, ReLU
	BNAfterAdd     Ordering = "bn-after-add"    // (b) …-conv, add, BN, ReLU
	ReLUBeforeAdd  Ordering = "relu-before-add" // (c) …-BN-ReLU, add
	ReLUOnlyPreAct Ordering = "relu-preact"     // (d) ReLU-conv-BN-…, add
	PreActivation  Ordering = "preact"          // (e) full pre-activation: BN-ReLU-conv-…, add
)

// Shortcut is the shortcut option of He et al. 2015.
type Shortcut string

// The shortcut options.
const (
	// ShortcutA subsamples and zero-pads channels where the shape changes
	// (no parameters).
	ShortcutA Shortcut = "A"
	// ShortcutB projects (1×1 conv + BN) where the shape changes.
	ShortcutB Shortcut = "B"
	// ShortcutC projects on every block.
	ShortcutC Shortcut = "C"
)

// Config describes a network. Use a preset (Preset) and change what
// differs.
type Config struct {
	Block  string `json:"block"`  // "basic" or "bottleneck"
	Layers []int  `json:"layers"` // blocks per stage (at most 4 stages)
	// Widths per stage: a basic block's output width, a bottleneck's inner
	// width (its output is 4×).
	Widths []int `json:"widths"`
	// Stem is "imagenet" (7×7 stride-2 conv, BN, ReLU, 3×3 stride-2 max
	// pool) or "cifar" (3×3 conv; BN and ReLU unless pre-activated).
	Stem      string   `json:"stem"`
	StemWidth int      `json:"stem_width"`
	Ordering  Ordering `json:"ordering"`
	Shortcut  Shortcut `json:"shortcut"`
	// StrideOn1x1 puts a bottleneck's stride on its first 1×1 conv (the
	// paper's v1) instead of the 3×3 (torchvision's v1.5).
	StrideOn1x1 bool `json:"stride_on_1x1,omitempty"`
	// Plain removes every skip connection (He et al.'s plain networks).
	Plain bool `json:"plain,omitempty"`
	// BranchScale multiplies every residual branch (0 means 1).
	BranchScale float32 `json:"branch_scale,omitempty"`
	// ZeroInitResidual sets to zero the γ of the BN that ends each branch
	// (orderings a, c, d), so each block starts as the identity.
	ZeroInitResidual bool `json:"zero_init_residual,omitempty"`
	// BNEps is the ε of every batch norm (0 means PyTorch's 1e-5; Keras
	// models use 1e-3).
	BNEps      float64 `json:"bn_eps,omitempty"`
	Classes    int     `json:"classes"`
	InChannels int     `json:"in_channels"`
}

// Net is a residual (or plain) network for image classification. It maps
// NHWC images to class logits.
type Net struct {
	Conv1  *nn.Conv2d
	BN1    *nn.BatchNorm // nil when the blocks pre-activate a CIFAR stem
	Layer1 []nn.Layer
	Layer2 []nn.Layer
	Layer3 []nn.Layer
	Layer4 []nn.Layer
	BN     *nn.BatchNorm // the final BN of a fully pre-activated network
	FC     *nn.Linear

	Config Config `nn:"-"`
	// Lesion lists blocks (stage, index from 0) that Forward skips — for
	// the lesion study of Veit et al. 2016. A deleted block passes its
	// input through its shortcut only.
	Lesion map[[2]int]bool `nn:"-"`
}

// Stages returns the non-empty stages (layer1…layer4) in order, each its
// blocks; the slices are the network's own, so editing them edits the net.
func (n *Net) Stages() [][]nn.Layer {
	var s [][]nn.Layer
	for _, l := range [][]nn.Layer{n.Layer1, n.Layer2, n.Layer3, n.Layer4} {
		if len(l) > 0 {
			s = append(s, l)
		}
	}
	return s
}

// Forward maps images x [N,H,W,C] to logits [N,Classes].
func (n *Net) Forward(x *ag.Value) *ag.Value {
	return n.FC.Forward(n.Features(x))
}

// Features returns the pooled features [N,C] before the classifier.
func (n *Net) Features(x *ag.Value) *ag.Value {
	if n.BN1 != nil {
		x = ag.ReLU(n.BN1.Forward(n.Conv1.Forward(x)))
	} else {
		x = n.Conv1.Forward(x)
	}
	if n.Config.Stem == "imagenet" {
		x = nn.NewMaxPool2d(3, 2, 1).Forward(x)
	}
	for si, stage := range n.Stages() {
		for bi, b := range stage {
			if n.Lesion[[2]int{si, bi}] {
				x = shortcutOnly(b, x)
				continue
			}
			x = b.Forward(x)
		}
	}
	switch {
	case n.BN != nil:
		x = ag.ReLU(n.BN.Forward(x))
	case n.Config.Ordering == ReLUOnlyPreAct:
		x = ag.ReLU(x)
	}
	return ag.GlobalAvgPool(x)
}

// shortcutOnly applies only the shortcut of block b (the block is deleted).
func shortcutOnly(b nn.Layer, x *ag.Value) *ag.Value {
	j := JoinOf(b)
	if j == nil || j.Downsample == nil {
		return x
	}
	// A pre-activation block's projection takes relu(bn1(x)), as in its
	// Forward (shortcutInput); the raw x made a deleted block another
	// network than its shortcut alone.
	switch v := b.(type) {
	case *PreActBlock:
		return j.Downsample.Forward(j.shortcutInput(x, ag.ReLU(v.BN1.Forward(x))))
	case *PreActBottleneck:
		return j.Downsample.Forward(j.shortcutInput(x, ag.ReLU(v.BN1.Forward(x))))
	}
	return j.Downsample.Forward(x)
}

// JoinOf returns the Join of a block built by this package (nil for
// others), to set its Route or inspect its shortcut.
func JoinOf(b nn.Layer) *Join {
	switch v := b.(type) {
	case *BasicBlock:
		return &v.Join
	case *BNAfterAddBlock:
		return &v.Join
	case *ReLUBeforeAddBlock:
		return &v.Join
	case *ReLUPreActBlock:
		return &v.Join
	case *PreActBlock:
		return &v.Join
	case *Bottleneck:
		return &v.Join
	case *PreActBottleneck:
		return &v.Join
	}
	return nil
}

// Validate reports a config that describes no network.
func (c Config) Validate() error {
	switch {
	case c.Block != "basic" && c.Block != "bottleneck":
		return fmt.Errorf("resnet: block %q (basic or bottleneck)", c.Block)
	case len(c.Layers) == 0 || len(c.Layers) > 4 || len(c.Widths) != len(c.Layers):
		return fmt.Errorf("resnet: need 1 to 4 stages with a width each, got layers %v widths %v", c.Layers, c.Widths)
	case c.Stem != "imagenet" && c.Stem != "cifar":
		return fmt.Errorf("resnet: stem %q (imagenet or cifar)", c.Stem)
	case c.StemWidth < 1 || c.Classes < 1 || c.InChannels < 1:
		return fmt.Errorf("resnet: stem width, classes and input channels must be positive: %+v", c)
	case c.Shortcut != ShortcutA && c.Shortcut != ShortcutB && c.Shortcut != ShortcutC:
		return fmt.Errorf("resnet: shortcut %q (A, B or C)", c.Shortcut)
	case c.Block == "bottleneck" && c.Ordering != PostActivation && c.Ordering != PreActivation:
		return fmt.Errorf("resnet: bottleneck blocks come post- or pre-activated, not %q", c.Ordering)
	}
	switch c.Ordering {
	case PostActivation, BNAfterAdd, ReLUBeforeAdd, ReLUOnlyPreAct, PreActivation:
	default:
		return fmt.Errorf("resnet: unknown ordering %q", c.Ordering)
	}
	for i, l := range c.Layers {
		if l < 1 || c.Widths[i] < 1 {
			return fmt.Errorf("resnet: stage %d has %d blocks of width %d", i+1, l, c.Widths[i])
		}
	}
	return nil
}

// New builds the network with torchvision's initialisation: He normal
// (fan-out) convolutions, BN γ = 1 and β = 0, PyTorch's default for the
// classifier, drawn from rng. A config that Validate refuses and a nil rng
// are errors.
func New(c Config, rng *tensor.RNG) (*Net, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if rng == nil {
		return nil, errors.New("resnet: no RNG for the initial weights (nil; tensor.NewRNG(seed) makes one)")
	}
	pre := c.Ordering == PreActivation || c.Ordering == ReLUOnlyPreAct
	n := &Net{Config: c}
	if c.Stem == "imagenet" {
		n.Conv1 = conv(rng, c.InChannels, c.StemWidth, 7, 2)
	} else {
		n.Conv1 = conv(rng, c.InChannels, c.StemWidth, 3, 1)
	}
	if c.Stem == "imagenet" || !pre {
		n.BN1 = c.batchNorm(c.StemWidth)
	}
	in := c.StemWidth
	expansion := 1
	if c.Block == "bottleneck" {
		expansion = 4
	}
	stages := []*[]nn.Layer{&n.Layer1, &n.Layer2, &n.Layer3, &n.Layer4}
	for s, count := range c.Layers {
		for i := 0; i < count; i++ {
			stride := 1
			if s > 0 && i == 0 {
				stride = 2
			}
			b := NewBlock(rng, c, in, c.Widths[s], stride)
			*stages[s] = append(*stages[s], b)
			in = c.Widths[s] * expansion
		}
	}
	if c.Ordering == PreActivation {
		n.BN = c.batchNorm(in)
	}
	n.FC = nn.NewLinear(rng, in, c.Classes, true)
	nn.Name(n)
	return n, nil
}

func conv(rng *tensor.RNG, in, out, k, stride int) *nn.Conv2d {
	c := nn.NewConv2d(rng, in, out, k, nn.ConvOptions{Stride: stride, Padding: k / 2})
	nn.HeNormal(rng, c, nn.FanOut)
	return c
}

// NewBlock builds one block of the config's kind (block type, ordering,
// shortcut option, branch scale) from in channels at the given stride; width
// is a basic block's output width or a bottleneck's inner width. It checks
// nothing: c must pass Validate, and rng, the sizes and the stride must be
// usable; it panics otherwise (an ordering Validate refuses for the
// block, naming it).
func NewBlock(rng *tensor.RNG, c Config, in, width, stride int) nn.Layer {
	out := width
	if c.Block == "bottleneck" {
		out = 4 * width
	}
	pre := c.Ordering == PreActivation
	j := Join{Plain: c.Plain, Scale: c.BranchScale}
	if !c.Plain {
		j.Downsample = shortcut(rng, c, in, out, stride, pre)
	}
	bn := c.batchNorm
	var last *nn.BatchNorm
	var b nn.Layer
	if c.Block == "bottleneck" {
		if !pre && c.Ordering != PostActivation {
			// It built a post-activation bottleneck in its place.
			panic(fmt.Sprintf("resnet: NewBlock: a bottleneck of ordering %q, which Validate refuses", c.Ordering))
		}
		s1, s2 := 1, stride
		if c.StrideOn1x1 {
			s1, s2 = stride, 1
		}
		if pre {
			b = &PreActBottleneck{BN1: bn(in), Conv1: conv(rng, in, width, 1, s1), BN2: bn(width), Conv2: conv(rng, width, width, 3, s2),
				BN3: bn(width), Conv3: conv(rng, width, out, 1, 1), Join: j}
		} else {
			blk := &Bottleneck{Conv1: conv(rng, in, width, 1, s1), BN1: bn(width), Conv2: conv(rng, width, width, 3, s2), BN2: bn(width),
				Conv3: conv(rng, width, out, 1, 1), BN3: bn(out), Join: j}
			b, last = blk, blk.BN3
		}
	} else {
		c1, c2 := conv(rng, in, out, 3, stride), conv(rng, out, out, 3, 1)
		switch c.Ordering {
		case PostActivation:
			blk := &BasicBlock{Conv1: c1, BN1: bn(out), Conv2: c2, BN2: bn(out), Join: j}
			b, last = blk, blk.BN2
		case BNAfterAdd:
			b = &BNAfterAddBlock{Conv1: c1, BN1: bn(out), Conv2: c2, BN2: bn(out), Join: j}
		case ReLUBeforeAdd:
			blk := &ReLUBeforeAddBlock{Conv1: c1, BN1: bn(out), Conv2: c2, BN2: bn(out), Join: j}
			b, last = blk, blk.BN2
		case ReLUOnlyPreAct:
			blk := &ReLUPreActBlock{Conv1: c1, BN1: bn(out), Conv2: c2, BN2: bn(out), Join: j}
			b, last = blk, blk.BN2
		case PreActivation:
			b = &PreActBlock{BN1: bn(in), Conv1: c1, BN2: bn(out), Conv2: c2, Join: j}
		default:
			panic(fmt.Sprintf("resnet: NewBlock: ordering %q, which Validate refuses", c.Ordering))
		}
	}
	if c.ZeroInitResidual && last != nil {
		nn.ZeroGamma(last)
	}
	return b
}

// shortcut returns the shortcut layer for a block from in to out channels
// (nil: identity).
func shortcut(rng *tensor.RNG, c Config, in, out, stride int, pre bool) nn.Layer {
	changes := stride != 1 || in != out
	switch {
	case c.Shortcut == ShortcutA && changes:
		if out < in {
			// Option A cannot drop channels; fall back to a projection.
			break
		}
		return OptionA{Stride: stride, Before: (out - in) / 2, After: out - in - (out-in)/2}
	case c.Shortcut == ShortcutA || (c.Shortcut == ShortcutB && !changes):
		return nil
	}
	p := conv(rng, in, out, 1, stride) // 1×1: padding k/2 = 0
	if pre {
		return nn.Sequential{p} // pre-activated input: no BN after the projection
	}
	return nn.Sequential{p, c.batchNorm(out)}
}

// batchNorm returns a batch norm over c channels with the config's ε.
func (c Config) batchNorm(ch int) *nn.BatchNorm {
	b := nn.NewBatchNorm(ch)
	if c.BNEps > 0 {
		b.Eps = c.BNEps
	}
	return b
}
