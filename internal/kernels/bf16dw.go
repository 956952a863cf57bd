package kernels

import "unsafe"

// The native bfloat16 weight gradient pairs images, not pixels:
// dW[ky][kx][c][oc] = Σ over images n and output pixels (oy, ox) of
// x[n][iy][ix][c]·dy[n][oy][ox][oc], and images n and n+1 read the input
// at the same (iy, ix) for every tap, stride and padding. So x and dy are
// converted into bfloat16 pairs of images 2i and 2i+1 (a zero image past
// an odd batch), and the float32 weight-gradient driver
// (convBackwardWeightTiles) runs on ⌈N/2⌉ "images" of 4-byte pairs, with
// tiles that add each pair's two products (VDPBF16PS) where the float32
// ones add one product: a weight gradient within a core's cache pairs
// each unit's rows as the unit starts, a larger one the whole batch
// first. A pixel-paired layout would depend on the tap's column parity
// and the stride; this one does not.

// pairChunk is the number of elements a goroutine pairs at a time.
const pairChunk = 1 << 14

// zeroChunk is the zero image past an odd batch, a chunk at a time.
var zeroChunk [pairChunk]float32

// zeroRow returns n zeros to read: zeroChunk's where it is long enough.
func zeroRow(n int) []float32 {
	if n <= pairChunk {
		return zeroChunk[:n]
	}
	return make([]float32, n)
}

// pairImages writes the bfloat16 pairs of images 2i and 2i+1 of src
// (n images of per elements each) to dst (⌈n/2⌉·per pairs): the even
// image in each pair's low half, a zero past an odd n.
func pairImages(dst []uint32, src []float32, n, per int) {
	np := (n + 1) / 2
	chunks := (per + pairChunk - 1) / pairChunk
	parallelFor(np*chunks, func(lo, hi int) {
		for u := lo; u < hi; u++ {
			i, c := u/chunks, u%chunks
			a0, a1 := c*pairChunk, min((c+1)*pairChunk, per)
			d := dst[i*per+a0 : i*per+a1]
			a := src[2*i*per+a0 : 2*i*per+a1]
			b := zeroChunk[:a1-a0]
			if 2*i+1 < n {
				b = src[(2*i+1)*per+a0 : (2*i+1)*per+a1]
			}
			pairBF16(d, a, b)
		}
	})
}

// convBackwardWeightNativeBF16 computes dw = ConvBackwardWeight with
// bfloat16 operands on set's weight-gradient tiles (bf16DWSet, or their Go
// models in the tests), and reports false, computing nothing, when the
// output channels are not a multiple of 16 (the tiles' narrowest block).
func convBackwardWeightNativeBF16(s ConvShape, x, dy, dw []float32, set *kernelSet) bool {
	bs, ok := blocksFor(set, s.OC)
	if !ok {
		return false
	}
	np := (s.N + 1) / 2
	ps := s
	ps.N = np
	if !weightTilesOutside(s) {
		convBackwardWeightTiles(ps, nil, nil, dw, set, bs, &imagePairs{x: x, dy: dy, n: s.N})
		return true
	}
	in, out := s.H*s.W*s.C, s.OH()*s.OW()*s.OC
	xb, dyb := getBuf(np*in), getBuf(np*out)
	defer putBuf(xb)
	defer putBuf(dyb)
	pairImages(pairsOf(xb), x, s.N, in)
	pairImages(pairsOf(dyb), dy, s.N, out)
	convBackwardWeightTiles(ps, unsafe.Pointer(unsafe.SliceData(xb)), dyb, dw, set, bs, nil)
	return true
}

// imagePairs is the float32 batch (x and dy of n images) of a native
// bfloat16 weight gradient whose driver pairs the images unit by unit
// (convBackwardWeightTiles).
type imagePairs struct {
	x, dy []float32
	n     int
}

