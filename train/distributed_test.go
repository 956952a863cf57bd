package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// rankRun is what one rank of a data-parallel run ended with.
type rankRun struct {
	stepLoss []float64   // the loss of every step (the global batch's)
	state    [][]float32 // the model's tensors, parameters and buffers
	res      *Result
	err      error
}

// runRanks trains cfg on size ranks of an in-process group (goroutines),
// rank r with configure(r, &cfg) applied, and returns every rank's end.
// Rank 0 writes into cfg.Out, the others into folders of their own,
// which must stay empty.
func runRanks(t *testing.T, ctx context.Context, cfg Config, size int, configure func(rank int, c *Config)) []rankRun {
	t.Helper()
	out := make([]rankRun, size)
	var wg sync.WaitGroup
	for r, comm := range distributed.NewGroup(size) {
		c := cfg
		c.Comm = comm
		if r > 0 {
			c.Out = t.TempDir()
		}
		if configure != nil {
			configure(r, &c)
		}
		wg.Go(func() {
			tr, err := Prepare(context.Background(), c)
			if err != nil {
				out[r].err = err
				return
			}
			out[r].res, out[r].err = tr.Train(ctx)
			out[r].stepLoss = tr.r.stepLoss
			for _, e := range nn.StateDict(tr.r.model) {
				out[r].state = append(out[r].state, append([]float32(nil), e.Tensor.Data...))
			}
			if r > 0 {
				if files, _ := filepath.Glob(filepath.Join(c.Out, "*")); len(files) > 0 {
					out[r].err = errors.Join(out[r].err, fmt.Errorf("rank %d wrote %v", r, files))
				}
			}
		})
	}
	wg.Wait()
	return out
}

// sameRanks checks that every rank ended with bitwise the same model.
func sameRanks(t *testing.T, runs []rankRun) {
	t.Helper()
	for r := 1; r < len(runs); r++ {
		for i := range runs[0].state {
			for k, v := range runs[0].state[i] {
				if runs[r].state[i][k] != v {
					t.Fatalf("tensor %d[%d]: rank 0 has %g, rank %d has %g", i, k, v, r, runs[r].state[i][k])
				}
			}
		}
	}
}

// compareRuns returns the largest absolute difference of the step losses
// and of the model tensors between two runs.
func compareRuns(t *testing.T, a, b rankRun) (loss, weight float64) {
	t.Helper()
	if len(a.stepLoss) != len(b.stepLoss) || len(a.state) != len(b.state) {
		t.Fatalf("%d and %d steps, %d and %d tensors", len(a.stepLoss), len(b.stepLoss), len(a.state), len(b.state))
	}
	for i := range a.stepLoss {
		loss = max(loss, math.Abs(a.stepLoss[i]-b.stepLoss[i]))
	}
	for i := range a.state {
		for k := range a.state[i] {
			weight = max(weight, math.Abs(float64(a.state[i][k]-b.state[i][k])))
		}
	}
	return loss, weight
}

// ddpTiny is the tiny ResNet of the other tests (batch norm in every
// block) on 512 MNIST images, shifted and flipped: data.Loader draws an
// image's augmentation from the seed, the epoch and the image's index
// alone, so two ranks' halves of a batch get the shifts the whole batch
// gets in one process, as equivalence needs.
func ddpTiny(out string, batch int) Config {
	c := tiny(out)
	c.Batch, c.Limit, c.Augment, c.ValSplit = batch, 512, &data.Augment{Pad: 2, Flip: true}, 0.25
	return c
}

