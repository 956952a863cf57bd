// Package train trains image classifiers and segmentation networks
// (U-Nets, per-pixel losses, IoU): the loop with validation every
// epoch, a progress display, metrics (JSON lines), curves (PNG) and
// TensorBoard events, checkpoints in safetensors written atomically (the
// last and the best), exact resumption, data-parallel training over the
// ranks of a distributed.Comm, and clean stops on cancellation or a NaN
// loss.
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensor"
	"github.com/residual-nn/residual/tensorboard"
)

// Result is what a run reached: a finished one's figures, or those of an
// interrupted one so far (Train), whose test fields stay zero.
type Result struct {
	// History has one entry per epoch (all epochs of the run, resumed ones
	// included).
	History []Metrics
	// Epochs is how many epochs the run has completed.
	Epochs int
	// TestAccuracy and TestLoss are measured on the test set with the
	// final weights (last.safetensors's), not best.safetensors's: for
	// the best checkpoint's, evaluate it (Evaluate, residual eval). A
	// segmentation run's accuracy is over pixels.
	TestAccuracy, TestLoss float64
	// BestValAccuracy is the best validation score of the run, the one
	// that picked best.safetensors: the accuracy, or the mean IoU of a
	// segmentation run. Without a validation split (Config.ValSplit 0)
	// it is measured on the test set.
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
	// Seconds is the run's wall time in this session.
	Seconds float64
	// StepLoss is the training loss of every step of the run, in order;
	// a resumed run reads its earlier steps back from the run folder's
	// step_loss.csv.
	StepLoss []float64
}

// ErrInterrupted is what Train's error matches (errors.Is) when the
// context is cancelled: training stopped at a step boundary after writing
// a checkpoint to resume from, or, once every epoch was trained and
// saved, during the final test pass (a resumed run then measures the test
// set). The error wraps the context's cause too.
var ErrInterrupted = errors.New("train: interrupted; the last checkpoint holds the step reached: resume with --resume (Config.Resume)")

// ErrConfig is in the error of a Config that is wrong in itself
// (Config.Validate's errors) or for the model and the data, which Prepare
// finds once they are known: a Freeze prefix the network has no
// parameter under, a Task, Loss or weighting the model and the data do
// not fit, a model that does not take the data's images, channels or
// classes, a Freeze of the backbone or a HeadLRMult for a model without a
// known classifier head; and of a Resume whose model, number of ranks or
// other setting the saved position depends on differs from the run's.
// The CLI exits with status 2 for it, as for its other usage errors. A
// data set that cannot be read, or holds a single class, is not one.
var ErrConfig = errors.New("train: the config is wrong, or does not fit the model or the data")

// configError marks err as ErrConfig's, its message unchanged.
type configError struct{ error }

func (e configError) Unwrap() error        { return e.error }
func (e configError) Is(target error) bool { return target == ErrConfig }

// Metrics is one line of metrics.jsonl, written after every epoch.
type Metrics struct {
	Epoch int `json:"epoch"`
	// Step counts the updates applied so far; a step skipped (a batch of
	// no readable file) is none, though the schedule counts it.
	Step int `json:"step"`
	// LR is the learning rate (the first parameter group's) of the
	// epoch's last step, as train/lr logs it at that step; the next
	// epoch's first step may take another (a milestone, a cosine).
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
	// Skipped counts the files the epoch's training batches left out as
	// unreadable (a folder read with skip-bad: their headers were good
	// when it was opened, their pixel data is not), summed over the ranks
	// (a file a rank's padded share repeats counts each time); validation
	// files are not counted.
	Skipped int `json:"skipped,omitempty"`
}

