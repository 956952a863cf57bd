// Package quant quantizes residual's networks to int8 after training and
// runs them: per-output-channel symmetric int8 weights, u8 activations
// with a per-tensor scale and zero point chosen by calibration on sample
// batches (min/max, percentile or entropy), batch norms folded into the
// convolutions first. Convolutions and linear layers run on
// internal/kernels' int8 kernels (int32 sums, exact) with the bias, the
// residual addition and the ReLU fused into the requantizing epilogue,
// so the activations stay u8 from the input to the logits, which come
// out in float32. It quantizes ResNet-style classifiers (convolutions,
// batch norms, scales, ReLU, max pooling, global average pooling,
// residual additions, padding and shortcut A's subsampling, linear
// layers); a network with other operations, such as a U-Net's transposed
// convolutions and concatenations, is refused by Quantize, naming the
// operation.
//
// The arithmetic is ONNX's QDQ model's (QuantizeLinear rounding half to
// even, int32 biases in units of the input scale times the weight
// scale), so a quantized model exports to QDQ ONNX (interop/onnx) and
// ONNX Runtime computes the same thing.
//
// A quantized model is stored in an int8 checkpoint (checkpoint.WriteInt8):
// the weights as I8, their scales as F32, the biases as I32 under the
// layers' state-dict names, and the activations' scales and zero points in
// the metadata (Params).
//
// Quantize a float network with Quantize, giving it calibration batches,
// and run the result with Model.Forward; checkpoint.WriteInt8 stores it,
// and infer.Open runs an int8 checkpoint as it runs a float one.
package quant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/internal/typednil"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Options are the calibration's settings.
type Options struct {
	// Method is MinMax, Percentile (if "") or Entropy; FromQDQ is no
	// calibration and is refused.
	Method Method
	// Percentile is the percentile of magnitudes kept by the Percentile
	// method (99.99 if 0), in (50, 100].
	Percentile float64
}

// QParams are a u8 tensor's quantization: real = Scale·(q − Zero).
type QParams struct {
	Scale float64 `json:"scale"`
	Zero  int     `json:"zero"`
}

// fromRange returns the parameters that map [lo, hi] (lo ≤ 0 ≤ hi) onto
// 0…255 with 0 represented exactly. The scale is rounded to float32, the
// precision ONNX stores it in, so an exported QDQ model holds exactly the
// scales the int8 graph computes with.
func fromRange(lo, hi float64) QParams {
	if hi-lo <= 0 || math.IsNaN(hi-lo) || math.IsInf(hi-lo, 0) {
		return QParams{Scale: 1}
	}
	s := float64(float32((hi - lo) / 255))
	if s < 0x1p-126 { // a range below float32's normal steps: no signal to keep
		return QParams{Scale: 1}
	}
	s = min(s, float64(float32(math.MaxFloat32/256))) // within what checkQParams takes
	z := int(math.RoundToEven(-lo / s))
	return QParams{Scale: s, Zero: min(max(z, 0), 255)}
}

// Params are a quantized model's calibration record, stored in an int8
// checkpoint's metadata: the method and the scale and zero point of each
// activation the int8 graph keeps, by the index of the traced operation
// that produces it (Input is the network's input).
type Params struct {
	Version int             `json:"version"`
	Method  Method          `json:"method"`
	Input   QParams         `json:"input"`
	Ops     int             `json:"ops"` // operations in the trace, a check that the graph is the one calibrated
	Acts    map[int]QParams `json:"activations"`
	// Affine holds, by the same index, the per-channel y = A·x + B of
	// each batch norm that could not be folded into a convolution (and
	// each scale): an int8 checkpoint stores no float tensors, so New
	// takes them from here, not from the network it is given.
	Affine map[int]Affine `json:"affine,omitempty"`
}

// Affine is a per-channel y = A[c]·x + B[c].
type Affine struct {
	A []float32 `json:"a"`
	B []float32 `json:"b"`
}

// Layer is one quantized convolution or linear layer's tensors, as stored.
type Layer struct {
	// W is [K][N]: K = KH·KW·IC (HWIO) inputs, N output channels.
	W []int8
	// Scale is each output channel's weight scale: real = Scale[n]·W.
	Scale []float32
	// Bias is in units of the input's scale times Scale[n] (nil: none).
	Bias []int32
	// KH, KW, IC, OC are the weight's dimensions (1, 1, in, out for a
	// linear layer).
	KH, KW, IC, OC int
}

