package models_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/mlp"
	"github.com/residual-nn/residual/models/resnet"
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
			cfg.Arch.(*models.ResNet).StrideOn1x1 = v1
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
		text, err := c.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back, err := models.Unmarshal(text)
		if err != nil {
			t.Errorf("%s: config does not survive JSON: %v", name, err)
		} else if again, err := back.Marshal(); err != nil || again != text {
			t.Errorf("%s: config marshals as\n%s\nthen as\n%s (%v)", name, text, again, err)
		}
	}
	// A config that JSON cannot hold is an error naming it, not "" (two
	// such configs compared equal as "", as resuming compares them).
	nan, _ := models.Preset("resnet20")
	nan.Arch.(*models.ResNet).BranchScale = float32(math.NaN())
	if got, err := nan.Marshal(); err == nil || got != "" || !strings.Contains(err.Error(), `models: config "resnet20"`) || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("a NaN branch scale marshals as %q, %v", got, err)
	}
	if got, err := (models.Config{Name: "empty"}).Marshal(); err == nil || got != "" || !strings.Contains(err.Error(), `"empty" describes no network`) {
		t.Errorf("a config of no network marshals as %q, %v", got, err)
	}
	if _, err := models.Preset("resnet19"); err == nil {
		t.Error("resnet19 accepted")
	}
	if _, err := models.Build(models.Config{Name: "empty"}, tensor.NewRNG(1)); err == nil {
		t.Error("an empty config built a model")
	}
	// A nil RNG is an error (it panicked in the first layer's init).
	c, err := models.Preset("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := models.Build(c, nil); err == nil || !strings.Contains(err.Error(), "no RNG") {
		t.Errorf("Build with a nil RNG: %v", err)
	}
	if _, err := models.Unmarshal("{"); err == nil {
		t.Error("bad JSON accepted")
	}
}

