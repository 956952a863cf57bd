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
	"path/filepath"
	"time"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensor"
)

// Config is a training run.
type Config struct {
	Model models.Config `json:"model"`
	// Data names the data set (see data.Open), e.g. "mnist".
	Data string `json:"data"`
	// Task is "classify" (the default) or "segment": per-pixel classes,
	// for a U-Net on a data set with masks.
	Task string `json:"task,omitempty"`
	// Loss is "ce" (cross-entropy, the default), "dice" (soft Dice) or
	// "ce+dice" (their sum); Dice is for segmentation.
	Loss string `json:"loss,omitempty"`
	// BorderWeights weights the per-pixel cross-entropy with the U-Net
	// paper's weight map (class balance + w0 = 10, σ = 5 px borders).
	BorderWeights bool `json:"border_weights,omitempty"`
	// ClassWeights weights the per-pixel cross-entropy by inverse class
	// frequency only (the class-balance term of the weight map).
	ClassWeights bool    `json:"class_weights,omitempty"`
	Epochs       int     `json:"epochs"`
	Batch        int     `json:"batch"`
	Optimizer    string  `json:"optimizer"` // sgd, adam or adamw
	LR           float64 `json:"lr"`
	Momentum     float64 `json:"momentum"`
	Nesterov     bool    `json:"nesterov,omitempty"`
	// WeightDecay applies to weights of rank ≥ 2; BN parameters and biases
	// get none.
	WeightDecay float64 `json:"weight_decay"`
	// Schedule is an optim.ParseSchedule spec, "cosine" (to zero over the
	// whole run) or "he": ÷10 at 50% and 75% of the run (He et al. 2015's
	// 32k/48k of 64k iterations).
	Schedule string       `json:"schedule"`
	Augment  data.Augment `json:"augment"`
	// ValSplit holds out this fraction of the training set for validation;
	// 0 validates on the test set.
	ValSplit float64 `json:"val_split"`
	Seed     uint64  `json:"seed"`
	// Limit keeps only the first Limit training and test images (0: all),
	// for quick runs.
	Limit int `json:"limit,omitempty"`
	// Out is the run folder: checkpoints, metrics.jsonl, curves.
	Out    string `json:"-"`
	Resume bool   `json:"-"`
	// Overwrite starts over in a run folder that holds a run (without it,
	// and without Resume, such a folder is refused).
	Overwrite bool `json:"-"`
	// Log receives the progress display and messages; Live redraws one
	// line in place (a terminal), otherwise plain lines are written.
	Log  io.Writer `json:"-"`
	Live bool      `json:"-"`
}

// Result is what a finished run reached.
type Result struct {
	// History has one entry per epoch (all epochs of the run, resumed ones
	// included).
	History         []Metrics
	Epochs          int
	TestAccuracy    float64
	TestLoss        float64
	BestValAccuracy float64
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
}

// Run trains as configured. It returns ErrInterrupted (after saving) when
// ctx is cancelled, and an error naming the step if the loss becomes NaN
// (the previous checkpoints stay as they were).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	r, err := setup(cfg)
	if err != nil {
		return nil, err
	}
	return r.loop(ctx)
}

func (c *Config) validate() error {
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
	case c.Task != "" && c.Task != "classify" && c.Task != "segment":
		return fmt.Errorf("train: unknown task %q (classify, segment)", c.Task)
	case c.Loss != "" && c.Loss != "ce" && c.Loss != "dice" && c.Loss != "ce+dice":
		return fmt.Errorf("train: unknown loss %q (ce, dice, ce+dice)", c.Loss)
	case c.Task != "segment" && (c.Loss == "dice" || c.Loss == "ce+dice" || c.BorderWeights || c.ClassWeights):
		return fmt.Errorf("train: Dice loss and class or border weights are for --task segment")
	}
	return nil
}

