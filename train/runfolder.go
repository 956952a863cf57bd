package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/internal/atomicfile"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/nn"
)

// The run folder's records: one line per epoch, one per step.
const (
	metricsFile  = "metrics.jsonl"
	stepLossFile = "step_loss.csv"
)

// replacedDir is the folder, inside the run folder, that holds the files
// of a run being replaced (Config.Overwrite) until the replacing run has
// completed an epoch: a run that ends before that — failed, interrupted,
// killed — gets them back, so an overwrite that never got going loses
// nothing. Its states, each left by an atomic step:
//
//   - replacedDir without completeMarker: a set-aside that was cut short;
//     its files go back (everything in the run folder is the old run's);
//   - replacedDir with completeMarker: the old run, whole; restoring it
//     removes the new run's files, then the marker, then moves it back;
//   - droppedDir: the old run being deleted (replacedDir renamed once the
//     new run completed an epoch); deleting it is all that is left.
const (
	replacedDir    = ".replaced"
	completeMarker = ".complete"
	droppedDir     = ".replaced.dropped"
)

// runFiles lists the files of a run in folder dir that a new run replaces:
// its records, checkpoints, curves and TensorBoard event files.
func runFiles(dir string) []string {
	var files []string
	for _, name := range []string{metricsFile, stepLossFile, LastCheckpoint, BestCheckpoint, EMACheckpoint, "loss.png", "accuracy.png", "step_loss.png"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			files = append(files, name)
		}
	}
	events, _ := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
	for _, e := range events {
		files = append(files, filepath.Base(e))
	}
	return files
}

// moveAll moves the run files of folder from into folder to.
func moveAll(from, to string) error {
	for _, name := range runFiles(from) {
		if err := os.Rename(filepath.Join(from, name), filepath.Join(to, name)); err != nil {
			return err
		}
	}
	return nil
}

// setAside moves the run in out into replacedDir and marks it whole; on
// an error it moves what it had moved back.
func setAside(out string) error {
	dir := filepath.Join(out, replacedDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("train: setting the replaced run aside: %w", err)
	}
	err := moveAll(out, dir)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, completeMarker), nil, 0o644)
	}
	if err != nil {
		if rerr := errors.Join(moveAll(dir, out), os.Remove(dir)); rerr != nil {
			return fmt.Errorf("train: setting the replaced run aside: %w; and putting it back: %w", err, rerr)
		}
		return fmt.Errorf("train: setting the replaced run aside: %w", err)
	}
	return nil
}

// restoreReplaced puts a run set aside by setAside back into out, over
// whatever the replacing run wrote there; nothing to do without one.
func restoreReplaced(out string, log io.Writer) error {
	dir := filepath.Join(out, replacedDir)
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	marker := filepath.Join(dir, completeMarker)
	if _, err := os.Stat(marker); err == nil {
		for _, name := range runFiles(out) { // the replacing run's
			if err := os.Remove(filepath.Join(out, name)); err != nil {
				return fmt.Errorf("train: putting the replaced run back: %w", err)
			}
		}
		if err := os.Remove(marker); err != nil {
			return fmt.Errorf("train: putting the replaced run back: %w", err)
		}
	}
	if err := errors.Join(moveAll(dir, out), os.Remove(dir)); err != nil {
		return fmt.Errorf("train: putting the replaced run back: %w", err)
	}
	fmt.Fprintf(log, "the run that --overwrite was replacing is back in %s (the new run did not complete an epoch)\n", out)
	return nil
}

// replacing reports whether the run replaces one set aside
// (Config.Overwrite) that goes back if it ends before completing an epoch.
func (r *run) replacing() bool {
	if !r.cfg.Overwrite || r.replacedDropped || !r.rank0() {
		return false
	}
	_, err := os.Stat(filepath.Join(r.cfg.Out, replacedDir))
	return err == nil
}

// errReplacedBack is ErrInterrupted for a run stopped before it completed
// an epoch while it replaced another (Config.Overwrite): that run is back,
// and nothing of this one was kept to resume. out is the run folder ("" on
// ranks other than 0, which do not write it).
type errReplacedBack struct{ out string }

