package resnet

import (
	"testing"

	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Parameter counts from torchvision (ImageNet, v1.5) and He et al. 2015
// Table 6 (CIFAR, option A; BN γ/β included: 97,216·n − 21,926).
func TestPublishedParameterCounts(t *testing.T) {
	for name, want := range map[string]int{
		"resnet18": 11689512, "resnet34": 21797672, "resnet50": 25557032, "resnet101": 44549160, "resnet152": 60192808,
		"resnet20": 269722, "resnet32": 464154, "resnet44": 658586, "resnet56": 853018, "resnet110": 1727962, "resnet1202": 19421274,
		"plain20": 269722, "plain56": 853018,
	} {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(c, tensor.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		if got := nn.NumParams(m); got != want {
			t.Errorf("%s: %d parameters, published %d", name, got, want)
		}
	}
}

func TestPreActCounts(t *testing.T) {
	// He et al. 2016 report 1.7M (ResNet-164) and 10.2M (ResNet-1001).
	for name, want := range map[string]float64{"preact-resnet164": 1.7e6, "preact-resnet1001": 10.2e6, "preact-resnet110": 1.7e6} {
		c, _ := Preset(name)
		m, err := New(c, tensor.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		got := float64(nn.NumParams(m))
		if got < want*0.97 || got > want*1.03 {
			t.Errorf("%s: %.0f parameters, published ≈%.1fM", name, got, want/1e6)
		}
		t.Logf("%s: %d parameters", name, int(got))
	}
}