// Model is a quantized network, ready to run. It is safe for concurrent
// use.
type Model struct {
	g      *graph
	params Params
	qp     []QParams // by value
	layers map[string]*Layer
	conv   []*convState // by node (nil for others)
	bufs   sync.Pool    // *buffers: a run's u8 values, for the next run to reuse
}

// convState is what a conv node needs at run time.
type convState struct {
	w    *kernels.Int8Weights
	mult []float32 // per channel: sx·sw/sy (sx·sw for a float output)
	bias []int32
}

// Quantize quantizes net (which it puts in evaluation mode and whose batch
// norms it folds, so net must not be trained afterwards) for inputs of the
// given shape [N,H,W,C]: batches yields calibration inputs of that shape
// (any N) until it returns nil. The weights get one symmetric int8 scale
// per output channel; each activation the int8 graph keeps gets a u8 scale
// and zero point from the values it took on the batches, by opt.Method.
// A nil net, batches or ctx, an input shape with a dimension < 1, an
// unknown method and a percentile outside (50, 100] are errors, as is a
// batch whose data does not fill its shape. It stops before each batch
// when ctx is done, returning ctx's error.
func Quantize(ctx context.Context, net nn.Layer, input []int, batches func() (*tensor.Tensor, error), opt Options) (*Model, error) {
	if ctx == nil {
		return nil, errors.New("quant: Quantize: nil context")
	}
	if typednil.Is(net) {
		return nil, errors.New("quant: no network to quantize (net is nil)")
	}
	if batches == nil {
		return nil, errors.New("quant: no calibration batches (batches is nil)")
	}
	if err := checkInput(input); err != nil {
		return nil, err
	}
	if opt.Method == "" {
		opt.Method = Percentile
	}
	if opt.Method == FromQDQ {
		return nil, fmt.Errorf("quant: method %q is not a calibration: it records the scales of an imported QDQ ONNX model (interop/onnx.ImportInt8); calibrate by minmax, percentile or entropy", FromQDQ)
	}
	if _, err := ParseMethod(string(opt.Method)); err != nil {
		return nil, err
	}
	if opt.Percentile == 0 {
		opt.Percentile = 99.99
	}
	if !(opt.Percentile > 50 && opt.Percentile <= 100) { // NaN included
		return nil, fmt.Errorf("quant: percentile %v outside (50, 100]", opt.Percentile)
	}
	if _, err := nn.FoldBatchNorm(net, input); err != nil {
		return nil, err
	}
	g, err := traceGraph(net, input)
	if err != nil {
		return nil, err
	}
	obs, err := calibrate(ctx, net, g, input, batches, opt.Method != MinMax)
	if err != nil {
		return nil, err
	}
	p := Params{Version: 1, Method: opt.Method, Ops: g.nops, Acts: map[int]QParams{}}
	lo, hi := obs[-1].rangeOf(opt.Method, opt.Percentile)
	p.Input = fromRange(lo, hi)
	for _, n := range g.nodes {
		if !calibrated(n.kind) {
			continue
		}
		o := obs[n.op]
		lo, hi := o.rangeOf(opt.Method, opt.Percentile)
		p.Acts[n.op] = fromRange(lo, hi)
		if n.kind == kAffine {
			if p.Affine == nil {
				p.Affine = map[int]Affine{}
			}
			p.Affine[n.op] = Affine{A: n.a, B: n.b}
		}
	}
	m := &Model{g: g, params: p}
	m.qp = m.valueParams()
	m.layers = map[string]*Layer{}
	for _, n := range g.nodes {
		if n.kind == kConv {
			m.layers[n.name] = quantizeLayer(n, m.qp[n.in[0]].Scale)
		}
	}
	if err := m.prepare(); err != nil {
		return nil, err
	}
	return m, nil
}

