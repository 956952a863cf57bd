// Package bench measures residual's speed on the workloads of the PyTorch
// anchors (../shared/anchors/torch_bench.py): the same models, batch sizes,
// loss and optimizer (SGD, momentum 0.9, weight decay 1e-4), reported as
// images per second (or GFLOP/s for the kernel figures).
package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensor"
)

// Result is one benchmark's figures: median, min and max of Runs timed
// repetitions after warm-up.
type Result struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Runs   int     `json:"runs"`
	// Batch is the network workloads' batch size (0 for the others).
	Batch int `json:"batch,omitempty"`
	// Threads is GOMAXPROCS during the run; Kernels the kernel level.
	Threads int    `json:"threads"`
	Kernels string `json:"kernels"`
	// Precision is "bf16" for the bfloat16 benchmarks, BF16Path how their
	// bfloat16 products ran (kernels.BF16Path: avx512bf16, or emulated in
	// float32 on a CPU without AVX512-BF16).
	Precision string `json:"precision,omitempty"`
	BF16Path  string `json:"bf16_path,omitempty"`
	// AllocsPerStep and BytesPerStep are heap allocations of one warmed-up
	// step (network benchmarks only).
	AllocsPerStep float64 `json:"allocs_per_step,omitempty"`
	BytesPerStep  float64 `json:"bytes_per_step,omitempty"`
	// GFLOPS is the achieved rate counting convolution and linear FLOP
	// (training counted as 3× the forward pass, as the anchors do).
	GFLOPS float64 `json:"gflops,omitempty"`
}

// Options control a run: Warmup untimed repetitions (negative: 0), then
// Runs timed ones (below 1: 5), whose median Result reports.
type Options struct {
	Warmup, Runs int
	// Batch, when positive, replaces a network workload's batch size
	// (batch 1 is a server's latency; the kernel and peak benchmarks
	// ignore it).
	Batch int
}

type workload struct {
	model string
	batch int
	side  int
	train bool
	// precision of the convolutions and linear layers (autograd.Precision).
	precision ag.Precision
}

// withBatch returns w with batch size b, or w itself when b < 1.
func (w workload) withBatch(b int) workload {
	if b > 0 {
		w.batch = b
	}
	return w
}

var workloads = map[string]workload{
	"cifar20-train":  {"resnet20", 128, 32, true, ag.FP32},
	"cifar20-infer":  {"resnet20", 128, 32, false, ag.FP32},
	"cifar56-train":  {"resnet56", 128, 32, true, ag.FP32},
	"cifar56-infer":  {"resnet56", 128, 32, false, ag.FP32},
	"resnet18-train": {"resnet18", 8, 224, true, ag.FP32},
	"resnet18-infer": {"resnet18", 8, 224, false, ag.FP32},
	"resnet50-train": {"resnet50", 8, 224, true, ag.FP32},
	"resnet50-infer": {"resnet50", 8, 224, false, ag.FP32},
	"unet-train":     {"unet-padded", 4, 128, true, ag.FP32},

	"cifar20-train-bf16":  {"resnet20", 128, 32, true, ag.BF16},
	"resnet50-train-bf16": {"resnet50", 8, 224, true, ag.BF16},
	"resnet50-infer-bf16": {"resnet50", 8, 224, false, ag.BF16},
}

// Names lists the benchmarks.
func Names() []string {
	n := []string{"conv3x3", "peak", "conv3x3-bf16", "peak-bf16", "peak-amx-bf16"}
	for k := range workloads {
		n = append(n, k)
	}
	n = append(n, int8Names()...)
	sort.Strings(n)
	return n
}

