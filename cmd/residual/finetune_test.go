package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/train"
)

// The fine-tuning flags reach the trainer: a second run starts from the
// first one's checkpoint with the backbone frozen, a faster head, an EMA,
// label smoothing, clipping, a warm-up and patience, and reports what it
// loaded and froze, the top-5 accuracy, and writes the EMA checkpoint.
func TestFineTuneFlags(t *testing.T) {
	dir := t.TempDir()
	base := []string{"train", "--model", "resnet8", "--limit", "256", "--batch", "64"}
	var out, errb bytes.Buffer
	first := filepath.Join(dir, "first")
	if code := run(context.Background(), append(base, "--epochs", "1", "--out", first), &out, &errb); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errb.String())
	}
	out.Reset()
	second := filepath.Join(dir, "second")
	args := append(base, "--epochs", "2", "--out", second, "--init", filepath.Join(first, "last.safetensors"), "--freeze", "backbone",
		"--head-lr-mult", "10", "--ema", "0.99", "--label-smoothing", "0.1", "--clip-grad", "5", "--patience", "1", "--warmup-epochs", "0.5")
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("fine-tune: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"init: loaded", "froze", "top-5", "EMA val"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("fine-tune output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(second, "ema.safetensors")); err != nil {
		t.Error(err)
	}
}

// --resume takes the run's recorded settings for every flag not given: a
// run trained with several non-default flags continues from --out and
// --epochs alone, and a position setting given anew (--batch) is refused
// naming both values, as a usage error (exit status 2).
func TestResumeTakesTheRunsSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	var out, errb bytes.Buffer
	first := []string{"train", "--model", "resnet8", "--limit", "256", "--batch", "64", "--epochs", "1", "--lr", "0.05", "--ema", "0.99", "--seed", "7", "--out", dir}
	if code := run(context.Background(), first, &out, &errb); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"train", "--resume", "--out", dir, "--epochs", "2"}, &out, &errb); code != 0 {
		t.Fatalf("--resume --epochs 2: exit %d: %s\n%s", code, errb.String(), out.String())
	}
	for _, want := range []string{"resuming " + dir + " with the run's settings, with --epochs as given", "resnet8", "epoch 2/2", "EMA val"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the resumed run's output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"train", "--resume", "--out", dir, "--epochs", "3", "--batch", "32"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "batch 64 → 32") {
		t.Errorf("--resume with another --batch: exit %d: %s", code, errb.String())
	}
	// Another optimizer could not continue from the saved state: refused
	// before it is loaded (it failed there, exit 1, with a hint that did
	// not name the flag).
	errb.Reset()
	if code := run(context.Background(), []string{"train", "--resume", "--out", dir, "--epochs", "3", "--optimizer", "adam"}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), "--optimizer (Config.Optimizer) sgd → adam") {
		t.Errorf("--resume with another --optimizer: exit %d: %s", code, errb.String())
	}
	// --nesterov needs momentum (it failed in the optimizer, exit 1).
	errb.Reset()
	if code := run(context.Background(), []string{"train", "--resume", "--out", dir, "--epochs", "3", "--nesterov", "--momentum", "0"}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), "--nesterov true: needs momentum, and --momentum is 0") {
		t.Errorf("--resume --nesterov --momentum 0: exit %d: %s", code, errb.String())
	}
	// --image-size applies to the run's data set, which is no folder.
	errb.Reset()
	if code := run(context.Background(), []string{"train", "--resume", "--out", dir, "--image-size", "48"}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), `--image-size 48 with --resume: data: an image size and skipping bad images are for folder:DIR, not "mnist" (the run's data set)`) {
		t.Errorf("--resume --image-size on an mnist run: exit %d: %s", code, errb.String())
	}
	// Without --out, the default folder is looked in, and the error says
	// that --out names the run.
	t.Chdir(t.TempDir())
	errb.Reset()
	if code := run(context.Background(), []string{"train", "--resume", "--model", "resnet8"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "no run to resume in "+filepath.Join("runs", "resnet8-mnist")) || !strings.Contains(errb.String(), "give --out the folder of the run to resume") {
		t.Errorf("--resume without --out: exit %d: %s", code, errb.String())
	}
}

