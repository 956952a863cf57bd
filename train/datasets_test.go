package train

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/residual-nn/residual/internal/fixture"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/safetensors"
)

// Data sets in memory train like the named set they were cut from: the
// same run on MNIST's first 256 images, opened by name or given as
// TrainSet and TestSet, gives the same step losses, one per step; and one
// set without the other is refused.
func TestInMemoryDataSets(t *testing.T) {
	ctx := context.Background()
	named := tiny(t.TempDir())
	named.Epochs, named.ValSplit = 1, 0
	a, err := Run(ctx, named)
	if err != nil {
		t.Fatal(err)
	}
	tr, te, err := data.MNIST()
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, 256)
	for i := range idx {
		idx[i] = i
	}
	mem := named
	mem.Out, mem.Data, mem.Limit = t.TempDir(), "mnist's first 256 (in memory)", 0
	mem.TrainSet, mem.TestSet = tr.Subset(idx), te.Subset(idx)
	b, err := Run(ctx, mem)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.StepLoss) != 8 || len(b.StepLoss) != 8 { // 256 images, batch 32
		t.Fatalf("%d and %d step losses, want 8", len(a.StepLoss), len(b.StepLoss))
	}
	for i := range a.StepLoss {
		if a.StepLoss[i] != b.StepLoss[i] {
			t.Fatalf("step %d: loss %g by name, %g in memory", i+1, a.StepLoss[i], b.StepLoss[i])
		}
	}
	half := mem
	half.TestSet = nil
	if _, err := Run(ctx, half); err == nil || !strings.Contains(err.Error(), "TrainSet and TestSet") {
		t.Errorf("a training set without a test set: %v", err)
	}
}

// Data sets given in memory are checked before training: each valid, not
// empty, and the two agreeing in channels, size and classes. A mismatch
// once crashed the loader's goroutine (channels, short pixels) or the
// evaluation (more test classes).
func TestInMemoryDataSetsChecked(t *testing.T) {
	set := func(n, h, c int, classes ...string) *data.Dataset {
		return &data.Dataset{H: h, W: h, C: c, Pixels: make([]uint8, n*h*h*c), Labels: make([]int32, n), Classes: classes}
	}
	short := set(8, 8, 1, "a", "b")
	short.Pixels = short.Pixels[:10]
	same := set(8, 8, 1, "a", "b")
	for _, tc := range []struct {
		train, test *data.Dataset
		want        string
	}{
		{set(8, 8, 1, "a", "b"), set(4, 8, 3, "a", "b"), "the training and test images differ in channels (1 and 3)"},
		{short, set(4, 8, 1, "a", "b"), "the training set: data: 10 pixel values for 8 images"},
		{set(8, 8, 1, "a", "b"), set(4, 8, 1, "a", "b", "c"), `classes ["a" "b"] differ from the test set's ["a" "b" "c"]`},
		{set(8, 8, 1, "a", "b"), set(0, 8, 1, "a", "b"), "the test set is empty"},
		{same, same, "Config.TrainSet and TestSet are the same data set"},
		{set(8, 8, 2, "a", "b"), set(4, 8, 2, "a", "b"), "2 channels; residual trains on 1 (grey) or 3 (RGB)"},
	} {
		cfg := tiny(t.TempDir())
		cfg.TrainSet, cfg.TestSet, cfg.Data, cfg.ValSplit, cfg.Limit = tc.train, tc.test, "in memory", 0, 0
		if _, err := Prepare(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error with %q, got %v", tc.want, err)
		}
	}
}

