package checkpoint_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Save a model with what is needed to use it later (its config, class
// names and input preprocessing), then load it back and run it.
func Example() {
	cfg, err := models.Preset("resnet20")
	if err != nil {
		log.Fatal(err)
	}
	cfg.SetInChannels(1)
	cfg.SetClasses(3)
	net, err := models.Build(cfg, tensor.NewRNG(1))
	if err != nil {
		log.Fatal(err)
	}
	meta := checkpoint.Meta{
		Model:      cfg,
		Classes:    []string{"cat", "dog", "fox"},
		Preprocess: checkpoint.Preprocess{Height: 28, Width: 28, Channels: 1, Normalisation: transform.Normalisation{Mean: []float64{0.5}, Std: []float64{0.25}}},
	}
	dir, err := os.MkdirTemp("", "checkpoint-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")
	// Written to a temporary file and renamed: a reader never sees half a file.
	if err := checkpoint.Write(path, net, meta, nil); err != nil {
		log.Fatal(err)
	}

	ck, err := checkpoint.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ck.Model.Name, ck.Classes, ck.Preprocess.Height, ck.Preprocess.Width)
	x := ag.Constant(tensor.NewRNG(2).Randn(1, 28, 28, 1))
	nn.SetTraining(net, false)
	nn.SetTraining(ck.Net, false)
	same := slices.Equal(net.Forward(x).Data.Data, ck.Net.Forward(x).Data.Data)
	fmt.Println("same logits:", same)
	// Output:
	// resnet20 [cat dog fox] 28 28
	// same logits: true
}
