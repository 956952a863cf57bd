package quant_test

import (
	"context"
	"fmt"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/tensor"
)

// Quantize a ResNet-20 for 16×16 inputs, calibrated on one batch, and run
// it: the int8 network takes and returns float32, like the float one.
func ExampleQuantize() {
	cfg, _ := models.Preset("resnet20")
	rng := tensor.NewRNG(1)
	net, _ := models.Build(cfg, rng)
	calib := rng.Randn(4, 16, 16, 3)
	done := false
	q, err := quant.Quantize(context.Background(), net, []int{1, 16, 16, 3}, func() (*tensor.Tensor, error) {
		if done {
			return nil, nil // no more batches
		}
		done = true
		return calib, nil
	}, quant.Options{Method: quant.Percentile})
	if err != nil {
		fmt.Println(err)
		return
	}
	logits, _ := q.Forward(context.Background(), rng.Randn(2, 16, 16, 3))
	fmt.Println(len(q.Layers()), "int8 layers; logits", logits.Shape)
	// Output: 20 int8 layers; logits [2 10]
}
