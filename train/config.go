package train

import (
	"fmt"
	"io"
	"math"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/models"
)

// Config is a training run.
type Config struct {
	// Model is the network to train (models.Preset, then any change to
	// its Arch); Prepare sizes a copy of it to the data, its input
	// channels and classes, so those need not be set. With Init it may be
	// left zero: the checkpoint's own network is trained.
	Model models.Config `json:"model"`
	// Data names the data set (see data.Open), e.g. "mnist", or
	// "folder,size=112:photos" for a folder of images made 112×112 (the
	// command line's --image-size; 224 without it).
	Data string `json:"data"`
	// TrainSet and TestSet, when set, are used instead of opening Data
	// (which then only names them in the run's records): data made in
	// memory, as the experiments make mirrored segmentation tiles. Both or
	// neither.
	TrainSet, TestSet *data.Dataset `json:"-"`
	// Task is models.Classify or models.Segment; "" is the model's own
	// (models.Config.Task: Segment for a U-Net), settled by Prepare
	// before the checks that depend on it.
	Task models.Task `json:"task,omitempty"`
	// Loss is CE (the default, ""), Dice or CEDice.
	Loss Loss `json:"loss,omitempty"`
	// BorderWeights weights the per-pixel cross-entropy with the U-Net
	// paper's weight map (class balance + w0 = 10, σ = 5 px borders).
	BorderWeights bool `json:"border_weights,omitempty"`
	// ClassWeights weights the per-pixel cross-entropy by inverse class
	// frequency only (the class-balance term of the weight map).
	ClassWeights bool `json:"class_weights,omitempty"`
	// Epochs is the length of the whole run, counted from its start: a
	// resumed run trains from where it stopped up to Epochs (and the
	// schedule spans them all).
	Epochs int `json:"epochs"`
	// Batch is the number of images of a training step (under Comm, of
	// each rank's share of it); an epoch's last batch holds what is left.
	Batch     int       `json:"batch"`
	Optimizer Optimizer `json:"optimizer"` // SGD (the default, ""), Adam or AdamW
	// LR is the base learning rate, which Schedule scales at every step:
	// the rate of a constant schedule, the one a warm-up rises to and a
	// cosine or the milestones decay from (HeadLRMult scales the head's).
	LR float64 `json:"lr"`
	// Momentum is SGD's momentum, in [0, 1) (0: none). Adam and AdamW
	// take none (their betas are PyTorch's defaults, 0.9 and 0.999):
	// Validate refuses one other than 0 with them. ResumeConfig drops
	// the 0.9 that runs of theirs recorded before it did.
	Momentum float64 `json:"momentum"`
	// Nesterov makes SGD's momentum Nesterov's (Momentum must be > 0);
	// Validate refuses it with Adam and AdamW.
	Nesterov bool `json:"nesterov,omitempty"`
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
	// Seed seeds the run's randomness: the initial weights, the
	// validation split (ValSplit), and the order and augmentation of the
	// training images.
	Seed uint64 `json:"seed"`
	// Limit keeps only Limit training and test images (0: all), for quick
	// runs: the first ones, or for an image folder ones spread evenly over
	// its files, so that every class is kept.
	Limit int `json:"limit,omitempty"`
	// Init starts from a checkpoint's weights (one written here or an
	// imported one): every tensor whose name and shape match is loaded,
	// the rest (the classifier head, when the class count differs) stays
	// freshly initialised, and the log says which. The run takes the
	// checkpoint's preprocessing (input channels, mean and std, Caffe's
	// BGR and 0-255 scale) and keeps it in its own checkpoints; a folder
	// spec without a size of its own (see data.FolderSize) is read at the
	// checkpoint's input size.
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
	// none. It is timm's ModelEmaV2 (started from the initial weights,
	// buffers averaged too), not torch.optim.swa_utils.AveragedModel
	// (which copies the weights at its first update).
	EMA float64 `json:"ema,omitempty"`
	// ClipGrad, when > 0, scales the gradients so that their joint L2 norm
	// is at most ClipGrad before each step.
	ClipGrad float64 `json:"clip_grad,omitempty"`
	// Patience, when > 0, stops the run once the validation metric (the
	// one that picks the best checkpoint) has not improved for Patience
	// epochs.
	Patience int `json:"patience,omitempty"`
	// Precision is the arithmetic of the convolutions and matrix products,
	// forward and backward, ag.FP32 (the default) or ag.BF16: PyTorch's
	// CPU autocast, bfloat16 operands and float32 sums, with float32
	// master weights, batch-norm statistics, losses and optimizer state
	// (see autograd.Precision). Validation runs in it too.
	Precision ag.Precision `json:"precision,omitempty"`
	// SyncBN makes every batch norm use the statistics of the global
	// batch across the ranks of Comm (SyncBatchNorm), so that N ranks with
	// batch B train as one process with batch N·B.
	SyncBN bool `json:"sync_bn,omitempty"`
	// GradCompression is the form in which data-parallel training
	// all-reduces gradients: "none" (the default, "": float32) or "bf16"
	// (half the bytes, DDP's bf16_compress_hook; see
	// distributed.BF16Compression for its error).
	GradCompression string `json:"grad_compression,omitempty"`
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
	Out string `json:"-"`
	// Resume continues the run in Out from its last checkpoint
	// (LastCheckpoint: the weights, the optimizer state, the epoch and
	// batch reached), which must exist. The settings
	// the saved position depends on must be the run's (see ResumeConfig,
	// which reads them back and sets Resume); others, such as Epochs,
	// may change.
	Resume bool `json:"-"`
	// ResumeSame makes Resume refuse a checkpoint trained with any other
	// recorded setting (epochs, learning rate, schedule…), not only with
	// another of those the saved position depends on: for runs that must
	// all follow one recipe, such as an experiment's.
	ResumeSame bool `json:"-"`
	// TensorBoard writes TensorBoard event files into Out: the loss and
	// learning rate of every step, the metrics of every epoch, the test
	// results and the curves' images at the end.
	TensorBoard bool `json:"-"`
	// Overwrite starts over in a run folder that holds a run (without it,
	// and without Resume, such a folder is refused). The old run's files
	// are set aside in Out/.replaced until the new run completes its first
	// epoch, and put back if it ends before (an error, an interrupt; after
	// a kill, at the next start).
	Overwrite bool `json:"-"`
	// Log receives the progress display and messages; Live redraws one
	// line in place (a terminal), otherwise plain lines are written.
	Log  io.Writer `json:"-"`
	Live bool      `json:"-"`
	// OnEpoch, when set, is called after every epoch the run completes,
	// once the epoch is recorded (metrics.jsonl) and its checkpoints
	// written, with its Metrics: the line metrics.jsonl gained. An error
	// stops the run there as a cancelled context does: Train returns an
	// error that matches ErrInterrupted and, for errors.Is, OnEpoch's
	// error, with the Result so far and no test pass; the last
	// checkpoint holds the epoch's end, to resume from. Under Config.Comm
	// it is called on rank 0 alone (the rank that writes metrics.jsonl),
	// and its error stops every rank (theirs match ErrInterrupted and say
	// that rank 0's OnEpoch stopped the run); a panic in it is such an
	// error. It is not recorded, and a resumed run may set another.
	OnEpoch func(Metrics) error `json:"-"`
}

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