// TestDataParallelTrainEqualsOneProcess is issue 17's equivalence check
// through the trainer: 2 ranks × batch 64 with SyncBatchNorm take the
// steps of one process × batch 128 (the same trainer with a one-process
// Comm, so that the epoch's order is the Sampler's permutation in both),
// and a network without batch norm (a U-Net on MNIST canvases, with the
// border-weighted cross-entropy, whose normaliser Σw is all-reduced) 2 ×
// 8 those of 1 × 16. Every run is augmented (random shifts and flips):
// with each rank drawing from a seed of its own, the runs differed by
// 2.8e-3 to 6.7e-3 in the losses and 3.2e-3 to 8.8e-2 in the weights.
//
// Tolerance. The runs differ only in the order of float32 additions: a
// weight gradient is one sum over the 128 images' positions in one
// process (up to 128·28·28 ≈ 10⁵ terms), two sums of half of them and
// their average here; batch norm's statistics are float64 sums either
// way. A float32 sum of K terms carries a relative rounding error of
// about √K·2⁻²⁴ ≈ 2e-5 (K = 10⁵; the bound K·2⁻²⁴ is reached only by
// adversarial data), so each step's gradients differ by about 2e-5 of
// their size (≤ 1 here). SGD with learning rate η = 0.05 and momentum
// μ = 0.9 moves a weight by at most η/(1−μ) = 0.5 times the gradient
// difference per step, so after the T = 12 steps the weights may differ
// by 12·0.5·2e-5 ≈ 1.2e-4, and the losses, which change by at most about
// the same relative amount, by ≈ 1e-4 of their size (≈ 2). The test
// allows 5e-4 for the weights and 5e-4 for the losses — a few times the
// estimate, and far below the differences of a wrong average (×2 in
// every step) or a wrong shard; unsynchronised batch statistics must
// exceed them tenfold in the losses or the weights (checked; the weights
// move by about 1e-2, see the t.Log).
func TestDataParallelTrainEqualsOneProcess(t *testing.T) {
	ctx := context.Background()
	// Canvases whose masks leave some pixels out (Dataset.Ignore): all but
	// the last rows of every other image, so that the ranks' shards of a
	// batch count very different numbers of pixels. Each rank's mean over its own
	// counted pixels, averaged over the ranks, is then not one process's
	// mean over the global batch (it was, before the loss was normalised
	// by the global count).
	ignTrain, ignTest, err := data.Open(ctx, "mnist-canvas:40", 1)
	if err != nil {
		t.Fatal(err)
	}
	ignTrain, ignTest = ignTrain.Subset(limited(ignTrain, 128)), ignTest.Subset(limited(ignTest, 128))
	for _, d := range []*data.Dataset{ignTrain, ignTest} {
		d.Masks = append([]uint8(nil), d.Masks...)
		d.Ignore = data.Ignore{Set: true, Value: 200}
		for i := 0; i < d.Len(); i += 2 {
			for p := range d.Mask(i)[:d.W*(d.H-4)] {
				d.Mask(i)[p] = 200
			}
		}
	}
	cases := []struct {
		name        string
		cfg         func(out string, batch int) Config
		batch       int
		syncBN      bool
		lossTol, wt float64
	}{
		{"resnet+SyncBN", ddpTiny, 64, true, 5e-4, 5e-4},
		{"unet without BN, weighted loss", func(out string, batch int) Config {
			c := unet.Config{InChannels: 1, Classes: 11, Depth: 1, Base: 4}
			return Config{Model: models.Config{Name: "unet-nobn", Arch: &models.UNet{Config: c}}, Data: "mnist-canvas:40", Task: models.Segment,
				BorderWeights: true, Epochs: 2, Batch: batch, Optimizer: SGD, LR: 0.05, Momentum: 0.9, Schedule: Schedule{Kind: ScheduleConstant},
				Augment: &data.Augment{Pad: 2, Flip: true}, ValSplit: 0.25, Seed: 2, Limit: 128, Out: out}
		}, 8, false, 5e-4, 5e-4},
		{"unet without BN, ignored pixels", func(out string, batch int) Config {
			c := unet.Config{InChannels: 1, Classes: 11, Depth: 1, Base: 4}
			return Config{Model: models.Config{Name: "unet-nobn", Arch: &models.UNet{Config: c}}, Data: "canvases with ignored pixels",
				TrainSet: ignTrain, TestSet: ignTest, Task: models.Segment,
				Epochs: 2, Batch: batch, Optimizer: SGD, LR: 0.05, Momentum: 0.9, Schedule: Schedule{Kind: ScheduleConstant},
				Augment: &data.Augment{Pad: 2, Flip: true}, ValSplit: 0.25, Seed: 2, Out: out}
		}, 8, false, 5e-4, 5e-4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			one := tc.cfg(t.TempDir(), 2*tc.batch)
			one.Comm, one.SyncBN = distributed.NewLocal(), tc.syncBN
			ref := runRanks(t, ctx, one, 1, nil)[0]
			if ref.err != nil {
				t.Fatal(ref.err)
			}
			two := tc.cfg(t.TempDir(), tc.batch)
			two.SyncBN = tc.syncBN
			runs := runRanks(t, ctx, two, 2, nil)
			for r, run := range runs {
				if run.err != nil {
					t.Fatalf("rank %d: %v", r, run.err)
				}
			}
			sameRanks(t, runs)
			if len(ref.stepLoss) < 6 {
				t.Fatalf("only %d steps", len(ref.stepLoss))
			}
			t.Logf("step losses, 2 ranks: %.7f", runs[0].stepLoss)
			t.Logf("step losses, 1 process: %.7f", ref.stepLoss)
			dl, dw := compareRuns(t, runs[0], ref)
			t.Logf("2 ranks × %d against 1 × %d, %d steps: losses within %.3g, weights within %.3g (losses %.4f → %.4f)",
				tc.batch, 2*tc.batch, len(ref.stepLoss), dl, dw, ref.stepLoss[0], ref.stepLoss[len(ref.stepLoss)-1])
			if dl > tc.lossTol || dw > tc.wt {
				t.Errorf("2 ranks differ from one process: losses by %.3g (tolerance %g), weights by %.3g (tolerance %g)", dl, tc.lossTol, dw, tc.wt)
			}
			if ra, rb := runs[0].res, ref.res; math.Abs(ra.TestAccuracy-rb.TestAccuracy) > 0.01 || math.Abs(ra.TestLoss-rb.TestLoss) > 1e-3 {
				t.Errorf("sharded test evaluation: accuracy %g, loss %g; one process: %g, %g", ra.TestAccuracy, ra.TestLoss, rb.TestAccuracy, rb.TestLoss)
			}
			if tc.syncBN { // without SyncBN the batch statistics are each rank's: a real difference
				plain := tc.cfg(t.TempDir(), tc.batch)
				unsynced := runRanks(t, ctx, plain, 2, nil)
				if unsynced[0].err != nil {
					t.Fatal(unsynced[0].err)
				}
				dl, dw := compareRuns(t, unsynced[0], ref)
				t.Logf("without SyncBN: losses differ by up to %.3g, weights by %.3g", dl, dw)
				if dl <= 10*tc.lossTol && dw <= 10*tc.wt {
					t.Errorf("without SyncBN the losses differ by only %.3g and the weights by %.3g, within 10× the tolerances: the test cannot tell synchronised statistics from local ones", dl, dw)
				}
			}
		})
	}
}

