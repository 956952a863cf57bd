package models

import (
	"fmt"
	"math"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// Configs a checkpoint could carry that describe a hostile network are
// refused by Build, naming the limit, before anything is allocated.
func TestHostileConfigs(t *testing.T) {
	cases := map[string]string{
		`{"name":"x","resnet":{"block":"basic","layers":[2,2],"widths":[64,4000000],"stem":"cifar","stem_width":16,"ordering":"post","shortcut":"B","classes":10,"in_channels":3}}`:                          "limits.Channels",
		`{"name":"x","resnet":{"block":"basic","layers":[100000],"widths":[16],"stem":"cifar","stem_width":16,"ordering":"post","shortcut":"B","classes":10,"in_channels":3}}`:                               "limits.Layers",
		`{"name":"x","resnet":{"block":"basic","layers":[1],"widths":[16],"stem":"cifar","stem_width":16,"ordering":"post","shortcut":"B","classes":100000000,"in_channels":3}}`:                             "limits.Classes",
		`{"name":"x","resnet":{"block":"bottleneck","layers":[3,4,6,3],"widths":[16384,16384,16384,16384],"stem":"imagenet","stem_width":64,"ordering":"post","shortcut":"B","classes":10,"in_channels":3}}`: "limits.TotalBytes",
		`{"name":"x","resnet":{"block":"basic","layers":[2000,2000,2000,2000],"widths":[2048,2048,2048,2048],"stem":"cifar","stem_width":16,"ordering":"post","shortcut":"B","classes":10,"in_channels":3}}`: "limits.TotalBytes",
		`{"name":"x","resnet":{"block":"basic","layers":[1],"widths":[16],"stem":"cifar","stem_width":16,"ordering":"post","shortcut":"B","classes":10,"in_channels":3,"bn_eps":-1}}`:                        "bn_eps -1",
		`{"name":"x","resnet":{"block":"basic","layers":[1],"widths":[-16],"stem":"cifar","stem_width":16,"ordering":"post","shortcut":"B","classes":10,"in_channels":3}}`:                                   "widths[0] -16",
		`{"name":"x","unet":{"in_channels":1,"classes":2,"depth":40,"base":64}}`:                                                                                                                             "depth 40",
		`{"name":"x","unet":{"in_channels":1,"classes":2,"depth":0,"base":64}}`:                                                                                                                              "depth 0",
		`{"name":"x","mlp":{"In":1,"Out":1,"Width":10000,"Depth":14000}}`:                                                                                                                                    "limits.TotalBytes",
		`{"name":"x","mlp":{"In":1,"Out":1,"Width":10,"Depth":1000000}}`:                                                                                                                                     "limits.Layers",
	}
	// Sums and doublings past an int: the largest int, and half of it plus
	// one. They are 2⁶³−1 and 2⁶² on a 64-bit platform; on a 32-bit one an
	// int holds no more than 2³¹−1, and a config with those 64-bit
	// numbers is refused while it is read, naming the field.
	cases[fmt.Sprintf(`{"name":"x","resnet":{"block":"basic","layers":[%d,%d],"widths":[16,16],"stem":"cifar","stem_width":16,"ordering":"post","shortcut":"B","classes":10,"in_channels":3}}`, math.MaxInt, math.MaxInt)] = "limits.Layers"
	cases[fmt.Sprintf(`{"name":"x","unet":{"in_channels":1,"classes":2,"depth":1,"base":%d}}`, math.MaxInt/2+1)] = "limits.Channels"
	if math.MaxInt < 1<<62 {
		for js, field := range map[string]string{
			`{"name":"x","resnet":{"block":"basic","layers":[9223372036854775807],"widths":[16],"stem":"cifar","stem_width":16,"ordering":"post","shortcut":"B","classes":10,"in_channels":3}}`: "number 9223372036854775807 into Go struct field ResNet.Config.layers of type int",
			`{"name":"x","unet":{"in_channels":1,"classes":2,"depth":1,"base":4611686018427387904}}`:                                                                                            "number 4611686018427387904 into Go struct field UNet.Config.base of type int",
		} {
			if _, err := Unmarshal(js); err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("%s on a 32-bit platform: got %v, want an error containing %q", js, err, field)
			}
		}
	}
	// Configs that name two networks or none are refused while reading.
	for _, js := range []string{`{"name":"x","mlp":{"In":1,"Out":1,"Width":10,"Depth":1},"unet":{"in_channels":1,"classes":2,"depth":1,"base":4}}`, `{"name":"x"}`} {
		if _, err := Unmarshal(js); err == nil {
			t.Errorf("%s: read without error", js)
		}
	}
	for js, want := range cases {
		c, err := Unmarshal(js)
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = Build(c, tensor.NewRNG(1))
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", js, err, want)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
			t.Errorf("%s: allocated %d MB before refusing", js, d>>20)
		}
	}
}

