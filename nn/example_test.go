package nn_test

import (
	"fmt"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// BasicBlock is a user-defined residual block: the forward pass reads like
// torchvision's, and parameter names come from the field names.
type BasicBlock struct {
	Conv1, Conv2 *nn.Conv2d
	BN1, BN2     *nn.BatchNorm
}

func (b *BasicBlock) Forward(x *ag.Value) *ag.Value {
	out := ag.ReLU(b.BN1.Forward(b.Conv1.Forward(x)))
	out = b.BN2.Forward(b.Conv2.Forward(out))
	return ag.ReLU(ag.Add(out, x))
}

// Define a block in a few lines and list its torchvision-style names.
func Example() {
	rng := tensor.NewRNG(0)
	same := nn.ConvOptions{Padding: 1}
	b := &BasicBlock{
		Conv1: nn.NewConv2d(rng, 16, 16, 3, same), BN1: nn.NewBatchNorm(16),
		Conv2: nn.NewConv2d(rng, 16, 16, 3, same), BN2: nn.NewBatchNorm(16),
	}
	nn.ZeroGamma(b.BN2) // the block starts as the identity
	y := b.Forward(ag.Constant(rng.Randn(2, 8, 8, 16)))
	fmt.Println(y.Data.Shape, nn.NumParams(b))
	for _, e := range nn.StateDict(b)[:3] {
		fmt.Println(e.Name, e.Tensor.Shape)
	}
	// Output:
	// [2 8 8 16] 4672
	// conv1.weight [3 3 16 16]
	// conv2.weight [3 3 16 16]
	// bn1.weight [16]
}
