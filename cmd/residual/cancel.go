package main

import (
	"context"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/train"
)

// evalBatch is the batch size of eval.
const evalBatch = 256

// evaluate is train.Evaluate over test one batch at a time, checking ctx
// between batches (train.Evaluate takes no context), so that eval stops
// within a batch of a signal. It returns the mean loss per target and the
// accuracy over all targets (images, or pixels for segmentation) and the
// summed confusion matrix: the counts equal one pass's, and the loss
// differs from one pass's only in the order of its float64 sum.
func evaluate(ctx context.Context, net nn.Layer, test *data.Dataset, mean, std []float64, classes int, precision ag.Precision) (loss, acc, top5 float64, confusion [][]int, err error) {
	confusion = make([][]int, classes)
	for i := range confusion {
		confusion[i] = make([]int, classes)
	}
	var lossSum, top5Sum float64
	n, correct := 0, 0
	for lo := 0; lo < test.Len(); lo += evalBatch {
		if err := stopped(ctx); err != nil {
			return 0, 0, 0, nil, err
		}
		idx := make([]int, min(evalBatch, test.Len()-lo))
		for i := range idx {
			idx[i] = lo + i
		}
		l := &data.Loader{Data: test.Subset(idx), Batch: evalBatch, Mean: mean, Std: std}
		e := train.EvaluateAllPrecision(net, l, classes, precision)
		bl, conf := e.Loss, e.Confusion
		if err := l.Err(); err != nil { // an image that could not be decoded
			return 0, 0, 0, nil, err
		}
		bn := 0
		for i, row := range conf {
			for j, v := range row {
				confusion[i][j] += v
				bn += v
				if i == j {
					correct += v
				}
			}
		}
		lossSum += bl * float64(bn)
		top5Sum += e.Top5 * float64(bn)
		n += bn
	}
	d := float64(max(n, 1))
	return lossSum / d, float64(correct) / d, top5Sum / d, confusion, nil
}

// stopped returns the cause of ctx's cancellation (the signal, for the
// CLI), or nil while it runs: commands call it between the steps of work
// that cannot be interrupted inside.
func stopped(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}
