package experiments

import (
	"bytes"
	"html"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/recorder"
	"gonum.org/v1/plot/vg/vgsvg"
)

// svgOf draws p as Report.Figure draws a panel, to SVG, whose text the
// tests can read.
func svgOf(t *testing.T, p Panel) string {
	t.Helper()
	c := vgsvg.New(420, 330)
	if err := drawPanels(draw.New(c), 1, []Panel{p}); err != nil {
		t.Fatalf("%s: %v", p.Title, err)
	}
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Every curve of the variance figure is drawn with a legend entry that
// the drawn figure shows: the MLP's gradient curves were drawn dashed
// without one, beside dashed theory curves that had one. Checked on
// curves of the quick configuration's shape, made up (no measurement).
func TestVarianceFigureLabelsEveryCurve(t *testing.T) {
	c := QuickVariance()
	var curves []VarianceCurve
	nets := []VarianceCurve{{Network: "mlp", Width: c.Width}}
	for _, ch := range c.Channels {
		nets = append(nets, VarianceCurve{Network: "conv", Width: ch, Padding: "zero"}, VarianceCurve{Network: "conv", Width: ch, Padding: "circular"})
	}
	for _, n := range nets {
		for vi, v := range variants {
			vc := n
			vc.Variant, vc.Seeds = v, c.Seeds
			for k := 0; k <= c.Blocks; k++ {
				vc.Act = append(vc.Act, float64(1+vi+k))
				if n.Network == "mlp" {
					vc.Grad = append(vc.Grad, math.Pow(2, float64(c.Blocks-k+vi)))
				}
			}
			curves = append(curves, vc)
		}
	}
	panels := variancePanels(c, curves)
	drawn := func(y []float64) bool {
		for _, p := range panels {
			for _, l := range p.Lines {
				if slices.Equal(l.Y, y) {
					return true
				}
			}
		}
		return false
	}
	for _, v := range curves {
		if !drawn(v.Act) {
			t.Errorf("%s %s: activation curve not drawn", v.label(), v.Variant)
		}
		if v.Grad != nil && !drawn(v.Grad) {
			t.Errorf("%s %s: gradient curve not drawn", v.label(), v.Variant)
		}
	}
	for _, p := range panels {
		svg := svgOf(t, p)
		for _, l := range p.Lines {
			if l.Label == "" {
				t.Errorf("%q: a curve without a legend entry (dashed %v, first point %g)", p.Title, l.Dashed, l.Y[0])
			} else if !strings.Contains(svg, ">"+html.EscapeString(l.Label)+"</text>") {
				t.Errorf("%q: the drawn figure lacks the legend entry %q", p.Title, l.Label)
			}
		}
	}
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

// No legend covers a curve: drawn as Report.Figure draws them, panels
// whose curves fill the top right (where the legend was always drawn),
// the top left and bottom right, or every place a legend could take,
// with linear and log axes, side by side, have no curve segment through
// a legend entry's text or line sample. What was drawn is read back from
// a recording canvas.
func TestLegendCoversNoCurve(t *testing.T) {
	x := seq(0, 40)
	rising, half, falling, zigzag, zigzagLog := make([]float64, len(x)), make([]float64, len(x)), make([]float64, len(x)), make([]float64, len(x)), make([]float64, len(x))
	for i, v := range x {
		rising[i], half[i], falling[i] = v, v/2, math.Pow(10, -v/4)
		zigzag[i], zigzagLog[i] = float64(i%2), math.Pow(1000, float64(i%2))
	}
	line := func(label string, y []float64) Line { return Line{Label: label, X: x, Y: y, Color: -1} }
	panels := []Panel{
		{Title: "rising", Lines: []Line{line("rising one", rising), line("rising half", half), line("rising again", rising)}},
		{Title: "falling", LogY: true, Lines: []Line{line("falling one", falling), line("falling two", falling)}},
		{Title: "everywhere", Lines: []Line{line("zigzag one", zigzag), line("zigzag two", zigzag)}},
		{Title: "everywhere, log", LogY: true, Lines: []Line{line("zigzag log", zigzagLog)}},
	}
	rec := &recorder.Canvas{}
	if err := drawPanels(draw.NewCanvas(rec, 840, 660), 2, panels); err != nil {
		t.Fatal(err)
	}
	sty := plot.NewLegend().TextStyle
	ext := sty.FontExtents()
	labels := map[string]bool{}
	for _, p := range panels {
		for _, l := range p.Lines {
			labels[l.Label] = false
		}
	}
	var boxes []vg.Rectangle // the legend's texts and line samples
	var curves []vg.Path
	for _, a := range rec.Actions {
		switch a := a.(type) {
		case *recorder.FillString:
			if _, ok := labels[a.String]; ok {
				labels[a.String] = true
				boxes = append(boxes, vg.Rectangle{Min: vg.Point{X: a.Point.X, Y: a.Point.Y - ext.Descent},
					Max: vg.Point{X: a.Point.X + sty.Rectangle(a.String).Max.X, Y: a.Point.Y + ext.Ascent}})
			}
		case *recorder.Stroke:
			switch {
			case len(a.Path) > 2: // a curve; axes, ticks and grid lines are single segments
				curves = append(curves, a.Path)
			case len(a.Path) == 2 && a.Path[0].Pos.Y == a.Path[1].Pos.Y && a.Path[1].Pos.X-a.Path[0].Pos.X == plot.NewLegend().ThumbnailWidth:
				boxes = append(boxes, vg.Rectangle{Min: a.Path[0].Pos, Max: a.Path[1].Pos}) // a legend's line sample
			}
		}
	}
	for l, drawn := range labels {
		if !drawn {
			t.Errorf("legend entry %q not drawn", l)
		}
	}
	if len(curves) != 8 {
		t.Fatalf("%d curves drawn, want 8", len(curves))
	}
	for _, c := range curves {
		for i := 1; i < len(c); i++ {
			a, b := c[i-1].Pos, c[i].Pos
			n := int(math.Ceil(float64(max(vg.Length(math.Abs(float64(b.X-a.X))), vg.Length(math.Abs(float64(b.Y-a.Y))))*4))) + 1
			for k := 0; k <= n; k++ {
				f := vg.Length(k) / vg.Length(n)
				p := vg.Point{X: a.X + f*(b.X-a.X), Y: a.Y + f*(b.Y-a.Y)}
				for _, r := range boxes {
					if p.X >= r.Min.X && p.X <= r.Max.X && p.Y >= r.Min.Y && p.Y <= r.Max.Y {
						t.Fatalf("a curve passes through the legend at (%.1f, %.1f), in %v", p.X, p.Y, r)
					}
				}
			}
		}
	}
}

// A log axis labels exact powers of ten, at most 8 of them (with no
// ticks between them then), or 1, 2 and 5 times them (every tick where
// that is too few) on a range too short for two; gonum's LogTicks, which the figures used, labelled the
// ensemble figure's path gradients 0.9999999999999998, 0.09999999999999998, …
func TestLogTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		labels string
		ticks  int
	}{
		{1e-13, 1, "1e-12 1e-10 1e-8 1e-6 1e-4 0.01 1", 14}, // the powers of ten alone
		{1e-15, 0.3, "1e-14 1e-12 1e-10 1e-8 1e-6 1e-4 0.01", 15},
		{1, 1e6, "1 10 100 1000 10000 1e5 1e6", 6*9 + 1},
		{0.45, 2.3, "0.5 1 2", 7},
		{16, 256, "20 50 100 200", 10},
		{0.6, 0.95, "0.6 0.7 0.8 0.9", 4},
	} {
		var labels []string
		prev := 0.0
		ticks := (logTicks{}).Ticks(c.lo, c.hi)
		if len(ticks) != c.ticks {
			t.Errorf("[%g, %g]: %d ticks, want %d", c.lo, c.hi, len(ticks), c.ticks)
		}
		for _, tk := range ticks {
			if tk.Value < c.lo || tk.Value > c.hi || tk.Value <= prev {
				t.Errorf("[%g, %g]: tick at %g after %g", c.lo, c.hi, tk.Value, prev)
			}
			prev = tk.Value
			if tk.Label != "" {
				labels = append(labels, tk.Label)
				if v, err := strconv.ParseFloat(tk.Label, 64); err != nil || v != tk.Value {
					t.Errorf("[%g, %g]: tick %g labelled %q", c.lo, c.hi, tk.Value, tk.Label)
				}
			}
		}
		if got := strings.Join(labels, " "); got != c.labels {
			t.Errorf("[%g, %g]: labels %q, want %q", c.lo, c.hi, got, c.labels)
		}
	}
	// As a figure draws them.
	y := make([]float64, 14)
	for i := range y {
		y[i] = math.Pow(0.1, float64(i)) * (1 + 0.01*float64(i))
	}
	svg := svgOf(t, Panel{Title: "path gradients", LogY: true, Lines: []Line{{X: seq(0, 13), Y: y, Color: -1}}})
	if strings.Contains(svg, "99999") || !strings.Contains(svg, ">1e-10</text>") {
		t.Errorf("a log axis from 1e-13 to 1 drawn without the label 1e-10, or with a label of 99999…")
	}
}

