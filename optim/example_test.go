package optim_test

import (
	"fmt"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensor"
)

// He et al.'s CIFAR recipe: SGD, momentum 0.9, weight decay 1e-4 (not on
// biases), learning rate 0.1 divided by 10 at 32k and 48k iterations.
func Example() {
	w := ag.Param(tensor.Full(1, 2, 2), "fc.weight")
	b := ag.Param(tensor.Full(1, 2), "fc.bias")
	opt, err := optim.NewSGD(optim.SplitDecay([]*ag.Value{w, b}), optim.SGDConfig{
		LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4,
		Schedule: optim.MultiStep{Milestones: []int{32000, 48000}, Gamma: 0.1},
	})
	if err != nil {
		panic(err)
	}
	w.Grad, b.Grad = tensor.Full(1, 2, 2), tensor.Full(1, 2)
	opt.Step()
	fmt.Printf("%.5f %.5f lr@40k=%.3f\n", w.Data.Data[0], b.Data.Data[0], 0.1*optim.MultiStep{Milestones: []int{32000, 48000}, Gamma: 0.1}.Factor(40000))
	// Output: 0.89999 0.90000 lr@40k=0.010
}
