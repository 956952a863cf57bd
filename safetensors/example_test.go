package safetensors_test

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/tensor"
)

// Write a file of named tensors with string metadata, then read it back.
// Tensors named in a dtypes map (WriteDtypes) are stored as integers, as
// PyTorch stores its torch.long buffers; Read gives every tensor as
// float32 and records the stored dtype.
func ExampleWrite() {
	dir, err := os.MkdirTemp("", "safetensors-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "weights.safetensors")

	w := tensor.MustFromData([]float32{0.5, -1, 2, 0.25, 0, 3}, 2, 3)
	steps := tensor.MustFromData([]float32{1200}) // a scalar
	err = safetensors.WriteDtypes(path,
		map[string]*tensor.Tensor{"fc.weight": w, "bn.num_batches_tracked": steps},
		map[string]string{"bn.num_batches_tracked": "I64"},
		map[string]string{"epoch": "3"})
	if err != nil {
		log.Fatal(err)
	}

	f, err := safetensors.Read(path)
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range []string{"bn.num_batches_tracked", "fc.weight"} {
		t := f.Tensors[name]
		fmt.Println(name, f.Dtypes[name], t.Shape, t.Data)
	}
	fmt.Println("epoch", f.Metadata["epoch"])
	// Output:
	// bn.num_batches_tracked I64 [] [1200]
	// fc.weight F32 [2 3] [0.5 -1 2 0.25 0 3]
	// epoch 3
}

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
