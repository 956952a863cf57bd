//go:build amd64 && !purego

package kernels

import (
	"os"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// amxInt8Conv32 computes blocks 32×32 int32 tiles on AMX tiles
// (amx_amd64.s): tile i, c[i][32][32] (rows 128 bytes apart), sums
// the u8 rows 32i…32i+31 of a (lda bytes apart), read at each of the ntaps
// byte offsets taps (an []int; {0} for a 1×1 convolution) chunks·64 bytes
// long, times the VNNI-packed weights b (chunks·16 rows of 128 bytes a
// tap: 4 bytes × 32 channels), which run on through the taps.
//
//go:noescape
func amxInt8Conv32(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, chunks int, c unsafe.Pointer, blocks int, taps unsafe.Pointer, ntaps int)

// amxBF16Conv32 is amxInt8Conv32 on bfloat16 (TDPBF16PS): a's rows are
// bfloat16 values, chunks·32 of them a tap, b's rows 32 pairs of them
// (packDirectBF16's layout: pair q of the 32 channels), c's tiles float32
// sums.
//
//go:noescape
func amxBF16Conv32(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, chunks int, c unsafe.Pointer, blocks int, taps unsafe.Pointer, ntaps int)

// amxBF16Conv32Left is amxBF16Conv32 for a block of weights whose real
// output channels are its first 16 (the others zeros): the products of the
// first weight tile only, stored as each output tile's first 16 columns;
// the other 16 are left as they were.
//
//go:noescape
func amxBF16Conv32Left(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, chunks int, c unsafe.Pointer, blocks int, taps unsafe.Pointer, ntaps int)

// amxBF16Grad32 adds to noffs 32×32 float32 tiles at c (4,096 bytes
// apart, rows 128; with load false, it writes them instead) the products
// of a's 32 rows of bfloat16 pairs (lda bytes apart) by the 32 columns of
// pairs at b + offs[i] (rows ldb bytes apart), steps·16 pairs long
// (amx_amd64.s).
//
//go:noescape
func amxBF16Grad32(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, ldb int, steps int, c unsafe.Pointer, offs unsafe.Pointer, noffs int, load bool)

// amxBF16Grad16 is amxBF16Grad32 where only a's first 16 rows and b's first
// 16 columns are real (blocks of at most 16 output and 16 input channels:
// CIFAR's first stage, its stem unfolded to 9 channels): a quarter of the
// products, each tile's first 16 rows of 16 columns loaded and stored, the
// rest left as they were.
//
//go:noescape
func amxBF16Grad16(cfg, a unsafe.Pointer, lda int, b unsafe.Pointer, ldb int, steps int, c unsafe.Pointer, offs unsafe.Pointer, noffs int, load bool)

// peakAMXInt8 runs n iterations of four independent TDPBUSD on zeroed
// tiles (amx_amd64.s).
//
//go:noescape
func peakAMXInt8(cfg unsafe.Pointer, n int)

// peakAMXBF16 is peakAMXInt8 with TDPBF16PS.
//
//go:noescape
func peakAMXBF16(cfg unsafe.Pointer, n int)

// PeakAMXBF16 runs n iterations of a register-only AMX bfloat16 loop,
// four TDPBF16PS an iteration, and returns its floating-point operations
// (2 a multiply-add); 0 where the bfloat16 convolutions do not run on
// AMX (AMXBF16).
func PeakAMXBF16(n int) float64 {
	if !AMXBF16() {
		return 0
	}
	peakAMXBF16(unsafe.Pointer(&amxConfig[0]), n)
	return float64(n) * 4 * 16 * 16 * 32 * 2
}

// PeakAMX runs n iterations of a register-only AMX int8 loop, four
// TDPBUSD an iteration, and returns its operations (2 a multiply-add);
// 0 without AMX (AMX).
func PeakAMX(n int) float64 {
	if !AMX() {
		return 0
	}
	peakAMXInt8(unsafe.Pointer(&amxConfig[0]), n)
	return float64(n) * 4 * 16 * 16 * 64 * 2
}

// amxConfig is the tile configuration the AMX kernels load: palette 1,
// eight tiles of 16 rows of 64 bytes.
var amxConfig = func() (c [64]byte) {
	c[0] = 1
	for t := range 8 {
		c[16+2*t] = 64 // bytes a row
		c[48+t] = 16   // rows
	}
	return c
}()

// hasAMX is whether the int8 convolutions may run on AMX tiles: the CPU
// has AMX-TILE and AMX-INT8, Linux grants the process the tile data
// state (arch_prctl ARCH_REQ_XCOMP_PERM, Linux 5.16 and later), and
// RESIDUAL_AMX is not 0.
var hasAMX = func() bool {
	if !cpu.X86.HasAMXTile || !cpu.X86.HasAMXInt8 || !hasVNNI || os.Getenv("RESIDUAL_AMX") == "0" {
		return false
	}
	return requestAMX()
}()

// hasAMXBF16 is hasAMX's counterpart for the bfloat16 convolutions: the
// CPU has AMX-TILE and AMX-BF16 (and AVX512BW, whose masked byte moves
// stage their inputs: spreadRuns), Linux grants the tile data, and
// RESIDUAL_AMX is not 0.
var hasAMXBF16 = func() bool {
	if !cpu.X86.HasAMXTile || !cpu.X86.HasAMXBF16 || !hasBF16 || !cpu.X86.HasAVX512BW || os.Getenv("RESIDUAL_AMX") == "0" {
		return false
	}
	return requestAMX()
}()
