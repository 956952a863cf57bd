package autograd

import (
	"math"

	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// syncBatchNorm is batchNorm in training mode with the statistics of the
// whole batch across processes (PyTorch's SyncBatchNorm): p.Sync replaces
// per-channel sums by their sums over every process, so that N processes
// with batches of B normalise as one process with a batch of N·B. Each
// process calls it for the same batch norms in the same order.
//
// Forward: two synchronised sums, Σx with the count and then Σ(x − mean)²
// (the two-pass variance: one pass of Σx² − N·mean² would cancel away the
// variance of a channel whose mean dwarfs it). Backward: Σdy and Σdy·x̂ are
// synchronised, so that each process's dx is the gradient of the sum of
// every process's loss with respect to its own x, as in PyTorch; γ's and
// β's gradients stay local (data-parallel training averages them with the
// other parameters' gradients).
func syncBatchNorm(y, x, gamma, beta, skip *Value, relu bool, runMean, runVar *tensor.Tensor, p BatchNormParams) {
	xs := x.Data.Shape
	c := xs[len(xs)-1]
	m := x.numel() / c
	xd := x.Data.Data
	s := make([]float64, c+1)
	for i := 0; i < m; i++ {
		for j, v := range xd[i*c : (i+1)*c] {
			s[j] += float64(v)
		}
	}
	s[c] = float64(m)
	p.Sync(s)
	total := s[c]
	mean := s[:c]
	for j := range mean {
		mean[j] /= total
	}
	sq := make([]float64, c)
	for i := 0; i < m; i++ {
		for j, v := range xd[i*c : (i+1)*c] {
			d := float64(v) - mean[j]
			sq[j] += d * d
		}
	}
	p.Sync(sq)
	mean32, var32, invStd := make([]float32, c), make([]float32, c), make([]float64, c)
	for j := range mean {
		v := sq[j] / total
		mean32[j], var32[j] = float32(mean[j]), float32(v)
		invStd[j] = 1 / math.Sqrt(v+p.Eps)
		if runMean != nil {
			runMean.Data[j] = float32((1-p.Momentum)*float64(runMean.Data[j]) + p.Momentum*mean[j])
			runVar.Data[j] = float32((1-p.Momentum)*float64(runVar.Data[j]) + p.Momentum*v*total/max(total-1, 1))
		}
	}
	g, b := data(gamma), data(beta)
	// Normalising with the batch's mean and (biased) variance is the
	// evaluation-mode kernel given those as its statistics.
	kernels.BatchNormEvalForward(m, c, xd, g, b, mean32, var32, y.Data.Data, p.Eps, kernels.Fused[float32]{Skip: data(skip), ReLU: relu})
	record(y, func() {
		tp, dy, yd := y.tape, y.Grad.Data, y.Data.Data
		masked := tp.alloc(len(dy)) // dy through the fused ReLU: the skip's gradient too
		for i, v := range dy {
			if relu && yd[i] == 0 {
				v = 0
			}
			masked[i] = v
		}
		sums := make([]float64, 2*c) // Σdy, then Σdy·x̂
		for i := 0; i < m; i++ {
			for j, v := range masked[i*c : (i+1)*c] {
				xh := (float64(xd[i*c+j]) - mean[j]) * invStd[j]
				sums[j] += float64(v)
				sums[c+j] += float64(v) * xh
			}
		}
		dg, db := tp.alloc(c), tp.alloc(c)
		for j := range c {
			db[j], dg[j] = float32(sums[j]), float32(sums[c+j]) // this process's share
		}
		p.Sync(sums)
		dx := tp.alloc(len(dy))
		for i := 0; i < m; i++ {
			for j, v := range masked[i*c : (i+1)*c] {
				xh := (float64(xd[i*c+j]) - mean[j]) * invStd[j]
				gj := 1.0
				if g != nil {
					gj = float64(g[j])
				}
				dx[i*c+j] = float32(gj * invStd[j] * (float64(v) - sums[j]/total - xh*sums[c+j]/total))
			}
		}
		tp.give(x, dx)
		tp.give(gamma, dg)
		tp.give(beta, db)
		if skip != nil && skip.needsGrad {
			tp.give(skip, masked)
		} else {
			tp.release(masked)
		}
	}, x, gamma, beta, skip)
}