func (e errReplacedBack) Error() string {
	where := e.out
	if where == "" {
		where = "rank 0's run folder"
	}
	return fmt.Sprintf("train: interrupted before the first epoch's end; the run --overwrite was replacing is back in %s, and nothing of this run was kept", where)
}

func (e errReplacedBack) Is(target error) bool { return target == ErrInterrupted }

// errTestStopped is ErrInterrupted for a run stopped during its final test
// evaluation: the training is complete, there is nothing to resume.
type errTestStopped struct{}

func (errTestStopped) Error() string {
	return "train: interrupted during the test evaluation; the training is complete and saved (residual eval measures the test set)"
}

func (errTestStopped) Is(target error) bool { return target == ErrInterrupted }

// dropReplaced deletes the run set aside, once the replacing run has
// completed an epoch. It renames it first, so that a kill in the middle
// of the deletion leaves droppedDir (finished at the next start), never a
// part of the old run that restoreReplaced would take for all of it. A
// failure to delete is reported on log, not returned: the new run goes on.
func dropReplaced(out string, log io.Writer) {
	dir := filepath.Join(out, replacedDir)
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, filepath.Join(out, droppedDir)); err != nil {
			fmt.Fprintf(log, "warning: the run --overwrite replaced is still in %s: %v\n", dir, err)
			return
		}
	}
	finishDrop(out, log)
}

// finishDrop deletes droppedDir, if a drop left it.
func finishDrop(out string, log io.Writer) {
	dropped := filepath.Join(out, droppedDir)
	if _, err := os.Stat(dropped); err != nil {
		return
	}
	if err := os.RemoveAll(dropped); err != nil {
		fmt.Fprintf(log, "warning: could not delete the run --overwrite replaced, in %s: %v\n", dropped, err)
	}
}

// lockFile is the file in a run folder whose lock (lockFolder) the run
// in progress holds.
const lockFile = ".residual.lock"

