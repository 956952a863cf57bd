package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/safetensors"
)

// tiny is a two-block ResNet (4 and 8 channels) on 256 MNIST training
// and test images, batch 32. Its schedule counts steps explicitly, so that
// a 1-epoch run follows the same learning rates as the first epoch of a
// 2-epoch run (a cosine over the whole run would not).
func tiny(out string) Config {
	rc := resnet.Config{Block: "basic", Layers: []int{1, 1}, Widths: []int{4, 8}, Stem: "cifar", StemWidth: 4,
		Ordering: resnet.PostActivation, Shortcut: resnet.ShortcutB, Classes: 10, InChannels: 1}
	return Config{Model: models.Config{Name: "tiny", Arch: &models.ResNet{Config: rc}}, Data: "mnist", Epochs: 2, Batch: 32, Optimizer: "sgd",
		LR: 0.05, Momentum: 0.9, WeightDecay: 1e-4, Schedule: Schedule{Steps: "multistep:10"}, Augment: &data.Augment{Pad: 2}, ValSplit: 0.25,
		Seed: 3, Limit: 256, Out: out}
}

func weights(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for k, v := range f.Tensors {
		out[k] = v.Data
	}
	return out
}

// marshal returns c.Marshal(), failing the test on its error.
func marshal(t *testing.T, c models.Config) string {
	t.Helper()
	s, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Training 2 epochs equals training 1 epoch, stopping, and resuming; and
// equals being interrupted after the first step and resumed: identical
// weights and optimizer state, bit for bit, and the same loss for every
// step of the run in the result and in step_loss.csv.
func TestResumeIsExact(t *testing.T) {
	ctx := context.Background()
	full := tiny(t.TempDir())
	fullRes, err := Run(ctx, full)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(fullRes.StepLoss); n != 2*6 { // 192 training images, batch 32
		t.Fatalf("%d step losses over 2 epochs, want 12", n)
	}
	want := weights(t, filepath.Join(full.Out, LastCheckpoint))

	split := tiny(t.TempDir())
	split.Epochs = 1
	if _, err := Run(ctx, split); err != nil {
		t.Fatal(err)
	}
	split.Epochs, split.Resume = 2, true
	splitRes, err := Run(ctx, split)
	if err != nil {
		t.Fatal(err)
	}

	// The same, resumed from the run's record alone (ResumeConfig): only
	// the number of epochs restated.
	recorded := tiny(t.TempDir())
	recorded.Epochs = 1
	if _, err := Run(ctx, recorded); err != nil {
		t.Fatal(err)
	}
	rc, err := ResumeConfig(recorded.Out)
	if err != nil {
		t.Fatal(err)
	}
	if !rc.Resume || rc.Out != recorded.Out || rc.Epochs != 1 || rc.Batch != recorded.Batch || rc.Seed != recorded.Seed || rc.Limit != recorded.Limit ||
		marshal(t, rc.Model) != marshal(t, recorded.Model) || rc.Augment == nil || *rc.Augment != *recorded.Augment || rc.Schedule.Steps != recorded.Schedule.Steps {
		t.Fatalf("ResumeConfig: %+v\nthe run's config: %+v", rc, recorded)
	}
	rc.Epochs = 2
	recordedRes, err := Run(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}

	stopped := tiny(t.TempDir())
	cctx, cancel := context.WithCancelCause(ctx)
	why := errors.New("the test's own cause")
	cancel(why) // stop at the first step boundary
	partial, err := Run(cctx, stopped)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, why) || !strings.Contains(err.Error(), why.Error()) {
		t.Fatalf("cancelled run: %v; want ErrInterrupted and the context's cause, named", err)
	}
	// The Result so far: one step, no epoch.
	if partial == nil || partial.Epochs != 0 || len(partial.History) != 0 || !slices.Equal(partial.StepLoss, fullRes.StepLoss[:1]) || partial.TestAccuracy != 0 {
		t.Fatalf("the interrupted run's Result %+v; want one step's loss %v, no epoch, no test", partial, fullRes.StepLoss[:1])
	}
	if f, _ := safetensors.Read(filepath.Join(stopped.Out, LastCheckpoint)); f == nil || f.Metadata["batch"] != "1" {
		t.Fatalf("the interrupted run's checkpoint does not record batch 1: %v", f)
	}
	stopped.Resume = true
	stoppedRes, err := Run(ctx, stopped)
	if err != nil {
		t.Fatal(err)
	}
	// Stopped during the first epoch's validation: every batch done, the
	// validation not; resumed, the run validates that epoch first.
	valStopped := tiny(t.TempDir())
	vctx, vcancel := context.WithCancel(ctx)
	evalBatchHook = vcancel // at the validation's first batch
	_, err = Run(vctx, valStopped)
	evalBatchHook = nil
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("run stopped during the validation: %v", err)
	}
	if f, _ := safetensors.Read(filepath.Join(valStopped.Out, LastCheckpoint)); f == nil || f.Metadata["batch"] != "6" || f.Metadata["epoch"] != "0" {
		t.Fatalf("the checkpoint of the run stopped during the validation is not at epoch 0, batch 6: %v", f)
	}
	valStopped.Resume = true
	valStoppedRes, err := Run(ctx, valStopped)
	if err != nil {
		t.Fatal(err)
	}

	for name, res := range map[string]*Result{"stopped at an epoch": splitRes, "resumed from its record": recordedRes, "interrupted mid-epoch": stoppedRes, "stopped during a validation": valStoppedRes} {
		if !slices.Equal(res.StepLoss, fullRes.StepLoss) {
			t.Errorf("%s: the step losses %v differ from the uninterrupted run's %v", name, res.StepLoss, fullRes.StepLoss)
		}
		// The epoch resumed in its middle reports all of its steps.
		for i, m := range res.History {
			if w := fullRes.History[i]; m.TrainLoss != w.TrainLoss || m.TrainAcc != w.TrainAcc || m.ValLoss != w.ValLoss {
				t.Errorf("%s: epoch %d: training loss %v, accuracy %v, validation loss %v; uninterrupted %v, %v, %v", name, m.Epoch, m.TrainLoss, m.TrainAcc, m.ValLoss, w.TrainLoss, w.TrainAcc, w.ValLoss)
			}
		}
	}
	for name, dir := range map[string]string{"uninterrupted": full.Out, "stopped at an epoch": split.Out, "interrupted mid-epoch": stopped.Out} {
		steps, losses := readStepLoss(dir, 1<<30)
		if !slices.Equal(steps, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}) || !slices.Equal(losses, fullRes.StepLoss) {
			t.Errorf("%s: step_loss.csv holds steps %v, losses %v; want 1…12 and %v", name, steps, losses, fullRes.StepLoss)
		}
	}
	for name, dir := range map[string]string{"stopped at an epoch": split.Out, "resumed from its record": recorded.Out, "interrupted mid-epoch": stopped.Out, "stopped during a validation": valStopped.Out} {
		got := weights(t, filepath.Join(dir, LastCheckpoint))
		if len(got) != len(want) {
			t.Fatalf("%s: %d tensors, want %d", name, len(got), len(want))
		}
		for k, w := range want {
			if !slices.Equal(got[k], w) {
				t.Errorf("%s: %s differs from the uninterrupted run", name, k)
			}
		}
	}
	if n := strings.Count(string(must(os.ReadFile(filepath.Join(split.Out, "metrics.jsonl")))), "\n"); n != 2 {
		t.Errorf("metrics.jsonl has %d lines after 2 epochs", n)
	}
	for _, f := range []string{"loss.png", "accuracy.png", BestCheckpoint} {
		if _, err := os.Stat(filepath.Join(full.Out, f)); err != nil {
			t.Errorf("%s missing: %v", f, err)
		}
	}
}