// TestDataParallelBF16Compression trains 2 ranks × batch 64 with SyncBN
// twice, gradients all-reduced in float32 and in bfloat16, and bounds the
// difference. With bfloat16 each gradient value is off by at most γ₂ =
// 2·2⁻⁸/(1 − 2·2⁻⁸) ≈ 7.9e-3 of Σ|g_r|/2 (distributed.BF16Compression),
// so by at most 7.9e-3·G where G bounds the gradients' size (≤ 1 here,
// as in TestDataParallelTrainEqualsOneProcess); SGD with η = 0.05 and
// μ = 0.9 moves a weight by at most η/(1−μ) = 0.5 times that a step, so
// after the T = 6 steps the weights differ by about 6·0.5·7.9e-3 ≈ 0.024
// at most. That is an estimate, as in the equivalence test: it leaves out
// that from the second step the two runs' gradients are taken at weights
// that differ (a feedback small over 6 steps at this rate) and that the
// batch norms' running statistics, compared too, follow the weights; the
// roundings' signs mostly cancel, which it also leaves out, the other
// way. The test allows 0.024, and requires the weights to differ by more
// than 1e-6, far above float32's run-to-run differences (none: both runs
// are bitwise reproducible), so that the compressed path is shown to run.
func TestDataParallelBF16Compression(t *testing.T) {
	ctx := context.Background()
	runs := map[string]rankRun{}
	for _, comp := range []string{"none", "bf16"} {
		cfg := ddpTiny(t.TempDir(), 64)
		cfg.SyncBN, cfg.GradCompression = true, comp
		rs := runRanks(t, ctx, cfg, 2, nil)
		for r, run := range rs {
			if run.err != nil {
				t.Fatalf("%s: rank %d: %v", comp, r, run.err)
			}
		}
		sameRanks(t, rs)
		runs[comp] = rs[0]
	}
	dl, dw := compareRuns(t, runs["bf16"], runs["none"])
	t.Logf("bf16 against float32 gradients, %d steps: losses within %.3g, weights within %.3g", len(runs["none"].stepLoss), dl, dw)
	if steps := len(runs["none"].stepLoss); steps != 6 {
		t.Fatalf("%d steps, the bound is for 6", steps)
	}
	if dw > 0.024 || dw <= 1e-6 {
		t.Errorf("weights differ by %.3g, want within (1e-6, 0.024]", dw)
	}
	bad := ddpTiny(t.TempDir(), 64)
	bad.GradCompression = "fp16"
	if _, err := Prepare(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "fp16") {
		t.Errorf("GradCompression fp16: %v, want an error naming it", err)
	}
}

