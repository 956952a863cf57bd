package train

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/residual-nn/residual/internal/atomicfile"
	"github.com/residual-nn/residual/models"
)

// plotDPI is the resolution plots are drawn at: twice the 96 dpi that
// gonum's Plot.Save uses, so that a 6×4 inch plot is 1152×768 pixels and
// stays sharp on high-density screens and in TensorBoard's zoom.
const plotDPI = 192

// PlotCurves draws loss.png and accuracy.png (train and validation
// against epoch, with whole-epoch ticks and the legend below the axes)
// into dir, at plotDPI. For task models.Segment accuracy.png also draws
// the validation mean IoU (as a percentage), the score that picks a
// segmentation run's best checkpoint; its accuracies are per pixel.
func PlotCurves(h []Metrics, dir string, task models.Task) error {
	for _, c := range curveFigures(h, task) {
		p := plot.New()
		p.Title.Text, p.X.Label.Text, p.Y.Label.Text = c.title, "epoch", c.y
		p.Add(plotter.NewGrid())
		var legend []legendItem
		for i, s := range c.series {
			l, pts, err := plotter.NewLinePoints(s.xy)
			if err != nil {
				return fmt.Errorf("train: plot %s: %s: %w", c.file, s.name, err)
			}
			l.Color, l.Dashes = plotutil.Color(i), plotutil.Dashes(i)
			pts.Color, pts.Shape = plotutil.Color(i), plotutil.Shape(i)
			p.Add(l, pts)
			legend = append(legend, legendItem{s.name, []plot.Thumbnailer{l, pts}})
		}
		p.X.Tick.Marker = integerTicks{}
		if len(h) == 1 { // a range around the one epoch, not [e-1, e+1]
			p.X.Min, p.X.Max = float64(h[0].Epoch)-0.5, float64(h[0].Epoch)+0.5
		}
		if err := savePlot(p, legend, 6*vg.Inch, 4*vg.Inch, filepath.Join(dir, c.file)); err != nil {
			return err
		}
	}
	return nil
}

// curveFigure is one figure of PlotCurves: its file, title, y axis label
// and the series it draws against epoch.
type curveFigure struct {
	file, title, y string
	series         []curveSeries
}

// curveSeries is one named curve of a curveFigure.
type curveSeries struct {
	name string
	xy   plotter.XYs
}

// curveFigures returns what PlotCurves draws from the history h of a run
// of the task: the losses, and the accuracies in percent; a segmentation
// run's are pixel accuracies, with the validation mean IoU beside them
// (the one IoU recorded: Metrics has none for the training batches).
func curveFigures(h []Metrics, task models.Task) []curveFigure {
	series := func(name string, f func(Metrics) float64) curveSeries {
		xy := make(plotter.XYs, len(h))
		for i, m := range h {
			xy[i].X, xy[i].Y = float64(m.Epoch), f(m)
		}
		return curveSeries{name, xy}
	}
	loss := curveFigure{"loss.png", "Cross-entropy", "loss", []curveSeries{
		series("train", func(m Metrics) float64 { return m.TrainLoss }),
		series("validation", func(m Metrics) float64 { return m.ValLoss }),
	}}
	acc := curveFigure{"accuracy.png", "Accuracy", "accuracy (%)", []curveSeries{
		series("train", func(m Metrics) float64 { return 100 * m.TrainAcc }),
		series("validation", func(m Metrics) float64 { return 100 * m.ValAcc }),
	}}
	if task == models.Segment {
		acc.title, acc.y = "Pixel accuracy and mean IoU", "pixel accuracy, mean IoU (%)"
		acc.series[0].name, acc.series[1].name = "train pixel accuracy", "validation pixel accuracy"
		acc.series = append(acc.series, series("validation mean IoU", func(m Metrics) float64 { return 100 * m.ValMeanIoU }))
	}
	return []curveFigure{loss, acc}
}

