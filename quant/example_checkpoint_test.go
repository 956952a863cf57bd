package quant_test

import (
	"context"
	"fmt"
	"image"
	"log"
	"os"
	"path/filepath"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/tensor"
)

// Quantizing a trained checkpoint, as `residual quantize` does: the
// calibration batches come from a data.Loader of training images,
// normalised as the checkpoint's preprocessing says, and the int8 model
// is written as an int8 checkpoint, which infer.Open runs as it runs a
// float one. The checkpoint is a small ResNet trained briefly on MNIST
// (testdata/checkpoint), calibrated on 256 of MNIST's training images.
func Example_checkpoint() {
	c, err := checkpoint.Load("../testdata/checkpoint/mnist-tiny.safetensors")
	if err != nil {
		log.Fatal(err)
	}
	trainSet, _, err := data.MNIST()
	if err != nil {
		log.Fatal(err)
	}
	idx := make([]int, 256)
	for i := range idx {
		idx[i] = i
	}
	l := &data.Loader{Data: trainSet.Subset(idx), Batch: 64, Normalisation: c.Preprocess.Normalisation}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the loader's goroutine if Quantize stops early
	batches := l.Epoch(ctx, 0, 0)
	next := func() (*tensor.Tensor, error) {
		b, ok := <-batches
		if !ok {
			return nil, l.Err() // nil, no more batches, at the end of the set
		}
		return b.X, nil
	}
	p := c.Preprocess
	q, err := quant.Quantize(ctx, c.Net, c.Model.InputShape(1, p.Height), next, quant.Options{Method: quant.Percentile})
	if err != nil {
		log.Fatal(err)
	}

	dir, err := os.MkdirTemp("", "quant-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "int8.safetensors")
	if err := checkpoint.WriteInt8(path, q, c.Meta); err != nil {
		log.Fatal(err)
	}
	m, err := infer.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	img, err := imagefile.Load("../testdata/checkpoint/digit0.png") // MNIST's first test digit, a 7
	if err != nil {
		log.Fatal(err)
	}
	g, err := m.Classify(context.Background(), []image.Image{img}, 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s in %s: %s (%.2f)\n", m.Info().Name, m.Info().Precision, g[0][0].Label, g[0][0].Probability)
	// Output:
	// mnist-tiny in int8: 7 (0.60)
}
