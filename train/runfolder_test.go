package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/tensor"
)

// A run folder that holds a run is refused without --resume or
// --overwrite, and nothing in it changes; --overwrite starts over; a
// resume with another batch size or seed is refused, naming both values,
// and one with more epochs continues; a killed write's temporary file is
// removed and a torn or duplicated metrics file is rewritten with each
// epoch once.
func TestRunFolderSafety(t *testing.T) {
	ctx := context.Background()
	c := tiny(t.TempDir())
	c.Epochs = 1
	if _, err := Run(ctx, c); err != nil {
		t.Fatal(err)
	}
	last := filepath.Join(c.Out, LastCheckpoint)
	before := must(os.ReadFile(last))
	metrics := must(os.ReadFile(filepath.Join(c.Out, metricsFile)))
	if _, err := Run(ctx, c); err == nil || !strings.Contains(err.Error(), "--resume") || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("a second run into the same folder: %v", err)
	}
	if string(must(os.ReadFile(last))) != string(before) || string(must(os.ReadFile(filepath.Join(c.Out, metricsFile)))) != string(metrics) {
		t.Fatal("the refused run changed the folder")
	}

	changed := c
	changed.Resume, changed.Epochs, changed.Batch, changed.Seed = true, 2, 16, 9
	_, err := Run(ctx, changed)
	if err == nil || !strings.Contains(err.Error(), "batch 32 → 16") || !strings.Contains(err.Error(), "seed 3 → 9") {
		t.Fatalf("resuming with another batch size and seed: %v", err)
	}

	// A killed write leaves a temporary file and, say, a duplicated line.
	tmp := filepath.Join(c.Out, ".last.safetensors.1234.tmp")
	os.WriteFile(tmp, []byte("partial"), 0o644)
	os.WriteFile(filepath.Join(c.Out, metricsFile), append(append([]byte{}, metrics...), metrics...), 0o644)
	more := c
	more.Resume, more.Epochs = true, 2
	if _, err := Run(ctx, more); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the interrupted write's %s is still there: %v", tmp, err)
	}
	var epochs []int
	for _, line := range strings.Split(strings.TrimSpace(string(must(os.ReadFile(filepath.Join(c.Out, metricsFile))))), "\n") {
		var m Metrics
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		epochs = append(epochs, m.Epoch)
	}
	if len(epochs) != 2 || epochs[0] != 1 || epochs[1] != 2 {
		t.Errorf("metrics hold epochs %v, want [1 2]", epochs)
	}

	over := c
	over.Overwrite = true
	if _, err := Run(ctx, over); err != nil {
		t.Fatalf("--overwrite: %v", err)
	}
	if n := strings.Count(string(must(os.ReadFile(filepath.Join(c.Out, metricsFile)))), "\n"); n != 1 {
		t.Errorf("after --overwrite with 1 epoch, metrics has %d lines", n)
	}
	for _, d := range []string{replacedDir, droppedDir} {
		if _, err := os.Stat(filepath.Join(c.Out, d)); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the new run's first epoch: %v", d, err)
		}
	}

	// An overwrite that ends before completing an epoch — a loss that is
	// NaN in the first steps, an interrupt (which saves a checkpoint of
	// its position) — puts the run it was replacing back.
	before, metrics = must(os.ReadFile(last)), must(os.ReadFile(filepath.Join(c.Out, metricsFile)))
	same := func(what string) {
		t.Helper()
		if string(must(os.ReadFile(last))) != string(before) || string(must(os.ReadFile(filepath.Join(c.Out, metricsFile)))) != string(metrics) {
			t.Errorf("%s: the run --overwrite was replacing is not back as it was", what)
		}
		for _, d := range []string{replacedDir, droppedDir} {
			if _, err := os.Stat(filepath.Join(c.Out, d)); !os.IsNotExist(err) {
				t.Errorf("%s: %s is still there: %v", what, d, err)
			}
		}
	}
	diverge := over
	diverge.LR = 1e30
	if _, err := Run(ctx, diverge); err == nil {
		t.Fatal("a run with a learning rate of 1e30 did not fail")
	}
	same("a diverging run")
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Run(stopped, over); !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "the run --overwrite was replacing is back in "+c.Out+", and nothing of this run was kept") {
		t.Fatalf("an interrupted run: %v; want ErrInterrupted saying the replaced run is back", err)
	}
	same("an interrupted run")
	// So does one whose TensorBoard events cannot start (a stale event
	// "file" that cannot be removed, there after the set-aside): Train
	// tries to put the run back (which this stale folder blocks in turn,
	// named; removed, the next start would finish it).
	withEvents := over
	withEvents.TensorBoard = true
	tr, err := Prepare(ctx, withEvents)
	if err != nil {
		t.Fatal(err)
	}
	stuck := filepath.Join(c.Out, "events.out.tfevents.stuck")
	if err := os.MkdirAll(filepath.Join(stuck, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Train(ctx); err == nil || !strings.Contains(err.Error(), stuck) || !strings.Contains(err.Error(), "putting the replaced run back") {
		t.Fatalf("a run whose events cannot start: %v; want the event file named and the replaced run put back", err)
	}
	if err := errors.Join(os.RemoveAll(stuck), restoreReplaced(c.Out, io.Discard)); err != nil {
		t.Fatal(err)
	}
	same("a run whose events cannot start")

	// What a killed overwrite leaves is settled at the next start: a
	// set-aside cut short (no marker) goes back whole; a whole one (the
	// marker) goes back over the new run's files; a dropped one is deleted.
	if err := os.Mkdir(filepath.Join(c.Out, replacedDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(c.Out, metricsFile), filepath.Join(c.Out, replacedDir, metricsFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, c); err == nil || !strings.Contains(err.Error(), "already holds a run") {
		t.Errorf("after a set-aside cut short, a plain run: %v; want the restored run refused", err)
	}
	same("a set-aside cut short")
	if err := setAside(c.Out); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(last, []byte("the new run's partial checkpoint"), 0o644)
	// --resume resumes the run a start puts back (ResumeConfig read the
	// killed overwrite's partial checkpoint, or said there was no run).
	if rc, err := ResumeConfig(c.Out); err != nil || rc.Epochs != c.Epochs || rc.Seed != c.Seed {
		t.Errorf("ResumeConfig after a killed overwrite: %+v, %v; want the replaced run's config", rc, err)
	}
	if _, err := Run(ctx, c); err == nil || !strings.Contains(err.Error(), "already holds a run") {
		t.Errorf("after a killed overwrite, a plain run: %v; want the restored run refused", err)
	}
	same("a killed overwrite")
	if err := os.Mkdir(filepath.Join(c.Out, droppedDir), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(c.Out, droppedDir, LastCheckpoint), []byte("the old run"), 0o644)
	if _, err := Run(ctx, c); err == nil || !strings.Contains(err.Error(), "already holds a run") {
		t.Errorf("after a killed drop, a plain run: %v", err)
	}
	same("a killed drop")
}

// Metrics that JSON cannot hold stop the run with a message saying it
// diverged, instead of an encoding error after the epoch's work.
func TestDivergedMetrics(t *testing.T) {
	m := Metrics{Epoch: 3, TrainLoss: 1e24, ValLoss: math.Inf(1), LR: 0.1}
	err := m.checkFinite()
	if err == nil || !strings.Contains(err.Error(), "validation loss is +Inf after epoch 3") {
		t.Errorf("an infinite validation loss: %v", err)
	}
	m.ValLoss = 2
	if err := m.checkFinite(); err != nil {
		t.Errorf("finite metrics (a training loss of 1e24 is still a number): %v", err)
	}
}

// A run folder is one run's while it is prepared or trains: a second run
// there, with Overwrite or without, is refused naming the folder and
// leaves the first's files alone (two runs in one folder both "succeeded",
// each overwriting the other's checkpoints and metrics); once the first
// has trained, or its Trainer has been dropped untrained, the folder is
// free again.
func TestRunFolderLocked(t *testing.T) {
	if !folderLocks {
		t.Skip("neither syscall.Flock nor LockFileEx on this platform: lockFolder takes nothing (lock_other.go)")
	}
	out := filepath.Join(t.TempDir(), "run")
	cfg := tiny(out)
	cfg.Epochs, cfg.Limit = 1, 64
	first, err := Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, overwrite := range []bool{false, true} {
		c := cfg
		c.Overwrite = overwrite
		if _, err := Prepare(context.Background(), c); err == nil || !strings.Contains(err.Error(), out+" is the run folder of another run in progress") {
			t.Errorf("a second run (Overwrite %v) while the first is prepared: %v", overwrite, err)
		}
	}
	if _, err := first.Train(context.Background()); err != nil {
		t.Fatalf("the first run: %v", err)
	}
	c := cfg
	c.Overwrite = true
	third, err := Prepare(context.Background(), c)
	if err != nil {
		t.Fatalf("a run after the first has trained: %v", err)
	}
	third.Close() // let go untrained
	fourth, err := Prepare(context.Background(), c)
	if err != nil {
		t.Fatalf("a run after another's Close: %v", err)
	}
	_ = fourth // dropped untrained
	for i := 0; ; i++ {
		runtime.GC() // the dropped Trainer's cleanup lets the folder go
		if _, err := Prepare(context.Background(), c); err == nil {
			break
		} else if i == 20 {
			t.Fatalf("a run after another's Trainer was dropped: %v", err)
		}
	}
}

// --resume where there is no run fails naming the checkpoint it looked
// for, and leaves no empty run folder behind.
func TestResumeWithoutRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "never-trained")
	cfg := tiny(out)
	cfg.Resume = true
	if _, err := Prepare(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "no checkpoint at "+filepath.Join(out, LastCheckpoint)) {
		t.Errorf("--resume without a run: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the run folder was made: %v", err)
	}
}

// ResumeConfig refuses a folder without a run, and a checkpoint that a
// training run did not write, naming what it read.
func TestResumeConfigRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := ResumeConfig(dir); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, LastCheckpoint)+" does not exist") {
		t.Errorf("a folder without a run: %v", err)
	}
	cfg := tiny(dir)
	net, err := models.Build(cfg.Model, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	meta := checkpoint.Meta{Model: cfg.Model, Classes: []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, Preprocess: checkpoint.Preprocess{Height: 28, Width: 28, Channels: 1, Normalisation: transform.Normalisation{Mean: []float64{0}, Std: []float64{1}}}}
	if err := checkpoint.Write(filepath.Join(dir, LastCheckpoint), net, meta, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ResumeConfig(dir); err == nil || !strings.Contains(err.Error(), "not written by a training run") {
		t.Errorf("a checkpoint without a training record: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, LastCheckpoint), []byte("not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ResumeConfig(dir); err == nil || !strings.Contains(err.Error(), "resuming "+dir) {
		t.Errorf("a corrupt checkpoint: %v", err)
	}
}

// A checkpoint whose position was edited to one the run cannot reach (a
// batch past the epoch's end, more steps than batches) is refused on
// --resume, naming it; it resumed and ran on with the position as given.
// (Negative ones are refused as the checkpoint is read.)
func TestResumeRefusesImpossiblePosition(t *testing.T) {
	c := tiny(t.TempDir())
	c.Epochs = 1
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.Out, LastCheckpoint)
	orig, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := strconv.Atoi(orig.Metadata["step"])
	if err != nil {
		t.Fatal(err)
	}
	// A step past the batches before the position: each batch is a step
	// at most (the schedule counts the skipped ones as the difference).
	for _, edit := range []map[string]string{{"batch": "99999"}, {"step": "999999999"}, {"step": strconv.Itoa(steps + 1)}} {
		md := maps.Clone(orig.Metadata)
		maps.Copy(md, edit)
		if err := safetensors.Write(path, orig.Tensors, md); err != nil {
			t.Fatal(err)
		}
		r := c
		r.Epochs, r.Resume = 2, true
		if _, err := Prepare(context.Background(), r); err == nil || !strings.Contains(err.Error(), "records a position this run cannot have reached") {
			t.Errorf("position edited to %v: %v", edit, err)
		}
	}
}

// ResumeConfigGroup gives every rank rank 0's recorded config, whether or
// not the rank's machine has the run folder, and rank 0's error (quoted on
// the others) when rank 0 has no run to resume.
func TestResumeConfigGroup(t *testing.T) {
	run0 := filepath.Join(t.TempDir(), "run")
	c := tiny(run0)
	c.Epochs, c.Seed = 1, 5
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	want, err := ResumeConfig(run0)
	if err != nil {
		t.Fatal(err)
	}
	for _, dirs := range [][2]string{
		{run0, filepath.Join(t.TempDir(), "missing")}, // rank 1's machine lacks the folder
		{filepath.Join(t.TempDir(), "missing"), run0}, // rank 0's does: an error everywhere
	} {
		ranks := distributed.NewGroup(2)
		cfgs, errs := make([]Config, 2), make([]error, 2)
		var wg sync.WaitGroup
		for r := range ranks {
			wg.Go(func() { cfgs[r], errs[r] = ResumeConfigGroup(ranks[r], dirs[r]) })
		}
		wg.Wait()
		if dirs[0] == run0 {
			for r := range ranks {
				want.Out = dirs[r]
				if errs[r] != nil || !reflect.DeepEqual(cfgs[r], want) {
					t.Errorf("rank %d: %+v, %v; want %+v", r, cfgs[r], errs[r], want)
				}
			}
			continue
		}
		if !errors.Is(errs[0], fs.ErrNotExist) || !strings.Contains(errs[0].Error(), "no run to resume in "+dirs[0]) {
			t.Errorf("rank 0 without a run: %v", errs[0])
		}
		if errs[1] == nil || !strings.Contains(errs[1].Error(), "rank 0: train: no run to resume in "+dirs[0]) {
			t.Errorf("rank 1 when rank 0 has no run: %v", errs[1])
		}
	}
}

// A resume on another number of ranks than the run's is the caller's to
// change (ErrConfig: the CLI's exit status 2), and names both counts.
func TestCheckResumeWorldSize(t *testing.T) {
	c := &checkpoint.Checkpoint{Meta: checkpoint.Meta{Train: json.RawMessage(`{"world_size":2}`), Position: &checkpoint.Position{}}}
	err := checkResume(c, "last.safetensors", Config{WorldSize: 3})
	if err == nil || !strings.Contains(err.Error(), "the run was trained on 2 ranks, this one runs on 3 ranks") || !errors.Is(err, ErrConfig) {
		t.Errorf("resume on 3 ranks of a 2-rank run: %v (ErrConfig: %v)", err, errors.Is(err, ErrConfig))
	}
}

// A resume whose optimizer could not take the checkpoint's optimizer
// state is refused before it loads any, naming the flag and both values,
// with ErrConfig (it failed at the load, exit status 1, asking whether the
// run was trained with another optimizer, also for --freeze); a change
// that keeps the state (Adam and AdamW, a momentum dropped to 0) passes.
func TestCheckResumeOptimizerState(t *testing.T) {
	base := tiny(t.TempDir()) // SGD, momentum 0.9, nothing frozen
	for _, tc := range []struct {
		was, now func(*Config)
		want     []string // nil: passes
	}{
		{nil, func(c *Config) { c.Optimizer = Adam }, []string{"--optimizer (Config.Optimizer) sgd → adam"}},
		{nil, func(c *Config) { c.Optimizer = "" }, nil}, // SGD
		{func(c *Config) { c.Optimizer = AdamW }, func(c *Config) { c.Optimizer = SGD }, []string{"--optimizer (Config.Optimizer) adamw → sgd"}},
		{func(c *Config) { c.Optimizer = Adam }, func(c *Config) { c.Optimizer = AdamW }, nil},
		{func(c *Config) { c.Momentum = 0 }, func(c *Config) { c.Momentum = 0.9 }, []string{"--momentum (Config.Momentum) 0 → 0.9", "no momentum buffers"}},
		{nil, func(c *Config) { c.Momentum = 0 }, nil},
	} {
		was := base
		if tc.was != nil {
			tc.was(&was)
		}
		now := was
		tc.now(&now)
		rec, err := json.Marshal(was)
		if err != nil {
			t.Fatal(err)
		}
		c := &checkpoint.Checkpoint{Meta: checkpoint.Meta{Train: rec, Position: &checkpoint.Position{}}}
		err = checkResume(c, "last.safetensors", now)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s %g %v → %s %g %v: %v", was.Optimizer, was.Momentum, was.Freeze, now.Optimizer, now.Momentum, now.Freeze, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrConfig) {
			t.Errorf("%s %g %v → %s %g %v: %v (ErrConfig: %v)", was.Optimizer, was.Momentum, was.Freeze, now.Optimizer, now.Momentum, now.Freeze, err, errors.Is(err, ErrConfig))
			continue
		}
		for _, w := range append(tc.want, "--init last.safetensors") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v lacks %q", err, w)
			}
		}
	}
}

