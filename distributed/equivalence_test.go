package distributed_test

import (
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

// TestDataParallelEqualsOneProcess puts the parts together as the
// training loop will: 2 ranks, each starting from its own random weights
// replaced by rank 0's (BroadcastTensors), each training on its Sampler
// shard with batch 8 and averaging gradients with a Reducer, take the same
// SGD steps as one process with batch 16 over the same permutation — for
// a residual MLP without batch norm (with it, the batch statistics would
// need SyncBatchNorm). The loss is a plain mean over the batch
// (IgnoreIndex −1 ignores no target): a mean over a count that depends on
// the data — ignored targets, class or pixel weights — is not the mean of
// the ranks' means, and the trainer will need the global count for it.
//
// Tolerance: the runs differ only in the order of float32 additions (a
// weight gradient sums 16 rows in one process, 8 + 8 and a halving in the
// other), a relative difference of about 16·2⁻²⁴ ≈ 1e-6 in each step's
// gradient; over 8 steps of learning rate 0.1 with momentum 0.9 the
// weights move by less than 2 in all here, so the differences stay near
// 1e-6 unless training amplifies them. 1e-5 (absolute, weights of order
// 1) leaves that a factor of about 10 of room and is far below what a
// wrong average (a factor 2) or a wrong shard would give. The two ranks'
// weights must be bitwise equal.
func TestDataParallelEqualsOneProcess(t *testing.T) {
	const (
		n, in, classes = 64, 6, 3
		ranks, batch   = 2, 8
		epochs         = 2
		seed           = 11
	)
	g := tensor.NewRNG(5)
	x := g.Randn(n, in)
	y := make([]int32, n)
	for i := range y {
		y[i] = int32(g.IntN(classes))
	}
	cfg := mlp.Config{In: in, Out: classes, Width: 16, Depth: 2, Skip: true}

	// train runs the steps of one rank of size ranks with per-rank batch
	// b, starting from the weights of seed initSeed (before the
	// broadcast), and returns its final weights.
	train := func(c distributed.Comm, b int, initSeed uint64) ([][]float32, error) {
		model, err := mlp.New(cfg, tensor.NewRNG(initSeed))
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
		s, err := distributed.NewSampler(n, c.Rank(), c.Size(), true, seed, false)
		if err != nil {
			return nil, err
		}
		tape := ag.NewTape()
		for epoch := range epochs {
			idx := s.Indices(epoch)
			for lo := 0; lo < len(idx); lo += b {
				rows := idx[lo : lo+b]
				xb := tensor.New(b, in)
				yb := make([]int32, b)
				for k, i := range rows {
					copy(xb.Data[k*in:(k+1)*in], x.Data[i*in:(i+1)*in])
					yb[k] = y[i]
				}
				for _, p := range params {
					p.ZeroGrad()
				}
				loss, err := ag.CrossEntropy(model.Forward(tape.Constant(xb)), yb, ag.CrossEntropyOptions{IgnoreIndex: -1})
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

	want, err := train(distributed.NewLocal(), ranks*batch, seed)

	if err != nil {
		t.Fatal(err)
	}
	got := make([][][]float32, ranks)
	errs := make([]error, ranks)
	var wg sync.WaitGroup
	for r, c := range distributed.NewGroup(ranks) {
		wg.Go(func() { got[r], errs[r] = train(c, batch, seed+uint64(r)) })
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	worst := 0.0
	for i := range want {
		for k, w := range want[i] {
			if got[0][i][k] != got[1][i][k] {
				t.Fatalf("parameter %d[%d]: rank 0 has %g, rank 1 %g", i, k, got[0][i][k], got[1][i][k])
			}
			worst = max(worst, math.Abs(float64(got[0][i][k]-w)))
		}
	}
	if worst > 1e-5 {
		t.Errorf("the ranks' weights differ from one process's by up to %.3g, want ≤ 1e-5", worst)
	}
	moved := 0.0
	init, _ := mlp.New(cfg, tensor.NewRNG(seed))
	for i, p := range nn.Parameters(init) {
		for k, v := range p.Data.Data {
			moved = max(moved, math.Abs(float64(want[i][k]-v)))
		}
	}
	if moved < 1e-2 {
		t.Fatalf("training moved the weights by only %g: the comparison would prove nothing", moved)
	}
	t.Logf("%d ranks × batch %d against 1 × %d after %d steps: largest weight difference %.3g (weights moved up to %.3g)",
		ranks, batch, ranks*batch, epochs*n/(ranks*batch), worst, moved)
}
