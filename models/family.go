package models

import (
	"fmt"
	"math"
	"sort"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models/mlp"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// kinds makes an empty Arch of each stored kind: the one table a new
// family joins.
var kinds = map[string]func() Arch{
	"resnet": func() Arch { return new(ResNet) },
	"unet":   func() Arch { return new(UNet) },
	"mlp":    func() Arch { return new(MLP) },
}

// Kinds lists the families a stored config may name.
func Kinds() []string {
	ks := make([]string, 0, len(kinds))
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// checkParams refuses a network whose weights would exceed
// limits.TotalBytes (as float32), from an estimate made before building it.
func checkParams(n float64) error {
	if n*4 > float64(limits.TotalBytes) {
		return fmt.Errorf("about %.3g parameters, over %d bytes of weights (limits.TotalBytes)", n, limits.TotalBytes)
	}
	return nil
}

// checkSizes returns an error naming the first size outside [1, max].
func checkSizes(sizes ...size) error {
	for _, s := range sizes {
		if s.v < 1 || s.v > s.bound {
			return fmt.Errorf("%s %d outside [1, %d] (%s)", s.name, s.v, s.bound, s.limit)
		}
	}
	return nil
}

// size is one bounded field of a config: its name, value, bound and the
// bound's name.
type size struct {
	name  string
	v     int
	bound int
	limit string
}

// ResNet is package resnet's family: ResNets, plain networks and
// pre-activation ResNets. Its fields are resnet.Config's (Classes and
// InChannels as c.Config.Classes and c.Config.InChannels: the methods of
// those names hide them).
type ResNet struct{ resnet.Config }

// Kind is "resnet", the family's name in a stored {"kind", "config"}.
func (c *ResNet) Kind() string { return "resnet" }

// Build returns a *resnet.Net initialised from rng (resnet.New); it
// fails on a config resnet.Config.Validate refuses.
func (c *ResNet) Build(rng *tensor.RNG) (nn.Layer, error) { return resnet.New(c.Config, rng) }

// Classes is the number of logits the classifier (fc) produces.
func (c *ResNet) Classes() int { return c.Config.Classes }

// SetClasses sets the classifier's number of logits; the data's class
// count is set here before building.
func (c *ResNet) SetClasses(n int) { c.Config.Classes = n }

// InChannels is the stem convolution's input channels.
func (c *ResNet) InChannels() int { return c.Config.InChannels }

// SetInChannels sets the stem convolution's input channels.
func (c *ResNet) SetInChannels(n int) { c.Config.InChannels = n }

// InputShape is [n, side, side, InChannels].
func (c *ResNet) InputShape(n, side int) []int { return []int{n, side, side, c.Config.InChannels} }

// DefaultSide is 224 for an ImageNet stem, 32 for a CIFAR one.
func (c *ResNet) DefaultSide() int {
	if c.Stem == "imagenet" {
		return 224
	}
	return 32
}

// Dense is false: one vector of logits per image.
func (c *ResNet) Dense() bool { return false }

// Validate checks resnet.Config's rules, the bounds of package limits on
// classes, channels, widths and depth, and the weights' total size.
func (c *ResNet) Validate() error {
	if err := checkSizes(size{"classes", c.Config.Classes, limits.Classes, "limits.Classes"},
		size{"in_channels", c.Config.InChannels, limits.Channels, "limits.Channels"},
		size{"stem_width", c.StemWidth, limits.Channels, "limits.Channels"}); err != nil {
		return fmt.Errorf("resnet: %w", err)
	}
	if len(c.Layers) > 4 || len(c.Widths) != len(c.Layers) {
		return fmt.Errorf("resnet: need 1 to 4 stages with a width each, got layers %v widths %v", c.Layers, c.Widths)
	}
	for i := range c.Layers {
		if err := checkSizes(size{fmt.Sprintf("layers[%d]", i), c.Layers[i], limits.Layers, "limits.Layers"},
			size{fmt.Sprintf("widths[%d]", i), c.Widths[i], limits.Channels, "limits.Channels"}); err != nil {
			return fmt.Errorf("resnet: %w", err)
		}
	}
	if math.IsNaN(c.BNEps) || math.IsInf(c.BNEps, 0) || c.BNEps < 0 || math.IsNaN(float64(c.BranchScale)) || math.IsInf(float64(c.BranchScale), 0) {
		return fmt.Errorf("resnet: bn_eps %v and branch_scale %v must be finite (bn_eps ≥ 0)", c.BNEps, c.BranchScale)
	}
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if err := checkParams(c.ParamEstimate()); err != nil {
		return fmt.Errorf("resnet: %w", err)
	}
	return nil
}

// ParamEstimate counts the weights from the config alone, exactly, as
// resnet.New builds them: the stem's convolution and batch norm (none
// for a pre-activation network's CIFAR stem), each block's convolutions
// (without biases) and batch norms, its projection shortcut where it has
// one (option A's shortcut is parameter-free; a pre-activation
// projection has no batch norm), the final batch norm of a
// pre-activation network and the classifier.
func (c *ResNet) ParamEstimate() float64 {
	k := 3.0
	if c.Stem == "imagenet" {
		k = 7
	}
	preAct := c.Ordering == resnet.PreActivation
	in := float64(c.StemWidth)
	n := k * k * float64(c.Config.InChannels) * in
	if c.Stem == "imagenet" || (!preAct && c.Ordering != resnet.ReLUOnlyPreAct) {
		n += 2 * in
	}
	for s, count := range c.Layers {
		w := float64(c.Widths[s])
		for i := range count {
			// A basic block's two 3×3 convolutions and the batch norm
			// after the first, or a bottleneck's three convolutions and
			// the batch norms after its first two; then one more batch
			// norm, before the first convolution (pre-activation) or
			// after the last.
			out, convs, bns := w, 9*in*w+9*w*w, 2*w
			if c.Block == "bottleneck" {
				out = 4 * w
				convs, bns = in*w+9*w*w+w*out, 4*w
			}
			if preAct {
				bns += 2 * in
			} else {
				bns += 2 * out
			}
			n += convs + bns
			changes := (s > 0 && i == 0) || in != out
			if !c.Plain && (c.Shortcut == resnet.ShortcutC || (changes && (c.Shortcut == resnet.ShortcutB || out < in))) {
				n += in * out // a 1×1 projection (option A falls back to one where channels drop)
				if !preAct {
					n += 2 * out
				}
			}
			in = out
		}
	}
	if preAct {
		n += 2 * in
	}
	return n + (in+1)*float64(c.Config.Classes)
}

// UNet is package unet's family: per-pixel classification. Its fields
// are unet.Config's (Classes and InChannels as c.Config.Classes and
// c.Config.InChannels: the methods of those names hide them).
type UNet struct{ unet.Config }

// Kind is "unet", the family's name in a stored {"kind", "config"}.
func (c *UNet) Kind() string { return "unet" }

// Build returns a *unet.Net initialised from rng (unet.New), or the
// config's error.
func (c *UNet) Build(rng *tensor.RNG) (nn.Layer, error) { return unet.New(c.Config, rng) }

// Classes is the output channels of the final 1×1 convolution.
func (c *UNet) Classes() int { return c.Config.Classes }

// SetClasses sets the output channels.
func (c *UNet) SetClasses(n int) { c.Config.Classes = n }

// InChannels is the first convolution's input channels.
func (c *UNet) InChannels() int { return c.Config.InChannels }

// SetInChannels sets the first convolution's input channels.
func (c *UNet) SetInChannels(n int) { c.Config.InChannels = n }

// InputShape is [n, side, side, InChannels].
func (c *UNet) InputShape(n, side int) []int { return []int{n, side, side, c.Config.InChannels} }

// DefaultSide is 572 for the original (valid) U-Net, 128 for the padded
// one.
func (c *UNet) DefaultSide() int {
	if c.Valid {
		return 572
	}
	return 128
}

// Dense is true: logits per pixel.
func (c *UNet) Dense() bool { return true }

// Validate checks positive sizes within the bounds of package limits (the
// widest level, Base·2^Depth channels, included) and the weights' total
// size.
func (c *UNet) Validate() error {
	if err := checkSizes(size{"classes", c.Config.Classes, limits.Classes, "limits.Classes"},
		size{"in_channels", c.Config.InChannels, limits.Channels, "limits.Channels"},
		size{"depth", c.Depth, 16, "levels"},
		size{"base", c.Base, limits.Channels, "limits.Channels"}); err != nil {
		return fmt.Errorf("unet: %w", err)
	}
	if c.Base<<c.Depth > limits.Channels {
		return fmt.Errorf("unet: base %d doubled %d times is %d channels, over %d (limits.Channels)", c.Base, c.Depth, c.Base<<c.Depth, limits.Channels)
	}
	if err := checkParams(c.ParamEstimate()); err != nil {
		return fmt.Errorf("unet: %w", err)
	}
	return nil
}

// ParamEstimate counts the weights from the config alone, exactly, as
// unet.New builds them: the double convolutions of every level, each
// convolution with its bias or, with BatchNorm, its batch norm's weight
// and bias, the up-convolutions and the head.
func (c *UNet) ParamEstimate() float64 {
	in, n := float64(c.Config.InChannels), 0.0
	for d := 0; d <= c.Depth; d++ {
		w := float64(c.Base << d)
		after := w // a convolution's bias, or its batch norm's two vectors
		if c.BatchNorm {
			after = 2 * w
		}
		n += 9*(in*w+w*w) + 2*after // down (and bottom) double convolutions
		if d < c.Depth {
			n += 4*2*w*w + w + 9*(2*w*w+w*w) + 2*after // up-convolution and up double convolution
		}
		in = w
	}
	return n + float64((c.Base+1)*c.Config.Classes)
}

// MLP is package mlp's family: residual MLPs on vectors.
type MLP struct{ mlp.Config }

// Kind is "mlp", the family's name in a stored {"kind", "config"}.
func (c *MLP) Kind() string { return "mlp" }

// Build returns a *mlp.Net initialised from rng (mlp.New), or the
// config's error.
func (c *MLP) Build(rng *tensor.RNG) (nn.Layer, error) { return mlp.New(c.Config, rng) }

// Classes is the number of outputs.
func (c *MLP) Classes() int { return c.Out }

// SetClasses sets the number of outputs.
func (c *MLP) SetClasses(n int) { c.Out = n }

// InChannels is the number of inputs.
func (c *MLP) InChannels() int { return c.In }

// SetInChannels sets the number of inputs.
func (c *MLP) SetInChannels(n int) { c.In = n }

// InputShape is [n, In].
func (c *MLP) InputShape(n, _ int) []int { return []int{n, c.In} }

// DefaultSide is 0: an MLP takes vectors.
func (c *MLP) DefaultSide() int { return 0 }

// Dense is false: one vector of outputs per input.
func (c *MLP) Dense() bool { return false }

// Validate checks sizes within the bounds of package limits and the
// weights' total size.
func (c *MLP) Validate() error {
	if err := checkSizes(size{"In", c.In, limits.Channels, "limits.Channels"}, size{"Out", c.Out, limits.Classes, "limits.Classes"},
		size{"Width", c.Width, limits.Channels, "limits.Channels"}); err != nil {
		return fmt.Errorf("mlp: %w", err)
	}
	if c.Depth < 0 || c.Depth > limits.Layers {
		return fmt.Errorf("mlp: Depth %d outside [0, %d] (limits.Layers)", c.Depth, limits.Layers)
	}
	if err := checkParams(c.ParamEstimate()); err != nil {
		return fmt.Errorf("mlp: %w", err)
	}
	return nil
}

// ParamEstimate counts the parameters from the config alone, exactly:
// the input and output layers, each block's fully connected layer and,
// with BatchNorm only, its batch norm's weight and bias.
func (c *MLP) ParamEstimate() float64 {
	w := float64(c.Width)
	block := w*w + w
	if c.BatchNorm {
		block += 2 * w
	}
	return (float64(c.In)+1)*w + float64(c.Depth)*block + (w+1)*float64(c.Out)
}
