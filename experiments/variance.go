package experiments

import (
	"context"
	"fmt"
	"math"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// VarianceConfig sizes the variance experiment.
type VarianceConfig struct {
	Blocks   int // residual blocks (or plain layers): 20
	Width    int // MLP width: 200
	Channels int // conv ResNet channels: 16
	Batch    int // inputs per measurement: 128 (MLP), a quarter for convs
	Seed     uint64
}

// DefaultVariance is the default size (seconds to run).
func DefaultVariance() VarianceConfig {
	return VarianceConfig{Blocks: 20, Width: 200, Channels: 16, Batch: 128, Seed: 1}
}

// Variant is how blocks are put together.
type Variant string

// The variants of Prince's Fig. 11.6 plus the plain network.
const (
	Plain       Variant = "plain"         // h ← f(h)
	Residual    Variant = "residual"      // h ← h + f(h)
	ScaledRes   Variant = "residual/√2"   // h ← (h + f(h))/√2
	BNResidual  Variant = "residual + BN" // h ← h + f(BN(h))
	variantsAll         = "all"
)

var variants = []Variant{Plain, Residual, ScaledRes, BNResidual}

// varBlock is f(h) = W·relu(h) (a 3×3 convolution for images), He
// initialised (fan-in), joined as the variant says.
type varBlock struct {
	Lin  *nn.Linear
	Conv *nn.Conv2d
	BN   *nn.BatchNorm
	mode Variant
}

func (b *varBlock) Forward(h *ag.Value) *ag.Value {
	in := h
	if b.BN != nil {
		in = b.BN.Forward(in)
	}
	var f *ag.Value
	if b.Lin != nil {
		f = b.Lin.Forward(ag.ReLU(in))
	} else {
		f = b.Conv.Forward(ag.ReLU(in))
	}
	switch b.mode {
	case Plain:
		return f
	case ScaledRes:
		return ag.Scale(ag.Add(h, f), float32(1/math.Sqrt2))
	}
	return ag.Add(h, f)
}

// varNet is an input layer (variance-preserving, gain 1) and blocks.
type varNet struct {
	InLin  *nn.Linear
	InConv *nn.Conv2d
	Blocks []*varBlock
}

func newVarNet(c VarianceConfig, v Variant, conv bool, inCh int, rng *tensor.RNG) *varNet {
	n := &varNet{}
	if conv {
		n.InConv = nn.NewConv2d(rng, inCh, c.Channels, 3, nn.ConvOptions{Padding: 1})
		in, _ := n.InConv.Fans()
		nn.InitKaimingNormal(rng, n.InConv.Weight.Data, in, 1)
	} else {
		n.InLin = nn.NewLinear(rng, inCh, c.Width, false)
		nn.InitKaimingNormal(rng, n.InLin.Weight.Data, inCh, 1)
	}
	for i := 0; i < c.Blocks; i++ {
		b := &varBlock{mode: v}
		if conv {
			b.Conv = nn.NewConv2d(rng, c.Channels, c.Channels, 3, nn.ConvOptions{Padding: 1, Bias: true})
			nn.HeNormal(rng, b.Conv, nn.FanIn)
		} else {
			b.Lin = nn.NewLinear(rng, c.Width, c.Width, true)
			nn.HeNormal(rng, b.Lin, nn.FanIn)
		}
		if v == BNResidual {
			ch := c.Width
			if conv {
				ch = c.Channels
			}
			b.BN = nn.NewBatchNorm(ch)
		}
		n.Blocks = append(n.Blocks, b)
	}
	return n
}

// measure returns the variance of the input to block 1 and of every block's
// output (index 0…Blocks), and of the gradient there for a random
// projection of the last output.
func (n *varNet) measure(x *tensor.Tensor, rng *tensor.RNG) (act, grad []float64) {
	tape := ag.NewTape()
	var h *ag.Value
	if n.InLin != nil {
		h = n.InLin.Forward(tape.Constant(x))
	} else {
		h = n.InConv.Forward(tape.Constant(x))
	}
	hs := []*ag.Value{h}
	for _, b := range n.Blocks {
		h = b.Forward(h)
		hs = append(hs, h)
	}
	for _, v := range hs {
		v.RetainGrad()
	}
	for _, v := range hs {
		act = append(act, variance(v.Data.Data))
	}
	tape.BackwardWith(h, rng.Randn(h.Shape()...))
	for _, v := range hs {
		if v.Grad == nil {
			grad = append(grad, math.NaN())
			continue
		}
		grad = append(grad, variance(v.Grad.Data))
	}
	return act, grad
}

func variance(v []float32) float64 {
	var s, q float64
	for _, x := range v {
		s += float64(x)
		q += float64(x) * float64(x)
	}
	n := float64(len(v))
	return q/n - (s/n)*(s/n)
}

// VarianceCurve is one network's measurements.
type VarianceCurve struct {
	Variant  Variant   `json:"variant"`
	Network  string    `json:"network"` // mlp or conv
	Input    string    `json:"input"`   // gaussian or mnist
	Act      []float64 `json:"activation_variance"`
	Grad     []float64 `json:"gradient_variance"`
	Log2Fit  float64   `json:"log2_variance_slope"`
	Ratio    float64   `json:"last_over_first"`
	PerBlock float64   `json:"linear_growth_per_block"` // (var_L − var_0)/L
}

// Variance runs the experiment: for each variant, network (MLP, conv
// ResNet) and input (Gaussian, MNIST), the variance after every block.
func Variance(ctx context.Context, c VarianceConfig, out string) ([]VarianceCurve, error) {
	if c.Blocks < 1 || c.Width < 1 || c.Channels < 1 || c.Batch < 1 {
		return nil, fmt.Errorf("experiments: variance needs at least one block, unit, channel and input; got %d blocks, width %d, %d channels, batch %d", c.Blocks, c.Width, c.Channels, c.Batch)
	}
	r, err := NewReport(out, "Activation variance at initialisation")
	if err != nil {
		return nil, err
	}
	train, _, err := data.MNIST()
	if err != nil {
		return nil, err
	}
	mean, std := []float64{0.1307}, []float64{0.3081}
	rng := tensor.NewRNG(c.Seed)
	inputs := func(conv bool) map[string]*tensor.Tensor {
		n := c.Batch
		if conv {
			n = max(c.Batch/4, 2)
		}
		idx := rng.Perm(train.Len())[:n]
		l := &data.Loader{Data: train.Subset(idx), Batch: n, Mean: mean, Std: std}
		var mnist *tensor.Tensor
		for b := range l.Epoch(ctx, 0, 0) {
			mnist = b.X
		}
		if !conv {
			mnist = mnist.Reshape(n, 28*28)
		}
		return map[string]*tensor.Tensor{"gaussian": rng.Randn(mnist.Shape...), "mnist": mnist}
	}
	var curves []VarianceCurve
	var panels []Panel
	for _, conv := range []bool{false, true} {
		netName := map[bool]string{false: "mlp", true: "conv"}[conv]
		for _, inName := range []string{"gaussian", "mnist"} {
			x := inputs(conv)[inName]
			inCh := x.Shape[len(x.Shape)-1]
			var lines []Line
			for vi, v := range variants {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				net := newVarNet(c, v, conv, inCh, tensor.NewRNG(c.Seed+uint64(vi)))
				act, grad := net.measure(x, rng)
				vc := VarianceCurve{Variant: v, Network: netName, Input: inName, Act: act, Grad: grad}
				ks := seq(0, c.Blocks)
				l2 := make([]float64, len(act))
				for i, a := range act {
					l2[i] = math.Log2(a)
				}
				vc.Log2Fit, _ = fitLine(ks, l2)
				vc.Ratio = act[len(act)-1] / act[0]
				vc.PerBlock = (act[len(act)-1] - act[0]) / float64(c.Blocks)
				curves = append(curves, vc)
				lines = append(lines, Line{Label: string(v) + " (activations)", X: ks, Y: act, Color: vi},
					Line{X: ks, Y: grad, Color: vi, Dashed: true})
			}
			// Theory lines from the measured block-0 variance.
			v0 := curves[len(curves)-3].Act[0] // the residual curve's start
			th := func(f func(k float64) float64) []float64 {
				out := make([]float64, c.Blocks+1)
				for k := range out {
					out[k] = f(float64(k))
				}
				return out
			}
			ks := seq(0, c.Blocks)
			lines = append(lines,
				Line{Label: "theory: doubles", X: ks, Y: th(func(k float64) float64 { return v0 * math.Pow(2, k) }), Color: 7, Dashed: true},
				Line{Label: "theory: +1 a block (BN)", X: ks, Y: th(func(k float64) float64 { return curves[len(curves)-1].Act[0] + k }), Color: 6, Dashed: true})
			panels = append(panels, Panel{Title: fmt.Sprintf("%s, %s inputs (dashed colours: gradients)", netName, inName),
				XLabel: "block", YLabel: "variance", LogY: true, Lines: lines})
		}
	}
	if err := r.Figure("variance.png", 2, 470, 380, panels...); err != nil {
		return nil, err
	}
	r.Printf("He initialisation (fan-in, gain √2) for every block, f(h) = W·relu(h); the input layer preserves variance (gain 1). %d blocks; MLP width %d, conv ResNet %d channels of 3×3 convolutions on 28×28 images; %d inputs (MLP), %d (conv). Seed %d.\n",
		c.Blocks, c.Width, c.Channels, c.Batch, max(c.Batch/4, 2), c.Seed)
	r.Printf("| network | input | variant | log2-variance slope per block | last/first | growth per block |\n|---|---|---|---|---|---|")
	for _, v := range curves {
		r.Printf("| %s | %s | %s | %.3f | %.3g | %.3g |", v.Network, v.Input, v.Variant, v.Log2Fit, v.Ratio, v.PerBlock)
	}
	r.Printf("\nTheory (Prince, Understanding Deep Learning, Fig. 11.6): without normalisation each residual block doubles the variance (log2 slope 1); multiplying each block's output by 1/√2 holds it; batch norm at the start of each branch makes it grow linearly (block k adds the branch's unit variance: ≈ k+1); a plain He-initialised network holds it too, but has no skip.")
	if err := r.JSON("variance.json", curves); err != nil {
		return nil, err
	}
	return curves, r.Close()
}
