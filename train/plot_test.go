package train

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotutil"

	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/models"
)

// rowsWith returns the rows of img holding a pixel of color c.
func rowsWith(img image.Image, c color.Color) map[int]bool {
	r0, g0, b0, _ := c.RGBA()
	rows := map[int]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r == r0 && g == g0 && bl == b0 {
				rows[y] = true
				break
			}
		}
	}
	return rows
}

// TestPlotCurves checks the size (2× the 96-dpi 576×384) and that each
// series' color appears in the bottom strip, where the legend is, as
// well as above it, where the data is: the legend is outside the axes.
func TestPlotCurves(t *testing.T) {
	dir := t.TempDir()
	var h []Metrics
	for e := 1; e <= 7; e++ {
		f := float64(e)
		h = append(h, Metrics{Epoch: e, TrainLoss: 2 / f, ValLoss: 2.2 / f, TrainAcc: 1 - 0.5/f, ValAcc: 1 - 0.6/f})
	}
	if err := PlotCurves(h, dir, models.Classify); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"loss.png", "accuracy.png"} {
		img := fixture.PNG(t, filepath.Join(dir, name))
		if b := img.Bounds(); b.Dx() != 1152 || b.Dy() != 768 {
			t.Errorf("%s is %dx%d, want 1152x768", name, b.Dx(), b.Dy())
		}
		for i := range 2 {
			rows := rowsWith(img, plotutil.Color(i))
			legend, data := 0, 0
			for y := range rows {
				if y > 768-60 {
					legend++
				} else {
					data++
				}
			}
			if legend == 0 || data == 0 {
				t.Errorf("%s: series %d's color in %d rows of the bottom strip and %d above; want both", name, i, legend, data)
			}
		}
	}
	if err := PlotCurves(h[:1], dir, models.Classify); err != nil {
		t.Errorf("one epoch: %v", err)
	}
	// Other formats follow the extension, as plot.Save does.
	if err := PlotConfusion([][]int{{3, 1}, {0, 4}}, []string{"a", "b"}, filepath.Join(dir, "c.svg")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "c.svg")); err != nil || !strings.Contains(string(b), "<svg") {
		t.Errorf("c.svg: %v %.40q", err, b)
	}
	if err := PlotConfusion([][]int{{3}}, []string{"a"}, filepath.Join(dir, "c.bmp")); err == nil || !strings.Contains(err.Error(), "c.bmp") {
		t.Errorf("unknown format: %v", err)
	}
}

// A segmentation run's accuracy figure draws the validation mean IoU
// (the score that picks its best checkpoint) beside its pixel
// accuracies, in percent, and says so on its axis; a classifier's draws
// its train and validation accuracy alone, as it did.
func TestCurveFiguresMeanIoU(t *testing.T) {
	h := []Metrics{
		{Epoch: 1, TrainAcc: 0.90, ValAcc: 0.91, ValMeanIoU: 0.55},
		{Epoch: 2, TrainAcc: 0.95, ValAcc: 0.96, ValMeanIoU: 0.75},
	}
	accuracy := func(task models.Task) curveFigure {
		t.Helper()
		for _, f := range curveFigures(h, task) {
			if f.file == "accuracy.png" {
				return f
			}
		}
		t.Fatalf("%s: no accuracy.png among the figures", task)
		return curveFigure{}
	}
	seg := accuracy(models.Segment)
	var names []string
	for _, s := range seg.series {
		names = append(names, s.name)
	}
	if want := "train pixel accuracy, validation pixel accuracy, validation mean IoU"; strings.Join(names, ", ") != want {
		t.Errorf("segmentation: series %q, want %s", names, want)
	}
	if !strings.Contains(seg.y, "mean IoU") || !strings.Contains(seg.y, "pixel accuracy") || !strings.Contains(seg.title, "mean IoU") {
		t.Errorf("segmentation: title %q, y axis %q: want both measures named", seg.title, seg.y)
	}
	if len(seg.series) == 3 {
		for i, xy := range seg.series[2].xy {
			if want := 100 * h[i].ValMeanIoU; xy.X != float64(h[i].Epoch) || math.Abs(xy.Y-want) > 1e-9 {
				t.Errorf("segmentation: mean IoU point %d at (%g, %g), want (%d, %g)", i, xy.X, xy.Y, h[i].Epoch, want)
			}
		}
	}
	for _, task := range []models.Task{models.Classify, ""} {
		c := accuracy(task)
		if len(c.series) != 2 || c.series[0].name != "train" || c.series[1].name != "validation" || c.y != "accuracy (%)" || c.title != "Accuracy" {
			t.Errorf("task %q: %q %q, %d series, want the classifier's accuracy figure", task, c.title, c.y, len(c.series))
		}
		if len(c.series) > 0 && c.series[1].xy[1].Y != 100*h[1].ValAcc {
			t.Errorf("task %q: validation accuracy %g at epoch 2, want %g", task, c.series[1].xy[1].Y, 100*h[1].ValAcc)
		}
	}
	dir := t.TempDir()
	if err := PlotCurves(h, dir, models.Segment); err != nil {
		t.Fatal(err)
	}
}

