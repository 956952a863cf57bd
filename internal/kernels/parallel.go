package kernels

import (
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
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
// runs fn on each, in parallel; it returns when all are done. The calling
// goroutine runs the first chunk; the others go to idle workers (see
// worker), or to new goroutines when no worker is idle, so that nested or
// concurrent calls never wait on each other.
func parallelFor(n int, fn func(lo, hi int)) {
	p, chunk := chunking(n)
	if p == 1 {
		fn(0, n)
		return
	}
	j := jobs.Get().(*job)
	j.fn = fn
	for lo := chunk; lo < n; lo += chunk {
		t := task{j, lo, min(lo+chunk, n)}
		j.wg.Add(1)
		select {
		case tasks <- t:
		default:
			startWorker()
			go t.run()
		}
	}
	fn(0, min(chunk, n))
	j.wg.Wait()
	j.fn = nil
	jobs.Put(j)
}

// A job is one parallelFor call: its function and the chunks in flight.
// Jobs are recycled, so that a call allocates nothing of its own.
type job struct {
	fn func(lo, hi int)
	wg sync.WaitGroup
}

var jobs = sync.Pool{New: func() any { return new(job) }}

// A task is one chunk of a job.
type task struct {
	j      *job
	lo, hi int
}

func (t task) run() {
	t.j.fn(t.lo, t.hi)
	t.j.wg.Done()
}

// tasks hands chunks to idle workers: a send succeeds only when one is
// waiting.
var tasks = make(chan task)

// workers counts the worker goroutines; startWorker adds one while there
// are fewer than GOMAXPROCS−1 (the caller of parallelFor is the other).
var workers atomic.Int32

func startWorker() {
	for {
		w := workers.Load()
		if int(w) >= runtime.GOMAXPROCS(0)-1 {
			return
		}
		if workers.CompareAndSwap(w, w+1) {
			go worker()
			return
		}
	}
}

// worker runs chunks for the life of the program, parked between them.
func worker() {
	for t := range tasks {
		t.run()
	}
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

// sumInOrder adds the partial sums into dst (which holds the first part
// already), by increasing key, so that the result does not depend on which
// goroutine finished first.
func sumInOrder[T Float](parts map[int][]T, dst []T) {
	keys := make([]int, 0, len(parts))
	for lo := range parts {
		keys = append(keys, lo)
	}
	sort.Ints(keys)
	for _, lo := range keys {
		Add(dst, parts[lo][:len(dst)], dst)
	}
}
