package kernels

import (
	"runtime"
	"sort"
	"sync"
)

// minParallelWork is the number of loop iterations below which parallelFor
// runs inline; spawning goroutines costs more than small loops.
const minParallelWork = 2

// chunking returns how parallelFor splits n iterations: p chunks of
// chunk iterations (the last may be shorter); p = 1 runs inline.
func chunking(n int) (p, chunk int) {
	p = min(runtime.GOMAXPROCS(0), n)
	if p <= 1 || n < minParallelWork {
		return 1, n
	}
	chunk = (n + p - 1) / p
	return (n + chunk - 1) / chunk, chunk
}

// parallelFor splits [0, n) into at most GOMAXPROCS contiguous chunks and
// runs fn on each, in parallel; it returns when all are done.
func parallelFor(n int, fn func(lo, hi int)) {
	p, chunk := chunking(n)
	if p == 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
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
	p, chunk := chunking(m)
	buf := make([]float64, (p+1)*k) // the result, then one accumulator per chunk
	parallelFor(m, func(lo, hi int) {
		i := 1 + lo/max(chunk, 1)
		fn(lo, hi, buf[i*k:(i+1)*k])
	})
	total := buf[:k]
	for i := 1; i <= p; i++ {
		for j, v := range buf[i*k : (i+1)*k] {
			total[j] += v
		}
	}
	return total
}

// sumInOrder writes the sum of the partial sums into dst, adding them by
// increasing key, so that the result does not depend on which goroutine
// finished first.
func sumInOrder[T Float](parts map[int][]T, dst []T) {
	keys := make([]int, 0, len(parts))
	for lo := range parts {
		keys = append(keys, lo)
	}
	sort.Ints(keys)
	if len(keys) == 0 {
		clear(dst)
		return
	}
	copy(dst, parts[keys[0]][:len(dst)])
	for _, lo := range keys[1:] {
		Add(dst, parts[lo][:len(dst)], dst)
	}
}
