package autograd_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/tensor"
)

// planNet is a small residual network in the operations a model uses: a
// stem, blocks of relu(bn(conv(relu(bn(conv(x))))) + x) (the convolutions
// fuse with what follows them), a long skip from the stem, a pre-activation block (a batch norm not
// after a convolution, deferred on its own), a max pool, a reshape and a
// classifier. Its stages of 16 channels at 12×12 make each image's
// activations larger than the pool's exact-size classes.
type planNet struct {
	stem, w1, w2, fc  *ag.Value
	gamma, beta       *ag.Value
	runMean, runVar   *tensor.Tensor
	blocks            int
	extra             bool // more steps at the end: a pass that departs from the plan
	resum             bool // the same, computing the last residual sum again after its ReLU
	readMidAfterwards bool // keep the first block's output and read it after the pass
	cut               bool // stop after two blocks, as a pass that panics there
}

func newPlanNet() *planNet {
	rng := tensor.NewRNG(7)
	scaled := func(s float32, shape ...int) *ag.Value {
		t := rng.Randn(shape...)
		for i := range t.Data {
			t.Data[i] *= s
		}
		return ag.Constant(t)
	}
	rv := rng.Randn(16)
	for i, v := range rv.Data {
		rv.Data[i] = 0.5 + v*v
	}
	return &planNet{
		stem: scaled(0.3, 3, 3, 3, 16), w1: scaled(0.1, 3, 3, 16, 16), w2: scaled(0.1, 3, 3, 16, 16),
		fc:    scaled(0.1, 10, 6*6*16),
		gamma: scaled(1, 16), beta: scaled(1, 16), runMean: rng.Randn(16), runVar: rv, blocks: 3,
	}
}

func (n *planNet) forward(x *ag.Value) (out, mid *ag.Value) {
	same := ag.ConvParams{Pad: ag.SymmetricPad(1, 1)}
	bp := ag.BatchNormParams{Eps: 1e-5}
	bn := func(v *ag.Value) *ag.Value { return ag.BatchNorm(v, n.gamma, n.beta, n.runMean, n.runVar, bp) }
	h := ag.ReLU(bn(ag.Conv2d(x, n.stem, nil, same)))
	stem := h
	for i := range n.blocks {
		if i == 2 && n.cut {
			return h, nil
		}
		o := ag.ReLU(bn(ag.Conv2d(h, n.w1, nil, same)))
		o = bn(ag.Conv2d(o, n.w2, nil, same))
		h = ag.ReLU(ag.Add(o, h))
		if i == 0 {
			mid = h
		}
	}
	h = ag.Add(h, stem)                                       // a long skip, as in a U-Net
	h = ag.Add(ag.Conv2d(ag.ReLU(bn(h)), n.w1, nil, same), h) // pre-activation
	if n.extra {                                              // reads h twice where the plan's pool reads it once
		h = ag.Add(h, h)
	}
	if n.resum { // computes the pre-activation block's sum a second time
		h = ag.Add(ag.ReLU(h), h)
	}
	h = ag.MaxPool2d(h, ag.PoolParams{Kernel: [2]int{2, 2}, Stride: [2]int{2, 2}})
	return ag.Linear(ag.Reshape(h, h.Shape()[0], 6*6*16), n.fc, nil), mid
}

// run passes a batch of b images through n on tape and returns the output
// (and the first block's output if the net keeps it).
func (n *planNet) run(tape *ag.Tape, b int, seed uint64) (out, mid []float32) {
	x := tensor.NewRNG(seed).Randn(b, 12, 12, 3)
	y, m := n.forward(tape.Constant(x))
	out = slices.Clone(y.Tensor().Data)
	if n.readMidAfterwards {
		mid = slices.Clone(m.Tensor().Data)
	}
	tape.Reset()
	return out, mid
}

