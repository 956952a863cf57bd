package autograd

// OwnedBuffers returns the number of buffers tp has allocated since its
// last Reset, so that tests can tell a fused pass from separate ones.
func OwnedBuffers(tp *Tape) int { return len(tp.owned) }