// prepareFolder readies the run folder before any work: it takes the
// folder's lock (lockFolder: another run in progress there is refused;
// the caller closes what it returns when the run ends), refuses to start
// over a run that is there unless the run resumes it or Overwrite says to
// replace it (setting it aside until the new run completes an epoch), and
// removes the temporary files of a checkpoint write that was killed. What
// a killed overwrite left is settled first.
func prepareFolder(cfg Config) (lock io.Closer, err error) {
	defer func() {
		if err != nil && lock != nil { // the lock goes with the error
			lock.Close()
			lock = nil
		}
	}()
	last := filepath.Join(cfg.Out, LastCheckpoint)
	noRun := fmt.Errorf("train: --resume (Config.Resume): no checkpoint at %s", last)
	if _, err := os.Stat(cfg.Out); cfg.Resume && errors.Is(err, fs.ErrNotExist) {
		return nil, noRun // before making a folder for nothing
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	// The folder is locked before anything in it is touched (a run in
	// progress may be replacing the run set aside in it).
	if lock, err = lockFolder(cfg.Out); err != nil {
		return nil, err
	}
	// What an overwrite killed before its end left: a replaced run whose
	// replacement completed an epoch is deleted, any other is put back.
	finishDrop(cfg.Out, cfg.Log)
	if err := restoreReplaced(cfg.Out, cfg.Log); err != nil {
		return lock, err
	}
	if _, err := os.Stat(last); cfg.Resume && errors.Is(err, fs.ErrNotExist) {
		return lock, noRun
	}
	if _, err := os.Stat(last); err == nil && !cfg.Resume && !cfg.Overwrite {
		return lock, fmt.Errorf("train: %s already holds a run (%s); continue it with --resume (Config.Resume), or start over with --overwrite (Config.Overwrite, which replaces it once the new run completes an epoch)", cfg.Out, last)
	}
	// The temporary files of atomic writes (checkpoints, metrics, curves)
	// are named .NAME.*.tmp; one is left only by a write that was killed.
	stale, _ := filepath.Glob(filepath.Join(cfg.Out, ".*.*.tmp"))
	for _, f := range stale {
		if err := os.Remove(f); err != nil {
			return lock, fmt.Errorf("train: removing %s, left by an interrupted write: %w", f, err)
		}
		fmt.Fprintf(cfg.Log, "removed %s, left by an interrupted write\n", f)
	}
	if cfg.Resume {
		return lock, nil
	}
	if _, err := os.Stat(last); err == nil && cfg.Overwrite {
		return lock, setAside(cfg.Out)
	}
	for _, name := range []string{metricsFile, stepLossFile, LastCheckpoint, BestCheckpoint, EMACheckpoint} {
		if err := os.Remove(filepath.Join(cfg.Out, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return lock, fmt.Errorf("train: %w", err)
		}
	}
	return lock, nil
}

// positionSettings are the settings a saved position depends on: with
// another value the same epoch and batch would mean other images, or
// another order of them. Epochs, the learning rate and the schedule may
// change on --resume (training continues, along another schedule), and
// the data may lose a folder's skip-bad (checkResume: the same images, or
// an error naming an unreadable one).
var positionSettings = []string{"model", "data", "task", "batch", "seed", "limit", "val_split", "augment", "world_size"}

// resumeChanges compares the training config a checkpoint recorded with
// this run's and lists the settings among keys (nil: all of either) that
// differ ("batch 128 → 64"), sorted; nothing for a checkpoint that
// recorded none. An Adam or AdamW run's recorded Momentum and Nesterov are
// left out: they had no effect (Config.dropAdamMomentum).
func resumeChanges(stored json.RawMessage, cfg Config, keys []string) ([]string, error) {
	if len(stored) == 0 {
		return nil, nil
	}
	var was, now map[string]json.RawMessage
	if err := json.Unmarshal(stored, &was); err != nil {
		return nil, fmt.Errorf("train: the checkpoint's training config: %w", err)
	}
	var opt Optimizer
	if json.Unmarshal(was["optimizer"], &opt) == nil && opt.adam() {
		// An Adam run recorded SGD's settings, unused, before Validate
		// refused them (Config.dropAdamMomentum).
		delete(was, "momentum")
		delete(was, "nesterov")
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &now); err != nil {
		return nil, err
	}
	if keys == nil {
		for k := range was {
			keys = append(keys, k)
		}
		for k := range now {
			if _, ok := was[k]; !ok {
				keys = append(keys, k)
			}
		}
	}
	var diffs []string
	for _, k := range keys {
		w, n := compact(was[k]), compact(now[k])
		if orNone(w) != orNone(n) { // a key a checkpoint lacks equals its zero value now
			diffs = append(diffs, fmt.Sprintf("%s %s → %s", k, orNone(w), orNone(n)))
		}
	}
	sort.Strings(diffs)
	return diffs, nil
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if len(raw) == 0 || json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" || s == "null" || s == "0" || s == `""` {
		return "(none)"
	}
	return s
}

// ResumeConfig returns the config of the run in folder dir as its last
// checkpoint recorded it, with Out set to dir and Resume set, so that
//
//	cfg, err := train.ResumeConfig("runs/resnet20-mnist")
//	cfg.Epochs = 30 // optional: go on for longer
//	t, err := train.Prepare(ctx, cfg)
//
// continues the run where it stopped without restating its settings. What
// a run does not record is left at its zero value: Log (set it to see
// progress), Live, TensorBoard, Overwrite, Comm, and in-memory TrainSet and
// TestSet (a run trained on those cannot be resumed this way). The
// settings that a saved position depends on (Model, Data, Task, Batch,
// Seed, Limit, ValSplit, Augment and the number of ranks; an image
// folder's Data may only lose its skip-bad, data.WithoutSkipBad, which
// reads the same images or stops naming an unreadable one), and those its
// optimizer state depends on (the optimizer, SGD against Adam or AdamW; a
// momentum from 0; a Freeze under which a parameter the run froze would
// train), must stay as they are; Prepare refuses the run otherwise.
func ResumeConfig(dir string) (Config, error) {
	path := filepath.Join(dir, LastCheckpoint)
	if _, err := os.Stat(filepath.Join(dir, replacedDir, LastCheckpoint)); err == nil {
		// An overwrite killed before its first epoch's end: the run it
		// was replacing is what a start puts back (prepareFolder), and
		// what a --resume resumes.
		path = filepath.Join(dir, replacedDir, LastCheckpoint)
	}
	c, err := checkpoint.Load(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Config{}, noRunError{dir, path}
		}
		return Config{}, fmt.Errorf("train: resuming %s: %w", dir, err)
	}
	if c.Position == nil || len(c.Train) == 0 {
		return Config{}, fmt.Errorf("train: %s was not written by a training run (it records no training config to resume)", path)
	}
	var cfg Config
	if err := json.Unmarshal(c.Train, &cfg); err != nil {
		return Config{}, fmt.Errorf("train: %s: the recorded training config: %w", path, err)
	}
	if cfg.Data == "" {
		return Config{}, fmt.Errorf("train: %s: the recorded training config names no data set", path)
	}
	cfg.dropAdamMomentum()
	cfg.Out, cfg.Resume = dir, true
	return cfg, nil
}