// A planned tape computes what an unplanned one does, bit for bit, on the
// pass that records and on those that follow, for two shapes alternating;
// it releases buffers and ends up holding less than the whole pass.
func TestMemoryPlanKeepsResultsAndFreesBuffers(t *testing.T) {
	n := newPlanNet()
	plain, planned := ag.NewNoGradTape(), ag.NewNoGradTape()
	planned.PlanMemory()
	for pass := range 6 {
		b := 1 + 3*(pass%2) // batches of 1 and 4 alternate: two plans
		want, _ := n.run(plain, b, uint64(pass))
		got, _ := n.run(planned, b, uint64(pass))
		if !slices.Equal(got, want) {
			t.Fatalf("pass %d (batch %d): planned output differs from unplanned", pass, b)
		}
	}
	first := 12 * 12 * 16 // the stem's output holds a pass's first buffer
	for _, b := range []int{1, 4} {
		// A pass holds the stem's output, its blocks' and the pool's: the
		// plan must release all but the outputs no operation reads (the
		// logits) and the pass's last step's inputs.
		if r := planned.PlannedReleases(b * first); r < 8 {
			t.Errorf("batch %d: the plan releases %d buffers before Reset, want ≥ 8", b, r)
		}
	}
	if p, q := ag.PooledFloats(planned), ag.PooledFloats(plain); p*2 > q {
		t.Errorf("the planned tape pools %d floats, the unplanned %d: want at most half", p, q)
	}
}

// A pass that departs from its shape's plan (the same first buffer, then
// other operations) must not lose values: it stops releasing, computes
// what an unplanned tape does, and the shape is recorded afresh.
func TestMemoryPlanSurvivesADepartingPass(t *testing.T) {
	n := newPlanNet()
	plain, planned := ag.NewNoGradTape(), ag.NewNoGradTape()
	planned.PlanMemory()
	for pass, extra := range []bool{false, false, true, true, false} {
		n.extra = extra
		want, _ := n.run(plain, 2, uint64(pass))
		got, _ := n.run(planned, 2, uint64(pass))
		if !slices.Equal(got, want) {
			t.Fatalf("pass %d (extra=%v): planned output differs from unplanned", pass, extra)
		}
	}
}

// Once the plan is confirmed, a residual block's last convolution writes
// its output over its skip when it is the skip's last reader (the sum in
// place), with the numbers of an unplanned tape.
func TestMemoryPlanAddsSkipsInPlace(t *testing.T) {
	rng := tensor.NewRNG(5)
	x, w1, w2 := rng.Randn(2, 8, 8, 16), rng.Randn(3, 3, 16, 16), rng.Randn(3, 3, 16, 16)
	same := ag.ConvParams{Pad: ag.SymmetricPad(1, 1)}
	pass := func(tape *ag.Tape) (out []float32, inPlace bool) {
		a := ag.ReLU(ag.Conv2d(tape.Constant(x), tape.Constant(w1), nil, same))
		skip := a.Tensor().Data
		b := ag.ReLU(ag.Conv2d(a, tape.Constant(w2), nil, same))
		yv := ag.ReLU(ag.Add(ag.Conv2d(b, tape.Constant(w2), nil, same), a))
		y := yv.Tensor().Data
		inPlace = &y[0] == &skip[0]
		out = slices.Clone(ag.Scale(yv, 2).Tensor().Data) // a step after the sum's

		tape.Reset()
		return out, inPlace
	}
	plain, planned := ag.NewNoGradTape(), ag.NewNoGradTape()
	planned.PlanMemory()
	for i := range 4 {
		want, _ := pass(plain)
		got, inPlace := pass(planned)
		if !slices.Equal(got, want) {
			t.Fatalf("pass %d: planned output differs from unplanned", i)
		}
		if inPlace != (i >= 2) { // the first two passes record and confirm
			t.Errorf("pass %d: sum computed in place = %v, want %v", i, inPlace, i >= 2)
		}
	}
}

// A pass that departs from the plan right after a sum computed in place
// and computes the same sum again (here without and then with its ReLU)
// reads a skip the sum has overwritten: it panics as for any value the
// plan released, rather than return other numbers.
func TestMemoryPlanRefusesASumRecomputedAfterItsSkip(t *testing.T) {
	n := newPlanNet()
	tape := ag.NewNoGradTape()
	tape.PlanMemory()
	n.run(tape, 2, 1) // records
	n.run(tape, 2, 1) // confirms
	n.resum = true
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), "memory plan released it") {
			t.Fatalf("recomputing a sum whose skip was overwritten: recovered %v, want a panic naming the memory plan", r)
		}
	}()
	n.run(tape, 2, 2)
}

