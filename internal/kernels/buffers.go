package kernels

import "sync"

// Scratch buffers, recycled to keep a training step from allocating.
// bufPool holds the buffers, each in a holder (a *[]float32) that
// holders recycles, so that getting and putting back allocate nothing.
var bufPool, holders sync.Pool

func getBuf(n int) []float32 {
	if h, ok := bufPool.Get().(*[]float32); ok {
		b := *h
		*h = nil
		holders.Put(h)
		if cap(b) >= n {
			return b[:n]
		}
	}
	return make([]float32, n)
}

func putBuf(b []float32) {
	h, ok := holders.Get().(*[]float32)
	if !ok {
		h = new([]float32)
	}
	*h = b
	bufPool.Put(h)
}

// unpooled returns a copy of pooled buffer b of exactly its length, for a
// result kept beyond the call (packed weights), and gives b back to the
// pool, whose buffer may be larger.
func unpooled(b []float32) []float32 {
	c := append([]float32(nil), b...)
	putBuf(b)
	return c
}
