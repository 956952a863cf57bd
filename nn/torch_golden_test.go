package nn_test

import (
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Tolerance of the comparisons with PyTorch: |got − want| ≤
// 1e-5·(|want| + max|want|) (fixture.Compare).
const goldenRtol = 1e-5

// postAct is He et al. 2015's basic block with a projection shortcut,
// written as torchvision writes it.
type postAct struct {
	Conv1      *nn.Conv2d
	BN1        *nn.BatchNorm
	Conv2      *nn.Conv2d
	BN2        *nn.BatchNorm
	Downsample nn.Sequential
}

func (b *postAct) Forward(x *ag.Value) *ag.Value {
	out := ag.ReLU(b.BN1.Forward(b.Conv1.Forward(x)))
	out = b.BN2.Forward(b.Conv2.Forward(out))
	return ag.ReLU(ag.Add(out, b.Downsample.Forward(x)))
}

// preAct is He et al. 2016's full pre-activation block.
type preAct struct {
	BN1   *nn.BatchNorm
	Conv1 *nn.Conv2d
	BN2   *nn.BatchNorm
	Conv2 *nn.Conv2d
}

func (b *preAct) Forward(x *ag.Value) *ag.Value {
	out := b.Conv1.Forward(ag.ReLU(b.BN1.Forward(x)))
	out = b.Conv2.Forward(ag.ReLU(b.BN2.Forward(out)))
	return ag.Add(out, x)
}

func TestTorchGoldenBlocks(t *testing.T) {
	f, err := fixture.Load("../testdata/torch/blocks.json")
	if err != nil {
		t.Fatal(err)
	}
	rng := tensor.NewRNG(1)
	pad1 := nn.ConvOptions{Padding: 1}
	for _, c := range f.Cases {
		var m nn.Layer
		switch c.Op {
		case "postact_block":
			m = &postAct{
				Conv1: nn.NewConv2d(rng, 3, 4, 3, nn.ConvOptions{Stride: 2, Padding: 1}), BN1: nn.NewBatchNorm(4),
				Conv2: nn.NewConv2d(rng, 4, 4, 3, pad1), BN2: nn.NewBatchNorm(4),
				Downsample: nn.Sequential{nn.NewConv2d(rng, 3, 4, 1, nn.ConvOptions{Stride: 2}), nn.NewBatchNorm(4)},
			}
		case "preact_block":
			m = &preAct{BN1: nn.NewBatchNorm(4), Conv1: nn.NewConv2d(rng, 4, 4, 3, pad1), BN2: nn.NewBatchNorm(4), Conv2: nn.NewConv2d(rng, 4, 4, 3, pad1)}
		default:
			t.Fatalf("unknown case %s", c.Op)
		}
		training := c.Bool("training")
		name := c.Op + map[bool]string{true: "/train", false: "/eval"}[training]
		state := map[string]*tensor.Tensor{}
		for k := range c.Tensors {
			if n, ok := strings.CutPrefix(k, "param."); ok {
				state[n] = c.T(k)
			}
		}
		if err := nn.LoadTorchState(m, state, true); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		nn.SetTraining(m, training)
		tape := ag.NewTape()
		x := tape.Variable(tensor.NCHWToNHWC(c.T("x")))
		out := m.Forward(x)
		cmp := func(what string, got, want *tensor.Tensor) {
			t.Helper()
			if err := fixture.Compare(got, want, goldenRtol); err != nil {
				t.Errorf("%s: %s: %v", name, what, err)
			}
		}
		cmp("output", tensor.NHWCToNCHW(out.Data), c.T("out"))
		tape.BackwardWith(out, tensor.NCHWToNHWC(c.T("proj")))
		cmp("input gradient", tensor.NHWCToNCHW(x.Grad), c.T("grad_x"))
		grads := 0
		for _, e := range nn.StateDict(m) {
			if e.Param != nil {
				cmp("gradient of "+e.Name, nn.ToTorchLayout(e.Param.Grad, e.Layout), c.T("grad."+e.Name))
				grads++
			} else if k := "after." + e.Name; c.Has(k) {
				cmp(e.Name, e.Tensor, c.T(k))
			}
		}
		if grads == 0 {
			t.Errorf("%s: no parameters", name)
		}
	}
}
