package tensor_test

import (
	"fmt"

	"github.com/residual-nn/residual/tensor"
)

// Images are channels-last inside residual; convert PyTorch's NCHW at the
// boundary.
func Example() {
	nchw := tensor.MustFromData([]float32{
		1, 2, 3, 4, // channel 0 of a 2×2 image
		5, 6, 7, 8, // channel 1
	}, 1, 2, 2, 2)
	nhwc := tensor.NCHWToNHWC(nchw)
	fmt.Println(nhwc.Shape, nhwc.Data)
	// Output: [1 2 2 2] [1 5 2 6 3 7 4 8]
}

// The same seed gives the same numbers everywhere.
func ExampleNewRNG() {
	a, b := tensor.NewRNG(7), tensor.NewRNG(7)
	fmt.Println(a.Normal() == b.Normal())
	// Output: true
}
