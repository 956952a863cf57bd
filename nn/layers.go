package nn

import (
	"fmt"
	"math"

	"github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/tensor"
)

// label is embedded in layers so that Name can give them their full name
// for error messages.
type label struct{ name string }

func (l *label) setName(n string) { l.name = n }

func (l *label) describe(kind string) string {
	if l.name == "" {
		return kind
	}
	return fmt.Sprintf("%s %q", kind, l.name)
}

// Conv2d is a 2-D convolution over NHWC images (PyTorch's nn.Conv2d without
// groups). Weight is stored HWIO [KH,KW,In,Out]; its state-dict entry is
// marked so that interop converts it to PyTorch's OIHW.
type Conv2d struct {
	label
	Weight *autograd.Value
	Bias   *autograd.Value // nil without bias
	Geom   autograd.ConvParams
	// SamePad recomputes Geom.Pad for each input so that the output is
	// ceil(input/stride) (extra padding at the bottom/right).
	SamePad bool
}

// ConvOptions are the optional settings of NewConv2d and
// NewConvTranspose2d.
type ConvOptions struct {
	Stride   int
	Padding  int // on every side; see Pad for asymmetric padding
	Dilation int
	// Pad, when not zero, is explicit padding (top, left, bottom, right)
	// and overrides Padding.
	Pad [4]int
	// Same pads so that the output is ceil(input/stride) (ONNX SAME_UPPER).
	Same          bool
	Bias          bool
	OutputPadding int // transposed convolution only
}

// NewConv2d returns a k×k convolution from in to out channels, initialised
// as PyTorch does by default (uniform in ±1/√fan_in; see the Init
// functions for He and Glorot initialisation).
func NewConv2d(rng *tensor.RNG, in, out, k int, o ConvOptions) *Conv2d {
	c := &Conv2d{Weight: autograd.Param(tensor.New(k, k, in, out), "weight")}
	c.Geom = o.geometry(k)
	c.SamePad = o.Same
	fanIn := in * k * k
	InitUniform(rng, c.Weight.Data, 1/math.Sqrt(float64(fanIn)))
	if o.Bias {
		c.Bias = autograd.Param(tensor.New(out), "bias")
		InitUniform(rng, c.Bias.Data, 1/math.Sqrt(float64(fanIn)))
	}
	return c
}

func (o ConvOptions) geometry(k int) autograd.ConvParams {
	s, d := max(o.Stride, 1), max(o.Dilation, 1)
	p := autograd.ConvParams{Stride: [2]int{s, s}, Dilation: [2]int{d, d}, Pad: autograd.SymmetricPad(o.Padding, o.Padding),
		OutputPadding: [2]int{o.OutputPadding, o.OutputPadding}}
	if o.Pad != [4]int{} {
		p.Pad = o.Pad
	}
	return p
}

// Forward convolves x [N,H,W,In].
func (c *Conv2d) Forward(x *autograd.Value) *autograd.Value {
	y := autograd.Conv2d(x, c.Weight, c.Bias, c.geometryFor(x))
	autograd.Observe(c, x, y)
	return y
}

// geometryFor checks x's channels and returns the convolution's geometry
// for it (SamePad depends on the input's size).
func (c *Conv2d) geometryFor(x *autograd.Value) autograd.ConvParams {
	ws := c.Weight.Data.Shape
	if xs := x.Data.Shape; len(xs) != 4 || xs[3] != ws[2] {
		panic(fmt.Sprintf("nn: %s expects NHWC input with %d channels, got %v (weight %v)", c.describe("Conv2d"), ws[2], xs, ws))
	}
	g := c.Geom
	if c.SamePad {
		xs := x.Data.Shape
		g.Pad[0], g.Pad[2] = autograd.SamePad(xs[1], ws[0], max(g.Stride[0], 1), max(g.Dilation[0], 1), false)
		g.Pad[1], g.Pad[3] = autograd.SamePad(xs[2], ws[1], max(g.Stride[1], 1), max(g.Dilation[1], 1), false)
	}
	return g
}

