package kernels

import (
	"runtime"
	"sync"
)

// minParallelWork is the number of loop iterations below which parallelFor
// runs inline; spawning goroutines costs more than small loops.
const minParallelWork = 2

// parallelFor splits [0, n) into at most GOMAXPROCS contiguous chunks and
// runs fn on each, in parallel; it returns when all are done.
func parallelFor(n int, fn func(lo, hi int)) {
	p := runtime.GOMAXPROCS(0)
	if p > n {
		p = n
	}
	if p <= 1 || n < minParallelWork {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + p - 1) / p
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	fn(0, min(chunk, n))
	wg.Wait()
}

// parallelSums splits rows [0, m) over goroutines; each calls fn(lo, hi,
// acc) with its own zeroed accumulator of k float64s, and the accumulators
// are summed into the result.
func parallelSums(m, k int, fn func(lo, hi int, acc []float64)) []float64 {
	total := make([]float64, k)
	var mu sync.Mutex
	parallelFor(m, func(lo, hi int) {
		acc := make([]float64, k)
		fn(lo, hi, acc)
		mu.Lock()
		for i, v := range acc {
			total[i] += v
		}
		mu.Unlock()
	})
	return total
}
