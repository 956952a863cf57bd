package kernels

import (
	"testing"
	"unsafe"
)

func benchKernel(b *testing.B, k convKernel, mr, nr, ic int) {
	// x: a row of 64 pixels × ic channels, 3 rows; taps over 3×3.
	W := 64
	x := make([]float32, 3*W*ic+64)
	w := make([]float32, 9*ic*nr)
	y := make([]float32, mr*nr)
	var taps []int
	for t := 0; t < 3; t++ {
		for u := 0; u < 3; u++ {
			taps = append(taps, (t*W+u)*ic*4, (t*3+u)*ic*nr*4)
		}
	}
	for b.Loop() {
		for i := 0; i < 100; i++ {
			k(unsafe.Pointer(&x[0]), 0, unsafe.Pointer(&w[0]), unsafe.Pointer(&y[0]), &taps[0], 9, ic, ic*4, nr*4)
		}
	}
	b.ReportMetric(float64(b.N)*100*2*float64(mr*nr*9*ic)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkTmpKernel(b *testing.B) {
	b.Run("10x16-ic16", func(b *testing.B) { benchKernel(b, convAVX512_16[9], 10, 16, 16) })
	b.Run("14x16-ic16", func(b *testing.B) { benchKernel(b, convAVX512_16[13], 14, 16, 16) })
	b.Run("10x16-ic64", func(b *testing.B) { benchKernel(b, convAVX512_16[9], 10, 16, 64) })
	b.Run("14x32-ic32", func(b *testing.B) { benchKernel(b, convAVX512_32[13], 14, 32, 32) })
	b.Run("14x32-ic16", func(b *testing.B) { benchKernel(b, convAVX512_32[13], 14, 32, 16) })
	b.Run("14x32-ic64", func(b *testing.B) { benchKernel(b, convAVX512_32[13], 14, 32, 64) })
}
