//go:build amd64 && !purego

package kernels

import (
	"math"
	"testing"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// TestConvertBF16Paths holds both AVX-512 conversions to bfloat16 — the
// integer rounding (toBF16AVX512, pairBF16AVX512) and VCVTNE2PS2BF16's
// (toBF16NE, pairBF16NE) — to BF16FromFloat32 bit for bit on every
// bfloat16 upper half with the low halves where rounding turns, NaNs and
// subnormals included, and on blocks in which one lane alone is
// subnormal (which VCVTNE2PS2BF16 would flush to zero: the block must be
// rounded the other way).
func TestConvertBF16Paths(t *testing.T) {
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX512BW {
		t.Skip("the CPU lacks AVX-512 (F and BW): neither AVX-512 conversion runs here")
	}
	var src []float32
	for hi := uint32(0); hi < 1<<16; hi++ {
		for _, low := range []uint32{0, 1, 0x7fff, 0x8000, 0x8001, 0xffff} {
			src = append(src, math.Float32frombits(hi<<16|low))
		}
	}
	// Blocks of ordinary values with one subnormal lane at each position.
	for lane := range 32 {
		for i := range 32 {
			v := float32(i+1) * 1.0009765625 // a low half that rounds up
			if i == lane {
				v = math.Float32frombits(0x00018001 | uint32(lane%2)<<31)
			}
			src = append(src, v)
		}
	}
	src = src[:len(src)&^31]
	other := make([]float32, len(src))
	for i := range other {
		other[i] = src[len(src)-1-i]
	}
	type conv struct {
		name string
		to   func(dst, src unsafe.Pointer, n int)
		pair func(dst, a, b unsafe.Pointer, n int)
	}
	paths := []conv{{"integer rounding", toBF16AVX512, pairBF16AVX512}}
	if hasBF16 {
		paths = append(paths, conv{"VCVTNE2PS2BF16", toBF16NE, pairBF16NE})
	} else {
		t.Log("the CPU lacks AVX512-BF16: VCVTNE2PS2BF16's conversions not run")
	}
	for _, c := range paths {
		u := make([]uint16, len(src))
		p := make([]uint32, len(src))
		c.to(unsafe.Pointer(&u[0]), unsafe.Pointer(&src[0]), len(src))
		c.pair(unsafe.Pointer(&p[0]), unsafe.Pointer(&src[0]), unsafe.Pointer(&other[0]), len(src))
		for i, v := range src {
			if want := BF16FromFloat32(v); u[i] != want {
				t.Fatalf("%s: %#08x converts to %#04x, want %#04x", c.name, math.Float32bits(v), u[i], want)
			}
			if want := bf16Pair(v, other[i]); p[i] != want {
				t.Fatalf("%s: pair of %#08x, %#08x is %#08x, want %#08x", c.name, math.Float32bits(v), math.Float32bits(other[i]), p[i], want)
			}
		}
	}
}
