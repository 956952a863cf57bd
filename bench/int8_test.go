package bench

import (
	"context"
	"slices"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/kernels"
)

// TestInt8Benchmarks runs each int8 benchmark once at a tiny size (the
// convolution on an 8×8 batch of one, the networks replaced by a ResNet-20
// on two 16×16 images) and checks that it reports a rate, and that the
// names are listed.
func TestInt8Benchmarks(t *testing.T) {
	for _, n := range []string{"resnet50-infer-int8", "resnet18-infer-int8", "conv3x3-int8", "peak-int8", "peak-amx"} {
		if !slices.Contains(Names(), n) {
			t.Errorf("%s missing from Names", n)
		}
	}
	saved, savedShape := int8Workloads, conv3x3Int8Shape
	defer func() { int8Workloads, conv3x3Int8Shape = saved, savedShape }()
	conv3x3Int8Shape.N, conv3x3Int8Shape.H, conv3x3Int8Shape.W = 1, 8, 8
	int8Workloads = map[string]workload{"tiny-infer-int8": {"resnet20", 2, 16, false, ag.FP32}}
	for _, n := range []string{"conv3x3-int8", "peak-int8", "tiny-infer-int8"} {
		r, err := Run(context.Background(), n, Options{Runs: 1})
		if n == "peak-int8" && kernels.ActiveInt8() == kernels.Int8Generic {
			if err == nil {
				t.Error("peak-int8 on the generic path did not say it cannot run")
			}
			continue
		}
		if err != nil {
			t.Fatal(n, err)
		}
		if !(r.Median > 0) || r.Min > r.Median || r.Max < r.Median {
			t.Errorf("%s: %+v", n, r)
		}
	}
}

// TestPeakAMX: peak-amx measures where the int8 path has AMX tiles and
// says why it cannot elsewhere.
func TestPeakAMX(t *testing.T) {
	r, err := Run(context.Background(), "peak-amx", Options{Runs: 1})
	if !kernels.AMX() {
		if err == nil || !strings.Contains(err.Error(), "needs AMX tiles") {
			t.Errorf("peak-amx without AMX: %v", err)
		}
		t.Skip("no AMX tiles here: the measuring case was not run")
	}
	if err != nil || !(r.Median > 0) || r.Unit != "GOP/s" {
		t.Errorf("peak-amx: %+v, %v", r, err)
	}
}
