package nn

import (
	"math"

	"github.com/residual-nn/residual/tensor"
)

// Fan selects which fan He initialisation preserves the variance of.
type Fan int

const (
	// FanIn preserves the variance of activations in the forward pass.
	FanIn Fan = iota
	// FanOut preserves the variance of gradients in the backward pass
	// (torchvision's ResNets use it).
	FanOut
)

// Fanned is implemented by layers with a weight matrix or kernel.
type Fanned interface {
	Fans() (in, out int)
}

// GainReLU is the gain √2 of He initialisation for ReLU networks.
var GainReLU = math.Sqrt2

func pick(l Fanned, f Fan) int {
	in, out := l.Fans()
	if f == FanOut {
		return out
	}
	return in
}

// InitKaimingNormal draws t from N(0, (gain/√fan)²): He et al. 2015's
// initialisation (PyTorch's kaiming_normal_ with the given gain).
func InitKaimingNormal(rng *tensor.RNG, t *tensor.Tensor, fan int, gain float64) {
	rng.FillNormal(t, 0, gain/math.Sqrt(float64(fan)))
}

// InitKaimingUniform draws t from U(±gain·√(3/fan)).
func InitKaimingUniform(rng *tensor.RNG, t *tensor.Tensor, fan int, gain float64) {
	InitUniform(rng, t, gain*math.Sqrt(3/float64(fan)))
}

// InitXavierNormal draws t from N(0, gain²·2/(fanIn+fanOut)) (Glorot).
func InitXavierNormal(rng *tensor.RNG, t *tensor.Tensor, fanIn, fanOut int, gain float64) {
	rng.FillNormal(t, 0, gain*math.Sqrt(2/float64(fanIn+fanOut)))
}

// InitXavierUniform draws t from U(±gain·√(6/(fanIn+fanOut))) (Glorot).
func InitXavierUniform(rng *tensor.RNG, t *tensor.Tensor, fanIn, fanOut int, gain float64) {
	InitUniform(rng, t, gain*math.Sqrt(6/float64(fanIn+fanOut)))
}

// InitUniform draws t from U(−bound, bound).
func InitUniform(rng *tensor.RNG, t *tensor.Tensor, bound float64) {
	rng.FillUniform(t, -bound, bound)
}

// InitConstant sets every element of t to v.
func InitConstant(t *tensor.Tensor, v float32) { t.Fill(v) }

// HeNormal initialises a layer's weight with He normal initialisation for
// ReLU (gain √2) on the chosen fan, and zeroes its bias. It works on Conv2d,
// ConvTranspose2d and Linear.
func HeNormal(rng *tensor.RNG, l Fanned, f Fan) {
	w, b := weightBias(l)
	InitKaimingNormal(rng, w, pick(l, f), GainReLU)
	if b != nil {
		b.Zero()
	}
}

// GlorotNormal initialises a layer's weight with Glorot normal
// initialisation (gain 1) and zeroes its bias.
func GlorotNormal(rng *tensor.RNG, l Fanned) {
	w, b := weightBias(l)
	in, out := l.Fans()
	InitXavierNormal(rng, w, in, out, 1)
	if b != nil {
		b.Zero()
	}
}

// ZeroGamma sets a batch norm's γ to 0, so that a residual branch ending in
// it starts as the identity (Goyal et al. 2017; torchvision's
// zero_init_residual).
func ZeroGamma(b *BatchNorm) {
	if b.Weight != nil {
		b.Weight.Data.Zero()
	}
}

func weightBias(l Fanned) (w, b *tensor.Tensor) {
	switch v := l.(type) {
	case *Conv2d:
		w = v.Weight.Data
		if v.Bias != nil {
			b = v.Bias.Data
		}
	case *ConvTranspose2d:
		w = v.Weight.Data
		if v.Bias != nil {
			b = v.Bias.Data
		}
	case *Linear:
		w = v.Weight.Data
		if v.Bias != nil {
			b = v.Bias.Data
		}
	}
	return w, b
}
