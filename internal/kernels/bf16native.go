package kernels

import (
	"math"
	"unsafe"
)

// The native bfloat16 path: operands packed as bfloat16 pairs (the low
// half of each uint32 is the even element of the reduction, the high half
// the odd one, as VDPBF16PS pairs them) and multiplied by the micro-kernels
// bf16Kernels, which accumulate float32 tiles of bf16NR columns. Every
// operation is a matrix product y[i][j] = Σ_p A[i][p]·B[p][j] over such
// pairs: a convolution's forward pass and weight gradient through im2col
// rows (gathered a block at a time, never whole), its data gradient as the
// product with the transposed weights followed by col2im.

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

// packBBF16 packs B ([k][n], element (p, j) = get(p, j)) into panels of
// bf16NR columns: panel jb holds kp = ⌈k/2⌉ groups of bf16NR pairs; columns
// past n and the odd element past k are zero. It returns the packing and
// np, n rounded up to the panel width.
func packBBF16(k, n int, get func(p, j int) float32) ([]uint32, int) {
	kp, np := (k+1)/2, (n+bf16NR-1)/bf16NR*bf16NR
	out := make([]uint32, kp*np)
	parallelFor(np/bf16NR, func(lo, hi int) {
		for jb := lo; jb < hi; jb++ {
			panel := out[jb*kp*bf16NR:][:kp*bf16NR]
			for kk := 0; kk < kp; kk++ {
				for jj := 0; jj < bf16NR; jj++ {
					j := jb*bf16NR + jj
					if j >= n {
						break
					}
					e1 := float32(0)
					if 2*kk+1 < k {
						e1 = get(2*kk+1, j)
					}
					panel[kk*bf16NR+jj] = bf16Pair(get(2*kk, j), e1)
				}
			}
		}
	})
	return out, np
}