// A step record written by a run killed before its checkpoint, then
// resumed, holds steps twice and steps past the checkpoint; and a torn
// last line. Reading it back keeps each step once, the last loss written,
// up to the checkpoint's step.
func TestReadStepLossKeepsTheResumedRecord(t *testing.T) {
	dir := t.TempDir()
	rec := "step,loss\n1,2.5\n2,2.25\n3,2\n4,1.75\n2,2.125\n3,1.875\nnot,a-number\n4,1."
	if err := os.WriteFile(filepath.Join(dir, stepLossFile), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	steps, losses := readStepLoss(dir, 3)
	if !slices.Equal(steps, []int{1, 2, 3}) || !slices.Equal(losses, []float64{2.5, 2.125, 1.875}) {
		t.Errorf("read steps %v losses %v; want [1 2 3] [2.5 2.125 1.875]", steps, losses)
	}
	if s, l := readStepLoss(t.TempDir(), 3); s != nil || l != nil {
		t.Errorf("a folder without a record gave %v %v", s, l)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestNaNLossStopsAndKeepsCheckpoint(t *testing.T) {
	c := tiny(t.TempDir())
	c.Epochs = 1
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.Out, LastCheckpoint)
	before := must(os.ReadFile(path))
	c.Epochs, c.Resume, c.LR = 2, true, 1e30
	_, err := Run(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "loss is") || !strings.Contains(err.Error(), "step") {
		t.Fatalf("a diverging run: %v", err)
	}
	if !bytes.Equal(before, must(os.ReadFile(path))) {
		t.Error("the last checkpoint changed after the NaN stop")
	}
}

func TestBadResumes(t *testing.T) {
	c := tiny(t.TempDir())
	c.Epochs = 1
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	other := c
	other.Resume = true
	var err error
	if other.Model, err = c.Model.Clone(); err != nil {
		t.Fatal(err)
	}
	other.Model.Name = "other"
	other.Model.Arch.(*models.ResNet).Widths = []int{8, 8}
	// The message names what differs (it used to print the checkpoint's
	// whole config and the run's name alone). Another model, or another
	// setting the saved position depends on, is the caller's to change:
	// ErrConfig (the CLI's exit status 2, as for --resume --overwrite).
	if _, err := Run(context.Background(), other); err == nil || !strings.Contains(err.Error(), "same model") ||
		!strings.Contains(err.Error(), `widths [4,8] (this run: [8,8]), name "tiny" (this run: "other")`) || !errors.Is(err, ErrConfig) {
		t.Errorf("resuming another architecture: %v (ErrConfig: %v)", err, errors.Is(err, ErrConfig))
	}
	batch := c
	batch.Resume, batch.Batch = true, 64
	if _, err := Run(context.Background(), batch); err == nil || !strings.Contains(err.Error(), "batch 32 → 64") || !errors.Is(err, ErrConfig) {
		t.Errorf("resuming with another batch: %v (ErrConfig: %v)", err, errors.Is(err, ErrConfig))
	}
	path := filepath.Join(c.Out, LastCheckpoint)
	b := must(os.ReadFile(path))
	trunc := filepath.Join(t.TempDir(), "trunc.safetensors")
	os.WriteFile(trunc, b[:len(b)-100], 0o644)
	if _, err := checkpoint.Load(trunc); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated checkpoint: %v", err)
	}
	fresh := tiny(t.TempDir())
	fresh.Resume = true
	if _, err := Run(context.Background(), fresh); err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Errorf("resume without a checkpoint: %v", err)
	}
	// Epochs and the learning rate may change on a resume, except under
	// ResumeSame, which names them; the run folder is left as it was.
	same := c
	same.Resume, same.ResumeSame, same.Epochs, same.LR = true, true, 3, 0.1
	before := must(os.ReadFile(path))
	if _, err := Run(context.Background(), same); err == nil || !strings.Contains(err.Error(), "epochs 1 → 3") || !strings.Contains(err.Error(), "lr 0.05 → 0.1") {
		t.Errorf("a ResumeSame run with other epochs and lr: %v", err)
	}
	if !bytes.Equal(before, must(os.ReadFile(path))) {
		t.Error("the refused ResumeSame run changed the checkpoint")
	}
	same.Epochs, same.LR = c.Epochs, c.LR
	if _, err := Run(context.Background(), same); err != nil {
		t.Errorf("a ResumeSame run with the run's own settings: %v", err)
	}
}

