// Package models builds every network of the zoo from a small config value
// that can be stored in a checkpoint: the ResNets, plain networks and
// pre-activation ResNets of package resnet, the U-Nets of package unet and
// the residual MLPs of package mlp.
//
// Each family is an Arch (ResNet, UNet, MLP in this package): it builds
// its network, knows its classes, input channels and input shape, says
// whether its output is per pixel (Dense), and validates itself against the
// bounds of package limits. A Config is a name and an Arch; it is stored as
// {"name", "kind", "config"}. Adding a family means one Arch type and one
// entry in the table of kinds (family.go).
//
// Start from a published network: Preset("resnet20") (Names lists them),
// then SetClasses and SetInChannels for the data, then Build with a seeded
// tensor.RNG; checkpoint.Load builds a stored one.
package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models/mlp"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Arch is one family's description of a network: everything needed to
// build it, size its input and output, and check it before building.
// Implementations are pointers (SetClasses and SetInChannels change them).
type Arch interface {
	// Kind names the family in stored configs ("resnet", "unet", "mlp").
	Kind() string
	// Build constructs the network, initialised from rng.
	Build(rng *tensor.RNG) (nn.Layer, error)
	// Classes is the number of outputs per example (per pixel when
	// Dense); SetClasses changes it (to the data's class count, before
	// Build).
	Classes() int
	SetClasses(n int)
	// InChannels is the number of input channels (inputs of an MLP);
	// SetInChannels changes it.
	InChannels() int
	SetInChannels(n int)
	// InputShape is the input of a batch of n: NHWC images of side×side,
	// or [n, inputs] for networks on vectors (side is then ignored).
	InputShape(n, side int) []int
	// DefaultSide is the image side the network was published for (0 for
	// networks on vectors).
	DefaultSide() int
	// Dense reports a per-pixel output [N,H,W,Classes] (segmentation)
	// instead of one vector of logits per example.
	Dense() bool
	// Validate returns an error naming the field of a config that
	// describes no network or one beyond the bounds of package limits.
	Validate() error
	// ParamEstimate is the number of weights the network will have,
	// counted exactly from the config alone (TestParamEstimate), so
	// that a loader can refuse a config its file cannot fill before
	// building it. Valid only for a config that passed Validate's
	// field checks.
	ParamEstimate() float64
}

// Config names a model and holds its description. Preset fills it from a
// name; change the Arch's fields before Build for variants. Copies of a
// Config share the Arch: use Clone for an independent one.
type Config struct {
	Name string
	Arch Arch
}

// Names lists the model names Preset knows.
func Names() []string {
	n := append(resnet.Names(), "unet", "unet-padded", "resmlp")
	sort.Strings(n)
	return n
}

// NameRules says which names Preset accepts beyond Names: the families
// whose depth is part of the name.
const NameRules = "resnetN, plainN for any depth N = 6n+2, e.g. resnet8; resnet50-v1, resnet101-v1, resnet152-v1 for the paper's v1 bottleneck"

// Preset returns the published configuration of a named model: one of
// Names, or a depth NameRules describes (resnet8, plain14); an unknown name
// is an error that lists them, and a resnetN or plainN deeper than package
// limits allows (n = (N−2)/6 blocks a stage past limits.Layers) an error
// saying so in the name's terms. The classes and input channels are the
// published ones: SetClasses and SetInChannels size the config for other
// data (train.Prepare does so from its data set).
func Preset(name string) (Config, error) {
	switch name {
	case "unet":
		return Config{Name: name, Arch: &UNet{unet.Original()}}, nil
	case "unet-padded":
		return Config{Name: name, Arch: &UNet{unet.Padded()}}, nil
	case "resmlp":
		return Config{Name: name, Arch: &MLP{mlp.Config{In: 1, Out: 1, Width: 200, Depth: 50, Skip: true, BatchNorm: true}}}, nil
	}
	rc, err := resnet.Preset(name)
	var deep *resnet.DepthError
	if errors.As(err, &deep) { // an n no int holds: too deep on every platform
		return Config{}, tooDeep(name, deep.Blocks)
	}
	if err != nil {
		return Config{}, fmt.Errorf("models: unknown model %q; known: %s (and %s)", name, strings.Join(Names(), ", "), NameRules)
	}
	for _, n := range rc.Layers { // only a resnetN's or plainN's can be past the limit
		if n > limits.Layers {
			return Config{}, tooDeep(name, big.NewInt(int64(n)))
		}
	}
	return Config{Name: name, Arch: &ResNet{rc}}, nil
}

// tooDeep is Preset's error for a resnetN or plainN of n blocks a stage,
// past limits.Layers: it says so in the terms of the name (its depth
// 6n+2) rather than of the config it would give (layers[0]).
func tooDeep(name string, n *big.Int) error {
	return fmt.Errorf("models: %s is too deep: its depth 6n+2 gives n = %v blocks a stage, over the %d that limits.Layers allows", name, n, limits.Layers)
}

// Kind returns the family's name ("" without an Arch).
func (c Config) Kind() string {
	if c.Arch == nil {
		return ""
	}
	return c.Arch.Kind()
}

// SetClasses sets the number of output classes (output channels for
// U-Nets, outputs for MLPs).
func (c Config) SetClasses(n int) {
	if c.Arch != nil {
		c.Arch.SetClasses(n)
	}
}

// SetInChannels sets the number of input channels (inputs for MLPs).
func (c Config) SetInChannels(n int) {
	if c.Arch != nil {
		c.Arch.SetInChannels(n)
	}
}

