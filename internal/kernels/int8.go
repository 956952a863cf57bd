package kernels

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// Int8 convolution: u8 activations (with a zero point) times s8 weights
// (symmetric, per output channel) summed exactly in int32, then turned
// into the output by an epilogue applied to each tile as it is computed
// (Int8Epilogue). Every path computes the same int32 sums, so the output
// is the same at every level, bit for bit:
//
//   - generic: the reference, a direct loop summing (x−z)·w.
//   - AVX2: im2col into a panel of int16 pairs (x−z), VPMADDWD kernels
//     (generated, gen/int8.go). Widening to int16 keeps the full u8 × s8
//     range exact; VPMADDUBSW's saturating int16 pair sums would not.
//   - VNNI (AVX-512 VNNI): VPDPBUSD kernels reading the input in place
//     (int8direct.go), the zero point taken out through the bias with the
//     weights' column sums (Σ(x−z)·w = Σx·w − z·Σw); a horizontally
//     dilated convolution gathers an im2col panel of u8 quads instead.

// int8Kernel computes an MR×NR int32 tile (see gen/int8.go).
type int8Kernel func(a, b unsafe.Pointer, steps int, c unsafe.Pointer)

// Int8Path names the int8 kernels in use.
type Int8Path int

// The int8 paths, from the reference up.
const (
	Int8Generic Int8Path = iota // pure Go
	Int8AVX2                    // VPMADDWD on widened pairs
	Int8VNNI                    // AVX-512 VNNI VPDPBUSD
)

// String names the path.
func (p Int8Path) String() string { return [...]string{"generic", "avx2", "avx512-vnni"}[p] }

// AMX reports whether the VNNI path runs its convolutions of stride 1
// or 2 with 64k input and 32k output channels on AMX tiles (TDPBUSD, 1,024
// multiply-adds an instruction): the CPU has AMX-INT8, the system grants
// the tile data, RESIDUAL_AMX is not 0, and ActiveInt8 is Int8VNNI.
func AMX() bool { return hasAMX && ActiveInt8() == Int8VNNI }

// ActiveInt8 returns the int8 path the active level uses: VNNI where the
// level is AVX-512 and the CPU has AVX512-VNNI, AVX2 at the AVX2 level
// and above, else the reference.
func ActiveInt8() Int8Path {
	switch {
	case active == AVX512 && hasVNNI:
		return Int8VNNI
	case active >= AVX2 && len(int8AVX2Kernels) > 0:
		return Int8AVX2
	}
	return Int8Generic
}

// Int8Weights are a convolution's or linear layer's int8 weights: W is
// [K][N] (HWIO flattened: K = KH·KW·IC rows of N output channels), with
// each column's sum and, made when first used, the packings the assembly
// paths read.
type Int8Weights struct {
	K, N   int
	W      []int8
	ColSum []int32

	once16, once8, onceD, onceR sync.Once
	avx2                        []int16 // [⌈N/16⌉][⌈K/2⌉][16][2]
	vnni                        []int8  // [⌈N/32⌉][⌈K/4⌉][32][4]
	direct                      []int8  // the VNNI packing with each kernel row padded to whole quads
	directRow                   int     // the kernel row length direct was packed for
	rows64                      []int8  // the VNNI packing with each kernel row padded to 64 bytes
	rows64Row                   int     // the kernel row length rows64 was packed for
}

// NewInt8Weights wraps w ([K][N], not copied).
func NewInt8Weights(w []int8, k, n int) *Int8Weights {
	if len(w) != k*n {
		panic(fmt.Sprintf("kernels: %d int8 weights for %d×%d", len(w), k, n))
	}
	q := &Int8Weights{K: k, N: n, W: w, ColSum: make([]int32, n)}
	for i := range k {
		for j, v := range w[i*n : (i+1)*n] {
			q.ColSum[j] += int32(v)
		}
	}
	return q
}