// packRowBF16 packs row (k float32, k ≤ 2·len(dst)) as pairs into dst,
// the odd element past k zero.
func packRowBF16(dst []uint32, row []float32) {
	k := len(row)
	for kk := range dst {
		e0, e1 := float32(0), float32(0)
		if 2*kk < k {
			e0 = row[2*kk]
		}
		if 2*kk+1 < k {
			e1 = row[2*kk+1]
		}
		dst[kk] = bf16Pair(e0, e1)
	}
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
	bp, np := packBBF16(k, n, func(p, j int) float32 {
		if transB {
			return b[j*ldb+p]
		}
		return b[p*ldb+j]
	})
	kp := (k + 1) / 2
	parallelFor((m+bf16MB-1)/bf16MB, func(lo, hi int) {
		ap := make([]uint32, bf16MB*kp)
		row := make([]float32, k)
		y := getBuf(bf16MB * np)
		defer putBuf(y)
		for blk := lo; blk < hi; blk++ {
			i0, i1 := blk*bf16MB, min((blk+1)*bf16MB, m)
			for i := i0; i < i1; i++ {
				for p := range row {
					if transA {
						row[p] = a[p*lda+i]
					} else {
						row[p] = a[i*lda+p]
					}
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
	bp, np := packBBF16(k, s.OC, func(p, j int) float32 { return w[p*s.OC+j] })
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
// dx.
func convBackwardDataNativeBF16(s ConvShape, dy, w, dx []float32, add bool) {
	k := s.KH * s.KW * s.C
	// B[oc][kidx] = W[kidx][oc].
	bp, np := packBBF16(s.OC, k, func(p, j int) float32 { return w[j*s.OC+p] })
	kp, oh, ow := (s.OC+1)/2, s.OH(), s.OW()
	if !add {
		clear(dx[:s.N*s.H*s.W*s.C])
	}
	parallelFor(s.N, func(lo, hi int) {
		ap := make([]uint32, bf16MB*kp)
		cols := getBuf(bf16MB * np)
		defer putBuf(cols)
		for n := lo; n < hi; n++ {
			for q0 := n * oh * ow; q0 < (n+1)*oh*ow; q0 += bf16MB {
				q1 := min(q0+bf16MB, (n+1)*oh*ow)
				for q := q0; q < q1; q++ {
					packRowBF16(ap[(q-q0)*kp:][:kp], dy[q*s.OC:][:s.OC])
				}
				clear(cols)
				bf16Tiles(ap, q1-q0, kp, bp, np, cols)
				for q := q0; q < q1; q++ {
					oy, ox := q/ow%oh, q%ow
					col := cols[(q-q0)*np:]
					for kh := 0; kh < s.KH; kh++ {
						iy := oy*s.SH - s.PT + kh*s.DH
						if iy < 0 || iy >= s.H {
							continue
						}
						for kw := 0; kw < s.KW; kw++ {
							ix := ox*s.SW - s.PL + kw*s.DW
							if ix < 0 || ix >= s.W {
								continue
							}
							d := dx[((n*s.H+iy)*s.W+ix)*s.C:][:s.C]
							for c, v := range col[(kh*s.KW+kw)*s.C:][:s.C] {
								d[c] += v
							}
						}
					}
				}
			}
		}
	})
}

// bf16PixChunk is about the number of output pixels (whole output rows,
// or a run of a flat batch) of one block of the weight gradient's
// reduction.
const bf16PixChunk = 1024

// convBackwardWeightNativeBF16 is ConvBackwardWeightBF16 on the native
// kernels: dW = im2col(x)ᵀ·dy with the pixels paired along the reduction.
// The input is converted once to bfloat16 in a channel-major layout
// ([N][H+PT+PB][C][W+PL+PR], zeros in the border), so that a row of
// im2col(x)ᵀ — one tap and channel over an output row's pixels — is a
// contiguous run (a stride of SW), copied into a panel a block of whole
// output rows at a time; an unpadded 1×1 convolution of stride 1 has no
// panel: its rows are the layout's own ([C][N·H·W]), read in place. An
// odd row width (or pixel count) leaves its last pair half empty: the
// panel, the layout and dy's packing hold zeros there, never a value from
// outside the receptive field (whose infinity times the zero would make a
// NaN). The rows of dW accumulate in float32 across the blocks.
func convBackwardWeightNativeBF16(s ConvShape, x, dy, dw []float32) {
	k := s.KH * s.KW * s.C
	oh, ow := s.OH(), s.OW()
	np := (s.OC + bf16NR - 1) / bf16NR * bf16NR
	acc := getBuf(k * np)
	defer putBuf(acc)
	clear(acc)
	flat := s.KH == 1 && s.KW == 1 && s.SH == 1 && s.SW == 1 && s.PT|s.PB|s.PL|s.PR == 0
	if flat {
		bf16WeightGradFlat(s, x, dy, acc, np)
	} else {
		bf16WeightGradPanels(s, x, dy, acc, np, oh, ow)
	}
	for r := 0; r < k; r++ {
		copy(dw[r*s.OC:][:s.OC], acc[r*np:][:s.OC])
	}
}

// transposeBF16 writes the rows×cols float32 matrix src (row stride
// cols) as bfloat16 into dst transposed (row stride ld): dst[c·ld + r].
// Each source row is converted whole (toBF16Fast) into tmp first.
func transposeBF16(dst []uint16, ld int, src []float32, rows, cols int, tmp []uint16) {
	for r := range rows {
		row := src[r*cols : (r+1)*cols]
		t := tmp[:cols]
		for i := toBF16Fast(t, row); i < cols; i++ {
			t[i] = BF16FromFloat32(row[i])
		}
		for c, v := range t {
			dst[c*ld+r] = v
		}
	}
}

// packDyBF16 packs the output pixels q0, q0+1, … (pairs of them; a pixel
// at or past q1 counts as zero) of dy into groups of np pairs: group g of
// panel jb at bp[(jb·kp + g0 + g)·bf16NR], as packBBF16 lays B out. u0
// and u1 are scratch rows of OC.
func packDyBF16(dy []float32, oc, q0, q1, pairs, g0, kp, np int, bp []uint32, u0, u1 []uint16) {
	conv := func(u []uint16, q int) {
		if q >= q1 {
			clear(u)
			return
		}
		row := dy[q*oc : (q+1)*oc]
		for i := toBF16Fast(u, row); i < oc; i++ {
			u[i] = BF16FromFloat32(row[i])
		}
	}
	for g := range pairs {
		conv(u0, q0+2*g)
		conv(u1, q0+2*g+1)
		for jb := range np / bf16NR {
			out := bp[(jb*kp+g0+g)*bf16NR:][:bf16NR]
			for j := range out {
				c := jb*bf16NR + j
				if c < oc {
					out[j] = uint32(u0[c]) | uint32(u1[c])<<16
				} else {
					out[j] = 0
				}
			}
		}
	}
}

// bf16WeightGradFlat is the weight gradient of an unpadded 1×1
// convolution of stride 1: acc[c][oc] += Σ_p x[p][c]·dy[p][oc] with x
// transposed to [C][P+1] bfloat16 (a zero past the last pixel) and read
// in place by the kernels, a chunk of pixels at a time.
func bf16WeightGradFlat(s ConvShape, x, dy, acc []float32, np int) {
	p := s.N * s.H * s.W
	ld := p + 1
	xbuf := getBytes(2 * s.C * ld)
	defer putBytes(xbuf)
	xt := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(*xbuf))), s.C*ld)
	for c := range s.C {
		xt[c*ld+p] = 0 // the zero past the last pixel; the rest is written below
	}
	const rowsPer = 256
	parallelFor((p+rowsPer-1)/rowsPer, func(lo, hi int) {
		tmp := make([]uint16, s.C)
		for b := lo; b < hi; b++ {
			r0, r1 := b*rowsPer, min((b+1)*rowsPer, p)
			transposeBF16(xt[r0:], ld, x[r0*s.C:r1*s.C], r1-r0, s.C, tmp)
		}
	})
	for p0 := 0; p0 < p; p0 += bf16PixChunk {
		p1 := min(p0+bf16PixChunk, p)
		kp := (p1 - p0 + 1) / 2
		bbuf := getBytes(4 * kp * np)
		bp := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(*bbuf))), kp*np)
		parallelFor(kp, func(lo, hi int) {
			u0, u1 := make([]uint16, s.OC), make([]uint16, s.OC)
			packDyBF16(dy, s.OC, p0+2*lo, p1, hi-lo, lo, kp, np, bp, u0, u1)
		})
		parallelFor((s.C+bf16MB-1)/bf16MB, func(lo, hi int) {
			for blk := lo; blk < hi; blk++ {
				c0, c1 := blk*bf16MB, min((blk+1)*bf16MB, s.C)
				bf16TilesStrided(unsafe.Pointer(&xt[c0*ld+p0]), 2*ld, c1-c0, kp, bp, np, acc[c0*np:])
			}
		})
		putBytes(bbuf)
	}
}

