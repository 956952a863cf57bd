package serve

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/residual-nn/residual/tensor"
)

// job is one request's slice of a batch: n images of one shape.
type job struct {
	ctx      context.Context
	x        *tensor.Tensor // [n, ...]
	n        int
	enqueued time.Time
	done     chan result // buffered, receives exactly once
}

type result struct {
	y       *tensor.Tensor // [n, ...]
	queue   time.Duration
	compute time.Duration
	err     error
}

// batcher coalesces concurrent jobs of one model into batches of at most
// maxBatch images and runs them on the backend from instances goroutines.
// An instance that is idle when a job arrives runs it at once, with
// whatever else is queued by then: waiting could only add latency, since
// nothing else runs. One that finds jobs already waiting when it comes
// free (the model is busy) waits up to maxDelay after taking them for more
// to fill the batch. Its
// queue holds at most maxQueue jobs; submit refuses a job when the queue is
// full or when the estimated wait exceeds the job's deadline.
type batcher struct {
	backend  Backend
	maxBatch int
	maxDelay time.Duration
	queue    chan *job
	metrics  *modelMetrics

	queued   atomic.Int64 // images waiting in the queue or running
	perImage atomic.Int64 // EWMA of compute ns per image of the last batches

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	wg     sync.WaitGroup
}

func newBatcher(b Backend, maxBatch int, maxDelay time.Duration, maxQueue, instances int, m *modelMetrics) *batcher {
	bt := &batcher{backend: b, maxBatch: maxBatch, maxDelay: maxDelay, queue: make(chan *job, maxQueue), metrics: m}
	for range max(instances, 1) {
		bt.wg.Add(1)
		go bt.loop()
	}
	return bt
}

// estimate returns how long n more images would take to be answered:
// the images ahead and these at the measured compute time per image, plus
// the batching delay when there are images ahead (an idle model runs a
// request at once).
func (bt *batcher) estimate(n int) time.Duration {
	per := time.Duration(bt.perImage.Load())
	ahead := bt.queued.Load()
	wait := time.Duration(0)
	if ahead > 0 {
		wait = bt.maxDelay
	}
	return wait + per*time.Duration(ahead+int64(n))
}

// submit queues x ([n, ...]) and waits for its output. It refuses at
// admission (overloaded) when the queue is full or when ctx's deadline
// is sooner than the estimated answer.
func (bt *batcher) submit(ctx context.Context, x *tensor.Tensor) (result, error) {
	n := x.Shape[0]
	if n > bt.maxBatch {
		return result{}, badRequest("batch of %d is larger than the server's --max-batch %d (Config.MaxBatch)", n, bt.maxBatch)
	}
	if dl, ok := ctx.Deadline(); ok {
		if time.Until(dl) <= 0 { // not a matter of load: 504, not 429's "retry"
			return result{}, fmt.Errorf("the request's deadline passed before it was queued: %w", context.DeadlineExceeded)
		}
		if est := bt.estimate(n); time.Until(dl) < est {
			return result{}, overloaded("deadline in %v cannot be met: %d images queued, estimated answer in %v", time.Until(dl).Round(time.Microsecond), bt.queued.Load(), est.Round(time.Microsecond))
		}
	}
	j := &job{ctx: ctx, x: x, n: n, enqueued: time.Now(), done: make(chan result, 1)}
	bt.mu.RLock()
	if bt.closed {
		bt.mu.RUnlock()
		return result{}, errBatcherClosed
	}
	select {
	case bt.queue <- j:
		bt.queued.Add(int64(n))
	default:
		bt.mu.RUnlock()
		return result{}, overloaded("queue full (%d requests waiting)", cap(bt.queue))
	}
	bt.mu.RUnlock()
	bt.setQueueGauge()
	select {
	case r := <-j.done:
		return r, r.err
	case <-ctx.Done():
		// The worker still answers into the buffered channel; nobody waits.
		return result{}, ctx.Err()
	}
}

// errBatcherClosed tells a caller that the model was replaced or unloaded
// between lookup and submit; it looks the model up again.
var errBatcherClosed = unavailable("model is being replaced or unloaded; retry")

// close stops accepting jobs, lets the workers answer every queued job
// and waits for them.
func (bt *batcher) close() {
	bt.mu.Lock()
	if !bt.closed {
		bt.closed = true
		close(bt.queue)
	}
	bt.mu.Unlock()
	bt.wg.Wait()
}

