package models

import (
	"fmt"
	"math"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models/resnet"
)

// Validate reports a config that describes no network, or a network a
// file has no business asking for: it checks the description as the
// network's package does, then its sizes against package limits —
// channels and widths (limits.Channels), classes (limits.Classes), depth
// (limits.Layers), every weight (limits.TensorElements) and all of them
// together (limits.TotalBytes of float32) — so that a config read from a
// checkpoint cannot make Build allocate gigabytes or panic. Build calls
// it.
func (c Config) Validate() error {
	_, err := c.params()
	return err
}

// params validates the config and estimates its parameter count.
func (c Config) params() (float64, error) {
	set := 0
	for _, p := range []bool{c.ResNet != nil, c.UNet != nil, c.MLP != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return 0, fmt.Errorf("models: config %q must describe exactly one network, it describes %d", c.Name, set)
	}
	var sz sizes
	switch {
	case c.ResNet != nil:
		r := c.ResNet
		if err := r.Validate(); err != nil {
			return 0, fmt.Errorf("models: %w", err)
		}
		if math.IsNaN(r.BNEps) || math.IsInf(r.BNEps, 0) || r.BNEps < 0 {
			return 0, fmt.Errorf("models: resnet: batch-norm epsilon %g must be positive (or 0 for the default)", r.BNEps)
		}
		if s := float64(r.BranchScale); math.IsNaN(s) || math.IsInf(s, 0) {
			return 0, fmt.Errorf("models: resnet: branch scale %g is not finite", r.BranchScale)
		}
		sz.channels("resnet input", r.InChannels)
		sz.channels("resnet stem", r.StemWidth)
		sz.classes(r.Classes)
		k := 3
		if r.Stem == "imagenet" {
			k = 7
		}
		sz.total += sz.weight(k*k, r.InChannels, r.StemWidth)
		in, blocks := r.StemWidth, 0
		for s, n := range r.Layers {
			if n > limits.Layers {
				return 0, fmt.Errorf("models: resnet: stage %d has %d blocks, more than %d (limits.Layers)", s+1, n, limits.Layers)
			}
			if r.Widths[s] > limits.Channels {
				return 0, fmt.Errorf("models: resnet: stage %d has width %d, more than %d channels (limits.Channels)", s+1, r.Widths[s], limits.Channels)
			}
			w, out := r.Widths[s], r.Widths[s]
			if r.Block == "bottleneck" {
				out = 4 * w
			}
			sz.channels(fmt.Sprintf("resnet stage %d", s+1), out)
			if blocks += n; blocks > limits.Layers {
				return 0, fmt.Errorf("models: resnet: %v blocks, more than %d (limits.Layers)", r.Layers, limits.Layers)
			}
			block := func(in int) float64 {
				if r.Block == "bottleneck" {
					return sz.weight(1, in, w) + sz.weight(9, w, w) + sz.weight(1, w, out)
				}
				return sz.weight(9, in, w) + sz.weight(9, w, w)
			}
			// The first block's shortcut projects (option B), or every
			// block's (option C).
			proj := sz.weight(1, in, out)
			if r.Shortcut == resnet.ShortcutC {
				proj += float64(n-1) * sz.weight(1, out, out)
			}
			sz.total += block(in) + float64(n-1)*block(out) + proj
			in = out
		}
		sz.total += sz.weight(1, in, r.Classes)
	case c.UNet != nil:
		u := c.UNet
		if u.InChannels < 1 || u.Classes < 1 || u.Depth < 1 || u.Base < 1 {
			return 0, fmt.Errorf("models: unet: sizes must be positive: %+v", *u)
		}
		sz.channels("unet input", u.InChannels)
		sz.classes(u.Classes)
		if u.Depth > 20 || u.Base > limits.Channels>>u.Depth {
			return 0, fmt.Errorf("models: unet: base %d doubled %d times exceeds %d channels (limits.Channels)", u.Base, u.Depth, limits.Channels)
		}
		in := u.InChannels
		for l := 0; l <= u.Depth; l++ {
			w := u.Base << l
			sz.total += sz.weight(9, in, w) + sz.weight(9, w, w)
			if l > 0 { // the up path: an up-convolution and two convolutions
				sz.total += sz.weight(4, w, w/2) + sz.weight(9, w, w/2) + sz.weight(9, w/2, w/2)
			}
			in = w
		}
		sz.total += sz.weight(1, u.Base, u.Classes)
	default:
		m := c.MLP
		if m.In < 1 || m.Out < 1 || m.Width < 1 || m.Depth < 0 {
			return 0, fmt.Errorf("models: mlp: sizes must be positive: %+v", *m)
		}
		if s := float64(m.BranchScale); math.IsNaN(s) || math.IsInf(s, 0) {
			return 0, fmt.Errorf("models: mlp: branch scale %g is not finite", m.BranchScale)
		}
		sz.channels("mlp input", m.In)
		sz.channels("mlp width", m.Width)
		sz.classes(m.Out)
		if m.Depth > limits.Layers {
			return 0, fmt.Errorf("models: mlp: depth %d exceeds %d (limits.Layers)", m.Depth, limits.Layers)
		}
		sz.total += sz.weight(1, m.In, m.Width) + float64(m.Depth)*sz.weight(1, m.Width, m.Width) + sz.weight(1, m.Width, m.Out)
	}
	if sz.err != nil {
		return 0, fmt.Errorf("models: config %q: %w", c.Name, sz.err)
	}
	if sz.total*4 > float64(limits.TotalBytes) {
		return 0, fmt.Errorf("models: config %q: about %.3g parameters, more than %d bytes of float32 (limits.TotalBytes)", c.Name, sz.total, limits.TotalBytes)
	}
	return sz.total, nil
}

// sizes accumulates the checks of Validate: the first error, and an
// estimate of the parameter count (weights only; biases and batch norms
// are a few per cent at most).
type sizes struct {
	err   error
	total float64
}

func (s *sizes) channels(what string, n int) {
	if s.err == nil && n > limits.Channels {
		s.err = fmt.Errorf("%s has %d channels, more than %d (limits.Channels)", what, n, limits.Channels)
	}
}

func (s *sizes) classes(n int) {
	if s.err == nil && n > limits.Classes {
		s.err = fmt.Errorf("%d classes, more than %d (limits.Classes)", n, limits.Classes)
	}
}

// weight checks one k·in·out weight and returns its size.
func (s *sizes) weight(k, in, out int) float64 {
	n := float64(k) * float64(in) * float64(out)
	if s.err == nil && n > float64(limits.TensorElements) {
		s.err = fmt.Errorf("a weight of %d×%d×%d values, more than %d (limits.TensorElements)", k, in, out, limits.TensorElements)
	}
	return n
}
