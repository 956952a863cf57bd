package unet_test

import (
	"fmt"
	"log"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// The original U-Net loses 92 pixels on each side: a 572² tile gives a 388²
// map. The padded form keeps the input's size.
func Example() {
	orig := unet.Original()
	out, err := orig.OutputSize(572)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("original:", 572, "→", out, "margin", orig.Margin())

	cfg := unet.Config{InChannels: 3, Classes: 2, Depth: 2, Base: 8, BatchNorm: true}
	net, err := unet.New(cfg, tensor.NewRNG(1))
	if err != nil {
		log.Fatal(err)
	}
	nn.SetTraining(net, false)
	logits := net.Forward(ag.Constant(tensor.NewRNG(2).Randn(1, 32, 48, 3))) // NHWC
	fmt.Println("padded:", logits.Shape(), nn.NumParams(net), "parameters")
	fmt.Println(nn.StateDict(net)[0].Name)
	// Output:
	// original: 572 → 388 margin 92
	// padded: [1 32 48 2] 29634 parameters
	// downs.0.0.weight
}
