//go:build amd64 && !linux && !purego

package kernels

// requestAMX: the tile data is asked for on Linux only (other systems'
// permission schemes are not handled), so AMX stays unused here.
func requestAMX() bool { return false }