// adam says whether o is Adam or AdamW, which take no SGD momentum.
func (o Optimizer) adam() bool { return o == Adam || o == AdamW }

// dropAdamMomentum clears the Momentum and Nesterov of an Adam or AdamW
// run recorded before Validate refused them (the command line recorded
// its --momentum default, 0.9, with any optimizer): neither ever had an
// effect there, and Validate refuses them now.
func (c *Config) dropAdamMomentum() {
	if c.Optimizer.adam() {
		c.Momentum, c.Nesterov = 0, false
	}
}

// Validate checks the config before any work: a model (or an Init to take
// it from), a run folder, counts, rates, names of the task, loss and
// optimizer, and the schedule. Its errors carry ErrConfig.
func (c *Config) Validate() error {
	if err := c.validate(); err != nil {
		return configError{err}
	}
	return nil
}

// validate is Validate's checks.
func (c *Config) validate() error {
	if c.Precision != ag.FP32 && c.Precision != ag.BF16 {
		return fmt.Errorf("train: unknown precision ag.Precision(%d) (want ag.FP32 or ag.BF16)", int(c.Precision))
	}
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("train: epochs must be ≥ 1, got %d", c.Epochs)
	case c.Batch < 1:
		return fmt.Errorf("train: batch must be ≥ 1, got %d", c.Batch)
	case !(c.LR > 0) || math.IsInf(c.LR, 1):
		return fmt.Errorf("train: learning rate must be finite and > 0, got %g", c.LR)
	case !(c.Momentum >= 0 && c.Momentum < 1):
		return fmt.Errorf("train: momentum %g outside [0, 1)", c.Momentum)
	case c.Nesterov && c.Momentum == 0 && (c.Optimizer == "" || c.Optimizer == SGD):
		return fmt.Errorf("train: --nesterov (Config.Nesterov) needs --momentum (Config.Momentum) > 0")
	case c.Momentum != 0 && c.Optimizer.adam():
		return fmt.Errorf("train: --momentum (Config.Momentum) %g has no effect with --optimizer (Config.Optimizer) %s, whose betas are PyTorch's defaults, 0.9 and 0.999; leave it 0", c.Momentum, c.Optimizer)
	case c.Nesterov && c.Optimizer.adam():
		return fmt.Errorf("train: --nesterov (Config.Nesterov) has no effect with --optimizer (Config.Optimizer) %s, which takes no momentum", c.Optimizer)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 1):
		return fmt.Errorf("train: weight decay must be finite and ≥ 0, got %g", c.WeightDecay)
	case c.Limit < 0:
		return fmt.Errorf("train: limit %d must be ≥ 0 (0: every image)", c.Limit)
	case c.Model.Arch == nil && c.Init == "":
		return fmt.Errorf("train: no model: Config.Model is empty (models.Preset(\"resnet20\") gives one) and no --init (Config.Init) checkpoint supplies it")
	case c.Out == "":
		return fmt.Errorf("train: no run folder: --out (Config.Out) is empty; it names the folder of the run's checkpoints and metrics")
	case !(c.ValSplit >= 0 && c.ValSplit < 1):
		return fmt.Errorf("train: validation split %g outside [0, 1)", c.ValSplit)
	case c.Task != "" && c.Task != models.Classify && c.Task != models.Segment:
		return fmt.Errorf("train: unknown task %q (classify, segment)", c.Task)
	case c.Loss != "" && c.Loss != CE && c.Loss != Dice && c.Loss != CEDice:
		return fmt.Errorf("train: unknown loss %q (ce, dice, ce+dice)", c.Loss)
	case c.Task != "" && c.Task != models.Segment && (c.Loss == Dice || c.Loss == CEDice || c.BorderWeights || c.ClassWeights):
		given := "--border-weights (Config.BorderWeights)" // the first of the three set
		switch {
		case c.Loss == Dice || c.Loss == CEDice:
			given = fmt.Sprintf("--loss (Config.Loss) %s", c.Loss)
		case c.ClassWeights:
			given = "--class-weights (Config.ClassWeights)"
		}
		return fmt.Errorf("train: %s is for segmentation: --task segment (Config.Task models.Segment)", given)
	case c.Optimizer != "" && c.Optimizer != SGD && c.Optimizer != Adam && c.Optimizer != AdamW:
		return fmt.Errorf("train: unknown optimizer %q (sgd, adam, adamw)", c.Optimizer)
	case c.SyncBN && c.Comm == nil:
		return fmt.Errorf("train: --sync-bn (Config.SyncBN) is for data-parallel training: --distributed (Config.Comm)")
	}
	if comp, err := distributed.ParseCompression(c.GradCompression); err != nil {
		return fmt.Errorf("train: %v", err)
	} else if comp != distributed.NoCompression && c.Comm == nil {
		return fmt.Errorf("train: --grad-compression (Config.GradCompression) %s is for data-parallel training: --distributed (Config.Comm)", comp)
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
