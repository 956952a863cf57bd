package data

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/residual-nn/residual/data/transform"
)

// TestNormaliseMatchesTorchvision compares Normalise with torchvision's
// F.normalize(F.to_tensor(img), mean, std) on windows of the fixture photos
// (testdata/pil/gen_tensor_transforms.py): ImageNet's statistics on RGB,
// MNIST's on grey.
//
// Tolerance, derived: torchvision computes a = p/255, a − m and the
// quotient by s in float32 (three roundings of relative error ≤ 2⁻²⁴),
// from m and s rounded to float32 (2⁻²⁴ each), so its value q differs from
// the exact (p/255 − mean)/std by at most about 2⁻²⁴·((a + |mean|)/std +
// 3|q|): the subtraction's operands carry their errors into a difference
// that may be much smaller than they are. Normalise rounds the float64
// result once (2⁻²⁴|q|). The test allows 2⁻²³·((a + |mean|)/std + 2|q|),
// above their sum; a wrong scale, a swapped channel or a mean subtracted
// after the division is off by orders of magnitude more.
func TestNormaliseMatchesTorchvision(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(pilDir, "torchvision", "tensor.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Normalise []struct {
			Input                    string
			Top, Left, Height, Width int
			Mean, Std                []float64
			Output                   []float64
		}
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Normalise) < 2 {
		t.Fatalf("tensor.json has %d normalise cases, want 2", len(f.Normalise))
	}
	for _, c := range f.Normalise {
		img, err := LoadImage(filepath.Join(pilDir, "resize", c.Input))
		if err != nil {
			t.Fatal(err)
		}
		ch := len(c.Mean)
		b := img.Bounds()
		pix := transform.Crop(Pixels(img, ch), b.Dy(), b.Dx(), ch, c.Top, c.Left, c.Height, c.Width)
		got, err := Normalise(pix, c.Height, c.Width, ch, c.Mean, c.Std)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Data) != len(c.Output) {
			t.Fatalf("%s: %d values, torchvision %d", c.Input, len(got.Data), len(c.Output))
		}
		for i, want := range c.Output {
			k := i % ch
			a := float64(pix[i]) / 255
			tol := 0x1p-23 * ((a+math.Abs(c.Mean[k]))/c.Std[k] + 2*math.Abs(want))
			if d := math.Abs(float64(got.Data[i]) - float32Of(want)); d > tol {
				t.Errorf("%s value %d (pixel %d, channel %d): %.9g, torchvision %.9g (off by %.3g, tolerance %.3g)", c.Input, i, pix[i], k, got.Data[i], want, d, tol)
			}
		}
	}
}

// float32Of rounds a stored reference value to the float32 it was.
func float32Of(v float64) float64 { return float64(float32(v)) }