// NamedTensors lists "weight" (stored HWIO, LayoutHWIO) and, when the
// layer has one, "bias", sharing the parameters' tensors (not copies).
func (c *Conv2d) NamedTensors() []Entry {
	es := []Entry{{Name: "weight", Tensor: c.Weight.Data, Param: c.Weight, Layout: LayoutHWIO}}
	if c.Bias != nil {
		es = append(es, Entry{Name: "bias", Tensor: c.Bias.Data, Param: c.Bias})
	}
	return es
}

// Fans returns the fan-in and fan-out of the weight (k·k·in, k·k·out).
func (c *Conv2d) Fans() (in, out int) {
	s := c.Weight.Data.Shape
	return s[0] * s[1] * s[2], s[0] * s[1] * s[3]
}

// ConvTranspose2d is PyTorch's nn.ConvTranspose2d (no groups) on NHWC
// images. Weight is stored [KH,KW,Out,In] (PyTorch: [In,Out,KH,KW]).
type ConvTranspose2d struct {
	label
	Weight *autograd.Value
	Bias   *autograd.Value
	Geom   autograd.ConvParams
}

// NewConvTranspose2d returns a k×k transposed convolution from in to out
// channels with PyTorch's default initialisation (fan_in computed, as in
// PyTorch, from the weight's second axis: out·k·k).
func NewConvTranspose2d(rng *tensor.RNG, in, out, k int, o ConvOptions) *ConvTranspose2d {
	c := &ConvTranspose2d{Weight: autograd.Param(tensor.New(k, k, out, in), "weight")}
	c.Geom = o.geometry(k)
	bound := 1 / math.Sqrt(float64(out*k*k))
	InitUniform(rng, c.Weight.Data, bound)
	if o.Bias {
		c.Bias = autograd.Param(tensor.New(out), "bias")
		InitUniform(rng, c.Bias.Data, bound)
	}
	return c
}

// Forward applies the transposed convolution to x [N,H,W,In].
func (c *ConvTranspose2d) Forward(x *autograd.Value) *autograd.Value {
	ws := c.Weight.Data.Shape
	if xs := x.Data.Shape; len(xs) != 4 || xs[3] != ws[3] {
		panic(fmt.Sprintf("nn: %s expects NHWC input with %d channels, got %v (weight %v)", c.describe("ConvTranspose2d"), ws[3], xs, ws))
	}
	y := autograd.ConvTranspose2d(x, c.Weight, c.Bias, c.Geom)
	autograd.Observe(c, x, y)
	return y
}

// NamedTensors lists "weight" (stored HWOI, LayoutHWOI) and, when the
// layer has one, "bias", sharing the parameters' tensors (not copies).
func (c *ConvTranspose2d) NamedTensors() []Entry {
	es := []Entry{{Name: "weight", Tensor: c.Weight.Data, Param: c.Weight, Layout: LayoutHWOI}}
	if c.Bias != nil {
		es = append(es, Entry{Name: "bias", Tensor: c.Bias.Data, Param: c.Bias})
	}
	return es
}

// BatchNorm is PyTorch's BatchNorm2d on NHWC images and BatchNorm1d on
// [N,C] features (normalisation over every axis but the last). It starts
// in training mode, with γ = 1, β = 0, running mean 0 and variance 1.
type BatchNorm struct {
	label
	Weight, Bias      *autograd.Value // γ and β; nil when not affine
	RunningMean       *tensor.Tensor
	RunningVar        *tensor.Tensor
	NumBatchesTracked int64
	Momentum, Eps     float64
	Training          bool
	// TrackRunningStats false normalises with batch statistics in both
	// modes and never updates the running ones.
	TrackRunningStats bool
	// Frozen keeps the batch norm in evaluation mode whatever SetTraining
	// says (see Freeze).
	Frozen bool `nn:"-"`
	// Sync, when set, synchronises the batch statistics of training across
	// processes (see autograd.BatchNormParams.Sync).
	Sync func(sums []float64) `nn:"-"`
	// folded: FoldBatchNorm moved this batch norm into the convolution
	// before it; Forward is the identity.
	folded bool
}

// NewBatchNorm returns a batch norm over c channels with PyTorch's defaults
// (momentum 0.1, eps 1e-5, affine, tracking running statistics).
func NewBatchNorm(c int) *BatchNorm {
	return &BatchNorm{
		Weight:      autograd.Param(tensor.Full(1, c), "weight"),
		Bias:        autograd.Param(tensor.New(c), "bias"),
		RunningMean: tensor.New(c), RunningVar: tensor.Full(1, c),
		Momentum: 0.1, Eps: 1e-5, Training: true, TrackRunningStats: true,
	}
}

