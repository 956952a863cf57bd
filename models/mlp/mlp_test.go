package mlp

import (
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

func TestShapesAndVariants(t *testing.T) {
	x := ag.Constant(tensor.NewRNG(1).Randn(5, 3))
	for _, c := range []Config{
		{In: 3, Out: 2, Width: 8, Depth: 4, Skip: true},
		{In: 3, Out: 2, Width: 8, Depth: 4, Skip: true, BatchNorm: true, BranchScale: InvSqrt2},
		{In: 3, Out: 2, Width: 8, Depth: 4, Init: "glorot"},
	} {
		n, err := New(c, tensor.NewRNG(2))
		if err != nil {
			t.Fatal(err)
		}
		if s := n.Forward(x).Shape(); s[0] != 5 || s[1] != 2 {
			t.Errorf("%+v: output %v", c, s)
		}
		if a := n.Activations(x); len(a) != 5 {
			t.Errorf("%d activations for 4 blocks", len(a))
		}
		want := 3*8 + 8 + 4*(8*8+8) + 8*2 + 2
		if c.BatchNorm {
			want += 4 * 16
		}
		if got := nn.NumParams(n); got != want {
			t.Errorf("%+v: %d parameters, want %d", c, got, want)
		}
	}
	// A residual block with a zero branch is the identity; a plain one
	// outputs zero.
	for _, skip := range []bool{true, false} {
		n, _ := New(Config{In: 3, Out: 1, Width: 4, Depth: 1, Skip: skip}, tensor.NewRNG(3))
		n.Blocks[0].FC.Weight.Data.Zero()
		h := n.Input.Forward(x)
		y := n.Blocks[0].Forward(h)
		for i, v := range y.Data.Data {
			want := h.Data.Data[i]
			if !skip {
				want = 0
			}
			if v != want {
				t.Fatalf("skip %v: block output %g, want %g", skip, v, want)
			}
		}
	}
	if _, err := New(Config{In: 1, Out: 1, Width: 4, Depth: 1, Init: "lecun"}, tensor.NewRNG(1)); err == nil {
		t.Error("unknown init accepted")
	}
}