// Run runs the benchmark called name (one of Names) on the current
// GOMAXPROCS threads and kernels; an unknown name is an error that lists
// the known ones. It stops between steps, with ctx's cause, once ctx is
// done.
func Run(ctx context.Context, name string, o Options) (Result, error) {
	if ctx == nil {
		return Result{}, errors.New("bench: Run: nil context")
	}
	if o.Runs < 1 {
		o.Runs = 5
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	r := Result{Name: name, Runs: o.Runs, Threads: runtime.GOMAXPROCS(0), Kernels: kernels.Active().String()}
	switch name {
	case "peak":
		return peak(ctx, r, o)
	case "conv3x3":
		return conv3x3(ctx, r, o, ag.FP32)
	case "conv3x3-bf16":
		return conv3x3(ctx, r, o, ag.BF16)
	case "peak-bf16":
		return peakBF16(ctx, r, o)
	case "peak-amx-bf16":
		return peakAMXBF16(ctx, r, o)
	}
	if r, ok, err := runInt8(ctx, name, r, o); ok {
		return r, err
	}
	w, ok := workloads[name]
	if !ok {
		return r, fmt.Errorf("bench: unknown benchmark %q; known: %v", name, Names())
	}
	w = w.withBatch(o.Batch)
	r.Batch = w.batch
	if w.precision == ag.BF16 {
		r.Precision, r.BF16Path = "bf16", kernels.BF16Path()
	}
	step, flop, err := w.prepare()
	if err != nil {
		return r, err
	}
	r.Unit = "img/s"
	if err := measure(ctx, &r, step, o, float64(w.batch)); err != nil {
		return r, err
	}
	r.GFLOPS = r.Median * flop / 1e9
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	step()
	runtime.ReadMemStats(&m1)
	r.AllocsPerStep = float64(m1.Mallocs - m0.Mallocs)
	r.BytesPerStep = float64(m1.TotalAlloc - m0.TotalAlloc)
	return r, nil
}

// prepare builds the model and returns one step and the FLOP per image it
// counts.
func (w workload) prepare() (func(), float64, error) {
	cfg, err := models.Preset(w.model)
	if err != nil {
		return nil, 0, err
	}
	rng := tensor.NewRNG(0)
	m, err := models.Build(cfg, rng)
	if err != nil {
		return nil, 0, err
	}
	shape := cfg.InputShape(w.batch, w.side)
	s, err := nn.Summarize(m, shape)
	if err != nil {
		return nil, 0, err
	}
	flop := 2 * float64(s.TotalMultAdds) / float64(w.batch)
	need, what := s.InferenceBytes(), "an inference pass"
	if w.train {
		need, what = s.TrainingBytes(), "a training step"
	}
	if err := limits.CheckMemory(fmt.Sprintf("bench: %s of %s on a batch of %d", what, w.model, w.batch), need); err != nil {
		return nil, 0, fmt.Errorf("%w: lower --batch", err)
	}
	x := rng.Randn(shape...)
	if !w.train {
		if err := models.ForInference(cfg, m); err != nil {
			return nil, 0, err
		}
		tape := ag.NewNoGradTape()
		tape.SetPrecision(w.precision)
		tape.PlanMemory() // as infer.Model runs a network
		return func() {
			m.Forward(tape.Constant(x)).Tensor()
			tape.Reset()
		}, flop, nil
	}
	flop *= 3
	opt, err := optim.NewSGD([]optim.Group{{Params: nn.Parameters(m)}}, optim.SGDConfig{LR: 0.01, Momentum: 0.9, WeightDecay: 1e-4})
	if err != nil {
		return nil, 0, err
	}
	tape := ag.NewTape()
	tape.SetPrecision(w.precision)
	var loss func(out *ag.Value) *ag.Value
	if cfg.Dense() {
		target := tensor.New(s.OutputShape...)
		for i := range target.Data {
			if rng.Float64() > 0.5 {
				target.Data[i] = 1
			}
		}
		loss = func(out *ag.Value) *ag.Value { return ag.BCEWithLogits(out, target) }
	} else {
		labels := make([]int32, w.batch)
		for i := range labels {
			labels[i] = int32(rng.IntN(cfg.Classes()))
		}
		loss = func(out *ag.Value) *ag.Value {
			l, _ := ag.CrossEntropy(out, labels, ag.CrossEntropyOptions{})
			return l
		}
	}
	params := nn.Parameters(m)
	return func() {
		for _, p := range params {
			p.ZeroGrad()
		}
		tape.Backward(loss(m.Forward(tape.Constant(x))))
		opt.Step()
		tape.Reset()
	}, flop, nil
}

// measure runs warm-up steps, then o.Runs timed steps, and sets r's
// median, least and greatest rates (work a second). It stops before a
// step, with ctx's cause, once ctx is done.
func measure(ctx context.Context, r *Result, step func(), o Options, work float64) error {
	for i := 0; i < o.Warmup; i++ {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		step()
	}
	rates := make([]float64, o.Runs)
	for i := range rates {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		t := time.Now()
		step()
		rates[i] = work / time.Since(t).Seconds()
	}
	r.Median, r.Min, r.Max = stats(rates)
	return nil
}

func stats(v []float64) (median, lo, hi float64) {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}

// conv3x3 measures one ResNet-50-sized 3×3 convolution forward, in
// float32 or on bfloat16 operands.
func conv3x3(ctx context.Context, r Result, o Options, p ag.Precision) (Result, error) {
	s := kernels.ConvShape{N: 32, H: 56, W: 56, C: 64, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}
	rng := tensor.NewRNG(1)
	x, w := rng.Randn(32, 56, 56, 64), rng.Randn(3, 3, 64, 64)
	y := tensor.New(32, 56, 56, 64)
	flop := 2.0 * 32 * 56 * 56 * 64 * 64 * 9
	f := kernels.ConvForward
	if p == ag.BF16 {
		f = kernels.ConvForwardBF16
		r.Precision, r.BF16Path = "bf16", kernels.BF16Path()
	}
	r.Unit = "GFLOP/s"
	err := measure(ctx, &r, func() { f(s, x.Data, w.Data, y.Data) }, o, flop/1e9)
	return r, err
}

func peak(ctx context.Context, r Result, o Options) (Result, error) {
	if kernels.Active() == kernels.Generic {
		return r, fmt.Errorf("bench: peak needs the assembly kernels (the kernel level is generic)")
	}
	return peakOf(ctx, r, o, kernels.Peak, "GFLOP/s")
}

// peakBF16 is peak on VDPBF16PS: the bfloat16 instruction throughput
// (64 FLOP an instruction: 16 lanes of two products and two additions).
func peakBF16(ctx context.Context, r Result, o Options) (Result, error) {
	if !kernels.HasBF16() {
		return r, fmt.Errorf("bench: peak-bf16 needs AVX512-BF16, which this CPU lacks (its bf16 path emulates on float32 FMAs: see peak)")
	}
	if path := kernels.BF16Path(); !strings.HasPrefix(path, "avx512bf16") {
		// The loop is VDPBF16PS whatever the switches say; the bf16
		// products of this setting (RESIDUAL_BF16=emulate, or the AVX2
		// level) run as float32 FMAs.
		return r, fmt.Errorf("bench: peak-bf16 times VDPBF16PS, which the bf16 products do not use here (bf16 path %s: RESIDUAL_BF16=emulate or an AVX2 level); peak measures their FMAs", path)
	}
	r.Precision, r.BF16Path = "bf16", kernels.BF16Path()
	return peakOf(ctx, r, o, kernels.PeakBF16, "GFLOP/s")
}

// peakAMXBF16 is peak on AMX tiles' TDPBF16PS (16·16·32 multiply-adds an
// instruction), where the bfloat16 convolutions run on them.
func peakAMXBF16(ctx context.Context, r Result, o Options) (Result, error) {
	if !kernels.AMXBF16() {
		return r, fmt.Errorf("bench: peak-amx-bf16 needs AMX-BF16 tiles, which this CPU or system does not grant (or RESIDUAL_AMX=0, or the bf16 path %s is not native)", kernels.BF16Path())
	}
	r.Precision, r.BF16Path = "bf16", kernels.BF16Path()
	return peakOf(ctx, r, o, kernels.PeakAMXBF16, "GFLOP/s")
}

// peakOf measures f (a register-only loop of n iterations returning its
// operations) on every thread at once, in unit (billions of f's
// operations a second).
func peakOf(ctx context.Context, r Result, o Options, f func(n int) float64, unit string) (Result, error) {
	p := runtime.GOMAXPROCS(0)
	const iters = 1 << 22
	perIter := f(1) // the operations of one iteration
	r.Unit = unit
	err := measure(ctx, &r, func() {
		done := make(chan float64, p)
		for j := 0; j < p; j++ {
			go func() { done <- f(iters) }()
		}
		for j := 0; j < p; j++ {
			<-done
		}
	}, o, float64(p)*perIter*iters/1e9)
	return r, err
}