// A resume may read the run's image folder without the skip-bad it had
// (the same images, or an error naming an unreadable one) but not with
// one it lacked (a file gone bad since would be left out: other images
// at the saved position), nor another folder, nor another size.
func TestCheckResumeSkipBad(t *testing.T) {
	for _, tc := range []struct {
		was, now string
		ok       bool
	}{
		{"folder,size=16,skip-bad:d", "folder,size=16:d", true},
		{"folder,skip-bad,all:d", "folder,all:d", true},
		{"folder,size=16:d", "folder,size=16,skip-bad:d", false},
		{"folder,size=16,skip-bad:d", "folder,size=16:e", false},
		{"folder,size=16,skip-bad:d", "folder,size=24:d", false},
	} {
		was, now := tiny(""), tiny("")
		was.Data, now.Data = tc.was, tc.now
		rec, err := json.Marshal(was)
		if err != nil {
			t.Fatal(err)
		}
		c := &checkpoint.Checkpoint{Meta: checkpoint.Meta{Train: rec, Position: &checkpoint.Position{}}}
		err = checkResume(c, "last.safetensors", now)
		if tc.ok && err != nil {
			t.Errorf("%s → %s: %v", tc.was, tc.now, err)
		}
		if !tc.ok && (err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), fmt.Sprintf("data %q → %q", tc.was, tc.now))) {
			t.Errorf("%s → %s: %v, want ErrConfig naming both", tc.was, tc.now, err)
		}
	}
}

