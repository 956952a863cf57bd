package nn_test

import (
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

type freezeNet struct {
	Layer1  nn.Sequential
	Layer10 nn.Sequential
	FC      *nn.Linear
}

func (n *freezeNet) Forward(x *ag.Value) *ag.Value {
	return n.FC.Forward(ag.GlobalAvgPool(n.Layer10.Forward(n.Layer1.Forward(x))))
}

// TestFreeze freezes "layer1" of a small network: its parameters get no
// gradient, its batch norm stays in evaluation mode through SetTraining
// (its running statistics unchanged by a training step), "layer10" and
// the head still train, and a prefix that names nothing is an error.
func TestFreeze(t *testing.T) {
	rng := tensor.NewRNG(1)
	conv := func(in, out int) *nn.Conv2d { return nn.NewConv2d(rng, in, out, 3, nn.ConvOptions{Padding: 1}) }
	m := &freezeNet{
		Layer1:  nn.Sequential{conv(2, 4), nn.NewBatchNorm(4), nn.ReLU{}},
		Layer10: nn.Sequential{conv(4, 4), nn.NewBatchNorm(4), nn.ReLU{}},
		FC:      nn.NewLinear(rng, 4, 3, true),
	}
	n, err := nn.Freeze(m, "layer1")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 { // conv weight, BN weight and bias
		t.Errorf("froze %d parameters, want 3", n)
	}
	nn.SetTraining(m, true)
	bn1, bn10 := m.Layer1[1].(*nn.BatchNorm), m.Layer10[1].(*nn.BatchNorm)
	if bn1.Training || !bn10.Training {
		t.Fatalf("after SetTraining(true): frozen batch norm training %v, unfrozen %v", bn1.Training, bn10.Training)
	}
	tape := ag.NewTape()
	loss, err := ag.CrossEntropy(m.Forward(tape.Constant(rng.Randn(2, 5, 5, 2))), []int32{0, 2}, ag.CrossEntropyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tape.Backward(loss)
	for _, e := range nn.StateDict(m) {
		if e.Param == nil {
			continue
		}
		frozen := e.Name[:len("layer1.")] == "layer1."
		if (e.Param.Grad != nil) == frozen {
			t.Errorf("%s: gradient %v, frozen %v", e.Name, e.Param.Grad != nil, frozen)
		}
	}
	if bn1.RunningMean.Data[0] != 0 || bn10.RunningMean.Data[0] == 0 {
		t.Errorf("running means after a step: frozen %g (want 0), unfrozen %g (want changed)", bn1.RunningMean.Data[0], bn10.RunningMean.Data[0])
	}
	if _, err := nn.Freeze(m, "layer2"); err == nil {
		t.Error("freezing a prefix that names nothing succeeded")
	}
}