// Forward normalises x (or returns it, once folded into the convolution
// before it by FoldBatchNorm).
func (b *BatchNorm) Forward(x *autograd.Value) *autograd.Value {
	if b.folded {
		return x
	}
	rm, rv, p := b.prepare(x)
	y := autograd.BatchNorm(x, b.Weight, b.Bias, rm, rv, p)
	autograd.Observe(b, x, y)
	return y
}

// prepare checks x's channels, counts a training batch and returns the
// running statistics and parameters that the batch norm of x uses.
func (b *BatchNorm) prepare(x *autograd.Value) (rm, rv *tensor.Tensor, p autograd.BatchNormParams) {
	xs := x.Data.Shape
	if c := b.RunningMean.Len(); len(xs) < 2 || xs[len(xs)-1] != c {
		panic(fmt.Sprintf("nn: %s expects %d channels on the last axis, got %v", b.describe("BatchNorm"), c, xs))
	}
	rm, rv = b.RunningMean, b.RunningVar
	training := b.Training || !b.TrackRunningStats
	if !b.TrackRunningStats {
		rm, rv = nil, nil
	} else if b.Training && !x.ShapeOnly() {
		b.NumBatchesTracked++
	}
	return rm, rv, autograd.BatchNormParams{Training: training, Momentum: b.Momentum, Eps: b.Eps, Sync: b.Sync}
}

// SetTraining selects batch (true) or running (false) statistics; a
// Frozen batch norm stays in evaluation mode.
func (b *BatchNorm) SetTraining(t bool) { b.Training = t && !b.Frozen }

// IsTraining reports whether b uses batch statistics.
func (b *BatchNorm) IsTraining() bool { return b.Training }

// NamedTensors lists weight, bias, running_mean and running_var
// (torchvision's num_batches_tracked is the NumBatchesTracked field).
func (b *BatchNorm) NamedTensors() []Entry {
	var es []Entry
	if b.Weight != nil {
		es = append(es, Entry{Name: "weight", Tensor: b.Weight.Data, Param: b.Weight})
	}
	if b.Bias != nil {
		es = append(es, Entry{Name: "bias", Tensor: b.Bias.Data, Param: b.Bias})
	}
	return append(es, Entry{Name: "running_mean", Tensor: b.RunningMean}, Entry{Name: "running_var", Tensor: b.RunningVar})
}

// Linear is PyTorch's nn.Linear: y = x·Wᵀ + b with W [out,in].
type Linear struct {
	label
	Weight *autograd.Value
	Bias   *autograd.Value
}

// NewLinear returns a linear layer with PyTorch's default initialisation
// (uniform in ±1/√in for weight and bias).
func NewLinear(rng *tensor.RNG, in, out int, bias bool) *Linear {
	l := &Linear{Weight: autograd.Param(tensor.New(out, in), "weight")}
	bound := 1 / math.Sqrt(float64(in))
	InitUniform(rng, l.Weight.Data, bound)
	if bias {
		l.Bias = autograd.Param(tensor.New(out), "bias")
		InitUniform(rng, l.Bias.Data, bound)
	}
	return l
}

// Forward applies the layer to x [N,in].
func (l *Linear) Forward(x *autograd.Value) *autograd.Value {
	ws := l.Weight.Data.Shape
	if xs := x.Data.Shape; len(xs) != 2 || xs[1] != ws[1] {
		panic(fmt.Sprintf("nn: %s expects [N %d] input, got %v (weight %v)", l.describe("Linear"), ws[1], xs, ws))
	}
	y := autograd.Linear(x, l.Weight, l.Bias)
	autograd.Observe(l, x, y)
	return y
}

// NamedTensors lists "weight" ([out,in], as PyTorch stores it) and, when
// the layer has one, "bias", sharing the parameters' tensors (not copies).
func (l *Linear) NamedTensors() []Entry {
	es := []Entry{{Name: "weight", Tensor: l.Weight.Data, Param: l.Weight}}
	if l.Bias != nil {
		es = append(es, Entry{Name: "bias", Tensor: l.Bias.Data, Param: l.Bias})
	}
	return es
}

