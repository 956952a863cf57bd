package train

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plotCurves draws loss.png and accuracy.png (train and validation against
// epoch) into dir.
func plotCurves(h []Metrics, dir string) error {
	series := func(f func(Metrics) float64) plotter.XYs {
		xy := make(plotter.XYs, len(h))
		for i, m := range h {
			xy[i].X, xy[i].Y = float64(m.Epoch), f(m)
		}
		return xy
	}
	for _, c := range []struct {
		file, title, y string
		train, val     func(Metrics) float64
	}{
		{"loss.png", "Cross-entropy", "loss", func(m Metrics) float64 { return m.TrainLoss }, func(m Metrics) float64 { return m.ValLoss }},
		{"accuracy.png", "Accuracy", "accuracy (%)", func(m Metrics) float64 { return 100 * m.TrainAcc }, func(m Metrics) float64 { return 100 * m.ValAcc }},
	} {
		p := plot.New()
		p.Title.Text, p.X.Label.Text, p.Y.Label.Text = c.title, "epoch", c.y
		p.Add(plotter.NewGrid())
		if err := plotutil.AddLinePoints(p, "train", series(c.train), "validation", series(c.val)); err != nil {
			return fmt.Errorf("train: plot: %w", err)
		}
		p.Legend.Top = c.file == "loss.png" // away from the curves
		if err := p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, c.file)); err != nil {
			return fmt.Errorf("train: plot: %w", err)
		}
	}
	return nil
}

// confusionGrid adapts a confusion matrix to plotter.GridXYZ, whose Y must
// grow with the row index: grid row r (from the bottom) shows true class
// n−1−r, so class 0 is drawn at the top.
type confusionGrid [][]int

func (g confusionGrid) Dims() (c, r int)   { return len(g), len(g) }
func (g confusionGrid) X(c int) float64    { return float64(c) }
func (g confusionGrid) Y(r int) float64    { return float64(r) }
func (g confusionGrid) Z(c, r int) float64 { return math.Cbrt(rowFrac(g[len(g)-1-r], c)) }

func rowFrac(row []int, c int) float64 {
	t := 0
	for _, v := range row {
		t += v
	}
	if t == 0 {
		return 0
	}
	return float64(row[c]) / float64(t)
}

// PlotConfusion draws a confusion matrix (rows: true class, columns:
// predicted, shaded by the fraction of the row) to a PNG file.
func PlotConfusion(confusion [][]int, classes []string, path string) error {
	p := plot.New()
	p.Title.Text = "Confusion matrix: counts; shade = (fraction of the row)^(1/3)"
	p.X.Label.Text, p.Y.Label.Text = "predicted class", "true class"
	h := plotter.NewHeatMap(confusionGrid(confusion), whiteToBlue{})
	h.Min, h.Max = 0, 1
	p.Add(h)
	var labels plotter.XYLabels
	for r, row := range confusion {
		for c, v := range row {
			if v > 0 {
				labels.XYs = append(labels.XYs, plotter.XY{X: float64(c), Y: float64(len(confusion) - 1 - r)})
				labels.Labels = append(labels.Labels, fmt.Sprint(v))
			}
		}
	}
	if l, err := plotter.NewLabels(labels); err == nil {
		for i := range l.TextStyle {
			l.TextStyle[i].XAlign, l.TextStyle[i].YAlign = draw.XCenter, draw.YCenter
			l.TextStyle[i].Font.Size = vg.Points(8)
		}
		p.Add(l)
	}
	var ticks, yticks []plot.Tick
	for i, c := range classes {
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: c})
		yticks = append(yticks, plot.Tick{Value: float64(len(classes) - 1 - i), Label: c})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.ConstantTicks(ticks), plot.ConstantTicks(yticks)
	side := vg.Length(2+len(classes)/3) * vg.Inch
	if err := p.Save(side+vg.Inch, side, path); err != nil {
		return fmt.Errorf("train: plot: %w", err)
	}
	return nil
}

// whiteToBlue is a palette from white (0) to dark blue (1).
type whiteToBlue struct{}

func (whiteToBlue) Colors() []color.Color {
	cs := make([]color.Color, 32)
	for i := range cs {
		f := float64(i) / float64(len(cs)-1)
		cs[i] = color.RGBA{uint8(255 * (1 - 0.85*f)), uint8(255 * (1 - 0.7*f)), uint8(255 - 100*f), 255}
	}
	return cs
}
