package kernels

import "github.com/residual-nn/residual/internal/slicepool"

// Scratch buffers, recycled by size class to keep a training step from
// allocating.
var (
	floatPool slicepool.Pool[float32]
	sumPool   slicepool.Pool[float64] // parallelSums' accumulators
	bytePool  slicepool.Pool[uint8]   // the direct paths' copies of their input and weights
	int32Pool slicepool.Pool[int32]   // the int8 direct path's biases less the zero point's share
)

// getBuf returns a scratch buffer of n floats, not zeroed; putBuf gives
// it back.
func getBuf(n int) []float32 { return floatPool.Get(n) }

func putBuf(b []float32) { floatPool.Put(b) }

// unpooled returns a copy of pooled buffer b of exactly its length, for a
// result kept beyond the call (packed weights), and gives b back to the
// pool, whose buffer may be larger.
func unpooled(b []float32) []float32 {
	c := append([]float32(nil), b...)
	putBuf(b)
	return c
}