// Config.Validate refuses values that would train nonsense or fail late:
// an infinite learning rate, a NaN or out-of-range momentum, weight decay
// or validation split, a negative limit, Nesterov without momentum (which
// failed at Prepare, not as ErrConfig), no run folder, named by its field,
// no model (which Prepare refused only after reading the data, as a
// config "" that "describes no network"), and SGD's momentum or Nesterov
// with Adam or AdamW (which ignored them).
func TestConfigValidateRanges(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.LR = inf }, "learning rate"},
		{func(c *Config) { c.Momentum = nan }, "momentum"},
		{func(c *Config) { c.Momentum = -1 }, "momentum"},
		{func(c *Config) { c.Momentum = 5 }, "momentum"},
		{func(c *Config) { c.WeightDecay = nan }, "weight decay"},
		{func(c *Config) { c.WeightDecay = -1 }, "weight decay"},
		{func(c *Config) { c.ValSplit = nan }, "validation split"},
		{func(c *Config) { c.Limit = -5 }, "limit"},
		{func(c *Config) { c.Nesterov, c.Momentum = true, 0 }, "--nesterov (Config.Nesterov) needs --momentum (Config.Momentum) > 0"},
		{func(c *Config) { c.Out = "" }, "no run folder: --out (Config.Out) is empty"},
		{func(c *Config) { c.Model = models.Config{} }, "no model: Config.Model is empty"},
		// Adam and AdamW ignored SGD's settings.
		{func(c *Config) { c.Optimizer = Adam }, "--momentum (Config.Momentum) 0.9 has no effect with --optimizer (Config.Optimizer) adam, whose betas"},
		{func(c *Config) { c.Optimizer, c.Momentum, c.Nesterov = AdamW, 0, true }, "--nesterov (Config.Nesterov) has no effect with --optimizer (Config.Optimizer) adamw"},
	} {
		cfg := tiny(t.TempDir())
		tc.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error about %s, got %v", tc.want, err)
		}
	}
	cfg := tiny(t.TempDir())
	if err := cfg.Validate(); err != nil {
		t.Errorf("the tiny config: %v", err)
	}
	cfg.Model, cfg.Init = models.Config{}, "start.safetensors" // the checkpoint's network
	if err := cfg.Validate(); err != nil {
		t.Errorf("no model but an init checkpoint: %v", err)
	}
}

// A folder read with skip-bad whose file has a good header and cut pixel
// data counts it when opened and leaves it out of every epoch: each
// epoch's line, Metrics.Skipped and metrics.jsonl say how many were left
// out (the count of the set's images included them, silently).
func TestUnreadableFilesCounted(t *testing.T) {
	var warnings strings.Builder
	opts := &data.ImageOptions{Channels: 1, ImageSize: 8, SkipBadImages: true, Log: &warnings}
	train, test := openFolders(t, 4, true, opts)
	if train.Len() != 9 {
		t.Fatalf("the training folder opens with %d images, want 9 (the cut one's header is good)", train.Len())
	}
	var log strings.Builder
	cfg := folderConfig(t, train, test, 4, &log)
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.History {
		if m.Skipped != 1 {
			t.Errorf("epoch %d: Skipped %d, want 1", m.Epoch, m.Skipped)
		}
	}
	if n := strings.Count(log.String(), "(1 unreadable file left out)"); n != cfg.Epochs {
		t.Errorf("%d epoch lines say the file was left out, want %d:\n%s", n, cfg.Epochs, log.String())
	}
	if b, err := os.ReadFile(filepath.Join(cfg.Out, metricsFile)); err != nil || strings.Count(string(b), `"skipped":1`) != cfg.Epochs {
		t.Errorf("metrics.jsonl: %v\n%s", err, b)
	}
	if !strings.Contains(warnings.String(), "cut.png") {
		t.Errorf("no warning names the file: %q", warnings.String())
	}
	// On two ranks the file is in one rank's share of each epoch; the
	// count is summed, so every rank's history says 1.
	cfg.Out, cfg.Batch = t.TempDir(), 2
	for r, run := range runRanks(t, context.Background(), cfg, 2, nil) {
		if run.err != nil {
			t.Fatalf("rank %d: %v", r, run.err)
		}
		for _, m := range run.res.History {
			if m.Skipped != 1 {
				t.Errorf("rank %d, epoch %d: Skipped %d, want 1 (summed over the ranks)", r, m.Epoch, m.Skipped)
			}
		}
	}
}

