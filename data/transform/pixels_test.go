package transform_test

import (
	"path/filepath"
	"testing"

	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/internal/fixture"
)

// TestPixelsDropsAlphaAsPIL converts images with transparency (RGBA with
// an alpha ramp down to 0, grey with alpha, a palette with a transparent
// entry; testdata/pil/gen_fixtures.py) to RGB and to grey and compares
// them with PIL's convert("RGB") and convert("L"), which drop alpha rather
// than blend it: exactly, as both are integer conversions of the same
// bytes. (infer converted through color.Color's premultiplied RGBA,
// darkening translucent pixels by up to 208 levels.)
func TestPixelsDropsAlphaAsPIL(t *testing.T) {
	for _, name := range []string{"rgba", "la", "palette"} {
		img := mustLoad(t, filepath.Join(pilDir, "alpha", name+".png"))
		for _, c := range []struct {
			suffix string
			ch     int
		}{{"_rgb", 3}, {"_l", 1}} {
			want := transform.Pixels(mustLoad(t, filepath.Join(pilDir, "alpha", name+c.suffix+".png")), c.ch)
			if worst, n := fixture.ByteDiff(t, transform.Pixels(img, c.ch), want); worst != 0 {
				t.Errorf("%s.png (%T) in %d channels: %d bytes differ from PIL's, by up to %d", name, img, c.ch, n, worst)
			}
		}
	}
}
