package train

import (
	"fmt"
	"sort"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Input turns an image file into the model input the checkpoint's
// preprocessing describes: decoded within the pixel limits (data.LoadImage),
// channels converted, torchvision's Resize and CenterCrop (or a resize to
// the input size) as data.EvalTransform does them, channel order, scaling
// and normalisation.
func (p Preprocess) Input(path string) (*tensor.Tensor, error) {
	if p.Channels != 1 && p.Channels != 3 {
		return nil, fmt.Errorf("train: the checkpoint's preprocessing has %d channels; images have 1 or 3", p.Channels)
	}
	img, err := data.LoadImage(path)
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	pix, err := data.EvalTransform(data.Pixels(img, p.Channels), b.Dy(), b.Dx(), p.Channels, p.ResizeShorter, p.Height, p.Width)
	if err != nil {
		return nil, fmt.Errorf("train: %s: %w", path, err)
	}
	h, w := p.Height, p.Width
	t := tensor.New(1, h, w, p.Channels)
	for i, v := range pix {
		c := i % p.Channels
		if p.BGR {
			c = p.Channels - 1 - c
		}
		x := float64(v)
		if !p.Scale255 {
			x /= 255
		}
		if p.Mean != nil {
			x -= p.Mean[c]
		}
		if p.Std != nil {
			x /= p.Std[c]
		}
		t.Data[(i/p.Channels)*p.Channels+c] = float32(x)
	}
	return t, nil
}

// Guess is one class and its probability.
type Guess struct {
	Class       int
	Name        string
	Probability float64
}

// Predict returns the k most probable classes for an image file.
func (c *Checkpoint) Predict(path string, k int) ([]Guess, error) {
	x, err := c.Preprocess.Input(path)
	if err != nil {
		return nil, err
	}
	nn.SetTraining(c.Net, false)
	logits := c.Net.Forward(ag.NewNoGradTape().Constant(x))
	probs := ag.Softmax(logits, 1).Tensor().Data
	gs := make([]Guess, len(probs))
	for i, p := range probs {
		gs[i] = Guess{Class: i, Probability: float64(p)}
		if i < len(c.Classes) {
			gs[i].Name = c.Classes[i]
		}
	}
	sort.SliceStable(gs, func(a, b int) bool { return gs[a].Probability > gs[b].Probability })
	if k > len(gs) {
		k = len(gs)
	}
	if k < 1 {
		return nil, fmt.Errorf("train: top-k needs k ≥ 1")
	}
	return gs[:k], nil
}

// Segment returns the class of every pixel of an image file, at the
// image's own size, with a U-Net checkpoint: the image is converted to the
// checkpoint's channels and normalisation (not resized) and segmented by
// overlap-tile inference (unet.Net.Segment) with tiles of tile output
// pixels (0: the default). It also returns the image's pixels (for an
// overlay).
func (c *Checkpoint) Segment(path string, tile int) (mask, pixels []uint8, h, w int, err error) {
	u, ok := c.Net.(*unet.Net)
	if !ok {
		return nil, nil, 0, 0, fmt.Errorf("train: %s is not a U-Net; segmentation needs one", c.Model.Name)
	}
	img, err := data.LoadImage(path)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	b := img.Bounds()
	h, w = b.Dy(), b.Dx()
	p := c.Preprocess
	pixels = data.Pixels(img, p.Channels)
	nn.SetTraining(c.Net, false)
	logits, err := u.Segment(data.Normalise(pixels, h, w, p.Channels, p.Mean, p.Std), tile)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	k := logits.Shape[3]
	mask = make([]uint8, h*w)
	for i := range mask {
		row := logits.Data[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		mask[i] = uint8(best)
	}
	return mask, pixels, h, w, nil
}
