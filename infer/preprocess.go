package infer

import (
	"errors"
	"fmt"
	"image"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/internal/typednil"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// Input applies training's evaluation transform, as p describes it, to an
// image: pixels converted to grey or RGB, resized to p's size (or the
// shorter side resized to p.ResizeShorter and the centre cropped), channel
// order, scaling and normalisation. It returns the model input
// [1,Height,Width,Channels].
//
// The evaluation transform is package data/transform's, which training
// uses (torchvision's Resize and CenterCrop, PIL's resampling byte for
// byte), and so is the resize to the model's size (transform.Resize), and
// the conversion to grey or RGB (transform.Pixels: PIL's convert, alpha
// dropped).
//
// A nil image (or a nil *image.Gray, …) is an error, and so is an image
// whose methods panic (say, an image.Gray whose Pix is shorter than its
// Rect says).
func Input(p checkpoint.Preprocess, img image.Image) (*tensor.Tensor, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	pix, h, w, err := readImage(img, p.Channels)
	if err != nil {
		return nil, err
	}
	if p.ResizeShorter > 0 {
		// torchvision's Resize(shorter) and CenterCrop, PIL's antialiased
		// bilinear resampling byte for byte (data/transform).
		if pix, err = transform.EvalTransform(pix, h, w, p.Channels, p.ResizeShorter, p.Height, p.Width); err != nil {
			return nil, fmt.Errorf("infer: %w", err)
		}
		h, w = p.Height, p.Width
	} else if h != p.Height || w != p.Width {
		if pix, err = transform.Resize(pix, h, w, p.Channels, p.Height, p.Width); err != nil {
			return nil, fmt.Errorf("infer: %w", err)
		}
		h, w = p.Height, p.Width
	}
	return normalise(p, pix, h, w), nil
}

// readImage returns an image's pixels as grey or RGB bytes (pixels) and
// its size, which must be within package limits. A nil image is an error,
// and so is a panic of the image's own methods (the caller's image type,
// or an image.Gray built by hand with too short a Pix), which becomes an
// error naming the image's type rather than a crash.
func readImage(img image.Image, channels int) (pix []uint8, h, w int, err error) {
	if typednil.Is(img) {
		return nil, 0, 0, errors.New("infer: the image is nil")
	}
	defer func() {
		if r := recover(); r != nil {
			pix, h, w, err = nil, 0, 0, fmt.Errorf("infer: reading the image (%T): %v", img, r)
		}
	}()
	b := img.Bounds()
	h, w = b.Dy(), b.Dx()
	if err := limits.CheckImage("infer: input", w, h); err != nil {
		return nil, 0, 0, err
	}
	return transform.Pixels(img, channels), h, w, nil
}

// normalise turns 8-bit NHWC pixels into the model's input [1,h,w,c]
// (p has passed Validate).
func normalise(p checkpoint.Preprocess, pix []uint8, h, w int) *tensor.Tensor {
	t := tensor.New(1, h, w, p.Channels)
	p.Apply(t.Data, pix, p.Channels)
	return t
}
