// Package train trains image classifiers: the loop with validation every
// epoch, a progress display, metrics (JSON lines) and curves (PNG),
// checkpoints in safetensors written atomically (the last and the best),
// exact resumption, and clean stops on cancellation or a NaN loss.
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensor"
	"github.com/residual-nn/residual/tensorboard"
)

// Config is a training run.
type Config struct {
	Model models.Config `json:"model"`
	// Data names the data set (see data.Open), e.g. "mnist".
	Data string `json:"data"`
	// Task is Classify (the default, "") or Segment.
	Task Task `json:"task,omitempty"`
	// Loss is CE (the default, ""), Dice or CEDice.
	Loss Loss `json:"loss,omitempty"`
	// BorderWeights weights the per-pixel cross-entropy with the U-Net
	// paper's weight map (class balance + w0 = 10, σ = 5 px borders).
	BorderWeights bool `json:"border_weights,omitempty"`
	// ClassWeights weights the per-pixel cross-entropy by inverse class
	// frequency only (the class-balance term of the weight map).
	ClassWeights bool      `json:"class_weights,omitempty"`
	Epochs       int       `json:"epochs"`
	Batch        int       `json:"batch"`
	Optimizer    Optimizer `json:"optimizer"` // SGD (the default, ""), Adam or AdamW
	LR           float64   `json:"lr"`
	Momentum     float64   `json:"momentum"`
	Nesterov     bool      `json:"nesterov,omitempty"`
	// WeightDecay applies to weights of rank ≥ 2; BN parameters and biases
	// get none.
	WeightDecay float64 `json:"weight_decay"`
	// Schedule is the learning-rate schedule, in epochs.
	Schedule Schedule `json:"schedule"`
	// Augment is the training images' augmentation; nil: DefaultAugment.
	Augment *data.Augment `json:"augment"`
	// ValSplit holds out this fraction of the training set for validation;
	// 0 validates on the test set.
	ValSplit float64 `json:"val_split"`
	Seed     uint64  `json:"seed"`
	// Limit keeps only the first Limit training and test images (0: all),
	// for quick runs.
	Limit int `json:"limit,omitempty"`
	// Init starts from a checkpoint's weights (one written here or an
	// imported one): every tensor whose name and shape match is loaded,
	// the rest (the classifier head, when the class count differs) stays
	// freshly initialised, and the log says which. The run takes the
	// checkpoint's preprocessing (input channels, mean and std, Caffe's
	// BGR and 0-255 scale) and keeps it in its own checkpoints.
	Init string `json:"init,omitempty"`
	// Freeze lists module prefixes whose parameters are not trained
	// (nn.Freeze); "backbone" stands for everything but the classifier
	// head (resnet fc, unet and mlp head).
	Freeze []string `json:"freeze,omitempty"`
	// HeadLRMult multiplies the classifier head's learning rate (0 or 1:
	// the same as the rest); the head's weights and biases keep their
	// weight-decay split.
	HeadLRMult float64 `json:"head_lr_mult,omitempty"`
	// LabelSmoothing is the cross-entropy's label smoothing, in [0, 1).
	LabelSmoothing float64 `json:"label_smoothing,omitempty"`
	// EMA, in (0, 1), keeps an exponential moving average of the weights
	// and batch norm statistics with this decay, updated after every step,
	// validated every epoch (val_acc_ema) and saved as EMACheckpoint; 0:
	// none.
	EMA float64 `json:"ema,omitempty"`
	// ClipGrad, when > 0, scales the gradients so that their joint L2 norm
	// is at most ClipGrad before each step.
	ClipGrad float64 `json:"clip_grad,omitempty"`
	// Patience, when > 0, stops the run once the validation metric (the
	// one that picks the best checkpoint) has not improved for Patience
	// epochs.
	Patience int `json:"patience,omitempty"`
	// SyncBN makes every batch norm use the statistics of the global
	// batch across the ranks of Comm (SyncBatchNorm), so that N ranks with
	// batch B train as one process with batch N·B.
	SyncBN bool `json:"sync_bn,omitempty"`
	// WorldSize is the number of ranks the run trains on: set by Prepare
	// from Comm (0 without), recorded in checkpoints, and a resumed run
	// must have the same.
	WorldSize int `json:"world_size,omitempty"`
	// Comm, when set, makes this process one rank of a data-parallel
	// training (see package distributed and docs/DISTRIBUTED.md): Batch
	// is per rank, every rank starts from rank 0's model, trains on its
	// own shard of each epoch and averages the gradients with the others
	// during the backward pass; only rank 0 writes to Log and Out. Every
	// rank must call Prepare and Train with the same config (checked: the
	// ranks fail at the start naming what differs). nil trains in this
	// process alone, as without package distributed.
	Comm distributed.Comm `json:"-"`
	// Out is the run folder: checkpoints, metrics.jsonl, curves.
	Out    string `json:"-"`
	Resume bool   `json:"-"`
	// TensorBoard writes TensorBoard event files into Out: the loss and
	// learning rate of every step, the metrics of every epoch, the test
	// results and the curves' images at the end.
	TensorBoard bool `json:"-"`
	// Overwrite starts over in a run folder that holds a run (without it,
	// and without Resume, such a folder is refused).
	Overwrite bool `json:"-"`
	// Log receives the progress display and messages; Live redraws one
	// line in place (a terminal), otherwise plain lines are written.
	Log  io.Writer `json:"-"`
	Live bool      `json:"-"`
}

