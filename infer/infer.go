// Package infer runs residual's trained or imported models from Go
// programs: open a checkpoint once, then classify or segment decoded
// images from as many goroutines as you like.
//
//	m, err := infer.Open("runs/resnet20-mnist/best.safetensors")
//	...
//	img, err := imagefile.Load("photo.jpg")
//	...
//	guesses, err := m.Classify(ctx, []image.Image{img}, 5)
//
// Decode files with imagefile.Load (bytes with imagefile.Decode), as the
// command line, the server and training do: it turns a JPEG upright by
// its EXIF orientation, decodes WebP's colours as libwebp does and
// refuses decompression bombs from the header. image.Decode does none of
// this, so a phone photo taken sideways reaches the model sideways and
// can be classified differently than by `residual predict`. Package
// data/imagefile holds only the image readers: a program that classifies
// files links neither package data's data sets nor its embedded MNIST.
//
// A Model is safe for concurrent use: the network is put in evaluation
// mode once, when it is opened, and is only read afterwards (batch norms
// use their running statistics and count nothing); each call runs on its
// own inference tape (autograd.NewNoGradTape), taken from a pool. Images
// go through training's evaluation transform (Input), so a model sees
// what it saw when it was validated.
//
// This package needs neither the trainer nor the plotting stack nor the
// embedded MNIST: a program that only infers stays small.
package infer

import (
	"context"
	"errors"
	"fmt"
	"image"
	"runtime"
	"sync"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/internal/typednil"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/tensor"
)

// ClassifyBatch is how many images Classify runs through the network at
// once: enough to use the cores' vector units, few enough that a
// ResNet-50's activations stay around 1 GB. A caller with a long list of
// image files reads and hands Classify ClassifyBatch of them at a time (as
// residual predict does) to hold one batch decoded and give each batch's
// guesses as it goes, with nothing lost to Classify's batching.
const ClassifyBatch = 16

// Model is an opened checkpoint, ready for inference.
type Model struct {
	info  Info
	dense bool
	net   nn.Layer
	int8  *quant.Model // an int8 checkpoint's model (net unused)
	tapes tapes
	// precision is the arithmetic of the convolutions and matrix products
	// (SetPrecision).
	precision ag.Precision
}

// Info describes an opened model.
type Info struct {
	// Name is the model's name (e.g. "resnet50"); Kind its family
	// ("resnet", "unet", "mlp").
	Name, Kind string
	// Task is models.Classify (one vector of class logits per image) or
	// models.Segment (a class per pixel).
	Task models.Task
	// Classes are the class names, one per output.
	Classes []string
	// Height, Width and Channels are the model input's; a segmentation
	// model takes images of any size (Segment tiles them).
	Height, Width, Channels int
	// Preprocess is how Preprocess turns an image into the input.
	Preprocess checkpoint.Preprocess
	// Precision is the arithmetic the model computes in: "int8" for an
	// int8 checkpoint (package quant), else "fp32", or "bf16" after
	// SetPrecision(ag.BF16) (autograd.Precision's names).
	Precision string
}

// Open reads a checkpoint (one residual wrote: trained, imported from
// PyTorch or Keras, or quantized to int8 by `residual quantize`) and
// prepares its model for inference.
func Open(path string) (*Model, error) {
	c, err := checkpoint.Load(path)
	if err != nil {
		return nil, err
	}
	return New(c)
}

