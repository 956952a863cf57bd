package train

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/residual-nn/residual/checkpoint"
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
	return checkpoint.Meta{
		Model:   r.cfg.Model,
		Classes: r.trainSet.Classes,
		// A folder of images of any size is seen through torchvision's
		// evaluation transform (the shorter side resized, the centre
		// cropped); predict and serve apply the same.
		Preprocess: checkpoint.Preprocess{Height: r.trainSet.H, Width: r.trainSet.W, Channels: r.trainSet.C,
			Mean: r.mean, Std: r.std, ResizeShorter: r.trainSet.EvalShorter()},
		Train:    cfg,
		Position: &checkpoint.Position{Epoch: r.epoch, Batch: r.batch, Step: r.opt.Steps(), BestValAcc: r.best, RNG: rng},
	}, nil
}

// save writes a checkpoint atomically into the run folder.
func (r *run) save(name string) error {
	m, err := r.meta()
	if err != nil {
		return err
	}
	return checkpoint.Write(filepath.Join(r.cfg.Out, name), r.model, m, r.opt.State())
}

// restore continues a run from a checkpoint of the same model.
func (r *run) restore(path string) error {
	c, err := checkpoint.Load(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("train: --resume: no checkpoint at %s", path)
		}
		return err
	}
	if c.Model.Marshal() != r.cfg.Model.Marshal() {
		return fmt.Errorf("train: %s holds a %s (%s), this run builds a %s; resume with the same model",
			path, c.Model.Name, c.Model.Marshal(), r.cfg.Model.Name)
	}
	if c.Position == nil {
		return fmt.Errorf("train: %s was not written by a training run (no position to resume from)", path)
	}
	if err := checkResume(c, path, r.cfg); err != nil {
		return err
	}
	r.model = c.Net // the same architecture, with the stored weights and statistics
	if r.opt, err = newOptimizer(r.cfg, r.model, r.stepsPerEpoch*r.cfg.Epochs); err != nil {
		return err
	}
	for k, t := range r.opt.State() {
		src, ok := c.Optimizer[k]
		if !ok || src.Len() != t.Len() {
			return fmt.Errorf("train: %s: optimizer state %q missing or mis-shaped (was it trained with another optimizer?)", path, k)
		}
		copy(t.Data, src.Data)
	}
	p := c.Position
	r.epoch, r.batch, r.best = p.Epoch, p.Batch, p.BestValAcc
	r.opt.SetSteps(p.Step)
	if r.rng.UnmarshalBinary(p.RNG) != nil {
		return fmt.Errorf("train: %s: bad RNG state", path)
	}
	r.history = readMetrics(filepath.Join(r.cfg.Out, metricsFile), r.epoch)
	fmt.Fprintf(r.cfg.Log, "resuming %s at epoch %d, batch %d (step %d)\n", path, r.epoch+1, r.batch, p.Step)
	return nil
}

// readMetrics returns the recorded epochs 1 to upTo, each once (the last
// line recorded for it: an epoch written twice, or torn, by a run that was
// killed and resumed counts once).
func readMetrics(path string, upTo int) []Metrics {
	f, err := os.Open(path)
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
