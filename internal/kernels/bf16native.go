package kernels

import (
	"math"
	"unsafe"
)

// The native bfloat16 path's matrix products: operands packed as bfloat16
// pairs (the low half of each uint32 is the even element of the
// reduction, the high half the odd one, as VDPBF16PS pairs them) and
// multiplied by the micro-kernels bf16Kernels, which accumulate float32
// tiles of bf16NR columns, y[i][j] = Σ_p A[i][p]·B[p][j] over such pairs:
// GemmBF16, and the convolutions the direct kernels (bf16direct.go) do not
// take — a forward pass with horizontal dilation through im2col rows
// (gathered a block at a time, never whole), a strided data gradient as
// the product with the transposed weights followed by col2im.

// bf16NR is the width of a micro-kernel tile: two vectors of 16 floats.
const bf16NR = 32

// bf16MB is the number of rows of A a goroutine packs and multiplies at a
// time.
const bf16MB = 64

// bf16Kernel accumulates a tile of mr rows (its index in bf16Kernels plus
// one) by bf16NR columns: for p < mr, j < bf16NR,
// c[p][j] += Σ_kk dp(a[p][kk], b[kk][j]), where a's row p starts at
// a + p·lda bytes and holds kp pairs, b holds kp groups of bf16NR pairs
// (128 bytes each) and c's row p starts at c + p·ldc bytes. dp(x, y) is
// VDPBF16PS on one lane: y.hi·x.hi and then y.lo·x.lo added to the sum in
// float32.
type bf16Kernel func(a unsafe.Pointer, lda int, b unsafe.Pointer, c unsafe.Pointer, ldc int, kp int)

// bf16Pair packs elements e0 (even) and e1 (odd) as one pair.
func bf16Pair(e0, e1 float32) uint32 {
	return uint32(BF16FromFloat32(e0)) | uint32(BF16FromFloat32(e1))<<16
}

// packBBF16 packs B ([k][n], element (p, j) = b[p·ldb + j], or
// b[j·ldb + p] when trans) into panels of bf16NR columns: panel jb holds
// kp = ⌈k/2⌉ groups of bf16NR pairs; columns past n and the odd element
// past k are zero. It returns the packing (from the pool: putBuf its
// backing, the second result) and np, n rounded up to the panel width.
func packBBF16(k, n int, b []float32, ldb int, trans bool) ([]uint32, []float32, int) {
	kp, np := (k+1)/2, (n+bf16NR-1)/bf16NR*bf16NR
	back := getBuf(kp * np)
	out := pairsOf(back)
	parallelFor(np/bf16NR, func(lo, hi int) {
		var row []uint32
		if trans {
			rb := getBuf(kp)
			defer putBuf(rb)
			row = pairsOf(rb)
		}
		for jb := lo; jb < hi; jb++ {
			panel := out[jb*kp*bf16NR:][:kp*bf16NR]
			j0, w := jb*bf16NR, min(bf16NR, n-jb*bf16NR)
			if w < bf16NR {
				clear(panel)
			}
			if trans {
				// Column j of B is row j of b, its pairs adjacent: converted
				// as a row, stored bf16NR pairs apart.
				for jj := range w {
					packRowBF16(row, b[(j0+jj)*ldb:][:k])
					for kk, v := range row {
						panel[kk*bf16NR+jj] = v
					}
				}
				continue
			}
			for kk := range k / 2 {
				pairBF16(panel[kk*bf16NR:][:w], b[2*kk*ldb+j0:][:w], b[(2*kk+1)*ldb+j0:][:w])
			}
			if k%2 == 1 {
				for jj, v := range b[(k-1)*ldb+j0:][:w] {
					panel[(kp-1)*bf16NR+jj] = uint32(BF16FromFloat32(v))
				}
			}
		}
	})
	return out, back, np
}

// packRowBF16 packs row (k float32, k ≤ 2·len(dst)) as pairs into dst,
// the odd element past k zero.
func packRowBF16(dst []uint32, row []float32) {
	k := len(row)
	h := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(dst))), 2*len(dst))
	i := toBF16Fast(h[:k], row)
	for ; i < k; i++ {
		h[i] = BF16FromFloat32(row[i])
	}
	clear(h[k:])
}

