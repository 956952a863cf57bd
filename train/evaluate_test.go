package train

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// TestEvaluate: Evaluate's accuracy and confusion matrix are those of the
// model's own forward pass over the set, counted here; it returns the
// context's cause once it is cancelled, and the loader's error (a set that
// fails Check) instead of figures.
func TestEvaluate(t *testing.T) {
	test, net := mnistResNet8(t, 600) // two full batches and a partial one
	loader := func(d *data.Dataset) *data.Loader {
		return &data.Loader{Data: d, Batch: 256, Normalisation: transform.Normalisation{Mean: []float64{0.1307}, Std: []float64{0.3081}}}
	}
	got, err := Evaluate(context.Background(), net, loader(test), 10, ag.FP32)
	if err != nil {
		t.Fatal(err)
	}
	nn.SetTraining(net, false)
	hits, n, diagonal, total := 0, 0, 0, 0
	for b := range loader(test).Epoch(context.Background(), 0, 0) {
		hits += correct(net.Forward(ag.NewNoGradTape().Constant(b.X)).Data, b.Y)
		n += len(b.Y)
	}
	for i, row := range got.Confusion {
		diagonal += row[i]
		for _, c := range row {
			total += c
		}
	}
	if n != 600 || total != n || diagonal != hits || got.Accuracy != float64(hits)/float64(n) || got.Top5 < got.Accuracy || got.Loss <= 0 {
		t.Errorf("Evaluate: %+v (%d counted, %d on the diagonal); the forward passes: %d of %d right", got, total, diagonal, hits, n)
	}
	// The model is left in the mode it was in: a model its caller had put
	// in evaluation mode stays there (it was switched to training mode,
	// and answered with batch statistics from then on), one in training
	// mode, with a frozen batch norm, comes back so.
	bns := func() (modes []bool) {
		for _, l := range nn.Layers(net) {
			if bn, ok := l.Layer.(*nn.BatchNorm); ok {
				modes = append(modes, bn.Training)
			}
		}
		return modes
	}
	nn.SetTraining(net, false)
	if _, err := Evaluate(context.Background(), net, loader(test), 10, ag.FP32); err != nil || slices.Contains(bns(), true) {
		t.Errorf("a model in evaluation mode, evaluated: %v; batch norms in training mode: %v", err, bns())
	}
	var frozen *nn.BatchNorm
	for _, l := range nn.Layers(net) {
		if bn, ok := l.Layer.(*nn.BatchNorm); ok && frozen == nil {
			frozen = bn
		}
	}
	frozen.Frozen = true
	nn.SetTraining(net, true)
	before := bns()
	if _, err := Evaluate(context.Background(), net, loader(test), 10, ag.FP32); err != nil || !slices.Equal(bns(), before) || frozen.Training || !slices.Contains(before, true) {
		t.Errorf("a model in training mode, evaluated: %v; batch norms' modes %v, before %v", err, bns(), before)
	}
	frozen.Frozen = false
	// Arguments it cannot evaluate are errors, not panics (each of these
	// panicked: an index out of range, a nil dereference).
	unet, err := models.Preset("unet-padded")
	if err != nil {
		t.Fatal(err)
	}
	unet.SetInChannels(1)
	unet.SetClasses(10)
	deep, err := models.Build(unet, tensor.NewRNG(1)) // four halvings: not 28×28
	if err != nil {
		t.Fatal(err)
	}
	unet.Arch.(*models.UNet).Depth = 2
	seg, err := models.Build(unet, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	small := test.Subset([]int{0, 1, 2, 3})
	for _, tc := range []struct {
		m       nn.Layer
		l       *data.Loader
		classes int
		p       ag.Precision
		want    string
	}{
		{net, loader(test), 5, ag.FP32, "the model has 10 outputs, evaluated against 5 classes"},
		{net, loader(test), 0, ag.FP32, "0 classes"},
		{nil, loader(test), 10, ag.FP32, "no model"},
		{net, nil, 10, ag.FP32, "no loader"},
		{net, loader(test), 10, ag.Precision(9), "unknown precision"},
		{seg, loader(small), 10, ag.FP32, "the model segments"},
		{deep, loader(small), 10, ag.FP32, "cannot take the data set's images: unet: input"},
		// An empty set (it gave loss 0 and accuracy 0 without an error).
		{net, loader(test.Subset(nil)), 10, ag.FP32, "holds no images"},
	} {
		_, err := Evaluate(context.Background(), tc.m, tc.l, tc.classes, tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error with %q, got %v", tc.want, err)
		}
		// One about the model or the data, which residual eval shows its
		// user, is not train's: the caller names the set.
		if data := tc.m != nil && tc.l != nil && tc.classes > 0 && tc.p == ag.FP32; data && err != nil && strings.HasPrefix(err.Error(), "train:") {
			t.Errorf("%v: the package prefix on an error about the model or the data", err)
		}
	}
	cause := errors.New("stopped by a test")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	if _, err := Evaluate(ctx, net, loader(test), 10, ag.FP32); err != cause {
		t.Errorf("cancelled: %v, want the cause %v", err, cause)
	}
	bad := *test
	bad.Labels = append([]int32(nil), test.Labels...)
	bad.Labels[3] = 12
	if _, err := Evaluate(context.Background(), net, loader(&bad), 10, ag.FP32); err == nil {
		t.Error("a set with label 12 of 10 classes evaluated without an error")
	}
	var none context.Context
	if _, err := Evaluate(none, net, loader(test), 10, ag.FP32); err == nil {
		t.Error("nil context: no error")
	}
}

// cancelling is a model that cancels a context on its first forward pass
// and counts the passes.
type cancelling struct {
	nn.Layer
	cancel context.CancelFunc
	passes int
}

func (c *cancelling) Forward(x *ag.Value) *ag.Value {
	c.passes++
	c.cancel()
	return c.Layer.Forward(x)
}

// TestEvaluateStopsWhenCancelled: a context cancelled during a batch stops
// the evaluation before the next one, although the loader has batches
// ready (it ran the whole epoch: 157 batches of MNIST's test set).
func TestEvaluateStopsWhenCancelled(t *testing.T) {
	test, net := mnistResNet8(t, 640)
	ctx, cancel := context.WithCancel(context.Background())
	m := &cancelling{Layer: net, cancel: cancel}
	l := &data.Loader{Data: test, Batch: 64}
	if _, err := Evaluate(ctx, m, l, 10, ag.FP32); !errors.Is(err, context.Canceled) || m.passes != 1 {
		t.Errorf("cancelled in the first batch: %v after %d passes; want context.Canceled after 1", err, m.passes)
	}
}

// mnistResNet8 returns the first n images of MNIST's test set and a
// ResNet-8 for them (random weights, seed 1).
func mnistResNet8(t *testing.T, n int) (*data.Dataset, nn.Layer) {
	t.Helper()
	_, test, err := data.MNIST()
	if err != nil {
		t.Fatal(err)
	}
	mc, err := models.Preset("resnet8")
	if err != nil {
		t.Fatal(err)
	}
	mc.SetInChannels(1)
	net, err := models.Build(mc, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	return test.Subset(limited(test, n)), net
}

// Loader carries the whole preprocessing record into the loader, and
// refuses a data set whose images are not of the record's size and
// channels (a globally pooling model would evaluate them without
// complaint), naming both.
func TestLoaderChecksTheSize(t *testing.T) {
	d := &data.Dataset{H: 4, W: 6, C: 3, Pixels: make([]uint8, 2*4*6*3), Labels: []int32{0, 1}, Classes: []string{"a", "b"}}
	p := checkpoint.Preprocess{Height: 4, Width: 6, Channels: 3, Normalisation: transform.Normalisation{Mean: []float64{1, 2, 3}, Std: []float64{4, 5, 6}, BGR: true, Scale255: true}}
	l, err := Loader(p, d, 8)
	if err != nil || l.Data != d || l.Batch != 8 || !reflect.DeepEqual(l.Mean, p.Mean) || !reflect.DeepEqual(l.Std, p.Std) || !l.BGR || !l.Scale255 || l.Shuffle || l.Augment != (data.Augment{}) {
		t.Fatalf("Loader: %+v, %v", l, err)
	}
	// Other channels: both shapes in full; the same channels (as data.Open
	// reads a set for a model) and another size: the sizes.
	if _, err := Loader(checkpoint.Preprocess{Height: 4, Width: 6, Channels: 1}, d, 8); err == nil || !strings.Contains(err.Error(), "holds 4x6x3 images (height×width×channels); the model takes 4x6x1") {
		t.Errorf("Loader for one channel: %v", err)
	}
	for _, q := range []checkpoint.Preprocess{{Height: 6, Width: 4, Channels: 3}, {Height: 8, Width: 12, Channels: 3}} {
		if _, err := Loader(q, d, 8); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("images are 4x6 pixels (height×width); the model takes %dx%d", q.Height, q.Width)) {
			t.Errorf("Loader for %+v: %v", q, err)
		}
	}
	if _, err := Loader(p, nil, 8); err == nil {
		t.Error("Loader of a nil data set: no error")
	}
	if _, err := Loader(p, d, 0); err == nil || !strings.Contains(err.Error(), "batch 0") {
		t.Errorf("Loader of batch 0: %v", err)
	}
}
