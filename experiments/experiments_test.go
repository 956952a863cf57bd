package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// The shattered-gradients experiment in its quick mode. Fig. 1 on the
// circle: the gradients of a one-hidden-layer net are strongly correlated at
// neighbouring inputs (> 0.9; brown noise, spectrum slope < −1), those of a
// 24-layer batch-normalised plain net nearly uncorrelated (|r| < 0.3; white
// noise, slope > −0.7), and a 50-block batch-normalised residual net stays
// well above the plain net (r > 0.5). Of the statistics' claims, the ones
// that hold with a wide margin at 48 initialisations must pass: ¼
// co-activation with batch norm (the mean of 48·32·200 unit indicators, a
// standard error of about 0.001 against a tolerance of 0.02), the rise of
// co-activation without it, and the recursion for neighbours (standard
// error about 0.01 against 0.1). The 2^−L claim needs the full run's
// initialisations to resolve 2^−8 and is only checked to be written.
func TestShatter(t *testing.T) {
	c := QuickShatter()
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
	claims := readClaims(t, dir)
	if len(claims) != 6 {
		t.Fatalf("%d claims, want 6", len(claims))
	}
	for _, i := range []int{0, 2, 3} {
		if claims[i]["pass"] != true {
			t.Errorf("claim %q failed: measured %v", claims[i]["claim"], claims[i]["measured"])
		}
	}
	for _, f := range []string{"gradients.png", "autocorrelation.png", "coactivation.png", "correlation_depth.png", "shatter.json", "summary.md"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}

// readClaims reads dir/claims.json and checks that every claim has the
// fields the issue asks for.
func readClaims(t *testing.T, dir string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "claims.json"))
	if err != nil {
		t.Fatal(err)
	}
	var claims []map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatalf("claims.json: %v", err)
	}
	for _, c := range claims {
		for _, k := range []string{"claim", "source", "measured", "criterion", "pass"} {
			if _, ok := c[k]; !ok {
				t.Errorf("claim %v lacks %q", c["claim"], k)
			}
		}
	}
	return claims
}