// Task is what a run trains the model to do.
type Task string

// Tasks.
const (
	Classify Task = "classify" // one class per image
	Segment  Task = "segment"  // one class per pixel (a U-Net on a data set with masks)
)

// Loss names a training loss.
type Loss string

// Losses.
const (
	CE     Loss = "ce"      // cross-entropy
	Dice   Loss = "dice"    // soft Dice (segmentation)
	CEDice Loss = "ce+dice" // their sum (segmentation)
)

// Optimizer names an optimizer.
type Optimizer string

// Optimizers.
const (
	SGD   Optimizer = "sgd"
	Adam  Optimizer = "adam"
	AdamW Optimizer = "adamw"
)

// Result is what a finished run reached.
type Result struct {
	// History has one entry per epoch (all epochs of the run, resumed ones
	// included).
	History         []Metrics
	Epochs          int
	TestAccuracy    float64
	TestLoss        float64
	BestValAccuracy float64
	// TestTop5 is the top-5 test accuracy (classification with ≥ 5
	// classes).
	TestTop5 float64
	// StoppedEarly says that Config.Patience ended the run before
	// Config.Epochs.
	StoppedEarly bool
	// TestIoU and TestMeanIoU are the per-class and mean intersection over
	// union on the test set (segmentation).
	TestIoU     []float64
	TestMeanIoU float64
	Seconds     float64
}

// ErrInterrupted is returned when the context is cancelled: training stopped
// at a step boundary after writing a checkpoint to resume from.
var ErrInterrupted = errors.New("train: interrupted; the last checkpoint holds the step reached (resume with --resume)")

// Metrics is one line of metrics.jsonl, written after every epoch.
type Metrics struct {
	Epoch      int     `json:"epoch"`
	Step       int     `json:"step"`
	LR         float64 `json:"lr"`
	TrainLoss  float64 `json:"train_loss"`
	TrainAcc   float64 `json:"train_acc"`
	ValLoss    float64 `json:"val_loss"`
	ValAcc     float64 `json:"val_acc"`
	ValTop5    float64 `json:"val_top5,omitempty"` // classification with ≥ 5 classes
	ValAccEMA  float64 `json:"val_acc_ema,omitempty"`
	ValLossEMA float64 `json:"val_loss_ema,omitempty"`
	ValMeanIoU float64 `json:"val_miou,omitempty"`
	ImgPerSec  float64 `json:"img_per_s"`
	Seconds    float64 `json:"seconds"`
}

// run holds a training run's state.
type run struct {
	cfg               Config
	model             nn.Layer
	evalTape          *ag.Tape // inference tape sharing the training tape's buffers
	opt               optim.Optimizer
	trainSet, valSet  *data.Dataset
	testSet           *data.Dataset
	mean, std         []float64
	epoch, batch      int // position: completed epochs, batches into the next
	best              float64
	history           []Metrics
	rng               *tensor.RNG
	stepsPerEpoch     int
	lossSum, accSum   float64
	seen, imgs        int
	epochStart, start time.Time
	tb                *tensorboard.Writer // nil without Config.TensorBoard
	steps             []int               // this session's steps and their losses, for step_loss.png
	stepLoss          []float64
	stoppedEarly      bool
	trained           bool                   // Train was called
	params            []*ag.Value            // the trained (not frozen) parameters
	head              string                 // the classifier head's module name
	pre               *checkpoint.Preprocess // from Config.Init; nil: the data's mean and std
	ema               *optim.EMA
	emaModel          nn.Layer // evaluated and saved with the averages
	ddp               *ddp     // nil without Config.Comm
}

// Trainer is a run made ready by Prepare: the data opened once, the model
// sized from it (input channels and classes) and built, the optimizer
// made and, with Config.Resume, the checkpoint's state loaded into them.
type Trainer struct{ r *run }

// Prepare opens the data, sizes and builds the model and its optimizer,
// and loads the last checkpoint when resuming; the work is left to
// Trainer.Train. Config.Model's input channels and classes are taken from
// the data (the caller's config is not changed).
func Prepare(cfg Config) (*Trainer, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	cfg.Log, cfg.WorldSize = quiet(cfg), 0
	if cfg.Comm != nil {
		cfg.WorldSize = cfg.Comm.Size()
		if cfg.Comm.Rank() != 0 {
			cfg.TensorBoard = false
		}
	}
	r, err := setup(cfg)
	if cfg.Comm != nil {
		if r == nil && err == nil {
			err = errors.New("train: no run prepared")
		}
		err = joinGroup(cfg.Comm, r, err)
	}
	if err != nil {
		return nil, err
	}
	return &Trainer{r: r}, nil
}

