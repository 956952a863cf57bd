package models_test

import (
	"fmt"
	"log"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Building a network of the zoo: a preset by name, sized for the data
// (10 classes of grey images), then built with seeded initial weights.
// Its parameters carry torchvision's state-dict names; ResNet-20 has
// 269,434 of them with one input channel (269,722 with three: the 0.27M of
// He et al. 2015).
func ExampleBuild() {
	c, err := models.Preset("resnet20")
	if err != nil {
		log.Fatal(err)
	}
	c.SetClasses(10)
	c.SetInChannels(1)
	net, err := models.Build(c, tensor.NewRNG(1))
	if err != nil {
		log.Fatal(err)
	}
	params := nn.Parameters(net)
	fmt.Println(c.Kind(), c.InputShape(8, c.DefaultSide()), nn.NumParams(net))
	fmt.Println(params[0].Name, params[len(params)-1].Name)
	// Output:
	// resnet [8 32 32 1] 269434
	// conv1.weight fc.bias
}
