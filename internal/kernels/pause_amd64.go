//go:build amd64 && !purego

package kernels

// spinPause is one PAUSE, the spin-wait hint: a wait loop that runs it
// between looks leaves the core's execution resources to a sibling
// hyperthread, and still looks again within a fraction of a microsecond
// (PAUSE takes about 140 cycles on recent Intel cores, fewer on AMD's).
func spinPause()
