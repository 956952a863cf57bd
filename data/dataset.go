// Package data reads image classification data sets — MNIST and
// Fashion-MNIST (IDX files), CIFAR-10/100 (binary records) and folders of
// JPEG, PNG, GIF, BMP, WebP, TIFF, PGM and PPM images of any size — and feeds them to
// training as augmented, normalised NHWC batches, deterministically for a
// given seed. A folder's images are decoded batch by batch in the loader,
// within the pixel limits of package limits, and brought to one size by
// torchvision's transforms (RandomResizedCrop for training; Resize and
// CenterCrop for evaluation) with PIL's antialiased bilinear resize.
//
// MNIST is embedded (see data/mnist/README.md), so it needs no download.
package data

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// Dataset is a set of same-sized images with class labels, stored as
// 8-bit pixels, NHWC, or, for an image folder, as files that the loader
// decodes and transforms to H×W×C when it makes a batch.
type Dataset struct {
	H, W, C int
	Pixels  []uint8 // N·H·W·C values (nil for a folder's files)
	// Files, for a set read from an image folder (see Folder), hold one
	// image file per sample, decoded by the loader; Images say how.
	Files   []string
	Images  *ImageOptions
	Labels  []int32
	Classes []string // class names, indexed by label
	// Masks, for segmentation, hold one class index per pixel (N·H·W);
	// Labels are then nil.
	Masks []uint8
	// Ignore, for segmentation, is a mask value that is no class but
	// marks pixels counting in no loss and no metric (VOC's 255 on object
	// boundaries and unlabelled parts): the loader gives them the target
	// IgnoreTarget. Its zero value ignores nothing.
	Ignore Ignore
	// Weights optionally hold one loss weight per pixel (N·H·W) of a
	// segmentation set (see BorderWeights).
	Weights []float32
}

// An Ignore names the mask value, if any, that marks pixels to leave out
// of training and evaluation, as PyTorch's ignore_index does (255 in
// torchvision's segmentation references).
type Ignore struct {
	Set   bool
	Value uint8
}

// ignoredClass returns an error where d's ignored mask value is also one
// of its classes.
func (d *Dataset) ignoredClass() error {
	if v := int(d.Ignore.Value); d.Ignore.Set && v < len(d.Classes) {
		return fmt.Errorf("the ignored mask value %d is also class %q's (of %d classes): ignore a value above the classes (255, say)", v, d.Classes[v], len(d.Classes))
	}
	return nil
}

// Is reports whether mask value v is the one ignored.
func (g Ignore) Is(v uint8) bool { return g.Set && v == g.Value }

// IgnoreTarget is the target the loader gives a pixel whose mask value is
// ignored, and that the losses and metrics skip: PyTorch's default
// ignore_index.
const IgnoreTarget = -100

// Len returns the number of images (of labels, or of masks for a
// segmentation set).
func (d *Dataset) Len() int {
	if d.Masks != nil {
		return len(d.Masks) / max(d.H*d.W, 1)
	}
	return len(d.Labels)
}

// Image returns the pixels of image i of a set held in memory (not of a
// folder's files: see Files). It panics, naming i, if there is no such
// image.
func (d *Dataset) Image(i int) []uint8 {
	n := d.H * d.W * d.C
	if i < 0 || n < 1 || i >= len(d.Pixels)/n {
		panic(fmt.Sprintf("data: image %d of a set of %d in-memory images of %dx%dx%d", i, len(d.Pixels)/max(n, 1), d.H, d.W, d.C))
	}
	return d.Pixels[i*n : (i+1)*n]
}

// Check returns an error naming the first inconsistency: an image size
// below 1 or over limits.ImageSide (limits.Channels for channels), a
// folder's files in other than 1 or 3 channels, pixel, file, mask or
// weight counts that do not match the images, no classes, a label or
// mask value outside the classes (but for the ignored one), or an ignored
// mask value that is also a class's.
func (d *Dataset) Check() error {
	if err := d.checkSizes(); err != nil {
		return err
	}
	if err := d.ignoredClass(); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	for i, m := range d.Masks {
		if int(m) >= len(d.Classes) && !d.Ignore.Is(m) {
			return fmt.Errorf("data: mask value %d at pixel %d of image %d is not one of the %d classes", m, i%(d.H*d.W), i/(d.H*d.W), len(d.Classes))
		}
	}
	for i, l := range d.Labels {
		if l < 0 || int(l) >= len(d.Classes) {
			return fmt.Errorf("data: label %d of image %d outside [0, %d)", l, i, len(d.Classes))
		}
	}
	return nil
}

