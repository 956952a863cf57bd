package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"

	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/tensor"
	"github.com/residual-nn/residual/train"
)

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func main() {
	dir := "testdata/checkpoint"
	tmp, _ := os.MkdirTemp("", "gen")
	rc := resnet.Config{Block: "basic", Layers: []int{1, 1}, Widths: []int{4, 8}, Stem: "cifar", StemWidth: 4,
		Ordering: resnet.PostActivation, Shortcut: resnet.ShortcutB, Classes: 10, InChannels: 1}
	cfg := train.Config{Model: models.Config{Name: "tiny", ResNet: &rc}, Data: "mnist", Epochs: 1, Batch: 32, Optimizer: "sgd",
		LR: 0.05, Momentum: 0.9, WeightDecay: 1e-4, Schedule: "multistep:10", Augment: data.Augment{Pad: 2}, ValSplit: 0.25,
		Seed: 3, Limit: 256, Out: tmp, Log: os.Stderr}
	_, err := train.Run(context.Background(), cfg)
	must(err)
	b, err := os.ReadFile(filepath.Join(tmp, train.LastCheckpoint))
	must(err)
	must(os.WriteFile(filepath.Join(dir, "resnet-v1.safetensors"), b, 0o644))
	_, test, err := data.MNIST()
	must(err)
	out := map[string]any{}
	c, err := train.Load(filepath.Join(dir, "resnet-v1.safetensors"))
	must(err)
	for i := 0; i < 3; i++ {
		img := image.NewGray(image.Rect(0, 0, 28, 28))
		copy(img.Pix, test.Image(i))
		name := fmt.Sprintf("digit%d.png", i)
		f, _ := os.Create(filepath.Join(dir, name))
		must(png.Encode(f, img))
		f.Close()
		gs, err := c.Predict(filepath.Join(dir, name), 10)
		must(err)
		out[name] = gs
	}
	// A U-Net written by SaveModel (no training metadata), with a colour image to segment.
	uc := unet.Config{InChannels: 3, Classes: 3, Depth: 2, Base: 4, BatchNorm: true}
	mc := models.Config{Name: "unet-tiny", UNet: &uc}
	net, err := models.Build(mc, tensor.NewRNG(5))
	must(err)
	must(train.SaveModel(filepath.Join(dir, "unet-v1.safetensors"), mc, net, []string{"bg", "a", "b"},
		train.Preprocess{Height: 16, Width: 16, Channels: 3, Mean: []float64{0.5, 0.4, 0.3}, Std: []float64{0.2, 0.25, 0.3}}))
	img := image.NewRGBA(image.Rect(0, 0, 21, 13))
	rng := tensor.NewRNG(9)
	for y := 0; y < 13; y++ {
		for x := 0; x < 21; x++ {
			img.Set(x, y, color.RGBA{uint8(rng.Uint64()), uint8(rng.Uint64()), uint8(x * 12), 255})
		}
	}
	f, _ := os.Create(filepath.Join(dir, "color.png"))
	must(png.Encode(f, img))
	f.Close()
	u, err := train.Load(filepath.Join(dir, "unet-v1.safetensors"))
	must(err)
	mask, _, _, _, err := u.Segment(filepath.Join(dir, "color.png"), 8)
	must(err)
	out["color.png"] = mask
	j, _ := json.MarshalIndent(out, "", " ")
	must(os.WriteFile(filepath.Join(dir, "v1-outputs.json"), j, 0o644))
}
