package bench

import (
	"context"
	"errors"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/limits"
)

// BenchmarkStep runs each network benchmark's step under go test -bench
// (for profiling: -cpuprofile).
func BenchmarkStep(b *testing.B) {
	for _, name := range Names() {
		if _, ok := workloads[name]; !ok {
			continue // conv3x3 and peak (and their bf16 versions) are not steps
		}
		b.Run(name, func(b *testing.B) { runStep(b, workloads[name]) })
	}
}

// BenchmarkInt8Step runs each int8 network benchmark's forward pass under
// go test -bench (for profiling: -cpuprofile).
func BenchmarkInt8Step(b *testing.B) {
	for _, name := range int8Names() {
		w, ok := int8Workloads[name]
		if !ok {
			continue // conv3x3-int8 and peak-int8 are not steps
		}
		b.Run(name, func(b *testing.B) {
			step, stepErr, err := w.prepareInt8()
			if err != nil {
				b.Fatal(err)
			}
			timeStep(b, step, w.batch)
			if err := stepErr(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// runStep times w's step (timeStep).
func runStep(b *testing.B, w workload) {
	step, _, err := w.prepare()
	if err != nil {
		b.Fatal(err)
	}
	timeStep(b, step, w.batch)
}

// timeStep times step after one untimed run, and reports images/s for a
// batch of batch images a step.
func timeStep(b *testing.B, step func(), batch int) {
	step()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "img/s")
}

func TestRunAll(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every network once; skipped in -short mode")
	}
	for _, n := range []string{"conv3x3", "peak", "cifar20-infer"} {
		r, err := Run(context.Background(), n, Options{Runs: 1})
		if n == "peak" && kernels.Active() == kernels.Generic {
			if err == nil { // there is no FMA loop to measure in pure Go
				t.Error("peak at the generic level did not say it cannot run")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !(r.Median > 0) || r.Min > r.Median || r.Max < r.Median {
			t.Errorf("%s: %+v", n, r)
		}
	}
	if r, err := Run(context.Background(), "cifar20-infer", Options{Runs: 1, Batch: 3}); err != nil || r.Batch != 3 {
		t.Errorf("Batch 3: result batch %d, error %v", r.Batch, err)
	}
	if _, err := Run(context.Background(), "nope", Options{}); err == nil {
		t.Error("unknown benchmark accepted")
	}
	// A cancelled context stops a benchmark before its next step, with
	// the cause (a first Ctrl-C waited for the whole list of benchmarks).
	cause := errors.New("stopped by a test")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	for _, n := range []string{"cifar20-infer", "conv3x3", "conv3x3-int8"} {
		if _, err := Run(ctx, n, Options{Runs: 1}); err != cause {
			t.Errorf("%s, cancelled: %v; want the cause", n, err)
		}
	}
	// A batch beyond the memory allowed is refused before anything is
	// allocated (--batch 100000 grew until the runtime died).
	limits.Memory = 1 << 20
	defer func() { limits.Memory = 0 }()
	for _, n := range []string{"cifar20-infer", "cifar20-train"} {
		if _, err := Run(context.Background(), n, Options{Runs: 1, Batch: 512}); err == nil || !strings.Contains(err.Error(), "on a batch of 512 needs at least") || !strings.Contains(err.Error(), "lower --batch") {
			t.Errorf("%s at batch 512 within 1 MB: %v", n, err)
		}
	}
}

// TestBF16Workloads runs one step of each bfloat16 network benchmark at a
// tiny size (batch 2, 32×32 inputs: ResNet-50 runs on any side; only
// ResNet-20's in -short mode), and conv3x3-bf16 and peak-bf16 once:
// peak-bf16 must run where the CPU has AVX512-BF16 and refuse with a
// reason where it does not.
func TestBF16Workloads(t *testing.T) {
	names := []string{"cifar20-train-bf16", "resnet50-train-bf16", "resnet50-infer-bf16"}
	if testing.Short() {
		names = names[:1]
	}
	for _, name := range names {
		w, ok := workloads[name]
		if !ok || w.precision != ag.BF16 {
			t.Fatalf("%s: not a bfloat16 workload: %+v", name, w)
		}
		w.batch, w.side = 2, 32
		step, flop, err := w.prepare()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		step()
		if !(flop > 0) {
			t.Errorf("%s: %g FLOP per image", name, flop)
		}
	}
	if testing.Short() {
		return
	}
	r, err := Run(context.Background(), "conv3x3-bf16", Options{Runs: 1})
	if err != nil || !(r.Median > 0) || r.Precision != "bf16" || r.BF16Path == "" {
		t.Errorf("conv3x3-bf16: %+v, %v", r, err)
	}
	// peak-bf16 runs where the bf16 products use VDPBF16PS: a CPU with
	// AVX512-BF16 at the AVX-512 level (not the generic or AVX2 level,
	// nor RESIDUAL_BF16=emulate).
	r, err = Run(context.Background(), "peak-bf16", Options{Runs: 1})
	if native := strings.HasPrefix(kernels.BF16Path(), "avx512bf16"); native != (err == nil) {
		t.Errorf("peak-bf16 with the bf16 path %s: %+v, %v", kernels.BF16Path(), r, err)
	}
	// peak-amx-bf16 runs where the bf16 convolutions use AMX tiles.
	r, err = Run(context.Background(), "peak-amx-bf16", Options{Runs: 1})
	if amx := kernels.AMXBF16(); amx != (err == nil) || amx && !(r.Median > 0) {
		t.Errorf("peak-amx-bf16 with the bf16 path %s: %+v, %v", kernels.BF16Path(), r, err)
	}
}

// BenchmarkInferBatch1 times one image through the inference workloads'
// networks (CIFAR ResNet-20 at 32×32, ResNet-50 at 224×224): the latency a
// server's lone request pays for compute. Compare RESIDUAL_WINOGRAD=0 or
// GOMAXPROCS=1 beside it, alternated.
func BenchmarkInferBatch1(b *testing.B) {
	for _, name := range []string{"cifar20-infer", "resnet50-infer"} {
		w := workloads[name].withBatch(1)
		b.Run(w.model, func(b *testing.B) { runStep(b, w) })
	}
}

// peak-bf16 times VDPBF16PS: where the bf16 products do not use it (the
// AVX2 level, RESIDUAL_BF16=emulate) it is refused, naming the path (it
// timed the native loop and labelled it with the emulated path).
func TestPeakBF16OffTheNativePath(t *testing.T) {
	if !kernels.HasBF16() || kernels.Active() != kernels.AVX512 {
		t.Skip("the native bf16 path is not active on this CPU, so there is nothing to switch off")
	}
	prev := kernels.SetLevel(kernels.AVX2)
	defer kernels.SetLevel(prev)
	if _, err := Run(context.Background(), "peak-bf16", Options{Runs: 1}); err == nil || !strings.Contains(err.Error(), "bf16 path emulated-avx2") {
		t.Errorf("peak-bf16 on the AVX2 level: %v", err)
	}
}
