package onnx_test

import (
	"context"
	"fmt"

	"github.com/residual-nn/residual/interop/onnx"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/tensor"
)

// Quantize a ResNet-20, export it as a QDQ ONNX model and import the model
// back into a freshly built ResNet-20: the int8 model returns is the one
// exported.
func ExampleExportInt8() {
	cfg, _ := models.Preset("resnet20")
	rng := tensor.NewRNG(1)
	net, _ := models.Build(cfg, rng)
	calib, done := rng.Randn(4, 16, 16, 3), false
	q, err := quant.Quantize(context.Background(), net, []int{1, 16, 16, 3}, func() (*tensor.Tensor, error) {
		if done {
			return nil, nil
		}
		done = true
		return calib, nil
	}, quant.Options{Method: quant.MinMax})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := onnx.ExportInt8(q, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fresh, _ := models.Build(cfg, tensor.NewRNG(2))
	back, err := onnx.ImportInt8(b, fresh, []int{1, 16, 16, 3})
	if err != nil {
		fmt.Println(err)
		return
	}
	x := rng.Randn(2, 16, 16, 3)
	y1, _ := q.Forward(context.Background(), x)
	y2, _ := back.Forward(context.Background(), x)
	same := true
	for i := range y1.Data {
		same = same && y1.Data[i] == y2.Data[i]
	}
	fmt.Println(len(back.Layers()), "int8 layers back; same logits:", same)
	// Output: 20 int8 layers back; same logits: true
}