var errPrefix = regexp.MustCompile(`^(models|resnet|unet|mlp): `)

// FuzzConfig reads a model config as a checkpoint's metadata holds it:
// whatever Unmarshal accepts must Marshal to a config that reads back
// and marshals to the same text (a checkpoint rewritten keeps its model),
// and whatever Validate accepts and is small must build without a panic.
func FuzzConfig(f *testing.F) {
	for _, name := range []string{"resnet20", "resnet18", "unet", "resmlp", "preact-resnet164"} {
		c, _ := Preset(name)
		s, err := c.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
	}
	f.Add(`{"name":"x","resnet":{"block":"bottleneck","layers":[1,1],"widths":[2,3],"stem":"cifar","stem_width":1,"ordering":"preact","shortcut":"A","classes":1,"in_channels":1}}`)
	f.Add(`{"name":"x","unet":{"in_channels":1,"classes":2,"depth":2,"base":2,"valid":true}}`)
	f.Add(`{"name":"x","mlp":{"In":3,"Out":2,"Width":4,"Depth":2,"Skip":true,"Init":"glorot"}}`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Unmarshal(s)
		if err != nil {
			return
		}
		m, err := c.Marshal()
		if err != nil {
			t.Fatalf("%s reads but does not marshal: %v", s, err)
		}
		again, err := Unmarshal(m)
		if err != nil {
			t.Fatalf("%s marshals as %s, which does not read back: %v", s, m, err)
		}
		if m2, err := again.Marshal(); err != nil || m2 != m {
			t.Fatalf("%s marshals as %s, then as %s (%v)", s, m, m2, err)
		}
		if c.Validate() != nil || c.Arch.ParamEstimate() > 2e5 {
			return
		}
		if _, err := Build(c, tensor.NewRNG(1)); err != nil && !errPrefix.MatchString(err.Error()) {
			t.Fatalf("error %q does not say where it comes from", err)
		}
	})
}

// Validate accepts every model of the zoo.
func TestValidateAcceptsThePresets(t *testing.T) {
	for _, name := range Names() {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A resnetN or plainN deeper than limits.Layers allows is refused by
// Preset in the name's terms (its depth 6n+2, not the config's
// layers[0], which the user of a name never wrote), whether an int holds
// its depth or not, on every platform; one that is not 6n+2, or is
// negative, is unknown, as a small one would be.
func TestPresetDepthPastInt(t *testing.T) {
	for name, n := range map[string]string{
		"resnet98312":                "16385",                // one block a stage past the limit
		"plain6000002":               "1000000",              // an int holds it everywhere
		"resnet999999999999999992":   "166666666666666665",   // past a 32-bit int
		"plain99999999999999999992":  "16666666666666666665", // past a 64-bit int too
		"resnet27670116110564327426": "4611686018427387904",  // N past an int64, n = 2⁶² is not
	} {
		want := fmt.Sprintf("models: %s is too deep: its depth 6n+2 gives n = %s blocks a stage, over the %d that limits.Layers allows", name, n, limits.Layers)
		if _, err := Preset(name); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %s", name, err, want)
		}
	}
	for _, name := range []string{"resnet99999999999999999993", "plain-99999999999999999992", "resnet99999999999999999992x"} {
		if _, err := Preset(name); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("unknown model %q", name)) {
			t.Errorf("%s: got %v, want it unknown", name, err)
		}
	}
}