// checkInput checks the shape a network is quantized (or rebuilt) at:
// [N,H,W,C] or [N,inputs], every dimension ≥ 1, within package limits.
func checkInput(input []int) error {
	if len(input) < 2 {
		return fmt.Errorf("quant: input shape %v, want [N,H,W,C] (or [N,inputs]) with every dimension ≥ 1", input)
	}
	for _, d := range input {
		if d < 1 {
			return fmt.Errorf("quant: input shape %v, want [N,H,W,C] (or [N,inputs]) with every dimension ≥ 1", input)
		}
	}
	return limits.CheckElements("quant: input shape", input...)
}

// calibrated is whether a node's output gets its own scale (the others
// keep their input's).
func calibrated(k kind) bool { return k == kConv || k == kAdd || k == kAffine }

// valueParams derives every value's parameters from the calibration
// record: the input's, the calibrated nodes', and for the others their
// input's.
func (m *Model) valueParams() []QParams {
	qp := make([]QParams, m.g.nvals)
	qp[0] = m.params.Input
	for _, n := range m.g.nodes {
		if calibrated(n.kind) {
			qp[n.out] = m.params.Acts[n.op]
		} else {
			qp[n.out] = qp[n.in[0]]
		}
	}
	return qp
}

// quantizeLayer quantizes a conv node's float weights (per output channel,
// symmetric, ±127) and bias (int32, in units of sx·sw).
func quantizeLayer(n node, sx float64) *Layer {
	ws := n.w.Shape
	kh, kw, ic, oc := ws[0], ws[1], ws[2], ws[3]
	k := kh * kw * ic
	l := &Layer{W: make([]int8, k*oc), Scale: make([]float32, oc), KH: kh, KW: kw, IC: ic, OC: oc}
	for o := range oc {
		var amax float64
		for i := range k {
			amax = max(amax, math.Abs(float64(n.w.Data[i*oc+o])))
		}
		s := amax / 127
		if s < 0x1p-126 { // zero, or weights below float32's normal steps: nothing to keep
			s = 1
		}
		l.Scale[o] = float32(s)
		s = float64(l.Scale[o]) // quantize with the scale as stored
		for i := range k {
			q := math.RoundToEven(float64(n.w.Data[i*oc+o]) / s)
			l.W[i*oc+o] = int8(min(max(q, -127), 127))
		}
	}
	if n.bias != nil {
		l.Bias = make([]int32, oc)
		for o := range oc {
			q := math.RoundToEven(float64(n.bias[o]) / (sx * float64(l.Scale[o])))
			l.Bias[o] = int32(min(max(q, -maxBias), maxBias))
		}
	}
	return l
}

// maxBias bounds a quantized bias: a checkpoint stores it as I32 but the
// safetensors reader returns float32, exact to 2²⁴. A bias of 2²⁴
// accumulator units is beyond any output range a calibrated scale covers.
const maxBias = 1 << 24

// prepare builds the run-time state of the conv nodes from the layers.
func (m *Model) prepare() error {
	m.conv = make([]*convState, len(m.g.nodes))
	for i, n := range m.g.nodes {
		if n.kind != kConv {
			continue
		}
		l := m.layers[n.name]
		if l == nil {
			return fmt.Errorf("quant: no int8 weights for layer %q", n.name)
		}
		ws := n.w.Shape
		if l.KH != ws[0] || l.KW != ws[1] || l.IC != ws[2] || l.OC != ws[3] || len(l.W) != ws[0]*ws[1]*ws[2]*ws[3] || len(l.Scale) != ws[3] {
			return fmt.Errorf("quant: layer %q: int8 weights %dx%dx%dx%d (%d values, %d scales) for a layer of %v", n.name, l.KH, l.KW, l.IC, l.OC, len(l.W), len(l.Scale), ws)
		}
		if (l.Bias == nil) != (n.bias == nil) || (l.Bias != nil && len(l.Bias) != l.OC) {
			return fmt.Errorf("quant: layer %q: bias of %d values for a layer with %d outputs (bias %v)", n.name, len(l.Bias), l.OC, n.bias != nil)
		}
		for o, v := range l.Scale {
			if !(v >= 0x1p-126) || math.IsInf(float64(v), 0) { // as quantizeLayer makes them
				return fmt.Errorf("quant: layer %q: weight scale %d is %v (want finite and at least 2^-126, float32's smallest normal)", n.name, o, v)
			}
		}
		st := &convState{w: kernels.NewInt8Weights(l.W, l.KH*l.KW*l.IC, l.OC), mult: make([]float32, l.OC), bias: l.Bias}
		if st.bias == nil {
			st.bias = make([]int32, l.OC)
		}
		sx, sy := m.qp[n.in[0]].Scale, m.qp[n.out].Scale
		if n.out == m.g.output {
			sy = 1 // the logits come out in float32
		}
		for o := range l.OC {
			st.mult[o] = float32(sx * float64(l.Scale[o]) / sy)
		}
		m.conv[i] = st
	}
	return nil
}

