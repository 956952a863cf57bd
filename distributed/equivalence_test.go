package distributed_test

import (
	"fmt"
	"math"
	"sync"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/models/mlp"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensor"
)

// The data-parallel equivalence check: a residual MLP without batch norm
// (with it, the batch statistics would need SyncBatchNorm) trained by
// size ranks with batch eqBatch each, every rank from its own random
// weights replaced by rank 0's (BroadcastTensors), on its Sampler shard,
// averaging gradients with a Reducer, must take the SGD steps one process
// takes with batch size·eqBatch over the same permutation. The loss is a
// plain mean over the batch (no target ignored): a mean
// over a count that depends on the data — ignored targets, class or pixel
// weights — is not the mean of the ranks' means, and the trainer will
// need the global count for it.
const (
	eqN, eqIn, eqClasses = 48, 6, 3 // 48 samples: whole batches for 2 and 3 ranks
	eqBatch, eqEpochs    = 8, 2
	eqSeed               = 11
)

var eqConfig = mlp.Config{In: eqIn, Out: eqClasses, Width: 16, Depth: 2, Skip: true}

// eqData returns the data set.
func eqData() (*tensor.Tensor, []int32) {
	g := tensor.NewRNG(5)
	x := g.Randn(eqN, eqIn)
	y := make([]int32, eqN)
	for i := range y {
		y[i] = int32(g.IntN(eqClasses))
	}
	return x, y
}

// eqTrain trains as rank c.Rank() of c.Size() with batch b per rank,
// starting from the weights of initSeed before the broadcast, and returns
// the final weights.
func eqTrain(c distributed.Comm, b int, initSeed uint64) ([][]float32, error) {
	x, y := eqData()
	model, err := mlp.New(eqConfig, tensor.NewRNG(initSeed))
	if err != nil {
		return nil, err
	}
	params := nn.Parameters(model)
	weights := make([][]float32, len(params))
	sizes := make([]int, len(params))
	for i, p := range params {
		weights[i], sizes[i] = p.Data.Data, p.Data.Len()
	}
	if err := distributed.BroadcastTensors(c, weights, 0); err != nil {
		return nil, err
	}
	red, err := distributed.NewReducer(c, sizes, distributed.ReducerOptions{FirstBucketBytes: 256, BucketBytes: 1024})
	if err != nil {
		return nil, err
	}
	opt, err := optim.NewSGD([]optim.Group{{Params: params}}, optim.SGDConfig{LR: 0.1, Momentum: 0.9})
	if err != nil {
		return nil, err
	}
	s, err := distributed.NewSampler(distributed.Sampler{N: eqN, Rank: c.Rank(), Size: c.Size(), Shuffle: true, Seed: eqSeed})
	if err != nil {
		return nil, err
	}
	tape := ag.NewTape()
	for epoch := range eqEpochs {
		idx := s.Indices(epoch)
		for lo := 0; lo < len(idx); lo += b {
			rows := idx[lo : lo+b]
			xb := tensor.New(b, eqIn)
			yb := make([]int32, b)
			for k, i := range rows {
				copy(xb.Data[k*eqIn:(k+1)*eqIn], x.Data[i*eqIn:(i+1)*eqIn])
				yb[k] = y[i]
			}
			for _, p := range params {
				p.ZeroGrad()
			}
			loss, err := ag.CrossEntropy(model.Forward(tape.Constant(xb)), yb, ag.CrossEntropyOptions{})
			if err != nil {
				return nil, err
			}
			tape.Backward(loss)
			for i := len(params) - 1; i >= 0; i-- {
				if err := red.MarkReady(i, params[i].Grad.Data); err != nil {
					return nil, err
				}
			}
			if err := red.Wait(); err != nil {
				return nil, err
			}
			opt.Step()
			tape.Reset()
		}
	}
	return weights, nil
}

// eqCompare checks a rank's final weights against one process's, trained
// with batch size·eqBatch, and returns the largest difference.
//
// Tolerance: the runs differ only in the order of float32 additions (a
// weight gradient sums 16 or 24 rows in one process, 8 per rank, their
// sum and a division in the other), a relative difference of about
// 24·2⁻²⁴ ≈ 1.4e-6 in each step's gradient; over the 12 or 8 steps of
// learning rate 0.1 with momentum 0.9 here the weights move by less than
// 1, so the differences stay near 1e-6 unless training amplifies them.
// 1e-5 (absolute, weights of order 1) leaves that a factor of about 10 of
// room and is far below what a wrong average or a wrong shard gives
// (0.08 when the loss ignored class 0, so that each rank's mean ran over
// its own count).
func eqCompare(got [][]float32, size int) (float64, error) {
	want, err := eqTrain(distributed.NewLocal(), size*eqBatch, eqSeed)
	if err != nil {
		return 0, err
	}
	init, err := mlp.New(eqConfig, tensor.NewRNG(eqSeed))
	if err != nil {
		return 0, err
	}
	worst, moved := 0.0, 0.0
	for i, p := range nn.Parameters(init) {
		for k, w := range want[i] {
			worst = max(worst, math.Abs(float64(got[i][k]-w)))
			moved = max(moved, math.Abs(float64(w-p.Data.Data[k])))
		}
	}
	if moved < 1e-2 {
		return worst, fmt.Errorf("training moved the weights by only %g: the comparison would prove nothing", moved)
	}
	if worst > 1e-5 {
		return worst, fmt.Errorf("%d ranks × batch %d: the weights differ from one process × batch %d by up to %.3g, want ≤ 1e-5", size, eqBatch, size*eqBatch, worst)
	}
	return worst, nil
}

func TestDataParallelEqualsOneProcess(t *testing.T) {
	for _, size := range []int{2, 3} {
		got := make([][][]float32, size)
		errs := make([]error, size)
		var wg sync.WaitGroup
		for r, c := range distributed.NewGroup(size) {
			wg.Go(func() { got[r], errs[r] = eqTrain(c, eqBatch, eqSeed+uint64(r)) })
		}
		wg.Wait()
		for r, err := range errs {
			if err != nil {
				t.Fatalf("%d ranks, rank %d: %v", size, r, err)
			}
		}
		for r := 1; r < size; r++ {
			for i := range got[0] {
				for k := range got[0][i] {
					if got[r][i][k] != got[0][i][k] {
						t.Fatalf("%d ranks, parameter %d[%d]: rank 0 has %g, rank %d %g", size, i, k, got[0][i][k], r, got[r][i][k])
					}
				}
			}
		}
		worst, err := eqCompare(got[0], size)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d ranks × batch %d against 1 × %d: largest weight difference %.3g", size, eqBatch, size*eqBatch, worst)
	}
}