// A pass cut short (by a panic in a server) is not taken for the whole:
// the passes that follow compute what an unplanned tape does. Its steps
// read the stem's output for the last time long before the long skip that
// reads it in a whole pass.
func TestMemoryPlanIgnoresACutPass(t *testing.T) {
	n := newPlanNet()
	plain, planned := ag.NewNoGradTape(), ag.NewNoGradTape()
	planned.PlanMemory()
	for pass, cut := range []bool{true, false, false, false} {
		n.cut = cut
		want, _ := n.run(plain, 2, uint64(pass))
		got, _ := n.run(planned, 2, uint64(pass))
		if !slices.Equal(got, want) {
			t.Fatalf("pass %d (cut=%v): planned output differs from unplanned", pass, cut)
		}
	}
	if planned.PlannedReleases(2*12*12*16) == 0 {
		t.Error("no plan after three whole passes")
	}
}

// Reading an intermediate value after its last use, once the pass is
// planned, panics with a message naming the rule instead of returning
// another value's numbers; before the plan exists it reads fine.
func TestMemoryPlanRefusesAReleasedValue(t *testing.T) {
	n := newPlanNet()
	n.readMidAfterwards = true
	tape := ag.NewNoGradTape()
	tape.PlanMemory()
	n.run(tape, 1, 1) // records: nothing is released
	n.run(tape, 1, 1) // confirms: nothing is released
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), "memory plan released it") {
			t.Fatalf("reading a released value: recovered %v, want a panic naming the memory plan", r)
		}
	}()
	n.run(tape, 1, 2)
}

func TestPlanMemoryNeedsANoGradTape(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("PlanMemory on a training tape did not panic")
		}
	}()
	ag.NewTape().PlanMemory()
}

// A deferred convolution reads its weight and bias when it is computed,
// steps after it was made: a weight computed on the tape (here a scaled
// constant, read by a Sum in between) must stay alive until then.
func TestMemoryPlanKeepsADeferredConvolutionsOperands(t *testing.T) {
	rng := tensor.NewRNG(3)
	x, w, b, other := rng.Randn(1, 6, 6, 4), rng.Randn(3, 3, 4, 4), rng.Randn(4), rng.Randn(1, 6, 6, 4)
	pass := func(tape *ag.Tape) []float32 {
		w0 := ag.Scale(tape.Constant(w), 1)
		b0 := ag.Scale(tape.Constant(b), 1)
		y := ag.Conv2d(tape.Constant(x), ag.Reshape(w0, 3, 3, 4, 4), b0, ag.ConvParams{Pad: ag.SymmetricPad(1, 1)})
		ag.Sum(w0)
		ag.Sum(b0)
		ag.Scale(tape.Constant(other), 2) // takes a buffer the plan may have freed
		out := slices.Clone(ag.ReLU(y).Tensor().Data)
		tape.Reset()
		return out
	}
	plain, planned := ag.NewNoGradTape(), ag.NewNoGradTape()
	planned.PlanMemory()
	want := pass(plain)
	for i := range 4 {
		if got := pass(planned); !slices.Equal(got, want) {
			t.Fatalf("pass %d: planned output differs from unplanned", i)
		}
	}
}

// Passes that panic part way end with Discard: two of them, cut at the
// same step, must not be taken for the whole pass that follows.
func TestMemoryPlanDiscardsInterruptedPasses(t *testing.T) {
	n := newPlanNet()
	plain, planned := ag.NewNoGradTape(), ag.NewNoGradTape()
	planned.PlanMemory()
	for pass, cut := range []bool{true, true, false, false, false, true, false} {
		n.cut = cut
		want, _ := n.run(plain, 2, uint64(pass))
		if cut {
			x := tensor.NewRNG(uint64(pass)).Randn(2, 12, 12, 3)
			n.forward(planned.Constant(x))
			planned.Discard()
			continue
		}
		got, _ := n.run(planned, 2, uint64(pass))
		if !slices.Equal(got, want) {
			t.Fatalf("pass %d: planned output differs from unplanned", pass)
		}
	}
}

// A value kept past Reset no longer names a buffer of the plan: reshaping
// it (as code that used it stale could before plans) does not index the
// next pass's buffers.
func TestMemoryPlanForgetsValuesAtReset(t *testing.T) {
	n := newPlanNet()
	tape := ag.NewNoGradTape()
	tape.PlanMemory()
	var kept *ag.Value
	for range 3 {
		y, _ := n.forward(tape.Constant(tensor.NewRNG(1).Randn(1, 12, 12, 3)))
		y.Tensor()
		kept = y
		tape.Reset()
	}
	ag.Reshape(kept, 10) // must not panic
}