// Every train flag either names a recorded setting that --resume takes
// from the run (resumeFields) or is one a run does not record.
func TestResumeFieldsCoverTrainFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"train", "--help"}, &out, &errb); code != 0 {
		t.Fatalf("train --help: exit %d", code)
	}
	flags := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(out.String()+errb.String(), -1)
	if len(flags) < 30 {
		t.Fatalf("train --help lists %d flags:\n%s%s", len(flags), out.String(), errb.String())
	}
	var names []string
	for _, m := range flags {
		name := m[1]
		names = append(names, name)
		_, recorded := resumeFields[name]
		if recorded == slices.Contains(unrecordedTrainFlags, name) {
			t.Errorf("train flag --%s: in resumeFields %v, in unrecordedTrainFlags %v; want exactly one", name, recorded, !recorded)
		}
	}
	for name := range resumeFields {
		if !slices.Contains(names, name) {
			t.Errorf("resumeFields names --%s, which train lacks", name)
		}
	}
}

// On --resume, a rank other than 0 whose machine lacks the run folder
// (only rank 0 writes it) takes rank 0's record, with the flags given on
// its own command line on top (which the ranks then compare); when rank 0
// has no run, every rank fails, naming the checkpoint rank 0 looked for.
func TestResumeConfigOnRanks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"train", "--model", "resnet8", "--limit", "128", "--batch", "64", "--epochs", "1", "--seed", "7", "--out", dir}, &out, &errb); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errb.String())
	}
	missing := filepath.Join(t.TempDir(), "run")
	for _, tc := range []struct {
		dirs [2]string
		ok   bool
	}{{[2]string{dir, missing}, true}, {[2]string{missing, dir}, false}} {
		ranks := distributed.NewGroup(2)
		cfgs, errs := make([]train.Config, 2), make([]error, 2)
		var wg sync.WaitGroup
		for r := range ranks {
			fs := flag.NewFlagSet("train", flag.ContinueOnError)
			fs.Int("epochs", 0, "")
			if r == 1 {
				if err := fs.Parse([]string{"--epochs", "7"}); err != nil {
					t.Fatal(err)
				}
			}
			wg.Go(func() {
				cfgs[r], errs[r] = resumeConfig(fs, train.Config{Out: tc.dirs[r], Epochs: 7, Comm: ranks[r]}, io.Discard)
			})
		}
		wg.Wait()
		if !tc.ok {
			for r, err := range errs {
				if err == nil || !strings.Contains(err.Error(), filepath.Join(missing, "last.safetensors")) {
					t.Errorf("rank %d, rank 0 without a run: %v", r, err)
				}
			}
			continue
		}
		for r, c := range cfgs {
			wantEpochs := []int{1, 7}[r] // rank 0 the record's, rank 1 its flag's
			if errs[r] != nil || c.Model.Name != "resnet8" || c.Batch != 64 || c.Limit != 128 || c.Seed != 7 || c.Epochs != wantEpochs || c.Out != tc.dirs[r] || c.Comm != ranks[r] {
				t.Errorf("rank %d: model %q batch %d limit %d seed %d epochs %d out %s, %v; want resnet8, 64, 128, 7, %d, %s",
					r, c.Model.Name, c.Batch, c.Limit, c.Seed, c.Epochs, c.Out, errs[r], wantEpochs, tc.dirs[r])
			}
		}
	}
}

// --resume given to one rank of two is a usage error on both, naming the
// ranks (the resuming rank waited in a broadcast the other never joined);
// given to both, it passes.
func TestResumeOnSomeRanks(t *testing.T) {
	check := func(resume func(rank int) bool) []error {
		ranks := distributed.NewGroup(2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for r := range ranks {
			wg.Go(func() { errs[r] = resumeOnEveryRank(ranks[r], resume(r)) })
		}
		wg.Wait()
		return errs
	}
	for r, err := range check(func(r int) bool { return r == 1 }) {
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), `the ranks disagree on --resume: rank 1 differs from rank 0: rank 0 has "false", rank 1 has "true"`) {
			t.Errorf("rank %d: %v", r, err)
		}
	}
	if errs := check(func(int) bool { return true }); errs[0] != nil || errs[1] != nil {
		t.Errorf("--resume on every rank: %v", errs)
	}
}
