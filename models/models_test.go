package models_test

import (
	"math"
	"testing"

	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// The U-Nets (padded with BN in training mode; valid with crops) against
// PyTorch: output, input and parameter gradients, running statistics at
// 1e-5 (fixture.CheckModel). torchvision's resnet18 and resnet50 in
// evaluation mode on two 224×224 images: logits at 1e-4, the issue's
// bound for 50 layers of float32 accumulation in two different orders.
func TestTorchGoldenModels(t *testing.T) {
	f, err := fixture.Load("../testdata/torch/models.json")
	if err != nil {
		t.Fatal(err)
	}
	done := map[string]bool{}
	for _, c := range f.Cases {
		var m nn.Layer
		rtol := 1e-5
		switch c.Op {
		case "unet":
			m, err = unet.New(unet.Config{InChannels: c.Int("cin"), Classes: c.Int("classes"), Depth: c.Int("depth"), Base: c.Int("base"),
				Valid: c.Bool("valid"), BatchNorm: c.Bool("bn")}, tensor.NewRNG(1))
			done[map[bool]string{true: "unet-valid", false: "unet-padded"}[c.Bool("valid")]] = true
		case "torchvision":
			if testing.Short() {
				continue
			}
			arch := c.Attrs["arch"].(string)
			cfg, _ := models.Preset(arch)
			m, err = models.Build(cfg, tensor.NewRNG(1))
			rtol = 1e-4
			done[arch] = true
		default:
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range fixture.CheckModel(c, m, rtol) {
			t.Errorf("%s %v: %v", c.Op, c.Attrs, e)
		}
	}
	want := []string{"unet-valid", "unet-padded"}
	if !testing.Short() {
		want = append(want, "resnet18", "resnet50")
	}
	for _, k := range want {
		if !done[k] {
			t.Errorf("no fixture case for %s", k)
		}
	}
}

// Multiply-adds at 224×224 within 2% of torchvision's published
// 1.81/3.66/4.09/7.80/11.51 G (v1.5) and the paper's 1.8/3.6/3.8/7.6/11.3 G
// (v1, stride on the first 1×1).
func TestMultAdds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v15, v1 float64
	}{{"resnet18", 1.81, 1.8}, {"resnet34", 3.66, 3.6}, {"resnet50", 4.09, 3.8}, {"resnet101", 7.80, 7.6}, {"resnet152", 11.51, 11.3}} {
		for _, v1 := range []bool{false, true} {
			cfg, _ := models.Preset(tc.name)
			cfg.ResNet.StrideOn1x1 = v1
			m, err := models.Build(cfg, tensor.NewRNG(1))
			if err != nil {
				t.Fatal(err)
			}
			s, err := nn.Summarize(m, cfg.InputShape(1, 224))
			if err != nil {
				t.Fatal(err)
			}
			want := tc.v15
			if v1 {
				want = tc.v1
			}
			if got := float64(s.TotalMultAdds) / 1e9; math.Abs(got/want-1) > 0.02 {
				t.Errorf("%s (v1 %v): %.3f G mult-adds, published %.2f", tc.name, v1, got, want)
			}
		}
	}
}

func TestConfigRoundTripAndErrors(t *testing.T) {
	for _, name := range models.Names() {
		c, err := models.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		back, err := models.Unmarshal(c.Marshal())
		if err != nil || back.Marshal() != c.Marshal() {
			t.Errorf("%s: config does not survive JSON: %v", name, err)
		}
	}
	if _, err := models.Preset("resnet19"); err == nil {
		t.Error("resnet19 accepted")
	}
	if _, err := models.Build(models.Config{Name: "empty"}, tensor.NewRNG(1)); err == nil {
		t.Error("an empty config built a model")
	}
	if _, err := models.Unmarshal("{"); err == nil {
		t.Error("bad JSON accepted")
	}
}