// Fans returns the weight's fan-in (input features) and fan-out (output
// features), which the initialisers scale by.
func (l *Linear) Fans() (in, out int) { return l.Weight.Data.Shape[1], l.Weight.Data.Shape[0] }

func observed(layer any, in, out *autograd.Value) *autograd.Value {
	autograd.Observe(layer, in, out)
	return out
}

// ReLU is max(x, 0) elementwise as a layer (nn.ReLU), with no parameters.
type ReLU struct{}

// Forward returns max(x, 0).
func (r ReLU) Forward(x *autograd.Value) *autograd.Value { return observed(r, x, autograd.ReLU(x)) }

// Identity is a layer that passes its input through unchanged (no copy), a
// placeholder where a block has no shortcut projection or head.
type Identity struct{}

// Forward returns x itself.
func (Identity) Forward(x *autograd.Value) *autograd.Value { return x }

// MaxPool2d is max pooling over NHWC images as a layer (nn.MaxPool2d); P
// holds the window, stride, padding and dilation.
type MaxPool2d struct{ P autograd.PoolParams }

// NewMaxPool2d returns k×k max pooling with the given stride and padding.
func NewMaxPool2d(k, stride, pad int) MaxPool2d {
	return MaxPool2d{autograd.PoolParams{Kernel: [2]int{k, k}, Stride: [2]int{stride, stride}, Pad: autograd.SymmetricPad(pad, pad)}}
}

// Forward max-pools x [N,H,W,C] with m.P (padding never wins the max).
func (m MaxPool2d) Forward(x *autograd.Value) *autograd.Value {
	return observed(m, x, autograd.MaxPool2d(x, m.P))
}

// AvgPool2d is average pooling as a layer.
type AvgPool2d struct{ P autograd.PoolParams }

// Forward average-pools x [N,H,W,C] with m.P.
func (m AvgPool2d) Forward(x *autograd.Value) *autograd.Value {
	return observed(m, x, autograd.AvgPool2d(x, m.P))
}

// GlobalAvgPool averages NHWC images to [N,C] (AdaptiveAvgPool2d(1)
// followed by flatten).
type GlobalAvgPool struct{}

// Forward returns the mean of x [N,H,W,C] over H and W, as [N,C].
func (g GlobalAvgPool) Forward(x *autograd.Value) *autograd.Value {
	return observed(g, x, autograd.GlobalAvgPool(x))
}

// Flatten reshapes to [N, rest].
type Flatten struct{}

// Forward flattens x from axis 1.
func (f Flatten) Forward(x *autograd.Value) *autograd.Value {
	return observed(f, x, autograd.Flatten(x, 1))
}

// Dropout zeroes inputs with probability P in training mode.
type Dropout struct {
	P        float64
	Training bool
	RNG      *tensor.RNG `nn:"-"`
}

// NewDropout returns dropout with probability p drawing from rng, in
// training mode.
func NewDropout(p float64, rng *tensor.RNG) *Dropout { return &Dropout{P: p, Training: true, RNG: rng} }

// Forward zeroes each element with probability P and scales the rest by
// 1/(1−P) in training mode; otherwise it returns x.
func (d *Dropout) Forward(x *autograd.Value) *autograd.Value {
	return autograd.Dropout(x, d.P, d.Training, d.RNG)
}

// SetTraining switches dropout on (true) or off.
func (d *Dropout) SetTraining(t bool) { d.Training = t }

// IsTraining reports whether dropout is on.
func (d *Dropout) IsTraining() bool { return d.Training }

// Scale multiplies by a constant (e.g. 1/√2 on a residual branch).
type Scale struct{ S float32 }

// Forward returns S·x.
func (s Scale) Forward(x *autograd.Value) *autograd.Value { return autograd.Scale(x, s.S) }

// Fans returns the fan-in and fan-out as PyTorch computes them for a
// transposed convolution (from its [In,Out,KH,KW] weight: fan_in = out·k·k).
func (c *ConvTranspose2d) Fans() (in, out int) {
	s := c.Weight.Data.Shape
	return s[0] * s[1] * s[2], s[0] * s[1] * s[3]
}