// New prepares a loaded checkpoint's model for inference. The model is
// changed (evaluation mode) and must not be used elsewhere afterwards.
// A nil checkpoint, one without a model config or network, and one whose
// metadata is invalid (checkpoint.Meta.Validate) are errors.
func New(c *checkpoint.Checkpoint) (*Model, error) {
	if c == nil {
		return nil, errors.New("infer: no checkpoint (nil)")
	}
	if c.Model.Arch == nil {
		return nil, fmt.Errorf("infer: the checkpoint has no model (its config %q describes no network)", c.Model.Name)
	}
	if c.Int8 == nil && typednil.Is(c.Net) {
		return nil, fmt.Errorf("infer: the checkpoint of %s has no network (Net is nil)", c.Model.Name)
	}
	if err := c.Meta.Validate(); err != nil {
		return nil, fmt.Errorf("infer: the checkpoint of %s: %w", c.Model.Name, err)
	}
	precision := "int8"
	if c.Int8 == nil {
		precision = "fp32"
		// The one place where the model changes for inference
		// (evaluation mode, batch norms folded, parameters sealed):
		// afterwards it is only read.
		if err := models.ForInference(c.Model, c.Net); err != nil {
			return nil, fmt.Errorf("infer: preparing %s for inference: %w", c.Model.Name, err)
		}
	}
	p := c.Preprocess
	m := &Model{
		info: Info{Name: c.Model.Name, Kind: c.Model.Kind(), Task: c.Model.Task(), Classes: append([]string(nil), c.Classes...),
			Height: p.Height, Width: p.Width, Channels: p.Channels, Preprocess: p, Precision: precision},
		dense: c.Model.Dense(),
		net:   c.Net,
		int8:  c.Int8,
	}
	return m, nil
}

// Info describes the model: name, task, classes, input size and
// preprocessing.
func (m *Model) Info() Info {
	if m == nil {
		return Info{}
	}
	i := m.info
	i.Classes = append([]string(nil), i.Classes...)
	i.Preprocess.Mean = append([]float64(nil), i.Preprocess.Mean...)
	i.Preprocess.Std = append([]float64(nil), i.Preprocess.Std...)
	return i
}

// Preprocess turns an image into the model's input [1,H,W,C] by training's
// evaluation transform (see Input).
func (m *Model) Preprocess(img image.Image) (*tensor.Tensor, error) {
	if m == nil {
		return nil, errNoModel
	}
	return Input(m.info.Preprocess, img)
}

// errNoModel is what a nil *Model's methods return.
var errNoModel = errors.New("infer: no model (nil; Open or New makes one)")

// Forward runs a batch of preprocessed images x [N,H,W,C] (N ≥ 1) through
// the network and returns its logits: [N,Classes] for a classifier,
// [N,H',W',Classes] for a segmentation network (H'×W' is smaller than the
// input for a valid U-Net). A server batches requests through it. Inputs
// the network cannot take are an error, as is a done ctx (an int8 network
// also looks at it between its layers). A float network
// takes any H×W it can compute on: a classifier pools globally, so images
// of another size than Info's give logits without complaint (Preprocess
// and Classify resize to Info's size); an int8 network takes only the
// size it was calibrated at.
func (m *Model) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	switch {
	case m == nil:
		return nil, errNoModel
	case ctx == nil:
		return nil, errors.New("infer: Forward: nil context")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if x == nil || x.Rank() != 4 || x.Shape[0] < 1 || x.Shape[3] != m.info.Channels {
		var shape []int
		if x != nil {
			shape = x.Shape
		}
		return nil, fmt.Errorf("infer: input of shape %v, want [N,H,W,%d] with N ≥ 1", shape, m.info.Channels)
	}
	if err := checkValues(x); err != nil {
		return nil, err
	}
	return m.forward(ctx, x)
}

// checkValues refuses an input whose shape is beyond limits.TensorElements
// or whose values do not fill it (a shape claimed without the data would
// have the input extended, or run, at its claimed size).
func checkValues(x *tensor.Tensor) error {
	if err := limits.CheckElements("infer: input", x.Shape...); err != nil {
		return err
	}
	if len(x.Data) != tensor.NumElements(x.Shape) {
		return fmt.Errorf("infer: input holds %d values for shape %v", len(x.Data), x.Shape)
	}
	return nil
}

// forward runs the network on its own pooled tape and copies the output
// out of the tape's buffers. The int8 network looks at ctx between its
// layers; the float one runs to the end.
func (m *Model) forward(ctx context.Context, x *tensor.Tensor) (y *tensor.Tensor, err error) {
	if m.int8 != nil {
		y, err := m.int8.Forward(ctx, x)
		if err != nil {
			return nil, fmt.Errorf("infer: %s (int8): %w", m.info.Name, err)
		}
		return y, nil
	}
	tape := m.tapes.get()
	tape.SetPrecision(m.precision)
	defer func() {
		r := recover()
		if r != nil { // a network refusing the input's size
			tape.Discard() // the pass stopped short: its memory plan must not learn it
			y, err = nil, fmt.Errorf("infer: %s cannot take input %v: %v", m.info.Name, x.Shape, r)
		} else {
			tape.Reset()
		}
		m.tapes.put(tape)
	}()
	return m.net.Forward(tape.Constant(x)).Tensor().Clone(), nil
}