// Config returns the run's config as prepared: the model sized from the
// data, the augmentation resolved.
func (t *Trainer) Config() Config { return t.r.cfg }

// Data returns the training, validation and test sets (the validation set
// is the test set when Config.ValSplit is 0).
func (t *Trainer) Data() (train, val, test *data.Dataset) {
	return t.r.trainSet, t.r.valSet, t.r.testSet
}

// Run trains as configured: Prepare, then Trainer.Train.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	t, err := Prepare(cfg)
	if err != nil {
		return nil, err
	}
	return t.Train(ctx)
}

// Train runs the prepared training. It returns ErrInterrupted (after
// saving) when ctx is cancelled, and an error naming the step if the loss
// becomes NaN (the previous checkpoints stay as they were). A Trainer
// trains once.
func (t *Trainer) Train(ctx context.Context) (*Result, error) {
	r, cfg := t.r, t.r.cfg
	if r.trained {
		return nil, errors.New("train: this Trainer has already trained; Prepare another")
	}
	r.trained = true
	if cfg.TensorBoard {
		if !cfg.Resume {
			if err := tensorboard.RemoveEventFiles(cfg.Out); err != nil {
				return nil, err
			}
		}
		var err error
		if r.tb, err = tensorboard.NewWriter(cfg.Out); err != nil {
			return nil, err
		}
		if err := r.tb.SessionStart(int64(r.opt.Steps())); err != nil {
			r.tb.Close()
			return nil, err
		}
	}
	res, err := r.loop(ctx)
	if r.tb != nil {
		if cerr := r.tb.Close(); err == nil && cerr != nil {
			return nil, cerr
		}
	}
	return res, err
}

// Validate checks the config before any work: counts, rates, names of the
// task, loss and optimizer, and the schedule.
func (c *Config) Validate() error {
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("train: epochs must be ≥ 1, got %d", c.Epochs)
	case c.Batch < 1:
		return fmt.Errorf("train: batch must be ≥ 1, got %d", c.Batch)
	case c.LR <= 0 || math.IsNaN(c.LR):
		return fmt.Errorf("train: learning rate must be > 0, got %g", c.LR)
	case c.Out == "":
		return fmt.Errorf("train: no output folder")
	case c.ValSplit < 0 || c.ValSplit >= 1:
		return fmt.Errorf("train: validation split %g outside [0, 1)", c.ValSplit)
	case c.Task != "" && c.Task != Classify && c.Task != Segment:
		return fmt.Errorf("train: unknown task %q (classify, segment)", c.Task)
	case c.Loss != "" && c.Loss != CE && c.Loss != Dice && c.Loss != CEDice:
		return fmt.Errorf("train: unknown loss %q (ce, dice, ce+dice)", c.Loss)
	case c.Task != Segment && (c.Loss == Dice || c.Loss == CEDice || c.BorderWeights || c.ClassWeights):
		return fmt.Errorf("train: Dice loss and class or border weights are for --task segment")
	case c.Optimizer != "" && c.Optimizer != SGD && c.Optimizer != Adam && c.Optimizer != AdamW:
		return fmt.Errorf("train: unknown optimizer %q (sgd, adam, adamw)", c.Optimizer)
	case c.SyncBN && c.Comm == nil:
		return fmt.Errorf("train: SyncBatchNorm (--sync-bn) is for data-parallel training (--distributed)")
	}
	if err := c.validateFineTuning(); err != nil {
		return err
	}
	return c.Schedule.validate(c.Epochs)
}

func (c *Config) validateFineTuning() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !finite(c.HeadLRMult) || c.HeadLRMult < 0:
		return fmt.Errorf("train: head learning-rate multiplier %g must be ≥ 0", c.HeadLRMult)
	case !(c.LabelSmoothing >= 0 && c.LabelSmoothing < 1):
		return fmt.Errorf("train: label smoothing %g outside [0, 1)", c.LabelSmoothing)
	case !(c.EMA >= 0 && c.EMA < 1):
		return fmt.Errorf("train: EMA decay %g outside [0, 1)", c.EMA)
	case !finite(c.ClipGrad) || c.ClipGrad < 0:
		return fmt.Errorf("train: gradient clipping norm %g must be ≥ 0", c.ClipGrad)
	case c.Patience < 0:
		return fmt.Errorf("train: patience %d must be ≥ 0", c.Patience)
	}
	for _, p := range c.Freeze {
		if p == "" || p == "none" {
			return fmt.Errorf("train: freeze prefix %q (use no Freeze to train everything)", p)
		}
	}
	return nil
}

