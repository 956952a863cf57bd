package kernels

import "math"

// bfloat16 (BF16) is the upper half of an IEEE 754 binary32: the same sign
// and 8-bit exponent, and 7 stored fraction bits (8 significant bits with
// the implicit one), so every BF16 value is a float32 whose low 16 bits are
// zero. Rounding a float32 to it (round to nearest, ties to even) has a
// relative error of at most u = 2⁻⁸ for normal values (half the spacing
// 2⁻⁷ at the bottom of a binade); the product of two
// BF16 values has at most 16 significant bits and is exact in float32.

// BF16FromFloat32 returns the bfloat16 nearest f (ties to even), as its bit
// pattern. Values beyond the largest finite bfloat16 round to ±Inf as IEEE
// 754 rounding says; subnormal inputs round like any other value (unlike
// VCVTNE2PS2BF16, which flushes them to zero). A NaN stays a NaN of the
// same sign: its upper payload bits are kept and the quiet bit is set, so
// no NaN turns into an infinity by truncation (what VCVTNEPS2BF16 does;
// PyTorch's scalar conversion returns the canonical 0x7FC0 instead).
func BF16FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN
		return uint16(b>>16) | 0x0040
	}
	// Adding 0x7FFF rounds the half-way case down and everything above it
	// up; adding the kept half's lowest bit as well rounds ties to even. A
	// carry out of the fraction steps the exponent, which is right (up to
	// the next power of two, or from the largest finite value to Inf).
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// Float32FromBF16 returns the float32 whose upper half is b (exact).
func Float32FromBF16(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// RoundBF16 returns f rounded to the nearest bfloat16, as a float32.
func RoundBF16(f float32) float32 { return Float32FromBF16(BF16FromFloat32(f)) }

// RoundSliceBF16 writes src rounded to bfloat16 (RoundBF16) into dst,
// which must be at least as long; dst may be src.
func RoundSliceBF16(dst, src []float32) {
	dst = dst[:len(src)]
	parallelFor((len(src)+bf16Chunk-1)/bf16Chunk, func(lo, hi int) {
		s, e := lo*bf16Chunk, min(hi*bf16Chunk, len(src))
		for i := s + roundBF16Fast(dst[s:e], src[s:e]); i < e; i++ {
			dst[i] = RoundBF16(src[i])
		}
	})
}

// ToBF16 writes src converted to bfloat16 (BF16FromFloat32) into dst,
// sixteen at a time where the level has AVX2 (thirty-two at AVX-512), on
// the calling goroutine.
func ToBF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i := toBF16Fast(dst, src); i < len(src); i++ {
		dst[i] = BF16FromFloat32(src[i])
	}
}

// FromBF16 writes src widened to float32 into dst (exact).
func FromBF16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = Float32FromBF16(v)
	}
}

// bf16Chunk is the number of elements RoundSliceBF16 gives a goroutine at
// a time.
const bf16Chunk = 1 << 14