// SetPrecision sets the arithmetic of the model's convolutions and matrix
// products: ag.FP32 (the default) or ag.BF16 (bfloat16 operands, float32
// sums: PyTorch's CPU autocast; see autograd.Precision). Call it before
// the model serves requests, not while it does. An int8 model computes in
// int8 and refuses any precision but ag.FP32 (which leaves it as it is).
// A precision other than ag.FP32 and ag.BF16 is an error.
func (m *Model) SetPrecision(p ag.Precision) error {
	if m == nil {
		return errNoModel
	}
	if p != ag.FP32 && p != ag.BF16 {
		return fmt.Errorf("infer: unknown precision ag.Precision(%d) (want ag.FP32 or ag.BF16)", int(p))
	}
	if m.int8 != nil && p != ag.FP32 {
		return fmt.Errorf("infer: %s is an int8 model; precision %s applies to float models only", m.info.Name, p)
	}
	m.precision = p
	if m.int8 == nil {
		m.info.Precision = p.String()
	}
	return nil
}

// Guess is one class and its probability.
type Guess struct {
	// Class is the output's index, and Label its name: its entry in
	// Info.Classes (serve.Guess's Label, torchvision's and KServe's word).
	Class int
	Label string
	// Probability is the softmax of the logits at Class, in [0, 1].
	Probability float64
}

// ImageError is Classify's error for one of its images that cannot be
// classified (nil, or refused by Preprocess: too large, of no pixels):
// Index is its place in the images given, so that a caller can name its
// file and classify the others.
type ImageError struct {
	Index int
	Err   error
}

// Error names the image by its index and says why it was refused.
func (e *ImageError) Error() string { return fmt.Sprintf("infer: image %d: %v", e.Index, e.Err) }

// Unwrap returns why the image was refused, for errors.Is and errors.As.
func (e *ImageError) Unwrap() error { return e.Err }

// Classify returns the k most probable classes of each image, most
// probable first (k is capped at the number of classes). Images are
// preprocessed as in training's evaluation and run in batches; ctx is
// checked between batches. An image that is nil or that Preprocess
// refuses is an *ImageError naming its index.
func (m *Model) Classify(ctx context.Context, imgs []image.Image, k int) ([][]Guess, error) {
	switch {
	case m == nil:
		return nil, errNoModel
	case ctx == nil:
		return nil, errors.New("infer: Classify: nil context")
	}
	if m.dense {
		return nil, fmt.Errorf("infer: %s segments images; use Segment", m.info.Name)
	}
	if k < 1 {
		return nil, fmt.Errorf("infer: top-k needs k ≥ 1, got %d", k)
	}
	for i, img := range imgs {
		if typednil.Is(img) {
			return nil, &ImageError{i, errors.New("no image (nil)")}
		}
	}
	k = min(k, len(m.info.Classes))
	out := make([][]Guess, 0, len(imgs))
	p := m.info.Preprocess
	for lo := 0; lo < len(imgs); lo += ClassifyBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch := imgs[lo:min(lo+ClassifyBatch, len(imgs))]
		x := tensor.New(len(batch), p.Height, p.Width, p.Channels)
		per := p.Height * p.Width * p.Channels
		for i, img := range batch {
			xi, err := m.Preprocess(img)
			if err != nil {
				return nil, &ImageError{lo + i, err}
			}
			copy(x.Data[i*per:], xi.Data)
		}
		logits, err := m.Forward(ctx, x)
		if err != nil {
			return nil, err
		}
		if logits.Rank() != 2 || logits.Shape[1] != len(m.info.Classes) {
			return nil, fmt.Errorf("infer: %s gave logits %v for %d classes", m.info.Name, logits.Shape, len(m.info.Classes))
		}
		probs := ag.Softmax(ag.Constant(logits), 1).Data
		n := logits.Shape[1]
		for i := range batch {
			out = append(out, top(probs.Data[i*n:(i+1)*n], m.info.Classes, k))
		}
	}
	return out, nil
}