// run holds a training run's state.
type run struct {
	cfg               Config
	lock              io.Closer // the run folder's (prepareFolder), held until the run ends
	model             nn.Layer
	evalTape          *ag.Tape // inference tape sharing the training tape's buffers
	opt               optim.Optimizer
	trainSet, valSet  *data.Dataset
	testSet           *data.Dataset
	norm              transform.Normalisation // the data set's mean and std, or Config.Init's normalisation
	epoch, batch      int                     // position: completed epochs, batches into the next
	best              float64
	history           []Metrics
	rng               *tensor.RNG
	stepsPerEpoch     int
	skippedSteps      int     // the run's steps skipped (batches of no readable file), which the schedule counts (batchSchedule)
	lossSum, accSum   float64 // the epoch's running sums, over seen targets
	seen, imgs        int
	skipped           int     // unreadable files the epoch left out (Metrics.Skipped)
	epochLR           float64 // the learning rate of the epoch's last step (Metrics.LR)
	epochStart, start time.Time
	partial           *checkpoint.Partial // the running sums of the epoch resumed in its middle
	evalRead          [2]string           // fingerprints of the validation and test files read without fault (checkEvalSets)
	tb                *tensorboard.Writer // nil without Config.TensorBoard
	steps             []int               // the run's steps and their losses (step_loss.csv, step_loss.png)
	stepLoss          []float64
	stoppedEarly      bool
	trained           bool        // Train was called
	replacedDropped   bool        // the run Config.Overwrite replaces was deleted (an epoch is saved)
	params            []*ag.Value // the trained (not frozen) parameters
	head              string      // the classifier head's module name
	ema               *optim.EMA
	emaModel          nn.Layer // evaluated and saved with the averages
	ddp               *ddp     // nil without Config.Comm
	stopCause         error    // what Config.OnEpoch returned to stop the run (or errStopOnEpoch)
}

// Trainer is a run made ready by Prepare: the data opened once, the model
// sized from it (input channels and classes) and built, the optimizer
// made and, with Config.Resume, the checkpoint's state loaded into them.
type Trainer struct{ r *run }

// Prepare opens the data, sizes and builds the model and its optimizer,
// and loads the last checkpoint when resuming; the work is left to
// Trainer.Train. Config.Model's input channels and classes are taken from
// the data (the caller's config is not changed). Reading the data (a
// folder's scan, its statistics) stops, with ctx's cause, once ctx is
// done. The Trainer holds the run folder (Config.Out) until Train returns
// or Close is called: another Prepare there is refused meanwhile.
func Prepare(ctx context.Context, cfg Config) (*Trainer, error) {
	if ctx == nil {
		return nil, errors.New("train: Prepare: nil context")
	}
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
	r, err := setup(ctx, cfg)
	if cfg.Comm != nil {
		if r == nil && err == nil {
			err = errors.New("train: no run prepared")
		}
		err = joinGroup(cfg.Comm, r, err)
	}
	if err != nil && cfg.Overwrite && r != nil && r.lock != nil {
		// Failed after the old run was set aside (a checkpoint to resume,
		// the group), holding the folder (only then: another run may be
		// replacing the run set aside there): it goes back.
		err = errors.Join(err, restoreReplaced(cfg.Out, cfg.Log))
	}
	if err != nil {
		if r != nil {
			r.release()
		}
		return nil, err
	}
	// A Trainer dropped untrained lets the folder go once collected: the
	// lock is an *os.File, which closes itself then.
	return &Trainer{r: r}, nil
}

// Close lets the run folder go without training: a Prepare of another
// run in it is refused until then (or until this Trainer is collected).
// Train lets it go when it returns; Close after Train does nothing.
func (t *Trainer) Close() error {
	if t != nil && t.r != nil {
		t.r.release()
	}
	return nil
}

// release lets the run folder go (prepareFolder's lock).
func (r *run) release() {
	if r.lock != nil {
		r.lock.Close()
		r.lock = nil
	}
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
	t, err := Prepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return t.Train(ctx)
}

