// Package unet builds U-Nets (Ronneberger et al. 2015): an encoder of
// double convolutions and 2×2 max-pools, a decoder of 2×2 stride-2
// up-convolutions that halve the channels, and skip connections that
// concatenate each encoder level's features into the decoder.
//
// Two forms: the original with valid (unpadded) 3×3 convolutions, where
// each skip is centre-cropped to the decoder's size (572×572 → 388×388),
// and the padded form, whose output has the input's size.
//
// Parameter names follow the PyTorch U-Net of the benchmark anchors
// (downs.0.0.weight, bottom.3.weight, upconvs.0.weight, ups.0.0.weight,
// head.weight), where each double convolution is a Sequential of
// conv, [BN], ReLU, conv, [BN], ReLU.
package unet

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Config describes a U-Net.
type Config struct {
	InChannels int `json:"in_channels"`
	Classes    int `json:"classes"` // output channels of the final 1×1 conv
	Depth      int `json:"depth"`   // number of down (and up) steps
	Base       int `json:"base"`    // channels of the first level; doubled per level
	// Valid uses unpadded convolutions and crops the skips (the original).
	Valid     bool `json:"valid"`
	BatchNorm bool `json:"batch_norm"`
}

// Original is Ronneberger et al.'s network: valid convolutions, widths
// 64…1024, no batch norm, 1 input channel, 2 classes (31,030,658
// parameters).
func Original() Config {
	return Config{InChannels: 1, Classes: 2, Depth: 4, Base: 64, Valid: true}
}

// Padded is the padded U-Net of the benchmarks: 4 levels, base 32, batch
// norm, 1 input channel, 1 output channel.
func Padded() Config {
	return Config{InChannels: 1, Classes: 1, Depth: 4, Base: 32, BatchNorm: true}
}

// Net is a U-Net mapping NHWC images to per-pixel class logits.
type Net struct {
	Downs   []nn.Sequential
	Bottom  nn.Sequential
	Upconvs []*nn.ConvTranspose2d
	Ups     []nn.Sequential
	Head    *nn.Conv2d
	Config  Config `nn:"-"`
}

// New builds a U-Net; convolutions get He normal (fan-out)
// initialisation, up-convolutions and the head PyTorch's default, drawn
// from rng. A size below 1 and a nil rng are errors.
func New(c Config, rng *tensor.RNG) (*Net, error) {
	if c.InChannels < 1 || c.Classes < 1 || c.Depth < 1 || c.Base < 1 {
		return nil, fmt.Errorf("unet: sizes must be positive: %+v", c)
	}
	if rng == nil {
		return nil, errors.New("unet: no RNG for the initial weights (nil; tensor.NewRNG(seed) makes one)")
	}
	n := &Net{Config: c}
	ch := c.InChannels
	for d := 0; d < c.Depth; d++ {
		w := c.Base << d
		n.Downs = append(n.Downs, n.doubleConv(rng, ch, w))
		ch = w
	}
	n.Bottom = n.doubleConv(rng, ch, c.Base<<c.Depth)
	for d := c.Depth - 1; d >= 0; d-- {
		w := c.Base << d
		n.Upconvs = append(n.Upconvs, nn.NewConvTranspose2d(rng, 2*w, w, 2, nn.ConvOptions{Stride: 2, Bias: true}))
		n.Ups = append(n.Ups, n.doubleConv(rng, 2*w, w))
	}
	n.Head = nn.NewConv2d(rng, c.Base, c.Classes, 1, nn.ConvOptions{Bias: true})
	nn.Name(n)
	return n, nil
}

func (n *Net) doubleConv(rng *tensor.RNG, in, out int) nn.Sequential {
	pad := 1
	if n.Config.Valid {
		pad = 0
	}
	conv := func(i int) *nn.Conv2d {
		c := nn.NewConv2d(rng, i, out, 3, nn.ConvOptions{Padding: pad, Bias: !n.Config.BatchNorm})
		nn.HeNormal(rng, c, nn.FanOut)
		return c
	}
	if n.Config.BatchNorm {
		return nn.Sequential{conv(in), nn.NewBatchNorm(out), nn.ReLU{}, conv(out), nn.NewBatchNorm(out), nn.ReLU{}}
	}
	return nn.Sequential{conv(in), nn.ReLU{}, conv(out), nn.ReLU{}}
}

// Forward maps x [N,H,W,InChannels] to logits [N,H',W',Classes]; H' = H
// for the padded form. It panics if a level's size does not halve evenly
// (see OutputSize for valid input sizes).
func (n *Net) Forward(x *ag.Value) *ag.Value {
	if s := x.Shape(); len(s) == 4 {
		for _, side := range s[1:3] {
			if _, err := n.Config.OutputSize(side); err != nil {
				panic(fmt.Sprintf("unet: input %v: %v", s, err))
			}
		}
	}
	skips := make([]*ag.Value, 0, len(n.Downs))
	pool := nn.NewMaxPool2d(2, 2, 0)
	for _, d := range n.Downs {
		x = d.Forward(x)
		skips = append(skips, x)
		x = pool.Forward(x)
	}
	x = n.Bottom.Forward(x)
	for i, up := range n.Upconvs {
		u := up.Forward(x)
		s := skips[len(skips)-1-i]
		if n.Config.Valid {
			s = ag.CenterCrop(s, u.Data.Shape[1], u.Data.Shape[2])
		}
		x = n.Ups[i].Forward(ag.Concat(3, s, u))
	}
	return n.Head.Forward(x)
}

// OutputSize returns the output side for an input side, or an error if the
// input does not fit (every pooled size must be even, and valid
// convolutions must leave something), naming the nearest sides that fit.
func (c Config) OutputSize(in int) (int, error) {
	out, err := c.outputSize(in)
	if err == nil {
		return out, nil
	}
	var near []string
	for lo := in - 1; lo >= 1 && lo >= in-4096; lo-- {
		if _, e := c.outputSize(lo); e == nil {
			near = append(near, strconv.Itoa(lo))
			break
		}
	}
	for hi := in + 1; hi <= in+4096; hi++ {
		if _, e := c.outputSize(hi); e == nil {
			near = append(near, strconv.Itoa(hi))
			break
		}
	}
	if len(near) > 0 {
		return 0, fmt.Errorf("%w (the nearest sides that fit: %s)", err, strings.Join(near, " and "))
	}
	return 0, err
}

// outputSize is OutputSize without the nearest sides.
func (c Config) outputSize(in int) (int, error) {
	s := in
	shrink := 0
	if c.Valid {
		shrink = 4
	}
	for d := 0; d < c.Depth; d++ {
		s -= shrink
		if s < 2 || s%2 != 0 {
			return 0, fmt.Errorf("unet: input %d gives an odd or empty size %d at level %d", in, s, d+1)
		}
		s /= 2
	}
	s -= shrink
	for d := 0; d < c.Depth; d++ {
		s = 2*s - shrink
	}
	if s < 1 {
		return 0, fmt.Errorf("unet: input %d is too small", in)
	}
	return s, nil
}
