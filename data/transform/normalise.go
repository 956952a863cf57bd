package transform

import (
	"fmt"
	"math"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// Normalisation is the last step of every transform, 8-bit pixels to a
// model's float32 input: torchvision's ToTensor then Normalize,
// x = (p/255 − mean)/std, or Keras's Caffe preprocessing (BGR, Scale255,
// means only). It is computed in float64 and rounded once to float32.
// checkpoint.Preprocess records it with a model; data.Loader applies it to
// batches, package infer to a program's images.
type Normalisation struct {
	// Mean and Std hold one value per channel, in the model's channel
	// order and scale; empty for none.
	Mean, Std []float64
	// Scale255 keeps pixel values in [0, 255] before Mean and Std (Caffe)
	// instead of scaling them to [0, 1].
	Scale255 bool `json:",omitempty"`
	// BGR reverses the channel order (Caffe).
	BGR bool `json:",omitempty"`
}

// Check returns an error naming a field that no image of the given
// channels could be normalised with: a Mean or Std whose length is neither
// 0 nor channels, a value beyond float32's range, or a Std below its
// smallest normal number (2^-126), which would make every input infinite
// or NaN in float32.
func (n Normalisation) Check(channels int) error {
	for _, v := range []struct {
		name     string
		vs       []float64
		positive bool
	}{{"Mean", n.Mean, false}, {"Std", n.Std, true}} {
		if len(v.vs) != 0 && len(v.vs) != channels {
			return fmt.Errorf("%s takes one value per channel (%d), not %d", v.name, channels, len(v.vs))
		}
		for i, x := range v.vs {
			if math.IsNaN(x) || math.Abs(x) > math.MaxFloat32 || (v.positive && !(x >= 0x1p-126)) {
				return fmt.Errorf("%s[%d] = %v (want a finite float32%s)", v.name, i, x, map[bool]string{true: " of at least 2^-126", false: ""}[v.positive])
			}
		}
	}
	return nil
}

// Channel returns the model-order position of an image's channel ch of c:
// reversed with BGR.
func (n Normalisation) Channel(ch, c int) int {
	if n.BGR {
		return c - 1 - ch
	}
	return ch
}

// Value returns the model input for the pixel value p of model-order
// channel ch. n must have passed Check.
func (n Normalisation) Value(p uint8, ch int) float32 {
	x := float64(p)
	if !n.Scale255 {
		x /= 255
	}
	if len(n.Mean) != 0 {
		x -= n.Mean[ch]
	}
	if len(n.Std) != 0 {
		x /= n.Std[ch]
	}
	return float32(x)
}

// Apply writes the model input of pixels pix (NHWC, c channels in the
// image's order) to dst, in the model's channel order; dst is as long as
// pix. n must have passed Check.
func (n Normalisation) Apply(dst []float32, pix []uint8, c int) {
	dst = dst[:len(pix)]
	for i, p := range pix {
		ch := i % c
		o := n.Channel(ch, c)
		dst[i-ch+o] = n.Value(p, o)
	}
}

// Tensor returns one h×w image of c channels normalised, [1,h,w,c], or an
// error: pix not of h·w·c values, a size outside package limits, or a
// Normalisation that Check refuses.
func (n Normalisation) Tensor(pix []uint8, h, w, c int) (*tensor.Tensor, error) {
	if h < 1 || w < 1 || c < 1 || h > limits.ImageSide || w > limits.ImageSide || c > limits.Channels {
		return nil, fmt.Errorf("data: normalising a %d×%d image of %d channels (sides 1..%d, channels 1..%d)", h, w, c, limits.ImageSide, limits.Channels)
	}
	if len(pix) != h*w*c {
		return nil, fmt.Errorf("data: normalising %d pixel values as a %d×%d×%d image (%d)", len(pix), h, w, c, h*w*c)
	}
	if err := n.Check(c); err != nil {
		return nil, fmt.Errorf("data: normalising: %w", err)
	}
	t := tensor.New(1, h, w, c)
	n.Apply(t.Data, pix, c)
	return t, nil
}