// bf16WeightGradPanels is the weight gradient of any other convolution,
// through panels of im2col(x)ᵀ (see convBackwardWeightNativeBF16).
func bf16WeightGradPanels(s ConvShape, x, dy, acc []float32, np, oh, ow int) {
	k := s.KH * s.KW * s.C
	h, wd := s.H+s.PT+s.PB, s.W+s.PL+s.PR
	rowPairs := (ow + 1) / 2 // pairs an output row contributes
	// xt[n][iy][c][ix], bfloat16, padded.
	xbuf := getBytes(2 * s.N * h * s.C * wd)
	defer putBytes(xbuf)
	xt := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(*xbuf))), s.N*h*s.C*wd)
	clear(xt) // the border
	parallelFor(s.N*h, func(lo, hi int) {
		tmp := make([]uint16, s.W*s.C)
		for r := lo; r < hi; r++ {
			n, iy := r/h, r%h-s.PT
			if iy < 0 || iy >= s.H {
				continue // zeros: cleared above
			}
			transposeBF16(xt[r*s.C*wd+s.PL:], wd, x[(n*s.H+iy)*s.W*s.C:][:s.W*s.C], s.W, s.C, tmp)
		}
	})
	rowsPer := max(1, bf16PixChunk/ow)
	rows := s.N * oh
	for r0 := 0; r0 < rows; r0 += rowsPer {
		r1 := min(r0+rowsPer, rows)
		kp := (r1 - r0) * rowPairs
		// dy's block: each output row's pixels in pairs, zero past its end.
		bbuf := getBytes(4 * kp * np)
		bp := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(*bbuf))), kp*np)
		parallelFor(r1-r0, func(lo, hi int) {
			u0, u1 := make([]uint16, s.OC), make([]uint16, s.OC)
			for r := r0 + lo; r < r0+hi; r++ {
				packDyBF16(dy, s.OC, r*ow, (r+1)*ow, rowPairs, (r-r0)*rowPairs, kp, np, bp, u0, u1)
			}
		})
		// The panel of im2col(x)ᵀ for k's blocks of bf16MB rows, built and
		// multiplied by the goroutine that owns the block.
		parallelFor((k+bf16MB-1)/bf16MB, func(lo, hi int) {
			ap := make([]uint32, bf16MB*kp)
			a16 := unsafe.Slice((*uint16)(unsafe.Pointer(&ap[0])), 2*len(ap))
			for blk := lo; blk < hi; blk++ {
				k0, k1 := blk*bf16MB, min((blk+1)*bf16MB, k)
				for kk := k0; kk < k1; kk++ {
					tap, c := kk/s.C, kk%s.C
					ky, kx := tap/s.KW, tap%s.KW
					row := a16[(kk-k0)*2*kp:][:2*kp]
					for r := r0; r < r1; r++ {
						n, oy := r/oh, r%oh
						src := xt[((n*h+oy*s.SH+ky*s.DH)*s.C+c)*wd+kx*s.DW:]
						dst := row[(r-r0)*2*rowPairs:][:2*rowPairs]
						if s.SW == 1 {
							copy(dst[:ow], src[:ow])
						} else {
							for ox := range ow {
								dst[ox] = src[ox*s.SW]
							}
						}
						if ow%2 == 1 {
							dst[ow] = 0
						}
					}
				}
				bf16Tiles(ap, k1-k0, kp, bp, np, acc[k0*np:])
			}
		})
		putBytes(bbuf)
	}
}

// bf16TilesStrided is bf16Tiles with the rows of a lda bytes apart.
func bf16TilesStrided(a unsafe.Pointer, lda, rows, kp int, bp []uint32, np int, y []float32) {
	if rows == 0 || kp == 0 {
		return
	}
	maxMR := len(bf16Kernels)
	for jb := 0; jb < np/bf16NR; jb++ {
		panel := unsafe.Pointer(&bp[jb*kp*bf16NR])
		for i := 0; i < rows; i += maxMR {
			mr := min(maxMR, rows-i)
			bf16Kernels[mr-1](unsafe.Add(a, i*lda), lda, panel, unsafe.Pointer(&y[i*np+jb*bf16NR]), np*4, kp)
		}
	}
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
