//go:build mpi && cgo && !linux

package distributed

func newPollTimer() pollTimer { return newGoPollTimer() }