// Classes returns the number of output classes (0 without an Arch).
func (c Config) Classes() int {
	if c.Arch == nil {
		return 0
	}
	return c.Arch.Classes()
}

// InChannels returns the number of input channels (0 without an Arch).
func (c Config) InChannels() int {
	if c.Arch == nil {
		return 0
	}
	return c.Arch.InChannels()
}

// InputShape returns the model's input shape for a batch of n and an image
// side (ignored for MLPs): NHWC for images.
func (c Config) InputShape(n, side int) []int {
	if c.Arch == nil {
		return nil
	}
	return c.Arch.InputShape(n, side)
}

// DefaultSide is the image side the model was published for: 224 for
// ImageNet ResNets, 32 for CIFAR ones, 572 for the original U-Net and 128
// for the padded one (0 for MLPs).
func (c Config) DefaultSide() int {
	if c.Arch == nil {
		return 0
	}
	return c.Arch.DefaultSide()
}

// Dense reports a per-pixel output (a segmentation network).
func (c Config) Dense() bool { return c.Arch != nil && c.Arch.Dense() }

// Task is what a model computes from an image: what training teaches it,
// what inference and the server answer with.
type Task string

// Tasks.
const (
	Classify Task = "classify" // one vector of class scores per image
	Segment  Task = "segment"  // a vector of class scores per pixel
)

// Task returns the network's task: Segment for a dense network (Dense),
// Classify otherwise.
func (c Config) Task() Task {
	if c.Dense() {
		return Segment
	}
	return Classify
}

// Validate returns an error naming what is wrong with a config that has no
// Arch, describes no network, or one beyond the bounds of package limits.
func (c Config) Validate() error {
	if c.Arch == nil {
		return fmt.Errorf("models: config %q describes no network", c.Name)
	}
	if err := c.Arch.Validate(); err != nil {
		return fmt.Errorf("models: %s: %w", c.Name, err)
	}
	return nil
}

// Build validates the config and constructs the model, initialised from
// rng. A config Validate refuses and a nil rng are errors.
func Build(c Config, rng *tensor.RNG) (nn.Layer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if rng == nil {
		return nil, fmt.Errorf("models: building %q: no RNG for the initial weights (nil; tensor.NewRNG(seed) makes one)", c.Name)
	}
	return c.Arch.Build(rng)
}

// Clone returns a copy that shares nothing with c, through the config's
// JSON form (an error for values JSON cannot hold, such as NaN).
func (c Config) Clone() (Config, error) {
	if c.Arch == nil {
		return c, nil
	}
	s, err := c.Marshal()
	if err != nil {
		return Config{}, err
	}
	return Unmarshal(s)
}

// stored is a Config as JSON: {"name", "kind", "config"}.
type stored struct {
	Name   string          `json:"name"`
	Kind   string          `json:"kind"`
	Config json.RawMessage `json:"config"`
}

// MarshalJSON writes {"name", "kind", "config"}.
func (c Config) MarshalJSON() ([]byte, error) {
	if c.Arch == nil {
		return nil, fmt.Errorf("models: config %q describes no network", c.Name)
	}
	b, err := json.Marshal(c.Arch)
	if err != nil {
		return nil, fmt.Errorf("models: config %q: %w", c.Name, err)
	}
	return json.Marshal(stored{Name: c.Name, Kind: c.Arch.Kind(), Config: b})
}

// UnmarshalJSON reads {"name", "kind", "config"}, and the first format of
// residual's checkpoints, {"name", "<kind>": {...}} with the family's
// config under its kind.
func (c *Config) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return fmt.Errorf("models: bad model config: %w", err)
	}
	var s stored
	if raw, ok := fields["name"]; ok {
		if err := json.Unmarshal(raw, &s.Name); err != nil {
			return fmt.Errorf("models: bad model config: name: %w", err)
		}
	}
	if raw, ok := fields["kind"]; ok {
		if err := json.Unmarshal(raw, &s.Kind); err != nil {
			return fmt.Errorf("models: bad model config: kind: %w", err)
		}
		s.Config = fields["config"]
	} else { // first format: the family's config under its kind
		for _, k := range Kinds() {
			if raw, ok := fields[k]; ok && !bytes.Equal(raw, []byte("null")) {
				if s.Kind != "" {
					return fmt.Errorf("models: config %q describes both a %s and a %s", s.Name, s.Kind, k)
				}
				s.Kind, s.Config = k, raw
			}
		}
	}
	newArch, ok := kinds[s.Kind]
	if !ok {
		return fmt.Errorf("models: config %q: unknown kind %q (known: %s)", s.Name, s.Kind, strings.Join(Kinds(), ", "))
	}
	a := newArch()
	if len(s.Config) == 0 {
		return fmt.Errorf("models: config %q of kind %s has no \"config\"", s.Name, s.Kind)
	}
	if err := json.Unmarshal(s.Config, a); err != nil {
		return fmt.Errorf("models: config %q: bad %s config: %w", s.Name, s.Kind, err)
	}
	*c = Config{Name: s.Name, Arch: a}
	return nil
}

// Marshal returns the config as JSON text, as checkpoint metadata holds
// it and Unmarshal reads it. A config that MarshalJSON refuses (no Arch, a
// value such as a NaN BranchScale that JSON cannot hold) is an error.
func (c Config) Marshal() (string, error) {
	b, err := c.MarshalJSON()
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Unmarshal reads a config written by Marshal (or in the first format).
func Unmarshal(s string) (Config, error) {
	var c Config
	if err := c.UnmarshalJSON([]byte(s)); err != nil {
		return Config{}, err
	}
	return c, nil
}