// DefaultAugment is the augmentation of a run whose Config.Augment is nil:
// torchvision's training transform (random resized crop, flip) for images
// of any size (folder:DIR), 2-pixel shifts for grey images, 4-pixel shifts
// and flips for colour ones.
func DefaultAugment(d *data.Dataset) data.Augment {
	switch {
	case d.Files != nil:
		return data.Augment{ResizedCrop: true, Flip: true}
	case d.C == 1:
		return data.Augment{Pad: 2}
	}
	return data.Augment{Pad: 4, Flip: true}
}

func setup(cfg Config) (*run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var init *checkpoint.Checkpoint
	channels := 0 // the data's own
	if cfg.Init != "" {
		var err error
		if init, err = loadInit(cfg.Init); err != nil {
			return nil, err
		}
		channels = init.Preprocess.Channels
	}
	trainSet, testSet, err := data.Open(cfg.Data, channels)
	if err != nil {
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
		idx := make([]int, cfg.Limit)
		for i := range idx {
			idx[i] = i
		}
		trainSet = trainSet.Subset(idx)
		if cfg.Limit < testSet.Len() {
			testSet = testSet.Subset(idx)
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
	if seg := cfg.Task == Segment; seg != trainSet.IsSegmentation() || seg != cfg.Model.Dense() {
		return nil, fmt.Errorf("train: --task %s with model %q and data %q: segmentation needs a U-Net and a data set with masks (mnist-canvas, fashion-canvas, segfolder:DIR), classification neither",
			map[bool]string{true: "segment", false: "classify"}[seg], cfg.Model.Name, cfg.Data)
	}
	switch {
	case cfg.BorderWeights:
		r.trainSet.BorderWeights(10, 5)
	case cfg.ClassWeights:
		r.trainSet.BorderWeights(0, 5) // the class-balance term alone
	}
	r.mean, r.std = r.trainSet.Stats()
	if init != nil {
		p := init.Preprocess
		r.pre, r.mean, r.std = &p, p.Mean, p.Std
	}
	r.rng = tensor.NewRNG(cfg.Seed)
	if r.model, err = models.Build(cfg.Model, r.rng); err != nil {
		return nil, err
	}
	if r.head, err = headName(cfg.Model, r.model); err != nil && (len(cfg.Freeze) > 0 || (cfg.HeadLRMult != 0 && cfg.HeadLRMult != 1)) {
		return nil, err
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
	if r.opt, err = r.newOptimizer(); err != nil {
		return nil, err
	}
	if cfg.Comm != nil { // the folder, resumption and the average: joinGroup, on rank 0
		return r, nil
	}
	if err := prepareFolder(cfg); err != nil {
		return nil, err
	}
	if cfg.Resume {
		if err := r.restore(filepath.Join(cfg.Out, LastCheckpoint)); err != nil {
			return nil, err
		}
	}
	if cfg.EMA > 0 {
		if err := r.startEMA(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// checkFits reports a model whose input channels or classes do not match
// the data.
func checkFits(m models.Config, d *data.Dataset) error {
	shape := m.InputShape(1, d.H)
	if len(shape) != 4 {
		return fmt.Errorf("train: model %q does not take images", m.Name)
	}
	if shape[3] != d.C {
		return fmt.Errorf("train: model %q takes %d input channels, the data has %d", m.Name, shape[3], d.C)
	}
	if m.Classes() != len(d.Classes) {
		return fmt.Errorf("train: model %q has %d classes, the data has %d", m.Name, m.Classes(), len(d.Classes))
	}
	return nil
}

// newOptimizer makes the optimizer over the trained parameters: the
// weight-decay split, and the head in groups of its own when its learning
// rate differs.
func (r *run) newOptimizer() (optim.Optimizer, error) {
	cfg := r.cfg
	sched, err := cfg.Schedule.resolve(r.stepsPerEpoch, cfg.Epochs)
	if err != nil {
		return nil, err
	}
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
	l := &data.Loader{Data: d, Batch: r.cfg.Batch, Mean: r.mean, Std: r.std, Seed: r.cfg.Seed}
	if r.pre != nil {
		l.BGR, l.Scale255 = r.pre.BGR, r.pre.Scale255
	}
	if training { // under Config.Comm the Sampler has shuffled the epoch's shard
		l.Shuffle, l.Augment = r.ddp == nil, *r.cfg.Augment
	}
	return l
}

func (r *run) loop(ctx context.Context) (*Result, error) {
	r.start = time.Now()
	tape := ag.NewTape()
	r.evalTape = tape.NoGradTape()
	params := r.params
	if r.ddp != nil {
		r.ddp.hook(tape)
	}
	stop := false // every rank was told to stop (Config.Comm)
	for ; r.epoch < r.cfg.Epochs; r.epoch, r.batch = r.epoch+1, 0 {
		nn.SetTraining(r.model, true)
		r.epochStart = time.Now()
		r.lossSum, r.accSum, r.seen, r.imgs = 0, 0, 0, 0
		// Under Config.Comm every rank runs every step of the epoch until
		// the control all-reduce says stop: its loader does not watch ctx.
		epochCtx, cancel := context.WithCancel(ctx)
		if r.ddp != nil {
			epochCtx, cancel = context.WithCancel(context.Background())
		}
		loader := r.loader(r.epochData(r.epoch), true)
		for b := range loader.Epoch(epochCtx, r.epoch, r.batch) {
			for _, p := range params {
				p.ZeroGrad()
			}
			logits := r.model.Forward(tape.Constant(b.X))
			targets, weights := fitTargets(logits, b)
			loss, err := r.loss(logits, targets, weights)
			if err != nil {
				cancel()
				return nil, err
			}
			lv := float64(loss.Data.Data[0])
			bad := math.IsNaN(lv) || math.IsInf(lv, 0)
			hits := float64(correct(logits.Data, targets))
			var ctl []float32
			var ctlReq distributed.Request
			if r.ddp != nil {
				ctl = make([]float32, ctlLen)
				ctl[ctlStop], ctl[ctlLoss], ctl[ctlCorrect], ctl[ctlCount] = stopRequested(ctx), float32(lv*float64(len(targets))), float32(hits), float32(len(targets))
				if bad {
					ctl[ctlBad] = 1
				}
				ctlReq = r.ddp.comm.StartAllReduceSum(ctl)
			} else if bad {
				cancel()
				return nil, fmt.Errorf("train: the loss is %g at epoch %d, batch %d (step %d); stopped, checkpoints left as they were (try a lower learning rate)",
					lv, r.epoch+1, b.Index+1, r.opt.Steps()+1)
			}
			tape.Backward(loss)
			if r.ddp != nil {
				if err := r.ddp.finishStep(params, ctlReq); err != nil {
					cancel()
					return nil, err
				}
				if ctl[ctlBad] > 0 {
					cancel()
					return nil, fmt.Errorf("train: the loss is not finite on %g of %d ranks at epoch %d, batch %d (step %d; here %g); stopped, checkpoints left as they were (try a lower learning rate)",
						ctl[ctlBad], r.worldSize(), r.epoch+1, b.Index+1, r.opt.Steps()+1, lv)
				}
				stop = ctl[ctlStop] > 0
				lv = float64(ctl[ctlLoss]) / float64(ctl[ctlCount]) // the global batch's
				r.accSum += float64(ctl[ctlCorrect])
				r.lossSum += float64(ctl[ctlLoss])
				r.seen += int(ctl[ctlCount])
			} else {
				r.accSum += hits
				r.lossSum += lv * float64(len(targets))
				r.seen += len(targets)
			}
			if r.cfg.ClipGrad > 0 {
				optim.ClipGradNorm(r.params, r.cfg.ClipGrad)
			}
			lr := r.opt.LR(0) // this step's, before Step advances the schedule
			r.opt.Step()
			if r.ema != nil {
				r.ema.Update()
			}
			r.steps, r.stepLoss = append(r.steps, r.opt.Steps()), append(r.stepLoss, lv)
			if r.tb != nil {
				if err := r.tb.TrainStep(int64(r.opt.Steps()), lv, lr); err != nil {
					cancel()
					return nil, err
				}
			}
			tape.Reset()
			r.batch = b.Index + 1
			r.progress()
			if (r.ddp == nil && ctx.Err() != nil) || stop {
				break
			}
		}
		cancel()
		lerr := loader.Err() // an unreadable image file
		if lerr != nil {
			lerr = fmt.Errorf("train: epoch %d: %w", r.epoch+1, lerr)
		}
		if r.ddp != nil {
			lerr = agree(r.ddp.comm, fmt.Sprintf("reading epoch %d", r.epoch+1), lerr)
		}
		if lerr != nil {
			return nil, lerr
		}
		// An epoch cut short by cancellation (even before its first batch)
		// is not finished: save the exact position and stop.
		if (r.ddp == nil && ctx.Err() != nil) || stop {
			if err := r.saveStopped(); err != nil {
				return nil, err
			}
			return nil, ErrInterrupted
		}
		if err := r.endEpoch(); err != nil {
			return nil, err
		}
		if n := r.staleEpochs(); r.cfg.Patience > 0 && n >= r.cfg.Patience && r.epoch+1 < r.cfg.Epochs {
			fmt.Fprintf(r.cfg.Log, "stopping early after epoch %d of %d: the validation %s has not improved for %d epochs (best %.4f)\n",
				r.epoch+1, r.cfg.Epochs, r.scoreName(), n, r.best)
			r.epoch++
			r.stoppedEarly = true
			break
		}
	}
	if r.ddp != nil {
		if err := r.broadcastBuffers(); err != nil {
			return nil, err
		}
	}
	test, err := r.evaluateOn(r.model, true)
	if err != nil {
		return nil, err
	}
	testLoss, testAcc, confusion := test.loss, test.acc, test.confusion
	res := &Result{History: r.history, Epochs: r.epoch, TestAccuracy: testAcc, TestLoss: testLoss, BestValAccuracy: r.best, TestTop5: test.top5, StoppedEarly: r.stoppedEarly, Seconds: time.Since(r.start).Seconds()}
	if r.tb != nil {
		step := int64(r.opt.Steps())
		if err := r.tb.Scalars(step, []string{"test/loss", "test/acc"}, []float64{testLoss, testAcc}); err != nil {
			return nil, err
		}
		for _, name := range []string{"loss", "accuracy", "step_loss"} {
			if _, err := os.Stat(filepath.Join(r.cfg.Out, name+".png")); err != nil {
				continue // not drawn in this session (a resumed run with nothing left to train)
			}
			if err := r.tb.ImageFile(tensorboard.CurvesPrefix+name, step, filepath.Join(r.cfg.Out, name+".png")); err != nil {
				return nil, err
			}
		}
	}
	if r.cfg.Task == Segment {
		res.TestIoU, res.TestMeanIoU = IoU(confusion)
		fmt.Fprintf(r.cfg.Log, "test pixel accuracy %.2f%%, mean IoU %.4f (loss %.4f) after %d epochs\n", 100*testAcc, res.TestMeanIoU, testLoss, r.epoch)
		for c, v := range res.TestIoU {
			fmt.Fprintf(r.cfg.Log, "  IoU %-12s %.4f\n", r.testSet.Classes[c], v)
		}
		return res, nil
	}
	top5 := ""
	if len(r.testSet.Classes) >= 5 {
		top5 = fmt.Sprintf(", top-5 %.2f%%", 100*test.top5)
	}
	fmt.Fprintf(r.cfg.Log, "test accuracy %.2f%%%s (loss %.4f) after %d epochs\n", 100*testAcc, top5, testLoss, r.epoch)
	return res, nil
}

// saveStopped writes the checkpoint of a run stopped mid-epoch (rank 0's,
// under Config.Comm, once every rank holds its batch-norm statistics).
func (r *run) saveStopped() error {
	save := func() error {
		if !r.rank0() {
			return nil
		}
		if r.ema != nil { // the average up to this step, to resume from
			if err := r.saveNet(EMACheckpoint, r.emaWeights(), nil); err != nil {
				return err
			}
		}
		if err := r.save(LastCheckpoint); err != nil {
			return err
		}
		fmt.Fprintf(r.cfg.Log, "\nstopped at epoch %d, batch %d; checkpoint written to %s\n", r.epoch+1, r.batch, filepath.Join(r.cfg.Out, LastCheckpoint))
		return nil
	}
	if r.ddp == nil {
		return save()
	}
	if err := r.broadcastBuffers(); err != nil {
		return err
	}
	return agree(r.ddp.comm, "writing the checkpoint", save())
}

// endEpoch validates, records metrics and curves, and writes checkpoints.
func (r *run) endEpoch() error {
	if r.ddp == nil {
		return r.endEpochHere()
	}
	if err := r.broadcastBuffers(); err != nil {
		return err
	}
	// Rank 0's writes can fail (a full disk) while the others wait to go
	// on: they learn it here and stop with it.
	return agree(r.ddp.comm, fmt.Sprintf("ending epoch %d", r.epoch+1), r.endEpochHere())
}

// endEpochHere is endEpoch on this rank: the evaluation (summed over the
// ranks under Config.Comm), then rank 0's records and checkpoints.
func (r *run) endEpochHere() error {
	val, err := r.evaluateOn(r.model, false)
	if err != nil {
		return err
	}
	valLoss, valAcc, confusion := val.loss, val.acc, val.confusion
	secs := time.Since(r.epochStart).Seconds()
	m := Metrics{Epoch: r.epoch + 1, Step: r.opt.Steps(), LR: r.opt.LR(0), TrainLoss: r.lossSum / float64(max(r.seen, 1)),
		TrainAcc: r.accSum / float64(max(r.seen, 1)), ValLoss: valLoss, ValAcc: valAcc, ImgPerSec: float64(r.imgs) / secs, Seconds: secs}
	score := valAcc // what picks the best checkpoint
	if r.cfg.Task == Segment {
		_, m.ValMeanIoU = IoU(confusion)
		score = m.ValMeanIoU
	} else if len(r.valSet.Classes) >= 5 {
		m.ValTop5 = val.top5
	}
	if r.ema != nil {
		e, err := r.evaluateEMA()
		if err != nil {
			return err
		}
		m.ValAccEMA, m.ValLossEMA = e.acc, e.loss
	}
	r.history = append(r.history, m)
	if r.cfg.Live {
		fmt.Fprint(r.cfg.Log, "\r\033[K")
	}
	miou := ""
	if r.cfg.Task == Segment {
		miou = fmt.Sprintf(" mIoU %.4f", m.ValMeanIoU)
	} else if m.ValTop5 > 0 {
		miou = fmt.Sprintf(" top-5 %.2f%%", 100*m.ValTop5)
	}
	if r.ema != nil {
		miou += fmt.Sprintf("  EMA val loss %.4f acc %.2f%%", m.ValLossEMA, 100*m.ValAccEMA)
	}
	fmt.Fprintf(r.cfg.Log, "epoch %d/%d  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%%s  %.0f img/s  %.0fs\n",
		m.Epoch, r.cfg.Epochs, m.TrainLoss, 100*m.TrainAcc, m.ValLoss, 100*m.ValAcc, miou, m.ImgPerSec, secs)
	if err := m.checkFinite(); err != nil {
		return err
	}
	if !r.rank0() { // the same history and best score as rank 0, nothing written
		if score > r.best {
			r.best = score
		}
		return nil
	}
	if err := writeMetrics(r.cfg.Out, r.history); err != nil {
		return err
	}
	if err := plotCurves(r.history, r.cfg.Out); err != nil {
		return err
	}
	if len(r.steps) > 0 { // none when resumed at an epoch's end
		if err := PlotStepLoss(r.steps, r.stepLoss, filepath.Join(r.cfg.Out, "step_loss.png")); err != nil {
			return err
		}
	}
	if r.tb != nil {
		if err := r.tb.Metrics(tensorboard.EpochPrefix, int64(m.Step), m, "step"); err != nil {
			return err
		}
		if err := r.tb.Flush(); err != nil {
			return err
		}
	}
	r.epoch++ // the checkpoint records the completed epoch
	defer func() { r.epoch-- }()
	r.batch = 0
	if score > r.best {
		r.best = score
		if err := r.save(BestCheckpoint); err != nil {
			return err
		}
	}
	if r.ema != nil {
		if err := r.saveNet(EMACheckpoint, r.emaWeights(), nil); err != nil {
			return err
		}
	}
	return r.save(LastCheckpoint)
}

func (r *run) progress() {
	r.imgs += r.cfg.Batch * r.worldSize()
	n := r.stepsPerEpoch
	el := time.Since(r.epochStart).Seconds()
	rate := float64(r.imgs) / el
	eta := time.Duration(float64(n-r.batch) * float64(r.cfg.Batch*r.worldSize()) / rate * float64(time.Second)).Round(time.Second)
	line := fmt.Sprintf("epoch %d/%d %s %d/%d  ETA %s  loss %.4f  acc %.2f%%  %.0f img/s",
		r.epoch+1, r.cfg.Epochs, bar(r.batch, n, 20), r.batch, n, eta, r.lossSum/float64(r.seen), 100*r.accSum/float64(r.seen), rate)
	switch {
	case r.cfg.Live:
		fmt.Fprint(r.cfg.Log, "\r\033[K"+line)
	case r.batch%max(n/5, 1) == 0 && r.batch < n:
		fmt.Fprintln(r.cfg.Log, line)
	}
}

func bar(done, total, width int) string {
	f := done * width / max(total, 1)
	b := make([]byte, width+2)
	b[0], b[width+1] = '[', ']'
	for i := 0; i < width; i++ {
		b[i+1] = '.'
		if i < f {
			b[i+1] = '#'
		}
	}
	return string(b)
}

// correct counts rows of logits whose arg-max is the label.
func correct(logits *tensor.Tensor, labels []int32) int {
	k := logits.Shape[len(logits.Shape)-1]
	n := 0
	for i, y := range labels {
		row := logits.Data[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if int32(best) == y {
			n++
		}
	}
	return n
}

// Evaluate runs the model in evaluation mode over a loader's batches and
// returns the mean cross-entropy, the accuracy and the confusion matrix
// (rows: true class, columns: predicted) — over images, or over pixels for
// a segmentation set. If the loader stopped early (l.Err: an unreadable
// image file), the figures cover the batches before it.
func Evaluate(m nn.Layer, l *data.Loader, classes int) (loss, acc float64, confusion [][]int) {
	e := EvaluateAll(m, l, classes)
	return e.Loss, e.Accuracy, e.Confusion
}

// Evaluation is what EvaluateAll measures.
type Evaluation struct {
	Loss, Accuracy float64
	// Top5 is the fraction whose true class is among the 5 highest
	// scores (fewer than 5 classes score higher than it).
	Top5      float64
	Confusion [][]int
}

// EvaluateAll is Evaluate with the top-5 accuracy as well.
func EvaluateAll(m nn.Layer, l *data.Loader, classes int) Evaluation {
	e := evaluate(m, l, classes, ag.NewNoGradTape())
	return Evaluation{Loss: e.loss, Accuracy: e.acc, Top5: e.top5, Confusion: e.confusion}
}

// evaluation is what evaluate measures: the means, and the sums and
// count they are made of (summed over the ranks under Config.Comm).
type evaluation struct {
	loss, acc, top5         float64
	confusion               [][]int
	lossSum, hits, top5Hits float64
	n                       int
}

// means sets the means from the sums.
func (e *evaluation) means() {
	d := float64(max(e.n, 1))
	e.loss, e.acc, e.top5 = e.lossSum/d, e.hits/d, e.top5Hits/d
}

// evaluate is Evaluate on the given inference tape (the trainer passes one
// that shares its training tape's buffers).
func evaluate(m nn.Layer, l *data.Loader, classes int, tape *ag.Tape) evaluation {
	var loss, acc, top5 float64
	nn.SetTraining(m, false)
	defer nn.SetTraining(m, true)
	confusion := make([][]int, classes)
	for i := range confusion {
		confusion[i] = make([]int, classes)
	}
	n := 0
	for b := range l.Epoch(context.Background(), 0, 0) {
		logits := m.Forward(tape.Constant(b.X))
		targets, _ := fitTargets(logits, b)
		lv, err := ag.CrossEntropy(logits, targets, ag.CrossEntropyOptions{IgnoreIndex: ignoreIndex, Sum: true})
		if err == nil {
			loss += float64(lv.Data.Data[0])
		}
		k := logits.Shape()[len(logits.Shape())-1]
		for i, y := range targets {
			row := logits.Data.Data[i*k : (i+1)*k]
			best := 0
			for j, v := range row {
				if v > row[best] {
					best = j
				}
			}
			confusion[y][best]++
			above := 0 // classes scored higher than the true one
			for _, v := range row {
				if v > row[y] {
					above++
				}
			}
			if above < 5 {
				top5++
			}
			if int32(best) == y {
				acc++
			}
		}
		n += len(targets)
		tape.Reset()
	}
	e := evaluation{lossSum: loss, hits: acc, top5Hits: top5, n: n, confusion: confusion}
	e.means()
	return e
}

// fitTargets returns a batch's targets for the model's output: the labels,
// or for segmentation the masks (and weights) centre-cropped to the
// output's size, which a valid-convolution U-Net makes smaller than its
// input.
func fitTargets(logits *ag.Value, b data.Batch) ([]int32, []float32) {
	s := logits.Shape()
	if len(s) != 4 || b.X.Rank() != 4 {
		return b.Y, b.W
	}
	n, h, w, oh, ow := b.X.Shape[0], b.X.Shape[1], b.X.Shape[2], s[1], s[2]
	if oh == h && ow == w {
		return b.Y, b.W
	}
	top, left := (h-oh)/2, (w-ow)/2
	y := make([]int32, 0, n*oh*ow)
	var wt []float32
	for i := 0; i < n; i++ {
		for r := top; r < top+oh; r++ {
			at := (i*h+r)*w + left
			y = append(y, b.Y[at:at+ow]...)
			if b.W != nil {
				wt = append(wt, b.W[at:at+ow]...)
			}
		}
	}
	return y, wt
}

// ignoreIndex marks targets that count in no loss.
const ignoreIndex = -100

// loss is the configured training loss. Under Config.Comm a weighted
// cross-entropy (Σ w·loss / Σ w) is normalised by the global batch's Σ w
// (see weightNorm); the Dice loss is each rank's batch's, averaged over
// the ranks with the gradients.
func (r *run) loss(logits *ag.Value, targets []int32, weights []float32) (*ag.Value, error) {
	var total *ag.Value
	if r.cfg.Loss != Dice {
		o := ag.CrossEntropyOptions{IgnoreIndex: ignoreIndex, RowWeight: weights, LabelSmoothing: r.cfg.LabelSmoothing}
		global := r.ddp != nil && weights != nil
		o.Sum = global
		ce, err := ag.CrossEntropy(logits, targets, o)
		if err != nil {
			return nil, err
		}
		if global {
			f, err := r.weightNorm(targets, weights)
			if err != nil {
				return nil, err
			}
			ce = ag.Scale(ce, f)
		}
		total = ce
	}
	if r.cfg.Loss == Dice || r.cfg.Loss == CEDice {
		d, err := ag.Dice(logits, targets, ignoreIndex)
		if err != nil {
			return nil, err
		}
		if total == nil {
			return d, nil
		}
		total = ag.Add(total, d)
	}
	return total, nil
}

// IoU returns the intersection over union of every class from a confusion
// matrix (rows: true class, columns: predicted) — TP/(TP + FP + FN) — and
// their mean over the classes that occur in the truth or the predictions
// (a class absent from both has IoU NaN and is left out of the mean).
func IoU(confusion [][]int) (perClass []float64, mean float64) {
	perClass = make([]float64, len(confusion))
	n := 0
	for c := range confusion {
		tp, fp, fn := confusion[c][c], 0, 0
		for o := range confusion {
			if o != c {
				fn += confusion[c][o]
				fp += confusion[o][c]
			}
		}
		if tp+fp+fn == 0 {
			perClass[c] = math.NaN()
			continue
		}
		perClass[c] = float64(tp) / float64(tp+fp+fn)
		mean += perClass[c]
		n++
	}
	if n == 0 {
		return perClass, math.NaN()
	}
	return perClass, mean / float64(n)
}