func TestCheckpointLoadsAndPredicts(t *testing.T) {
	c := tiny(t.TempDir())
	c.Epochs = 1
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.Out, BestCheckpoint)
	ck, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Preprocess.Height != 28 || ck.Preprocess.Channels != 1 || len(ck.Classes) != 10 || ck.Model.Name != "tiny" ||
		ck.Position == nil || ck.Position.Epoch != 1 || ck.DataSpec() != "mnist" || len(ck.Optimizer) == 0 {
		t.Errorf("checkpoint metadata: %+v %v %+v", ck.Preprocess, ck.Classes, ck.Position)
	}
	// The weights carry torchvision names, unprefixed, and the batch norm
	// counters are torchvision's int64 tensors: one epoch of the 192
	// training images (256 less the 25% held out) in batches of 32 is 6.
	f, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tensors["layer1.0.conv1.weight"]; !ok {
		t.Error("no layer1.0.conv1.weight in the checkpoint")
	}
	if _, ok := f.Metadata["num_batches_tracked"]; ok {
		t.Error("batch norm counters still stored as a JSON map")
	}
	n := f.Tensors["layer1.0.bn1.num_batches_tracked"]
	if f.Dtypes["layer1.0.bn1.num_batches_tracked"] != "I64" || n == nil || n.Data[0] != 6 {
		t.Errorf("layer1.0.bn1.num_batches_tracked: %s %v, want I64 6 (one epoch of 192 images in batches of 32)", f.Dtypes["layer1.0.bn1.num_batches_tracked"], n)
	}
}

