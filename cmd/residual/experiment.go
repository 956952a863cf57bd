package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/experiments"
)

var experimentNames = []string{"shatter", "variance", "degradation", "ensemble", "order", "bottleneck", "segment-unet"}

func runExperiment(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("experiment", stderr)
	out := fs.String("out", "", "output folder (default runs/experiment-NAME), replaced as a whole when the experiment finishes; until then it is written in OUT.partial, and a stopped experiment leaves OUT as it was")
	seed := fs.Uint64("seed", 1, "random seed (the first of --seeds for the training experiments)")
	seeds := fs.Int("seeds", 0, "shatter: initialisations (default 500, at least 16); variance: seeds (default 50, at least 2); degradation, order, segment-unet: seeds per network (default 2)")
	quick := fs.Bool("quick", false, "the small version the tests run (seconds to minutes; its numbers do not test the claims: shatter and variance may report FAIL at these sizes)")
	blocks := fs.Int("blocks", 0, "variance: blocks (default 20, 12 with --quick)")
	spec := fs.String("data", "", "degradation, ensemble, order: data set (default fashion-mnist); segment-unet: mnist or fashion-mnist, the canvases' items")
	depth := fs.Int("depth", 32, "order: network depth (6n+2)")
	epochs := fs.Int("epochs", 0, "degradation, ensemble, order, segment-unet: epochs (default 25, 10, 3, 5)")
	limit := fs.Int("limit", 0, "degradation, ensemble, order: training images (default 10,000 for degradation, all otherwise); segment-unet: training canvases (default 10,000)")
	models := fs.String("models", "", "degradation: presets to compare (default plain20,plain32,plain44,plain56,resnet20,resnet56)")
	warmup := fs.Float64("warmup", 0, "degradation, ensemble, order: fraction of the steps with a linear learning-rate warm-up (default 0, or 0.05 for ensemble)")
	weights := fs.String("weights", "", "ensemble: a trained ResNet checkpoint to study instead of training one")
	plainWeights := fs.String("plain-weights", "", "ensemble: a trained plain-network checkpoint to study instead of training one")
	resume := fs.Bool("resume", false, "degradation, ensemble, order, segment-unet: continue a stopped experiment (its runs in OUT.partial, or a finished one's in --out) with the same flags: finished runs are evaluated again, a stopped one goes on from its checkpoint, the rest are trained; a run trained with other settings is refused")
	fs.Usage = func() { printUsage(fs, "experiments: "+strings.Join(experimentNames, ", ")) }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want one experiment name (%s)", errUsage, strings.Join(experimentNames, ", "))
	}
	name := pos[0]
	if *resume && (name == "shatter" || name == "variance" || name == "bottleneck") {
		return fmt.Errorf("%w: --resume continues the training experiments (degradation, ensemble, order, segment-unet); %s trains nothing: run it again", errUsage, name)
	}
	if *out == "" {
		*out = filepath.Join("runs", "experiment-"+name)
	}
	trainingSeeds := func(def int) int {
		if flagSet(fs, "seeds") {
			return *seeds
		}
		return def
	}
	budget := func(b experiments.Budget) experiments.Budget {
		b.Seed, b.Log, b.Resume = *seed, stdout, *resume
		if *spec != "" {
			b.Data = *spec
		}
		if *epochs > 0 {
			b.Epochs = *epochs
		}
		if *limit > 0 {
			b.Limit = *limit
		}
		if flagSet(fs, "warmup") {
			b.Warmup = *warmup
		}
		return b
	}
	switch name {
	case "degradation":
		c := experiments.DefaultDegradation()
		if *quick {
			c = experiments.QuickDegradation()
		}
		c.Budget, c.Seeds = budget(c.Budget), trainingSeeds(c.Seeds)
		if *models != "" {
			c.Models = nil
			for _, f := range strings.Split(*models, ",") {
				c.Models = append(c.Models, strings.TrimSpace(f))
			}
		}
		rows, err := experiments.Degradation(ctx, c, *out)
		if err != nil {
			return err
		}
		for _, r := range rows {
			fmt.Fprintf(stdout, "%-9s seed %d  train error %6.2f%%  test error %6.2f%%\n", r.Name, r.Seed, 100*r.TrainError, 100*r.TestError)
		}
	case "ensemble":
		c := experiments.DefaultEnsemble()
		if *quick {
			c = experiments.QuickEnsemble()
		}
		c.Budget, c.Weights, c.PlainWeights = budget(c.Budget), *weights, *plainWeights
		// Both checkpoints are read before either network trains: a bad
		// second file must not cost the first one's training.
		for _, f := range [][2]string{{"weights", *weights}, {"plain-weights", *plainWeights}} {
			if f[1] == "" {
				continue
			}
			if _, err := checkpoint.Load(f[1]); err != nil {
				return fmt.Errorf("--%s %s: %w", f[0], f[1], err)
			}
		}
		r, err := experiments.Ensemble(ctx, c, *out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d blocks, 2^%d paths; %s error %.2f%% intact, %.2f%% on average with one block deleted; %s %.2f%% intact, %.2f%% with one layer deleted\n",
			r.Blocks, r.Blocks, r.ResidualModel, 100*r.BaseError, 100*mean(r.DeleteOne), r.PlainModel, 100*r.PlainBase, 100*mean(r.PlainDelete))
	case "order":
		c := experiments.DefaultOrder()
		if *quick {
			c = experiments.QuickOrder()
		}
		if *quick && !flagSet(fs, "depth") {
			*depth = c.Depth
		}
		c.Depth, c.Budget, c.Seeds = *depth, budget(c.Budget), trainingSeeds(c.Seeds)
		rows, err := experiments.Order(ctx, c, *out)
		if err != nil {
			return err
		}
		for _, r := range rows {
			fmt.Fprintf(stdout, "%-16s seed %d  train error %6.2f%%  test error %6.2f%%\n", r.Ordering, r.Seed, 100*r.TrainError, 100*r.TestError)
		}
	case "segment-unet":
		c := experiments.DefaultSegmentUNet()
		if *quick {
			c = experiments.QuickSegmentUNet()
		}
		c.Seed, c.Seeds, c.Log, c.Resume = *seed, trainingSeeds(c.Seeds), stdout, *resume
		if *spec != "" {
			c.Source = *spec
		}
		if *epochs > 0 {
			c.Epochs = *epochs
		}
		if *limit > 0 {
			c.Train = *limit
		}
		rows, err := experiments.SegmentUNet(ctx, c, *out)
		if err != nil {
			return err
		}
		for _, r := range rows {
			fmt.Fprintf(stdout, "%-6s seed %d  mean IoU %.4f  pixel accuracy %6.2f%%  (%s)\n", r.Net, r.Seed, r.MeanIoU, 100*r.PixelAcc, r.Inference)
		}
	case "shatter":
		c := experiments.DefaultShatter()
		if *quick {
			c = experiments.QuickShatter()
		}
		c.Seed = *seed
		if *seeds > 0 {
			c.Inits = *seeds
		}
		r, err := experiments.Shatter(ctx, c, *out)
		if err != nil {
			return err
		}
		for _, n := range r.Nets {
			if n.Init == "he" {
				fmt.Fprintf(stdout, "%-18s BN=%-5v neighbour correlation %6.3f  spectrum slope %5.2f\n", n.Name, n.BN, n.NeighCor, n.Slope)
			}
		}
	case "variance":
		c := experiments.DefaultVariance()
		if *quick {
			c = experiments.QuickVariance()
		}
		c.Seed = *seed
		if *blocks > 0 {
			c.Blocks = *blocks
		}
		if *seeds > 0 {
			c.Seeds = *seeds
		}
		curves, err := experiments.Variance(ctx, c, *out)
		if err != nil {
			return err
		}
		for _, v := range curves {
			fmt.Fprintf(stdout, "%-5s %4d %-8s %-14s log2-variance slope %6.3f  last/first %9.3g ± %-8.2g growth/block %7.3g\n", v.Network, v.Width, v.Padding, v.Variant, v.Log2Fit, v.Ratio, v.RatioSD, v.PerBlock)
		}
	case "bottleneck":
		if err := stopped(ctx); err != nil {
			return err
		}
		res, err := experiments.Bottleneck(*out)
		if err != nil {
			return err
		}
		for _, c := range append(res.Blocks, res.Networks...) {
			fmt.Fprintf(stdout, "%-58s %12d params %16d mult-adds\n", c.Name, c.Params, c.MultAdds)
		}
	default:
		return fmt.Errorf("%w: unknown experiment %q (%s)", errUsage, name, strings.Join(experimentNames, ", "))
	}
	// Every experiment's verdicts, as claims.json holds them (only shatter
	// and bottleneck printed theirs).
	claims, err := experiments.ReadClaims(*out)
	if err != nil {
		return err
	}
	printClaims(stdout, claims)
	fmt.Fprintf(stdout, "figures, numbers and summary.md in %s\n", *out)
	return nil
}

// mean averages the entries that are numbers (NaN marks blocks that could
// not be deleted).
func mean(v []float64) float64 {
	s, n := 0.0, 0
	for _, x := range v {
		if x == x {
			s, n = s+x, n+1
		}
	}
	return s / float64(max(n, 1))
}

// printClaims writes one line a claim: pass or FAIL, the measurement, the
// criterion; then how many passed.
func printClaims(w io.Writer, claims []experiments.Claim) {
	passed := 0
	for _, c := range claims {
		verdict := "FAIL"
		if c.Pass {
			verdict = "pass"
			passed++
		}
		fmt.Fprintf(w, "%s  %s (criterion %s): %s\n", verdict, experiments.FormatNumber(c.Measured), c.Criterion, c.Claim)
	}
	fmt.Fprintf(w, "%d of %d claims pass (claims.json)\n", passed, len(claims))
}
