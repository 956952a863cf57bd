package experiments

import (
	"context"
	"fmt"
	"math"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// VarianceConfig sizes the variance experiment (Prince, Understanding Deep
// Learning, Fig. 11.6), repeated over Seeds initialisations.
type VarianceConfig struct {
	Blocks   int   // residual blocks (or plain layers): 20
	Width    int   // MLP width: 200
	Channels []int // conv ResNet channels: 16, 64, 256
	Side     int   // conv input side: 16
	Batch    int   // MLP inputs per measurement: 128
	// ConvValues is the number of activations a conv measurement averages
	// (batch × side² × channels); the batch is chosen to reach it: 65,536.
	ConvValues int
	Seeds      int // initialisations: 50
	Seed       uint64
}

// DefaultVariance is issue #19's protocol: 50 seeds, an MLP of width 200
// and convolutional nets of 16, 64 and 256 channels, zero and circular
// padding.
func DefaultVariance() VarianceConfig {
	return VarianceConfig{Blocks: 20, Width: 200, Channels: []int{16, 64, 256}, Side: 16, Batch: 128, ConvValues: 65536, Seeds: 50, Seed: 1}
}

// QuickVariance is a seconds-long version for the tests.
func QuickVariance() VarianceConfig {
	return VarianceConfig{Blocks: 12, Width: 200, Channels: []int{16, 64}, Side: 8, Batch: 64, ConvValues: 8192, Seeds: 6, Seed: 1}
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
	// circular pads the branch's input circularly (the conv has no
	// padding of its own).
	circular bool
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
		a := ag.ReLU(in)
		if b.circular {
			a = circularPad(a)
		}
		f = b.Conv.Forward(a)
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
	InLin    *nn.Linear
	InConv   *nn.Conv2d
	Blocks   []*varBlock
	circular bool
}

// newVarNet builds a network; channels 0 makes an MLP of width c.Width.
func newVarNet(c VarianceConfig, v Variant, channels int, circular bool, inCh int, rng *tensor.RNG) *varNet {
	n := &varNet{circular: circular}
	pad := 1
	if circular {
		pad = 0 // the input is padded circularly before each convolution
	}
	conv := channels > 0
	if conv {
		n.InConv = nn.NewConv2d(rng, inCh, channels, 3, nn.ConvOptions{Padding: pad})
		in, _ := n.InConv.Fans()
		nn.InitKaimingNormal(rng, n.InConv.Weight.Data, in, 1)
	} else {
		n.InLin = nn.NewLinear(rng, inCh, c.Width, false)
		nn.InitKaimingNormal(rng, n.InLin.Weight.Data, inCh, 1)
	}
	for i := 0; i < c.Blocks; i++ {
		b := &varBlock{mode: v, circular: circular}
		ch := c.Width
		if conv {
			ch = channels
			b.Conv = nn.NewConv2d(rng, channels, channels, 3, nn.ConvOptions{Padding: pad, Bias: true})
			nn.HeNormal(rng, b.Conv, nn.FanIn)
		} else {
			b.Lin = nn.NewLinear(rng, c.Width, c.Width, true)
			nn.HeNormal(rng, b.Lin, nn.FanIn)
		}
		if v == BNResidual {
			b.BN = nn.NewBatchNorm(ch)
		}
		n.Blocks = append(n.Blocks, b)
	}
	return n
}

// circularPad pads an NHWC map by one pixel on every side with the pixels
// of the opposite edge (PyTorch's padding_mode="circular"), so that every
// output of a 3×3 convolution sums nine inputs, as in the infinite plane.
func circularPad(x *ag.Value) *ag.Value {
	s := x.Data.Shape
	h, w := s[1], s[2]
	x = ag.Concat(1, ag.Crop(x, h-1, 0, 1, w), x, ag.Crop(x, 0, 0, 1, w))
	return ag.Concat(2, ag.Crop(x, 0, w-1, h+2, 1), x, ag.Crop(x, 0, 0, h+2, 1))
}

func (n *varNet) input(x *ag.Value) *ag.Value {
	if n.InLin != nil {
		return n.InLin.Forward(x)
	}
	if n.circular {
		x = circularPad(x)
	}
	return n.InConv.Forward(x)
}

// measure returns the variance of the input to block 1 and of every block's
// output (index 0…Blocks) and, with grads, of the gradient there for a
// random projection of the last output.
func (n *varNet) measure(x *tensor.Tensor, rng *tensor.RNG, grads bool) (act, grad []float64) {
	if !grads {
		h := n.input(ag.Constant(x))
		act = append(act, variance(h.Data.Data))
		for _, b := range n.Blocks {
			h = b.Forward(h)
			act = append(act, variance(h.Data.Data))
		}
		return act, nil
	}
	tape := ag.NewTape()
	h := n.input(tape.Constant(x))
	hs := []*ag.Value{h}
	for _, b := range n.Blocks {
		h = b.Forward(h)
		hs = append(hs, h)
	}
	for _, v := range hs {
		v.RetainGrad()
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

// VarianceCurve is one network's measurements, summarised over seeds.
type VarianceCurve struct {
	Variant Variant `json:"variant"`
	Network string  `json:"network"` // "mlp" or "conv"
	// Width is the MLP's units or the conv net's channels.
	Width   int    `json:"width"`
	Padding string `json:"padding,omitempty"` // conv: "zero" or "circular"
	Seeds   int    `json:"seeds"`
	// Act is the seed mean of the activation variance after each block
	// (index 0: the input to block 1); Grad the same for the gradient
	// (MLP only).
	Act  []float64 `json:"activation_variance"`
	Grad []float64 `json:"gradient_variance,omitempty"`
	// Log2Fit is the least-squares slope of log2(Act) per block;
	// PerBlock (Act_L − Act_0)/L; Ratio the seed mean of each seed's
	// last/first variance, RatioSD its standard deviation over seeds and
	// Log2SD that of log2(last/first): the single-draw spread.
	Log2Fit  float64 `json:"log2_variance_slope"`
	PerBlock float64 `json:"linear_growth_per_block"`
	Ratio    float64 `json:"last_over_first"`
	RatioSD  float64 `json:"last_over_first_sd"`
	Log2SD   float64 `json:"log2_last_over_first_sd"`
}

func (v VarianceCurve) label() string {
	if v.Network == "mlp" {
		return fmt.Sprintf("MLP, width %d", v.Width)
	}
	return fmt.Sprintf("conv, %d channels, %s padding", v.Width, v.Padding)
}

// MinVarianceSeeds is the fewest seeds Variance takes: the spread of the
// last/first ratio over the seeds, which its figure draws on a log scale,
// needs two.
const MinVarianceSeeds = 2

// Variance runs the experiment: for each variant and network (an MLP and
// convolutional nets of each channel count with zero and circular
// padding), the variance after every block on Gaussian inputs, over seeds.
func Variance(ctx context.Context, c VarianceConfig, out string) ([]VarianceCurve, error) {
	if c.Blocks < 1 || c.Width < 1 || c.Batch < 1 || c.Seeds < MinVarianceSeeds || c.Side < 3 || c.ConvValues < 1 {
		return nil, fmt.Errorf("experiments: variance needs at least one block, unit and input, %d seeds and a side ≥ 3; got %d blocks, width %d, batch %d, %d seeds, side %d", MinVarianceSeeds, c.Blocks, c.Width, c.Batch, c.Seeds, c.Side)
	}
	for _, ch := range c.Channels {
		if ch < 1 {
			return nil, fmt.Errorf("experiments: variance: %d channels", ch)
		}
	}
	r, err := NewReport(out, "Activation variance at initialisation")
	if err != nil {
		return nil, err
	}
	defer r.abandon()
	type netCfg struct {
		channels int
		circular bool
	}
	nets := []netCfg{{0, false}}
	for _, ch := range c.Channels {
		nets = append(nets, netCfg{ch, false}, netCfg{ch, true})
	}
	var curves []VarianceCurve
	for ni, nc := range nets {
		for vi, v := range variants {
			vc := VarianceCurve{Variant: v, Network: "mlp", Width: c.Width, Seeds: c.Seeds}
			if nc.channels > 0 {
				vc.Network, vc.Width, vc.Padding = "conv", nc.channels, map[bool]string{false: "zero", true: "circular"}[nc.circular]
			}
			vc.Act = make([]float64, c.Blocks+1)
			var ratios, logs []float64
			for s := range c.Seeds {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				rng := tensor.NewRNG(mixSeed(c.Seed, uint64((s*len(nets)+ni)*len(variants)+vi)))
				var x *tensor.Tensor
				if nc.channels == 0 {
					x = rng.Randn(c.Batch, c.Width)
				} else {
					n := max(1, c.ConvValues/(c.Side*c.Side*nc.channels))
					x = rng.Randn(n, c.Side, c.Side, 1)
				}
				net := newVarNet(c, v, nc.channels, nc.circular, x.Shape[len(x.Shape)-1], rng)
				act, grad := net.measure(x, rng, nc.channels == 0)
				for k := range act {
					vc.Act[k] += act[k] / float64(c.Seeds)
				}
				if grad != nil {
					if vc.Grad == nil {
						vc.Grad = make([]float64, len(grad))
					}
					for k := range grad {
						vc.Grad[k] += grad[k] / float64(c.Seeds)
					}
				}
				ratios = append(ratios, act[c.Blocks]/act[0])
				logs = append(logs, math.Log2(act[c.Blocks]/act[0]))
			}
			l2 := make([]float64, len(vc.Act))
			for i, a := range vc.Act {
				l2[i] = math.Log2(a)
			}
			vc.Log2Fit, _ = fitLine(seq(0, c.Blocks), l2)
			vc.PerBlock = (vc.Act[c.Blocks] - vc.Act[0]) / float64(c.Blocks)
			vc.Ratio, vc.RatioSD = meanSpread(ratios)
			_, vc.Log2SD = meanSpread(logs)
			curves = append(curves, vc)
		}
	}
	if err := varianceFigures(r, c, curves); err != nil {
		return nil, err
	}
	r.Printf("He initialisation (fan-in, gain √2) for every block, f(h) = W·relu(h); the input layer preserves variance (gain 1); Gaussian inputs. %d blocks; MLP width %d (%d inputs), conv nets of 3×3 convolutions on %d×%d maps with %v channels (batches of about %d values), zero or circular padding. Means over %d seeds (seed %d).\n",
		c.Blocks, c.Width, c.Batch, c.Side, c.Side, c.Channels, c.ConvValues, c.Seeds, c.Seed)
	r.Printf("| network | variant | log2-variance slope per block | growth per block | last/first: mean ± sd over seeds | sd of log2(last/first) |\n|---|---|---|---|---|---|")
	for _, v := range curves {
		r.Printf("| %s | %s | %.3f | %.3g | %.3g ± %.2g | %.2f |", v.label(), v.Variant, v.Log2Fit, v.PerBlock, v.Ratio, v.RatioSD, v.Log2SD)
	}
	r.Printf("\nTheory (Prince, Understanding Deep Learning, Fig. 11.6): without normalisation each residual block doubles the variance (log2 slope 1); multiplying each block's output by 1/√2 holds it; batch norm at the start of each branch makes it grow linearly (block k adds the branch's unit variance: ≈ k+1); a plain He-initialised network holds it too, but has no skip. All four hold for the expectation over initialisations; one draw scatters around it, more for narrower nets (the spread column).")
	if err := r.Claims(varianceClaims(c, curves)); err != nil {
		return nil, err
	}
	if err := r.JSON("variance.json", curves); err != nil {
		return nil, err
	}
	return curves, r.Close()
}

// varianceClaims applies issue #19's criteria to the MLP and to the conv
// nets of at least 64 channels.
func varianceClaims(c VarianceConfig, curves []VarianceCurve) []Claim {
	const src = "Prince, Understanding Deep Learning, Fig. 11.6"
	var claims []Claim
	for _, v := range curves {
		if v.Network == "conv" && v.Width < 64 {
			continue
		}
		var cl Claim
		switch v.Variant {
		case Residual:
			cl = Within(v.label()+": residual blocks double the variance (log2 slope of the seed-mean variance per block)", src, v.Log2Fit, 1, 0.05)
		case BNResidual:
			cl = Within(v.label()+": with batch norm each block adds 1 to the variance (seed-mean growth per block)", src, v.PerBlock, 1, 0.05)
		case ScaledRes:
			cl = Within(v.label()+": residual blocks scaled by 1/√2 hold the variance (seed mean of last/first)", src, v.Ratio, 1, 0.1)
			cl.Spread = v.RatioSD / math.Sqrt(float64(v.Seeds))
		case Plain:
			cl = Within(v.label()+": a plain He-initialised net holds the variance (seed mean of last/first)", src, v.Ratio, 1, 0.1)
			cl.Spread = v.RatioSD / math.Sqrt(float64(v.Seeds))
		}
		cl.Seeds = v.Seeds
		claims = append(claims, cl)
	}
	return claims
}

// varianceFigures draws the seed-mean curves of every network and the
// single-draw spread against width.
func varianceFigures(r *Report, c VarianceConfig, curves []VarianceCurve) error {
	if err := r.Figure("variance.png", 3, 420, 330, variancePanels(c, curves)...); err != nil {
		return err
	}
	// Spread against width: the sd over seeds of log2(last/first) for the
	// plain and scaled nets, by channel count.
	var lines []Line
	for pi, pad := range []string{"zero", "circular"} {
		for vi, want := range []Variant{Plain, ScaledRes} {
			var x, y []float64
			for _, v := range curves {
				if v.Network == "conv" && v.Padding == pad && v.Variant == want {
					x, y = append(x, float64(v.Width)), append(y, v.Log2SD)
				}
			}
			if len(x) > 0 {
				lines = append(lines, Line{Label: fmt.Sprintf("conv %s, %s padding", want, pad), X: x, Y: y, Color: vi, Dashed: pi == 0})
			}
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return r.Figure("spread.png", 1, 520, 380, Panel{Title: "Spread of one draw: sd over seeds of log2(last/first variance)", XLabel: "channels", YLabel: "sd of log2 ratio", LogX: true, LogY: true, Lines: lines})
}

// variancePanels returns a panel per network of its variants' seed-mean
// activation variance against the two theories and, beside the MLP's, a
// panel of its gradient variance: every curve with a legend entry (the
// gradients, drawn dashed in the activations' panel, had none, and
// dashes there meant theory too).
func variancePanels(c VarianceConfig, curves []VarianceCurve) []Panel {
	ks := seq(0, c.Blocks)
	var panels []Panel
	for i := 0; i < len(curves); i += len(variants) {
		var lines, grads []Line
		for vi, v := range curves[i : i+len(variants)] {
			lines = append(lines, Line{Label: string(v.Variant), X: ks, Y: v.Act, Color: vi})
			if v.Grad != nil {
				grads = append(grads, Line{Label: string(v.Variant), X: ks, Y: v.Grad, Color: vi})
			}
		}
		v0, b0 := curves[i+1].Act[0], curves[i+3].Act[0]
		dbl, lin := make([]float64, len(ks)), make([]float64, len(ks))
		for k := range ks {
			dbl[k], lin[k] = v0*math.Pow(2, ks[k]), b0+ks[k]
		}
		lines = append(lines, Line{Label: "theory: doubles", X: ks, Y: dbl, Color: 7, Dashed: true},
			Line{Label: "theory: +1 a block (BN)", X: ks, Y: lin, Color: 6, Dashed: true})
		panels = append(panels, Panel{Title: curves[i].label() + fmt.Sprintf(" (mean of %d seeds)", c.Seeds), XLabel: "block", YLabel: "variance", LogY: true, Lines: lines})
		if grads != nil {
			panels = append(panels, Panel{Title: curves[i].label() + fmt.Sprintf(": gradient variance (mean of %d seeds)", c.Seeds),
				XLabel: "block", YLabel: "gradient variance", LogY: true, Lines: grads})
		}
	}
	return panels
}
