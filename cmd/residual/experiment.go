package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/residual-nn/residual/experiments"
)

var experimentNames = []string{"shatter", "variance", "bottleneck"}

func runExperiment(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("experiment", stderr)
	out := fs.String("out", "", "output folder (default runs/experiment-NAME)")
	seed := fs.Uint64("seed", 1, "random seed")
	seeds := fs.Int("seeds", 5, "shatter: initialisations averaged per depth")
	blocks := fs.Int("blocks", 20, "variance: blocks")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: residual experiment NAME [flags]\nexperiments: %s\n", strings.Join(experimentNames, ", "))
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want one experiment name (%s)", errUsage, strings.Join(experimentNames, ", "))
	}
	name := pos[0]
	if *out == "" {
		*out = filepath.Join("runs", "experiment-"+name)
	}
	switch name {
	case "shatter":
		c := experiments.DefaultShatter()
		c.Seed, c.Seeds = *seed, *seeds
		r, err := experiments.Shatter(ctx, c, *out)
		if err != nil {
			return err
		}
		for _, n := range r.Nets {
			if n.Init == "he" {
				fmt.Fprintf(stdout, "%-18s BN=%-5v neighbour correlation %6.3f  spectrum slope %5.2f\n", n.Name, n.BN, n.NeighCor, n.Slope)
			}
		}
		fmt.Fprintf(stdout, "depth fits with BN: plain corr ≈ exp(−L/%.2f) (theory 2^−L: τ=1.44), residual corr ≈ L^−%.2f (theory 0.5); without BN: plain τ=%.1f, residual L^−%.2f\n",
			r.PlainBNT, r.ResPower, r.PlainTau, r.ResNoBNP)
	case "variance":
		c := experiments.DefaultVariance()
		c.Seed, c.Blocks = *seed, *blocks
		curves, err := experiments.Variance(ctx, c, *out)
		if err != nil {
			return err
		}
		for _, v := range curves {
			fmt.Fprintf(stdout, "%-5s %-9s %-14s log2-variance slope %6.3f  last/first %9.3g  growth/block %7.3g\n", v.Network, v.Input, v.Variant, v.Log2Fit, v.Ratio, v.PerBlock)
		}
	case "bottleneck":
		costs, err := experiments.Bottleneck(*out)
		if err != nil {
			return err
		}
		for _, c := range costs {
			fmt.Fprintf(stdout, "%-42s %12d params %16d mult-adds\n", c.Name, c.Params, c.MultAdds)
		}
	default:
		return fmt.Errorf("%w: unknown experiment %q (%s)", errUsage, name, strings.Join(experimentNames, ", "))
	}
	fmt.Fprintf(stdout, "figures, numbers and summary.md in %s\n", *out)
	return nil
}
