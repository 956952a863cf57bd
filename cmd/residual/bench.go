package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/residual-nn/residual/bench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	runs := fs.Int("runs", 7, "timed repetitions (the median is reported)")
	warmup := fs.Int("warmup", 2, "untimed repetitions first")
	batch := fs.Int("batch", 0, "batch size of the network workloads (0: each one's own, as in docs/PERFORMANCE.md)")
	fs.Usage = func() { printUsage(fs, "names: "+strings.Join(bench.Names(), ", ")+" (default: all)") }
	names, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		names = bench.Names()
	}
	if *runs < 1 || *warmup < 0 {
		return fmt.Errorf("%w: --runs must be ≥ 1 and --warmup ≥ 0", errUsage)
	}
	if *batch < 0 {
		return fmt.Errorf("%w: --batch %d: a batch size is ≥ 1 (0: each workload's own)", errUsage, *batch)
	}
	known := map[string]bool{}
	for _, n := range bench.Names() {
		known[n] = true
	}
	for _, n := range names {
		if !known[n] {
			return fmt.Errorf("%w: unknown benchmark %q; known: %v", errUsage, n, bench.Names())
		}
	}
	enc := json.NewEncoder(stdout)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := bench.Run(ctx, n, bench.Options{Warmup: *warmup, Runs: *runs, Batch: *batch})
		if err != nil {
			return err
		}
		if *asJSON {
			if err := enc.Encode(r); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintln(stdout, benchLine(r))
	}
	return nil
}

// benchLine is bench's line for r without --json.
func benchLine(r bench.Result) string {
	kern := r.Kernels + " kernels"
	if r.BF16Path != "" {
		kern += ", bf16 " + r.BF16Path // on AMX tiles, VDPBF16PS, or emulated
	}
	s := fmt.Sprintf("%-16s %9.1f %-7s (min %.1f, max %.1f; %s, %s, %s)",
		r.Name, r.Median, r.Unit, r.Min, r.Max, counted(r.Runs, "run"), counted(r.Threads, "thread"), kern)
	if r.Batch > 0 {
		s += fmt.Sprintf("  batch %d", r.Batch)
	}
	if r.GFLOPS > 0 {
		s += fmt.Sprintf("  %.0f GFLOP/s, %.0f allocs/step", r.GFLOPS, r.AllocsPerStep)
	}
	return s
}
