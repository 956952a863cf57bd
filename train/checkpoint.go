package train

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Checkpoint file names in a run folder.
const (
	LastCheckpoint = "last.safetensors"
	BestCheckpoint = "best.safetensors"
)

// meta is what a checkpoint of this run records besides the weights.
func (r *run) meta() (checkpoint.Meta, error) {
	rng, err := r.rng.MarshalBinary()
	if err != nil {
		return checkpoint.Meta{}, err
	}
	cfg, err := json.Marshal(r.cfg)
	if err != nil {
		return checkpoint.Meta{}, fmt.Errorf("train: recording the run's config: %w", err)
	}
	// A folder of images of any size is seen through torchvision's
	// evaluation transform (the shorter side resized, the centre cropped);
	// predict and serve apply the same.
	pre := checkpoint.Preprocess{Height: r.trainSet.H, Width: r.trainSet.W, Channels: r.trainSet.C, ResizeShorter: r.trainSet.EvalShorter(), Normalisation: r.norm}
	var partial *checkpoint.Partial
	if r.batch > 0 { // stopped in the middle of an epoch
		partial = &checkpoint.Partial{LossSum: r.lossSum, Hits: r.accSum, Seen: r.seen, Images: r.imgs, Seconds: time.Since(r.epochStart).Seconds(), Skipped: r.skipped}
	}
	var read map[string]string
	for i, name := range evalReadKeys {
		if r.evalRead[i] != "" {
			if read == nil {
				read = map[string]string{}
			}
			read[name] = r.evalRead[i]
		}
	}
	return checkpoint.Meta{
		Model:      r.cfg.Model,
		Classes:    r.trainSet.Classes,
		Preprocess: pre,
		Train:      cfg,
		Position:   &checkpoint.Position{Epoch: r.epoch, Batch: r.batch, Step: r.opt.Steps(), BestValAcc: r.best, RNG: rng, Partial: partial, EvalRead: read},
	}, nil
}

// evalReadKeys name the validation and test sets in Position.EvalRead.
var evalReadKeys = [2]string{"validation", "test"}

// save writes a checkpoint atomically into the run folder.
func (r *run) save(name string) error {
	return r.saveNet(name, r.model, r.opt.State())
}

// saveNet writes a checkpoint of net (the model, or a copy holding the
// moving average) with the run's metadata.
func (r *run) saveNet(name string, net nn.Layer, opt map[string]*tensor.Tensor) error {
	m, err := r.meta()
	if err != nil {
		return err
	}
	return checkpoint.Write(filepath.Join(r.cfg.Out, name), net, m, opt)
}

// restore continues a run from a checkpoint of the same model.
func (r *run) restore(path string) error {
	c, err := checkpoint.Load(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("train: --resume (Config.Resume): no checkpoint at %s", path)
		}
		return err
	}
	ck, err := c.Model.Marshal()
	if err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	run, err := r.cfg.Model.Marshal()
	if err != nil {
		return configError{fmt.Errorf("train: %w", err)}
	}
	if ck != run {
		return configError{fmt.Errorf("train: %s holds a %s that differs from this run's %s in %s; resume with the same model and data",
			path, c.Model.Name, r.cfg.Model.Name, configDiff(ck, run))}
	}
	if c.Position == nil {
		return fmt.Errorf("train: %s was not written by a training run (no position to resume from)", path)
	}
	if err := checkResume(c, path, r.cfg); err != nil {
		return err
	}
	var was struct {
		Freeze []string `json:"freeze"`
	}
	if len(c.Train) > 0 && json.Unmarshal(c.Train, &was) == nil {
		if err := r.checkFreeze(was.Freeze, path); err != nil {
			return err
		}
	}
	// Into the model and optimizer Prepare built: the same architecture.
	if err := nn.LoadTorchState(r.model, nn.TorchState(c.Net), true); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	for k, t := range r.opt.State() {
		src, ok := c.Optimizer[k]
		if !ok || src.Len() != t.Len() {
			return fmt.Errorf("train: %s: optimizer state %q missing or mis-shaped (was it trained with another optimizer?)", path, k)
		}
		copy(t.Data, src.Data)
	}
	p := c.Position
	if p.Batch > r.stepsPerEpoch || p.Step > p.Epoch*r.stepsPerEpoch+p.Batch { // negative ones: refused by checkpoint.Load
		return fmt.Errorf("train: %s records a position this run cannot have reached (epoch %d, batch %d, step %d; an epoch has %d batches, each a step at most): not a checkpoint this trainer wrote for these settings",
			path, p.Epoch+1, p.Batch, p.Step, r.stepsPerEpoch)
	}
	r.epoch, r.batch, r.best = p.Epoch, p.Batch, p.BestValAcc
	r.setSteps(p.Step)
	if r.rng.UnmarshalBinary(p.RNG) != nil {
		return fmt.Errorf("train: %s: bad RNG state", path)
	}
	r.history = readMetrics(filepath.Join(r.cfg.Out, metricsFile), r.epoch)
	r.steps, r.stepLoss = readStepLoss(r.cfg.Out, p.Step)
	if len(r.steps) != p.Step { // steps 1…Step, each once, when complete
		fmt.Fprintf(r.cfg.Log, "%s holds %d of the %d steps before the resumption (a folder from before the record was kept, or a record lost); the step-loss curve and Result.StepLoss leave them out\n",
			filepath.Join(r.cfg.Out, stepLossFile), len(r.steps), p.Step)
	}
	r.partial = p.Partial
	for i, name := range evalReadKeys {
		r.evalRead[i] = p.EvalRead[name]
	}
	fmt.Fprintf(r.cfg.Log, "resuming %s at epoch %d, batch %d (step %d)\n", path, r.epoch+1, r.batch, p.Step)
	return nil
}

// readMetrics returns the recorded epochs 1 to upTo, each once (the last
// line recorded for it: an epoch written twice, or torn, by a run that was
// killed and resumed counts once).
func readMetrics(path string, upTo int) []Metrics {
	f, err := limits.OpenNoWait(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	byEpoch := map[int]Metrics{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m Metrics
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Epoch >= 1 && m.Epoch <= upTo {
			byEpoch[m.Epoch] = m
		}
	}
	var out []Metrics
	for e := 1; e <= upTo; e++ {
		if m, ok := byEpoch[e]; ok {
			out = append(out, m)
		}
	}
	return out
}

// configDiff lists the fields in which two model configs (JSON, as
// models.Config.Marshal writes them) differ, as "field checkpoint's
// value (this run: value)", the checkpoint's keys in order, then those
// only the run has; the configs whole when they do not parse.
func configDiff(ck, run string) string {
	var a, b any
	if json.Unmarshal([]byte(ck), &a) != nil || json.Unmarshal([]byte(run), &b) != nil {
		return fmt.Sprintf("%s against %s", ck, run)
	}
	var diffs []string
	var walk func(path string, x, y any)
	walk = func(path string, x, y any) {
		mx, okx := x.(map[string]any)
		my, oky := y.(map[string]any)
		if !okx || !oky {
			jx, _ := json.Marshal(x)
			jy, _ := json.Marshal(y)
			if string(jx) != string(jy) {
				diffs = append(diffs, fmt.Sprintf("%s %s (this run: %s)", path, jx, jy))
			}
			return
		}
		keys := slices.Sorted(maps.Keys(mx))
		for _, k := range slices.Sorted(maps.Keys(my)) {
			if _, ok := mx[k]; !ok {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			p := k
			if path != "" && path != "config" {
				p = path + "." + k
			}
			walk(p, mx[k], my[k])
		}
	}
	walk("", a, b)
	return strings.Join(diffs, ", ")
}