// ResumeConfigGroup is ResumeConfig for the ranks of a distributed run:
// rank 0 reads its run folder (only rank 0 writes one) and every rank
// returns rank 0's recorded config, or an error (rank 0's own, or one
// that quotes it on the others). Every rank of c must call it. A rank
// whose machine has no copy of the folder thus resumes with the same
// settings as rank 0 without restating them; Comm is left for the caller
// to set, as ResumeConfig leaves it.
func ResumeConfigGroup(c distributed.Comm, dir string) (Config, error) {
	// Rank 0's config as JSON after a "c", or its error's text after an
	// "e".
	var msg string
	var cfg Config
	var err error
	if c.Rank() == 0 {
		var b []byte
		if cfg, err = ResumeConfig(dir); err == nil {
			b, err = json.Marshal(cfg)
		}
		msg = "c" + string(b)
		if err != nil {
			msg = "e" + err.Error()
		}
	}
	got, berr := distributed.BroadcastString(c, msg, 0)
	if berr != nil {
		return Config{}, errors.Join(err, fmt.Errorf("train: resuming %s: sharing rank 0's config: %w", dir, berr))
	}
	if c.Rank() == 0 {
		return cfg, err
	}
	switch {
	case strings.HasPrefix(got, "e"):
		return Config{}, fmt.Errorf("train: resuming %s: rank 0: %s", dir, got[1:])
	case !strings.HasPrefix(got, "c"):
		return Config{}, fmt.Errorf("train: resuming %s: rank 0 sent no config", dir)
	}
	if err := json.Unmarshal([]byte(got[1:]), &cfg); err != nil {
		return Config{}, fmt.Errorf("train: resuming %s: rank 0's config: %w", dir, err)
	}
	cfg.Out, cfg.Resume = dir, true
	return cfg, nil
}

// noRunError is ResumeConfig's error for a folder without a run; it is
// fs.ErrNotExist for errors.Is.
type noRunError struct{ dir, path string }

func (e noRunError) Error() string {
	return fmt.Sprintf("train: no run to resume in %s: %s does not exist", e.dir, e.path)
}

func (e noRunError) Is(target error) bool { return target == fs.ErrNotExist }