// Prepare sizes the model from the data it opens (input channels and
// classes), resolves the default augmentation, and leaves the caller's
// config as it was.
func TestPrepareSizesModel(t *testing.T) {
	cfg := tiny(t.TempDir())
	arch := cfg.Model.Arch.(*models.ResNet)
	arch.Config.Classes, arch.Config.InChannels = 3, 3
	cfg.Augment = nil
	tr, err := Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := tr.Config()
	if got.Model.Classes() != 10 || got.Model.InChannels() != 1 {
		t.Errorf("prepared model: %d classes, %d channels; MNIST has 10 and 1", got.Model.Classes(), got.Model.InChannels())
	}
	if got.Augment == nil || *got.Augment != (data.Augment{Pad: 2}) {
		t.Errorf("default augmentation for grey images: %+v, want pad 2", got.Augment)
	}
	if arch.Config.Classes != 3 || arch.Config.InChannels != 3 {
		t.Errorf("Prepare changed the caller's model config: %d classes, %d channels", arch.Config.Classes, arch.Config.InChannels)
	}
	if tr, _, _ := tr.Data(); tr.Len() != 192 {
		t.Errorf("training set of %d images, want 192 (256 less a 25%% split)", tr.Len())
	}
}

// --limit keeps the first images of a shuffled set but spreads over an image
// folder's files, which are listed class by class.
func TestLimited(t *testing.T) {
	mem := &data.Dataset{Labels: make([]int32, 10)}
	folder := &data.Dataset{Labels: []int32{0, 0, 0, 0, 1, 1, 1, 1, 2, 2}, Files: make([]string, 10)}
	if got := limited(mem, 3); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("limited(shuffled set, 3) = %v", got)
	}
	got := limited(folder, 3)
	if !slices.Equal(got, []int{0, 3, 6}) {
		t.Errorf("limited(folder, 3) = %v", got)
	}
	classes := map[int32]bool{}
	for _, i := range limited(folder, 5) {
		classes[folder.Labels[i]] = true
	}
	if len(classes) != 3 {
		t.Errorf("limited(folder, 5) covers %d of 3 classes", len(classes))
	}
}

