//go:build amd64 && linux && !purego

package kernels

import "syscall"

// requestAMX asks Linux for permission to use the AMX tile data
// (XFEATURE_XTILEDATA, 18), which a process must have before its first
// tile instruction.
func requestAMX() bool {
	const archReqXCompPerm, xfeatureXTileData = 0x1023, 18
	_, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXCompPerm, xfeatureXTileData, 0)
	return errno == 0
}