func (q *Int8Weights) packedAVX2() []int16 {
	q.once16.Do(func() {
		nb, st := (q.N+15)/16, (q.K+1)/2
		p := make([]int16, nb*st*32)
		for k := range q.K {
			for n := range q.N {
				b, c := n/16, n%16
				p[((b*st+k/2)*16+c)*2+k%2] = int16(q.W[k*q.N+n])
			}
		}
		q.avx2 = p
	})
	return q.avx2
}

func (q *Int8Weights) packedVNNI() []int8 {
	q.once8.Do(func() {
		nb, st := (q.N+31)/32, (q.K+3)/4
		p := make([]int8, nb*st*128)
		for k := range q.K {
			for n := range q.N {
				b, c := n/32, n%32
				p[((b*st+k/4)*32+c)*4+k%4] = q.W[k*q.N+n]
			}
		}
		q.vnni = p
	})
	return q.vnni
}

// packedDirect is the direct path's packing for kernel rows of rowLen
// weights (KW·C; K a multiple of it): packedVNNI's, with each row padded
// by zero weights to a whole number of quads where rowLen is not one. The
// padding multiplies the bytes that follow a row in memory (the next
// pixel's), which the zero weights cancel. The packing is made once, for
// the first rowLen asked: the same weights read with another row length
// (another shape with the same K) is a caller's error and panics rather
// than computing with rows cut in the wrong places.
func (q *Int8Weights) packedDirect(rowLen int) []int8 {
	if rowLen%4 == 0 {
		return q.packedVNNI()
	}
	q.onceD.Do(func() { q.direct, q.directRow = q.paddedRows(rowLen, (rowLen+3)/4*4), rowLen })
	if q.directRow != rowLen {
		panic(fmt.Sprintf("kernels: int8 weights packed for kernel rows of %d read with rows of %d", q.directRow, rowLen))
	}
	return q.direct
}

// packedRows64 is packedDirect with each kernel row of rowLen ≤ 64
// weights padded to 64, one 64-byte step of the AMX tiles
// (int8ConvAMXRows); made once, for the first rowLen asked, as
// packedDirect.
func (q *Int8Weights) packedRows64(rowLen int) []int8 {
	q.onceR.Do(func() { q.rows64, q.rows64Row = q.paddedRows(rowLen, 64), rowLen })
	if q.rows64Row != rowLen {
		panic(fmt.Sprintf("kernels: int8 weights packed for kernel rows of %d read with rows of %d", q.rows64Row, rowLen))
	}
	return q.rows64
}

// paddedRows returns the VNNI packing of the weights with each kernel row
// of rowLen weights padded by zeros to rq.
func (q *Int8Weights) paddedRows(rowLen, rq int) []int8 {
	kh := q.K / rowLen
	w := make([]int8, kh*rq*q.N)
	for r := range kh {
		copy(w[r*rq*q.N:], q.W[r*rowLen*q.N:(r+1)*rowLen*q.N])
	}
	p := &Int8Weights{K: kh * rq, N: q.N, W: w}
	return p.packedVNNI()
}

// Int8Epilogue turns the int32 sums acc[m][n] = Σ(x−zx)·w into the
// output:
//
//	v = float32(acc + Bias[n]) · Mult[n]  (+ float32(Res[m][n] − ResZero) · ResMult)
//
// then, for a u8 output, round half to even, add Zero and clamp to
// [0, 255] ([Zero, 255] with ReLU); for a float32 output, v itself
// (max(v, 0) with ReLU). Mult is the accumulator's unit in output units
// (sx·sw[n]/sy for a u8 output, sx·sw[n] for a float one).
type Int8Epilogue struct {
	Bias []int32
	Mult []float32
	Zero int32
	ReLU bool
	// Res, when not nil, is a u8 tensor of the output's shape added
	// before the ReLU (a residual connection), with its zero point and
	// its unit in output units.
	Res     []uint8
	ResZero int32
	ResMult float32
}

