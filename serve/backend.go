package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"image"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/tensor"
)

// Backend is one loaded model as the server needs it: what it is, how an
// image becomes its input, and a batched forward pass. Package infer's
// Model provides all three: FromInfer makes it one.
type Backend interface {
	// Info describes the model; it must not change while the backend is
	// served.
	Info() ModelInfo
	// Preprocess turns a decoded image into one NHWC input [1,H,W,C].
	Preprocess(img image.Image) (*tensor.Tensor, error)
	// Forward runs a batch [N,H,W,C] and returns logits [N,classes]
	// (classifiers) or [N,H',W',classes] (segmenters). The server calls it
	// from one goroutine per model instance (Config.Instances); with more
	// than one instance it must be safe for concurrent use. x's memory
	// is reused for later requests once the response is written: Forward
	// must not keep x, nor return a y that shares its data. ctx is not a
	// request's: a batch holds several requests, and it runs to the end
	// for those still waiting when one gives up, so the server passes a
	// context that is never cancelled (a request whose deadline cannot
	// be met is refused before it is batched).
	Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error)
}

// ModelInfo is what the server publishes about a model (metadata routes,
// the web page) and checks requests against.
type ModelInfo struct {
	// Task is models.Classify or models.Segment.
	Task models.Task `json:"task"`
	// Classes names the output classes (index i is class i).
	Classes []string `json:"classes"`
	// Height, Width and Channels of one input image; the input tensor is
	// [N,Height,Width,Channels] float32.
	Height   int `json:"height"`
	Width    int `json:"width"`
	Channels int `json:"channels"`
	// Architecture names the network (e.g. "resnet50"), for people.
	Architecture string `json:"architecture,omitempty"`
	// Preprocessing describes how Preprocess maps pixels to inputs, for
	// clients that send tensors themselves: free text, or any value that
	// encodes to JSON (the command line's checkpoints publish an object of
	// the keys SERVING.md lists).
	Preprocessing any `json:"preprocessing,omitempty"`
}

// validate checks that an info can be served.
func (mi ModelInfo) validate() error {
	switch {
	case mi.Task != models.Classify && mi.Task != models.Segment:
		return fmt.Errorf("task %q is neither %q nor %q", mi.Task, models.Classify, models.Segment)
	case mi.Height <= 0 || mi.Width <= 0 || mi.Channels <= 0:
		return fmt.Errorf("input shape %d×%d×%d is not positive", mi.Height, mi.Width, mi.Channels)
	case len(mi.Classes) == 0:
		return fmt.Errorf("no classes")
	}
	if _, err := json.Marshal(mi.Preprocessing); err != nil { // else every metadata request fails
		return fmt.Errorf("preprocessing %T does not encode to JSON: %v", mi.Preprocessing, err)
	}
	return nil
}

// checkOutput checks a model's output for a batch of n against mi: [n,
// classes] for a classifier, [n, H', W', classes] with H', W' ≥ 1 for a
// segmenter.
func (mi ModelInfo) checkOutput(y *tensor.Tensor, n int) error {
	k := len(mi.Classes)
	if y == nil {
		return fmt.Errorf("output is nil; its Info declares a %s model of %d classes", mi.Task, k)
	}
	if mi.Task == models.Segment {
		if len(y.Shape) != 4 || y.Shape[0] != n || y.Shape[1] < 1 || y.Shape[2] < 1 || y.Shape[3] != k {
			return fmt.Errorf("output shape %v for %d images does not match its Info: a segmenter of %d classes answers [%d H' W' %d] (logits per pixel, H', W' ≥ 1)", y.Shape, n, k, n, k)
		}
		return nil
	}
	if len(y.Shape) != 2 || y.Shape[0] != n || y.Shape[1] != k {
		return fmt.Errorf("output shape %v for %d images does not match its Info: a classifier of %d classes answers [%d %d]", y.Shape, n, k, n, k)
	}
	return nil
}

// Opener loads the model file at path (a checkpoint of any kind residual
// reads); the server calls it for --model flags and for every new or
// changed file of a repository. It takes no context, so nothing can stop
// it: it must return, and soon (a file read). Load waits for it as long
// as it takes; Run, draining, waits for the one a repository scan is in
// for at most what is left of the drain, then returns an error naming
// the file and leaves it running (the model it returns is refused).
type Opener func(path string) (Backend, error)
