package train

import (
	"context"
	"errors"
	"math"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

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
	return EvaluateAllPrecision(m, l, classes, ag.FP32)
}

// EvaluateAllPrecision is EvaluateAll with the convolutions and matrix
// products in precision p (see autograd.Precision).
func EvaluateAllPrecision(m nn.Layer, l *data.Loader, classes int, p ag.Precision) Evaluation {
	tape := ag.NewNoGradTape()
	tape.SetPrecision(p)
	e := evaluate(context.Background(), m, l, classes, tape)
	return Evaluation{Loss: e.loss, Accuracy: e.acc, Top5: e.top5, Confusion: e.confusion}
}

// Loader returns a loader of d's images in batches of batch, normalised
// as p says (mean and std, and Keras's BGR order and 0–255 scale where
// set), in order and without augmentation: what evaluating or calibrating
// a checkpoint's model on a data set needs. d's images must be of p's
// size already (data.Open reads folders at a size given in its spec).
func Loader(p checkpoint.Preprocess, d *data.Dataset, batch int) *data.Loader {
	return &data.Loader{Data: d, Batch: batch, Mean: p.Mean, Std: p.Std, BGR: p.BGR, Scale255: p.Scale255}
}

// EvaluateContext is EvaluateAllPrecision for long evaluations: it stops
// between batches once ctx is done and returns its cause, and it returns
// the loader's error (an unreadable image file) instead of the figures of
// the batches before it.
func EvaluateContext(ctx context.Context, m nn.Layer, l *data.Loader, classes int, p ag.Precision) (Evaluation, error) {
	if ctx == nil {
		return Evaluation{}, errors.New("train: EvaluateContext: nil context")
	}
	tape := ag.NewNoGradTape()
	tape.SetPrecision(p)
	e := evaluate(ctx, m, l, classes, tape)
	if ctx.Err() != nil {
		return Evaluation{}, context.Cause(ctx)
	}
	if err := l.Err(); err != nil {
		return Evaluation{}, err
	}
	return Evaluation{Loss: e.loss, Accuracy: e.acc, Top5: e.top5, Confusion: e.confusion}, nil
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
func evaluate(ctx context.Context, m nn.Layer, l *data.Loader, classes int, tape *ag.Tape) evaluation {
	var loss, acc, top5 float64
	nn.SetTraining(m, false)
	defer nn.SetTraining(m, true)
	confusion := make([][]int, classes)
	for i := range confusion {
		confusion[i] = make([]int, classes)
	}
	n := 0
	for b := range l.Epoch(ctx, 0, 0) {
		logits := m.Forward(tape.Constant(b.X))
		targets, _ := fitTargets(logits, b)
		lv, err := ag.CrossEntropy(logits, targets, ag.CrossEntropyOptions{Ignore: true, IgnoreIndex: ignoreIndex, Sum: true})
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
