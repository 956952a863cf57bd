// Package mlp builds residual multilayer perceptrons for 1-D inputs: the
// networks of the shattered-gradients and variance studies, with or without
// skips, batch norm and branch scaling.
package mlp

import (
	"errors"
	"fmt"
	"math"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Config describes a residual MLP: In → Width, Depth blocks of width Width,
// then Width → Out.
type Config struct {
	In, Out, Width, Depth int
	// Skip adds the identity around every block (a residual network);
	// without it the network is plain.
	Skip bool
	// BatchNorm puts a batch norm at the start of every block's branch.
	BatchNorm bool
	// BranchScale multiplies each branch before the addition (e.g. 1/√2);
	// 0 means 1.
	BranchScale float32
	// Init is "he" (He normal, fan-in, gain √2; the default) or "glorot"
	// (Glorot normal, gain 1). Biases start at zero.
	Init string
}

// Block is one pre-activation block: branch(x) = fc(relu(bn(x))), output
// x + s·branch(x) with a skip, branch(x) without.
type Block struct {
	BN    *nn.BatchNorm // nil without batch norm
	FC    *nn.Linear
	skip  bool
	scale float32
}

// Forward applies the block to x [N, Width].
func (b *Block) Forward(x *ag.Value) *ag.Value {
	h := x
	if b.BN != nil {
		h = b.BN.Forward(h)
	}
	h = b.FC.Forward(ag.ReLU(h))
	if !b.skip {
		return h
	}
	if b.scale != 1 {
		h = ag.Scale(h, b.scale)
	}
	return ag.Add(x, h)
}

// Net is a residual (or plain) MLP. Parameter names: input.*, blocks.K.fc.*,
// blocks.K.bn.*, head.*.
type Net struct {
	Input  *nn.Linear
	Blocks []*Block
	Head   *nn.Linear
	Config Config `nn:"-"`
}

// New builds a network initialised from rng (Config.Init); a config that
// makes none (a size below 1, an unknown Init) and a nil rng are errors.
func New(c Config, rng *tensor.RNG) (*Net, error) {
	if c.In < 1 || c.Out < 1 || c.Width < 1 || c.Depth < 0 {
		return nil, fmt.Errorf("mlp: sizes must be positive: %+v", c)
	}
	if rng == nil {
		return nil, errors.New("mlp: no RNG for the initial weights (nil; tensor.NewRNG(seed) makes one)")
	}
	if c.Init == "" {
		c.Init = "he"
	}
	if c.Init != "he" && c.Init != "glorot" {
		return nil, fmt.Errorf("mlp: unknown init %q (he or glorot)", c.Init)
	}
	if c.BranchScale == 0 {
		c.BranchScale = 1
	}
	lin := func(in, out int) *nn.Linear {
		l := nn.NewLinear(rng, in, out, true)
		if c.Init == "he" {
			nn.HeNormal(rng, l, nn.FanIn)
		} else {
			nn.GlorotNormal(rng, l)
		}
		return l
	}
	n := &Net{Input: lin(c.In, c.Width), Head: lin(c.Width, c.Out), Config: c}
	for i := 0; i < c.Depth; i++ {
		b := &Block{FC: lin(c.Width, c.Width), skip: c.Skip, scale: c.BranchScale}
		if c.BatchNorm {
			b.BN = nn.NewBatchNorm(c.Width)
		}
		n.Blocks = append(n.Blocks, b)
	}
	nn.Name(n)
	return n, nil
}

// Forward maps x [N, In] to [N, Out].
func (n *Net) Forward(x *ag.Value) *ag.Value {
	h := n.Input.Forward(x)
	for _, b := range n.Blocks {
		h = b.Forward(h)
	}
	return n.Head.Forward(ag.ReLU(h))
}

// Activations returns the input to the first block and the output of every
// block (for the variance study).
func (n *Net) Activations(x *ag.Value) []*ag.Value {
	h := n.Input.Forward(x)
	out := []*ag.Value{h}
	for _, b := range n.Blocks {
		h = b.Forward(h)
		out = append(out, h)
	}
	return out
}

// InvSqrt2 is the branch scale that keeps a residual MLP's variance flat.
const InvSqrt2 = float32(1 / math.Sqrt2)