// bf16Tiles accumulates y[i][:np] += a[i]·B for the rows i < rows of a
// (kp pairs each, contiguous), B packed by packBBF16, y rows np apart.
func bf16Tiles(a []uint32, rows, kp int, bp []uint32, np int, y []float32) {
	if rows == 0 || kp == 0 {
		return
	}
	maxMR := len(bf16Kernels)
	for jb := 0; jb < np/bf16NR; jb++ {
		panel := unsafe.Pointer(&bp[jb*kp*bf16NR])
		for i := 0; i < rows; i += maxMR {
			mr := min(maxMR, rows-i)
			bf16Kernels[mr-1](unsafe.Pointer(&a[i*kp]), kp*4, panel, unsafe.Pointer(&y[i*np+jb*bf16NR]), np*4, kp)
		}
	}
}

// gemmNativeBF16 is GemmBF16 on the native kernels.
func gemmNativeBF16(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	bp, bback, np := packBBF16(k, n, b, ldb, transB)
	defer putBuf(bback)
	gemmPackedNativeBF16(transA, m, n, k, alpha, a, lda, bp, np, beta, c, ldc)
}

// gemmPackedNativeBF16 is gemmNativeBF16 on B packed by packBBF16 (bp,
// n rounded up to np).
func gemmPackedNativeBF16(transA bool, m, n, k int, alpha float32, a []float32, lda int, bp []uint32, np int, beta float32, c []float32, ldc int) {
	kp := (k + 1) / 2
	parallelFor((m+bf16MB-1)/bf16MB, func(lo, hi int) {
		apb, y := getBuf(bf16MB*kp), getBuf(bf16MB*np)
		defer putBuf(apb)
		defer putBuf(y)
		ap := pairsOf(apb)
		var row []float32 // a column of A, gathered when transposed
		if transA {
			row = getBuf(k)
			defer putBuf(row)
		}
		for blk := lo; blk < hi; blk++ {
			i0, i1 := blk*bf16MB, min((blk+1)*bf16MB, m)
			for i := i0; i < i1; i++ {
				if !transA {
					packRowBF16(ap[(i-i0)*kp:][:kp], a[i*lda:][:k])
					continue
				}
				for p := range row {
					row[p] = a[p*lda+i]
				}
				packRowBF16(ap[(i-i0)*kp:][:kp], row)
			}
			clear(y)
			bf16Tiles(ap, i1-i0, kp, bp, np, y)
			for i := i0; i < i1; i++ {
				storeScaled(c[i*ldc:i*ldc+n], y[(i-i0)*np:][:n], alpha, beta)
			}
		}
	})
}

// im2colRow writes the im2col row of output pixel q (image, row, column)
// of s into row ([KH][KW][C], zeros where a tap falls in the padding).
func im2colRow(s ConvShape, x []float32, q int, row []float32) {
	oh, ow := s.OH(), s.OW()
	n, oy, ox := q/(oh*ow), q/ow%oh, q%ow
	for kh := 0; kh < s.KH; kh++ {
		iy := oy*s.SH - s.PT + kh*s.DH
		for kw := 0; kw < s.KW; kw++ {
			ix := ox*s.SW - s.PL + kw*s.DW
			dst := row[(kh*s.KW+kw)*s.C:][:s.C]
			if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
				clear(dst)
				continue
			}
			copy(dst, x[((n*s.H+iy)*s.W+ix)*s.C:][:s.C])
		}
	}
}

// convForwardNativeBF16 is ConvForwardEpilogueBF16 on the native kernels:
// y = ep(im2col(x)·W).
func convForwardNativeBF16(s ConvShape, x, w, y []float32, ep *convEpilogue) {
	k := s.KH * s.KW * s.C
	bp, bback, np := packBBF16(k, s.OC, w, s.OC, false)
	defer putBuf(bback)
	kp, npix := (k+1)/2, s.N*s.OH()*s.OW()
	parallelFor((npix+bf16MB-1)/bf16MB, func(lo, hi int) {
		ap := make([]uint32, bf16MB*kp)
		row := make([]float32, k)
		acc := getBuf(bf16MB * np)
		defer putBuf(acc)
		for blk := lo; blk < hi; blk++ {
			q0, q1 := blk*bf16MB, min((blk+1)*bf16MB, npix)
			for q := q0; q < q1; q++ {
				im2colRow(s, x, q, row)
				packRowBF16(ap[(q-q0)*kp:][:kp], row)
			}
			clear(acc)
			bf16Tiles(ap, q1-q0, kp, bp, np, acc)
			for q := q0; q < q1; q++ {
				yr, ar := y[q*s.OC:][:s.OC], acc[(q-q0)*np:][:s.OC]
				for j, v := range ar {
					v = v*ep.scale[j] + ep.shift[j]
					if ep.skip != nil {
						v += ep.skip[q*s.OC+j]
					}
					yr[j] = max(v, ep.floor) // floor −∞ keeps NaN: max(NaN, x) is NaN
				}
			}
		}
	})
}

