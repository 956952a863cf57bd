package transform_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/residual-nn/residual/data/transform"
)

// TestNormaliseMatchesTorchvision compares Normalisation with torchvision's
// F.normalize(F.to_tensor(img), mean, std) on windows of the fixture photos
// (testdata/pil/gen_tensor_transforms.py): ImageNet's statistics on RGB,
// MNIST's on grey.
//
// Tolerance, derived: torchvision computes a = p/255, a − m and the
// quotient by s in float32 (three roundings of relative error ≤ 2⁻²⁴),
// from m and s rounded to float32 (2⁻²⁴ each), so its value q differs from
// the exact (p/255 − mean)/std by at most about 2⁻²⁴·((a + |mean|)/std +
// 3|q|): the subtraction's operands carry their errors into a difference
// that may be much smaller than they are. Normalisation rounds the float64
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
		img := mustLoad(t, filepath.Join(pilDir, "resize", c.Input))
		ch := len(c.Mean)
		b := img.Bounds()
		pix := transform.Crop(transform.Pixels(img, ch), b.Dy(), b.Dx(), ch, c.Top, c.Left, c.Height, c.Width)
		got, err := transform.Normalisation{Mean: c.Mean, Std: c.Std}.Tensor(pix, c.Height, c.Width, ch)
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

// TestNormalisation: Normalisation computes (p/255 − mean)/std per
// channel, or with Caffe's BGR and Scale255 (p − mean)/std in the reversed
// order, and refuses pixels of another count than the shape's and means
// or standard deviations of another count than the channels, naming what
// it got.
func TestNormalisation(t *testing.T) {
	pix := []uint8{0, 51, 255, 102}
	for _, c := range []struct {
		n    transform.Normalisation
		want []float32
	}{
		{transform.Normalisation{Mean: []float64{0, 0.5}, Std: []float64{1, 0.25}}, []float32{0, float32((0.2 - 0.5) / 0.25), 1, float32((0.4 - 0.5) / 0.25)}},
		{transform.Normalisation{}, []float32{0, 0.2, 1, 0.4}},
		{transform.Normalisation{Mean: []float64{}, Std: []float64{}}, []float32{0, 0.2, 1, 0.4}}, // empty, as nil: none
		// BGR: image channel 0 goes to model channel 1, whose mean and std
		// these are.
		{transform.Normalisation{Mean: []float64{100, 10}, Std: []float64{2, 5}, BGR: true, Scale255: true}, []float32{(51 - 100) / 2., (0 - 10) / 5., (102 - 100) / 2., (255 - 10) / 5.}},
	} {
		got, err := c.n.Tensor(pix, 1, 2, 2)
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.want {
			if d := got.Data[i] - c.want[i]; d > 1e-6 || d < -1e-6 {
				t.Errorf("%+v: element %d: %v, want %v", c.n, i, got.Data[i], c.want[i])
			}
		}
	}
	for _, tc := range []struct {
		pix       []uint8
		h, w, c   int
		mean, std []float64
		msg       string
	}{
		{pix, 2, 2, 2, nil, nil, "4 pixel values as a 2×2×2 image"},
		{pix, 1, 2, 2, []float64{0.5}, nil, "Mean takes one value per channel (2), not 1"},
		{pix, 1, 2, 2, nil, []float64{1, 1, 1}, "Std takes one value per channel (2), not 3"},
		{pix, 0, 4, 1, nil, nil, "a 0×4 image"},
		{pix, 1 << 20, 1 << 20, 1 << 20, nil, nil, "sides 1.."},
		{pix, 1, 2, 2, nil, []float64{1, 0}, "Std[1] = 0 (want a finite float32 of at least 2^-126)"},
		{pix, 1, 2, 2, nil, []float64{1, math.NaN()}, "Std[1] = NaN"},
		{pix, 1, 2, 2, []float64{1e300, 0}, nil, "Mean[0] = 1e+300 (want a finite float32)"},
	} {
		if _, err := (transform.Normalisation{Mean: tc.mean, Std: tc.std}).Tensor(tc.pix, tc.h, tc.w, tc.c); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Tensor(%d values, %d×%d×%d, %d means, %d stds): %v; want an error with %q", len(tc.pix), tc.h, tc.w, tc.c, len(tc.mean), len(tc.std), err, tc.msg)
		}
	}
}