// openFolders opens a training folder of imageFolder(n, bad) and a test
// folder of imageFolder(2, false) with opts.
func openFolders(t *testing.T, n int, bad bool, opts *data.ImageOptions) (train, test *data.Dataset) {
	t.Helper()
	train, err := data.FolderWith(context.Background(), imageFolder(t, n, bad), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	test, err = data.FolderWith(context.Background(), imageFolder(t, 2, false), opts, train.Classes)
	if err != nil {
		t.Fatal(err)
	}
	return train, test
}

// folderConfig is tiny's run on the two classes of openFolders' train
// and test sets, all of train for training and test for validating, in
// batches of batch, logging to log.
func folderConfig(t *testing.T, train, test *data.Dataset, batch int, log io.Writer) Config {
	cfg := tiny(t.TempDir())
	cfg.Model.Arch.(*models.ResNet).Config.Classes = 2
	cfg.Data, cfg.TrainSet, cfg.TestSet, cfg.Limit, cfg.ValSplit, cfg.Batch, cfg.Log = "two folders", train, test, 0, 0, batch, log
	return cfg
}

// imageFolder writes classes p and q of n grey 8×8 PNGs each, and with bad
// p/cut.png, whose header is good and whose pixel data is cut short.
func imageFolder(t *testing.T, n int, bad bool) string {
	dir := t.TempDir()
	for _, class := range []string{"p", "q"} {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			img := image.NewGray(image.Rect(0, 0, 8, 8))
			for j := range img.Pix {
				img.Pix[j] = uint8(i*30 + j + len(class))
			}
			var b bytes.Buffer
			if err := png.Encode(&b, img); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, class, fmt.Sprintf("%d.png", i)), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if bad {
		corrupt(t, filepath.Join(dir, "p", "cut.png"))
	}
	return dir
}

// On two ranks a file that cannot be read (no skip-bad) stops every rank
// at the step where one rank's loader failed, that rank naming the file
// and the other ErrOtherRank: the failing rank went to agree's all-reduce
// while the other waited in its step's, for ever — and with SyncBN, in the
// batch norms' all-reduces of its forward pass.
func TestDataParallelUnreadableFileStopsEveryRank(t *testing.T) {
	for _, syncBN := range []bool{false, true} {
		t.Run(fmt.Sprintf("syncbn=%v", syncBN), func(t *testing.T) {
			opts := &data.ImageOptions{Channels: 1, ImageSize: 8}
			train, test := openFolders(t, 4, true, opts)
			cfg := folderConfig(t, train, test, 2, io.Discard)
			cfg.SyncBN = syncBN
			runs := runRanksWithin(t, 60*time.Second, cfg, 2)
			named := 0
			for r, run := range runs {
				switch {
				case run.err != nil && strings.Contains(run.err.Error(), "cut.png"):
					named++
				case !errors.Is(run.err, ErrOtherRank):
					t.Errorf("rank %d: %v; want the file named or ErrOtherRank", r, run.err)
				}
			}
			if named != 1 {
				t.Errorf("%d ranks named the unreadable file, want 1", named)
			}
		})
	}
}

// With skip-bad and a batch of one image, the unreadable file's batch is
// empty: the step is skipped (on two ranks, by every rank, with and
// without SyncBN, whose all-reduces the empty rank could not join), the
// file counted, and the run goes on. It stopped with "no image of batch
// N could be read".
func TestEmptyBatchSkipped(t *testing.T) {
	opts := &data.ImageOptions{Channels: 1, ImageSize: 8, SkipBadImages: true, Log: io.Discard}
	train, test := openFolders(t, 4, true, opts)
	var log strings.Builder
	cfg := folderConfig(t, train, test, 1, &log)
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := cfg.Epochs * (train.Len() - 1); len(res.StepLoss) != want {
		t.Errorf("%d steps, want %d (%d epochs of %d batches, one empty)", len(res.StepLoss), want, cfg.Epochs, train.Len())
	}
	for _, m := range res.History {
		if m.Skipped != 1 {
			t.Errorf("epoch %d: Skipped %d, want 1", m.Epoch, m.Skipped)
		}
	}
	if n := strings.Count(log.String(), "no file of the batch could be read; the step is skipped"); n != cfg.Epochs {
		t.Errorf("%d lines say a step was skipped, want %d:\n%s", n, cfg.Epochs, log.String())
	}
	// Stopped after every step but an epoch's last (by its progress line)
	// and resumed: the count of an epoch cut short is kept in its
	// checkpoint (checkpoint.Partial.Skipped) and the resumed epoch counts
	// it.
	stopped := cfg
	stopped.Out = t.TempDir()
	runs := 0
	for ; runs < 40; runs++ {
		ctx, cancel := context.WithCancel(context.Background())
		stopped.Log = &cancelAfter{text: "ETA", cancel: cancel}
		res, err = Run(ctx, stopped)
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("run %d: %v", runs+1, err)
		}
		stopped.Resume = true
	}
	if err != nil || runs < cfg.Epochs*(train.Len()-2) {
		t.Fatalf("%d runs, the last %v; want one a step", runs+1, err)
	}
	for _, m := range res.History {
		if m.Skipped != 1 {
			t.Errorf("resumed at every step: epoch %d: Skipped %d, want 1", m.Epoch, m.Skipped)
		}
	}
	want := weights(t, filepath.Join(cfg.Out, LastCheckpoint))
	for k, v := range weights(t, filepath.Join(stopped.Out, LastCheckpoint)) {
		if !slices.Equal(v, want[k]) {
			t.Errorf("resumed at every step, %s differs from the run's in one go", k)
		}
	}
	for _, syncBN := range []bool{false, true} {
		t.Run(fmt.Sprintf("ranks=2,syncbn=%v", syncBN), func(t *testing.T) {
			var log strings.Builder
			cfg.Out, cfg.SyncBN, cfg.Log = t.TempDir(), syncBN, &log
			runs := runRanksWithin(t, 60*time.Second, cfg, 2)
			for r, run := range runs {
				if run.err != nil {
					t.Fatalf("rank %d: %v", r, run.err)
				}
			}
			sameRanks(t, runs)
			// Each epoch's 9 files are shared as 5 a rank (one repeated):
			// the file is in 1 or 2 of its 5 steps, each skipped.
			skipped := strings.Count(log.String(), "every rank skips the step")
			if skipped < cfg.Epochs || len(runs[0].res.StepLoss)+skipped != cfg.Epochs*5 {
				t.Errorf("%d steps taken and %d skipped, want %d in all, at least one skipped an epoch:\n%s", len(runs[0].res.StepLoss), skipped, cfg.Epochs*5, log.String())
			}
			for _, m := range runs[0].res.History {
				if m.Skipped < 1 {
					t.Errorf("epoch %d: Skipped %d, want ≥ 1", m.Epoch, m.Skipped)
				}
			}
		})
	}
}

