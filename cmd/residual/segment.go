package main

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"strings"

	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/train"
)

func runSegment(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("segment", stderr)
	weights := fs.String("weights", "", "U-Net checkpoint (.safetensors)")
	out := fs.String("out", "", "mask to write: a grey PNG of class indices")
	overlay := fs.String("overlay", "", "coloured overlay PNG (default: the mask's name with -overlay)")
	tile := fs.Int("tile", 0, "output pixels per tile side (0: the network's default)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *weights == "" || *out == "" || len(pos) != 1 {
		return fmt.Errorf("%w: usage: residual segment --weights CKPT IMAGE --out MASK.png [--overlay OVERLAY.png]", errUsage)
	}
	if *overlay == "" {
		*overlay = strings.TrimSuffix(*out, ".png") + "-overlay.png"
	}
	c, err := train.Load(*weights)
	if err != nil {
		return err
	}
	if err := models.ForInference(c.Model, c.Net); err != nil {
		return err
	}
	mask, pix, h, w, err := c.Segment(pos[0], *tile)
	if err != nil {
		return err
	}
	if err := writePNG(*out, data.MaskImage(mask, h, w)); err != nil {
		return err
	}
	if err := writePNG(*overlay, data.Overlay(pix, mask, h, w, c.Preprocess.Channels)); err != nil {
		return err
	}
	counts := make([]int, len(c.Classes))
	for _, m := range mask {
		if int(m) < len(counts) {
			counts[m]++
		}
	}
	fmt.Fprintf(stdout, "%s: %dx%d pixels segmented, mask %s, overlay %s\n", pos[0], w, h, *out, *overlay)
	for k, n := range counts {
		if n > 0 {
			fmt.Fprintf(stdout, "  %-12s %6.2f%%\n", c.Classes[k], 100*float64(n)/float64(len(mask)))
		}
	}
	return nil
}

// writePNG encodes img atomically at path.
func writePNG(path string, img image.Image) error {
	var b strings.Builder
	if err := png.Encode(&b, img); err != nil {
		return err
	}
	return safetensors.WriteAtomic(path, []byte(b.String()))
}
