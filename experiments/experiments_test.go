package experiments

import (
	"context"
	"fmt"
	"strings"

	"github.com/residual-nn/residual/internal/kernels"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The shattered-gradients claims, on the paper's batch-normalised networks
// with fewer depths and seeds: gradients of a one-hidden-layer net are
// strongly correlated at neighbouring inputs (> 0.9; brown noise, spectrum
// slope < −1), those of a 24-layer plain net nearly uncorrelated (|r| < 0.3;
// white noise, slope > −0.7), and a 50-block residual net stays well above
// the plain net (r > 0.5); with depth, the plain net's correlation falls
// below the residual net's. (Without batch norm a He-initialised plain net
// of this depth stays smooth; summary.md reports it.)
func TestShatter(t *testing.T) {
	c := DefaultShatter()
	c.Depths, c.Seeds = []int{2, 8, 24}, 2
	dir := t.TempDir()
	r, err := Shatter(context.Background(), c, dir)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string, bn bool) ShatterNet {
		for _, n := range r.Nets {
			if n.Name == name && n.BN == bn && n.Init == "he" {
				return n
			}
		}
		t.Fatalf("no network %s", name)
		return ShatterNet{}
	}
	shallow, plain, res := get("1 hidden layer", false), get("24-layer plain", true), get("50-block residual", true)
	if shallow.NeighCor < 0.9 || shallow.Slope > -1 {
		t.Errorf("1-layer net: correlation %.3f, spectrum slope %.2f (want > 0.9, < −1)", shallow.NeighCor, shallow.Slope)
	}
	if math.Abs(plain.NeighCor) > 0.3 || plain.Slope < -0.7 {
		t.Errorf("24-layer plain net: correlation %.3f, slope %.2f (want |r| < 0.3, > −0.7)", plain.NeighCor, plain.Slope)
	}
	if res.NeighCor < 0.5 {
		t.Errorf("50-block BN resnet: correlation %.3f (want > 0.5)", res.NeighCor)
	}
	last := len(c.Depths) - 1
	if r.Curves[1][last] >= r.Curves[3][last]-0.2 {
		t.Errorf("at depth %d the BN plain net's correlation %.3f is not well below the BN resnet's %.3f", c.Depths[last], r.Curves[1][last], r.Curves[3][last])
	}
	for _, f := range []string{"gradients.png", "autocorrelation.png", "correlation_depth.png", "shatter.json", "summary.md"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}

// Prince's Fig. 11.6 at He initialisation, MLP on Gaussian inputs: residual
// without normalisation doubles the variance per block (log2 slope in
// [0.8, 1.2]); a plain net and a residual net scaled by 1/√2 hold it (last
// over first in [0.5, 2]); batch norm at the start of each branch adds
// about 1 a block (growth per block in [0.7, 1.3]).
func TestVariance(t *testing.T) {
	c := DefaultVariance()
	c.Blocks, c.Batch = 12, 64
	curves, err := Variance(context.Background(), c, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range curves {
		if v.Network != "mlp" || v.Input != "gaussian" {
			continue
		}
		switch v.Variant {
		case Residual:
			if v.Log2Fit < 0.8 || v.Log2Fit > 1.2 {
				t.Errorf("residual: log2 slope %.3f", v.Log2Fit)
			}
		case Plain, ScaledRes:
			if v.Ratio < 0.5 || v.Ratio > 2 {
				t.Errorf("%s: last/first variance %.3f", v.Variant, v.Ratio)
			}
		case BNResidual:
			if v.PerBlock < 0.7 || v.PerBlock > 1.3 {
				t.Errorf("BN residual: growth per block %.3f", v.PerBlock)
			}
		}
	}
	if len(curves) != 16 {
		t.Errorf("%d curves, want 4 variants × 2 networks × 2 inputs", len(curves))
	}
}

// A variance configuration without blocks is an error naming them, not a
// panic in the plotting library.
func TestVarianceRefusesNoBlocks(t *testing.T) {
	for _, blocks := range []int{0, -1} {
		c := DefaultVariance()
		c.Blocks = blocks
		_, err := Variance(context.Background(), c, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("got %d blocks", blocks)) {
			t.Errorf("%d blocks: %v", blocks, err)
		}
	}
}

func TestBottleneck(t *testing.T) {
	costs, err := Bottleneck(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// 2·(3·3·256·256) + 2·2·256 = 1,180,672 against 256·64 + 9·64·64 +
	// 64·256 + BN (2·64 + 2·64 + 2·256) = 70,400.
	if costs[0].Params != 1180672 || costs[1].Params != 70400 {
		t.Errorf("block parameters %d and %d", costs[0].Params, costs[1].Params)
	}
	if costs[2].Params != 21797672 || costs[3].Params != 25557032 {
		t.Errorf("resnet34/50 parameters %d, %d", costs[2].Params, costs[3].Params)
	}
}

// The training experiments in their quick mode (tiny budgets): they run end
// to end and write their outputs; path counts are exactly binomial; and
// deleting one block of a trained ResNet raises its error less than
// deleting a layer of a plain network of the same depth raises the plain
// network's (Veit et al. 2016). The qualitative degradation and ordering
// results need the full budgets (docs/EXPERIMENTS.md).
func TestTrainingExperimentsQuick(t *testing.T) {
	if kernels.Active() == kernels.Generic {
		t.Skip("seven training runs: ~45 s on the assembly kernels, over 10 minutes on the pure-Go reference kernels " +
			"(RESIDUAL_KERNELS=generic, CI's second pass, which checks the kernels' correctness); CI's main pass runs this test")
	}
	ctx := context.Background()
	quick := Budget{Data: "mnist", Limit: 1000, Epochs: 1, Batch: 100, LR: 0.1, Seed: 1}
	dir := t.TempDir()
	rows, err := Degradation(ctx, DegradationConfig{Depths: []int{8, 14}, Budget: quick}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || !rows[0].Plain || rows[1].Plain {
		t.Fatalf("degradation rows: %+v", rows)
	}
	for _, r := range rows {
		if r.TrainError < 0 || r.TrainError > 1 || r.TestError < 0 || r.TestError > 1 || len(r.History) != 1 {
			t.Errorf("%s: train error %g, test error %g, %d epochs", r.Name, r.TrainError, r.TestError, len(r.History))
		}
	}
	// The lesion comparison needs both networks to have learned something:
	// 3,000 images for 2 epochs (a plain net after 10 steps is at chance),
	// and nine blocks: a 6-block ResNet-14 at this budget loses as much as
	// its plain twin when one block goes (+0.52 and +0.53), ResNet-20
	// loses +0.26 against plain-20's +0.63.
	lesion := quick
	lesion.Limit, lesion.Epochs = 3000, 2
	ens, err := Ensemble(ctx, EnsembleConfig{Model: "resnet20", Plain: "plain20", Draws: 2, Budget: lesion}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if ens.Blocks != 9 {
		t.Fatalf("resnet20 has %d blocks, want 9", ens.Blocks)
	}
	want := []float64{1, 9, 36, 84, 126, 126, 84, 36, 9, 1}
	for k, c := range ens.PathCounts {
		if c != want[k] {
			t.Errorf("paths of length %d: %g, want C(9,%d) = %g", k, c, k, want[k])
		}
	}
	if ens.PlainBase > 0.5 || ens.BaseError > 0.5 {
		t.Fatalf("the networks did not learn: errors %.3f (residual), %.3f (plain)", ens.BaseError, ens.PlainBase)
	}
	// Compare over the same blocks: those with identity shortcuts, the
	// only ones a plain net can lose (Veit et al. delete only those too).
	var rdel, pdel []float64
	for i, ok := range ens.Deletable {
		if ok {
			rdel, pdel = append(rdel, ens.DeleteOne[i]), append(pdel, ens.PlainDelete[i])
		}
	}
	rd, pd := meanOf(rdel)-ens.BaseError, meanOf(pdel)-ens.PlainBase
	t.Logf("deleting one identity block: ResNet error +%.3f, plain +%.3f", rd, pd)
	if len(rdel) == 0 || rd >= pd {
		t.Errorf("deleting one of %d identity blocks raised the ResNet's error by %.3f, the plain net's by %.3f; want the ResNet's smaller", len(rdel), rd, pd)
	}
	order, err := Order(ctx, OrderConfig{Depth: 8, Budget: quick}, t.TempDir())
	if err != nil || len(order) != 5 {
		t.Fatalf("order: %d rows, %v", len(order), err)
	}
	for _, f := range []string{"degradation.png", "degradation.json", "summary.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
