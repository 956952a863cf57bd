package onnx_test

import (
	"fmt"
	"log"

	"github.com/residual-nn/residual/interop/onnx"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/tensor"
)

// Exporting a model to ONNX: prepare it for inference (batch norms folded
// into the convolutions), trace it at its input shape, and read back what
// the file says about itself. The graph takes NCHW input, as PyTorch and
// ONNX Runtime expect, with a symbolic batch dimension.
func ExampleExport() {
	c, err := models.Preset("resnet20")
	if err != nil {
		log.Fatal(err)
	}
	net, err := models.Build(c, tensor.NewRNG(1))
	if err != nil {
		log.Fatal(err)
	}
	if err := models.ForInference(c, net); err != nil {
		log.Fatal(err)
	}
	b, err := onnx.Export(net, c.InputShape(1, c.DefaultSide()))
	if err != nil {
		log.Fatal(err)
	}
	info, err := onnx.Describe(b)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("input", info.Input, "output", info.Output)
	// Output:
	// input [-1 3 32 32] output [-1 10]
}
