//go:build ignore

// gen_mnist_tiny writes mnist-tiny.safetensors, the checkpoint package
// infer's Example and tests classify with: a two-block ResNet (4 and 8
// channels, 25 KB) trained with Adam for 3 epochs on the first 8,192 MNIST
// training images (69.5% on the first 8,192 test images when written; it
// only has to be deterministic, not good). Run from the repository root:
//
//	go run testdata/checkpoint/gen_mnist_tiny.go
package main

import (
	"context"
	"log"
	"os"
	"path/filepath"

	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/train"
)

func main() {
	tmp, err := os.MkdirTemp("", "mnist-tiny")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	rc := resnet.Config{Block: "basic", Layers: []int{1, 1}, Widths: []int{4, 8}, Stem: "cifar", StemWidth: 4,
		Ordering: resnet.PostActivation, Shortcut: resnet.ShortcutB, Classes: 10, InChannels: 1}
	cfg := train.Config{Model: models.Config{Name: "mnist-tiny", Arch: &models.ResNet{Config: rc}}, Data: "mnist", Epochs: 3,
		Batch: 64, Optimizer: "adam", LR: 0.01, Schedule: "cosine", Augment: data.Augment{Pad: 2}, ValSplit: 0.1,
		Seed: 1, Limit: 8192, Out: tmp, Log: os.Stderr}
	if _, err := train.Run(context.Background(), cfg); err != nil {
		log.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(tmp, train.BestCheckpoint))
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("testdata/checkpoint/mnist-tiny.safetensors", b, 0o644); err != nil {
		log.Fatal(err)
	}
}
