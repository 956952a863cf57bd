package kernels

import (
	"math"
	"runtime"
	"runtime/metrics"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// minParallelWork is the number of loop iterations below which parallelFor
// runs inline; spawning goroutines costs more than small loops.
const minParallelWork = 2

// maxThreads caps the goroutines of the kernels' parallel loops (0: only
// GOMAXPROCS does): SetThreads.
var maxThreads atomic.Int32

// SetThreads caps at n the goroutines that the kernels' parallel loops
// run on (n ≤ 0: GOMAXPROCS, the default) and returns the previous cap.
// A server whose model computes each batch on fewer cores than the
// process has keeps the others for the requests around it, which then
// queue up into batches while the model runs (serve's --model-threads).
func SetThreads(n int) (prev int) { return int(maxThreads.Swap(int32(min(max(n, 0), math.MaxInt32)))) }

// threads is how many goroutines a parallel loop may run on: GOMAXPROCS,
// or SetThreads' cap where it is lower.
func threads() int {
	p := runtime.GOMAXPROCS(0)
	if m := int(maxThreads.Load()); m > 0 && m < p {
		return m
	}
	return p
}

// chunksPerGoroutine is how many chunks parallelFor cuts per goroutine:
// the goroutines take chunks in turn until none is left, so that one
// slowed down (the machine is shared) leaves its share to the others
// instead of making them wait at the end.
const chunksPerGoroutine = 8

// chunking returns how parallelFor splits n iterations: p goroutines
// (p = 1 runs inline) over chunks of chunk iterations (the last may be
// shorter).
func chunking(n int) (p, chunk int) { return chunkingBy(n, chunksPerGoroutine) }

// chunkingBy is chunking with per chunks a goroutine.
func chunkingBy(n, per int) (p, chunk int) {
	p = min(threads(), n)
	if p <= 1 || n < minParallelWork {
		return 1, n
	}
	chunks := min(n, p*per)
	return p, (n + chunks - 1) / chunks
}

// parallelFor splits [0, n) into contiguous chunks and runs fn on each, in
// parallel on up to threads() goroutines, which take the chunks in order
// as they finish the previous ones; it returns when all are done. fn is
// called once per chunk, and the chunks depend only on n and threads(),
// so results that combine per-chunk work in chunk order are reproducible.
//
// The calling goroutine takes part and never waits for help: it offers the
// job to the workers (see worker) and works through the chunks itself;
// workers that join take chunks too, and it waits only for those that
// joined to finish theirs. Nested or concurrent calls therefore never wait
// on each other.
func parallelFor(n int, fn func(lo, hi int)) { parallelChunks(n, chunksPerGoroutine, fn) }

// parallelForEach is parallelFor with one chunk per goroutine: for loops
// whose chunks each fill a buffer of their own (partial weight gradients),
// which more chunks would multiply.
func parallelForEach(n int, fn func(lo, hi int)) { parallelChunks(n, 1, fn) }

func parallelChunks(n, per int, fn func(lo, hi int)) {
	p, chunk := chunkingBy(n, per)
	runChunks(n, p, chunk, fn)
}

// runChunks runs fn over [0, n) in chunks of chunk on up to p goroutines
// (the caller and p−1 helpers; p = 1: fn(0, n) inline), a split that
// chunkingBy made: callers that size buffers by the split make it once.
func runChunks(n, p, chunk int, fn func(lo, hi int)) {
	if p == 1 {
		fn(0, n)
		return
	}
	j := jobs.Get().(*job)
	j.fn, j.n, j.chunk = fn, n, chunk
	j.helpers.Store(int32(p - 1))
	j.next.Store(0)
	j.done.Store(0)
	j.state.Store(0) // open
	pending.Store(j)
	for range p - 1 {
		select {
		case tasks <- j: // a parked worker wakes to help
		default:
			startWorker()
		}
	}
	j.workRecovering()
	joined := j.state.Or(closed) &^ closed
	pending.CompareAndSwap(j, nil)
	for j.done.Load() != joined { // each is finishing its last chunk
		runtime.Gosched()
	}
	failed := j.failed.Swap(nil)
	j.fn = nil
	jobs.Put(j)
	if failed != nil {
		// In the caller, where a recover (a server's, a test's) can catch
		// it, with the chunk's own value: what a loop run inline (one
		// thread) panics with, whichever goroutine ran the chunk.
		panic(failed.value)
	}
}

// chunkPanic is a chunk's panic value, boxed to be stored atomically.
type chunkPanic struct{ value any }

// workRecovering is work, recording a chunk's panic in the job (the first
// of several) instead of letting it unwind a worker goroutine, which
// ended the program past any recover of the loop's caller.
func (j *job) workRecovering() {
	defer func() {
		if r := recover(); r != nil {
			j.failed.CompareAndSwap(nil, &chunkPanic{r})
		}
	}()
	j.work()
}

// A job is one parallelFor call: its function, its chunks, the next chunk
// to take, and the helpers that joined it and finished. Jobs are recycled,
// so that a call allocates nothing of its own.
type job struct {
	fn       func(lo, hi int)
	n, chunk int
	helpers  atomic.Int32 // how many helpers may join: the split's goroutines less the caller (atomic: a late worker may read a recycled job's)
	next     atomic.Int64
	state    atomic.Int32               // helpers joined, | closed once the caller is done
	done     atomic.Int32               // helpers finished
	failed   atomic.Pointer[chunkPanic] // the first chunk that panicked
}

// closed marks a job's state once its caller has run out of chunks: no
// helper joins after that.
const closed = 1 << 30

// work runs the job's chunks until none is left.
func (j *job) work() {
	for {
		lo := int(j.next.Add(int64(j.chunk))) - j.chunk
		if lo >= j.n {
			return
		}
		j.fn(lo, min(lo+j.chunk, j.n))
	}
}

// help joins the job, unless its caller is done or as many helpers as
// its split counts joined already (a worker started under a higher
// GOMAXPROCS or SetThreads cap stays out), and works on it. It reports
// whether it joined.
func (j *job) help() bool {
	for {
		s := j.state.Load()
		if s&closed != 0 || s >= j.helpers.Load() {
			return false
		}
		if j.state.CompareAndSwap(s, s+1) {
			break
		}
	}
	j.workRecovering()
	j.done.Add(1)
	return true
}

var jobs = sync.Pool{New: func() any { return new(job) }}

// pending is the latest job offered to spinning workers.
var pending atomic.Pointer[job]

// tasks wakes parked workers: a send succeeds only when one is waiting.
var tasks = make(chan *job)

// workers counts the worker goroutines; startWorker adds one while there
// are fewer than threads()−1 (the caller of parallelFor is the other).
var workers atomic.Int32

func startWorker() {
	for {
		w := workers.Load()
		if int(w) >= threads()-1 {
			return
		}
		if workers.CompareAndSwap(w, w+1) {
			go worker()
			return
		}
	}
}

// workerSpin is how long a worker looks for offered jobs after its last
// one before it parks: a training step calls parallelFor thousands of
// times with short serial stretches between, and waking a parked
// goroutine takes longer than many of those stretches. A server answering
// one client back to back has a millisecond or two between forward
// passes: with 400 µs the workers parked between every two, and ResNet-50
// at batch 1 served 5–9% fewer requests/s than with 5 ms (three alternated
// rounds on the 2-core Zen 5 VM). Runtimes spin as long or longer (GNU
// OpenMP's default spin count is milliseconds, Intel's KMP_BLOCKTIME 200
// ms); the cost is at most 5 ms of a core after the last job.
//
// While it spins, a worker offers its core to the machine's other threads
// every 64 looks (osYield, sched_yield on Linux): without it a spinning
// worker held its core against whatever else wanted it — the load
// generator of a server's benchmark, the other end of a request — until
// the kernel preempted it. ResNet-50 served to one client on the 2-core
// Zen 5 VM, three alternated rounds: the time between a pass's end and the
// next pass's start p90 3.5–3.9 → 1.6–1.7 ms (requests/s 40.9–41.3 →
// 41.4–41.7, inside the hour's swing); training and batch inference level.
// (When nothing else waits, sched_yield takes about 1.6 µs on that VM
// against 0.1 µs for a Gosched, so one in 64 looks is about a fifth
// of the spin.)
//
// Within the program, a spinning worker gives its P to other goroutines
// (runtime.Gosched) only while some are waiting to run (runnableCount).
// A Gosched puts the worker on the global run queue; when the next pass's
// caller then ran on the worker's P, nothing woke the idle P to run the
// worker, and the pass ran on one core until the scheduler looked again:
// ResNet-50 int8 served to one client on the Intel Xeon had a second and
// third mode at two and three times the pass (10–11 and 15–16 ms against
// 5–6; sysmon preempts after 10 ms), with a Gosched every look, every 8th
// or every 64th alike. Never yielding starved the server's handlers at 8
// clients (int8 11% fewer requests/s); yielding only to waiting
// goroutines took one client from p99 16.1–16.4 to 7.9–8.2 ms and
// 159–162 to 176–183 requests/s, fp32 from p99 40–86 to 40–43 ms over five
// rounds, 8 clients and training level (alternated rounds, 2026-12-06).
const workerSpin = 5 * time.Millisecond

// worker helps with jobs for the life of the program: it spins on pending
// for workerSpin after each, offering its core to other threads and its P
// to waiting goroutines as it goes, then parks until a caller wakes it.
func worker() {
	runnable := newRunnableCount()
	for {
		last, onJob := time.Now(), false
		for i := 0; ; i++ {
			if j := pending.Load(); j != nil && j.state.Load()&closed == 0 {
				// Joins and works, or, its chunks taken, looks again until
				// its caller closes it, pausing between looks (the spin-wait
				// hint: a sibling hyperthread gets the core's resources, and
				// the looks do not flood the job's cache line).
				if !j.help() {
					spinPause()
				}
				i, onJob = 0, true
				continue
			}
			if onJob {
				// The spin counts from the end of the last job: read once
				// here, not at every look at an open job (time.Now was a
				// tenth of a ResNet-50 step's profile, all of it waiting).
				last, onJob = time.Now(), false
			}
			if i%64 == 63 {
				if time.Since(last) > workerSpin {
					break
				}
				osYield()
			}
			if runnable.others() {
				runtime.Gosched()
			}
		}
		(<-tasks).help()
	}
}

// runnableCount reads how many goroutines are waiting to run
// (runtime/metrics' /sched/goroutines/runnable: a read of about 0.07 µs,
// whatever the number of goroutines). Each worker has its own.
type runnableCount []metrics.Sample

func newRunnableCount() runnableCount {
	return runnableCount{{Name: "/sched/goroutines/runnable:goroutines"}}
}

// others reports whether goroutines other than the caller are waiting to
// run; where the runtime lacks the metric, always (the worker then yields
// at every look).
func (r runnableCount) others() bool {
	metrics.Read(r)
	return r[0].Value.Kind() != metrics.KindUint64 || r[0].Value.Uint64() > 0
}

// parallelSums splits rows [0, m) over goroutines; each calls fn(lo, hi,
// acc) with its own zeroed accumulator of k float64s, and the accumulators
// are summed into the result.
//
// The partial sums are added in the order of their row ranges, so the
// result does not depend on which goroutine finishes first: training is
// bit-for-bit reproducible for a given threads().
func parallelSums(m, k int, fn func(lo, hi int, acc []float64)) []float64 {
	p, chunk := chunking(m) // once: the accumulators are the chunks'
	chunks := (m + chunk - 1) / max(chunk, 1)
	buf := sumPool.Get(chunks * k) // one accumulator per chunk
	clear(buf)
	runChunks(m, p, chunk, func(lo, hi int) {
		i := lo / max(chunk, 1)
		fn(lo, hi, buf[i*k:(i+1)*k])
	})
	total := make([]float64, k)
	for i := range chunks {
		for j, v := range buf[i*k : (i+1)*k] {
			total[j] += v
		}
	}
	sumPool.Put(buf)
	return total
}

// sumInOrder adds the partial sums into dst (which holds the first part
// already), by increasing key, so that the result does not depend on which
// goroutine finished first.
func sumInOrder(parts map[int][]float32, dst []float32) {
	keys := make([]int, 0, len(parts))
	for lo := range parts {
		keys = append(keys, lo)
	}
	sort.Ints(keys)
	for _, lo := range keys {
		Add(dst, parts[lo][:len(dst)], dst)
	}
}