// The first checkpoint format stored {"name", "resnet": {...}}; it reads
// into the same config as the current {"name", "kind", "config"}.
func TestConfigReadsFirstFormat(t *testing.T) {
	old := `{"name":"tiny","resnet":{"block":"basic","layers":[1,1],"widths":[4,8],"stem":"cifar","stem_width":4,"ordering":"a","shortcut":"B","classes":10,"in_channels":1}}`
	c, err := models.Unmarshal(old)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := c.Arch.(*models.ResNet)
	if !ok || c.Name != "tiny" || r.Config.Classes != 10 || r.StemWidth != 4 || c.Kind() != "resnet" {
		t.Fatalf("read %+v from the first format", c)
	}
	want := `{"name":"tiny","kind":"resnet","config":{"block":"basic","layers":[1,1],"widths":[4,8],"stem":"cifar","stem_width":4,"ordering":"a","shortcut":"B","classes":10,"in_channels":1}}`
	if got, err := c.Marshal(); err != nil || got != want {
		t.Errorf("stored as\n%s (%v)\nwant\n%s", got, err, want)
	}
	u, err := models.Unmarshal(`{"name":"u","unet":{"in_channels":3,"classes":2,"depth":2,"base":4,"valid":false,"batch_norm":true},"resnet":null,"mlp":null}`)
	if err != nil || !u.Dense() || u.Classes() != 2 || u.InChannels() != 3 {
		t.Errorf("first-format U-Net read as %+v, %v", u, err)
	}
	for _, bad := range []string{
		`{"name":"x","resnet":{},"unet":{}}`,
		`{"name":"x"}`,
		`{"name":"x","kind":"transformer","config":{}}`,
		`{"name":"x","kind":"unet"}`,
		`{"name":"x","kind":"unet","config":[1]}`,
	} {
		if _, err := models.Unmarshal(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// Hostile or nonsensical configs are refused by Build with an error naming
// the field, before anything is allocated.
func TestValidateRefusesHostileConfigs(t *testing.T) {
	cases := map[string]struct {
		change func(models.Config)
		want   string
	}{
		"resnet classes":  {func(c models.Config) { c.SetClasses(1 << 30) }, "classes"},
		"resnet negative": {func(c models.Config) { c.SetClasses(-1) }, "classes"},
		"resnet channels": {func(c models.Config) { c.SetInChannels(0) }, "in_channels"},
		"resnet depth":    {func(c models.Config) { c.Arch.(*models.ResNet).Layers[0] = 1 << 20 }, "layers[0]"},
		"resnet width":    {func(c models.Config) { c.Arch.(*models.ResNet).Widths[2] = 1 << 15 }, "parameters"},
		"resnet eps":      {func(c models.Config) { c.Arch.(*models.ResNet).BNEps = math.NaN() }, "bn_eps"},
	}
	for name, tc := range cases {
		c, _ := models.Preset("resnet20")
		tc.change(c)
		_, err := models.Build(c, tensor.NewRNG(1))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v does not name %q", name, err, tc.want)
		}
	}
	u, _ := models.Preset("unet")
	u.Arch.(*models.UNet).Depth = 40
	if _, err := models.Build(u, tensor.NewRNG(1)); err == nil || !strings.Contains(err.Error(), "depth") {
		t.Errorf("U-Net of depth 40: %v", err)
	}
	u, _ = models.Preset("unet")
	u.Arch.(*models.UNet).Base = 1 << 13
	if _, err := models.Build(u, tensor.NewRNG(1)); err == nil || !strings.Contains(err.Error(), "limits.Channels") {
		t.Errorf("U-Net of base 8192: %v", err)
	}
	m, _ := models.Preset("resmlp")
	m.Arch.(*models.MLP).Width = 1 << 16
	if _, err := models.Build(m, tensor.NewRNG(1)); err == nil || !strings.Contains(err.Error(), "parameters") {
		t.Errorf("MLP of width 65536 and depth 50: %v", err)
	}
	// Every preset passes, the largest (ResNet-1202, ResNet-152) included.
	for _, name := range models.Names() {
		c, _ := models.Preset(name)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCloneSharesNothing(t *testing.T) {
	a, _ := models.Preset("resnet20")
	b, err := a.Clone()
	if err != nil {
		t.Fatal(err)
	}
	b.SetClasses(3)
	b.Arch.(*models.ResNet).Layers[0] = 1
	if a.Classes() != 10 || a.Arch.(*models.ResNet).Layers[0] != 3 {
		t.Errorf("changing a clone changed the original: %+v", a.Arch)
	}
	a.Arch.(*models.ResNet).BNEps = math.NaN()
	if _, err := a.Clone(); err == nil {
		t.Error("a NaN field cloned without error")
	}
}

// ParamEstimate is the built network's parameter count exactly, for
// every family: the presets (resnet8 was estimated 3.8% over, option A's
// shortcuts counted as projections and a batch norm before every
// classifier; the U-Nets 0.04% over, a convolution's bias and its batch
// norm counted both), small ResNets of every block, ordering, shortcut
// option and stem, plain or not, with widths that grow and that drop, and
// MLPs and U-Nets with and without batch norms.
func TestParamEstimate(t *testing.T) {
	exact := func(c models.Config, what string) {
		t.Helper()
		m, err := models.Build(c, tensor.NewRNG(1))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got, est := float64(nn.NumParams(m)), c.Arch.ParamEstimate(); est != got {
			t.Errorf("%s: estimate %.0f, built %.0f parameters (%+.2f%%)", what, est, got, 100*(est/got-1))
		}
	}
	names := []string{"resnet8", "plain8", "resnet14", "resnet20", "resnet56", "plain20", "preact-resnet110", "preact-resnet164", "resnet18", "resnet50", "resnet50-v1", "unet", "unet-padded", "resmlp"}
	if testing.Short() {
		names = []string{"resnet8", "plain8", "resnet20", "preact-resnet164", "unet-padded", "resmlp"}
	}
	for _, name := range names {
		c, err := models.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		exact(c, name)
	}
	orderings := []resnet.Ordering{resnet.PostActivation, resnet.BNAfterAdd, resnet.ReLUBeforeAdd, resnet.ReLUOnlyPreAct, resnet.PreActivation}
	for _, block := range []string{"basic", "bottleneck"} {
		for _, o := range orderings {
			if block == "bottleneck" && o != resnet.PostActivation && o != resnet.PreActivation {
				continue // resnet.Config.Validate: bottlenecks come post- or pre-activated
			}
			for _, sc := range []resnet.Shortcut{resnet.ShortcutA, resnet.ShortcutB, resnet.ShortcutC} {
				for _, stem := range []string{"cifar", "imagenet"} {
					for _, plain := range []bool{false, true} {
						// Widths 4 → 8 grow; 8 → 2 drop (option A then
						// projects).
						for _, widths := range [][]int{{4, 8}, {8, 2}} {
							rc := resnet.Config{Block: block, Layers: []int{2, 2}, Widths: widths, Stem: stem, StemWidth: 6, Ordering: o,
								Shortcut: sc, Plain: plain, Classes: 3, InChannels: 2}
							exact(models.Config{Name: "resnet", Arch: &models.ResNet{Config: rc}}, fmt.Sprintf("%+v", rc))
						}
					}
				}
			}
		}
	}
	// MLPs with and without batch norms, narrow and deep: those without
	// were estimated 1.12–1.4 times their size (a batch norm counted in
	// every block), and checkpoint.Write refused them.
	for _, bn := range []bool{false, true} {
		for _, mc := range []mlp.Config{{In: 3, Out: 2, Width: 4, Depth: 100, Skip: true}, {In: 2, Out: 3, Width: 16, Depth: 20, Skip: true}} {
			mc.BatchNorm = bn
			exact(models.Config{Name: "mlp", Arch: &models.MLP{Config: mc}}, fmt.Sprintf("%+v", mc))
		}
		for _, valid := range []bool{false, true} {
			uc := unet.Config{InChannels: 2, Classes: 3, Depth: 2, Base: 4, Valid: valid, BatchNorm: bn}
			exact(models.Config{Name: "unet", Arch: &models.UNet{Config: uc}}, fmt.Sprintf("%+v", uc))
		}
	}
}

// The families' constructors, called directly rather than through Build,
// refuse a nil RNG with an error as Build does (they panicked in the first
// layer's initialisation).
func TestFamilyNewNilRNG(t *testing.T) {
	rc, err := resnet.Preset("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	for name, build := range map[string]func() error{
		"resnet": func() error { _, err := resnet.New(rc, nil); return err },
		"unet":   func() error { _, err := unet.New(unet.Padded(), nil); return err },
		"mlp":    func() error { _, err := mlp.New(mlp.Config{In: 2, Out: 2, Width: 4, Depth: 1}, nil); return err },
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s.New(c, nil) panicked: %v", name, r)
				}
			}()
			if err := build(); err == nil || !strings.Contains(err.Error(), "no RNG") {
				t.Errorf("%s.New(c, nil): error %v, want one saying there is no RNG", name, err)
			}
		}()
	}
}
