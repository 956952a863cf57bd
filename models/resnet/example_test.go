package resnet_test

import (
	"fmt"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// SEBlock is a new block defined from the public API: a basic block whose
// branch is gated by a learned per-channel scale. Embedding resnet.Join
// gives it a shortcut named "downsample" and the skip connection.
type SEBlock struct {
	Conv1, Conv2 *nn.Conv2d
	BN1, BN2     *nn.BatchNorm
	Gate         *nn.Linear
	resnet.Join
}

func (b *SEBlock) Forward(x *ag.Value) *ag.Value {
	out := ag.ReLU(b.BN1.Forward(b.Conv1.Forward(x)))
	out = b.BN2.Forward(b.Conv2.Forward(out))
	g := ag.Softmax(b.Gate.Forward(ag.GlobalAvgPool(out)), 1) // [N, C]
	s := out.Shape()
	gate := ag.Reshape(ag.Concat(1, repeat(g, s[1]*s[2])...), s...)
	return ag.ReLU(b.Add(ag.Mul(out, gate), x))
}

func repeat(v *ag.Value, n int) []*ag.Value {
	r := make([]*ag.Value, n)
	for i := range r {
		r[i] = v
	}
	return r
}

// Swap a custom block into a published network.
func Example() {
	cfg, _ := resnet.Preset("resnet20")
	rng := tensor.NewRNG(1)
	net, _ := resnet.New(cfg, rng)
	same := nn.ConvOptions{Padding: 1}
	net.Layer1[0] = &SEBlock{
		Conv1: nn.NewConv2d(rng, 16, 16, 3, same), BN1: nn.NewBatchNorm(16),
		Conv2: nn.NewConv2d(rng, 16, 16, 3, same), BN2: nn.NewBatchNorm(16),
		Gate: nn.NewLinear(rng, 16, 16, true),
	}
	logits := net.Forward(ag.Constant(rng.Randn(2, 32, 32, 3)))
	fmt.Println(logits.Shape(), nn.NumParams(net))
	fmt.Println(nn.StateDict(net)[6].Name)
	// Output:
	// [2 10] 269994
	// layer1.0.conv2.weight
}
