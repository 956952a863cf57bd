package train

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensor"
)

// limited returns the indices of Config.Limit's n images of d: the first n
// of the sets that come shuffled (MNIST's, CIFAR's files), and n spread
// evenly over an image folder, whose files are listed class by class, so
// that a limited run still sees every class.
func limited(d *data.Dataset, n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
		if d.Files != nil {
			idx[i] = i * d.Len() / n
		}
	}
	return idx
}

// setup prepares Prepare's run on one process (or its part on a rank:
// joinGroup does the rest). An error after the run folder was taken
// returns the run with it, holding the folder's lock.
func setup(ctx context.Context, cfg Config) (*run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var init *checkpoint.Checkpoint
	channels := 0 // the data's own
	if cfg.Init != "" {
		path := cfg.Init
		if last := filepath.Join(cfg.Out, LastCheckpoint); cfg.Resume {
			// The run's own checkpoint records what it took from the init
			// (network, channels, normalisation): a resumed run does not
			// need the init file, which may have moved since.
			if _, err := os.Stat(last); err == nil {
				path = last
			}
		}
		var err error
		if init, err = loadInit(path); err != nil {
			return nil, err
		}
		channels = init.Preprocess.Channels
		if err := modelFromInit(&cfg, init); err != nil {
			return nil, err
		}
		// A folder read at no size of its own is read at the size the
		// initial model took (a model fine-tuned from a 32-pixel one is
		// not trained on 224-pixel images unless asked).
		if p := init.Preprocess; data.IsFolderSpec(cfg.Data) && data.FolderSize(cfg.Data) == 0 && p.Height == p.Width && cfg.TrainSet == nil {
			spec, err := data.FolderSpec(cfg.Data, p.Height, false)
			if err != nil {
				return nil, fmt.Errorf("train: %w", err)
			}
			cfg.Data = spec
		}
	}
	if cfg.Task == "" { // the model's own task
		cfg.Task = cfg.Model.Task()
		if err := cfg.Validate(); err != nil { // the checks that depend on the task
			return nil, err
		}
	}
	trainSet, testSet := cfg.TrainSet, cfg.TestSet
	var err error
	switch {
	case (trainSet == nil) != (testSet == nil):
		return nil, errors.New("train: TrainSet and TestSet go together; one is missing")
	case trainSet == nil:
		if trainSet, testSet, err = data.Open(ctx, cfg.Data, channels); err != nil {
			return nil, err
		}
	case channels != 0 && trainSet.C != channels:
		return nil, fmt.Errorf("train: the data in memory has %d channels, the init checkpoint %d", trainSet.C, channels)
	}
	if trainSet == testSet {
		if cfg.TrainSet != nil {
			return nil, errors.New("train: Config.TrainSet and TestSet are the same data set; testing on the training images measures nothing")
		}
		return nil, fmt.Errorf("train: %s gives the same images for training and testing: folder,all: is for eval and for quantize --calibrate, not for --data (Config.Data)", cfg.Data)
	}
	if err := checkSets(trainSet, testSet); err != nil {
		return nil, err
	}
	if cfg.Model, err = cfg.Model.Clone(); err != nil {
		return nil, fmt.Errorf("train: model config: %w", err)
	}
	cfg.Model.SetInChannels(trainSet.C)
	cfg.Model.SetClasses(len(trainSet.Classes))
	if err := cfg.Model.Validate(); err != nil {
		return nil, fmt.Errorf("train: model %q on %s: %w", cfg.Model.Name, cfg.Data, err)
	}
	if cfg.Augment == nil {
		a := DefaultAugment(trainSet)
		cfg.Augment = &a
	}
	if cfg.Limit > 0 && cfg.Limit < trainSet.Len() {
		trainSet = trainSet.Subset(limited(trainSet, cfg.Limit))
		if cfg.Limit < testSet.Len() {
			testSet = testSet.Subset(limited(testSet, cfg.Limit))
		}
	}
	r := &run{cfg: cfg, trainSet: trainSet, testSet: testSet, valSet: testSet, best: -1}
	if cfg.ValSplit > 0 {
		if r.trainSet, r.valSet, err = trainSet.Split(cfg.ValSplit, cfg.Seed); err != nil {
			return nil, err
		}
	}
	if err := checkFits(cfg.Model, trainSet); err != nil {
		return nil, err
	}
	if seg := cfg.Task == models.Segment; seg != trainSet.IsSegmentation() || seg != cfg.Model.Dense() {
		return nil, configError{fmt.Errorf("train: --task (Config.Task) %s with model %q and data %q: segmentation needs a U-Net and a data set with masks (mnist-canvas, fashion-canvas, segfolder:DIR), classification neither",
			map[bool]string{true: "segment", false: "classify"}[seg], cfg.Model.Name, cfg.Data)}
	}
	var werr error
	switch {
	case cfg.BorderWeights:
		werr = r.trainSet.BorderWeights(10, 5)
	case cfg.ClassWeights:
		werr = r.trainSet.BorderWeights(0, 5) // the class-balance term alone
	}
	if werr != nil {
		return nil, fmt.Errorf("train: %w", werr)
	}
	r.rng = tensor.NewRNG(cfg.Seed)
	if r.model, err = models.Build(cfg.Model, r.rng); err != nil {
		return nil, err
	}
	if r.head, err = headName(cfg.Model, r.model); err != nil && (len(cfg.Freeze) > 0 || (cfg.HeadLRMult != 0 && cfg.HeadLRMult != 1)) {
		return nil, configError{err} // a head to keep out of --freeze backbone or to give --head-lr-mult
	}
	if init != nil && !cfg.Resume {
		if err := r.loadInit(init); err != nil {
			return nil, err
		}
	}
	if err := r.freeze(); err != nil {
		return nil, err
	}
	r.stepsPerEpoch = r.stepsFor(cfg.Batch)
	if err := r.checkShapes(); err != nil {
		return nil, err
	}
	// The normalisation after the checks of shape and memory: Stats reads
	// a sample of the images at the training size (74 s and 11 GB for a
	// folder at --image-size 4096, which checkShapes refuses from shapes
	// alone); a checkpoint to fine-tune brings its own.
	if init != nil {
		r.norm = init.Preprocess.Normalisation
	} else if r.norm.Mean, r.norm.Std, err = r.trainSet.Stats(ctx); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if r.opt, err = r.newOptimizer(); err != nil {
		return nil, err
	}
	if cfg.Comm != nil { // the folder, resumption and the average: joinGroup, on rank 0
		return r, nil
	}
	if r.lock, err = prepareFolder(cfg); err != nil {
		return nil, err
	}
	// From here a failure returns the run too: Prepare lets its folder go
	// once it has put back a run that Overwrite set aside.
	if cfg.Resume {
		if err := r.restore(filepath.Join(cfg.Out, LastCheckpoint)); err != nil {
			return r, err
		}
	}
	if cfg.EMA > 0 {
		if err := r.startEMA(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// checkShapes runs the model in training mode on a shape tape (nothing is
// computed) at each batch size an epoch will use — the full batch and the
// last, shorter one — so that a model that does not take the data's image
// size (a U-Net whose levels do not halve evenly) or a batch norm left with
// a single value per channel (a last batch of one image over a 1×1 feature
// map) is an error naming the cause before training, not a panic in the
// middle of an epoch.
func (r *run) checkShapes() error {
	d := r.trainSet
	n := d.Len()
	if r.cfg.Comm != nil {
		n = (n + r.cfg.Comm.Size() - 1) / r.cfg.Comm.Size() // as stepsFor
	}
	sizes := []int{min(r.cfg.Batch, n)}
	if rem := n % r.cfg.Batch; rem != 0 && n > r.cfg.Batch {
		sizes = append(sizes, rem)
	}
	nn.SetTraining(r.model, true)
	for _, b := range sizes {
		s, err := nn.Summarize(r.model, []int{b, d.H, d.W, d.C})
		if err != nil {
			what := "a batch"
			if b != sizes[0] {
				what = "the last batch of an epoch"
			}
			return fmt.Errorf("train: model %q cannot train on %s, %d image(s) of %dx%d (%d training images, batch %d): %w",
				r.cfg.Model.Name, what, b, d.H, d.W, n, r.cfg.Batch, err)
		}
		if b == sizes[0] {
			what := fmt.Sprintf("train: a step of %s on %d images of %dx%dx%d", r.cfg.Model.Name, b, d.H, d.W, d.C)
			need := s.TrainingBytes() + 4*int64(s.TrainableParams)*int64(r.cfg.optimizerStateFloats())
			if err := limits.CheckMemory(what, need); err != nil {
				return fmt.Errorf("%w: lower --batch (Config.Batch) or the image size", err)
			}
		}
	}
	return nil
}

// checkSets refuses a training and a test set that are not valid
// (Dataset.Check: pixel counts, labels, masks) or do not agree: the same
// channels and classes, and a test set that is not empty. (The sizes may
// differ: a U-Net or a globally pooled ResNet takes both.)
// Data sets made in memory by the caller (Config.TrainSet, TestSet) were
// once trusted, and a mismatch crashed the loader's goroutine.
func checkSets(train, test *data.Dataset) error {
	for _, d := range []struct {
		name string
		set  *data.Dataset
	}{{"training", train}, {"test", test}} {
		if err := d.set.Check(); err != nil {
			return fmt.Errorf("train: the %s set: %w", d.name, err)
		}
		if d.set.Len() == 0 {
			return fmt.Errorf("train: the %s set is empty", d.name)
		}
	}
	switch {
	case train.C != test.C:
		return fmt.Errorf("train: the training and test images differ in channels (%d and %d)", train.C, test.C)
	case train.C != 1 && train.C != 3:
		// A checkpoint's preprocessing takes grey or RGB images: refused
		// now rather than when the first epoch's checkpoint is written.
		return fmt.Errorf("train: the images have %d channels; residual trains on 1 (grey) or 3 (RGB)", train.C)
	case !slices.Equal(train.Classes, test.Classes):
		return fmt.Errorf("train: the training set's classes %q differ from the test set's %q", clipList(train.Classes), clipList(test.Classes))
	}
	return nil
}

// clipList shortens a list of class names for a message.
func clipList(v []string) []string {
	if len(v) > 12 {
		return append(v[:12:12], fmt.Sprintf("… (%d in all)", len(v)))
	}
	return v
}

// checkFits reports a model whose input channels or classes do not match
// the data.
func checkFits(m models.Config, d *data.Dataset) error {
	shape := m.InputShape(1, d.H)
	if len(shape) != 4 {
		return configError{fmt.Errorf("train: model %q does not take images", m.Name)}
	}
	if shape[3] != d.C {
		return configError{fmt.Errorf("train: model %q takes %d input channels, the data has %d", m.Name, shape[3], d.C)}
	}
	if !d.IsSegmentation() && len(d.Classes) < 2 {
		return fmt.Errorf("train: the data has %d class(es) (%q); a classifier needs at least 2 (an image folder holds one sub-folder per class)", len(d.Classes), d.Classes)
	}
	if m.Classes() != len(d.Classes) {
		return configError{fmt.Errorf("train: model %q has %d classes, the data has %d", m.Name, m.Classes(), len(d.Classes))}
	}
	return nil
}

// optimizerStateFloats is how many float32 values the optimizer keeps per
// trained parameter: Adam's and AdamW's two moments, SGD's momentum buffer
// (none without momentum).
func (c *Config) optimizerStateFloats() int {
	switch {
	case c.Optimizer == Adam || c.Optimizer == AdamW:
		return 2
	case c.Momentum > 0:
		return 1
	}
	return 0
}

// newOptimizer makes the optimizer over the trained parameters: the
// weight-decay split, and the head in groups of its own when its learning
// rate differs.
func (r *run) newOptimizer() (optim.Optimizer, error) {
	cfg := r.cfg
	resolved, err := cfg.Schedule.resolve(r.stepsPerEpoch, cfg.Epochs)
	if err != nil {
		return nil, err
	}
	sched := batchSchedule{resolved, &r.skippedSteps}
	inHead := map[*ag.Value]bool{}
	for _, e := range nn.StateDict(r.model) {
		if e.Param != nil && r.head != "" && under(e.Name, r.head) {
			inHead[e.Param] = true
		}
	}
	var body, head []*ag.Value
	r.params = nil
	for _, p := range nn.Parameters(r.model) {
		if !p.RequiresGrad() {
			continue
		}
		r.params = append(r.params, p)
		if cfg.HeadLRMult != 0 && cfg.HeadLRMult != 1 && inHead[p] {
			head = append(head, p)
		} else {
			body = append(body, p)
		}
	}
	if len(r.params) == 0 {
		return nil, fmt.Errorf("train: every parameter is frozen; nothing to train")
	}
	var groups []optim.Group
	for _, g := range optim.SplitDecay(body) {
		if len(g.Params) > 0 {
			groups = append(groups, g)
		}
	}
	for _, g := range optim.SplitDecay(head) {
		if len(g.Params) > 0 {
			g.LR = cfg.LR * cfg.HeadLRMult
			groups = append(groups, g)
		}
	}
	switch cfg.Optimizer {
	case SGD, "":
		return optim.NewSGD(groups, optim.SGDConfig{LR: cfg.LR, Momentum: cfg.Momentum, WeightDecay: cfg.WeightDecay, Nesterov: cfg.Nesterov, Schedule: sched})
	case Adam:
		return optim.NewAdam(groups, optim.AdamConfig{LR: cfg.LR, WeightDecay: cfg.WeightDecay, Schedule: sched})
	case AdamW:
		return optim.NewAdamW(groups, optim.AdamConfig{LR: cfg.LR, WeightDecay: cfg.WeightDecay, Schedule: sched})
	}
	return nil, fmt.Errorf("train: unknown optimizer %q (sgd, adam, adamw)", cfg.Optimizer)
}

func (r *run) loader(d *data.Dataset, training bool) *data.Loader {
	l := &data.Loader{Data: d, Batch: r.cfg.Batch, Seed: r.cfg.Seed, Normalisation: r.norm}
	if training {
		l.Shuffle, l.Augment = r.ddp == nil, *r.cfg.Augment
		l.KeepEmpty = true // a batch of unreadable files is a step skipped (under Config.Comm, on every rank)
		if r.ddp != nil {
			// This rank's shard of the epoch's permutation. The loader
			// seeds an image's augmentation by its index in d, so an image
			// is augmented alike on any rank and in one process.
			l.Sampler = r.ddp.sampler
		}
	}
	return l
}
