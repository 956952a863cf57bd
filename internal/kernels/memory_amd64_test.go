//go:build amd64 && !purego

package kernels

import (
	"testing"
	"unsafe"
)

// TestTranspose16x16 checks the register transpose that packs transposed
// weights, every column selected, on rows of other lengths than the block
// (strides of 20 and 24 floats), every element distinct.
func TestTranspose16x16(t *testing.T) {
	src := make([]float32, 16*20)
	dst := make([]float32, 16*24)
	for i := range src {
		src[i] = float32(i)
	}
	transpose16x16(unsafe.Pointer(&dst[0]), 24*4, unsafe.Pointer(&src[0]), 20*4, 0xffff)
	for i := 0; i < 16; i++ {
		for k := 0; k < 16; k++ {
			if dst[i*24+k] != src[k*20+i] {
				t.Errorf("dst[%d][%d] = %v (src row %v col %v), want %v", i, k, dst[i*24+k], int(dst[i*24+k])/20, int(dst[i*24+k])%20, src[k*20+i])
			}
		}
	}
}

// TestCopyRows checks the strided row copy: one and two vectors a row,
// rows 40 floats apart in the source and 48 in the destination, and that
// nothing between the rows is written.
func TestCopyRows(t *testing.T) {
	for _, vecs := range []int{1, 2} {
		src := make([]float32, 5*40)
		dst := make([]float32, 5*48)
		for i := range src {
			src[i] = float32(i + 1)
		}
		copyRows(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[3]), 5, vecs, 48*4, 40*4)
		for r := range 5 {
			for i := range 48 {
				want := float32(0)
				if i < 16*vecs {
					want = src[r*40+3+i]
				}
				if dst[r*48+i] != want {
					t.Fatalf("%d vectors: dst[%d][%d] = %v, want %v", vecs, r, i, dst[r*48+i], want)
				}
			}
		}
	}
}
