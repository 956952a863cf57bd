package autograd

import "testing"

// A tape that runs batches of every size up to B (a server's dynamic
// batching) holds buffers for about twice a batch of B, not one set per
// size: buffers are pooled by power-of-two class.
func TestPoolBoundedOverBatchSizes(t *testing.T) {
	tp := NewNoGradTape()
	const maxBatch, per = 64, 15000 // floats per image over a "forward" of two buffers
	for round := 0; round < 2; round++ {
		for b := 1; b <= maxBatch; b++ {
			x := tp.alloc(b * 10000)
			y := tp.alloc(b * 5000)
			if len(x) != b*10000 || len(y) != b*5000 {
				t.Fatalf("alloc gave %d and %d floats", len(x), len(y))
			}
			x[len(x)-1], y[len(y)-1] = 1, 2 // the whole length is usable
			tp.release(y)
			tp.Reset()
		}
	}
	held := 0
	for c, bufs := range tp.pool {
		for _, b := range bufs {
			if cap(b) != c {
				t.Fatalf("a buffer of capacity %d pooled under %d", cap(b), c)
			}
			held += cap(b)
		}
	}
	// Classes at most double a request, and each class holds at most the
	// two buffers of one forward: 2 × 2 × the largest forward.
	if limit := 4 * maxBatch * per; held > limit {
		t.Errorf("the pool holds %d floats after batches of 1…%d; want ≤ %d (one set per size would be %d)", held, maxBatch, limit, per*maxBatch*(maxBatch+1)/2)
	}
	// Small buffers keep their exact size.
	if b := tp.alloc(100); cap(b) != 100 {
		t.Errorf("a 100-float buffer has capacity %d", cap(b))
	}
}
