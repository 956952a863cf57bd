package infer_test

import (
	"context"
	"errors"
	"image"
	"path/filepath"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/tensor"
)

// An int8 checkpoint opens with Precision "int8" and classifies the
// digits as its float original does: calibrated on the three digits
// themselves, the top class agrees on each.
func TestOpenInt8(t *testing.T) {
	const dir = "../testdata/checkpoint/"
	var imgs []image.Image
	for _, f := range []string{"digit0.png", "digit1.png", "digit2.png"} {
		img, err := imagefile.Load(dir + f)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	fp, err := infer.Open(dir + "mnist-tiny.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	c, err := checkpoint.Load(dir + "mnist-tiny.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.New(3, 28, 28, 1)
	for i, img := range imgs {
		xi, err := fp.Preprocess(img)
		if err != nil {
			t.Fatal(err)
		}
		copy(x.Data[i*28*28:], xi.Data)
	}
	done := false
	q, err := quant.Quantize(context.Background(), c.Net, []int{1, 28, 28, 1}, func() (*tensor.Tensor, error) {
		if done {
			return nil, nil
		}
		done = true
		return x, nil
	}, quant.Options{Method: quant.MinMax})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tiny8.safetensors")
	if err := checkpoint.WriteInt8(path, q, c.Meta); err != nil {
		t.Fatal(err)
	}
	m, err := infer.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Info().Precision; p != "int8" {
		t.Errorf("precision %q", p)
	}
	if p := fp.Info().Precision; p != "fp32" {
		t.Errorf("float checkpoint's precision %q", p)
	}
	want, err := fp.Classify(context.Background(), imgs, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Classify(context.Background(), imgs, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range imgs {
		if got[i][0].Class != want[i][0].Class {
			t.Errorf("digit %d: int8 class %d, float %d", i, got[i][0].Class, want[i][0].Class)
		}
	}
	if _, err := m.Forward(context.Background(), tensor.New(1, 14, 14, 1)); err == nil {
		t.Error("int8 model took a 14×14 input (quantized at 28×28)")
	}
	// The int8 network looks at the caller's context between its layers:
	// one cancelled after Forward's own look stops the pass.
	if _, err := m.Forward(&cancelAfter{Context: context.Background(), looks: 1}, x); !errors.Is(err, context.Canceled) {
		t.Errorf("a context cancelled during the int8 pass: %v; want context.Canceled", err)
	}
}

// cancelAfter is a context whose Err reports it cancelled after its first
// looks calls.
type cancelAfter struct {
	context.Context
	looks int
}

func (c *cancelAfter) Err() error {
	if c.looks--; c.looks < 0 {
		return context.Canceled
	}
	return nil
}