// Prepare refuses, naming the cause, a batch norm that the last batch of an
// epoch would leave with one value per channel (ResNet-18's 1×1 maps on
// MNIST, 3 images in batches of 2) and a U-Net that does not take the
// data's size, both panics in the middle of the first epoch, and a step
// whose activations exceed the memory.
func TestPrepareChecksShapes(t *testing.T) {
	for _, tc := range []struct {
		model, data string
		batch       int
		want        []string
	}{
		{"resnet18", "mnist", 2, []string{"last batch", "1 image(s) of 28x28", "one value per channel"}},
		{"unet", "mnist-canvas:64", 2, []string{"a batch, 2 image(s) of 64x64", "odd or empty size"}},
		// A step over the memory allowed (limits.Memory, 1 MB here), as
		// ResNet-20 with Adam on 3 MNIST images is: refused before any
		// work (a batch too large for the machine grew until the kernel
		// killed the process). 7.8 MB: 3.47 MB of activations (14 outputs
		// of 3×28×28×16, 12 of 3×14×14×32, 12 of 3×7×7×64, input, logits)
		// and 4.31 MB for the 269,434 parameters, their gradients and
		// Adam's two moments.
		{"resnet20", "mnist", 3, []string{"a step of resnet20 on 3 images of 28x28x1 needs at least 7.8 MB of memory; 1.0 MB is available", "lower --batch (Config.Batch)"}},
	} {
		mc, err := models.Preset(tc.model)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Model: mc, Data: tc.data, Epochs: 1, Batch: tc.batch, Optimizer: "sgd", LR: 0.01, Seed: 1, Limit: 3, Out: t.TempDir()}
		if tc.model == "resnet20" {
			cfg.Optimizer = Adam
		}
		if tc.model == "unet" {
			cfg.Task = models.Segment
		}
		if tc.model == "resnet20" {
			limits.Memory = 1 << 20
		}
		_, err = Prepare(context.Background(), cfg)
		limits.Memory = 0
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s on %s: %v, want an error with %q", tc.model, tc.data, err, w)
			}
		}
	}
}

// cancelAfter is a log that cancels a context once a line holding text
// has been written.
type cancelAfter struct {
	text   string
	cancel context.CancelFunc
	buf    bytes.Buffer
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.text) {
		c.cancel()
	}
	return len(p), nil
}

// TestInterruptDuringTest: a signal during the final test pass (after the
// last epoch's line) stops it and returns ErrInterrupted, saying the
// training is complete and saved; it used to finish the pass and return
// success (TestEvaluateStopsWhenCancelled checks that a pass stops within
// a batch). A resumed run with nothing left to train then measures the
// test set.
func TestInterruptDuringTest(t *testing.T) {
	c := tiny(t.TempDir())
	c.Epochs = 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &cancelAfter{text: "epoch 1/1  train loss", cancel: cancel}
	c.Log = log
	res, err := Run(ctx, c)
	// The error says the training is complete (it said to resume from
	// the step reached, of a finished run).
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "the training is complete") {
		t.Fatalf("interrupted during the test pass: %v; want ErrInterrupted and context.Canceled, saying the training is complete", err)
	}
	// The Result: the epoch trained and validated, no test figures.
	if res == nil || res.Epochs != 1 || len(res.History) != 1 || len(res.StepLoss) == 0 || res.BestValAccuracy <= 0 || res.TestAccuracy != 0 || res.TestLoss != 0 {
		t.Fatalf("interrupted during the test pass: Result %+v; want epoch 1's figures and no test", res)
	}
	if !strings.Contains(log.buf.String(), "stopped during the test evaluation") || strings.Contains(log.buf.String(), "test accuracy") {
		t.Errorf("log:\n%s", log.buf.String())
	}
	if _, err := os.Stat(filepath.Join(c.Out, BestCheckpoint)); err != nil {
		t.Error(err)
	}
	c.Resume, c.Log = true, io.Discard
	res, err = Run(context.Background(), c)
	if err != nil || res.TestAccuracy <= 0 || res.Epochs != 1 {
		t.Errorf("resumed: %+v, %v; want the test figures of the 1 epoch trained", res, err)
	}
}

