package kernels

import "unsafe"

// convKernel computes one output tile; see internal/kernels/gen.
type convKernel func(x unsafe.Pointer, xoff int, w unsafe.Pointer, y unsafe.Pointer, taps *int, ntaps, ic, xs, ys int,
	scale, shift, skip unsafe.Pointer, skipStride int, floor float32)

// dwKernel accumulates one weight-gradient tile; see internal/kernels/gen.
type dwKernel func(x unsafe.Pointer, xoff int, dy unsafe.Pointer, dw unsafe.Pointer, rows, cols, xcs, xrs, dycs, dyrs, dws int)

// winoGemmKernel computes one tile of the Winograd path's per-position
// products (16 or 36 positions); see internal/kernels/gen.
type winoGemmKernel func(v, u, m unsafe.Pointer, c, cs, ms, vps, ups, mps, npos int)
