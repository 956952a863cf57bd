package kernels

import (
	"math"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// TestDirectSplitBalance checks that the direct convolutions' tasks share
// their work evenly: handed in parallelFor's chunks to goroutines of equal
// speed (each chunk to the least loaded), they leave no goroutine more
// than 5% (at least one unit) above an even share, for 1–4 goroutines,
// every unit count up to 4,000 and groups of ResNet-50's rows and tiles;
// and that the tasks cover every unit once, in order within a share.
func TestDirectSplitBalance(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for procs := 1; procs <= 4; procs++ {
		runtime.GOMAXPROCS(procs)
		for _, per := range []int{1, 2, 4, 9, 18} {
			for units := 1; units <= 4000; units++ {
				d := splitDirect(units, per)
				p, chunk := chunkingBy(d.tasks(), d.k)
				if p > 1 && chunk != 1 {
					t.Fatalf("%d units: chunks of %d tasks", units, chunk)
				}
				load := make([]int, p)
				covered := make([]int, units)
				for task := range d.tasks() {
					least := 0
					for i := range load {
						if load[i] < load[least] {
							least = i
						}
					}
					lo, hi := d.span(task)
					load[least] += hi - lo
					for u := lo; u < hi; u++ {
						covered[u]++
					}
				}
				for u, c := range covered {
					if c != 1 {
						t.Fatalf("%d goroutines, %d units of %d: unit %d in %d tasks", procs, units, per, u, c)
					}
				}
				most, even := slices.Max(load), (units+p-1)/p
				if most > even+max(1, even/20) {
					t.Fatalf("%d goroutines, %d units, groups of about %d: %d tasks, the busiest goroutine has %d units against an even %d", procs, units, per, d.tasks(), most, even)
				}
			}
		}
	}
}

// TestRunnableCountSeesWaitingGoroutines checks what a spinning worker
// relies on to give its P only to goroutines that wait for one
// (runnableCount): the runtime has the metric, and with one P, goroutines
// just started, waiting for it, are counted.
//
// The four stay runnable until the count is read: each yields until
// released. (Each ran wg.Done and ended: when the system held the test's
// thread for 10 ms, sysmon preempted the test goroutine, the four ran to
// their end and the count read 0.)
func TestRunnableCountSeesWaitingGoroutines(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	r := newRunnableCount()
	metrics.Read(r)
	if k := r[0].Value.Kind(); k != metrics.KindUint64 {
		t.Fatalf("%s: kind %v, not a count: workers would yield at every look", r[0].Name, k)
	}
	var wg sync.WaitGroup
	var release atomic.Bool
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !release.Load() {
				runtime.Gosched()
			}
		}()
	}
	waiting := r.others()
	n := r[0].Value.Uint64()
	release.Store(true)
	wg.Wait()
	if !waiting || n < 4 {
		t.Errorf("four goroutines waiting for the only P: others() = %v, count %d", waiting, n)
	}
}

// TestSetThreadsCapsLoops: with a cap of one thread a parallel loop runs
// as one chunk on the caller, whatever GOMAXPROCS is, and without the cap
// it is cut into chunks again; SetThreads returns the cap it replaces.
func TestSetThreadsCapsLoops(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	t.Cleanup(func() { SetThreads(0) }) // a failure leaves no cap for the tests after it
	chunksOf := func() [][2]int {
		var mu sync.Mutex
		var chunks [][2]int
		parallelFor(1000, func(lo, hi int) {
			mu.Lock()
			chunks = append(chunks, [2]int{lo, hi})
			mu.Unlock()
		})
		return chunks
	}
	if prev := SetThreads(1); prev != 0 {
		t.Fatalf("SetThreads(1) returned %d, want the default 0", prev)
	}
	got := chunksOf()
	if prev := SetThreads(0); prev != 1 {
		t.Fatalf("SetThreads(0) returned %d, want 1", prev)
	}
	if !slices.Equal(got, [][2]int{{0, 1000}}) {
		t.Errorf("capped at one thread, the loop ran as chunks %v, want one chunk [0, 1000)", got)
	}
	if p, _ := chunking(1000); p != 2 {
		t.Errorf("uncapped with GOMAXPROCS 2: chunking(1000) uses %d goroutines, want 2", p)
	}
	if got := chunksOf(); len(got) < 2 {
		t.Errorf("uncapped with GOMAXPROCS 2: the loop ran as chunks %v, want several", got)
	}
	SetThreads(-3)
	if got := threads(); got != 2 {
		t.Errorf("a negative cap: threads() = %d, want GOMAXPROCS's 2", got)
	}
	SetThreads(min(1<<32+1, math.MaxInt)) // past int32 (where int is wider): no cap, not a cap of 1
	if got := threads(); got != 2 {
		t.Errorf("a cap of 2³²+1: threads() = %d, want GOMAXPROCS's 2", got)
	}
	SetThreads(0)

	// Workers started under a higher GOMAXPROCS stay out of a capped
	// loop: with four Ps the first loop leaves three workers spinning,
	// and a loop capped at two then runs on two goroutines at most.
	runtime.GOMAXPROCS(4)
	parallelFor(64, func(lo, hi int) { time.Sleep(100 * time.Microsecond) })
	SetThreads(2)
	var running, most atomic.Int32
	parallelFor(64, func(lo, hi int) {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(500 * time.Microsecond)
		running.Add(-1)
	})
	SetThreads(0)
	if m := most.Load(); m > 2 {
		t.Errorf("capped at two threads after four had run: a loop ran on %d goroutines at once", m)
	}
}

// TestParallelForPanicReachesCaller: a chunk that panics on a worker
// goroutine panics in the loop's caller (with the chunk's value), where a
// recover catches it — a server's answers that request
// with 500 — and the loops after it run; the panic ended the program. The
// first chunk holds the caller until another chunk (a worker's) has
// started, so that the panicking chunk is a worker's.
func TestParallelForPanicReachesCaller(t *testing.T) {
	if threads() < 2 {
		t.Skip("needs 2 threads for a worker to take a chunk")
	}
	for range 20 {
		other := make(chan struct{})
		var once sync.Once
		got := func() (r any) {
			defer func() { r = recover() }()
			parallelFor(64, func(lo, hi int) {
				if lo == 0 {
					select {
					case <-other:
					case <-time.After(2 * time.Second):
					}
					return
				}
				once.Do(func() { close(other) })
				var s []int
				_ = s[lo] // index out of range
			})
			return nil
		}()
		if re, ok := got.(runtime.Error); !ok || !strings.Contains(re.Error(), "index out of range") {
			t.Fatalf("recovered %v (%T); want the chunk's index error", got, got)
		}
	}
	n := 0
	var mu sync.Mutex
	parallelFor(64, func(lo, hi int) { mu.Lock(); n += hi - lo; mu.Unlock() })
	if n != 64 {
		t.Errorf("the loop after: %d indices run, want 64", n)
	}
}

// BenchmarkParallelForOverhead is one parallelFor over 64 indices whose
// chunks do nothing: what a loop costs beyond its work (offering the job,
// the workers joining, the caller waiting for them), which a training step
// pays thousands of times.
func BenchmarkParallelForOverhead(b *testing.B) {
	var sink atomic.Int64
	for b.Loop() {
		parallelFor(64, func(lo, hi int) { sink.Add(int64(hi - lo)) })
	}
}
