// Package experiments reproduces the science of residual networks as
// runnable experiments: shattered gradients (Balduzzi et al. 2017), the
// variance of activations at initialisation and what batch norm does to it
// (Prince, Understanding Deep Learning, Fig. 11.6), and the cost of basic
// against bottleneck blocks. Each experiment writes PNG figures, its raw
// numbers (JSON) and a Markdown summary that sets the measured numbers next
// to the theory, and is deterministic for a given seed.
package experiments

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Report collects an experiment's outputs in a folder.
type Report struct {
	Dir     string
	Title   string
	lines   []string
	figures []string
}

// NewReport creates the output folder.
func NewReport(dir, title string) (*Report, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("experiments: %w", err)
	}
	return &Report{Dir: dir, Title: title}, nil
}

// Printf adds a line to the Markdown summary.
func (r *Report) Printf(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

// JSON writes raw numbers to name.
func (r *Report) JSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.Dir, name), b, 0o644)
}

// Close writes summary.md.
func (r *Report) Close() error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Title)
	for _, f := range r.figures {
		fmt.Fprintf(&b, "![%s](%s)\n\n", f, f)
	}
	for _, l := range r.lines {
		b.WriteString(l + "\n")
	}
	return os.WriteFile(filepath.Join(r.Dir, "summary.md"), []byte(b.String()), 0o644)
}

// Line is one curve of a panel.
type Line struct {
	Label  string
	X, Y   []float64
	Dashed bool
	Color  int // index into the palette; -1 picks by order
}

// Panel is one plot.
type Panel struct {
	Title, XLabel, YLabel string
	LogX, LogY            bool
	Lines                 []Line
}

var colors = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{214, 39, 40, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{148, 103, 189, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{0, 0, 0, 255}, color.RGBA{127, 127, 127, 255},
}

func (p Panel) plot() (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text, pl.X.Label.Text, pl.Y.Label.Text = p.Title, p.XLabel, p.YLabel
	if p.LogX {
		pl.X.Scale, pl.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	if p.LogY {
		pl.Y.Scale, pl.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	pl.Add(plotter.NewGrid())
	for i, l := range p.Lines {
		xy := make(plotter.XYs, 0, len(l.X))
		for j := range l.X {
			if (p.LogX && l.X[j] <= 0) || (p.LogY && l.Y[j] <= 0) || math.IsNaN(l.Y[j]) || math.IsInf(l.Y[j], 0) {
				continue
			}
			xy = append(xy, plotter.XY{X: l.X[j], Y: l.Y[j]})
		}
		ln, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		c := l.Color
		if c < 0 {
			c = i
		}
		ln.Color = colors[c%len(colors)]
		ln.Width = vg.Points(1.2)
		if l.Dashed {
			ln.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		pl.Add(ln)
		if l.Label != "" {
			pl.Legend.Add(l.Label, ln)
		}
	}
	pl.Legend.Top = true
	return pl, nil
}

// Figure draws panels in a grid of cols columns to name (PNG) and adds it
// to the summary.
func (r *Report) Figure(name string, cols int, w, h vg.Length, panels ...Panel) error {
	rows := (len(panels) + cols - 1) / cols
	img := vgimg.New(w*vg.Length(cols), h*vg.Length(rows))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(6), PadY: vg.Points(6)}
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range panels {
		pl, err := p.plot()
		if err != nil {
			return fmt.Errorf("experiments: %s: %w", name, err)
		}
		grid[i/cols][i%cols] = pl
	}
	if err := drawGrid(grid, tiles, dc); err != nil {
		return fmt.Errorf("experiments: %s: %w", name, err)
	}
	f, err := os.Create(filepath.Join(r.Dir, name))
	if err != nil {
		return fmt.Errorf("experiments: %w", err)
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return fmt.Errorf("experiments: %s: %w", name, err)
	}
	r.figures = append(r.figures, name)
	return nil
}

// drawGrid draws the plots into their tiles of dc. The plotting library
// panics on data it cannot draw (a value ≤ 0 or a NaN on a log axis, as a
// diverged run gives); that is returned as an error.
func drawGrid(grid [][]*plot.Plot, tiles draw.Tiles, dc draw.Canvas) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot draw the figure: %v", r)
		}
	}()
	canvases := plot.Align(grid, tiles, dc)
	for i := range grid {
		for j := range grid[i] {
			if grid[i][j] != nil {
				grid[i][j].Draw(canvases[i][j])
			}
		}
	}
	return nil
}

// fitLine returns the least-squares slope and intercept of y on x.
func fitLine(x, y []float64) (slope, intercept float64) {
	n := float64(len(x))
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	slope = (n*sxy - sx*sy) / (n*sxx - sx*sx)
	return slope, (sy - slope*sx) / n
}

func seq(lo, hi int) []float64 {
	out := make([]float64, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		out = append(out, float64(i))
	}
	return out
}
