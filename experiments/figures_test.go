package experiments

import (
	"bytes"
	"math"
	"sort"
	"testing"

	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// svgOf draws p as Report.Figure draws a panel, to SVG, whose text the
// tests can read.
func svgOf(t *testing.T, p Panel) string {
	t.Helper()
	pl, err := p.plot()
	if err != nil {
		t.Fatalf("%s: %v", p.Title, err)
	}
	c := vgsvg.New(420, 330)
	pl.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The ensemble figure's re-orderings are joined in the order of their
// Kendall τ, each point keeping its error; they were joined in the order
// of their swaps, whose τ goes up and down, and the line zigzagged.
func TestEnsembleReorderingsInTauOrder(t *testing.T) {
	res := &EnsembleResult{Blocks: 3, PathGrad: []float64{1, 0.5, 0.25, 0.125}, TotalGrad: []float64{1, 1.5, 0.75, 0.125},
		DeleteOne: []float64{0.1, 0.2, 0.3}, PlainDelete: []float64{0.9, math.NaN(), 0.8}, BaseError: 0.05, DeleteK: []float64{0.05, 0.2}}
	for i, tau := range []float64{0.9, 0.95, 0.7, 0.8, 0.6, 0.8} {
		res.Reorder = append(res.Reorder, Reordering{Swaps: i + 1, Kendall: tau, Error: 0.1 + 0.01*float64(i)})
	}
	panels := ensemblePanels(QuickEnsemble(), res)
	l := panels[len(panels)-1].Lines[0]
	if len(l.X) != len(res.Reorder) || !sort.Float64sAreSorted(l.X) {
		t.Fatalf("re-orderings drawn at τ %v: want all %d, in increasing order", l.X, len(res.Reorder))
	}
	wantErr := []float64{14, 12, 13, 15, 10, 11} // τ 0.6, 0.7, 0.8 (4 swaps, then 6), 0.9, 0.95
	for i := range wantErr {
		if math.Abs(l.Y[i]-wantErr[i]) > 1e-9 {
			t.Errorf("point %d at τ %g: error %g%%, want %g%%", i, l.X[i], l.Y[i], wantErr[i])
		}
	}
	for _, p := range panels {
		svgOf(t, p) // every panel draws
	}
}