// A linear axis labels the multiples of 1, 2 or 5 times a power of ten,
// at most 6 of them, with the step's decimals, and marks the fifths (or
// halves) between; gonum's DefaultTicks labelled 0 to 27 "0.00" and
// "25.00", and 0.8 to 0.98 at 0.8, 0.88 and 0.96. Exponents label a step
// past 10^4 and one under 0.001 on values under it, not an accuracy of
// 0.99991 to 0.99995 (which read 9.9991e-1 to 9.9995e-1).
func TestLinearTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		labels string
		ticks  int
	}{
		{0, 27, "0 5 10 15 20 25", 28},
		{6.5, 92.5, "20 40 60 80", 9},
		{0, 10, "0 2 4 6 8 10", 11},
		{0.8, 0.98, "0.80 0.85 0.90 0.95", 19},
		{-1.5, 0.5, "-1.5 -1.0 -0.5 0.0 0.5", 21},
		{3, 3, "3.0", 1},
		{0, 0.15, "0.00 0.05 0.10 0.15", 16},
		{-7e7, 1.05e8, "-5e7 0 5e7 1e8", 18}, // the shatter figure's gradients
		{-5.5e-5, 7e-5, "-4e-5 -2e-5 0 2e-5 4e-5 6e-5", 13},
		{0, 90000, "0 20000 40000 60000 80000", 10},
		// A step under 0.001 on values over it: decimals, not 1.00001e0.
		{1.00001, 1.00005, "1.00001 1.00002 1.00003 1.00004 1.00005", 21},
		{0.99991, 0.99995, "0.99991 0.99992 0.99993 0.99994 0.99995", 21},
	} {
		var labels []string
		prev := math.Inf(-1)
		ticks := (linearTicks{}).Ticks(c.lo, c.hi)
		if len(ticks) != c.ticks {
			t.Errorf("[%g, %g]: %d ticks, want %d", c.lo, c.hi, len(ticks), c.ticks)
		}
		for _, tk := range ticks {
			if tk.Value < c.lo || tk.Value > c.hi || tk.Value <= prev {
				t.Errorf("[%g, %g]: tick at %g after %g", c.lo, c.hi, tk.Value, prev)
			}
			prev = tk.Value
			if tk.Label != "" {
				labels = append(labels, tk.Label)
				if v, err := strconv.ParseFloat(tk.Label, 64); err != nil || math.Abs(v-tk.Value) > 1e-9 {
					t.Errorf("[%g, %g]: tick %g labelled %q", c.lo, c.hi, tk.Value, tk.Label)
				}
			}
		}
		if got := strings.Join(labels, " "); got != c.labels {
			t.Errorf("[%g, %g]: labels %q, want %q", c.lo, c.hi, got, c.labels)
		}
	}
}

