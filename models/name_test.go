package models_test

import (
	"testing"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// TestBuildNamesParameters checks that a built model of each family has
// its parameters named with their state-dict keys (optimizers key their
// checkpointed state by these names) before anything reads the model.
func TestBuildNamesParameters(t *testing.T) {
	for _, name := range []string{"resnet20", "unet-padded", "resmlp"} {
		c, err := models.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := models.Build(c, tensor.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range nn.StateDict(m) {
			if e.Param != nil {
				n++
				if e.Param.Name != e.Name {
					t.Errorf("%s: parameter %s is named %q", name, e.Name, e.Param.Name)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no parameters", name)
		}
	}
}