// PlotStepLoss draws the training loss of every step (steps[i], losses[i])
// to an image file (PNG at plotDPI, or as the extension says: .svg,
// .pdf, …): the raw values in a light line and, over them, their
// exponential moving average, debiased as TensorBoard's smoothing is,
// with a time constant of 1/50 of the steps shown (no smoothing under
// 100 steps). Non-finite losses are left out.
func PlotStepLoss(steps []int, losses []float64, path string) error {
	if len(steps) != len(losses) {
		return fmt.Errorf("train: plot %s: %d steps for %d losses", path, len(steps), len(losses))
	}
	raw := make(plotter.XYs, 0, len(steps))
	for i, s := range steps {
		if !math.IsNaN(losses[i]) && !math.IsInf(losses[i], 0) {
			raw = append(raw, plotter.XY{X: float64(s), Y: losses[i]})
		}
	}
	if len(raw) == 0 {
		return fmt.Errorf("train: plot %s: no finite loss to draw", path)
	}
	tau := float64(len(raw)) / 50
	smooth := make(plotter.XYs, len(raw))
	weight := 0.0
	if tau > 2 {
		weight = 1 - 1/tau
	}
	ema, debias := 0.0, 0.0
	for i, xy := range raw {
		ema = weight*ema + (1-weight)*xy.Y
		debias = weight*debias + (1 - weight)
		smooth[i] = plotter.XY{X: xy.X, Y: ema / debias}
	}
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = "Training loss per step", "step", "loss"
	p.Add(plotter.NewGrid())
	rawLine, err := plotter.NewLine(raw)
	if err != nil {
		return fmt.Errorf("train: plot %s: %w", path, err)
	}
	rawLine.Color = color.RGBA{R: 160, G: 190, B: 230, A: 255}
	rawLine.Width = vg.Points(0.75)
	p.Add(rawLine)
	legend := []legendItem{{"per step", []plot.Thumbnailer{rawLine}}}
	if weight > 0 {
		smoothLine, err := plotter.NewLine(smooth)
		if err != nil {
			return fmt.Errorf("train: plot %s: %w", path, err)
		}
		smoothLine.Color, smoothLine.Width = plotutil.Color(0), vg.Points(1.5)
		p.Add(smoothLine)
		legend = append(legend, legendItem{fmt.Sprintf("moving average (~%.0f steps)", tau), []plot.Thumbnailer{smoothLine}})
	}
	if len(raw) == 1 {
		p.X.Min, p.X.Max = raw[0].X-0.5, raw[0].X+0.5
	}
	p.X.Tick.Marker = integerTicks{}
	return savePlot(p, legend, 6*vg.Inch, 4*vg.Inch, path)
}

// integerTicks labels whole numbers only (epochs, steps) at a spacing of
// 1, 2 or 5 times a power of ten that leaves at most 10 labels, with
// unlabelled ticks at the whole numbers between labels when they are at
// most 50.
type integerTicks struct{}

func (integerTicks) Ticks(min, max float64) []plot.Tick {
	lo, hi := math.Ceil(min), math.Floor(max)
	if !(lo <= hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil
	}
	step := 1.0
	for mag := 1.0; ; mag *= 10 {
		if step = mag; (hi-lo)/step <= 10 {
			break
		}
		if step = 2 * mag; (hi-lo)/step <= 10 {
			break
		}
		if step = 5 * mag; (hi-lo)/step <= 10 {
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 0, 64)})
	}
	if step > 1 && hi-lo <= 50 {
		for v := lo; v <= hi; v++ {
			if math.Mod(v, step) != 0 {
				ticks = append(ticks, plot.Tick{Value: v})
			}
		}
	}
	return ticks
}

// legendItem is one entry of a legend: a name and the thumbnails (line,
// marker) drawn before it.
type legendItem struct {
	name   string
	thumbs []plot.Thumbnailer
}

// savePlot draws p as drawPlot does and writes it to path (writePlot).
func savePlot(p *plot.Plot, legend []legendItem, w, h vg.Length, path string) error {
	b, err := drawPlot(p, legend, w, h, path)
	if err != nil {
		return err
	}
	return writePlot(path, b)
}

// writePlot writes a drawn plot to path through a temporary file, so
// that a reader never sees half a plot.
func writePlot(path string, b []byte) error {
	// The one atomic write the run folder uses (checkpoints, metrics): its
	// temporary files are the ones prepareFolder removes after a kill.
	if err := atomicfile.Write(path, b); err != nil {
		return fmt.Errorf("train: plot: %w", err)
	}
	return nil
}

