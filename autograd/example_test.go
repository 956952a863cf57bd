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

// bfloat16 autocast: the tape's convolutions and matrix products round
// their operands to bfloat16 (8 significant bits) and sum in float32.
// 1 + 2⁻¹⁰ is not a bfloat16; it rounds to 1.
func ExampleTape_SetPrecision() {
	w := ag.Param(tensor.MustFromData([]float32{1}, 1, 1), "w")
	x := tensor.MustFromData([]float32{1 + 1.0/1024}, 1, 1)
	for _, p := range []ag.Precision{ag.FP32, ag.BF16} {
		tape := ag.NewTape()
		tape.SetPrecision(p)
		y := ag.Linear(tape.Constant(x), w, nil)
		fmt.Println(p, y.Data.Data)
	}
	// Output:
	// fp32 [1.0009766]
	// bf16 [1]
}

// An inference loop on a planned tape: the first two passes learn which
// buffers each step reads, later ones release each intermediate buffer
// after its last read. Read the output before Reset.
func ExampleTape_PlanMemory() {
	w := ag.Constant(tensor.Full(0.5, 1, 1, 4, 4)) // a 1×1 convolution, 4 → 4 channels
	tape := ag.NewNoGradTape()
	tape.PlanMemory()
	for pass := range 4 {
		x := tape.Constant(tensor.Full(float32(pass), 2, 8, 8, 4))
		h := ag.ReLU(ag.Conv2d(x, w, nil, ag.ConvParams{}))
		h = ag.ReLU(ag.Add(ag.Conv2d(h, w, nil, ag.ConvParams{}), h))
		y := ag.GlobalAvgPool(h)
		fmt.Println(pass, y.Tensor().Data[0])
		tape.Reset()
	}
	fmt.Println("buffers released per pass:", tape.PlannedReleases(2*8*8*4))
	// Output:
	// 0 0
	// 1 6
	// 2 12
	// 3 18
	// buffers released per pass: 1
}
