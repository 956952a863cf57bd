package main

import (
	"strings"
	"testing"

	"github.com/residual-nn/residual/bench"
	"github.com/residual-nn/residual/distributed"
)

// TestCountsAgreeWithTheirNouns: the training start line and bench's line
// say "1 thread", "1 rank" and "1 run", not "1 threads" (a distributed
// training on one thread a rank printed "1 threads × 2 ranks").
func TestCountsAgreeWithTheirNouns(t *testing.T) {
	two := distributed.NewGroup(2)
	one := distributed.NewGroup(1)
	for _, tc := range []struct {
		threads int
		comm    distributed.Comm
		want    string
	}{
		{1, two[0], "1 thread × 2 ranks"},
		{4, two[1], "4 threads × 2 ranks"},
		{2, one[0], "2 threads × 1 rank"},
		{1, nil, "1 thread"},
		{8, nil, "8 threads"},
	} {
		if got := threadsAndRanks(tc.threads, tc.comm); got != tc.want {
			t.Errorf("threadsAndRanks(%d, …) = %q, want %q", tc.threads, got, tc.want)
		}
	}
	line := benchLine(bench.Result{Name: "conv", Median: 1, Unit: "ms", Runs: 1, Threads: 1, Kernels: "avx2"})
	if !strings.Contains(line, "; 1 run, 1 thread, avx2 kernels)") {
		t.Errorf("bench line %q, want it to say 1 run, 1 thread", line)
	}
	line = benchLine(bench.Result{Name: "conv", Median: 1, Unit: "ms", Runs: 7, Threads: 2, Kernels: "avx2"})
	if !strings.Contains(line, "; 7 runs, 2 threads, avx2 kernels)") {
		t.Errorf("bench line %q, want it to say 7 runs, 2 threads", line)
	}
}