// A resume may name the run's frozen modules otherwise (in another order,
// or "backbone" for its modules) or freeze more; one in which a parameter
// the run kept frozen would train is refused (ErrConfig), naming it: the
// checkpoint holds no optimizer state for it. (Spellings were compared:
// "layer1,conv1" → "conv1,layer1" was refused.)
func TestResumeFreeze(t *testing.T) {
	run := tiny(t.TempDir())
	run.Epochs, run.Freeze = 1, []string{"layer1", "conv1"}
	if _, err := Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		freeze []string
		want   string // "": resumes
	}{
		{[]string{"conv1", "layer1"}, ""},
		{[]string{"conv1", "layer1", "layer2", "bn1"}, ""},
		{[]string{"backbone"}, ""},
		{[]string{"conv1"}, "layer1.0.conv1.weight"},
		{nil, "conv1.weight"},
	} {
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(run.Out)); err != nil {
			t.Fatal(err)
		}
		c := run
		c.Out, c.Resume, c.Epochs, c.Freeze = dir, true, 2, tc.freeze
		_, err := Run(context.Background(), c)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("--freeze %v: %v", tc.freeze, err)
		case tc.want != "" && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "would train")):
			t.Errorf("--freeze %v: %v; want ErrConfig naming %s", tc.freeze, err, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), "from its weights with --init "+filepath.Join(dir, "last.safetensors")+" (Config.Init)"):
			// The flag, then the field, as every error a command shows
			// (it said "(--init PATH, Config.Init)").
			t.Errorf("--freeze %v: %v; want the way to start afresh as --init PATH (Config.Init)", tc.freeze, err)
		}
	}
}