// loop is one model instance: it gathers a batch and runs it, until the
// queue is closed and empty.
func (bt *batcher) loop() {
	defer bt.wg.Done()
	var carry *job
	for ran := false; ; ran = true {
		first := carry
		carry = nil
		busy := first != nil // jobs were waiting when this instance came free from a batch
		if first == nil {
			var ok bool
			select {
			case first, ok = <-bt.queue:
				busy = ran
			default:
				first, ok = <-bt.queue // idle until it comes
			}
			if !ok {
				return
			}
		}
		batch, size := []*job{first}, first.n
		var timer <-chan time.Time
		var t *time.Timer
		if bt.maxDelay > 0 && busy {
			t = time.NewTimer(bt.maxDelay)
			timer = t.C
		}
	gather:
		for size < bt.maxBatch {
			var j *job
			var ok bool
			if timer == nil {
				select {
				case j, ok = <-bt.queue:
				default:
					break gather
				}
			} else {
				select {
				case j, ok = <-bt.queue:
				case <-timer:
					break gather
				}
			}
			if !ok {
				break
			}
			if size+j.n > bt.maxBatch || !tensor.SameShape(j.x.Shape[1:], first.x.Shape[1:]) {
				carry = j // starts the next batch
				break
			}
			batch, size = append(batch, j), size+j.n
		}
		if t != nil {
			t.Stop()
		}
		bt.run(batch, size)
	}
}

// run executes one batch and answers its jobs. Jobs whose context ended
// while queued are answered with its error and left out.
func (bt *batcher) run(batch []*job, size int) {
	start := time.Now()
	live := batch[:0:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			bt.queued.Add(-int64(j.n))
			j.done <- result{err: err, queue: start.Sub(j.enqueued)}
			size -= j.n
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		bt.setQueueGauge() // the jobs left out are no longer queued
		return
	}
	x := live[0].x
	if len(live) > 1 {
		shape := append([]int{size}, x.Shape[1:]...)
		x = tensor.New(shape...)
		off := 0
		for _, j := range live {
			off += copy(x.Data[off:], j.x.Data)
		}
	}
	y, err := bt.forward(x)
	compute := time.Since(start)
	if err == nil && (y == nil || len(y.Shape) == 0 || y.Shape[0] != size || !fills(y)) {
		err = internal("model returned a malformed output for a batch of %d", size)
		if y != nil {
			err = internal("model returned shape %v with %d values for a batch of %d", y.Shape, len(y.Data), size)
		}
	}
	if err == nil {
		// EWMA with weight 1/4 on the newest batch: follows load changes
		// within a few batches, smooths one slow batch.
		per := int64(compute) / int64(size)
		old := bt.perImage.Load()
		if old == 0 {
			bt.perImage.Store(per)
		} else {
			bt.perImage.Store(old + (per-old)/4)
		}
	}
	if bt.metrics != nil {
		bt.metrics.observeBatch(size, compute, err)
	}
	off, per := 0, 0
	if err == nil {
		per = len(y.Data) / size
	}
	for _, j := range live {
		r := result{queue: start.Sub(j.enqueued), compute: compute, err: err}
		if err == nil {
			r.y = tensor.MustFromData(y.Data[off:off+j.n*per], append([]int{j.n}, y.Shape[1:]...)...)
			off += j.n * per
		}
		bt.queued.Add(-int64(j.n))
		j.done <- r
	}
	bt.setQueueGauge()
}

// setQueueGauge sets residual_queue_images to the images queued.
func (bt *batcher) setQueueGauge() {
	if bt.metrics != nil {
		bt.metrics.queueItems.Set(float64(bt.queued.Load()))
	}
}

// forward calls the backend and turns a panic into an error, so that one
// bad batch answers its requests with 500 and the server keeps serving.
func (bt *batcher) forward(x *tensor.Tensor) (y *tensor.Tensor, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = internal("model panicked: %v", p)
			if bt.metrics != nil {
				bt.metrics.logger.Error("model panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
		}
	}()
	// The batch runs to completion even if some of its requests give up:
	// the others wait for it.
	return bt.backend.Forward(context.Background(), x)
}

// fills reports whether y's values fill its shape exactly, without
// panicking on a Backend's negative or overflowing shape.
func fills(y *tensor.Tensor) bool {
	_, err := tensor.FromData(y.Data, y.Shape...)
	return err == nil
}
