package torch_test

import (
	"fmt"
	"log"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/interop/torch"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Load weights that PyTorch saved (torch.save of a torchvision-style
// ResNet's state_dict) into the same network built here, and run it.
func ExampleLoadStateDict() {
	st, err := torch.LoadStateDict("../../testdata/torch/interop/small.pth")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(st), "tensors; conv1.weight", st["conv1.weight"].Shape, "(PyTorch's OIHW)")

	net, err := resnet.New(resnet.Config{Block: "basic", Layers: []int{1, 1}, Widths: []int{8, 16}, Stem: "imagenet", StemWidth: 8,
		Ordering: resnet.PostActivation, Shortcut: resnet.ShortcutB, Classes: 5, InChannels: 3}, tensor.NewRNG(1))
	if err != nil {
		log.Fatal(err)
	}
	// Strict: every parameter and buffer must be in st, and nothing else.
	if err := nn.LoadTorchState(net, st, true); err != nil {
		log.Fatal(err)
	}
	fmt.Println("conv1.weight here", net.Conv1.Weight.Data.Shape, "(HWIO)")
	nn.SetTraining(net, false)
	logits := net.Forward(ag.Constant(tensor.New(2, 40, 40, 3))) // NHWC
	fmt.Println("logits", logits.Shape())
	// Output:
	// 38 tensors; conv1.weight [8 3 7 7] (PyTorch's OIHW)
	// conv1.weight here [7 7 3 8] (HWIO)
	// logits [2 5]
}
