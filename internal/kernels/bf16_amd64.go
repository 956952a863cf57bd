//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// hasBF16 is whether the CPU runs AVX512-BF16's VDPBF16PS (with the
// AVX-512 foundation the kernels' other instructions need).
var hasBF16 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BF16

// bf16Kernels are the VDPBF16PS micro-kernels, by rows (gen/bf16.go).
var bf16Kernels = bf16KernelsGo(12)
