package experiments

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/train"
)

// Budget is the training recipe shared by every network of a training
// experiment, so that they are compared on equal terms.
type Budget struct {
	Data   string // e.g. "fashion-mnist"
	Limit  int    // training (and test) images used; 0: all
	Epochs int
	Batch  int
	LR     float64
	// Warmup is the fraction of the steps over which the learning rate
	// rises linearly from 0 before the cosine decay (0: none).
	Warmup float64
	// Augment is the training images' augmentation; nil: random shifts of
	// up to 2 pixels.
	Augment *data.Augment
	Seed    uint64
	Log     io.Writer // progress; nil for none
	// Resume continues the runs already in the output folder (an
	// experiment that was stopped) instead of replacing them: see trainIn.
	Resume bool
}

// schedule returns the learning-rate schedule: a cosine, after a linear
// warm-up over the fraction Warmup of the run.
func (b Budget) schedule() train.Schedule {
	return train.Schedule{Kind: train.ScheduleCosine, WarmupEpochs: b.Warmup * float64(b.Epochs)}
}

func (b Budget) augment() *data.Augment {
	if b.Augment != nil {
		a := *b.Augment
		return &a
	}
	return &data.Augment{Pad: 2}
}

// recipe describes the budget's training recipe for a report.
func (b Budget) recipe() string {
	s := fmt.Sprintf("SGD, momentum 0.9, lr %g cosine", b.LR)
	if b.Warmup > 0 {
		s = fmt.Sprintf("SGD, momentum 0.9, lr %g cosine after a linear warm-up over %.0f%% of the steps", b.LR, 100*b.Warmup)
	}
	a := b.augment()
	aug := "no augmentation"
	switch {
	case a.Pad > 0 && a.Flip:
		aug = fmt.Sprintf("pad-%d crops and horizontal flips", a.Pad)
	case a.Pad > 0:
		aug = fmt.Sprintf("random shifts of up to %d pixels", a.Pad)
	case a.Flip:
		aug = "horizontal flips"
	}
	images := "all"
	if b.Limit > 0 {
		images = strconv.Itoa(b.Limit)
	}
	return fmt.Sprintf("%s, weight decay 1e-4, batch %d, %d epochs on %s %s training images with %s", s, b.Batch, b.Epochs, images, b.Data, aug)
}

// trained trains one network and returns its result and checkpoint path.
func (b Budget) trained(ctx context.Context, mc models.Config, dir string) (*train.Result, string, error) {
	log := b.Log
	if log == nil {
		log = io.Discard
	}
	fmt.Fprintf(log, "training %s (%d epochs on %s, seed %d)\n", mc.Name, b.Epochs, b.Data, b.Seed)
	res, err := trainIn(ctx, train.Config{Model: mc, Data: b.Data, Epochs: b.Epochs, Batch: b.Batch, Optimizer: train.SGD, LR: b.LR,
		Momentum: 0.9, WeightDecay: 1e-4, Schedule: b.schedule(), Augment: b.augment(), Seed: b.Seed, Limit: b.Limit,
		Out: dir, Log: log}, b.Resume)
	if err != nil {
		return nil, "", fmt.Errorf("experiments: training %s: %w", mc.Name, err)
	}
	return res, filepath.Join(dir, train.LastCheckpoint), nil
}

// trainIn trains cfg into its run folder cfg.Out. Without resume it
// starts over, replacing a run that is there: an experiment run again
// replaces its runs. With resume it continues the run there, if any —
// a finished one is only evaluated, a stopped one goes on from its
// checkpoint — and refuses one trained with any other setting
// (train.Config.ResumeSame): an experiment compares its networks on one
// recipe.
func trainIn(ctx context.Context, cfg train.Config, resume bool) (*train.Result, error) {
	_, err := os.Stat(filepath.Join(cfg.Out, train.LastCheckpoint))
	cfg.Resume = resume && err == nil
	cfg.Overwrite, cfg.ResumeSame = !cfg.Resume, true
	return train.Run(ctx, cfg)
}

// wholeStepLoss refuses a run whose step losses are incomplete: one
// resumed from a run folder written before the record was kept.
func wholeStepLoss(res *train.Result, dir string) error {
	if h := res.History; len(h) > 0 && len(res.StepLoss) != h[len(h)-1].Step {
		return fmt.Errorf("experiments: %s: the resumed run's step record holds %d of its %d steps (a run folder from before the record was kept?); run the experiment again without --resume",
			dir, len(res.StepLoss), h[len(h)-1].Step)
	}
	return nil
}

// trainSeconds is a run's training time: the sum of its epochs' wall
// times (validation included), so that a resumed run counts the epochs
// trained before it was stopped, and an epoch resumed in its middle its
// time before the stop.
func trainSeconds(res *train.Result) float64 {
	s := 0.0
	for _, m := range res.History {
		s += m.Seconds
	}
	return s
}

// seeds returns n consecutive seeds from first.
func seeds(first uint64, n int) []uint64 {
	out := make([]uint64, max(n, 1))
	for i := range out {
		out[i] = first + uint64(i)
	}
	return out
}

// trainError evaluates a trained checkpoint on the first limit (0: all)
// training images of its data set, in evaluation mode and without
// augmentation: the training error of the final weights, free of the
// running average's lag and of augmentation.
func trainError(ctx context.Context, path, spec string, limit int) (float64, error) {
	ck, err := checkpoint.Load(path)
	if err != nil {
		return 0, fmt.Errorf("experiments: %w", err)
	}
	tr, _, err := data.Open(ctx, spec, ck.Preprocess.Channels)
	if err != nil {
		return 0, fmt.Errorf("experiments: %w", err)
	}
	if limit > 0 && limit < tr.Len() {
		tr = tr.Subset(seqInts(limit))
	}
	l, err := train.Loader(ck.Preprocess, tr, 256)
	if err != nil {
		return 0, fmt.Errorf("experiments: %s: %w", spec, err)
	}
	e, err := train.Evaluate(ctx, ck.Net, l, len(tr.Classes), ag.FP32)
	if err != nil {
		return 0, fmt.Errorf("experiments: %s: %w", spec, err)
	}
	return 1 - e.Accuracy, nil
}

func preset(name string) models.Config {
	c, err := models.Preset(name)
	if err != nil {
		panic(err)
	}
	return c
}

// nullable is a float slice whose NaN entries are written as JSON null.
type nullable []float64

// MarshalJSON writes NaN as null.
func (v nullable) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
		}
	}
	b.WriteByte(']')
	return []byte(b.String()), nil
}

func seqInts(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func pct(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = 100 * x
	}
	return out
}

func constant(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// meanOf and maxOf skip NaN entries (blocks that could not be deleted).
func meanOf(v []float64) float64 {
	s, n := 0.0, 0
	for _, x := range v {
		if !math.IsNaN(x) {
			s, n = s+x, n+1
		}
	}
	return s / float64(max(n, 1))
}

func maxOf(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		if !math.IsNaN(x) {
			m = math.Max(m, x)
		}
	}
	return m
}

// seedRange returns max − min of v (0 for fewer than two values): with two
// seeds, the whole spread seen.
func seedRange(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return hi - lo
}