// store writes output row m (channels n0 ≤ n < n1) from sums acc
// (acc[n−n0]). The cases are separate loops, so that none tests per
// element what holds for the row.
func (ep *Int8Epilogue) store(m, nch, n0 int, acc []int32, y []uint8, yf []float32) {
	n1 := n0 + len(acc)
	bias, mult := ep.Bias[n0:n1:n1], ep.Mult[n0:n1:n1]
	row := m*nch + n0
	var res []uint8
	if ep.Res != nil {
		res = ep.Res[row : row+len(acc) : row+len(acc)]
	}
	if yf != nil {
		out := yf[row : row+len(acc) : row+len(acc)]
		for j, a := range acc {
			v := float32(a+bias[j]) * mult[j]
			if res != nil {
				v += float32(int32(res[j])-ep.ResZero) * ep.ResMult
			}
			if ep.ReLU && v < 0 {
				v = 0
			}
			out[j] = v
		}
		return
	}
	out := y[row : row+len(acc) : row+len(acc)]
	lo, zero := int32(0), ep.Zero
	if ep.ReLU {
		lo = zero
	}
	rz, rm := ep.ResZero, ep.ResMult
	j := requantizeVec(acc, bias, mult, out, res, zero, lo, rz, rm)
	if res == nil {
		for ; j < len(acc); j++ {
			out[j] = requantize(float32(acc[j]+bias[j])*mult[j], zero, lo)
		}
		return
	}
	for ; j < len(acc); j++ {
		// The conversions round each product, as the vector loop does
		// (Go may otherwise fuse a product and a sum).
		out[j] = requantize(float32(float32(acc[j]+bias[j])*mult[j])+float32(float32(int32(res[j])-rz)*rm), zero, lo)
	}
}

// requantize rounds v half to even, adds zero and clamps to [lo, 255].
// Adding 1.5·2²³ leaves the float32 sum's low mantissa bits holding v
// rounded to an integer, half to even (float32 addition's own rounding),
// for |v| < 2²²: ONNX QuantizeLinear's rounding without a round trip
// through float64.
//
// A NaN counts as 1e6 (so 255), as the vector loop's VMINPS makes it, and
// a result below 0 is 0 whatever lo is.
func requantize(v float32, zero, lo int32) uint8 {
	if !(v <= 1e6) { // inside ±2²²; the clamp below decides
		v = 1e6
	}
	v = max(v, -1e6)
	q := int32(math.Float32bits(v+0x1.8p23)-0x4b400000) + zero
	return uint8(min(max(q, lo, 0), 255))
}

// Int8Conv computes a convolution of u8 activations x (NHWC, zero point
// zx; padding reads as zx, the real value 0) with w ([KH·KW·C][OC]) and
// writes it through ep to y (u8, NHWC) or, if yf is not nil, to yf. Groups
// other than 1 are not supported (w.K must be KH·KW·C).
func Int8Conv(s ConvShape, x []uint8, zx uint8, w *Int8Weights, ep *Int8Epilogue, y []uint8, yf []float32) {
	if w.K != s.KH*s.KW*s.C || w.N != s.OC {
		panic(fmt.Sprintf("kernels: int8 weights %d×%d for conv %+v", w.K, w.N, s))
	}
	switch ActiveInt8() {
	case Int8VNNI:
		if int8DirectOK(s) {
			int8ConvDirect(s, x, zx, w, ep, y, yf)
			return
		}
		int8ConvTiled(s, x, zx, w, ep, y, yf, true)
	case Int8AVX2:
		int8ConvTiled(s, x, zx, w, ep, y, yf, false)
	default:
		Int8ConvReference(s, x, zx, w, ep, y, yf)
	}
}

