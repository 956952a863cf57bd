//go:build amd64 && !purego

package kernels

// spinPause is one PAUSE, the spin-wait hint: a wait loop that runs it
// between looks leaves the core's execution resources to a sibling
// hyperthread and leaves the loop at once when what it waits on changes.
func spinPause()