// checkSizes is the part of Check that does not look at every value: the
// image size and the lengths of the slices.
func (d *Dataset) checkSizes() error {
	switch {
	case d == nil:
		return fmt.Errorf("data: no data set (nil)")
	case d.H < 1 || d.W < 1 || d.C < 1 || d.H > limits.ImageSide || d.W > limits.ImageSide || d.C > limits.Channels:
		return fmt.Errorf("data: bad image size %dx%dx%d (sides in [1, %d], channels in [1, %d])", d.H, d.W, d.C, limits.ImageSide, limits.Channels)
	case d.Files != nil && (len(d.Files) != d.Len() || d.Pixels != nil || d.Images == nil || d.Masks != nil):
		return fmt.Errorf("data: %d image files for %d labels", len(d.Files), d.Len())
	case d.Files != nil && d.C != 1 && d.C != 3:
		return fmt.Errorf("data: image files decoded to %d channels (1 or 3)", d.C)
	// H·W·C ≤ 2^48 (the bounds above): the division does not overflow.
	case d.Files == nil && (len(d.Pixels)%(d.H*d.W*d.C) != 0 || len(d.Pixels)/(d.H*d.W*d.C) != d.Len()):
		return fmt.Errorf("data: %d pixel values for %d images of %dx%dx%d", len(d.Pixels), d.Len(), d.H, d.W, d.C)
	case len(d.Classes) == 0:
		return fmt.Errorf("data: no classes")
	case d.Masks != nil && (len(d.Masks)%(d.H*d.W) != 0 || d.Labels != nil):
		return fmt.Errorf("data: %d mask values for %d images of %dx%d", len(d.Masks), d.Len(), d.H, d.W)
	case d.Weights != nil && len(d.Weights) != len(d.Masks):
		return fmt.Errorf("data: %d pixel weights for %d mask values", len(d.Weights), len(d.Masks))
	}
	return nil
}

// Subset returns the images at the given indices (copied). It panics,
// naming the index, if one is outside [0, Len).
func (d *Dataset) Subset(idx []int) *Dataset {
	for _, i := range idx {
		if i < 0 || i >= d.Len() {
			panic(fmt.Sprintf("data: Subset: index %d outside [0, %d)", i, d.Len()))
		}
	}
	n := d.H * d.W * d.C
	s := &Dataset{H: d.H, W: d.W, C: d.C, Classes: d.Classes, Images: d.Images, Ignore: d.Ignore}
	if d.Files != nil {
		s.Files = make([]string, 0, len(idx))
	} else {
		s.Pixels = make([]uint8, 0, len(idx)*n)
	}
	if d.Masks != nil {
		s.Masks = make([]uint8, 0, len(idx)*d.H*d.W)
	} else {
		s.Labels = make([]int32, 0, len(idx))
	}
	if d.Weights != nil {
		s.Weights = make([]float32, 0, len(idx)*d.H*d.W)
	}
	for _, i := range idx {
		if d.Files != nil {
			s.Files = append(s.Files, d.Files[i])
		} else {
			s.Pixels = append(s.Pixels, d.Image(i)...)
		}
		if d.Masks != nil {
			s.Masks = append(s.Masks, d.Mask(i)...)
		} else {
			s.Labels = append(s.Labels, d.Labels[i])
		}
		if d.Weights != nil {
			s.Weights = append(s.Weights, d.Weights[i*d.H*d.W:(i+1)*d.H*d.W]...)
		}
	}
	return s
}

// Split holds out a fraction of the images (chosen by a permutation from
// seed) as a validation set; frac must be in (0, 1).
func (d *Dataset) Split(frac float64, seed uint64) (train, val *Dataset, err error) {
	if !(frac > 0 && frac < 1) { // NaN too
		return nil, nil, fmt.Errorf("data: validation fraction %g outside (0, 1)", frac)
	}
	perm := tensor.NewRNG(seed ^ 0x5eed5011).Perm(d.Len())
	nv := int(float64(d.Len()) * frac)
	if nv == 0 || nv == d.Len() {
		return nil, nil, fmt.Errorf("data: holding out %g of %d images for validation leaves %d there and %d for training; a side would be empty (use more images, another fraction, or no validation split)", frac, d.Len(), nv, d.Len()-nv)
	}
	return d.Subset(perm[nv:]), d.Subset(perm[:nv]), nil
}

// StatsSample is the number of images of a folder's files from which
// Stats estimates the mean and standard deviation.
const StatsSample = 100

