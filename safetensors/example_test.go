package safetensors_test

import (
	"bytes"
	"fmt"

	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/tensor"
)

// ReadFrom reads a file of unknown size (a pipe, a network stream): it
// reads the header and then exactly the data the header describes.
func ExampleReadFrom() {
	b, _ := safetensors.Encode(map[string]*tensor.Tensor{"w": tensor.MustFromData([]float32{1, 2, 3}, 3)}, map[string]string{"epoch": "7"})
	f, err := safetensors.ReadFrom(bytes.NewReader(b), -1)
	if err != nil {
		panic(err)
	}
	fmt.Println(f.Tensors["w"].Data, f.Metadata["epoch"])

	_, err = safetensors.ReadFrom(bytes.NewReader(make([]byte, 64)), -1) // zeros, as /dev/zero gives
	fmt.Println(err)
	// Output:
	// [1 2 3] 7
	// safetensors: bad header: unexpected end of JSON input
}