// convBackwardDataNativeBF16 is ConvBackwardDataBF16 (add: …AddBF16) on
// the native kernels: the columns dy·Wᵀ of each output pixel, scattered
// back onto dx (col2im), one goroutine per image so no two write the same
// dx. Unlike colsBackwardData it multiplies and scatters a block of 64
// pixels at a time, B packed once, so the columns stay in cache (forming a
// chunk of images' columns first measured 2.8x slower on ResNet-50's
// 28² 3×3 stride-2 layer).
func convBackwardDataNativeBF16(s ConvShape, dy, w, dx []float32, add bool) {
	k := s.KH * s.KW * s.C
	// B[oc][kidx] = W[kidx][oc].
	bp, bback, np := packBBF16(s.OC, k, w, s.OC, true)
	defer putBuf(bback)
	kp, oh, ow := (s.OC+1)/2, s.OH(), s.OW()
	if !add {
		clear(dx[:s.N*s.H*s.W*s.C])
	}
	parallelFor(s.N, func(lo, hi int) {
		apb, cols := getBuf(bf16MB*kp), getBuf(bf16MB*np)
		defer putBuf(apb)
		defer putBuf(cols)
		ap := pairsOf(apb)
		for n := lo; n < hi; n++ {
			for q0 := n * oh * ow; q0 < (n+1)*oh*ow; q0 += bf16MB {
				q1 := min(q0+bf16MB, (n+1)*oh*ow)
				for q := q0; q < q1; q++ {
					packRowBF16(ap[(q-q0)*kp:][:kp], dy[q*s.OC:][:s.OC])
				}
				clear(cols)
				bf16Tiles(ap, q1-q0, kp, bp, np, cols)
				for q := q0; q < q1; q++ {
					col2imAdd(s, n, q/ow%oh, q%ow, cols[(q-q0)*np:][:k], dx)
				}
			}
		}
	})
}

// bf16KernelGo is the micro-kernel of mr rows in Go, VDPBF16PS's arithmetic
// lane by lane (odd product, then even, each added in float32, with
// VDPBF16PS's flushing of subnormal inputs and results to zero): the
// native path's model, which runs the packing and the drivers above where
// the CPU lacks the instruction.
func bf16KernelGo(mr int) bf16Kernel {
	return func(a unsafe.Pointer, lda int, b unsafe.Pointer, c unsafe.Pointer, ldc int, kp int) {
		bs := unsafe.Slice((*uint32)(b), kp*bf16NR)
		for p := 0; p < mr; p++ {
			as := unsafe.Slice((*uint32)(unsafe.Add(a, p*lda)), kp)
			cs := unsafe.Slice((*float32)(unsafe.Add(c, p*ldc)), bf16NR)
			for j := range cs {
				acc := cs[j]
				for kk, av := range as {
					bv := bs[kk*bf16NR+j]
					acc = ftz(acc + daz(uint16(av>>16))*daz(uint16(bv>>16)))
					acc = ftz(acc + daz(uint16(av))*daz(uint16(bv)))
				}
				cs[j] = acc
			}
		}
	}
}

// daz widens a bfloat16, flushing a subnormal to a zero of its sign.
func daz(h uint16) float32 {
	if h&0x7f80 == 0 {
		h &= 0x8000
	}
	return Float32FromBF16(h)
}

// ftz flushes a subnormal float32 to a zero of its sign.
func ftz(f float32) float32 {
	if b := math.Float32bits(f); b&0x7f800000 == 0 {
		return math.Float32frombits(b & 0x80000000)
	}
	return f
}

// bf16KernelsGo returns the Go models of the micro-kernels of 1 to maxMR
// rows.
func bf16KernelsGo(maxMR int) []bf16Kernel {
	ks := make([]bf16Kernel, maxMR)
	for i := range ks {
		ks[i] = bf16KernelGo(i + 1)
	}
	return ks
}
