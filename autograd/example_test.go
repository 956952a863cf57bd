package autograd_test

import (
	"fmt"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/tensor"
)

// Gradients with respect to parameters and inputs.
func Example() {
	w := ag.Param(tensor.MustFromData([]float32{2, -1}, 1, 2), "w") // Linear [out=1, in=2]
	tape := ag.NewTape()
	x := tape.Variable(tensor.MustFromData([]float32{3, 4}, 1, 2))
	y := ag.Linear(x, w, nil) // y = 2·3 − 1·4 = 2
	loss := ag.Sum(ag.Mul(y, y))
	tape.Backward(loss) // d(y²)/dw = 2y·x, d(y²)/dx = 2y·w
	fmt.Println(loss.Data.Data, w.Grad.Data, x.Grad.Data)
	// Output: [4] [12 16] [8 -4]
}

// Inference: inputs without a tape record nothing.
func ExampleConstant() {
	x := ag.Constant(tensor.MustFromData([]float32{-1, 0.5}, 2))
	y := ag.ReLU(x)
	fmt.Println(y.Data.Data, y.Grad == nil)
	// Output: [0 0.5] true
}
