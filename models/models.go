// Package models builds every network of the zoo from a small config value
// that can be stored in a checkpoint: the ResNets, plain networks and
// pre-activation ResNets of package resnet, the U-Nets of package unet and
// the residual MLPs of package mlp.
package models

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/residual-nn/residual/models/mlp"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Config names a model and holds its full description; exactly one of
// ResNet, UNet and MLP is set. Preset fills it from a name; change fields
// before Build for variants.
type Config struct {
	Name   string         `json:"name"`
	ResNet *resnet.Config `json:"resnet,omitempty"`
	UNet   *unet.Config   `json:"unet,omitempty"`
	MLP    *mlp.Config    `json:"mlp,omitempty"`
}

// Names lists the model names Preset knows.
func Names() []string {
	n := append(resnet.Names(), "unet", "unet-padded", "resmlp")
	sort.Strings(n)
	return n
}

// Preset returns the published configuration of a named model.
func Preset(name string) (Config, error) {
	switch name {
	case "unet":
		c := unet.Original()
		return Config{Name: name, UNet: &c}, nil
	case "unet-padded":
		c := unet.Padded()
		return Config{Name: name, UNet: &c}, nil
	case "resmlp":
		return Config{Name: name, MLP: &mlp.Config{In: 1, Out: 1, Width: 200, Depth: 50, Skip: true, BatchNorm: true}}, nil
	}
	rc, err := resnet.Preset(name)
	if err != nil {
		return Config{}, fmt.Errorf("models: unknown model %q; known: %s", name, strings.Join(Names(), ", "))
	}
	return Config{Name: name, ResNet: &rc}, nil
}

// SetClasses sets the number of output classes (output channels for
// U-Nets, outputs for MLPs).
func (c *Config) SetClasses(n int) {
	switch {
	case c.ResNet != nil:
		c.ResNet.Classes = n
	case c.UNet != nil:
		c.UNet.Classes = n
	case c.MLP != nil:
		c.MLP.Out = n
	}
}

// SetInChannels sets the number of input channels (inputs for MLPs).
func (c *Config) SetInChannels(n int) {
	switch {
	case c.ResNet != nil:
		c.ResNet.InChannels = n
	case c.UNet != nil:
		c.UNet.InChannels = n
	case c.MLP != nil:
		c.MLP.In = n
	}
}

// Classes returns the number of output classes.
func (c Config) Classes() int {
	switch {
	case c.ResNet != nil:
		return c.ResNet.Classes
	case c.UNet != nil:
		return c.UNet.Classes
	case c.MLP != nil:
		return c.MLP.Out
	}
	return 0
}

// InputShape returns the model's input shape for a batch of n and an image
// side (ignored for MLPs): NHWC for images.
func (c Config) InputShape(n, side int) []int {
	switch {
	case c.ResNet != nil:
		return []int{n, side, side, c.ResNet.InChannels}
	case c.UNet != nil:
		return []int{n, side, side, c.UNet.InChannels}
	case c.MLP != nil:
		return []int{n, c.MLP.In}
	}
	return nil
}

// DefaultSide is the image side the model was published for: 224 for
// ImageNet ResNets, 32 for CIFAR ones, 572 for the original U-Net and 128
// for the padded one (0 for MLPs).
func (c Config) DefaultSide() int {
	switch {
	case c.ResNet != nil && c.ResNet.Stem == "imagenet":
		return 224
	case c.ResNet != nil:
		return 32
	case c.UNet != nil && c.UNet.Valid:
		return 572
	case c.UNet != nil:
		return 128
	}
	return 0
}

// Build validates the config (Validate) and constructs the model,
// initialised from rng.
func Build(c Config, rng *tensor.RNG) (nn.Layer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch {
	case c.ResNet != nil:
		return resnet.New(*c.ResNet, rng)
	case c.UNet != nil:
		return unet.New(*c.UNet, rng)
	default:
		return mlp.New(*c.MLP, rng)
	}
}

// Marshal returns the config as JSON (for checkpoint metadata).
func (c Config) Marshal() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// Unmarshal reads a config written by Marshal.
func Unmarshal(s string) (Config, error) {
	var c Config
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return Config{}, fmt.Errorf("models: bad model config: %w", err)
	}
	return c, nil
}
