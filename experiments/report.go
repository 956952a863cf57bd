// Package experiments reproduces the science of residual networks as
// runnable experiments: shattered gradients (Balduzzi et al. 2017), the
// variance of activations at initialisation and what batch norm does to it
// (Prince, Understanding Deep Learning, Fig. 11.6), and the cost of basic
// against bottleneck blocks. Each experiment writes PNG figures, its raw
// numbers (JSON) and a Markdown summary that sets the measured numbers next
// to the theory into its output folder, which it replaces as a whole when
// it finishes (Report), and is deterministic for a given seed.
package experiments

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Report collects an experiment's outputs and puts them in its folder
// Dir as a whole when it closes. Until then they are written to a staging
// folder beside Dir (Dir + ".partial"), so that an experiment stopped or
// failed midway leaves Dir as the run before left it, never partly new:
// Close moves the finished outputs in place of the earlier ones, which
// are removed, whatever they held.
type Report struct {
	Dir     string // where the outputs are once Close succeeds
	Title   string
	work    string // the staging folder: Dir + ".partial"
	closed  bool   // Close finished the run: abandon leaves work alone
	lines   []string
	figures []string
}

// NewReport starts a report for dir, which must be absent, empty or hold
// only what an experiment writes (runs/, *.png, *.json, *.md), with the
// summary.md of a finished run of this experiment (of this title) beside
// anything but runs/, since Close replaces it: its staging folder starts
// empty (one a stopped run left is removed). The report is for an
// experiment that trains nothing: it refuses a dir, or staging folder,
// holding a stopped training experiment's runs/, which it would remove.
func NewReport(dir, title string) (*Report, error) { return newReport(dir, title, false, false) }

// startedBy is the file in a training experiment's staging folder that
// records its title ("# title") until Close, so that another experiment
// given the same output folder can name the one whose runs it holds.
const startedBy = "experiment.md"

// newReport is NewReport for an experiment that trains networks in the
// report's runs/ folder where trains is true. Such a report starts over
// the runs a stopped run of its own left in the staging folder, or with
// resume continues them, or, where there are none, starts with a copy of
// dir's runs/: runs that finished are evaluated again, and dir stays as
// it is until Close. It refuses runs another training experiment left.
func newReport(dir, title string, trains, resume bool) (*Report, error) {
	dir = filepath.Clean(dir)
	if b := filepath.Base(dir); b == "." || b == ".." || b == string(filepath.Separator) {
		return nil, fmt.Errorf("experiments: output folder %q: name a folder of its own (the experiment replaces it as a whole when it finishes)", dir)
	}
	r := &Report{Dir: dir, Title: title, work: dir + ".partial"}
	old := dir + ".old"
	for _, d := range []string{dir, r.work, old} {
		if err := onlyOutputs(d); err != nil {
			return nil, err
		}
	}
	if err := sameExperiment(dir, old, title, trains); err != nil {
		return nil, err
	}
	// Close stopped between its two renames: the earlier run goes back.
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		if err := os.Rename(old, dir); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("experiments: %w", err)
		}
	}
	_, err := os.Lstat(r.work)
	switch {
	case resume && err == nil:
		if err := stoppedRuns(r.work, title, trains); err != nil {
			return nil, err
		}
		return r, r.markStarted()
	case err == nil:
		if _, err := os.Stat(filepath.Join(r.work, "summary.md")); err == nil {
			// A finished run that Close could not put in place, as its
			// error said: starting over would remove it.
			return nil, fmt.Errorf("experiments: %s holds a finished run that was not put in place of %s: move it there, or away, first", r.work, dir)
		}
		if err := stoppedRuns(r.work, title, trains); err != nil {
			return nil, err
		}
		if err := os.RemoveAll(r.work); err != nil {
			return nil, fmt.Errorf("experiments: %w", err)
		}
	}
	if err := os.MkdirAll(r.work, 0o755); err != nil {
		return nil, fmt.Errorf("experiments: %w", err)
	}
	if trains {
		if err := r.markStarted(); err != nil {
			return nil, err
		}
	}
	if runs := filepath.Join(dir, "runs"); resume {
		if _, err := os.Stat(runs); err == nil {
			if err := os.CopyFS(r.path("runs"), os.DirFS(runs)); err != nil {
				os.RemoveAll(r.work) // a half-copied checkpoint must not be resumed
				return nil, fmt.Errorf("experiments: copying the finished runs to resume them: %w", err)
			}
		}
	}
	return r, nil
}

