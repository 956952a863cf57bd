package infer_test

import (
	"context"
	"fmt"
	"image"
	"log"
	"math"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/infer"
)

// The whole program that classifies an image file with a trained
// checkpoint: open the checkpoint once (a server keeps the *Model and
// shares it between goroutines), load the image, classify, print the
// three most probable classes. The checkpoint is a small ResNet trained
// briefly on MNIST (testdata/checkpoint/gen_mnist_tiny.go); the image is
// MNIST's first test digit, a 7.
func Example() {
	m, err := infer.Open("../testdata/checkpoint/mnist-tiny.safetensors")
	if err != nil {
		log.Fatal(err)
	}
	info := m.Info()
	fmt.Printf("%s: %s into %d classes, input %dx%dx%d\n", info.Name, info.Task, len(info.Classes), info.Height, info.Width, info.Channels)

	// imagefile.Load decodes as the command line and the server do
	// (EXIF orientation applied, decompression bombs refused).
	img, err := imagefile.Load("../testdata/checkpoint/digit0.png")
	if err != nil {
		log.Fatal(err)
	}

	guesses, err := m.Classify(context.Background(), []image.Image{img}, 3)
	if err != nil {
		log.Fatal(err)
	}
	for _, g := range guesses[0] {
		fmt.Printf("%5.1f%%  %s\n", 100*g.Probability, g.Label)
	}
	// Output:
	// mnist-tiny: classify into 10 classes, input 28x28x1
	//  60.2%  7
	//  11.4%  1
	//  10.6%  9
}

// Segmenting an image with a U-Net checkpoint (a small one with random
// weights here, testdata/checkpoint/unet-v1.safetensors): one class per
// pixel, at the image's own size, whatever the size the network trained
// at.
func ExampleModel_Segment() {
	m, err := infer.Open("../testdata/checkpoint/unet-v1.safetensors")
	if err != nil {
		log.Fatal(err)
	}
	img, err := imagefile.Load("../testdata/checkpoint/color.png")
	if err != nil {
		log.Fatal(err)
	}
	mask, err := m.Segment(context.Background(), img)
	if err != nil {
		log.Fatal(err)
	}
	count := make([]int, len(mask.Names))
	for _, c := range mask.Class {
		count[c]++
	}
	fmt.Printf("%dx%d mask; pixels per class %v: %v\n", mask.Width, mask.Height, mask.Names, count)
	// Output:
	// 21x13 mask; pixels per class [bg a b]: [36 91 146]
}

// Inference in bfloat16: SetPrecision(ag.BF16), before the model serves,
// makes its convolutions and matrix products take bfloat16 operands and
// sum in float32, as PyTorch's CPU autocast does. The answer moves in the
// third decimal here. Info reports the precision.
func ExampleModel_SetPrecision() {
	m, err := infer.Open("../testdata/checkpoint/mnist-tiny.safetensors")
	if err != nil {
		log.Fatal(err)
	}
	img, err := imagefile.Load("../testdata/checkpoint/digit0.png") // a 7
	if err != nil {
		log.Fatal(err)
	}
	var fp32 float64
	for _, p := range []ag.Precision{ag.FP32, ag.BF16} {
		if err := m.SetPrecision(p); err != nil {
			log.Fatal(err)
		}
		g, err := m.Classify(context.Background(), []image.Image{img}, 1)
		if err != nil {
			log.Fatal(err)
		}
		best := g[0][0]
		if p == ag.FP32 {
			fp32 = best.Probability
		}
		// bf16 keeps 8 bits of each operand's mantissa (a relative
		// rounding of 2⁻⁹), so the probability moves by about a
		// thousandth here, the amount depending on the kernels the CPU
		// runs: 0.01 is a bound, not the value.
		fmt.Printf("%s: %s, within 0.01 of fp32's probability: %v\n", m.Info().Precision, best.Label, math.Abs(best.Probability-fp32) < 0.01)
	}
	// Output:
	// fp32: 7, within 0.01 of fp32's probability: true
	// bf16: 7, within 0.01 of fp32's probability: true
}
