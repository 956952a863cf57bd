//go:build !amd64 || purego

package kernels

// spinPause does nothing where there is no PAUSE to run (another
// architecture, or the pure-Go build).
func spinPause() {}