// Relabel renumbers d's labels to classes, matched by name, and makes
// classes d's class list, so that a set holding some of a model's classes
// under the same names (a folder of new images) is scored against the
// model's outputs by name rather than by position. A class of d that is
// not among classes is an error naming it, and so is one that classes
// names twice (ImageNet's labels have two "crane" and two "maillot": a
// set without those classes is scored, one with them cannot be by name);
// so is a segmentation set (its masks hold class numbers, not names).
func (d *Dataset) Relabel(classes []string) error {
	if err := d.Check(); err != nil {
		return err
	}
	if d.IsSegmentation() {
		return errors.New("data: Relabel of a segmentation set")
	}
	if slices.Equal(d.Classes, classes) {
		return nil
	}
	index := make(map[string]int32, len(classes))
	twice := map[string][]int{}
	for i, n := range classes {
		if j, dup := index[n]; dup {
			twice[n] = append(twice[n], int(j), i)
		}
		index[n] = int32(i)
	}
	to := make([]int32, len(d.Classes))
	var unknown []string
	for i, n := range d.Classes {
		if at := twice[n]; at != nil {
			return fmt.Errorf("data: class %q is named twice among the %d classes to score against (at %d and %d): images of it cannot be scored by name", n, len(classes), at[0], at[1])
		}
		j, ok := index[n]
		if !ok {
			unknown = append(unknown, strconv.Quote(n))
		}
		to[i] = j
	}
	if len(unknown) > 0 {
		what := "classes %s are"
		if len(unknown) == 1 {
			what = "class %s is"
		}
		if len(unknown) > 5 {
			unknown = append(unknown[:5], fmt.Sprintf("and %d more", len(unknown)-5))
		}
		shown := strings.Join(classes[:min(len(classes), 10)], ", ")
		if len(classes) > 10 {
			shown += ", …"
		}
		return fmt.Errorf("data: "+what+" not among the %d classes to score against (%s)", strings.Join(unknown, ", "), len(classes), shown)
	}
	labels := make([]int32, len(d.Labels))
	for i, l := range d.Labels {
		labels[i] = to[l]
	}
	d.Labels, d.Classes = labels, slices.Clone(classes)
	return nil
}

// EvalShorter is the shorter side that the evaluation transform resizes
// a folder's images to before their centre crop (EvalResize of the image
// size), and 0 for a set held in memory (its images are used as they are):
// the ResizeShorter of a checkpoint's preprocessing, so that prediction
// sees images as evaluation did.
func (d *Dataset) EvalShorter() int {
	if d.Files == nil {
		return 0
	}
	return transform.EvalResize(d.H)
}

// Stats returns the per-channel mean and standard deviation of the pixels
// scaled to [0, 1]; for a folder's files, of StatsSample images evenly
// spaced through the set, after the evaluation transform (files that fail
// to decode are left out). A set whose sizes Check refuses is an error;
// decoding the sample stops, with ctx's cause, once ctx is done.
func (d *Dataset) Stats(ctx context.Context) (mean, std []float64, err error) {
	if ctx == nil {
		return nil, nil, errors.New("data: Stats: nil context")
	}
	if err := d.checkSizes(); err != nil {
		return nil, nil, err
	}
	pix := d.Pixels
	if d.Files != nil {
		pix = d.statsPixels(ctx)
		if ctx.Err() != nil {
			return nil, nil, context.Cause(ctx)
		}
	}
	sum, sq := make([]float64, d.C), make([]float64, d.C)
	for i, p := range pix {
		v := float64(p) / 255
		sum[i%d.C] += v
		sq[i%d.C] += v * v
	}
	n := float64(max(len(pix)/d.C, 1))
	mean, std = make([]float64, d.C), make([]float64, d.C)
	for c := range mean {
		mean[c] = sum[c] / n
		std[c] = max(math.Sqrt(max(sq[c]/n-mean[c]*mean[c], 0)), 1e-6)
	}
	return mean, std, nil
}

// statsPixels decodes the images Stats samples from a folder's files.
func (d *Dataset) statsPixels(ctx context.Context) []uint8 {
	n := min(d.Len(), StatsSample)
	imgs := make([][]uint8, n)
	parallel(n, func(k int) {
		if ctx.Err() == nil {
			imgs[k], _ = d.sample(k*d.Len()/n, false, nil)
		}
	})
	var pix []uint8
	for _, p := range imgs {
		pix = append(pix, p...)
	}
	return pix
}

// withChannels returns the set with its images in c channels (1 or 3):
// itself if they are, or a copy converted as Pixels converts (grey
// replicated to RGB; RGB to its luma). Other conversions are an error.
func (d *Dataset) withChannels(c int) (*Dataset, error) {
	if d.C == c {
		return d, nil
	}
	if d.Files != nil || !(d.C == 1 && c == 3 || d.C == 3 && c == 1) {
		return nil, fmt.Errorf("data: cannot convert images of %d channels to %d", d.C, c)
	}
	if err := limits.CheckElements("data: converted images", d.Len(), d.H, d.W, c); err != nil {
		return nil, err
	}
	out := *d
	out.C = c
	n := len(d.Pixels) / d.C
	out.Pixels = make([]uint8, n*c)
	for i := range n {
		if c == 3 {
			v := d.Pixels[i]
			out.Pixels[3*i], out.Pixels[3*i+1], out.Pixels[3*i+2] = v, v, v
		} else {
			out.Pixels[i] = transform.Luma(d.Pixels[3*i], d.Pixels[3*i+1], d.Pixels[3*i+2])
		}
	}
	return &out, nil
}