// TestDataParallelDisagreement checks the start-up checks: ranks with
// another learning rate or model fail at the start, every rank, naming it.
func TestDataParallelDisagreement(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		change     func(*Config)
	}{
		{"flags", `"lr=0.05"; rank 1 has "lr=0.1"`, func(c *Config) { c.LR = 0.1 }},
		{"model", "the model config", func(c *Config) { c.Model.Name = "other" }},
		{"gradient compression", "grad_compression", func(c *Config) { c.GradCompression = "bf16" }},
		// A seed given to one rank alone is named as a flag (it changes
		// the validation split too, and was reported as the data).
		{"seed", `"seed=3"; rank 1 has "seed=4"`, func(c *Config) { c.Seed = 4 }},
		// Another copy of the data whose labels and statistics agree but
		// whose pixels do not (one image mirrored).
		{"pixels", "train pixels=", func(c *Config) {
			tr := *c.TrainSet
			tr.Pixels = slices.Clone(tr.Pixels)
			img := tr.Pixels[5*28*28 : 6*28*28]
			for y := range 28 {
				slices.Reverse(img[y*28 : (y+1)*28])
			}
			c.TrainSet = &tr
		}},
	} {
		cfg := ddpTiny(t.TempDir(), 16)
		if cfg.TrainSet, cfg.TestSet, _ = data.MNIST(); tc.name == "pixels" {
			cfg.TrainSet, cfg.TestSet = cfg.TrainSet.Subset(seq(512)), cfg.TestSet.Subset(seq(512))
		} else {
			cfg.TrainSet, cfg.TestSet = nil, nil
		}
		runs := runRanks(t, context.Background(), cfg, 2, func(r int, c *Config) {
			if r == 1 {
				m, _ := c.Model.Clone()
				c.Model = m
				tc.change(c)
			}
		})
		for r, run := range runs {
			if run.err == nil || !strings.Contains(run.err.Error(), tc.want) {
				t.Errorf("%s: rank %d: %v, want an error containing %q", tc.name, r, run.err, tc.want)
			}
		}
	}
}

// A rank whose data set cannot be opened fails with its own error; the
// other's error is ErrOtherRank, naming the rank and the stage (the CLI
// then waits for the failing rank to print).
func TestDataParallelOtherRankFails(t *testing.T) {
	cfg := ddpTiny(t.TempDir(), 16)
	runs := runRanks(t, context.Background(), cfg, 2, func(r int, c *Config) {
		if r == 1 {
			c.Data = "idx:" + filepath.Join(t.TempDir(), "none")
		}
	})
	if err := runs[1].err; err == nil || errors.Is(err, ErrOtherRank) {
		t.Errorf("rank 1 without its data: %v; want its own error", err)
	}
	if err := runs[0].err; !errors.Is(err, ErrOtherRank) || !strings.Contains(err.Error(), "preparing the run failed on rank 1 (see its message)") {
		t.Errorf("rank 0 when rank 1 failed: %v; want ErrOtherRank naming rank 1", err)
	}
}

