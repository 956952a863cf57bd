package kernels

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestParallelForRunsEachIndexOnce calls parallelFor (and parallelForEach)
// from several goroutines at once, with nested calls inside the chunks, and
// checks that every index of every call runs exactly once and that the
// chunks are the same from call to call.
func TestParallelForRunsEachIndexOnce(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, n := range []int{1, 2, 3, 7, 16, 17, 100, 1000 + g} {
				for _, each := range []bool{false, true} {
					counts := make([]atomic.Int32, n)
					var inner atomic.Int64
					var mu sync.Mutex
					var chunks [][2]int
					run := parallelFor
					if each {
						run = parallelForEach
					}
					run(n, func(lo, hi int) {
						mu.Lock()
						chunks = append(chunks, [2]int{lo, hi})
						mu.Unlock()
						for i := lo; i < hi; i++ {
							counts[i].Add(1)
						}
						parallelFor(5, func(a, b int) { inner.Add(int64(b - a)) })
					})
					for i := range counts {
						if c := counts[i].Load(); c != 1 {
							errs <- "an index ran other than once"
							return
						}
					}
					if inner.Load() != 5*int64(len(chunks)) {
						errs <- "a nested call lost or repeated iterations"
						return
					}
					_, chunk := chunking(n)
					if each {
						_, chunk = chunkingBy(n, 1)
					}
					for _, c := range chunks {
						if c[0]%chunk != 0 || c[1] != min(c[0]+chunk, n) {
							errs <- "a chunk not on the call's fixed boundaries"
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