// Train runs the prepared training. When ctx is cancelled it stops at a
// step boundary after saving (or during the final test pass, once every
// epoch is saved) and returns an error that is ErrInterrupted and, for
// errors.Is, ctx's cause (context.Canceled, context.DeadlineExceeded, a
// signal's under signal.NotifyContext), together with the Result of the
// run so far: its completed epochs' History, StepLoss, BestValAccuracy
// and Seconds, no test figures (also when the run replaced another and
// was stopped before its first epoch's end, so that nothing of it was
// kept). Under Config.Comm a rank stopped because another rank's context
// was cancelled returns ErrInterrupted, its message ending "(another rank
// was asked to stop)". An error from Config.OnEpoch stops it in the same
// way after that epoch's checkpoint (ErrInterrupted, and for errors.Is
// that error). If the loss becomes NaN it returns an error naming
// the step (the previous checkpoints stay as they were). Before its first
// step it reads every image of a validation or test set kept as files (a
// folder's, which Prepare checked by their headers only), as their
// evaluations will: a file that cannot be decoded is an error naming the
// set and the file then, not at the first validation. A resumed run skips
// that read for a set whose files have the names, sizes and modification
// times, and the image options, they had when a read of them passed (the
// checkpoint's Position.EvalRead; under Config.Comm, on every rank); a
// file rewritten with both kept is then found at its evaluation. A set
// with a file modified in the 2 s before that read (a file system's tick
// of its modification times) records none, and is read again. A
// Trainer trains once.
func (t *Trainer) Train(ctx context.Context) (*Result, error) {
	switch {
	case t == nil || t.r == nil:
		return nil, errors.New("train: Train on no Trainer (Prepare makes one)")
	case ctx == nil:
		return nil, errors.New("train: Train: nil context")
	}
	r, cfg := t.r, t.r.cfg
	if r.trained {
		return nil, errors.New("train: this Trainer has already trained; Prepare another")
	}
	r.trained = true
	defer r.release()
	var err error
	if cfg.TensorBoard {
		err = r.openEvents()
	}
	if r.ddp != nil { // rank 0 alone writes them: the others would wait for it in the first step
		err = agree(r.ddp.comm, "opening the TensorBoard event file", err)
	}
	if err == nil {
		err = r.checkEvalSets(ctx)
	}
	var res *Result
	if err == nil { // else a run that --overwrite was replacing goes back, below
		res, err = r.loop(ctx)
	}
	if r.tb != nil {
		if cerr := r.tb.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	replacing := r.replacing()
	if err == ErrInterrupted && r.ddp != nil {
		// Only rank 0 knows whether a replaced run goes back; the ranks
		// stopped together (every ErrInterrupted is agreed), so they can
		// agree on that too and all say so.
		flag := []float64{0}
		if replacing {
			flag[0] = 1
		}
		if cerr := r.ddp.comm.AllReduceSumFloat64(flag); cerr == nil && flag[0] > 0 && !r.rank0() {
			err = errReplacedBack{}
		}
	}
	if err != nil && replacing {
		// Ended (failed, interrupted) before completing an epoch: the run
		// it was replacing goes back.
		if rerr := restoreReplaced(cfg.Out, cfg.Log); rerr != nil {
			err = errors.Join(err, rerr)
		} else if errors.Is(err, ErrInterrupted) {
			err = errReplacedBack{cfg.Out}
		}
	}
	if errors.Is(err, ErrInterrupted) {
		res = r.result()
		cause := context.Cause(ctx)
		if r.stopCause != nil {
			cause = r.stopCause
		}
		if cause == nil && r.ddp != nil {
			cause = errStopOtherRank // the ranks stop together: one of the others was asked to
		}
		if cause != nil {
			err = interruptedBy{err, cause}
		}
	}
	return res, err
}

// openEvents starts the run's TensorBoard event file (Config.TensorBoard),
// a fresh run's replacing those of an earlier one in the folder.
func (r *run) openEvents() error {
	if !r.cfg.Resume {
		if err := tensorboard.RemoveEventFiles(r.cfg.Out); err != nil {
			return err
		}
	}
	var err error
	if r.tb, err = tensorboard.NewWriter(r.cfg.Out); err != nil {
		return err
	}
	// The first step to come: TensorBoard keeps the steps before it from
	// earlier files (the checkpoint's step among them).
	if err := r.tb.SessionStart(int64(r.opt.Steps()) + 1); err != nil {
		r.tb.Close()
		r.tb = nil
		return err
	}
	return nil
}

// errStopOtherRank is the cause of the interruption of a rank whose own
// context was not cancelled: another rank's was (a signal to that rank),
// and every rank stopped at the same step.
var errStopOtherRank = errors.New("another rank was asked to stop")

// interruptedBy is an ErrInterrupted (or one of its kinds) with the
// cancelled context's cause, so that errors.Is finds both: ErrInterrupted
// and context.DeadlineExceeded, context.Canceled or the cause given to
// context.WithCancelCause.
type interruptedBy struct{ err, cause error }

// Error names the cause right after "interrupted" ("train: interrupted
// (signal: terminated); the last checkpoint …"), or at the end of the
// first line of a message without that word (an errors.Join puts a
// failure to restore a replaced run on the next line).
func (e interruptedBy) Error() string {
	msg := e.err.Error()
	const word = "interrupted"
	if head, tail, ok := strings.Cut(msg, word); ok && !strings.Contains(head, "\n") {
		return fmt.Sprintf("%s%s (%v)%s", head, word, e.cause, tail)
	}
	first, rest, more := strings.Cut(msg, "\n")
	if more {
		rest = "\n" + rest
	}
	return fmt.Sprintf("%s (%v)%s", first, e.cause, rest)
}

func (e interruptedBy) Unwrap() []error { return []error{e.err, e.cause} }
