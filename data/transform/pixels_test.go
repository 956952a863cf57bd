package transform_test

import (
	"bytes"
	"image"
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

// A lossy WebP with alpha decodes (golang.org/x/image/webp) to an
// *image.NYCbCrA: its colour is that of its YCbCr planes whatever the
// alpha, as PIL's convert("RGB") keeps a transparent pixel's colour. Going
// through premultiplied values made every fully transparent pixel black.
func TestPixelsNYCbCrAKeepsColour(t *testing.T) {
	img := image.NewNYCbCrA(image.Rect(0, 0, 5, 3), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = uint8(35 + 40*i)
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = uint8(253-60*i), uint8(30*i)
	}
	for i := range img.A {
		img.A[i] = []uint8{0, 1, 128, 255}[i%4]
	}
	want := transform.Pixels(&img.YCbCr, 3)
	for _, c := range []struct {
		name string
		img  image.Image
	}{{"*image.NYCbCrA", img}, {"its colours one by one", struct{ image.Image }{img}}} {
		if got := transform.Pixels(c.img, 3); !bytes.Equal(got, want) {
			t.Errorf("%s: RGB %v; want its YCbCr planes' %v", c.name, got, want)
		}
		rgba := transform.Pixels(c.img, 4)
		for i, a := range img.A {
			if rgba[4*i+3] != a {
				t.Errorf("%s: pixel %d's alpha %d; want %d", c.name, i, rgba[4*i+3], a)
			}
		}
	}
}
