package onnx_test

import (
	"context"
	"fmt"
	"log"
	"math"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/infer"
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

// A checkpoint exported to ONNX and run back through the package's own
// evaluator: the image is preprocessed as the checkpoint says
// (infer.Input, NHWC), turned into ONNX's NCHW, and the graph's "output"
// gives the checkpoint's logits. The checkpoint is a small ResNet trained
// briefly on MNIST (testdata/checkpoint); the image a 7.
func ExampleModel_Run() {
	c, err := checkpoint.Load("../../testdata/checkpoint/mnist-tiny.safetensors")
	if err != nil {
		log.Fatal(err)
	}
	p := c.Preprocess
	b, err := onnx.Export(c.Net, c.Model.InputShape(1, p.Height))
	if err != nil {
		log.Fatal(err)
	}
	m, err := onnx.Parse(b) // onnx.Load reads a file
	if err != nil {
		log.Fatal(err)
	}
	img, err := imagefile.Load("../../testdata/checkpoint/digit0.png")
	if err != nil {
		log.Fatal(err)
	}
	x, err := infer.Input(p, img) // [1, 28, 28, 1]
	if err != nil {
		log.Fatal(err)
	}
	out, err := m.Run(map[string]*tensor.Tensor{"input": tensor.NHWCToNCHW(x)})
	if err != nil {
		log.Fatal(err)
	}
	logits := out["output"]
	best := 0
	for i, v := range logits.Data {
		if v > logits.Data[best] {
			best = i
		}
	}
	fmt.Println(m.Inputs(), "→", m.Outputs(), logits.Shape, "class", c.Classes[best])

	// The checkpoint run by package infer gives the same logits, up to
	// the order of float32 sums.
	im, err := infer.Open("../../testdata/checkpoint/mnist-tiny.safetensors")
	if err != nil {
		log.Fatal(err)
	}
	want, err := im.Forward(context.Background(), x)
	if err != nil {
		log.Fatal(err)
	}
	worst := 0.0
	for i, v := range want.Data {
		worst = math.Max(worst, math.Abs(float64(v-logits.Data[i])))
	}
	fmt.Println("within 1e-5 of infer's:", worst < 1e-5)
	// Output:
	// [input] → [output] [1 10] class 7
	// within 1e-5 of infer's: true
}

// A checkpoint exported with its metadata: the file's metadata_props
// carry its class names and preprocessing, which a program running the
// graph reads back to label its outputs and prepare its images as the
// checkpoint did (residual export onnx writes them so).
func ExampleExportWith() {
	c, err := checkpoint.Load("../../testdata/checkpoint/mnist-tiny.safetensors")
	if err != nil {
		log.Fatal(err)
	}
	props, err := c.Meta.Props()
	if err != nil {
		log.Fatal(err)
	}
	b, err := onnx.ExportWith(c.Net, c.Model.InputShape(1, c.Preprocess.Height), onnx.ExportOptions{Props: props})
	if err != nil {
		log.Fatal(err)
	}
	info, err := onnx.Describe(b)
	if err != nil {
		log.Fatal(err)
	}
	meta, ok, err := checkpoint.MetaFromProps(info.Props)
	if !ok || err != nil {
		log.Fatal("no residual metadata: ", err)
	}
	p := meta.Preprocess
	fmt.Println(meta.Model.Name, meta.Classes)
	fmt.Printf("%dx%d, %d channel, mean %.4g, std %.4g\n", p.Height, p.Width, p.Channels, p.Mean, p.Std)
	// Output:
	// mnist-tiny [0 1 2 3 4 5 6 7 8 9]
	// 28x28, 1 channel, mean [0.1308], std [0.3082]
}