// Prince's Fig. 11.6 at He initialisation in the quick mode (6 seeds), MLP
// on Gaussian inputs: residual without normalisation doubles the variance
// per block (log2 slope in [0.8, 1.2]); a plain net and a residual net
// scaled by 1/√2 hold it (seed-mean last over first in [0.5, 2]); batch
// norm at the start of each branch adds about 1 a block (growth per block
// in [0.7, 1.3]). The bands are those a single draw meets (the seed
// spread at width 200 is about ±0.5 in log2 over 12 blocks); the tight
// criteria of claims.json need the default 50 seeds. Circular padding
// keeps a plain conv net's variance better than zero padding, whose border
// pixels sum fewer inputs.
func TestVariance(t *testing.T) {
	c := QuickVariance()
	dir := t.TempDir()
	curves, err := Variance(context.Background(), c, dir)
	if err != nil {
		t.Fatal(err)
	}
	var zero, circ float64
	for _, v := range curves {
		if v.Network == "conv" && v.Width == 64 && v.Variant == Plain {
			if v.Padding == "zero" {
				zero = v.Ratio
			} else {
				circ = v.Ratio
			}
		}
		if v.Network != "mlp" {
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
	if want := 4 * (1 + 2*len(c.Channels)); len(curves) != want {
		t.Errorf("%d curves, want 4 variants × (MLP + 2 paddings × %d channel counts) = %d", len(curves), len(c.Channels), want)
	}
	if !(zero < circ) {
		t.Errorf("64-channel plain conv: last/first %.3f with zero padding, %.3f circular; want zero < circular", zero, circ)
	}
	if n := len(readClaims(t, dir)); n != 12 {
		t.Errorf("%d claims, want 12 (MLP and 64 channels × 2 paddings, 4 variants each)", n)
	}
}

// A variance configuration without blocks is an error naming them, not a
// panic in the plotting library.
func TestVarianceRefusesNoBlocks(t *testing.T) {
	for _, blocks := range []int{0, -1} {
		c := QuickVariance()
		c.Blocks = blocks
		_, err := Variance(context.Background(), c, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("got %d blocks", blocks)) {
			t.Errorf("%d blocks: %v", blocks, err)
		}
	}
}

// One seed is refused before any measurement: the figure draws the spread
// over the seeds on a log scale, which failed at the end with a spread of
// 0, leaving a partial folder.
func TestVarianceRefusesOneSeed(t *testing.T) {
	c := QuickVariance()
	c.Seeds = 1
	dir := filepath.Join(t.TempDir(), "out")
	_, err := Variance(context.Background(), c, dir)
	if err == nil || !strings.Contains(err.Error(), "2 seeds") || !strings.Contains(err.Error(), "1 seeds") {
		t.Errorf("1 seed: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the refused experiment wrote %s (%v)", dir, err)
	}
}

// The counts are checked against independent ones: parameters against
// torchvision's model table and by hand, multiply-adds by hand for the
// blocks; the networks' multiply-adds are claims checked against the paper
// and torchvision in claims.json, all of which must pass (counting is
// deterministic).
func TestBottleneck(t *testing.T) {
	dir := t.TempDir()
	res, err := Bottleneck(dir)
	if err != nil {
		t.Fatal(err)
	}
	// 64-d basic: 2·(9·64·64) + 2·2·64 (BN) = 73,984 parameters and
	// 2·9·64·64·56² = 231,211,008 multiply-adds; the bottleneck:
	// 256·64 + 9·64·64 + 64·256 + BN (2·64 + 2·64 + 2·256) = 70,400 and
	// 69,632·56² = 218,365,952; 256-d basic: 2·(9·256·256) + 2·2·256 =
	// 1,180,672.
	b := res.Blocks
	if b[0].Params != 73984 || b[1].Params != 70400 || b[2].Params != 1180672 {
		t.Errorf("block parameters %d, %d, %d", b[0].Params, b[1].Params, b[2].Params)
	}
	if b[0].MultAdds != 231211008 || b[1].MultAdds != 218365952 {
		t.Errorf("block multiply-adds %d, %d", b[0].MultAdds, b[1].MultAdds)
	}
	// torchvision: resnet18 11,689,512, resnet34 21,797,672, resnet50
	// 25,557,032, resnet101 44,549,160, resnet152 60,192,808; v1 moves a
	// stride and keeps every parameter.
	want := []int{11689512, 21797672, 25557032, 25557032, 44549160, 44549160, 60192808, 60192808}
	for i, n := range res.Networks {
		if n.Params != want[i] {
			t.Errorf("%s: %d parameters, want %d", n.Name, n.Params, want[i])
		}
	}
	for _, c := range readClaims(t, dir) {
		if c["pass"] != true {
			t.Errorf("claim %q failed: measured %v, criterion %v", c["claim"], c["measured"], c["criterion"])
		}
	}
}

// cancelAtCheck is a context cancelled by its n-th Err check, so that a
// test can stop an experiment at a point of its work.
type cancelAtCheck struct {
	context.Context
	cancel context.CancelFunc
	n      atomic.Int64
}

func newCancelAtCheck(n int64) *cancelAtCheck {
	c := &cancelAtCheck{}
	c.Context, c.cancel = context.WithCancel(context.Background())
	c.n.Store(n)
	return c
}

func (c *cancelAtCheck) Err() error {
	if c.n.Add(-1) == 0 {
		c.cancel()
	}
	return c.Context.Err()
}

// folderHolds checks that dir holds exactly the entries of want, files
// with their contents where want gives one ("" for any), and that no
// staging folder is left beside it.
func folderHolds(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got, names []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	for name, content := range want {
		names = append(names, name)
		if content == "" {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != content {
			t.Errorf("%s holds %.40q (%v), want %q", name, b, err, content)
		}
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
	for _, d := range []string{dir + ".partial", dir + ".old"} {
		if _, err := os.Lstat(d); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", d, err)
		}
	}
}

// An experiment stopped midway leaves its output folder as the run before
// left it (and no staging folder); one that finishes replaces the folder
// as a whole. Shatter, quick, is stopped in its statistics, after drawing
// Fig. 1's two figures, which went straight into the folder beside the
// earlier run's numbers and summary; a small variance run in the same
// folder is refused, as it would replace shatter's results; over an
// earlier variance run's files it finishes, and they are gone, the ones
// it did not write too. An earlier run left in OUT.old by a Close cut short
// is put back. A folder that holds a file no experiment writes is refused
// and left as it is.
func TestStoppedExperimentKeepsTheEarlierRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	earlier := map[string]string{"summary.md": "# Shattered gradients\n\nthe earlier run\n", "claims.json": "[]\n", "shatter.json": "{}\n", "gradients.png": "earlier", "spread.png": "earlier"}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range earlier {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Fig. 1 checks the context once for each of its 12 networks.
	ctx := newCancelAtCheck(13)
	if _, err := Shatter(ctx, QuickShatter(), dir); !errors.Is(err, context.Canceled) {
		t.Fatalf("shatter stopped: %v", err)
	}
	if ctx.n.Load() > 0 {
		t.Fatalf("shatter stopped before it drew Fig. 1 (%d checks to go)", ctx.n.Load())
	}
	folderHolds(t, dir, earlier)

	// Another experiment would replace shatter's results: refused.
	c := QuickVariance()
	c.Blocks, c.Channels, c.Seeds = 2, nil, 2
	if _, err := Variance(context.Background(), c, dir); err == nil || !strings.Contains(err.Error(), "another experiment (\"Shattered gradients\")") {
		t.Errorf("variance over shatter's results: %v", err)
	}
	folderHolds(t, dir, earlier)

	// An earlier variance run's files are replaced as a whole, the ones
	// the new run does not write too.
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte("# Activation variance at initialisation\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Variance(context.Background(), c, dir); err != nil {
		t.Fatal(err)
	}
	folderHolds(t, dir, map[string]string{"summary.md": "", "claims.json": "", "variance.json": "", "variance.png": ""})

	// A run that ended between Close's two renames (the earlier run in
	// OUT.old, none in OUT) is put back by the next one, here stopped.
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Variance(stopped, c, dir); !errors.Is(err, context.Canceled) {
		t.Fatalf("variance stopped: %v", err)
	}
	folderHolds(t, dir, map[string]string{"summary.md": "", "claims.json": "", "variance.json": "", "variance.png": ""})

	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Variance(context.Background(), c, dir); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Errorf("a folder holding notes.txt: %v", err)
	}
	folderHolds(t, dir, map[string]string{"summary.md": "", "claims.json": "", "variance.json": "", "variance.png": "", "notes.txt": "mine"})
}

// A finished run whose Close cannot move the earlier run aside (--out a
// mount point, or a folder another program holds open) keeps its outputs
// in OUT.partial and says so, the earlier run staying in OUT: the
// experiment's deferred abandon removed them, the whole run lost. A run
// started again then refuses to remove them.
func TestCloseFailureKeepsTheFinishedRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	const earlier = "# Numbers\n\nthe earlier run\n"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(earlier), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(f func(string, string) error) { rename = f }(rename)
	rename = func(from, to string) error {
		if to == dir+".old" {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: syscall.EBUSY}
		}
		return os.Rename(from, to)
	}
	r, err := NewReport(dir, "Numbers")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.JSON("numbers.json", []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	err = r.Close()
	r.abandon() // as every experiment defers it
	if err == nil || !strings.Contains(err.Error(), "the finished run is in "+dir+".partial") {
		t.Errorf("Close unable to move the earlier run aside: %v, want an error naming where the finished run is", err)
	}
	for _, name := range []string{"summary.md", "numbers.json"} {
		if _, err := os.Stat(filepath.Join(dir+".partial", name)); err != nil {
			t.Errorf("the finished run's %s: %v", name, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "summary.md")); err != nil || string(b) != earlier {
		t.Errorf("the earlier run's summary.md: %.40q, %v", b, err)
	}
	// The next run, which removed OUT.partial to start afresh, refuses
	// to while it holds that finished run.
	rename = os.Rename
	if _, err := NewReport(dir, "Numbers"); err == nil || !strings.Contains(err.Error(), dir+".partial holds a finished run") {
		t.Errorf("a run started over the finished one in OUT.partial: %v", err)
	}
	for _, name := range []string{"summary.md", "numbers.json"} {
		if _, err := os.Stat(filepath.Join(dir+".partial", name)); err != nil {
			t.Errorf("after a run started over it, the finished run's %s: %v", name, err)
		}
	}
}

// A folder holding files that no finished experiment left (figures and
// notes of the user's own: *.png, *.md and *.json without a summary.md)
// is refused and left as it is: it was taken, and replaced as a whole,
// its files removed, when the run finished. One holding only runs/ (a
// training experiment stopped before its runs waited in OUT.partial) is
// taken, for --resume to continue.
func TestReportRefusesFilesOfNoExperiment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plots")
	mine := map[string]string{"loss.png": "mine", "notes.md": "mine", "numbers.json": "{}"}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range mine {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewReport(dir, "Shattered gradients"); err == nil || !strings.Contains(err.Error(), "but no summary.md") {
		t.Errorf("a folder of the user's figures and notes: %v", err)
	}
	folderHolds(t, dir, mine)

	stopped := filepath.Join(t.TempDir(), "order")
	if err := os.MkdirAll(filepath.Join(stopped, "runs", "post-seed1"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := newReport(stopped, "Block orderings (He et al. 2016, Table 2)", true, true)
	if err != nil {
		t.Fatalf("a stopped training experiment's runs/ alone: %v", err)
	}
	if _, err := os.Stat(r.path("runs", "post-seed1")); err != nil {
		t.Errorf("the runs to resume: %v", err)
	}
}

// A stopped training experiment's runs in OUT.partial/runs/ (what
// --resume continues) are refused, and left as they are, by an experiment
// that trains nothing given the same --out, and by another training
// experiment: both removed them to start their own run. The refusal names
// the folder and the experiment that left them. The experiment itself
// takes them: without --resume to start over, with it to continue.
func TestReportKeepsAnotherExperimentsStoppedRuns(t *testing.T) {
	const order = "Block orderings (He et al. 2016, Table 2)"
	const degradation = "Degradation: plain against residual networks"
	dir := filepath.Join(t.TempDir(), "order")
	ck := filepath.Join(dir+".partial", "runs", "post-seed1", "last.safetensors")
	stop := func(marked bool) {
		t.Helper()
		if marked {
			r, err := newReport(dir, order, true, false)
			if err != nil {
				t.Fatal(err)
			}
			defer r.abandon() // as the stopped experiment did
		}
		if err := os.MkdirAll(filepath.Dir(ck), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ck, []byte("weights"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kept := func(what string) {
		t.Helper()
		if b, err := os.ReadFile(ck); err != nil || string(b) != "weights" {
			t.Errorf("%s: the stopped run's checkpoint %q, %v", what, b, err)
		}
	}
	stop(true)
	for _, tc := range []struct {
		what           string
		title          string
		trains, resume bool
	}{
		{"shatter", "Shattered gradients", false, false},
		{"degradation", degradation, true, false},
		{"degradation --resume", degradation, true, true},
	} {
		_, err := newReport(dir, tc.title, tc.trains, tc.resume)
		if want := dir + ".partial holds the runs of a stopped experiment (\"" + order + "\")"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s over order's stopped runs: %v, want an error saying %q", tc.what, err, want)
		}
		kept(tc.what)
	}
	r, err := newReport(dir, order, true, true)
	if err != nil {
		t.Fatalf("order --resume over its own stopped runs: %v", err)
	}
	kept("order --resume")
	r.abandon()

	// Runs from before the staging folder recorded its experiment name
	// none: an experiment that trains nothing refuses them, a training
	// one takes them as its own.
	if err := os.Remove(filepath.Join(dir+".partial", startedBy)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewReport(dir, "Shattered gradients"); err == nil || !strings.Contains(err.Error(), dir+".partial holds the runs of a stopped experiment (a training experiment") {
		t.Errorf("shatter over unnamed stopped runs: %v", err)
	}
	kept("shatter over unnamed runs")
	if _, err := newReport(dir, degradation, true, true); err != nil {
		t.Errorf("degradation --resume over unnamed stopped runs: %v", err)
	}
	kept("degradation --resume over unnamed runs")

	// So is a runs/ alone in --out (a training experiment stopped before
	// its runs waited in OUT.partial).
	if err := os.RemoveAll(dir + ".partial"); err != nil {
		t.Fatal(err)
	}
	ck = filepath.Join(dir, "runs", "post-seed1", "last.safetensors")
	stop(false)
	if _, err := NewReport(dir, "Shattered gradients"); err == nil || !strings.Contains(err.Error(), dir+" holds the runs of a stopped training experiment") {
		t.Errorf("shatter over a --out holding runs/ alone: %v", err)
	}
	kept("shatter over a --out holding runs/ alone")
}

// Close leaves no trace of the name a training experiment's staging
// folder records while it runs: the summary records it.
func TestCloseRemovesTheStartedMark(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	r, err := newReport(dir, "Numbers", true, false)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(r.path(startedBy)); err != nil || string(b) != "# Numbers\n" {
		t.Errorf("the staging folder's %s: %q, %v", startedBy, b, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	folderHolds(t, dir, map[string]string{"summary.md": "# Numbers\n\n"})
}

// A Close that cannot write summary.md leaves the staging folder's mark:
// the runs there still name their experiment, and another training
// experiment given the same --out refuses them. Close removed the mark
// first, and the runs, named by nothing, were taken by any training
// experiment, whose start removed them.
func TestFailedCloseKeepsTheStartedMark(t *testing.T) {
	const order = "Block orderings (He et al. 2016, Table 2)"
	dir := filepath.Join(t.TempDir(), "order")
	r, err := newReport(dir, order, true, false)
	if err != nil {
		t.Fatal(err)
	}
	ck := r.path(filepath.Join("runs", "post-seed1", "last.safetensors"))
	if err := os.MkdirAll(filepath.Dir(ck), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ck, []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(r.path("summary.md"), 0o755); err != nil { // what WriteFile cannot replace
		t.Fatal(err)
	}
	if err := r.Close(); err == nil {
		t.Fatal("Close wrote summary.md over a folder")
	}
	r.abandon()
	if err := os.Remove(r.path("summary.md")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(r.path(startedBy)); err != nil || string(b) != "# "+order+"\n" {
		t.Errorf("after a failed Close, the staging folder's %s: %q, %v", startedBy, b, err)
	}
	_, err = newReport(dir, "Degradation: plain against residual networks", true, false)
	if want := "holds the runs of a stopped experiment (\"" + order + "\")"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("degradation over order's runs after a failed Close: %v, want an error saying %q", err, want)
	}
	if b, err := os.ReadFile(ck); err != nil || string(b) != "weights" {
		t.Errorf("the run's checkpoint: %q, %v", b, err)
	}
}