// An interruption's error names its cause right after "interrupted", also
// when a failure to put a replaced run back follows on the next line, and
// at the end of the first line of a message without the word.
func TestInterruptedByNamesTheCause(t *testing.T) {
	cause := errors.New("stopped by SIGTERM")
	for _, c := range []struct {
		err  error
		want string
	}{
		{ErrInterrupted, "train: interrupted (stopped by SIGTERM); the last checkpoint holds the step reached: resume with --resume (Config.Resume)"},
		{errTestStopped{}, "train: interrupted (stopped by SIGTERM) during the test evaluation; the training is complete and saved (residual eval measures the test set)"},
		{errors.Join(errReplacedBack{"out"}, errors.New("train: putting the replaced run back: disk full")),
			"train: interrupted (stopped by SIGTERM) before the first epoch's end; the run --overwrite was replacing is back in out, and nothing of this run was kept\ntrain: putting the replaced run back: disk full"},
		{errors.Join(errors.New("train: stopped"), errors.New("second: interrupted")), "train: stopped (stopped by SIGTERM)\nsecond: interrupted"},
	} {
		if got := (interruptedBy{c.err, cause}).Error(); got != c.want {
			t.Errorf("%q\nwant %q", got, c.want)
		}
	}
}

// Config.OnEpoch is called once per completed epoch with the line that
// metrics.jsonl gained, and its error stops the run there as a cancelled
// context does: ErrInterrupted with that error, the Result so far, no
// further epoch, and a last checkpoint at the epoch's end that a resumed
// run (which calls its own OnEpoch) trains on from.
func TestOnEpochWatchesAndStops(t *testing.T) {
	cfg := tiny(t.TempDir())
	cfg.Epochs = 3
	enough := errors.New("accuracy good enough")
	var seen []Metrics
	cfg.OnEpoch = func(m Metrics) error {
		seen = append(seen, m)
		// Called once the epoch is recorded: metrics.jsonl ends with it.
		lines := strings.Split(strings.TrimSpace(string(must(os.ReadFile(filepath.Join(cfg.Out, "metrics.jsonl"))))), "\n")
		if got, want := lines[len(lines)-1], string(must(json.Marshal(m))); len(lines) != len(seen) || got != want {
			t.Errorf("OnEpoch call %d: metrics.jsonl's %d lines end with %s; want its call's %s", len(seen), len(lines), got, want)
		}
		if m.Epoch == 2 {
			return enough
		}
		return nil
	}
	res, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, enough) || !strings.Contains(err.Error(), enough.Error()) {
		t.Fatalf("stopped by OnEpoch: %v; want ErrInterrupted and OnEpoch's error, named", err)
	}
	if len(seen) != 2 || seen[0].Epoch != 1 || seen[1].Epoch != 2 {
		t.Fatalf("OnEpoch saw %+v; want epochs 1 and 2, then the stop", seen)
	}
	if res == nil || res.Epochs != 2 || !slices.Equal(res.History, seen) || len(res.StepLoss) != 2*6 || res.TestAccuracy != 0 {
		t.Fatalf("the stopped run's Result %+v; want 2 epochs (OnEpoch's metrics), 12 steps, no test", res)
	}
	if h := readMetrics(filepath.Join(cfg.Out, "metrics.jsonl"), 10); !slices.Equal(h, seen) {
		t.Errorf("metrics.jsonl holds %+v; want OnEpoch's %+v", h, seen)
	}
	if f, _ := safetensors.Read(filepath.Join(cfg.Out, LastCheckpoint)); f == nil || f.Metadata["epoch"] != "2" || f.Metadata["batch"] != "0" {
		t.Fatalf("the stopped run's checkpoint is not at epoch 2's end: %v", f)
	}

	rc, err := ResumeConfig(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	var resumed []int
	rc.OnEpoch = func(m Metrics) error { resumed = append(resumed, m.Epoch); return nil }
	res, err = Run(context.Background(), rc)
	if err != nil || res.Epochs != 3 || len(res.StepLoss) != 3*6 || res.TestAccuracy == 0 {
		t.Fatalf("resumed after OnEpoch's stop: %+v, %v; want epoch 3 trained and tested", res, err)
	}
	if !slices.Equal(resumed, []int{3}) {
		t.Errorf("the resumed run's OnEpoch saw epochs %v; want [3]", resumed)
	}
}
