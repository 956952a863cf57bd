package autograd_test

import (
	"math"
	"sync"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/tensor"
)

// allReduce is an in-process all-reduce among n goroutines: each call
// blocks until every rank has called, then gives each the element-wise
// sum. It stands in for package distributed's MPI all-reduce.
type allReduce struct {
	mu      sync.Mutex
	cond    *sync.Cond
	n, seen int
	round   int
	acc     []float64
	result  []float64
}

func newAllReduce(n int) *allReduce {
	a := &allReduce{n: n}
	a.cond = sync.NewCond(&a.mu)
	return a
}

func (a *allReduce) sum(v []float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	round := a.round
	if a.seen == 0 {
		a.acc = make([]float64, len(v))
	}
	for i, x := range v {
		a.acc[i] += x
	}
	a.seen++
	if a.seen == a.n {
		a.result, a.seen = a.acc, 0
		a.round++
		a.cond.Broadcast()
	} else {
		for a.round == round {
			a.cond.Wait()
		}
	}
	copy(v, a.result)
}

// TestSyncBatchNormEqualsOneBatch splits a batch of 8 between 2 and 4
// ranks (goroutines joined by an all-reduce) and checks that synchronised
// batch norm (+ skip + ReLU) gives each rank the rows, input and skip
// gradients that one process gets for the whole batch (the gradient of the
// summed loss), γ and β gradients that sum to the whole batch's, and the
// same running statistics. The two sides sum in different orders in
// float64 and round to float32 at the end: 1e-5 of each tensor's scale.
func TestSyncBatchNormEqualsOneBatch(t *testing.T) {
	const c, n = 19, 8 // 19: a tail beyond the kernels' vector width
	rng := tensor.NewRNG(11)
	x, skip, proj := rng.Randn(n, 3, 2, c), rng.Randn(n, 3, 2, c), rng.Randn(n, 3, 2, c)
	for i := range x.Data {
		x.Data[i] += 40 // a mean that dwarfs the spread: the variance must not cancel
	}
	gamma, beta := rng.Randn(c), rng.Randn(c)
	rows := func(t *tensor.Tensor, lo, hi int) *tensor.Tensor {
		k := t.Len() / t.Shape[0]
		return tensor.MustFromData(append([]float32(nil), t.Data[lo*k:hi*k]...), append([]int{hi - lo}, t.Shape[1:]...)...)
	}
	type out struct {
		y, dx, dskip, dg, db []float32
		rm, rv               []float32
	}
	run := func(x, skip, proj *tensor.Tensor, sync func([]float64)) out {
		tape := ag.NewTape()
		xv, sv := tape.Variable(x.Clone()), tape.Variable(skip.Clone())
		gv, bv := ag.Param(gamma.Clone(), "g"), ag.Param(beta.Clone(), "b")
		rm, rv := tensor.New(c), tensor.Full(1, c)
		y := ag.ReLU(ag.Add(ag.BatchNorm(xv, gv, bv, rm, rv, ag.BatchNormParams{Training: true, Momentum: 0.1, Eps: 1e-5, Sync: sync}), sv))
		tape.BackwardWith(y, proj)
		return out{y.Data.Data, xv.Grad.Data, sv.Grad.Data, gv.Grad.Data, bv.Grad.Data, rm.Data, rv.Data}
	}
	whole := run(x, skip, proj, nil)
	for _, ranks := range []int{2, 4} {
		per := n / ranks
		parts := make([]out, ranks)
		ar := newAllReduce(ranks)
		var wg sync.WaitGroup
		for r := range ranks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lo, hi := r*per, (r+1)*per
				parts[r] = run(rows(x, lo, hi), rows(skip, lo, hi), rows(proj, lo, hi), ar.sum)
			}()
		}
		wg.Wait()
		var got out
		got.dg, got.db = make([]float32, c), make([]float32, c)
		for _, p := range parts {
			got.y = append(got.y, p.y...)
			got.dx = append(got.dx, p.dx...)
			got.dskip = append(got.dskip, p.dskip...)
			for j := range c {
				got.dg[j] += p.dg[j]
				got.db[j] += p.db[j]
			}
		}
		got.rm, got.rv = parts[0].rm, parts[0].rv
		for _, cmp := range []struct {
			what      string
			got, want []float32
		}{{"output", got.y, whole.y}, {"input gradient", got.dx, whole.dx}, {"skip gradient", got.dskip, whole.dskip},
			{"γ gradient", got.dg, whole.dg}, {"β gradient", got.db, whole.db}, {"running mean", got.rm, whole.rm}, {"running variance", got.rv, whole.rv}} {
			scale := 0.0
			for _, v := range cmp.want {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
			for i := range cmp.want {
				if d := math.Abs(float64(cmp.got[i] - cmp.want[i])); d > 1e-5*scale {
					t.Fatalf("%d ranks: %s element %d: %g, one process %g", ranks, cmp.what, i, cmp.got[i], cmp.want[i])
				}
			}
		}
	}
}
