//go:build !amd64 || purego

package kernels

// detect reports that only the reference kernels exist on this platform.
func detect() Level { return Generic }

var avx512Set, avx2Set *kernelSet

// Peak reports no assembly FMA loop on this platform.
func Peak(n int) float64 { return 0 }
