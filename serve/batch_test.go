package serve

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/residual-nn/residual/tensor"
)

// An idle instance runs a lone request at once instead of waiting for
// company, and one that comes free to requests already waiting takes them
// as one batch. The batching delay is an hour, so a batcher that waited
// would not answer within the test's bound of 10 s (a liveness bound,
// not a speed measurement: the answers come in microseconds).
func TestBatcherRunsAtOnceWhenIdle(t *testing.T) {
	f := newFake()
	f.gate = make(chan struct{})
	bt := newBatcher(f, 3, time.Hour, 16, 1, nil)
	defer bt.close()
	done := make(chan error, 4)
	submit := func() {
		_, err := bt.submit(context.Background(), tensor.New(1, 2, 2, 1))
		done <- err
	}
	go submit()
	for deadline := time.Now().Add(10 * time.Second); f.calls.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(f.gate)
			t.Fatal("a lone request to an idle model waited for others to batch with")
		}
	}
	for range 3 { // queued behind the running batch
		go submit()
	}
	for deadline := time.Now().Add(10 * time.Second); bt.queued.Load() < 4; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(f.gate)
			t.Fatalf("%d images queued, want 4", bt.queued.Load())
		}
	}
	close(f.gate)
	for range 4 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the waiting requests were not answered")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.batches, []int{1, 3}) {
		t.Errorf("batches %v; want [1 3]: the lone request at once, the three that waited together", f.batches)
	}
}

// The admission estimate adds the batching delay only when images are
// ahead: a request to an idle model runs at once, so a deadline between
// its compute time and the delay is met, not refused.
func TestEstimateIdleHasNoDelay(t *testing.T) {
	bt := &batcher{maxDelay: time.Second}
	bt.perImage.Store(int64(time.Millisecond))
	if got := bt.estimate(1); got != time.Millisecond {
		t.Errorf("idle model, one image: estimate %v, want 1ms", got)
	}
	bt.queued.Store(2)
	if got, want := bt.estimate(1), time.Second+3*time.Millisecond; got != want {
		t.Errorf("two images ahead, one more: estimate %v, want %v", got, want)
	}
}