// A skipped step advances the learning-rate schedule, as PyTorch's loop
// calls scheduler.step() every iteration whatever GradScaler skips: a run
// of 9 batches an epoch, one of them unreadable, ends at the learning rate
// of the same run on 9 readable files (multistep:17, its milestone at the
// 18th batch), where it ended a milestone short (0.05 against 0.005);
// stopped after every step and resumed, it ends the same way.
func TestSkippedStepAdvancesSchedule(t *testing.T) {
	opts := &data.ImageOptions{Channels: 1, ImageSize: 8, SkipBadImages: true, Log: io.Discard}
	bad := imageFolder(t, 4, true)
	clean := imageFolder(t, 4, true)
	good, err := os.ReadFile(filepath.Join(clean, "p", "0.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(clean, "p", "cut.png"), good, 0o644); err != nil {
		t.Fatal(err)
	}
	test, err := data.FolderWith(context.Background(), imageFolder(t, 2, false), opts, []string{"p", "q"})
	if err != nil {
		t.Fatal(err)
	}
	lastLR := func(dir string, stopEveryStep bool) (float64, int) {
		t.Helper()
		train, err := data.FolderWith(context.Background(), dir, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := folderConfig(t, train, test, 1, io.Discard)
		cfg.Schedule = Schedule{Steps: "multistep:17"}
		for range 40 {
			ctx, cancel := context.WithCancel(context.Background())
			if stopEveryStep {
				cfg.Log = &cancelAfter{text: "ETA", cancel: cancel}
			}
			tr, err := Prepare(ctx, cfg)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			res, err := tr.Train(ctx)
			cancel()
			if err == nil {
				return tr.r.opt.LR(0), len(res.StepLoss)
			}
			if !errors.Is(err, ErrInterrupted) {
				t.Fatal(err)
			}
			cfg.Resume = true
		}
		t.Fatal("40 runs did not finish")
		return 0, 0
	}
	want, n := lastLR(clean, false)
	if n != 18 || math.Abs(want-0.005) > 1e-12 {
		t.Fatalf("the clean run: %d steps, last learning rate %g; want 18, 0.005", n, want)
	}
	for _, stop := range []bool{false, true} {
		if got, n := lastLR(bad, stop); n != 16 || got != want {
			t.Errorf("stopped at every step %v: %d steps taken, learning rate %g after them; want 16, %g (the clean run's)", stop, n, got, want)
		}
	}
}

// runRanksWithin is runRanks with a context.Background, failing the test
// when the ranks have not all returned within d (a rank waiting in a
// collective another never joins).
func runRanksWithin(t *testing.T, d time.Duration, cfg Config, size int) []rankRun {
	t.Helper()
	done := make(chan []rankRun, 1)
	go func() { done <- runRanks(t, context.Background(), cfg, size, nil) }()
	select {
	case runs := <-done:
		return runs
	case <-time.After(d):
		t.Fatalf("the ranks did not stop within %v (one waits in a collective another never joins)", d)
		return nil
	}
}

// corrupt writes file as a PNG whose header is good and whose pixel data
// is cut short (over a file of a folder already opened: openFolders).
func corrupt(t *testing.T, file string) {
	t.Helper()
	if err := os.WriteFile(file, fixture.CutPNG(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// shardFiles returns the files of rank's share of epoch 0 on size ranks, in
// the order the trainer takes them (the Sampler it makes).
func shardFiles(t *testing.T, cfg Config, rank, size int) []string {
	t.Helper()
	s, err := distributed.NewSampler(distributed.Sampler{N: cfg.TrainSet.Len(), Rank: rank, Size: size, Shuffle: true, Seed: cfg.Seed})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, i := range s.Indices(0) {
		files = append(files, cfg.TrainSet.Files[i])
	}
	return files
}

// Both ranks' loaders fail, rank 0's at its second step and rank 1's at
// its third, which rank 1 has made ahead when it learns of rank 0's
// failure: each names its file or the other rank. Rank 1 also announced
// its own failure in a batch status the others never joined (mismatched
// collectives: "collective 17 is AllReduceSum … AllReduceSumFloat64").
func TestDataParallelTwoRanksUnreadable(t *testing.T) {
	train, test := openFolders(t, 8, false, &data.ImageOptions{Channels: 1, ImageSize: 8})
	cfg := folderConfig(t, train, test, 1, io.Discard)
	bad := []string{shardFiles(t, cfg, 0, 2)[1], shardFiles(t, cfg, 1, 2)[2]}
	for _, f := range bad {
		corrupt(t, f)
	}
	for r, run := range runRanksWithin(t, 60*time.Second, cfg, 2) {
		// One line: a mismatched collective's error is joined to the file's.
		if run.err == nil || strings.Contains(run.err.Error(), "\n") || !strings.Contains(run.err.Error(), bad[r]) && !errors.Is(run.err, ErrOtherRank) {
			t.Errorf("rank %d: %v; want %s named or ErrOtherRank, alone", r, run.err, bad[r])
		}
	}
}

// Rank 1 is told to stop from the start and its first step has no
// readable file: both ranks stop after that skipped step and, resumed,
// end as the run never stopped, bit for bit, with the same counts.
func TestDataParallelStopAtSkippedStep(t *testing.T) {
	for _, syncBN := range []bool{false, true} {
		t.Run(fmt.Sprintf("syncbn=%v", syncBN), func(t *testing.T) {
			train, test := openFolders(t, 8, false, &data.ImageOptions{Channels: 1, ImageSize: 8, SkipBadImages: true, Log: io.Discard})
			cfg := folderConfig(t, train, test, 1, io.Discard)
			cfg.SyncBN = syncBN
			corrupt(t, shardFiles(t, cfg, 1, 2)[0])
			whole := runRanksWithin(t, 60*time.Second, cfg, 2)
			for r, run := range whole {
				if run.err != nil {
					t.Fatalf("rank %d: %v", r, run.err)
				}
			}
			stopped := cfg
			stopped.Out = t.TempDir()
			cancelled, cancel := context.WithCancel(context.Background())
			cancel()
			errs, steps := stopRank1(t, stopped, cancelled)
			for r, err := range errs {
				if !errors.Is(err, ErrInterrupted) || steps[r] != 0 {
					t.Fatalf("rank %d: %v after %d steps; want ErrInterrupted after the skipped one", r, err, steps[r])
				}
			}
			stopped.Resume = true
			resumed := runRanksWithin(t, 60*time.Second, stopped, 2)
			for r, run := range resumed {
				if run.err != nil {
					t.Fatalf("resumed rank %d: %v", r, run.err)
				}
			}
			if _, dw := compareRuns(t, rankRun{state: resumed[0].state}, rankRun{state: whole[0].state}); dw != 0 || !slices.Equal(resumed[0].res.StepLoss, whole[0].res.StepLoss) {
				t.Errorf("resumed: the weights differ by %g, or the step losses do", dw)
			}
			for i, m := range whole[0].res.History {
				if got := resumed[0].res.History[i].Skipped; got != m.Skipped || m.Skipped < 1 {
					t.Errorf("epoch %d: Skipped %d uninterrupted, %d resumed; want the same, ≥ 1", i+1, m.Skipped, got)
				}
			}
		})
	}
}

// A validation (and test) set of which no file can be read, with
// skip-bad, stops the run before training, naming the set: it measured
// 0 loss and 0% accuracy, every epoch, then stopped the run at its first
// validation.
func TestNothingReadableToEvaluate(t *testing.T) {
	opts := &data.ImageOptions{Channels: 1, ImageSize: 8, SkipBadImages: true, Log: io.Discard}
	train, test := openFolders(t, 4, false, opts)
	for _, f := range test.Files {
		corrupt(t, f)
	}
	cfg := folderConfig(t, train, test, 2, io.Discard)
	if _, err := Run(context.Background(), cfg); !errors.Is(err, errNothingEvaluated) || !strings.Contains(err.Error(), "validation set (read before training)") {
		t.Errorf("one process: %v; want the validation set to have no image read, before training", err)
	}
	cfg.Out = t.TempDir()
	for r, run := range runRanksWithin(t, 60*time.Second, cfg, 2) {
		if !errors.Is(run.err, errNothingEvaluated) || len(run.stepLoss) != 0 {
			t.Errorf("rank %d: %v after %d steps; want the validation set to have no image read, before training", r, run.err, len(run.stepLoss))
		}
	}
}

// A validation or test set file whose header is good and whose pixel data
// is cut stops the run before its first step, naming the set and the
// file, on one process and on two ranks (one names it, the other
// ErrOtherRank): it was found at the first validation, an epoch of
// training later, or as the test set at the end of the run.
func TestUnreadableEvalSetBeforeTraining(t *testing.T) {
	for _, valSplit := range []float64{0, 0.25} {
		set := map[bool]string{true: "validation set", false: "test set"}[valSplit == 0]
		train, test := openFolders(t, 4, false, &data.ImageOptions{Channels: 1, ImageSize: 8})
		corrupt(t, test.Files[1])
		cfg := folderConfig(t, train, test, 2, io.Discard)
		cfg.ValSplit = valSplit
		tr, err := Prepare(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.Train(context.Background())
		if err == nil || !strings.Contains(err.Error(), set+" (read before training)") || !strings.Contains(err.Error(), test.Files[1]) {
			t.Errorf("val split %g: %v; want the %s and %s named", valSplit, err, set, test.Files[1])
		}
		if n := tr.r.opt.Steps(); n != 0 {
			t.Errorf("val split %g: %d steps taken before the error, want 0", valSplit, n)
		}
		cfg.Out = t.TempDir()
		named := 0
		for r, run := range runRanksWithin(t, 60*time.Second, cfg, 2) {
			switch {
			case run.err != nil && strings.Contains(run.err.Error(), test.Files[1]):
				named++
			case !errors.Is(run.err, ErrOtherRank):
				t.Errorf("val split %g, rank %d: %v; want the file named or ErrOtherRank", valSplit, r, run.err)
			}
			if len(run.stepLoss) != 0 {
				t.Errorf("val split %g, rank %d: %d steps taken before the error, want 0", valSplit, r, len(run.stepLoss))
			}
		}
		if named != 1 {
			t.Errorf("val split %g: %d ranks named the file, want 1", valSplit, named)
		}
	}
}

// A ctx done while the validation set is read before training ends the
// reading there, the run then saving its position at its first step
// boundary: the test set was read after the validation set all the same.
func TestStopWhileReadingEvalSets(t *testing.T) {
	train, test := openFolders(t, 8, false, &data.ImageOptions{Channels: 1, ImageSize: 8})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &cancelAfter{text: "of the validation set once", cancel: cancel}
	cfg := folderConfig(t, train, test, 1, log)
	cfg.ValSplit = 0.25
	tr, err := Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Train(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("stopped while reading the validation set: %v, want ErrInterrupted", err)
	}
	if out := log.buf.String(); strings.Contains(out, "of the test set") {
		t.Errorf("the test set was read after the stop:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, LastCheckpoint)); err != nil {
		t.Errorf("the stopped run's checkpoint: %v", err)
	}
}

// A resumed run does not read again the evaluation files it read before
// training, without fault, when their names, sizes and modification times
// are unchanged (Position.EvalRead), on one process and on two ranks: a
// test file spoilt with both kept is found by the test pass, after the
// training, as before the reading existed. A file whose size or time
// changed is read again before the first step, and found then.
func TestResumeSkipsUnchangedEvalSets(t *testing.T) {
	for _, ranks := range []int{1, 2} {
		for _, kept := range []bool{true, false} {
			train, test := openFolders(t, 4, false, &data.ImageOptions{Channels: 1, ImageSize: 8})
			age(t, train.Files, test.Files)
			var log strings.Builder
			cfg := folderConfig(t, train, test, 2, &log)
			cfg.ValSplit, cfg.Epochs = 0.25, 1
			run := func() []error {
				if ranks == 1 {
					_, err := Run(context.Background(), cfg)
					return []error{err}
				}
				var errs []error
				for _, run := range runRanksWithin(t, 60*time.Second, cfg, ranks) {
					errs = append(errs, run.err)
				}
				return errs
			}
			for r, err := range run() {
				if err != nil {
					t.Fatalf("%d ranks, the first run, rank %d: %v", ranks, r, err)
				}
			}
			bad := test.Files[1]
			if kept {
				spoilKeepingSizeAndTime(t, bad)
			} else {
				corrupt(t, bad)
			}
			log.Reset()
			cfg.Resume, cfg.Epochs = true, 2
			named := 0
			for r, err := range run() {
				before := err != nil && (strings.Contains(err.Error(), "(read before training)") || strings.Contains(err.Error(), "reading the validation and test sets failed on rank"))
				if err != nil && strings.Contains(err.Error(), bad) {
					named++
				}
				if err == nil || before == kept {
					t.Errorf("%d ranks, size and time kept %v, rank %d: %v; want an error %s the training", ranks, kept, r, err, map[bool]string{true: "after", false: "before"}[kept])
				}
			}
			if named != 1 {
				t.Errorf("%d ranks, size and time kept %v: %d ranks named %s, want 1", ranks, kept, named, bad)
			}
			out := log.String()
			valRead, testRead := strings.Contains(out, "images of the validation set once"), strings.Contains(out, "images of the test set once")
			if valRead || !strings.Contains(out, "of the validation set have the names") || testRead == kept {
				t.Errorf("%d ranks, size and time kept %v: the resumed run's log:\n%s", ranks, kept, out)
			}
		}
	}
}

// A checkpoint without the evaluation sets' fingerprints (written before
// they were recorded) has its sets read before the resumed run's first
// step, as before; the checkpoint the resumed run writes records them.
func TestResumeWithoutEvalReadReads(t *testing.T) {
	train, test := openFolders(t, 4, false, &data.ImageOptions{Channels: 1, ImageSize: 8})
	age(t, train.Files, test.Files)
	var log strings.Builder
	cfg := folderConfig(t, train, test, 2, &log)
	cfg.ValSplit, cfg.Epochs = 0.25, 1
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.Out, LastCheckpoint)
	f, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["eval_read"] == "" {
		t.Fatalf("the first run recorded no fingerprints: %v", f.Metadata)
	}
	delete(f.Metadata, "eval_read")
	if err := safetensors.Write(path, f.Tensors, f.Metadata); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	cfg.Resume, cfg.Epochs = true, 2
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if out := log.String(); !strings.Contains(out, "images of the validation set once") || !strings.Contains(out, "images of the test set once") {
		t.Errorf("resumed from a checkpoint without fingerprints:\n%s", out)
	}
	c, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Position.EvalRead["validation"]) != 64 || len(c.Position.EvalRead["test"]) != 64 {
		t.Errorf("the resumed run recorded %v, want two SHA-256s", c.Position.EvalRead)
	}
}

// A set with a file modified within mtimeSlack of its stat has no
// fingerprint, so that the next resume reads it: on a file system that
// keeps times to the second (ext3, HFS+; FAT to 2 s), a file rewritten
// with its size in that second, after the stat or during the read that
// passed, keeps its time, and a resumed run skipped reading it. Its
// fingerprint counts once the file is older.
func TestEvalPrintsDistrustsRecentFiles(t *testing.T) {
	_, test := openFolders(t, 1, false, &data.ImageOptions{Channels: 1, ImageSize: 8})
	now := time.Now()
	sec := now.Truncate(time.Second) // the time a 1 s file system gives a write now
	for _, f := range test.Files {
		if err := os.Chtimes(f, sec, sec); err != nil {
			t.Fatal(err)
		}
	}
	if s := filesPrint(test, now); s != ([sha256.Size]byte{}) {
		t.Errorf("files written in the second of the stat give the fingerprint %x; want none", s)
	}
	age(t, test.Files)
	if s := filesPrint(test, now); s == ([sha256.Size]byte{}) {
		t.Errorf("files written an hour before the stat give no fingerprint")
	}
}

// age sets the modification time of files to an hour ago, past
// mtimeSlack, so that evalPrints fingerprints them.
func age(t *testing.T, sets ...[]string) {
	t.Helper()
	then := time.Now().Add(-time.Hour)
	for _, files := range sets {
		for _, f := range files {
			if err := os.Chtimes(f, then, then); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// spoilKeepingSizeAndTime zeroes a PNG's bytes after its header, which no
// decoder can then read, and gives it back its modification time.
func spoilKeepingSizeAndTime(t *testing.T, file string) {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	clear(b[33:]) // after the signature and IHDR
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(file, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// The progress line of an epoch whose first steps were skipped (no image
// trained yet) has no ETA to give: it said -2562047h47m16s.
func TestProgressBeforeAnyImage(t *testing.T) {
	var log strings.Builder
	r := &run{cfg: Config{Epochs: 1, Batch: 1, Log: &log}, stepsPerEpoch: 9, epochStart: time.Now().Add(-time.Second), batch: 1}
	r.progress(0)
	if !strings.Contains(log.String(), "ETA ?") {
		t.Errorf("%q", log.String())
	}
}

// A run asked to stop saves its position and says it was interrupted,
// whatever the loader, making batches ahead, met past the step reached:
// with the unreadable file within two batches of it, the run returned the
// file's error and saved nothing (the review found it; the file's
// position depends on the seed, so several are tried).
func TestStopBeforeUnreadableFile(t *testing.T) {
	train, test := openFolders(t, 8, true, &data.ImageOptions{Channels: 1, ImageSize: 8})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for seed := uint64(1); seed <= 12; seed++ {
		cfg := folderConfig(t, train, test, 1, io.Discard)
		cfg.Seed = seed
		tr, err := Prepare(context.Background(), cfg) // a folder's statistics watch the context
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Train(cancelled); !errors.Is(err, ErrInterrupted) {
			t.Errorf("seed %d: %v; want ErrInterrupted", seed, err)
		}
		if _, err := os.Stat(filepath.Join(cfg.Out, LastCheckpoint)); err != nil {
			t.Errorf("seed %d: no checkpoint of the position: %v", seed, err)
		}
	}
}
