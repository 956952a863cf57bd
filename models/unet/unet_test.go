package unet

import (
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

func TestOriginalUNet(t *testing.T) {
	m, err := New(Original(), tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	if got := nn.NumParams(m); got != 31030658 {
		t.Errorf("%d parameters, Ronneberger et al. 31,030,658", got)
	}
	tape := ag.NewShapeTape()
	y := m.Forward(tape.Placeholder(1, 572, 572, 1))
	if s := y.Data.Shape; s[1] != 388 || s[2] != 388 || s[3] != 2 {
		t.Errorf("572×572 gives %v, want 388×388×2", s)
	}
	if o, err := Original().OutputSize(572); o != 388 || err != nil {
		t.Errorf("OutputSize(572) = %d, %v", o, err)
	}
	if _, err := Original().OutputSize(570); err == nil {
		t.Error("570 accepted: its level sizes do not halve evenly")
	}
}

func TestPaddedKeepsSize(t *testing.T) {
	m, _ := New(Config{InChannels: 3, Classes: 5, Depth: 2, Base: 4, BatchNorm: true}, tensor.NewRNG(1))
	y := m.Forward(ag.Constant(tensor.NewRNG(2).Randn(2, 12, 8, 3)))
	if s := y.Data.Shape; s[0] != 2 || s[1] != 12 || s[2] != 8 || s[3] != 5 {
		t.Errorf("output %v, want [2 12 8 5]", s)
	}
	names := map[string]bool{}
	for _, e := range nn.StateDict(m) {
		names[e.Name] = true
	}
	for _, k := range []string{"downs.0.0.weight", "downs.0.1.running_var", "bottom.3.weight", "upconvs.1.bias", "ups.0.4.weight", "head.bias"} {
		if !names[k] {
			t.Errorf("missing %s", k)
		}
	}
}
