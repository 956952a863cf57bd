package autograd

import (
	"fmt"
	"math"

	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// CrossEntropyOptions configure CrossEntropy; the zero value counts every
// target and averages over the rows (PyTorch's default but for its
// ignore_index of −100, which no valid target equals: set Ignore and
// IgnoreIndex −100 for that).
type CrossEntropyOptions struct {
	// Weight holds one weight per class, or nil. With weights, the mean is
	// Σ w[t]·loss / Σ w[t], as in PyTorch.
	Weight []float32
	// RowWeight holds one weight per row — per pixel for segmentation (the
	// U-Net paper's weight map) — or nil; it multiplies the class weight.
	RowWeight []float32
	// Ignore makes targets equal to IgnoreIndex contribute nothing
	// (PyTorch's ignore_index: a padded or unlabelled pixel, say). Without
	// it every target counts — class 0 included, whatever IgnoreIndex is.
	Ignore      bool
	IgnoreIndex int
	// Sum returns the sum over samples instead of the mean.
	Sum bool
	// LabelSmoothing is PyTorch's label_smoothing: the target distribution
	// puts 1 − ε on the true class and ε/K on every class.
	LabelSmoothing float64
}

// CrossEntropy returns the cross-entropy between the logits (classes on the
// last axis: [N,K] for classification, [N,H,W,K] per pixel for
// segmentation) and one target class per row. Targets outside [0, K) are
// an error, except IgnoreIndex when Ignore is set. A mean over no weight —
// every target ignored, or every weight 0 — is 0 with a zero gradient,
// where PyTorch's is NaN (a batch of unlabelled pixels must not stop a
// training run).
func CrossEntropy(logits *Value, targets []int32, o CrossEntropyOptions) (*Value, error) {
	s := logits.Data.Shape
	if len(s) < 2 {
		return nil, fmt.Errorf("cross-entropy: logits need a class axis, got shape %v", s)
	}
	k := s[len(s)-1]
	ignore := math.MinInt // no int32 target equals it
	if o.Ignore {
		ignore = o.IgnoreIndex
	}
	l := kernels.CrossEntropy[float32]{M: logits.numel() / k, K: k, Weight: o.Weight, RowWeight: o.RowWeight, IgnoreIndex: ignore, Sum: o.Sum, Smoothing: o.LabelSmoothing}
	if err := l.Check(targets); err != nil {
		return nil, err
	}
	y := result(nil, logits)
	if y.dry() {
		return y, nil
	}
	loss, norm := l.Forward(logits.Data.Data, targets)
	y.Data.Data[0] = float32(loss)
	record(y, func() {
		y.tape.contribute(logits, func(dst []float32) {
			l.Backward(logits.Data.Data, targets, norm, float64(y.Grad.Data[0]), dst)
		})
	}, logits)
	return y, nil
}

// Dice returns the soft Dice loss between the softmax of the logits
// (classes on the last axis) and one target class per row: 1 − the mean
// over classes of (2·|P∩G| + 1)/(|P| + |G| + 1), with |P∩G|, |P| and |G|
// sums of probabilities and indicators over the rows that are not
// ignoreIndex (Milletari et al. 2016, smoothed by 1).
func Dice(logits *Value, targets []int32, ignoreIndex int) (*Value, error) {
	s := logits.Data.Shape
	if len(s) < 2 {
		return nil, fmt.Errorf("dice: logits need a class axis, got shape %v", s)
	}
	k := s[len(s)-1]
	l := kernels.Dice[float32]{M: logits.numel() / k, K: k, IgnoreIndex: ignoreIndex}
	if err := l.Check(targets); err != nil {
		return nil, err
	}
	y := result(nil, logits)
	if y.dry() {
		return y, nil
	}
	y.Data.Data[0] = float32(l.Forward(logits.Data.Data, targets))
	record(y, func() {
		y.tape.contribute(logits, func(dst []float32) { l.Backward(logits.Data.Data, targets, float64(y.Grad.Data[0]), dst) })
	}, logits)
	return y, nil
}

func checkTarget(op string, x *Value, t *tensor.Tensor) {
	if !tensor.SameShape(x.Data.Shape, t.Shape) {
		shapeErr(op, "prediction %v and target %v differ", x.Data.Shape, t.Shape)
	}
}

// BCEWithLogits returns the mean binary cross-entropy between sigmoid(x)
// and targets in [0, 1] of the same shape, computed stably from the logits.
func BCEWithLogits(x *Value, target *tensor.Tensor) *Value {
	checkTarget("BCEWithLogits", x, target)
	y := result(nil, x)
	if y.dry() {
		return y
	}
	y.Data.Data[0] = float32(kernels.BCEWithLogitsForward(x.Data.Data, target.Data))
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) {
			kernels.BCEWithLogitsBackward(x.Data.Data, target.Data, float64(y.Grad.Data[0]), dst)
		})
	}, x)
	return y
}

// MSE returns the mean squared error between x and target.
func MSE(x *Value, target *tensor.Tensor) *Value {
	checkTarget("MSE", x, target)
	y := result(nil, x)
	if y.dry() {
		return y
	}
	y.Data.Data[0] = float32(kernels.MSEForward(x.Data.Data, target.Data))
	record(y, func() {
		y.tape.contribute(x, func(dst []float32) {
			kernels.MSEBackward(x.Data.Data, target.Data, float64(y.Grad.Data[0]), dst)
		})
	}, x)
	return y
}