// A linear axis at float64's limits gets ticks, within its range, in
// order and none NaN, and in a bounded time: a span under about 1e-15 of
// its values (1 to 1 + 1e-15, a curve constant but for rounding) counted
// ticks past float64's integers, where i++ leaves i as it is, and looped
// for ever; a span past the largest float64 gave one tick at NaN, and one
// near it a tick at +Inf clamped to the end, labelled wrong. A span under
// about 1e-307 had its ticks at subnormal steps rounded onto one another
// (0 to 5e-324 under GOARCH=386, whose math.Log10 is exact there), or,
// with amd64's math.Log10, labels off their ticks or no tick at all.
func TestLinearTicksAtFloatLimits(t *testing.T) {
	for _, c := range [][2]float64{
		{1, 1 + 1e-15},
		{1e20, 1e20 + 1e5},
		{-0.98, math.Nextafter(-0.98, 0)},
		{-math.MaxFloat64, math.MaxFloat64},
		{1e308, 1.7e308},
		{0, 5e-324},
		{-1e-300, 1e-300},
		{1e-320, 2e-320},
		{0, 3e-308},
		{-9.836980196356816e-302, -9.836980196356793e-302},
	} {
		done := make(chan []plot.Tick, 1)
		go func() { done <- (linearTicks{}).Ticks(c[0], c[1]) }()
		var ticks []plot.Tick
		select {
		case ticks = <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("[%g, %g]: no ticks after 2s", c[0], c[1])
		}
		labelled, prev := 0, math.Inf(-1)
		for _, tk := range ticks {
			if !(tk.Value >= c[0] && tk.Value <= c[1] && tk.Value > prev) {
				t.Errorf("[%g, %g]: tick at %g after %g", c[0], c[1], tk.Value, prev)
			}
			prev = tk.Value
			if tk.Label != "" {
				labelled++
				if v, err := strconv.ParseFloat(tk.Label, 64); err != nil || math.Abs(v-tk.Value) > 1e-9*math.Abs(tk.Value) {
					t.Errorf("[%g, %g]: tick %g labelled %q", c[0], c[1], tk.Value, tk.Label)
				}
			}
		}
		if labelled == 0 {
			t.Errorf("[%g, %g]: no label among %d ticks", c[0], c[1], len(ticks))
		}
	}
}
