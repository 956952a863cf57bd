package models_test

import (
	"math"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// TestFoldBatchNorm folds the batch norms of zoo networks into their
// convolutions and checks that the network computes what it computed in
// evaluation mode, with random running statistics and affine parameters so
// that every fold matters, and that it folds exactly the batch norms that
// follow a convolution: all of them in post-activation ResNets and
// U-Nets, only those inside the branch (after the first convolution) in
// pre-activation ones, none where a convolution's output is read twice.
// Folding rounds w·scale to float32 once per weight, so outputs agree to
// the bound of the 50-layer golden comparisons: 1e-4 of the output's scale.
func TestFoldBatchNorm(t *testing.T) {
	for _, tc := range []struct {
		name  string
		side  int
		folds int
	}{
		{"resnet20", 16, 19},        // stem + 2 per block × 9
		{"resnet18", 64, 20},        // stem + 2 × 8 blocks + 3 projection shortcuts
		{"resnet50", 64, 53},        // stem + 3 × 16 blocks + 4 projections
		{"preact-resnet110", 8, 54}, // BN2 of each of 54 blocks; BN1 and the final BN follow an addition
		{"plain20", 16, 19},
		{"unet-padded", 32, 18}, // two per double convolution: 4 down, the bottom, 4 up
	} {
		cfg, err := models.Preset(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if u, ok := cfg.Arch.(*models.UNet); ok {
			u.Base = 4
		}
		m, err := models.Build(cfg, tensor.NewRNG(3))
		if err != nil {
			t.Fatal(err)
		}
		rng := tensor.NewRNG(5)
		for _, l := range nn.Layers(m) {
			if bn, ok := l.Layer.(*nn.BatchNorm); ok {
				for i := range bn.RunningMean.Data {
					bn.RunningMean.Data[i] = 0.2 * float32(rng.Normal())
					bn.RunningVar.Data[i] = 0.5 + float32(rng.Float64())
					bn.Weight.Data.Data[i] = 1 + 0.2*float32(rng.Normal())
					bn.Bias.Data.Data[i] = 0.1 * float32(rng.Normal())
				}
			}
		}
		shape := cfg.InputShape(2, tc.side)
		x := rng.Randn(shape...)
		nn.SetTraining(m, false)
		forward := func() []float32 {
			return m.Forward(ag.NewNoGradTape().Constant(x)).Tensor().Data
		}
		want := forward()
		if nn.Folded(m) {
			t.Errorf("%s: Folded before FoldBatchNorm", tc.name)
		}
		n, err := nn.FoldBatchNorm(m, shape)
		if err != nil {
			t.Fatal(err)
		}
		if n != tc.folds {
			t.Errorf("%s: folded %d batch norms, want %d", tc.name, n, tc.folds)
		}
		if nn.Folded(m) != (n > 0) {
			t.Errorf("%s: Folded %v after folding %d batch norms", tc.name, nn.Folded(m), n)
		}
		got := forward()
		scale := 0.0
		for _, v := range want {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*scale {
				t.Fatalf("%s: output %d: folded %g, unfolded %g (scale %g)", tc.name, i, got[i], want[i], scale)
			}
		}
		if again, _ := nn.FoldBatchNorm(m, shape); again != 0 {
			t.Errorf("%s: a second fold folded %d more", tc.name, again)
		}
	}
}

// ForInference seals every parameter (nn.Seal), so that convolutions keep
// their packed weights across calls.
func TestForInferenceSeals(t *testing.T) {
	cfg, err := models.Preset("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	net, err := models.Build(cfg, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range nn.Parameters(net) {
		if p.Sealed() {
			t.Fatalf("%s sealed before ForInference", p.Name)
		}
	}
	if err := models.ForInference(cfg, net); err != nil {
		t.Fatal(err)
	}
	for _, p := range nn.Parameters(net) {
		if !p.Sealed() {
			t.Errorf("%s not sealed by ForInference", p.Name)
		}
	}
}
