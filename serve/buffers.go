package serve

import "github.com/residual-nn/residual/internal/slicepool"

// Request bodies and decoded inputs are recycled: a ResNet-50 request is
// 600 KB of each, and on the VMs measured, memory fresh from the OS cost
// 1–3 ms a request in page faults (more than the rest of the request
// outside the model). The pools keep what has come back by size class,
// so requests of mixed sizes reuse each other's buffers.
var (
	bytePool  slicepool.Pool[byte]
	floatPool slicepool.Pool[float32]
)

// getBytes returns an empty slice with capacity at least n.
func getBytes(n int) []byte { return bytePool.Get(n)[:0] }

// putBytes recycles b; nothing may use b afterwards.
func putBytes(b []byte) { bytePool.Put(b) }

// getFloats returns a slice of n float32s (not zeroed).
func getFloats(n int) []float32 { return floatPool.Get(n) }

// putFloats recycles f; nothing may use f afterwards.
func putFloats(f []float32) { floatPool.Put(f) }
