package experiments

import (
	"context"
	"fmt"
	"strings"

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