// top returns the k largest probabilities with their classes (ties keep
// class order).
func top(probs []float32, names []string, k int) []Guess {
	idx := tensor.TopK(probs, k)
	gs := make([]Guess, len(idx))
	for j, i := range idx {
		gs[j] = Guess{Class: i, Label: names[i], Probability: float64(probs[i])}
	}
	return gs
}

// Mask is a segmentation: the class of every pixel of an image, at the
// image's own size.
type Mask struct {
	Width, Height int
	// Class holds the class index of each pixel, row by row: an int32,
	// since a U-Net's classes are bounded by limits.Classes, not by the
	// MaskClasses that MaskImage's bytes hold.
	Class []int32
	// Names are the class names.
	Names []string
}

// Segment returns the class of every pixel of img with a segmentation
// model (a U-Net), as SegmentUNet computes it with the network's
// default tiles: a valid U-Net by overlap-tile inference, a padded one as
// one pass over the whole image (in tiles with their context beyond 1024²
// pixels). ctx is checked between tiles.
func (m *Model) Segment(ctx context.Context, img image.Image) (*Mask, error) {
	return m.SegmentTiles(ctx, img, 0)
}

// SegmentTiles is Segment with tiles of tile×tile output pixels (0: the
// network's default; a tile larger than the image is cut to its size): a
// padded U-Net's mask does not depend on them, a valid one's may where
// the mirrored extensions differ.
// The image is converted to the model's channels and normalisation but not
// resized.
func (m *Model) SegmentTiles(ctx context.Context, img image.Image, tile int) (*Mask, error) {
	switch {
	case m == nil:
		return nil, errNoModel
	case ctx == nil:
		return nil, errors.New("infer: Segment: nil context")
	}
	u, ok := m.net.(*unet.Net)
	if !ok {
		return nil, fmt.Errorf("infer: %s is not a segmentation model (a U-Net)", m.info.Name)
	}
	if tile < 0 {
		return nil, fmt.Errorf("infer: tile %d < 0", tile)
	}
	pix, h, w, err := readImage(img, m.info.Channels)
	if err != nil {
		return nil, err
	}
	if tile > max(h, w) {
		tile = max(h, w)
	}
	x := normalise(m.info.Preprocess, pix, h, w)
	logits, err := SegmentUNet(ctx, u, x, tile, m.precision)
	if err != nil {
		return nil, err
	}
	k := logits.Shape[3]
	mask := &Mask{Width: w, Height: h, Class: make([]int32, h*w), Names: append([]string(nil), m.info.Classes...)}
	for i := range mask.Class {
		mask.Class[i] = int32(tensor.ArgMax(logits.Data[i*k : (i+1)*k]))
	}
	return mask, nil
}

// tapes keeps a model's inference tapes, one per pass running at once,
// with their pooled buffers and memory plans (autograd.Tape.PlanMemory).
// Unlike a sync.Pool, which drops what it holds at garbage collections, it
// keeps them: a dropped tape took its buffers with it, and its successor
// allocated and learnt a whole pass again (a ResNet-50 server collecting
// several times a second did so continually). It keeps at most one tape
// per processor; passes beyond that many at once use tapes it lets go.
type tapes struct {
	mu   sync.Mutex
	free []*ag.Tape
}

func (ts *tapes) get() *ag.Tape {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if n := len(ts.free); n > 0 {
		tp := ts.free[n-1]
		ts.free = ts.free[:n-1]
		return tp
	}
	tp := ag.NewNoGradTape()
	tp.PlanMemory() // forward reads only the network's output
	return tp
}

func (ts *tapes) put(tp *ag.Tape) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.free) < runtime.GOMAXPROCS(0) {
		ts.free = append(ts.free, tp)
	}
}