// checkResume refuses a --resume whose position settings differ from the
// checkpoint's, naming each one, or whose optimizer could not take the
// checkpoint's optimizer state (checkOptimizerState) (ErrConfig: the
// settings are the caller's to change).
func checkResume(c *checkpoint.Checkpoint, path string, cfg Config) error {
	var was struct {
		Data      string    `json:"data"`
		WorldSize int       `json:"world_size"`
		Optimizer Optimizer `json:"optimizer"`
		Momentum  float64   `json:"momentum"`
		Freeze    []string  `json:"freeze"`
	}
	recorded := len(c.Train) > 0 && json.Unmarshal(c.Train, &was) == nil
	if recorded && was.WorldSize != cfg.WorldSize {
		ranks := func(n int) string {
			switch n {
			case 0:
				return "one process without --distributed"
			case 1:
				return "1 rank"
			}
			return fmt.Sprintf("%d ranks", n)
		}
		return configError{fmt.Errorf("train: --resume (Config.Resume) from %s: the run was trained on %s, this one runs on %s; each rank's shard of the data, and so the saved position, depends on the number of ranks — resume with %s, or start over with --overwrite",
			path, ranks(was.WorldSize), ranks(cfg.WorldSize), ranks(was.WorldSize))}
	}
	position := cfg
	if recorded && cfg.Data != was.Data && cfg.Data == data.WithoutSkipBad(was.Data) {
		// A folder the run read skipping unreadable files, read now
		// without: the same images in the same order, or an error naming
		// the unreadable one.
		position.Data = was.Data
	}
	diffs, err := resumeChanges(c.Train, position, positionSettings)
	if err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	if len(diffs) > 0 {
		return configError{fmt.Errorf("train: --resume (Config.Resume) from %s with other settings than the run's: %s; the saved position (epoch %d, batch %d) would mean other images — resume with the run's settings, or start over with --overwrite",
			path, strings.Join(diffs, ", "), c.Position.Epoch+1, c.Position.Batch)}
	}
	if recorded {
		if err := checkOptimizerState(was.Optimizer, was.Momentum, path, cfg); err != nil {
			return configError{err}
		}
	}
	if !cfg.ResumeSame {
		return nil
	}
	if diffs, err = resumeChanges(c.Train, cfg, nil); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("train: resuming %s, trained with other settings: %s; this run must follow the one recipe it started with — resume with its settings, or start over",
			path, strings.Join(diffs, ", "))
	}
	return nil
}

// checkOptimizerState refuses a resume whose optimizer would want other
// state than the run's checkpoint holds (path; the run's optimizer and
// momentum were opt and momentum): SGD's
// momentum buffers against Adam's and AdamW's two moments (Adam and AdamW
// keep the same ones), and SGD momentum where the run kept none. A
// momentum set to 0 drops the buffers, and may change. (What --freeze
// may change, the run's restore checks on the model: checkFreeze.)
func checkOptimizerState(opt Optimizer, momentum float64, path string, cfg Config) error {
	now := cfg.Optimizer
	if opt == "" {
		opt = SGD
	}
	if now == "" {
		now = SGD
	}
	fresh := startAfresh(path)
	switch {
	case (opt == SGD) != (now == SGD):
		return fmt.Errorf("train: --resume (Config.Resume) from %s: --optimizer (Config.Optimizer) %s → %s: the checkpoint holds %s's optimizer state, which %s cannot continue from — %s",
			path, opt, now, opt, now, fresh)
	case now == SGD && momentum == 0 && cfg.Momentum > 0:
		return fmt.Errorf("train: --resume (Config.Resume) from %s: --momentum (Config.Momentum) 0 → %g: the run kept no momentum buffers to continue from — %s",
			path, cfg.Momentum, fresh)
	}
	return nil
}

// checkFreeze refuses a resume (from path, whose run froze the modules
// freeze names) in which a parameter the run kept frozen would train: the
// checkpoint holds no optimizer state for it. The same parameters named
// otherwise ("backbone", or its modules listed, in any order), or more of
// them frozen, resume.
func (r *run) checkFreeze(freeze []string, path string) error {
	was, err := r.freezePrefixes(freeze)
	if err != nil {
		return configError{fmt.Errorf("train: %s: the run's --freeze %s: %w", path, strings.Join(freeze, ","), err)}
	}
	var thaw []string
	for _, e := range nn.StateDict(r.model) {
		if e.Param != nil && e.Param.RequiresGrad() && slices.ContainsFunc(was, func(p string) bool { return underPrefix(e.Name, p) }) {
			thaw = append(thaw, e.Name)
		}
	}
	if len(thaw) == 0 {
		return nil
	}
	names := func(f []string) string {
		if len(f) == 0 {
			return "none"
		}
		return strings.Join(f, ",")
	}
	more := ""
	if len(thaw) > 3 {
		more = fmt.Sprintf(" and %d more", len(thaw)-3)
		thaw = thaw[:3]
	}
	return configError{fmt.Errorf("train: --resume (Config.Resume) from %s: --freeze (Config.Freeze) %s → %s: %s%s, frozen in the run, would train, and the checkpoint holds no optimizer state for them — %s",
		path, names(freeze), names(r.cfg.Freeze), strings.Join(thaw, ", "), more, startAfresh(path))}
}

