//go:build !linux

package kernels

// osYield does nothing where sched_yield is not at hand.
func osYield() {}