// Int8ConvReference is Int8Conv's reference: a direct loop, the int32
// sums of (x−zx)·w taken in the order of the weights.
func Int8ConvReference(s ConvShape, x []uint8, zx uint8, w *Int8Weights, ep *Int8Epilogue, y []uint8, yf []float32) {
	oh, ow := s.OH(), s.OW()
	parallelFor(s.N*oh, func(lo, hi int) {
		acc := make([]int32, s.OC)
		for row := lo; row < hi; row++ {
			n, oy := row/oh, row%oh
			for ox := range ow {
				clear(acc)
				for ky := range s.KH {
					iy := oy*s.SH - s.PT + ky*s.DH
					if iy < 0 || iy >= s.H {
						continue
					}
					for kx := range s.KW {
						ix := ox*s.SW - s.PL + kx*s.DW
						if ix < 0 || ix >= s.W {
							continue
						}
						xs := x[((n*s.H+iy)*s.W+ix)*s.C:][:s.C]
						wk := w.W[(ky*s.KW+kx)*s.C*s.OC:]
						for c, xv := range xs {
							d := int32(xv) - int32(zx)
							if d == 0 {
								continue
							}
							for j, wv := range wk[c*s.OC : (c+1)*s.OC] {
								acc[j] += d * int32(wv)
							}
						}
					}
				}
				ep.store(row*ow+ox, s.OC, 0, acc, y, yf)
			}
		}
	})
}

// int8ConvTiled runs the assembly kernels: tiles of mr output pixels,
// whose patches are gathered into a step-major panel, times each block
// of output channels.
func int8ConvTiled(s ConvShape, x []uint8, zx uint8, w *Int8Weights, ep *Int8Epilogue, y []uint8, yf []float32, vnni bool) {
	oh, ow := s.OH(), s.OW()
	m := s.N * oh * ow
	k := w.K
	var (
		kern      []int8Kernel
		nr, per   int // channels a kernel computes, values a step holds per row
		packed    unsafe.Pointer
		blockSize int // bytes of packed weights per channel block
	)
	if vnni {
		kern, nr, per = int8VNNIKernels, 32, 4
		p := w.packedVNNI()
		packed, blockSize = unsafe.Pointer(&p[0]), (k+3)/4*128
	} else {
		kern, nr, per = int8AVX2Kernels, 16, 2
		p := w.packedAVX2()
		packed, blockSize = unsafe.Pointer(&p[0]), (k+1)/2*64
	}
	maxMR := len(kern)
	if vnni {
		maxMR = min(maxMR, 12)
	}
	steps := (k + per - 1) / per
	tiles := (m + maxMR - 1) / maxMR
	nb := (s.OC + nr - 1) / nr
	parallelFor(tiles, func(lo, hi int) {
		panel := make([]byte, steps*maxMR*4)
		tile := make([]int32, maxMR*nr)
		for t := lo; t < hi; t++ {
			m0 := t * maxMR
			mr := min(maxMR, m-m0)
			if vnni {
				gatherU8(s, x, zx, m0, mr, k, panel)
			} else {
				gatherI16(s, x, zx, m0, mr, k, unsafe.Slice((*int16)(unsafe.Pointer(&panel[0])), len(panel)/2))
			}
			for b := range nb {
				kern[mr-1](unsafe.Pointer(&panel[0]), unsafe.Add(packed, b*blockSize), steps, unsafe.Pointer(&tile[0]))
				n0 := b * nr
				n1 := min(n0+nr, s.OC)
				for r := range mr {
					acc := tile[r*nr : r*nr+n1-n0]
					if vnni {
						for j := range acc {
							acc[j] -= int32(zx) * w.ColSum[n0+j]
						}
					}
					ep.store(m0+r, s.OC, n0, acc, y, yf)
				}
			}
		}
	})
}

// patch calls f(k0, vals) for each run of the receptive field of output
// pixel m that lies inside the input: vals are the input values for
// patch positions k0, k0+1, ….
func patch(s ConvShape, x []uint8, m int, f func(k0 int, vals []uint8)) {
	taps(s, m, func(k0, at int) { f(k0, x[at:at+s.C]) })
}

