package nn_test

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

type tinyNet struct {
	Conv1  *nn.Conv2d
	BN1    *nn.BatchNorm
	Layer1 []*postAct
	FC     *nn.Linear
	Scale  float32    // not a tensor: ignored
	Hidden *nn.Linear `nn:"-"`
}

func newTiny() *tinyNet {
	rng := tensor.NewRNG(1)
	blk := func(in, out, s int) *postAct {
		return &postAct{
			Conv1: nn.NewConv2d(rng, in, out, 3, nn.ConvOptions{Stride: s, Padding: 1}), BN1: nn.NewBatchNorm(out),
			Conv2: nn.NewConv2d(rng, out, out, 3, nn.ConvOptions{Padding: 1}), BN2: nn.NewBatchNorm(out),
			Downsample: nn.Sequential{nn.NewConv2d(rng, in, out, 1, nn.ConvOptions{Stride: s}), nn.NewBatchNorm(out)},
		}
	}
	return &tinyNet{Conv1: nn.NewConv2d(rng, 1, 4, 3, nn.ConvOptions{Padding: 1}), BN1: nn.NewBatchNorm(4),
		Layer1: []*postAct{blk(4, 8, 2)}, FC: nn.NewLinear(rng, 8, 3, true), Hidden: nn.NewLinear(rng, 2, 2, false)}
}

func TestStateDictUsesTorchvisionNames(t *testing.T) {
	var names []string
	for _, e := range nn.StateDict(newTiny()) {
		names = append(names, e.Name)
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer1.0.bn2.bias",
		"layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_mean", "fc.weight", "fc.bias"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("state dict lacks %s: %s", want, got)
		}
	}
	if strings.Contains(got, "hidden") {
		t.Error(`a field tagged nn:"-" was listed`)
	}
	// Parameters exclude buffers: 4·9 + 4+4 + (8·4·9 + 16 + 8·8·9 + 16 + 8·4 + 16) + 8·3+3.
	if n := nn.NumParams(newTiny()); n != 36+8+288+16+576+16+32+16+27 {
		t.Errorf("NumParams = %d", n)
	}
}

