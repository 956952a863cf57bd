package resnet

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// A resnetN or plainN reads its depth N = 6n+2 at any length: an n an
// int holds makes a Config of n blocks a stage (one past limits.Layers
// is models' Validate's to refuse), an n past an int is a *DepthError
// naming it, and a depth that is not 6n+2, or under 8, is no preset.
func TestPresetDepthAnyLength(t *testing.T) {
	for _, c := range []struct {
		name, n string
		fits    bool // an int holds n
	}{
		{"resnet20", "3", true},
		{"plain+20", "3", true}, // strconv.Atoi's sign, kept
		{"resnet999999999999999992", "166666666666666665", strconv.IntSize == 64},    // past a 32-bit int
		{"resnet27670116110564327426", "4611686018427387904", strconv.IntSize == 64}, // N past an int64, n = 2⁶² is not
		{"plain99999999999999999992", "16666666666666666665", false},                 // past a 64-bit int
	} {
		cfg, err := Preset(c.name)
		var deep *DepthError
		switch {
		case c.fits && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.fits && (len(cfg.Layers) != 3 || strconv.Itoa(cfg.Layers[0]) != c.n || cfg.Plain != strings.HasPrefix(c.name, "plain")):
			t.Errorf("%s: layers %v plain %v, want %s blocks a stage", c.name, cfg.Layers, cfg.Plain, c.n)
		case !c.fits && !errors.As(err, &deep):
			t.Errorf("%s: got %v, want a *DepthError", c.name, err)
		case !c.fits && (deep.Name != c.name || deep.Blocks.String() != c.n):
			t.Errorf("%s: DepthError %q, %v blocks; want %s", c.name, deep.Name, deep.Blocks, c.n)
		}
	}
	for _, name := range []string{"resnet2", "resnet99999999999999999993", "plain-99999999999999999992", "resnet99999999999999999992x", "resnet"} {
		_, err := Preset(name)
		if err == nil || !strings.Contains(err.Error(), "no preset") {
			t.Errorf("%s: got %v, want no preset", name, err)
		}
	}
}