// drawPlot draws p on a w×h canvas with the legend entries in one row
// under the axes, off the data, and returns it encoded in the format
// path's extension names, as for plot.Save; PNG is drawn at plotDPI.
func drawPlot(p *plot.Plot, legend []legendItem, w, h vg.Length, path string) ([]byte, error) {
	var c vg.CanvasWriterTo
	switch format := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), ".")); format {
	case "png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(plotDPI))}
	default:
		var err error
		if c, err = draw.NewFormattedCanvas(w, h, format); err != nil {
			return nil, fmt.Errorf("train: plot %s: %w", path, err)
		}
	}
	dc := draw.New(c)
	if len(legend) == 0 {
		p.Draw(dc)
	} else {
		sty := plot.NewLegend().TextStyle
		em := sty.Rectangle("M").Max
		rowH := em.Y + sty.FontExtents().Descent
		pad := em.Y / 2
		area := draw.Crop(dc, 0, 0, rowH+2*pad, 0)
		p.Draw(area)
		widths, total := make([]vg.Length, len(legend)), vg.Length(0)
		thumbW := vg.Points(20)
		for i, it := range legend {
			widths[i] = thumbW + sty.Rectangle(" "+it.name).Max.X
			total += widths[i]
			if i > 0 {
				total += 2 * em.X
			}
		}
		data := p.DataCanvas(area)
		// Centred under the data, moved left as far as the legend needs
		// to end inside the canvas, but starting no further left than it.
		x := max(min(data.Center().X-total/2, dc.Max.X-total), dc.Min.X)
		for i, it := range legend {
			l := plot.NewLegend()
			l.Left, l.Top, l.ThumbnailWidth = true, true, thumbW
			l.Add(it.name, it.thumbs...)
			l.Draw(draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
				Min: vg.Point{X: x, Y: dc.Min.Y + pad},
				Max: vg.Point{X: x + widths[i], Y: dc.Min.Y + pad + rowH},
			}})
			x += widths[i] + 2*em.X
		}
	}
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("train: plot %s: %w", path, err)
	}
	return b.Bytes(), nil
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
// predicted, shaded by the fraction of the row) to an image file (PNG at
// plotDPI, or as the extension says: .svg, .pdf, …).
func PlotConfusion(confusion [][]int, classes []string, path string) error {
	b, err := ConfusionImage(confusion, classes, path)
	if err != nil {
		return err
	}
	return writePlot(path, b)
}

// ConfusionImage returns the image file PlotConfusion writes to path,
// without writing it: for a caller that looks for a signal between the
// drawing, which takes seconds for a hundred classes, and the write.
func ConfusionImage(confusion [][]int, classes []string, path string) ([]byte, error) {
	p := plot.New()
	p.Title.Text = "Confusion matrix: counts; shade = (fraction of the row)^(1/3)"
	p.X.Label.Text, p.Y.Label.Text = "predicted class", "true class"
	h := plotter.NewHeatMap(confusionGrid(confusion), whiteToBlue{})
	h.Min, h.Max = 0, 1
	p.Add(h)
	// The image is at most confusionSide square: ImageNet's 1,000 classes
	// at a third of an inch each made a 64,000-pixel square (16 GB). Cells
	// too small for a count show their shade alone, and at most
	// confusionTicks classes are named on each axis.
	n := len(classes)
	side := min(vg.Length(2+n/3)*vg.Inch, confusionSide)
	counts := side/vg.Length(max(n, 1)) >= vg.Inch/4
	if counts {
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
	}
	var ticks, yticks []plot.Tick
	every := (n + confusionTicks - 1) / confusionTicks
	for i, c := range classes {
		if i%every != 0 {
			c = "" // a minor tick
		}
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: c})
		yticks = append(yticks, plot.Tick{Value: float64(n - 1 - i), Label: c})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.ConstantTicks(ticks), plot.ConstantTicks(yticks)
	width := max(side+vg.Inch, p.Title.TextStyle.Rectangle(p.Title.Text).Size().X+vg.Inch/4) // the whole title
	return drawPlot(p, nil, width, side, path)
}

// confusionSide and confusionTicks bound a confusion matrix image: its
// side, and the classes named along each axis.
const (
	confusionSide  = 16 * vg.Inch
	confusionTicks = 50
)

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
