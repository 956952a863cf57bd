package limits_test

import (
	"fmt"

	"github.com/residual-nn/residual/limits"
)

// A loader checks what a header declares before it allocates anything:
// the image's size against ImageSide and ImagePixels, the tensor's shape
// against TensorElements (with no overflow however large the factors).
func ExampleCheckImage() {
	fmt.Println(limits.CheckImage("photo.png", 4000, 3000))
	fmt.Println(limits.CheckImage("photo.png", 70000, 10))
	fmt.Println(limits.CheckElements("conv1.weight", 1<<30, 1<<30, 1<<30))
	// Output:
	// <nil>
	// photo.png: image of 70000×10 pixels has a side over 65536 (limits.ImageSide)
	// conv1.weight: shape [1073741824 1073741824 1073741824] holds more than 268435456 values (limits.TensorElements)
}