func TestIntegerTicks(t *testing.T) {
	for _, c := range []struct {
		min, max float64
		labels   string // the labelled ticks
	}{
		{1, 7, "1 2 3 4 5 6 7"},
		{0.5, 1.5, "1"},
		{1, 30, "5 10 15 20 25 30"},
		{1, 200, "20 40 60 80 100 120 140 160 180 200"},
		{1, 12345, "2000 4000 6000 8000 10000 12000"},
		{0.2, 0.8, ""},
	} {
		var labels []string
		minor := 0
		for _, tk := range (integerTicks{}).Ticks(c.min, c.max) {
			if tk.Value != math.Trunc(tk.Value) || tk.Value < c.min || tk.Value > c.max {
				t.Errorf("[%g, %g]: tick at %g", c.min, c.max, tk.Value)
			}
			if tk.Label == "" {
				minor++
				continue
			}
			if tk.Label != strconv.Itoa(int(tk.Value)) {
				t.Errorf("[%g, %g]: tick %g labelled %q", c.min, c.max, tk.Value, tk.Label)
			}
			labels = append(labels, tk.Label)
		}
		if got := strings.Join(labels, " "); got != c.labels {
			t.Errorf("[%g, %g]: labels %q, want %q", c.min, c.max, got, c.labels)
		}
		if c.max-c.min <= 50 && len(labels) > 0 && minor+len(labels) != int(math.Floor(c.max)-math.Ceil(c.min))+1 {
			t.Errorf("[%g, %g]: %d minor + %d labelled ticks, want one per whole number", c.min, c.max, minor, len(labels))
		}
	}
}

func TestPlotStepLoss(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var steps []int
	var losses []float64
	for s := 1; s <= 2000; s++ {
		steps = append(steps, s)
		losses = append(losses, 2.3*math.Exp(-float64(s)/500)+0.05+0.3*rng.Float64())
	}
	losses[10] = math.NaN() // left out, not an error
	path := filepath.Join(dir, "step_loss.png")
	if err := PlotStepLoss(steps, losses, path); err != nil {
		t.Fatal(err)
	}
	img := fixture.PNG(t, path)
	if b := img.Bounds(); b.Dx() != 1152 || b.Dy() != 768 {
		t.Errorf("step_loss.png is %dx%d, want 1152x768", b.Dx(), b.Dy())
	}
	if rows := rowsWith(img, plotutil.Color(0)); len(rows) < 100 {
		t.Errorf("the moving average's color is in %d rows only", len(rows))
	}
	if err := PlotStepLoss([]int{1}, []float64{0.5}, filepath.Join(dir, "one.png")); err != nil {
		t.Errorf("one step: %v", err)
	}
	for _, c := range []struct {
		steps  []int
		losses []float64
		want   string
	}{
		{[]int{1, 2}, []float64{1}, "2 steps for 1 losses"},
		{nil, nil, "no finite loss"},
		{[]int{1}, []float64{math.Inf(1)}, "no finite loss"},
	} {
		if err := PlotStepLoss(c.steps, c.losses, filepath.Join(dir, "bad.png")); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PlotStepLoss(%v, %v): %v, want an error containing %q", c.steps, c.losses, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.png")); !os.IsNotExist(err) {
		t.Errorf("a refused plot left a file: %v", err)
	}
}

// TestConfusionImageBounded: a confusion matrix of 150 classes (of ImageNet's 1,000
// alike) is drawn at most 16 inches square (it was 10,000 pixels, and 64,000
// for 1,000: 16 GB of RGBA), its cells shaded without counts; ten classes
// keep a third of an inch a class and their counts.
func TestConfusionImageBounded(t *testing.T) {
	for _, tc := range []struct {
		n        int
		maxPixel int
	}{{10, int((2 + 10/3) * plotDPI)}, {150, 16 * plotDPI}} {
		conf := make([][]int, tc.n)
		names := make([]string, tc.n)
		for i := range conf {
			conf[i] = make([]int, tc.n)
			conf[i][i], conf[i][(i+1)%tc.n] = 7, 1
			names[i] = fmt.Sprint("class", i)
		}
		b, err := ConfusionImage(conf, names, "c.png")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Height > tc.maxPixel || cfg.Height < tc.maxPixel*9/10 {
			t.Errorf("%d classes: a %dx%d image, want about %d pixels high", tc.n, cfg.Width, cfg.Height, tc.maxPixel)
		}
	}
}