// stoppedRuns refuses a staging folder holding the runs/ of a stopped
// training experiment other than this one (of another title, or any where
// this one trains nothing), which starting this one would remove, or
// resuming it mix with its own. Runs from before startedBy was written
// name no experiment: a training experiment takes them as its own.
func stoppedRuns(work, title string, trains bool) error {
	if _, err := os.Stat(filepath.Join(work, "runs")); err != nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(work, startedBy))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("experiments: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	other := strings.TrimPrefix(first, "# ")
	if trains && (other == "" || other == title) {
		return nil
	}
	if other == "" {
		other = "a training experiment: degradation, ensemble, order or segment-unet"
	} else {
		other = fmt.Sprintf("%.80q", other)
	}
	return fmt.Errorf("experiments: %s holds the runs of a stopped experiment (%s), which this one would remove or mix with its own: resume that one with --resume, remove them, or choose another output folder", work, other)
}

// markStarted records the report's title in its staging folder
// (startedBy) for stoppedRuns.
func (r *Report) markStarted() error {
	if err := os.WriteFile(r.path(startedBy), []byte("# "+r.Title+"\n"), 0o644); err != nil {
		return fmt.Errorf("experiments: %w", err)
	}
	return nil
}

// onlyOutputs refuses a folder that holds anything an experiment does not
// write: it is about to be replaced or removed.
func onlyOutputs(dir string) error {
	st, err := os.Lstat(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("experiments: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("experiments: %s is a file or a link, not a folder; an experiment's output folder is replaced as a whole when it finishes", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("experiments: %w", err)
	}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if !(e.Name() == "runs" && e.IsDir()) && !(e.Type().IsRegular() && (ext == ".png" || ext == ".json" || ext == ".md")) {
			return fmt.Errorf("experiments: %s holds %s, which no experiment writes, and is replaced as a whole when the experiment finishes: move it away or choose another output folder", dir, e.Name())
		}
	}
	return nil
}

// sameExperiment refuses a folder (or, where a Close was cut short, its
// earlier run in old) that holds another experiment's results, which the
// run would replace when it finishes: its summary.md starts with that
// experiment's title, where this one's would start with title. So is one
// holding files without a summary.md, which no finished experiment left
// (figures of the user's own, say: the extensions onlyOutputs allows do
// not make them an experiment's), but for a runs/ alone, a training
// experiment stopped before its runs were kept in OUT.partial, which
// --resume continues, and which an experiment that trains nothing
// (trains false) refuses as well.
func sameExperiment(dir, old, title string, trains bool) error {
	for _, d := range []string{dir, old} {
		b, err := os.ReadFile(filepath.Join(d, "summary.md"))
		if os.IsNotExist(err) {
			entries, err := os.ReadDir(d)
			if err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("experiments: %w", err)
			}
			for _, e := range entries {
				if e.Name() != "runs" {
					return fmt.Errorf("experiments: %s holds %s but no summary.md, so no finished experiment's results, and would be replaced as a whole when the experiment finishes: move them away or choose another output folder", d, e.Name())
				}
				if !trains {
					return fmt.Errorf("experiments: %s holds the runs of a stopped training experiment (runs/ but no summary.md), which this one would remove: resume that one with --resume, remove them, or choose another output folder", d)
				}
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("experiments: %w", err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if first != "# "+title {
			return fmt.Errorf("experiments: %s holds the results of another experiment (%.80q), which this one would replace when it finishes: choose another output folder", d, strings.TrimPrefix(first, "# "))
		}
		return nil
	}
	return nil
}

// rename is os.Rename, which Close moves the folders with (a test makes
// it fail).
var rename = os.Rename

// path is where the report writes name until Close moves it into Dir.
func (r *Report) path(name ...string) string {
	return filepath.Join(append([]string{r.work}, name...)...)
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
	return os.WriteFile(r.path(name), b, 0o644)
}

// Close writes summary.md and puts the outputs in Dir: Dir (the earlier
// run) is renamed to Dir + ".old", the staging folder to Dir, and the
// earlier run removed.
func (r *Report) Close() error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Title)
	for _, f := range r.figures {
		fmt.Fprintf(&b, "![%s](%s)\n\n", f, f)
	}
	for _, l := range r.lines {
		b.WriteString(l + "\n")
	}
	if err := os.WriteFile(r.path("summary.md"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("experiments: %w", err)
	}
	// The run is finished: whatever fails from here (the earlier run not
	// moved aside, say), abandon must not remove it.
	r.closed = true
	// The summary records the title from here on (a summary.md that
	// could not be written left the mark, and the runs named by it).
	if err := os.Remove(r.path(startedBy)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("experiments: the finished run is in %s: %w", r.work, err)
	}
	old := r.Dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("experiments: the finished run is in %s: %w", r.work, err)
	}
	if err := rename(r.Dir, old); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("experiments: the finished run is in %s, the earlier one in %s: %w", r.work, r.Dir, err)
	}
	if err := rename(r.work, r.Dir); err != nil {
		if e := rename(old, r.Dir); e != nil && !os.IsNotExist(e) {
			err = fmt.Errorf("%w; the earlier run is in %s", err, old)
		}
		return fmt.Errorf("experiments: the finished run is in %s: %w", r.work, err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("experiments: the run is in %s, but removing the earlier one: %w", r.Dir, err)
	}
	return nil
}