// startAfresh is what a resume from path refused for want of optimizer
// state (checkOptimizerState, checkFreeze) says to do instead.
func startAfresh(path string) string {
	return fmt.Sprintf("resume with the run's, or start a new run in another folder from its weights with --init %s (Config.Init)", path)
}

// checkFinite refuses metrics that JSON cannot hold and that say the run
// diverged: a validation loss that overflowed to ±Inf or became NaN while
// every training step's loss stayed finite.
func (m Metrics) checkFinite() error {
	for _, v := range []struct {
		name string
		x    float64
	}{{"training loss", m.TrainLoss}, {"validation loss", m.ValLoss}, {"validation accuracy", m.ValAcc}, {"validation mean IoU", m.ValMeanIoU}, {"learning rate", m.LR}} {
		if math.IsNaN(v.x) || math.IsInf(v.x, 0) {
			return fmt.Errorf("train: the %s is %g after epoch %d: the run diverged; stopped, checkpoints left as they were (try a lower learning rate)", v.name, v.x, m.Epoch)
		}
	}
	return nil
}

// writeMetrics writes the whole history to the run folder's metrics file
// atomically: an epoch interrupted while its line was written, then
// resumed, leaves neither a torn line nor a duplicate epoch.
func writeMetrics(dir string, h []Metrics) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, m := range h {
		if err := enc.Encode(m); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	return atomicfile.Write(filepath.Join(dir, metricsFile), b.Bytes())
}

// writeStepLoss writes the loss of every step so far to the run folder's
// step_loss.csv ("step,loss" and a line per step), whole and atomically
// like the metrics, so that a resumed run's record and curve cover the
// steps before the resumption.
func writeStepLoss(dir string, steps []int, losses []float64) error {
	b := make([]byte, 0, 16+24*len(steps))
	b = append(b, "step,loss\n"...)
	for i, s := range steps {
		b = strconv.AppendInt(b, int64(s), 10)
		b = append(b, ',')
		b = strconv.AppendFloat(b, losses[i], 'g', -1, 64)
		b = append(b, '\n')
	}
	return atomicfile.Write(filepath.Join(dir, stepLossFile), b)
}

// readStepLoss returns the steps 1 to upTo recorded in a run folder's
// step_loss.csv, in order, each once (a step recorded twice, by a run
// killed between writing its record and its checkpoint and then resumed,
// counts once, with its last loss). A missing or unreadable record gives
// nothing: it only draws a curve.
func readStepLoss(dir string, upTo int) ([]int, []float64) {
	b, err := limits.ReadFile(filepath.Join(dir, stepLossFile), limits.HeaderBytes)
	if err != nil {
		return nil, nil
	}
	byStep := map[int]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		s, l, ok := strings.Cut(line, ",")
		if !ok {
			continue
		}
		step, err1 := strconv.Atoi(s)
		loss, err2 := strconv.ParseFloat(l, 64)
		if err1 == nil && err2 == nil && step >= 1 && step <= upTo {
			byStep[step] = loss
		}
	}
	steps := make([]int, 0, len(byStep))
	for s := range byStep {
		steps = append(steps, s)
	}
	sort.Ints(steps)
	losses := make([]float64, len(steps))
	for i, s := range steps {
		losses[i] = byStep[s]
	}
	return steps, losses
}
