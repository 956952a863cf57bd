package bench

import (
	"testing"

	"github.com/residual-nn/residual/internal/kernels"
)

// BenchmarkStep runs each network benchmark's step under go test -bench
// (for profiling: -cpuprofile).
func BenchmarkStep(b *testing.B) {
	for _, name := range Names() {
		if _, ok := workloads[name]; !ok {
			continue // conv3x3 and peak are not steps
		}
		b.Run(name, func(b *testing.B) {
			step, _, err := workloads[name].prepare()
			if err != nil {
				b.Fatal(err)
			}
			step()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				step()
			}
			b.ReportMetric(float64(workloads[name].batch*b.N)/b.Elapsed().Seconds(), "img/s")
		})
	}
}

func TestRunAll(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every network once; skipped in -short mode")
	}
	for _, n := range []string{"conv3x3", "peak", "cifar20-infer"} {
		r, err := Run(n, Options{Runs: 1})
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
	if _, err := Run("nope", Options{}); err == nil {
		t.Error("unknown benchmark accepted")
	}
}