func TestTorchStateRoundTripAndErrors(t *testing.T) {
	a, b := newTiny(), newTiny()
	nn.InitConstant(b.FC.Weight.Data, 0)
	st := nn.TorchState(a)
	if s := st["conv1.weight"].Shape; fmt.Sprint(s) != "[4 1 3 3]" {
		t.Errorf("conv1.weight exported as %v, want OIHW [4 1 3 3]", s)
	}
	if err := nn.LoadTorchState(b, st, true); err != nil {
		t.Fatal(err)
	}
	for _, e := range nn.StateDict(b) {
		if w := st[e.Name]; w.Sum() != nn.ToTorchLayout(e.Tensor, e.Layout).Sum() {
			t.Errorf("%s differs after loading", e.Name)
		}
	}
	st["extra.weight"] = tensor.New(1)
	delete(st, "fc.bias")
	st["conv1.weight"] = tensor.New(4, 2, 3, 3)
	before := b.FC.Weight.Data.Clone()
	err := nn.LoadTorchState(b, st, true)
	var se *nn.StateError
	if !errors.As(err, &se) || len(se.Missing) != 1 || len(se.Unexpected) != 1 || len(se.Mismatched) != 1 {
		t.Fatalf("want one missing, unexpected and mis-shaped key: %v", err)
	}
	for _, s := range []string{"fc.bias", "extra.weight", "conv1.weight", "[4 2 3 3]", "[4 1 3 3]"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
	if b.FC.Weight.Data.Sum() != before.Sum() {
		t.Error("a failed load changed the model")
	}
	// A tensor whose values do not fill its shape, and a nil one, are
	// mis-shaped (the first loaded as if it fitted; the second panicked).
	st = nn.TorchState(a)
	st["fc.weight"] = &tensor.Tensor{Shape: st["fc.weight"].Shape, Data: st["fc.weight"].Data[:2]}
	st["fc.bias"] = nil
	if err := nn.LoadTorchState(b, st, true); !errors.As(err, &se) || len(se.Mismatched) != 2 || !strings.Contains(err.Error(), "fc.weight: tensor: 2 values do not fill shape") {
		t.Errorf("short and nil tensors: %v", err)
	}
	// So are negative and overflowing shapes (tensor.NumElements panics
	// on them).
	for _, shape := range [][]int{{-2, -1}, {1 << (bits.UintSize / 2), 1 << (bits.UintSize / 2)}} {
		st = nn.TorchState(a)
		st["fc.weight"] = &tensor.Tensor{Shape: shape}
		if err := nn.LoadTorchState(b, st, true); !errors.As(err, &se) || len(se.Mismatched) != 1 || !strings.Contains(err.Error(), "fc.weight: tensor: ") {
			t.Errorf("shape %v: %v", shape, err)
		}
	}
	// A state dict saved inside DataParallel names every key "module.…":
	// the error says to strip the prefix; a mere mix of missing and
	// unexpected keys says nothing of the kind.
	wrapped := map[string]*tensor.Tensor{}
	for k, v := range nn.TorchState(a) {
		wrapped["module."+k] = v
	}
	if err := nn.LoadTorchState(b, wrapped, true); err == nil || !strings.Contains(err.Error(), `under the prefix "module."`) {
		t.Errorf("a DataParallel state dict: %v", err)
	}
	st = nn.TorchState(a)
	st["extra.weight"] = tensor.New(1)
	delete(st, "fc.bias")
	if err := nn.LoadTorchState(b, st, true); err == nil || strings.Contains(err.Error(), "prefix") {
		t.Errorf("a missing and an unexpected key: %v", err)
	}
}

func TestLayerShapeErrorNamesLayer(t *testing.T) {
	m := newTiny()
	nn.Name(m)
	defer func() {
		msg := fmt.Sprint(recover())
		if !strings.Contains(msg, `"layer1.0.conv1"`) || !strings.Contains(msg, "[2 5 5 3]") {
			t.Errorf("panic %q does not name the layer and the input shape", msg)
		}
	}()
	m.Layer1[0].Forward(ag.Constant(tensor.New(2, 5, 5, 3)))
}

// The pooling layers take PyTorch's padding rule (nn.MaxPool2d(3, 2, 2)
// is refused at its first forward, as PyTorch's is): at most half the
// window, here 1 for a 3×3 kernel.
func TestPoolLayersRefusePaddingPastHalfTheWindow(t *testing.T) {
	x := ag.Constant(tensor.New(1, 6, 6, 2))
	for name, l := range map[string]nn.Layer{
		"MaxPool2d": nn.NewMaxPool2d(3, 2, 2),
		"AvgPool2d": nn.AvgPool2d{P: ag.PoolParams{Kernel: [2]int{3, 3}, Pad: [4]int{0, 2, 0, 2}}},
	} {
		func() {
			defer func() {
				if msg := fmt.Sprint(recover()); !strings.Contains(msg, name+": ") || !strings.Contains(msg, "pad should be at most 1") {
					t.Errorf("%s, kernel 3, pad 2: %q; want a refusal giving the bound", name, msg)
				}
			}()
			l.Forward(x)
		}()
	}
	if y := nn.NewMaxPool2d(3, 2, 1).Forward(x); !slices.Equal(y.Data.Shape, []int{1, 3, 3, 2}) {
		t.Errorf("kernel 3, pad 1: shape %v, want [1 3 3 2]", y.Data.Shape)
	}
}

func TestSetTraining(t *testing.T) {
	m := newTiny()
	m.Hidden = nil
	nn.SetTraining(m, false)
	if m.BN1.Training || m.Layer1[0].Downsample[1].(*nn.BatchNorm).Training {
		t.Error("evaluation mode did not reach every BatchNorm")
	}
	d := nn.NewDropout(0.5, tensor.NewRNG(1))
	nn.SetTraining(nn.Sequential{m, d}, false)
	if d.Training {
		t.Error("evaluation mode did not reach a Dropout behind an interface")
	}
}

// TestReadsHaveNoSideEffects checks that StateDict, Parameters, Layers,
// NumParams, SetTraining and Summarize leave parameter names as the
// constructors made them ("weight"), that Name gives each its state-dict
// key, and that the summary names layers without Name.
func TestReadsHaveNoSideEffects(t *testing.T) {
	m := newTiny()
	nn.StateDict(m)
	nn.Parameters(m)
	nn.Layers(m)
	nn.NumParams(m)
	nn.SetTraining(m, false)
	s, err := nn.Summarize(m, []int{2, 8, 8, 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Layer1[0].Conv1.Weight.Name; got != "weight" {
		t.Errorf("a read renamed layer1.0.conv1.weight to %q", got)
	}
	if len(s.Layers) == 0 || s.Layers[0].Name != "conv1" {
		t.Errorf("summary rows %+v: the first should be conv1", s.Layers)
	}
	// 1,015 parameters, all trainable: conv1 36, bn1 8, layer1.0's convs
	// 288 and 576 and downsample 32, its batch norms 16 each, fc 27.
	if s.TotalParams != 1015 || s.TrainableParams != 1015 {
		t.Errorf("summary counts %d parameters, %d trainable; want 1015 and 1015", s.TotalParams, s.TrainableParams)
	}
	// Training: the weights and their gradients, the input 2×8×8×1 (128
	// values), conv1's and bn1's outputs 2×8×8×4 (512 each), fc's 2×3 (6).
	// Inference: the weights, the input and twice the largest output.
	// float32.
	wantTB, wantIB := int64(4*(2*1015+128+512+512+6)), int64(4*(1015+128+2*512))
	if tb, ib := s.TrainingBytes(), s.InferenceBytes(); tb != wantTB || ib != wantIB {
		t.Errorf("TrainingBytes %d, InferenceBytes %d; want %d and %d", tb, ib, wantTB, wantIB)
	}
	nn.Name(m)
	for _, e := range nn.StateDict(m) {
		if e.Param != nil && e.Param.Name != e.Name {
			t.Errorf("after Name, parameter %s is named %q", e.Name, e.Param.Name)
		}
	}
	if m.Hidden.Weight.Name != "weight" {
		t.Errorf(`Name named a field tagged nn:"-": %q`, m.Hidden.Weight.Name)
	}
}

// Forward runs tinyNet's stem and classifier, enough for a summary.
func (n *tinyNet) Forward(x *ag.Value) *ag.Value {
	h := n.BN1.Forward(n.Conv1.Forward(x))
	return n.FC.Forward(ag.Reshape(ag.GlobalAvgPool(ag.Concat(3, h, h)), 2, 8))
}

// loop is a model that contains itself.
type loop struct{ Next *loop }

func TestWalkRefusesACycle(t *testing.T) {
	l := &loop{}
	l.Next = l
	defer func() {
		if msg := fmt.Sprint(recover()); !strings.Contains(msg, `"next"`) {
			t.Errorf("panic %q does not name the module that contains itself", msg)
		}
	}()
	nn.StateDict(l)
}

func TestInitStatistics(t *testing.T) {
	rng := tensor.NewRNG(2)
	c := nn.NewConv2d(rng, 64, 128, 3, nn.ConvOptions{})
	std := func(x *tensor.Tensor) float64 {
		s, q := 0.0, 0.0
		for _, v := range x.Data {
			s += float64(v)
			q += float64(v) * float64(v)
		}
		n := float64(x.Len())
		return math.Sqrt(q/n - (s/n)*(s/n))
	}
	for _, tc := range []struct {
		name string
		init func()
		want float64
	}{
		{"he-fan-in", func() { nn.HeNormal(rng, c, nn.FanIn) }, math.Sqrt(2.0 / (64 * 9))},
		{"he-fan-out", func() { nn.HeNormal(rng, c, nn.FanOut) }, math.Sqrt(2.0 / (128 * 9))},
		{"glorot", func() { nn.GlorotNormal(rng, c) }, math.Sqrt(2.0 / (64*9 + 128*9))},
		{"kaiming-uniform", func() { nn.InitKaimingUniform(rng, c.Weight.Data, 64*9, nn.GainReLU) }, math.Sqrt(2.0 / (64 * 9))},
		{"xavier-uniform", func() { nn.InitXavierUniform(rng, c.Weight.Data, 64*9, 128*9, 1) }, math.Sqrt(2.0 / (64*9 + 128*9))},
		{"pytorch-default", func() { *c = *nn.NewConv2d(rng, 64, 128, 3, nn.ConvOptions{}) }, 1 / math.Sqrt(64*9) / math.Sqrt(3)},
	} {
		tc.init()
		// 73,728 draws: the sample std is within 1% of the truth w.h.p.
		if got := std(c.Weight.Data); math.Abs(got/tc.want-1) > 0.01 {
			t.Errorf("%s: std %g, want %g", tc.name, got, tc.want)
		}
	}
	bn := nn.NewBatchNorm(4)
	nn.ZeroGamma(bn)
	if bn.Weight.Data.Sum() != 0 {
		t.Error("ZeroGamma left γ non-zero")
	}
}

// Batch counters travel as torchvision's NAME.num_batches_tracked
// 0-dimensional tensors; a state without them (Keras, older checkpoints)
// still loads strictly and leaves the counters alone; a count that is not
// a whole number ≥ 0 is refused, naming the key.
func TestNumBatchesTrackedTensor(t *testing.T) {
	a, b := newTiny(), newTiny()
	a.BN1.NumBatchesTracked, a.Layer1[0].BN2.NumBatchesTracked = 7, 1<<20
	st := nn.TorchState(a)
	c := st["layer1.0.bn2.num_batches_tracked"]
	if c == nil || len(c.Shape) != 0 || c.Data[0] != 1<<20 {
		t.Fatalf("layer1.0.bn2.num_batches_tracked = %v", c)
	}
	if err := nn.LoadTorchState(b, st, true); err != nil {
		t.Fatal(err)
	}
	if b.BN1.NumBatchesTracked != 7 || b.Layer1[0].BN2.NumBatchesTracked != 1<<20 {
		t.Errorf("counters %d, %d after loading, want 7, %d", b.BN1.NumBatchesTracked, b.Layer1[0].BN2.NumBatchesTracked, 1<<20)
	}
	delete(st, "bn1.num_batches_tracked")
	b.BN1.NumBatchesTracked = 3
	if err := nn.LoadTorchState(b, st, true); err != nil || b.BN1.NumBatchesTracked != 3 {
		t.Errorf("without the counter: %v, counter %d (want 3, unchanged)", err, b.BN1.NumBatchesTracked)
	}
	// 2^63 (an I64 counter of MaxInt64 read as float32) loaded as
	// MinInt64, which no writer could store again.
	for _, v := range []float32{-1, 2.5, float32(math.NaN()), float32(math.Inf(1)), 0x1p63} {
		st["bn1.num_batches_tracked"] = &tensor.Tensor{Data: []float32{v}}
		err := nn.LoadTorchState(b, st, true)
		if err == nil || !strings.Contains(err.Error(), "bn1.num_batches_tracked") {
			t.Errorf("count %v: %v (counter %d)", v, err, b.BN1.NumBatchesTracked)
		}
	}
	// Only the model's batch norms have counters: others are unexpected
	// keys (any key ending in num_batches_tracked was let through).
	st["bn1.num_batches_tracked"] = tensor.New()
	for _, k := range []string{"bogusnum_batches_tracked", "layer9.0.bn1.num_batches_tracked", "conv1.num_batches_tracked"} {
		st[k] = tensor.New()
		var se *nn.StateError
		if err := nn.LoadTorchState(b, st, true); !errors.As(err, &se) || !slices.Equal(se.Unexpected, []string{k}) {
			t.Errorf("stray counter %s: %v", k, err)
		}
		if err := nn.LoadTorchState(b, st, false); err != nil {
			t.Errorf("stray counter %s, not strict: %v", k, err)
		}
		delete(st, k)
	}
	big := math.Nextafter32(0x1p63, 0) // the greatest float32 an int64 holds
	st["bn1.num_batches_tracked"] = &tensor.Tensor{Data: []float32{big}}
	if err := nn.LoadTorchState(b, st, true); err != nil || b.BN1.NumBatchesTracked != int64(big) {
		t.Errorf("count %v: %v, counter %d", big, err, b.BN1.NumBatchesTracked)
	}
}

// Summarize and FoldBatchNorm of no network say so (they reported a nil
// pointer dereference they had recovered).
func TestNilNetwork(t *testing.T) {
	var none *tinyNet
	if _, err := nn.Summarize(none, []int{1, 8, 8, 1}); err == nil || !strings.Contains(err.Error(), "no network (nil)") {
		t.Errorf("Summarize(nil): %v", err)
	}
	if _, err := nn.FoldBatchNorm(nil, []int{1, 8, 8, 1}); err == nil || !strings.Contains(err.Error(), "no network (nil)") {
		t.Errorf("FoldBatchNorm(nil): %v", err)
	}
}