// A run with Adam recorded SGD's momentum (the command line's default,
// 0.9) and Nesterov, unused, before Validate refused them with Adam: its
// folder still resumes, from its record alone (ResumeConfig drops them)
// and from a config that restates the run without them under ResumeSame
// (their recorded values are no difference).
func TestResumeOldAdamRecord(t *testing.T) {
	cfg := tiny(t.TempDir())
	cfg.Optimizer, cfg.Momentum, cfg.Epochs = Adam, 0, 1
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.Out, LastCheckpoint)
	oldAdamRecord(t, path)
	rc, err := ResumeConfig(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Optimizer != Adam || rc.Momentum != 0 || rc.Nesterov {
		t.Errorf("ResumeConfig of the old Adam run: optimizer %s, momentum %g, Nesterov %t; want adam, 0, false", rc.Optimizer, rc.Momentum, rc.Nesterov)
	}
	rc.Epochs = 2
	if res, err := Run(context.Background(), rc); err != nil || res.Epochs != 2 {
		t.Fatalf("resuming the old Adam run from its record: %v", err)
	}

	oldAdamRecord(t, path)
	same := cfg
	same.Epochs, same.Resume, same.ResumeSame = 2, true, true
	if res, err := Run(context.Background(), same); err != nil || res.Epochs != 2 {
		t.Fatalf("resuming the old Adam run with its settings restated under ResumeSame: %v", err)
	}
}

// oldAdamRecord rewrites the training config that the checkpoint at path
// records with momentum 0.9 and Nesterov, as an Adam run's was before
// Validate refused them.
func oldAdamRecord(t *testing.T, path string) {
	t.Helper()
	f, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]json.RawMessage // each setting's JSON as written
	if err := json.Unmarshal([]byte(f.Metadata["train"]), &rec); err != nil {
		t.Fatal(err)
	}
	rec["momentum"], rec["nesterov"] = json.RawMessage("0.9"), json.RawMessage("true")
	f.Metadata["train"] = string(must(json.Marshal(rec)))
	if err := safetensors.WriteDtypes(path, f.Tensors, f.Dtypes, f.Metadata); err != nil {
		t.Fatal(err)
	}
}
