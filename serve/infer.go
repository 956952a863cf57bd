package serve

import (
	"errors"
	"slices"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/infer"
)

// FromInfer serves an infer.Model (a checkpoint opened with infer.Open, in
// the precision set on it): its Preprocess is training's evaluation
// transform and its Forward is safe for concurrent use, so any number of
// instances share it. Its metadata's preprocessing is the object of keys
// SERVING.md lists, as `residual serve` publishes it.
func FromInfer(m *infer.Model) (Backend, error) {
	if m == nil {
		return nil, errors.New("serve: FromInfer: no model (nil)")
	}
	i := m.Info()
	return &inferBackend{Model: m, info: ModelInfo{
		Task: i.Task, Classes: i.Classes, Height: i.Height, Width: i.Width, Channels: i.Channels,
		Architecture: i.Name, Preprocessing: preprocessing(i.Preprocess),
	}}, nil
}

// OpenCheckpoint is the Opener of residual's checkpoints (Config.Open's
// default, for Load and a repository) through infer.Open and FromInfer,
// in float32 or int8 as the checkpoint is.
func OpenCheckpoint(path string) (Backend, error) {
	m, err := infer.Open(path)
	if err != nil {
		return nil, err
	}
	return FromInfer(m)
}

// inferBackend is FromInfer's Backend.
type inferBackend struct {
	*infer.Model
	info ModelInfo
}

func (b *inferBackend) Info() ModelInfo { return b.info }

// preprocessing is the metadata's account of how a checkpoint's images
// become its input (SERVING.md, "Tensors"): every image resized (its
// shorter side to resize_shorter and the centre cropped, or straight to
// height × width when that is 0), its pixels scaled to pixel_range, in
// channel_order, then (x − mean) / std per channel, NHWC float32.
func preprocessing(p checkpoint.Preprocess) map[string]any {
	order, scale := "RGB", "0-1"
	switch {
	case p.Channels == 1:
		order = "grey"
	case p.BGR:
		order = "BGR"
	}
	if p.Scale255 {
		scale = "0-255"
	}
	mean, std := p.Mean, p.Std
	if len(mean) == 0 {
		mean = slices.Repeat([]float64{0}, p.Channels)
	}
	if len(std) == 0 {
		std = slices.Repeat([]float64{1}, p.Channels)
	}
	return map[string]any{"height": p.Height, "width": p.Width, "channels": p.Channels, "resize_shorter": p.ResizeShorter,
		"pixel_range": scale, "channel_order": order, "mean": mean, "std": std, "layout": "NHWC"}
}