// pairRows writes the bfloat16 pairs of rows [r0, r1) of images 2i and
// 2i+1 of src (n images of h rows of rowLen elements; a zero image past an
// odd n) to the same rows of dst, one image pair.
func pairRows(dst []uint32, src []float32, i, n, h, rowLen, r0, r1 int) {
	per, lo, hi := h*rowLen, r0*rowLen, r1*rowLen
	var b []float32
	if 2*i+1 < n {
		b = src[(2*i+1)*per+lo : (2*i+1)*per+hi]
	}
	pairOrZero(dst[lo:hi], src[2*i*per+lo:2*i*per+hi], b)
}

// pairOrZero writes the bfloat16 pairs of a and b to d (a in each pair's
// low half), or of a and zeros where b is nil.
func pairOrZero(d []uint32, a, b []float32) {
	if b != nil {
		pairBF16(d, a, b)
		return
	}
	for o := 0; o < len(d); o += pairChunk {
		e := min(o+pairChunk, len(d))
		pairBF16(d[o:e], a[o:e], zeroChunk[:e-o])
	}
}

// pairOrZeroOf is pairOrZero of in's outputs for a and b (pixels of c
// channels from a pixel's first; a nil b pairs with zeros, not with the
// map's output for zeros), or of a and b themselves for a nil in.
func pairOrZeroOf(d []uint32, a, b []float32, in *ReLUAffine, c int) {
	if in == nil {
		pairOrZero(d, a, b)
		return
	}
	if pairReLUAffineFast(d, a, b, in, c) {
		return
	}
	for i := range d {
		var hi float32
		if b != nil {
			hi = in.Of(b[i], i%c)
		}
		d[i] = bf16Pair(in.Of(a[i], i%c), hi)
	}
}

// toBF16Of is ToBF16 of in's outputs for src (pixels of c channels from a
// pixel's first), or of src itself for a nil in.
func toBF16Of(dst []uint16, src []float32, in *ReLUAffine, c int) {
	if in == nil {
		ToBF16(dst, src)
		return
	}
	if toBF16ReLUAffineFast(dst, src, in, c) {
		return
	}
	for i, v := range src {
		dst[i] = BF16FromFloat32(in.Of(v, i%c))
	}
}

// pairsOf views a float32 buffer as as many bfloat16 pairs.
func pairsOf(b []float32) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
}

// bf16DWKernelGo is the weight-gradient tile of mr input × nr output
// channels in Go, VDPBF16PS's arithmetic lane by lane as bf16KernelGo
// computes it: the model the tests run the driver with where the CPU
// lacks the instruction (arguments as dwKernel's, on pairs).
func bf16DWKernelGo(mr, nr int) dwKernel {
	return func(x unsafe.Pointer, xoff int, dy, dw unsafe.Pointer, rows, cols, xcs, xrs, dycs, dyrs, dws int) {
		for p := range mr {
			for j := range nr {
				sum := (*float32)(unsafe.Add(dw, p*dws+4*j))
				acc := *sum
				for r := range rows {
					for c := range cols {
						av := *(*uint32)(unsafe.Add(x, xoff+r*xrs+c*xcs+4*p))
						bv := *(*uint32)(unsafe.Add(dy, r*dyrs+c*dycs+4*j))
						acc = ftz(acc + daz(uint16(av>>16))*daz(uint16(bv>>16)))
						acc = ftz(acc + daz(uint16(av))*daz(uint16(bv)))
					}
				}
				*sum = acc
			}
		}
	}
}

// bf16DWSetGo returns the Go models of the native weight-gradient tiles,
// the heights of the generated ones (28 rows of 16 channels, 14 of 32).
func bf16DWSetGo() *kernelSet {
	var k kernelSet
	k.vec = 16
	for v, rows := range [2]int{28, 14} {
		for mr := 1; mr <= rows; mr++ {
			k.dw[v] = append(k.dw[v], bf16DWKernelGo(mr, 16*(v+1)))
		}
	}
	return k.init()
}