// abandon removes the staging folder of a report that did not close,
// unless it holds training runs (runs/), which a resumed experiment
// continues. Deferred by every experiment.
func (r *Report) abandon() {
	if r == nil || r.closed {
		return
	}
	if _, err := os.Stat(r.path("runs")); err == nil {
		return
	}
	os.RemoveAll(r.work)
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

// plot builds the panel's plot and returns it with the points of its
// curves, as drawn (without the values a log axis cannot show).
func (p Panel) plot() (*plot.Plot, []plotter.XYs, error) {
	pl := plot.New()
	pl.Title.Text, pl.X.Label.Text, pl.Y.Label.Text = p.Title, p.XLabel, p.YLabel
	pl.X.Tick.Marker, pl.Y.Tick.Marker = linearTicks{}, linearTicks{}
	if p.LogX {
		pl.X.Scale, pl.X.Tick.Marker = plot.LogScale{}, logTicks{}
	}
	if p.LogY {
		pl.Y.Scale, pl.Y.Tick.Marker = plot.LogScale{}, logTicks{}
	}
	pl.Add(plotter.NewGrid())
	curves := make([]plotter.XYs, 0, len(p.Lines))
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
			return nil, nil, err
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
		curves = append(curves, xy)
		if l.Label != "" {
			pl.Legend.Add(l.Label, ln)
		}
	}
	pl.Legend.Top, pl.Legend.Left = true, true // drawn by drawPanels in the box placeLegend finds
	return pl, curves, nil
}

// linearTicks labels a linear axis at the multiples of a step of 1, 2 or
// 5 times a power of ten, the smallest step that labels at most 6 of them,
// each label with the decimals of the step (0.80 0.85 0.90); unlabelled
// ticks mark the fifths between (the halves for a step of 2·10^k). gonum's
// DefaultTicks, which the figures used, labelled the ensemble figure's
// path lengths 0 to 27 "0.00" and "25.00" alone, and 0.8 to 0.98 at 0.8,
// 0.88 and 0.96. An axis whose span is under about 1e-15 of its values
// (a curve constant but for rounding) or 1e-307, or past the largest
// float64, is labelled at its two ends alone.
type linearTicks struct{}

