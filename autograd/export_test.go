package autograd

// OwnedBuffers returns the number of buffers tp has allocated since its
// last Reset, so that tests can tell a fused pass from separate ones.
func OwnedBuffers(tp *Tape) int { return len(tp.owned) }

// PooledFloats returns the floats of capacity in tp's pool of free buffers.
func PooledFloats(tp *Tape) int {
	n := 0
	for _, bs := range tp.pool {
		for _, b := range bs {
			n += cap(b)
		}
	}
	return n
}
