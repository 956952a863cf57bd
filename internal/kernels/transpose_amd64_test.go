//go:build amd64 && !purego

package kernels

import (
	"testing"
	"unsafe"
)

// TestTranspose16 checks the register transpose on rows of other lengths
// than the block (strides of 20 and 24 floats), every element distinct.
func TestTranspose16(t *testing.T) {
	src := make([]float32, 16*20)
	dst := make([]float32, 16*24)
	for i := range src {
		src[i] = float32(i)
	}
	transpose16(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), 24*4, 20*4)
	for i := 0; i < 16; i++ {
		for k := 0; k < 16; k++ {
			if dst[i*24+k] != src[k*20+i] {
				t.Errorf("dst[%d][%d] = %v (src row %v col %v), want %v", i, k, dst[i*24+k], int(dst[i*24+k])/20, int(dst[i*24+k])%20, src[k*20+i])
			}
		}
	}
}
