package resnet

import "testing"

// The v1 presets are the v1.5 ones with the bottleneck's stride on its
// first 1×1 convolution; basic-block networks have no v1 variant.
func TestV1Presets(t *testing.T) {
	for _, n := range []string{"resnet50", "resnet101", "resnet152"} {
		v15, err := Preset(n)
		if err != nil {
			t.Fatal(err)
		}
		v1, err := Preset(n + "-v1")
		if err != nil {
			t.Fatal(err)
		}
		if v15.StrideOn1x1 || !v1.StrideOn1x1 {
			t.Errorf("%s: StrideOn1x1 %v, %s-v1: %v", n, v15.StrideOn1x1, n, v1.StrideOn1x1)
		}
		v1.StrideOn1x1 = false
		if v1.Block != v15.Block || len(v1.Layers) != len(v15.Layers) {
			t.Errorf("%s-v1 differs from %s beyond the stride", n, n)
		}
	}
	if _, err := Preset("resnet18-v1"); err == nil {
		t.Error("resnet18-v1 was accepted; basic blocks have no v1 variant")
	}
}