func setup(cfg Config) (*run, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	channels := 0
	if in := cfg.Model.InputShape(1, 1); len(in) == 4 {
		channels = in[3]
	}
	trainSet, testSet, err := data.Open(cfg.Data, channels)
	if err != nil {
		return nil, err
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
	if seg := cfg.Task == "segment"; seg != trainSet.IsSegmentation() || seg != cfg.Model.Dense() {
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
	r.rng = tensor.NewRNG(cfg.Seed)
	if r.model, err = models.Build(cfg.Model, r.rng); err != nil {
		return nil, err
	}
	r.stepsPerEpoch = (&data.Loader{Data: r.trainSet, Batch: cfg.Batch}).Batches()
	if r.opt, err = newOptimizer(cfg, r.model, r.stepsPerEpoch*cfg.Epochs); err != nil {
		return nil, err
	}
	if err := prepareFolder(cfg); err != nil {
		return nil, err
	}
	if cfg.Resume {
		if err := r.restore(filepath.Join(cfg.Out, LastCheckpoint)); err != nil {
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

func newOptimizer(cfg Config, m nn.Layer, totalSteps int) (optim.Optimizer, error) {
	var sched optim.Schedule
	switch cfg.Schedule {
	case "he":
		sched = optim.MultiStep{Milestones: []int{totalSteps / 2, totalSteps * 3 / 4}, Gamma: 0.1}
	case "cosine": // over the whole run
		sched = optim.Cosine{Total: totalSteps}
	default:
		s, err := optim.ParseSchedule(cfg.Schedule)
		if err != nil {
			return nil, err
		}
		sched = s
	}
	groups := optim.SplitDecay(nn.Parameters(m))
	switch cfg.Optimizer {
	case "sgd", "":
		return optim.NewSGD(groups, optim.SGDConfig{LR: cfg.LR, Momentum: cfg.Momentum, WeightDecay: cfg.WeightDecay, Nesterov: cfg.Nesterov, Schedule: sched})
	case "adam":
		return optim.NewAdam(groups, optim.AdamConfig{LR: cfg.LR, WeightDecay: cfg.WeightDecay, Schedule: sched})
	case "adamw":
		return optim.NewAdamW(groups, optim.AdamConfig{LR: cfg.LR, WeightDecay: cfg.WeightDecay, Schedule: sched})
	}
	return nil, fmt.Errorf("train: unknown optimizer %q (sgd, adam, adamw)", cfg.Optimizer)
}

func (r *run) loader(d *data.Dataset, training bool) *data.Loader {
	l := &data.Loader{Data: d, Batch: r.cfg.Batch, Mean: r.mean, Std: r.std, Seed: r.cfg.Seed}
	if training {
		l.Shuffle, l.Augment = true, r.cfg.Augment
	}
	return l
}

func (r *run) loop(ctx context.Context) (*Result, error) {
	r.start = time.Now()
	tape := ag.NewTape()
	r.evalTape = tape.NoGradTape()
	params := nn.Parameters(r.model)
	for ; r.epoch < r.cfg.Epochs; r.epoch, r.batch = r.epoch+1, 0 {
		nn.SetTraining(r.model, true)
		r.epochStart = time.Now()
		r.lossSum, r.accSum, r.seen, r.imgs = 0, 0, 0, 0
		epochCtx, cancel := context.WithCancel(ctx)
		loader := r.loader(r.trainSet, true)
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
			if math.IsNaN(lv) || math.IsInf(lv, 0) {
				cancel()
				return nil, fmt.Errorf("train: the loss is %g at epoch %d, batch %d (step %d); stopped, checkpoints left as they were (try a lower learning rate)",
					lv, r.epoch+1, b.Index+1, r.opt.Steps()+1)
			}
			r.accSum += float64(correct(logits.Data, targets))
			r.lossSum += lv * float64(len(targets))
			r.seen += len(targets)
			tape.Backward(loss)
			r.opt.Step()
			tape.Reset()
			r.batch = b.Index + 1
			r.progress()
			if ctx.Err() != nil {
				break
			}
		}
		cancel()
		if err := loader.Err(); err != nil { // an unreadable image file
			return nil, fmt.Errorf("train: epoch %d: %w", r.epoch+1, err)
		}
		// An epoch cut short by cancellation (even before its first batch)
		// is not finished: save the exact position and stop.
		if ctx.Err() != nil {
			if err := r.save(LastCheckpoint); err != nil {
				return nil, err
			}
			fmt.Fprintf(r.cfg.Log, "\nstopped at epoch %d, batch %d; checkpoint written to %s\n", r.epoch+1, r.batch, filepath.Join(r.cfg.Out, LastCheckpoint))
			return nil, ErrInterrupted
		}
		if err := r.endEpoch(); err != nil {
			return nil, err
		}
	}
	testLoader := r.loader(r.testSet, false)
	testLoss, testAcc, confusion := evaluate(r.model, testLoader, len(r.testSet.Classes), r.evalTape)
	if err := testLoader.Err(); err != nil {
		return nil, fmt.Errorf("train: test set: %w", err)
	}
	res := &Result{History: r.history, Epochs: r.epoch, TestAccuracy: testAcc, TestLoss: testLoss, BestValAccuracy: r.best, Seconds: time.Since(r.start).Seconds()}
	if r.cfg.Task == "segment" {
		res.TestIoU, res.TestMeanIoU = IoU(confusion)
		fmt.Fprintf(r.cfg.Log, "test pixel accuracy %.2f%%, mean IoU %.4f (loss %.4f) after %d epochs\n", 100*testAcc, res.TestMeanIoU, testLoss, r.epoch)
		for c, v := range res.TestIoU {
			fmt.Fprintf(r.cfg.Log, "  IoU %-12s %.4f\n", r.testSet.Classes[c], v)
		}
		return res, nil
	}
	fmt.Fprintf(r.cfg.Log, "test accuracy %.2f%% (loss %.4f) after %d epochs\n", 100*testAcc, testLoss, r.epoch)
	return res, nil
}

// endEpoch validates, records metrics and curves, and writes checkpoints.
func (r *run) endEpoch() error {
	valLoader := r.loader(r.valSet, false)
	valLoss, valAcc, confusion := evaluate(r.model, valLoader, len(r.valSet.Classes), r.evalTape)
	if err := valLoader.Err(); err != nil {
		return fmt.Errorf("train: validation set: %w", err)
	}
	secs := time.Since(r.epochStart).Seconds()
	m := Metrics{Epoch: r.epoch + 1, Step: r.opt.Steps(), LR: r.opt.LR(0), TrainLoss: r.lossSum / float64(max(r.seen, 1)),
		TrainAcc: r.accSum / float64(max(r.seen, 1)), ValLoss: valLoss, ValAcc: valAcc, ImgPerSec: float64(r.imgs) / secs, Seconds: secs}
	score := valAcc // what picks the best checkpoint
	if r.cfg.Task == "segment" {
		_, m.ValMeanIoU = IoU(confusion)
		score = m.ValMeanIoU
	}
	r.history = append(r.history, m)
	if r.cfg.Live {
		fmt.Fprint(r.cfg.Log, "\r\033[K")
	}
	miou := ""
	if r.cfg.Task == "segment" {
		miou = fmt.Sprintf(" mIoU %.4f", m.ValMeanIoU)
	}
	fmt.Fprintf(r.cfg.Log, "epoch %d/%d  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%%s  %.0f img/s  %.0fs\n",
		m.Epoch, r.cfg.Epochs, m.TrainLoss, 100*m.TrainAcc, m.ValLoss, 100*m.ValAcc, miou, m.ImgPerSec, secs)
	if err := m.checkFinite(); err != nil {
		return err
	}
	if err := writeMetrics(r.cfg.Out, r.history); err != nil {
		return err
	}
	if err := plotCurves(r.history, r.cfg.Out); err != nil {
		return err
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
	return r.save(LastCheckpoint)
}

func (r *run) progress() {
	r.imgs += r.cfg.Batch
	n := r.stepsPerEpoch
	el := time.Since(r.epochStart).Seconds()
	rate := float64(r.imgs) / el
	eta := time.Duration(float64(n-r.batch) * float64(r.cfg.Batch) / rate * float64(time.Second)).Round(time.Second)
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
	return evaluate(m, l, classes, ag.NewNoGradTape())
}

// evaluate is Evaluate on the given inference tape (the trainer passes one
// that shares its training tape's buffers).
func evaluate(m nn.Layer, l *data.Loader, classes int, tape *ag.Tape) (loss, acc float64, confusion [][]int) {
	nn.SetTraining(m, false)
	defer nn.SetTraining(m, true)
	confusion = make([][]int, classes)
	for i := range confusion {
		confusion[i] = make([]int, classes)
	}
	n := 0
	for b := range l.Epoch(context.Background(), 0, 0) {
		logits := m.Forward(tape.Constant(b.X))
		targets, _ := fitTargets(logits, b)
		lv, err := ag.CrossEntropy(logits, targets, ag.CrossEntropyOptions{IgnoreIndex: -100, Sum: true})
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
			if int32(best) == y {
				acc++
			}
		}
		n += len(targets)
		tape.Reset()
	}
	return loss / float64(max(n, 1)), acc / float64(max(n, 1)), confusion
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

// loss is the configured training loss.
func (r *run) loss(logits *ag.Value, targets []int32, weights []float32) (*ag.Value, error) {
	var total *ag.Value
	if r.cfg.Loss != "dice" {
		ce, err := ag.CrossEntropy(logits, targets, ag.CrossEntropyOptions{IgnoreIndex: -100, RowWeight: weights})
		if err != nil {
			return nil, err
		}
		total = ce
	}
	if r.cfg.Loss == "dice" || r.cfg.Loss == "ce+dice" {
		d, err := ag.Dice(logits, targets, -100)
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