func (linearTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo <= hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil
	}
	span := hi - lo
	if span == 0 {
		span = math.Max(math.Abs(lo), 1)
	}
	if math.IsInf(span, 0) { // hi − lo past the largest float64
		return endTicks(lo, hi)
	}
	var m, k int
	for k = int(math.Floor(math.Log10(span))) - 1; ; k++ { // from a step that labels 10 to 100
		if m = linearStep(lo, hi, k); m != 0 {
			break
		}
	}
	step, parts := logValue(m, k), 5.0
	if m == 2 {
		parts = 2
	}
	if step/parts < 0x1p-1022 {
		// Ticks at subnormal steps (a span under about 1e-307) are
		// rounded onto one another, or, where math.Log10 of a subnormal
		// span is inexact (amd64's), fall outside the axis.
		return endTicks(lo, hi)
	}
	const eps = 1e-9 // of a tick's step: 0.98/0.01 is 98.00000000000001
	first, last := math.Ceil(lo/step*parts-eps), math.Floor(hi/step*parts+eps)
	if max(math.Abs(first), math.Abs(last)) > 1e15 {
		// A span under about 1e-15 of the values' size: the ticks'
		// numbers are past float64's integers (first+1 == first), and
		// their values too close to tell apart.
		return endTicks(lo, hi)
	}
	// Exponents for a step past 10^4 (5e7), or one under 0.001 on an
	// axis of values all under it (6e-5); decimals otherwise (1.00005).
	exp := k > 4 || (k < -3 && max(math.Abs(lo), math.Abs(hi)) < 1e-3)
	var ticks []plot.Tick
	for i := first; i <= last; i++ {
		v := i * step / parts
		if math.IsInf(v, 0) { // i·step past the largest float64
			v = i / parts * step
		}
		v = min(max(v, lo), hi)
		if v == 0 {
			v = 0 // not -0
		}
		t := plot.Tick{Value: v}
		if math.Mod(i, parts) == 0 {
			t.Label = linearLabel(math.Round(i/parts)*float64(m), k, exp)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// linearLabel writes n×10^k, n a whole number, with k's decimals (0.80,
// 25, 1.00005), or with an exponent (5e7, 6e-5) where exp is set.
func linearLabel(n float64, k int, exp bool) string {
	v, _ := strconv.ParseFloat(fmt.Sprintf("%.0fe%d", n, k), 64)
	if v == 0 {
		v = 0 // not -0
	}
	if !exp {
		return strconv.FormatFloat(v, 'f', max(0, -k), 64)
	}
	if v == 0 {
		return "0"
	}
	mant, pow, _ := strings.Cut(strconv.FormatFloat(v, 'e', -1, 64), "e")
	e, _ := strconv.Atoi(pow)
	return mant + "e" + strconv.Itoa(e)
}

// endTicks labels an axis at its ends alone, each in full, for a span too
// small for its values' precision or too large for a float64.
func endTicks(lo, hi float64) []plot.Tick {
	ticks := []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', -1, 64)}}
	if hi != lo {
		ticks = append(ticks, plot.Tick{Value: hi, Label: strconv.FormatFloat(hi, 'g', -1, 64)})
	}
	return ticks
}

// linearStep returns the first m of 1, 2 and 5 whose step m×10^k labels
// at most 6 values of [lo, hi], or 0 if none does.
func linearStep(lo, hi float64, k int) int {
	const eps = 1e-9
	for _, m := range []int{1, 2, 5} {
		step := logValue(m, k)
		if math.Floor(hi/step+eps)-math.Ceil(lo/step-eps)+1 <= 6 {
			return m
		}
	}
	return 0
}

// logTicks marks a log axis at 1, 2, …, 9 times each power of ten in its
// range, or at the powers alone when it spans over 8 of them. It labels
// the powers of ten (every second or more on over 8, so that at most 8
// are labelled); where that
// labels fewer than two ticks, it labels 1, 2 and 5 times each power,
// and where that too labels fewer than two, every tick. Labels are exact:
// 0.001 to 90000 written out, 1e-5 and 2e6 beyond. (gonum's LogTicks
// multiplies its way up from the lowest power of ten and labels what it
// reaches: 9.999999999999999e-05, 0.9999999999999998.) A range not
// above 0 panics, as with LogTicks.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0 && hi >= lo) || math.IsInf(hi, 0) {
		// As LogTicks does: drawPanels makes it an error naming the figure.
		panic(fmt.Sprintf("a log axis from %g to %g", lo, hi))
	}
	type mark struct{ i, k int }
	var marks []mark
	for k := int(math.Floor(math.Log10(lo))); k <= int(math.Ceil(math.Log10(hi))); k++ {
		for i := 1; i <= 9; i++ {
			if v := logValue(i, k); v >= lo*(1-1e-9) && v <= hi*(1+1e-9) {
				marks = append(marks, mark{i, k})
			}
		}
	}
	labelled := func(m mark, level int) bool {
		return m.i == 1 || (level == 1 && (m.i == 2 || m.i == 5)) || level == 2
	}
	level, every := 0, 1 // the multiples labelled, and the powers of ten's exponent step
	for ; level < 2; level++ {
		n := 0
		for _, m := range marks {
			if labelled(m, level) {
				n++
			}
		}
		if n >= 2 {
			every = (n + 7) / 8
			break
		}
	}
	var ticks []plot.Tick
	for _, m := range marks {
		if m.i != 1 && every > 1 {
			continue // 8 marks a decade on over 8 decades: a comb, not a scale
		}
		t := plot.Tick{Value: logValue(m.i, m.k)}
		if labelled(m, level) && (m.i != 1 || m.k%every == 0) {
			t.Label = logLabel(m.i, m.k)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// logValue returns i×10^k, rounded once.
func logValue(i, k int) float64 {
	v, _ := strconv.ParseFloat(fmt.Sprintf("%de%d", i, k), 64)
	return v
}

// logLabel writes i×10^k: in full from 0.001 to 90000, as 1e-5 or 2e6
// beyond.
func logLabel(i, k int) string {
	if k < -3 || k > 4 {
		return fmt.Sprintf("%de%d", i, k)
	}
	return strconv.FormatFloat(logValue(i, k), 'f', -1, 64)
}

// Figure draws panels in a grid of cols columns to name (PNG) and adds it
// to the summary.
func (r *Report) Figure(name string, cols int, w, h vg.Length, panels ...Panel) error {
	rows := (len(panels) + cols - 1) / cols
	img := vgimg.New(w*vg.Length(cols), h*vg.Length(rows))
	if err := drawPanels(draw.New(img), cols, panels); err != nil {
		return fmt.Errorf("experiments: %s: %w", name, err)
	}
	f, err := os.Create(r.path(name))
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

// drawPanels draws panels into dc in a grid of cols columns, their axes
// aligned, each legend where it covers none of its panel's curves
// (placeLegend). The plotting library panics on data it cannot draw (a
// value ≤ 0 or a NaN on a log axis, as a diverged run gives); that is
// returned as an error.
func drawPanels(dc draw.Canvas, cols int, panels []Panel) (err error) {
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	curves := make([][]plotter.XYs, len(panels))
	for i, p := range panels {
		if grid[i/cols][i%cols], curves[i], err = p.plot(); err != nil {
			return err
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot draw the figure: %v", r)
		}
	}()
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(6), PadY: vg.Points(6)}
	legends := make([]plot.Legend, len(panels))
	for i := range panels { // drawn apart from their plots, where placeLegend says
		pl := grid[i/cols][i%cols]
		legends[i], pl.Legend = pl.Legend, plot.NewLegend()
	}
	canvases := plot.Align(grid, tiles, dc)
	boxes := make([]vg.Rectangle, len(panels))
	raised := false
	for i := range panels {
		var r bool
		boxes[i], r = placeLegend(grid[i/cols][i%cols], &legends[i], curves[i], canvases[i/cols][i%cols], true)
		raised = raised || r
	}
	if raised { // a raised axis may have new tick labels: align again, and place again
		canvases = plot.Align(grid, tiles, dc)
		for i := range panels {
			boxes[i], _ = placeLegend(grid[i/cols][i%cols], &legends[i], curves[i], canvases[i/cols][i%cols], false)
		}
	}
	for i := range panels {
		c := canvases[i/cols][i%cols]
		grid[i/cols][i%cols].Draw(c)
		legends[i].Draw(draw.Canvas{Canvas: c.Canvas, Rectangle: boxes[i]})
	}
	return nil
}

// legendMargin is the gap a legend keeps from the axes, and from the
// curves when placeLegend makes room for it.
const legendMargin = vg.Length(4)

// legendPlaces are the places placeLegend tries, in order of preference:
// the corners, then the middles of the sides. h is -1 for the left, 0 the
// centre, 1 the right; v is -1 for the bottom, 0 the middle, 1 the top.
var legendPlaces = []struct{ h, v int }{{1, 1}, {-1, 1}, {1, -1}, {-1, -1}, {0, 1}, {0, -1}, {1, 0}, {-1, 0}}

// placeLegend returns the box, inside the data area of pl drawn on c, to
// draw its legend leg in (leg.Top and leg.Left set, no offsets): at the
// first of legendPlaces where the box crosses none of the curves (their
// points in data coordinates), or, where every place crosses one, at the
// top right with the top of the y axis raised to leave the legend room
// above every curve; it reports that raise, which is made only when raise
// is true and leaves the curves half the height at least. With no room
// made the box is where it crosses the fewest curve segments.
func placeLegend(pl *plot.Plot, leg *plot.Legend, curves []plotter.XYs, c draw.Canvas, raise bool) (box vg.Rectangle, raised bool) {
	area := pl.DataCanvas(c)
	size := leg.Rectangle(area).Size()
	if size.Y == 0 {
		return vg.Rectangle{}, false
	}
	// Drawn from the top of its box, a legend's entries start a descent
	// below it and their last one's descenders reach half a descent below
	// the entries' height.
	descent := leg.TextStyle.FontExtents().Descent
	w, h := size.X, size.Y+1.5*descent
	free := area.Size().Sub(vg.Point{X: w + 2*legendMargin, Y: h + 2*legendMargin})
	at := func(horiz, vert int) vg.Rectangle {
		corner := vg.Point{X: area.Min.X + legendMargin + free.X*vg.Length(horiz+1)/2, Y: area.Min.Y + legendMargin + free.Y*vg.Length(vert+1)/2}
		return vg.Rectangle{Min: corner, Max: corner.Add(vg.Point{X: w, Y: h})}
	}
	tx, ty := pl.Transforms(&area)
	crossings := func(box vg.Rectangle) int {
		n := 0
		for _, xy := range curves {
			for i := range xy {
				a := vg.Point{X: tx(xy[i].X), Y: ty(xy[i].Y)}
				b := a
				if i > 0 {
					b = vg.Point{X: tx(xy[i-1].X), Y: ty(xy[i-1].Y)}
				} else if len(xy) > 1 {
					continue // a point of a line is in its segments
				}
				if segmentMeets(box, a, b) {
					n++
				}
			}
		}
		return n
	}
	fewest := -1
	for _, p := range legendPlaces {
		b := at(p.h, p.v)
		if n := crossings(b); fewest < 0 || n < fewest {
			box, fewest = b, n
		}
		if fewest == 0 {
			break
		}
	}
	frac := float64((area.Size().Y - h - 2*legendMargin) / area.Size().Y) // of the height left to the curves
	if fewest > 0 && raise && frac >= 0.5 && pl.Y.Max > pl.Y.Min {
		if _, log := pl.Y.Scale.(plot.LogScale); log {
			pl.Y.Max = pl.Y.Min * math.Pow(pl.Y.Max/pl.Y.Min, 1/frac)
		} else {
			pl.Y.Max = pl.Y.Min + (pl.Y.Max-pl.Y.Min)/frac
		}
		box, raised = at(1, 1), true
	}
	return box, raised
}

// segmentMeets reports whether the segment from a to b has a point in r
// (Liang and Barsky's clipping: the segment's parameter range left inside
// each of r's four half-planes is not empty).
func segmentMeets(r vg.Rectangle, a, b vg.Point) bool {
	t0, t1 := 0.0, 1.0
	d := b.Sub(a)
	for _, s := range [4]struct{ p, q vg.Length }{
		{-d.X, a.X - r.Min.X}, {d.X, r.Max.X - a.X},
		{-d.Y, a.Y - r.Min.Y}, {d.Y, r.Max.Y - a.Y},
	} {
		if s.p == 0 {
			if s.q < 0 {
				return false
			}
			continue
		}
		if t := float64(s.q / s.p); s.p < 0 {
			t0 = max(t0, t)
		} else {
			t1 = min(t1, t)
		}
		if t0 > t1 {
			return false
		}
	}
	return true
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
