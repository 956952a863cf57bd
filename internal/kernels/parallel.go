package kernels

import (
	"runtime"
	"sort"
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
//
// The partial sums are added in the order of their row ranges, so the
// result does not depend on which goroutine finishes first: training is
// bit-for-bit reproducible for a given GOMAXPROCS.
func parallelSums(m, k int, fn func(lo, hi int, acc []float64)) []float64 {
	var mu sync.Mutex
	parts := map[int][]float64{}
	parallelFor(m, func(lo, hi int) {
		acc := make([]float64, k)
		fn(lo, hi, acc)
		mu.Lock()
		parts[lo] = acc
		mu.Unlock()
	})
	total := make([]float64, k)
	sumInOrder(parts, total)
	return total
}

// sumInOrder adds the partial sums into dst (zeroed first) by increasing
// key, so that the result does not depend on which goroutine finished
// first.
func sumInOrder[T Float](parts map[int][]T, dst []T) {
	keys := make([]int, 0, len(parts))
	for lo := range parts {
		keys = append(keys, lo)
	}
	sort.Ints(keys)
	clear(dst)
	for _, lo := range keys {
		for i, v := range parts[lo][:len(dst)] {
			dst[i] += v
		}
	}
}
