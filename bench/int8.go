package bench

import (
	"context"
	"fmt"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/tensor"
)

// int8Workloads are the int8 inference benchmarks: the float workloads'
// models and batches, quantized (package quant; calibrated by min/max on
// the benchmark's own random batch, which the speed does not depend on)
// and run through quant.Model.Forward from float input to float logits.
var int8Workloads = map[string]workload{
	"resnet18-infer-int8": {"resnet18", 8, 224, false, ag.FP32},
	"resnet50-infer-int8": {"resnet50", 8, 224, false, ag.FP32},
}

// int8Names are the int8 benchmarks, kernel figures included.
func int8Names() []string {
	n := []string{"conv3x3-int8", "peak-int8", "peak-amx"}
	for k := range int8Workloads {
		n = append(n, k)
	}
	return n
}

// runInt8 runs an int8 benchmark (ok false: name is not one).
func runInt8(ctx context.Context, name string, r Result, o Options) (Result, bool, error) {
	r.Kernels = kernels.Active().String() + "/int8:" + kernels.ActiveInt8().String()
	if kernels.AMX() {
		r.Kernels += "+amx"
	}
	switch name {
	case "conv3x3-int8":
		r, err := conv3x3Int8(ctx, r, o)
		return r, true, err
	case "peak-int8":
		r, err := peakInt8(ctx, r, o)
		return r, true, err
	case "peak-amx":
		if !kernels.AMX() {
			return r, true, fmt.Errorf("bench: peak-amx needs AMX tiles, which this CPU or system does not grant (or RESIDUAL_AMX=0, or the int8 path is not VNNI)")
		}
		r, err := peakOf(ctx, r, o, kernels.PeakAMX, "GOP/s")
		return r, true, err
	}
	w, ok := int8Workloads[name]
	if !ok {
		return r, false, nil
	}
	w = w.withBatch(o.Batch)
	r.Batch = w.batch
	r, err := w.runInt8(ctx, r, o)
	return r, true, err
}

func (w workload) runInt8(ctx context.Context, r Result, o Options) (Result, error) {
	step, ferr, err := w.prepareInt8()
	if err != nil {
		return r, err
	}
	r.Unit = "img/s"
	if err := measure(ctx, &r, step, o, float64(w.batch)); err != nil {
		return r, err
	}
	return r, ferr() // a step's error voids the figures: callers read r only without one
}

// prepareInt8 quantizes w's network (min/max calibration on its own random
// input) and returns one int8 forward pass as step, and the first error a
// step met.
func (w workload) prepareInt8() (step func(), stepErr func() error, err error) {
	cfg, err := models.Preset(w.model)
	if err != nil {
		return nil, nil, err
	}
	rng := tensor.NewRNG(0)
	m, err := models.Build(cfg, rng)
	if err != nil {
		return nil, nil, err
	}
	shape := cfg.InputShape(w.batch, w.side)
	x := rng.Randn(shape...)
	once := false
	q, err := quant.Quantize(context.Background(), m, cfg.InputShape(1, w.side), func() (*tensor.Tensor, error) {
		if once {
			return nil, nil
		}
		once = true
		return x, nil
	}, quant.Options{Method: quant.MinMax})
	if err != nil {
		return nil, nil, err
	}
	var ferr error
	step = func() {
		if _, err := q.Forward(context.Background(), x); err != nil && ferr == nil {
			ferr = err
		}
	}
	return step, func() error { return ferr }, nil
}

// conv3x3Int8Shape is conv3x3's shape (a variable for the tests to shrink).
var conv3x3Int8Shape = kernels.ConvShape{N: 32, H: 56, W: 56, C: 64, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}

// conv3x3Int8 is conv3x3's convolution in int8 (u8 activations, s8
// weights, requantized u8 output), in GOP/s counting 2 per multiply-add.
func conv3x3Int8(ctx context.Context, r Result, o Options) (Result, error) {
	s := conv3x3Int8Shape
	rng := tensor.NewRNG(1)
	x := make([]uint8, s.N*s.H*s.W*s.C)
	for i := range x {
		x[i] = uint8(rng.IntN(256))
	}
	w := make([]int8, 9*s.C*s.OC)
	for i := range w {
		w[i] = int8(rng.IntN(255) - 127)
	}
	qw := kernels.NewInt8Weights(w, 9*s.C, s.OC)
	ep := &kernels.Int8Epilogue{Bias: make([]int32, s.OC), Mult: make([]float32, s.OC), Zero: 0, ReLU: true}
	for i := range ep.Mult {
		ep.Mult[i] = 1e-4
	}
	y := make([]uint8, s.N*s.H*s.W*s.OC)
	ops := 2.0 * float64(s.N*s.H*s.W*s.OC*9*s.C)
	r.Unit = "GOP/s"
	err := measure(ctx, &r, func() { kernels.Int8Conv(s, x, 128, qw, ep, y, nil) }, o, ops/1e9)
	return r, err
}

// peakInt8 is peak's int8 counterpart: independent register-only int8
// multiply-adds on the active int8 path, every thread, in GOP/s.
func peakInt8(ctx context.Context, r Result, o Options) (Result, error) {
	if kernels.ActiveInt8() == kernels.Int8Generic {
		return r, fmt.Errorf("bench: peak-int8 needs the assembly kernels (the int8 path is generic)")
	}
	return peakOf(ctx, r, o, kernels.PeakInt8, "GOP/s")
}
