package serve

import "sync"

// Request bodies and decoded inputs are recycled: a ResNet-50 request is
// 600 KB of each, and on the VMs measured, memory fresh from the OS cost
// 1–3 ms a request in page faults (more than the rest of the request
// outside the model). The pools keep one request's worth per size that
// has come back; a buffer too small for the next request is dropped.
var bytePool, floatPool sync.Pool

// getBytes returns an empty slice with capacity at least n.
func getBytes(n int) []byte {
	if p, ok := bytePool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

// putBytes recycles b; nothing may use b afterwards.
func putBytes(b []byte) {
	if cap(b) > 0 {
		bytePool.Put(&b)
	}
}

// getFloats returns a slice of n float32s (not zeroed).
func getFloats(n int) []float32 {
	if p, ok := floatPool.Get().(*[]float32); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]float32, n)
}

// putFloats recycles f; nothing may use f afterwards.
func putFloats(f []float32) {
	if cap(f) > 0 {
		floatPool.Put(&f)
	}
}