// An --overwrite of a run stopped before its first epoch's end puts the
// old run back, and every rank says so (rank 1 said to resume from the
// step reached, where no checkpoint had been written).
func TestDataParallelOverwriteStopped(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	c := ddpTiny(dir, 16)
	c.Epochs = 1
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(dir, LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	c.Overwrite = true
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for r, run := range runRanks(t, ctx, c, 2, nil) {
		where := []string{dir, "rank 0's run folder"}[r]
		if !errors.Is(run.err, ErrInterrupted) || !strings.Contains(run.err.Error(), "the run --overwrite was replacing is back in "+where) {
			t.Errorf("rank %d: %v; want the replaced run back", r, run.err)
		}
	}
	if after, err := os.ReadFile(filepath.Join(dir, LastCheckpoint)); err != nil || !bytes.Equal(after, before) {
		t.Errorf("the replaced run's checkpoint is not back as it was (%v)", err)
	}
}

// stopRank1 trains cfg on 2 ranks, rank 1 (in a folder of its own) with
// ctx1 and rank 0 with a context that is never cancelled, and returns each
// rank's error and the steps it took.
func stopRank1(t *testing.T, cfg Config, ctx1 context.Context) (errs []error, steps []int) {
	errs, steps = make([]error, 2), make([]int, 2)
	var wg sync.WaitGroup
	for r, comm := range distributed.NewGroup(2) {
		c := cfg
		c.Comm = comm
		ctx := context.Background()
		if r == 1 {
			c.Out, ctx = t.TempDir(), ctx1
		}
		wg.Go(func() {
			tr, err := Prepare(context.Background(), c)
			if err != nil {
				errs[r] = err
				return
			}
			_, errs[r] = tr.Train(ctx)
			steps[r] = tr.r.opt.Steps()
		})
	}
	wg.Wait()
	return errs, steps
}

// TestDataParallelStopAndResume stops a 2-rank run by cancelling rank 1's
// context alone: both ranks stop after the same step, rank 0 writes the
// checkpoint; resuming on 3 ranks is refused, and resuming on 2 ends
// with bitwise the weights of a run that was never stopped.
func TestDataParallelStopAndResume(t *testing.T) {
	full := ddpTiny(t.TempDir(), 32)
	whole := runRanks(t, context.Background(), full, 2, nil)
	if whole[0].err != nil {
		t.Fatal(whole[0].err)
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	// Rank 1 alone is told to stop (its context is cancelled from the start).
	cfg2 := ddpTiny(t.TempDir(), 32)
	errs, steps := stopRank1(t, cfg2, cancelled)
	for r, err := range errs {
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("rank %d: %v, want ErrInterrupted", r, err)
		}
	}
	// Each rank's error names why: rank 1's its context's cancellation,
	// rank 0's the other rank's request.
	if !errors.Is(errs[1], context.Canceled) || !strings.Contains(errs[0].Error(), "another rank was asked to stop") {
		t.Errorf("the ranks' errors: %v; %v", errs[0], errs[1])
	}
	if steps[0] != 1 || steps[1] != 1 {
		t.Fatalf("the ranks stopped after steps %v, want both after the first", steps)
	}

	cfg2.Resume = true
	three := runRanks(t, context.Background(), cfg2, 3, nil)
	if err := three[0].err; err == nil || !strings.Contains(err.Error(), "trained on 2 ranks, this one runs on 3") {
		t.Fatalf("resuming on 3 ranks: %v", err)
	}
	resumed := runRanks(t, context.Background(), cfg2, 2, nil)
	for r, run := range resumed {
		if run.err != nil {
			t.Fatalf("resumed rank %d: %v", r, run.err)
		}
	}
	if _, dw := compareRuns(t, rankRun{state: resumed[0].state}, rankRun{state: whole[0].state}); dw != 0 {
		t.Errorf("stopped and resumed on 2 ranks, the weights differ from an uninterrupted run by %g", dw)
	}
	// Every rank, not only rank 0 (which read them), holds the steps before
	// the stop and the whole first epoch's metrics.
	for r, run := range resumed {
		if !slices.Equal(run.res.StepLoss, whole[0].res.StepLoss) {
			t.Errorf("resumed rank %d: step losses %v, the uninterrupted run's %v", r, run.res.StepLoss, whole[0].res.StepLoss)
		}
		if got, want := run.res.History[0], whole[0].res.History[0]; got.TrainLoss != want.TrainLoss || got.TrainAcc != want.TrainAcc {
			t.Errorf("resumed rank %d: first epoch's training loss %v, accuracy %v; uninterrupted %v, %v", r, got.TrainLoss, got.TrainAcc, want.TrainLoss, want.TrainAcc)
		}
	}

	// Rank 1 alone told to stop during the first validation: both ranks
	// stop there (they agree in the evaluation's reduction; they used to
	// finish it and stop after the next epoch's first step), and resumed,
	// they validate that epoch and end as the uninterrupted run.
	vctx, vcancel := context.WithCancel(context.Background())
	defer vcancel()
	cfg3 := ddpTiny(t.TempDir(), 32)
	evalBatchHook = vcancel // at the first batch any rank evaluates
	errs, steps = stopRank1(t, cfg3, vctx)
	evalBatchHook = nil
	perEpoch := len(whole[0].res.StepLoss) / len(whole[0].res.History)
	for r, err := range errs {
		if !errors.Is(err, ErrInterrupted) || steps[r] != perEpoch {
			t.Fatalf("stopped during the validation: rank %d: %v after %d steps, want ErrInterrupted after the epoch's %d", r, err, steps[r], perEpoch)
		}
	}
	cfg3.Resume = true
	resumed = runRanks(t, context.Background(), cfg3, 2, nil)
	if resumed[0].err != nil {
		t.Fatalf("resumed after a stop during the validation: %v", resumed[0].err)
	}
	if _, dw := compareRuns(t, rankRun{state: resumed[0].state}, rankRun{state: whole[0].state}); dw != 0 || !slices.Equal(resumed[0].res.StepLoss, whole[0].res.StepLoss) {
		t.Errorf("stopped during the validation and resumed: weights differ by %g; step losses %v, want %v", dw, resumed[0].res.StepLoss, whole[0].res.StepLoss)
	}
	if got, want := resumed[0].res.History[0], whole[0].res.History[0]; got.ValLoss != want.ValLoss || got.ValAcc != want.ValAcc {
		t.Errorf("the resumed run's first validation: loss %v, accuracy %v; uninterrupted %v, %v", got.ValLoss, got.ValAcc, want.ValLoss, want.ValAcc)
	}
}

// seq returns 0, 1, …, n−1.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// TestWeightNormOfNothing: where every pixel of the global batch is
// ignored, the weighted loss's factor is 0 (no loss, no gradient, as a
// mean over no weight is on one process) where it was an error that
// stopped the run; weights that sum to 2 over 2 ranks give 2/2 = 1.
func TestWeightNormOfNothing(t *testing.T) {
	for _, tc := range []struct {
		targets []int32
		want    float32
	}{
		{[]int32{ignoreIndex, ignoreIndex}, 0},
		{[]int32{0, ignoreIndex}, 1},
	} {
		var wg sync.WaitGroup
		got, errs := make([]float32, 2), make([]error, 2)
		for rank, comm := range distributed.NewGroup(2) {
			wg.Go(func() {
				r := &run{ddp: &ddp{comm: comm}}
				got[rank], errs[rank] = r.weightNorm(tc.targets, []float32{1, 1})
			})
		}
		wg.Wait()
		for rank := range 2 {
			if errs[rank] != nil || got[rank] != tc.want {
				t.Errorf("targets %v, rank %d: factor %g, %v; want %g", tc.targets, rank, got[rank], errs[rank], tc.want)
			}
		}
	}
}

// Rank 0 alone writes TensorBoard's events: when it cannot start them (an
// earlier run's event "file" here a folder it cannot remove), every rank
// stops with it; the others waited in the first step for ever.
func TestDataParallelEventFileFails(t *testing.T) {
	cfg := ddpTiny(t.TempDir(), 32)
	cfg.TensorBoard, cfg.Limit = true, 128
	if err := os.MkdirAll(filepath.Join(cfg.Out, "events.out.tfevents.stuck", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	runs := runRanksWithin(t, 60*time.Second, cfg, 2)
	if err := runs[0].err; err == nil || !strings.Contains(err.Error(), "events.out.tfevents.stuck") {
		t.Errorf("rank 0: %v; want the event file named", err)
	}
	if !errors.Is(runs[1].err, ErrOtherRank) {
		t.Errorf("rank 1: %v; want ErrOtherRank", runs[1].err)
	}
}

// closeEvents is a log that closes its Trainer's TensorBoard events once
// a line holding text has been written, and calls also if set: the next
// step's record fails.
type closeEvents struct {
	text string
	also context.CancelFunc
	tr   *Trainer
	done bool
}

func (c *closeEvents) Write(p []byte) (int, error) {
	if !c.done && c.tr != nil && c.tr.r.tb != nil && bytes.Contains(p, []byte(c.text)) {
		c.tr.r.tb.Close()
		if c.also != nil {
			c.also()
		}
		c.done = true
	}
	return len(p), nil
}

// Rank 0's TensorBoard record of a step fails (a full disk): every rank
// stops after that step, rank 0 with the error and the other with
// ErrOtherRank, whether a step follows in the epoch (they meet at its
// batch status), none does (they meet at the epoch's end), or a stop was
// agreed at that step (rank 0's context cancelled with the close: no
// announcement, they meet at the epoch's end). The others waited at the
// next step, or the epoch's end, for ever.
func TestDataParallelEventWriteFails(t *testing.T) {
	for _, tc := range []struct {
		at    string // the progress line after which the events close: 384 images, 2 ranks of 32, 6 steps an epoch
		stop  bool
		steps int
	}{{" 1/6 ", false, 2}, {" 5/6 ", false, 6}, {" 2/6 ", true, 3}} {
		t.Run(fmt.Sprintf("%s,stop=%v", strings.TrimSpace(tc.at), tc.stop), func(t *testing.T) {
			cfg := ddpTiny(t.TempDir(), 32)
			cfg.TensorBoard, cfg.Live = true, true // a progress line every step
			ctx0, cancel := context.WithCancel(context.Background())
			defer cancel()
			log := &closeEvents{text: tc.at}
			if tc.stop {
				log.also = cancel
			}
			trainers := make([]*Trainer, 2)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for r, comm := range distributed.NewGroup(2) {
				c, ctx := cfg, context.Background()
				c.Comm = comm
				if r == 0 {
					c.Log, ctx = log, ctx0
				} else {
					c.Out = t.TempDir()
				}
				wg.Go(func() {
					if trainers[r], errs[r] = Prepare(context.Background(), c); errs[r] != nil {
						return
					}
					if r == 0 {
						log.tr = trainers[0] // Write runs on this goroutine: rank 0's Train
					}
					_, errs[r] = trainers[r].Train(ctx)
				})
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("the ranks did not stop within 60 s")
			}
			if !log.done || errs[0] == nil || !strings.Contains(errs[0].Error(), "is closed") {
				t.Errorf("rank 0: %v (events closed: %v); want the events' error", errs[0], log.done)
			}
			if !errors.Is(errs[1], ErrOtherRank) {
				t.Errorf("rank 1: %v; want ErrOtherRank", errs[1])
			}
			for r, tr := range trainers {
				if tr != nil && tr.r.opt.Steps() != tc.steps {
					t.Errorf("rank %d took %d steps, want %d (the step whose record failed the last)", r, tr.r.opt.Steps(), tc.steps)
				}
			}
		})
	}
}

// An image's augmentation in an epoch is a function of the seed, the epoch
// and its index alone: one process, and every rank of one, two and three
// (the Sampler's shards of the epoch's permutation, with a third of the
// batch on three ranks, so the image sits at another batch position),
// give image i of epoch e the same bytes, the copy of an image that pads
// a shard included; another epoch gives it others. Each rank drew from a
// seed of its own by batch and position: two ranks could not reproduce
// one's augmentation. Sets in memory (pad and flip, whose draws were per
// batch) and of files (RandomResizedCrop too; per position in the epoch).
func TestDataParallelAugmentationPerSample(t *testing.T) {
	const n = 11
	labels, classes := make([]int32, n), make([]string, n)
	for i := range labels { // the label names the image
		labels[i], classes[i] = int32(i), fmt.Sprint(i)
	}
	pix := make([]uint8, n*8*8)
	rng := tensor.NewRNG(1)
	for i := range pix {
		pix[i] = uint8(rng.IntN(256))
	}
	mem := &data.Dataset{H: 8, W: 8, C: 1, Classes: classes, Pixels: pix, Labels: labels}
	folder, _ := openFolders(t, 6, false, &data.ImageOptions{Channels: 1, ImageSize: 8})
	files := &data.Dataset{H: 8, W: 8, C: 1, Classes: classes, Files: folder.Files[:n], Images: folder.Images, Labels: labels}
	for _, tc := range []struct {
		name string
		set  *data.Dataset
		aug  data.Augment
	}{
		{"in memory", mem, data.Augment{Pad: 2, Flip: true}},
		{"files", files, data.Augment{ResizedCrop: true, Pad: 1, Flip: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// images returns each image's augmented pixels in epoch, by
			// label, on size ranks (0: one process, without Comm), in a
			// global batch of 6.
			images := func(epoch, size int) map[int32][]float32 {
				got := map[int32][]float32{}
				for rank := range max(size, 1) {
					r := &run{cfg: Config{Batch: 6 / max(size, 1), Seed: 3, Augment: &tc.aug}, trainSet: tc.set}
					if size > 0 {
						s, err := distributed.NewSampler(distributed.Sampler{N: n, Rank: rank, Size: size, Shuffle: true, Seed: 3})
						if err != nil {
							t.Fatal(err)
						}
						r.ddp = &ddp{sampler: s}
					}
					l := r.loader(r.trainSet, true)
					for b := range l.Epoch(context.Background(), epoch, 0) {
						for k, y := range b.Y {
							img := b.X.Data[k*64 : (k+1)*64]
							if seen, ok := got[y]; ok && !slices.Equal(seen, img) {
								t.Errorf("epoch %d, %d ranks: image %d augmented two ways (a shard's padding)", epoch, size, y)
							}
							got[y] = img
						}
					}
					if err := l.Err(); err != nil {
						t.Fatal(err)
					}
				}
				if len(got) != n {
					t.Fatalf("epoch %d, %d ranks: %d of the %d images", epoch, size, len(got), n)
				}
				return got
			}
			var first [2]map[int32][]float32
			for epoch := range 2 {
				first[epoch] = images(epoch, 0)
				for _, size := range []int{1, 2, 3} {
					got := images(epoch, size)
					for i := range int32(n) {
						if !slices.Equal(got[i], first[epoch][i]) {
							t.Errorf("epoch %d: image %d augmented otherwise on %d ranks than in one process", epoch, i, size)
						}
					}
				}
			}
			same := 0
			for i := range int32(n) {
				if slices.Equal(first[0][i], first[1][i]) {
					same++
				}
			}
			if same > n/2 {
				t.Errorf("%d of %d images augmented alike in epochs 0 and 1", same, n)
			}
		})
	}
}

// Under Config.Comm only rank 0 calls Config.OnEpoch, and its error stops
// every rank after that epoch: rank 0's error matches the hook's, the
// other's says rank 0's OnEpoch stopped the run, and both are
// ErrInterrupted after 1 epoch.
func TestDataParallelOnEpochStops(t *testing.T) {
	c := ddpTiny(t.TempDir(), 16)
	enough := errors.New("enough")
	calls := make([][]int, 2)
	runs := runRanks(t, context.Background(), c, 2, func(rank int, c *Config) {
		c.OnEpoch = func(m Metrics) error { calls[rank] = append(calls[rank], m.Epoch); return enough }
	})
	if !slices.Equal(calls[0], []int{1}) || len(calls[1]) != 0 {
		t.Errorf("OnEpoch called for epochs %v on rank 0, %v on rank 1; want [1] on rank 0 alone", calls[0], calls[1])
	}
	for r, run := range runs {
		if !errors.Is(run.err, ErrInterrupted) || run.res == nil || run.res.Epochs != 1 {
			t.Errorf("rank %d: %v, %+v; want ErrInterrupted after 1 epoch", r, run.err, run.res)
		}
	}
	if !errors.Is(runs[0].err, enough) || !errors.Is(runs[1].err, errStopOnEpoch) || !strings.Contains(runs[1].err.Error(), "rank 0's Config.OnEpoch stopped the run") {
		t.Errorf("rank 0: %v; rank 1: %v; want OnEpoch's error, and rank 0's OnEpoch named", runs[0].err, runs[1].err)
	}
}

// A panic in rank 0's OnEpoch stops every rank as its error would, with
// a checkpoint: the other ranks waited for ever in the all-reduce of
// rank 0's answer, which the panicking rank never joined.
func TestDataParallelOnEpochPanics(t *testing.T) {
	c := ddpTiny(t.TempDir(), 16)
	runs := runRanks(t, context.Background(), c, 2, func(rank int, c *Config) {
		c.OnEpoch = func(Metrics) error { panic("boom") }
	})
	for r, run := range runs {
		if !errors.Is(run.err, ErrInterrupted) || run.res == nil || run.res.Epochs != 1 {
			t.Errorf("rank %d: %v, %+v; want ErrInterrupted after 1 epoch", r, run.err, run.res)
		}
	}
	if !strings.Contains(fmt.Sprint(runs[0].err), "Config.OnEpoch panicked: boom") || !errors.Is(runs[1].err, errStopOnEpoch) {
		t.Errorf("rank 0: %v; rank 1: %v; want the panic named on rank 0, rank 0's OnEpoch on rank 1", runs[0].err, runs[1].err)
	}
}