// gatherU8 fills a VNNI panel ([⌈k/4⌉][mr][4] bytes) with the patches of
// output pixels m0…m0+mr−1; positions outside the input (and past k) hold
// the zero point. With channels in fours, a tap's channels fill whole
// steps and are copied four at a time.
func gatherU8(s ConvShape, x []uint8, zx uint8, m0, mr, k int, panel []byte) {
	steps := (k + 3) / 4
	p := panel[:steps*mr*4]
	for i := range p {
		p[i] = zx
	}
	if s.C%4 != 0 {
		for r := range mr {
			patch(s, x, m0+r, func(k0 int, vals []uint8) {
				for i, v := range vals {
					kk := k0 + i
					p[(kk/4*mr+r)*4+kk%4] = v
				}
			})
		}
		return
	}
	quads := unsafe.Slice((*[4]uint8)(unsafe.Pointer(&p[0])), len(p)/4)
	for r := range mr {
		taps(s, m0+r, func(k0, at int) {
			vals := x[at : at+s.C : at+s.C]
			o := k0/4*mr + r
			for i := 0; i < len(vals); i += 4 {
				quads[o] = [4]uint8(vals[i : i+4])
				o += mr
			}
		})
	}
}

// gatherI16 fills an AVX2 panel ([⌈k/2⌉][mr][2] int16) with x−zx over the
// patches of output pixels m0…m0+mr−1 (0 outside the input and past k).
// With an even channel count, a tap's channels fill whole steps and are
// written a pair at a time (the per-value index arithmetic and call were
// half of an int8 convolution's time).
func gatherI16(s ConvShape, x []uint8, zx uint8, m0, mr, k int, panel []int16) {
	steps := (k + 1) / 2
	p := panel[:steps*mr*2]
	clear(p)
	if s.C%2 != 0 {
		for r := range mr {
			patch(s, x, m0+r, func(k0 int, vals []uint8) {
				for i, v := range vals {
					kk := k0 + i
					p[(kk/2*mr+r)*2+kk%2] = int16(v) - int16(zx)
				}
			})
		}
		return
	}
	z := int16(zx)
	pairs := unsafe.Slice((*[2]int16)(unsafe.Pointer(&p[0])), len(p)/2)
	for r := range mr {
		taps(s, m0+r, func(k0, at int) {
			vals := x[at : at+s.C : at+s.C]
			o := k0/2*mr + r
			for i := 0; i < len(vals); i += 2 {
				pairs[o] = [2]int16{int16(vals[i]) - z, int16(vals[i+1]) - z}
				o += mr
			}
		})
	}
}

// taps calls f(k0, at) for each tap of output pixel m's receptive field
// that lies inside the input: k0 is the tap's first patch position and at
// the offset in x of its C channels.
func taps(s ConvShape, m int, f func(k0, at int)) {
	oh, ow := s.OH(), s.OW()
	n, oy, ox := m/(oh*ow), m/ow%oh, m%ow
	for ky := range s.KH {
		iy := oy*s.SH - s.PT + ky*s.DH
		if iy < 0 || iy >= s.H {
			continue
		}
		for kx := range s.KW {
			ix := ox*s.SW - s.PL + kx*s.DW
			if ix < 0 || ix >= s.W {
				continue
			}
			f((ky*s.KW+kx)*s.C, ((n*s.H+iy)*s.W+ix)*s.C)
		}
	}
}

// PeakInt8 runs n iterations of independent register-only int8
// multiply-adds on the active int8 path and returns the operations
// performed (2 per multiply-add; 0 on the reference path).
func PeakInt8(n int) float64 {
	switch ActiveInt8() {
	case Int8VNNI:
		return peakInt8(n, true)
	case Int8AVX2:
		return peakInt8(n, false)
	}
	return 0
}

// QuantizeU8 writes dst[i] = the u8 quantization of x[i] with scale and
// zero point, as ONNX's QuantizeLinear computes it: x/scale in float32,
// rounded half to even, plus zero, saturated to 0…255; a NaN becomes the
// zero point. In parallel (a network's input is quantized before its
// first layer can start), eight at a time where the level has AVX2.
func QuantizeU8(x []float32, scale float32, zero int32, dst []uint8) {
	const block = 1 << 14
	dst = dst[:len(x)]
	parallelFor((len(x)+block-1)/block, func(lo, hi int) {
		s, e := lo*block, min(hi*block, len(x))
		for i := s + quantizeU8Vec(x[s:e], scale, zero, dst[s:e]); i < e; i++ {
			f := x[i] / scale
			if f != f {
				f = 0
			}
			dst[i] = requantize(f, zero, 0)
		}
	})
}
