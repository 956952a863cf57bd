package train

import (
	"context"
	"errors"
	"fmt"
	"math"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/internal/typednil"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// correct counts rows of logits whose arg-max is the label.
func correct(logits *tensor.Tensor, labels []int32) int {
	k := logits.Shape[len(logits.Shape)-1]
	n := 0
	for i, y := range labels {
		if int32(tensor.ArgMax(logits.Data[i*k:(i+1)*k])) == y {
			n++
		}
	}
	return n
}

// countedTargets returns how many targets count in the loss and the
// metrics: those not ignoreIndex.
func countedTargets(targets []int32) int {
	n := 0
	for _, y := range targets {
		if y != ignoreIndex {
			n++
		}
	}
	return n
}

// Evaluation is what Evaluate measures, over images or, for a
// segmentation set, over labelled pixels.
type Evaluation struct {
	// Loss is the mean cross-entropy.
	Loss float64
	// Accuracy is the fraction whose highest score is the true class.
	Accuracy float64
	// Top5 is the fraction whose true class is among the 5 highest
	// scores (fewer than 5 classes score higher than it).
	Top5 float64
	// Confusion counts true class (rows) against predicted (columns).
	Confusion [][]int
	// Skipped counts the files of the set left out as unreadable during
	// the pass (data.ImageOptions.SkipBadImages; not those refused when
	// the set was opened, which are not among its images): the figures
	// are of the others.
	Skipped int
}

// Loader returns a loader of d's images in batches of batch, normalised
// as p says (mean and std, and Keras's BGR order and 0–255 scale where
// set), in order and without augmentation: what evaluating or calibrating
// a checkpoint's model on a data set needs. d's images must be of p's
// size and channels already (data.Open reads folders at a size given in
// its spec, see data.FolderSpec, and any data set in the channels it is
// asked for): an error names both sizes otherwise, as a model that pools
// globally would compute on images of another size without complaint.
// That error, about the data set and not the call, carries no package
// prefix: the caller names the set.
func Loader(p checkpoint.Preprocess, d *data.Dataset, batch int) (*data.Loader, error) {
	if d == nil {
		return nil, errors.New("train: loader: nil data set")
	}
	if batch < 1 {
		return nil, fmt.Errorf("train: loader: batch %d (want ≥ 1)", batch)
	}
	switch {
	case d.C == p.Channels && (d.H != p.Height || d.W != p.Width):
		// The channels are the model's when data.Open read them so.
		return nil, fmt.Errorf("the data set's images are %dx%d pixels (height×width); the model takes %dx%d", d.H, d.W, p.Height, p.Width)
	case d.H != p.Height || d.W != p.Width || d.C != p.Channels:
		return nil, fmt.Errorf("the data set holds %dx%dx%d images (height×width×channels); the model takes %dx%dx%d", d.H, d.W, d.C, p.Height, p.Width, p.Channels)
	}
	return &data.Loader{Data: d, Batch: batch, Normalisation: p.Normalisation}, nil
}

// Evaluate runs the model in evaluation mode over a loader's batches,
// with its convolutions and matrix products in precision p (ag.FP32, or
// ag.BF16 as autograd.Precision describes), and returns what it measured.
// It stops between batches once ctx is done and returns ctx's cause. Its
// errors: arguments it cannot evaluate (a nil model or loader, a class
// count other than the model's outputs, a segmentation model on a set
// labelled by image, labels outside the classes, an unknown precision), a
// loader that failed (l.Err: an unreadable image file), or a set with
// nothing to count. The model is left in the mode it was in
// (nn.SaveModes). Errors about the model or the data set (not the call's
// arguments) carry no package prefix, as Loader's: the caller names the
// set.
func Evaluate(ctx context.Context, m nn.Layer, l *data.Loader, classes int, p ag.Precision) (Evaluation, error) {
	switch {
	case ctx == nil:
		return Evaluation{}, errors.New("train: evaluate: nil context")
	case p != ag.FP32 && p != ag.BF16:
		return Evaluation{}, fmt.Errorf("train: evaluate: unknown precision ag.Precision(%d) (want ag.FP32 or ag.BF16)", int(p))
	}
	tape := ag.NewNoGradTape()
	tape.SetPrecision(p)
	e, err := evaluate(ctx, m, l, classes, tape)
	if err != nil {
		return Evaluation{}, err
	}
	if ctx.Err() != nil {
		return Evaluation{}, context.Cause(ctx)
	}
	if err := l.Err(); err != nil {
		return Evaluation{}, err
	}
	if e.n == 0 { // figures of nothing: 0 loss and accuracy that mean nothing
		return Evaluation{}, nothingEvaluated(l.Data, l.Skipped())
	}
	return Evaluation{Loss: e.loss, Accuracy: e.acc, Top5: e.top5, Confusion: e.confusion, Skipped: l.Skipped()}, nil
}

// errNothingEvaluated is in the error of an evaluation that counted no
// image or pixel: its figures (0 loss, 0 accuracy) would mean nothing.
var errNothingEvaluated = errors.New("nothing to evaluate")

// nothingEvaluated says why an evaluation of d, which left out skipped
// unreadable files, counted nothing.
func nothingEvaluated(d *data.Dataset, skipped int) error {
	switch {
	case skipped > 0:
		return fmt.Errorf("%w: no file of the set could be read (%d left out as unreadable)", errNothingEvaluated, skipped)
	case d != nil && d.Len() > 0 && d.Masks != nil:
		return fmt.Errorf("%w: no pixel of the set is labelled", errNothingEvaluated)
	}
	return fmt.Errorf("%w: the data set holds no images", errNothingEvaluated)
}

// evalBatchHook, set by tests, runs before each batch that evaluate
// computes (to stop a run in the middle of an evaluation).
var evalBatchHook func()

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
func evaluate(ctx context.Context, m nn.Layer, l *data.Loader, classes int, tape *ag.Tape) (evaluation, error) {
	switch {
	case typednil.Is(m):
		return evaluation{}, errors.New("train: evaluate: no model (nil)")
	case l == nil:
		return evaluation{}, errors.New("train: evaluate: no loader (nil)")
	case classes < 1 || classes > limits.Classes:
		return evaluation{}, fmt.Errorf("train: evaluate: %d classes (want 1..%d)", classes, limits.Classes)
	}
	var loss, acc, top5 float64
	defer nn.SaveModes(m)()
	nn.SetTraining(m, false)
	confusion := make([][]int, classes)
	for i := range confusion {
		confusion[i] = make([]int, classes)
	}
	n := 0
	// The loader's goroutine stops when the loop leaves early.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for b := range l.Epoch(lctx, 0, 0) {
		if b.Empty() { // a loader with KeepEmpty: its files are in l.Skipped()
			continue
		}
		if evalBatchHook != nil {
			evalBatchHook()
		}
		if ctx.Err() != nil { // the loader may hand over batches it made before
			break
		}
		logits, err := forward(m, tape.Constant(b.X))
		if err != nil {
			return evaluation{}, err
		}
		s := logits.Shape()
		k := s[len(s)-1]
		switch {
		case k != classes:
			return evaluation{}, fmt.Errorf("the model has %d outputs, evaluated against %d classes", k, classes)
		case len(s) == 4 && b.X.Rank() == 4 && len(b.Y) != b.X.Shape[0]*b.X.Shape[1]*b.X.Shape[2]:
			return evaluation{}, fmt.Errorf("the model segments (output %v) and the data set labels whole images", s)
		}
		targets, _ := fitTargets(logits, b)
		if len(targets)*k != tensor.NumElements(s) {
			return evaluation{}, fmt.Errorf("%d targets for logits of shape %v (a classifier on a segmentation set?)", len(targets), s)
		}
		lv, err := ag.CrossEntropy(logits, targets, ag.CrossEntropyOptions{Ignore: true, IgnoreIndex: ignoreIndex, Sum: true})
		if err != nil {
			return evaluation{}, err
		}
		loss += float64(lv.Data.Data[0])
		for i, y := range targets {
			if y == ignoreIndex {
				continue
			}
			n++
			row := logits.Data.Data[i*k : (i+1)*k]
			best := tensor.ArgMax(row)
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
		tape.Reset()
	}
	e := evaluation{lossSum: loss, hits: acc, top5Hits: top5, n: n, confusion: confusion}
	e.means()
	return e, nil
}

// forward runs m on x, turning the panic with which a model refuses an
// input it cannot take (a U-Net's size, the channels) into an error.
func forward(m nn.Layer, x *ag.Value) (y *ag.Value, err error) {
	defer func() {
		if p := recover(); p != nil {
			y, err = nil, fmt.Errorf("the model cannot take the data set's images: %v", p)
		}
	}()
	return m.Forward(x), nil
}

// FormatIoU writes a class's IoU as the commands print it: with four
// decimals, or for IoU's NaN (a class in no true mask and predicted
// nowhere, whose IoU is 0/0) "n/a" and why.
func FormatIoU(v float64) string {
	if math.IsNaN(v) {
		return "n/a (in no mask, predicted nowhere)"
	}
	return fmt.Sprintf("%.4f", v)
}

// IoU returns the intersection over union of every class from a confusion
// matrix (rows: true class, columns: predicted) — TP/(TP + FP + FN) — and
// their mean over the classes that occur in the truth or the predictions
// (a class absent from both has IoU NaN and is left out of the mean). A
// matrix that is not square has no IoU: every class's and the mean are
// NaN.
func IoU(confusion [][]int) (perClass []float64, mean float64) {
	perClass = make([]float64, len(confusion))
	for _, row := range confusion {
		if len(row) != len(confusion) {
			for c := range perClass {
				perClass[c] = math.NaN()
			}
			return perClass, math.NaN()
		}
	}
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