// Layers returns the quantized layers by state-dict prefix (for writing
// them; not to be changed).
func (m *Model) Layers() map[string]*Layer { return m.layers }

// IsLinear reports whether the named layer is a linear layer (stored
// [out,in]) rather than a convolution.
func (m *Model) IsLinear(name string) bool {
	for _, n := range m.g.nodes {
		if n.kind == kConv && n.name == name {
			return n.linear
		}
	}
	return false
}

// Params returns the calibration record.
func (m *Model) Params() Params { return m.params }

// InputShape returns the input shape the model was traced at; it runs on
// any batch size of that image size.
func (m *Model) InputShape() []int { return append([]int(nil), m.g.input...) }

// New rebuilds a quantized model from its stored parts: net is the
// network built from the same config (its weights do not matter; its
// batch norms are folded and it must not be used elsewhere), input the
// shape it was quantized at.
func New(net nn.Layer, input []int, p Params, layers map[string]*Layer) (*Model, error) {
	if typednil.Is(net) {
		return nil, errors.New("quant: no network to rebuild (net is nil)")
	}
	if err := checkInput(input); err != nil {
		return nil, err
	}
	if p.Version != 1 {
		return nil, fmt.Errorf("quant: parameters version %d (this build reads 1)", p.Version)
	}
	if _, err := nn.FoldBatchNorm(net, input); err != nil {
		return nil, err
	}
	g, err := traceGraph(net, input)
	if err != nil {
		return nil, err
	}
	if g.nops != p.Ops {
		return nil, fmt.Errorf("quant: the model traces to %d operations, the parameters were calibrated on %d", g.nops, p.Ops)
	}
	if err := checkQParams("input", p.Input); err != nil {
		return nil, err
	}
	switch p.Method {
	case MinMax, Percentile, Entropy, FromQDQ:
	default:
		return nil, fmt.Errorf("quant: parameters: unknown method %q (minmax, percentile, entropy or %s)", p.Method, FromQDQ)
	}
	used := 0 // the activations and affines the graph reads: any other entry is not of this model
	for i, n := range g.nodes {
		if !calibrated(n.kind) {
			continue
		}
		if used++; n.kind == kAffine {
			used++
		}
		q, ok := p.Acts[n.op]
		if !ok {
			return nil, fmt.Errorf("quant: no activation scale for operation %d (%s)", n.op, n.name)
		}
		if err := checkQParams(fmt.Sprintf("activation %d", n.op), q); err != nil {
			return nil, err
		}
		if n.kind == kAffine {
			a, ok := p.Affine[n.op]
			c := n.shape[len(n.shape)-1]
			if !ok || len(a.A) != c || len(a.B) != c {
				return nil, fmt.Errorf("quant: operation %d (a batch norm not folded, or a scale) needs %d per-channel factors and offsets, the parameters hold %d and %d (quantized before they were recorded? quantize the float checkpoint again)", n.op, c, len(a.A), len(a.B))
			}
			for i := range c {
				if !finite(a.A[i]) || !finite(a.B[i]) {
					return nil, fmt.Errorf("quant: operation %d: affine channel %d is %v·x + %v", n.op, i, a.A[i], a.B[i])
				}
			}
			g.nodes[i].a, g.nodes[i].b = a.A, a.B
		}
	}
	if extra := len(p.Acts) + len(p.Affine) - used; extra != 0 {
		return nil, fmt.Errorf("quant: the parameters hold %d activation and %d affine entries, %d more than the model's operations read", len(p.Acts), len(p.Affine), extra)
	}
	m := &Model{g: g, params: p, layers: layers}
	m.qp = m.valueParams()
	if err := m.prepare(); err != nil {
		return nil, err
	}
	return m, nil
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// checkQParams refuses an activation's scale and zero point that no
// float32 computation could use: a scale that is not positive, or whose
// 8-bit values (up to ±255 steps) would leave float32's normal range (a
// scale of 1e300 made every output NaN), and a zero point outside 0…255.
func checkQParams(what string, q QParams) error {
	if !(q.Scale >= 0x1p-126 && q.Scale <= math.MaxFloat32/256) || q.Zero < 0 || q.Zero > 255 {
		return fmt.Errorf("quant: %s: scale %v and zero point %d (want a scale in [2^-126, float32's largest / 256], zero point in 0…255)", what, q.Scale, q.Zero)
	}
	return nil
}

// calibrate runs the float network on the calibration batches, observing
// the input (key −1) and every traced operation's output (by index).
func calibrate(ctx context.Context, net nn.Layer, g *graph, input []int, batches func() (*tensor.Tensor, error), hist bool) (map[int]*observer, error) {
	want := map[int]bool{}
	for _, n := range g.nodes {
		if calibrated(n.kind) {
			want[n.op] = true
		}
	}
	obs := map[int]*observer{-1: {}}
	for op := range want {
		obs[op] = &observer{}
	}
	nb := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		x, err := batches()
		if err != nil {
			return nil, fmt.Errorf("quant: calibration batch %d: %w", nb, err)
		}
		if x == nil {
			break
		}
		if x.Rank() != len(input) || !equalTail(x.Shape, input) || x.Shape[0] < 1 {
			return nil, fmt.Errorf("quant: calibration batch %d has shape %v, want %s", nb, x.Shape, batchOf(input))
		}
		if err := limits.CheckElements(fmt.Sprintf("quant: calibration batch %d", nb), x.Shape...); err != nil {
			return nil, err
		}
		if n := tensor.NumElements(x.Shape); len(x.Data) != n {
			return nil, fmt.Errorf("quant: calibration batch %d holds %d values for shape %v (%d)", nb, len(x.Data), x.Shape, n)
		}
		// A tracer sees an operation before it computes, so the outputs
		// are read after the pass; a training tape (unlike an inference
		// one) never reuses a buffer within the pass.
		tape := ag.NewTape()
		var outs []*ag.Value
		tape.SetTracer(func(op ag.Op) { outs = append(outs, op.Output) })
		if err := obs[-1].add(x.Data, hist); err != nil {
			return nil, fmt.Errorf("quant: calibration batch %d: the input: %w", nb, err)
		}
		if err := forward(net, tape.Constant(x)); err != nil {
			return nil, err
		}
		if len(outs) != g.nops {
			return nil, fmt.Errorf("quant: calibration batch %d traced %d operations, the graph has %d", nb, len(outs), g.nops)
		}
		for i, v := range outs {
			if want[i] {
				if err := obs[i].add(v.Tensor().Data, hist); err != nil {
					return nil, fmt.Errorf("quant: calibration batch %d: the output of operation %d (%s): %w; the float model computes non-finite values on the calibration data (are its weights finite?)", nb, i, opName(g, i), err)
				}
			}
		}
		tape.Reset()
		nb++
	}
	if nb == 0 {
		return nil, fmt.Errorf("quant: no calibration batches")
	}
	return obs, nil
}

func equalTail(a, b []int) bool {
	for i := 1; i < len(a); i++ {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func forward(net nn.Layer, x *ag.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("quant: the model does not run on input %v: %v", x.Shape(), r)
		}
	}()
	net.Forward(x)
	return nil
}

// opName names traced operation op for an error: the layer a convolution
// node belongs to, else the kind of node that reads it.
func opName(g *graph, op int) string {
	for _, n := range g.nodes {
		if n.op != op {
			continue
		}
		if n.name != "" {
			return "layer " + n.name
		}
		kinds := [...]string{kConv: "a convolution", kAdd: "an addition", kReLU: "a ReLU", kMaxPool: "a max pool", kGAP: "a global average pool",
			kReshape: "a reshape", kSubsamplePad: "a shortcut's subsample", kPad: "a padding", kAffine: "a batch norm or scale"}
		if int(n.kind) < len(kinds) {
			return kinds[n.kind]
		}
		return "an operation"
	}
	return "not in the graph"
}
