package pnm

import (
	"bytes"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/residual-nn/residual/internal/fixture"
)

var dir = filepath.Join("..", "..", "testdata", "pil", "pnm")

// values returns an image's samples as PIL's values: 8-bit grey, RGB
// (alpha must be opaque) or 16-bit grey.
func values(t *testing.T, img image.Image) (kind string, v []int) {
	t.Helper()
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			switch m := img.(type) {
			case *image.Gray:
				kind = "grey"
				v = append(v, int(m.GrayAt(x, y).Y))
			case *image.Gray16:
				kind = "grey16"
				v = append(v, int(m.Gray16At(x, y).Y))
			case *image.RGBA:
				kind = "rgb"
				c := m.RGBAAt(x, y)
				if c.A != 255 {
					t.Fatalf("pixel (%d, %d) has alpha %d", x, y, c.A)
				}
				v = append(v, int(c.R), int(c.G), int(c.B))
			case *image.NRGBA:
				kind = "rgb"
				c := m.NRGBAAt(x, y)
				v = append(v, int(c.R), int(c.G), int(c.B))
			default:
				t.Fatalf("an image of type %T", img)
			}
		}
	}
	return kind, v
}

// TestMatchesPIL decodes every PBM, PGM and PPM fixture — binary and plain,
// maximum values 1 (bitmaps), 15, 100, 255, 1000 and 65535, samples above
// the maximum, a header followed by more whitespace than its separator —
// and compares each sample with PIL's decoding (testdata/pil/
// gen_fixtures.py). Both compute v/maxval·top rounded half to even in
// float64, so they must agree exactly: no tolerance.
func TestMatchesPIL(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dir, "p*.pnm"))
	if err != nil || len(files) < 20 {
		t.Fatalf("fixtures: %d files, %v", len(files), err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, format, err := image.Decode(bytes.NewReader(raw))
		if err != nil || format != "pnm" {
			t.Errorf("%s: %v (format %q)", name, err, format)
			continue
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
		if err != nil || cfg.Width != got.Bounds().Dx() || cfg.Height != got.Bounds().Dy() || cfg.ColorModel != got.ColorModel() {
			t.Errorf("%s: config %+v, %v; the image %v %T", name, cfg, err, got.Bounds(), got)
		}
		want := fixture.PNG(t, strings.TrimSuffix(f, ".pnm")+".png")
		if got.Bounds() != want.Bounds() {
			t.Errorf("%s: %v, PIL %v", name, got.Bounds(), want.Bounds())
			continue
		}
		gk, gv := values(t, got)
		wk, wv := values(t, want)
		if gk != wk {
			t.Errorf("%s: %s samples, PIL's %s", name, gk, wk)
			continue
		}
		for i := range gv {
			if gv[i] != wv[i] {
				t.Errorf("%s: sample %d is %d, PIL's %d", name, i, gv[i], wv[i])
				break
			}
		}
	}
}

// TestRefused: files PIL refuses (gen_fixtures.py checks that it does)
// and other malformed ones are errors naming the problem, before any
// pixel is allocated.
func TestRefused(t *testing.T) {
	cases := map[string]string{
		"bad_truncated.pnm":   "truncated",
		"bad_maxval0.pnm":     "maximum value of 0",
		"bad_maxval70000.pnm": "maximum value of 70000",
		"bad_plain_above.pnm": "above the maximum value 15",
		"bad_long_token.pnm":  "more than 10 digits",
	}
	for file, says := range cases {
		raw, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(bytes.NewReader(raw)); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v; want an error saying %q", file, err, says)
		}
	}
	for in, says := range map[string]string{
		"P5":                                  "unexpected EOF",
		"P5x 1 1 255\n\x00":                   "not whitespace",
		"P5 2 2":                              "maximum value: the file ends before it",
		"P5 -2 2 255\n":                       "'-' is not a digit",
		"P5 0 2 255\n":                        "a size of 0×2",
		"P6 60000 60000 255\n\x00\x00":        "need at least 10800000000 bytes",
		"P4 9 2\n\x00\x00\x00":                "need at least 4 bytes",
		"P1 3 1\n0 2 1":                       `'2' in a plain bitmap`,
		"P1 3 2\n0 1 1 1":                     "truncated: 4 of 6 pixels",
		"P2 2 1 255\n1 x":                     `'x' in a plain file's samples`,
		"P3 1 1 255\n1 2   ":                  "truncated: 2 of 3 samples",
		"P2 1 1 65535\n12345678901 1":         "more than 10 digits",
		"P7\nWIDTH 1\nHEIGHT 1\nENDHDR\n\x00": "not a PBM, PGM or PPM",
	} {
		if _, err := Decode(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%q: %v; want an error saying %q", in, err, says)
		}
	}
}

// TestPlainComments: comments between samples of plain files are skipped,
// as PIL skips them.
func TestPlainComments(t *testing.T) {
	img, err := Decode(strings.NewReader("P2 3 1 255\n1 # one\n2#two\r3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g := img.(*image.Gray).Pix; fmt.Sprint(g) != "[1 2 3]" {
		t.Errorf("pixels %v, want [1 2 3]", g)
	}
	img, err = Decode(strings.NewReader("P1 3 1\n1# c\n01"))
	if err != nil {
		t.Fatal(err)
	}
	if g := img.(*image.Gray).Pix; fmt.Sprint(g) != "[0 255 0]" {
		t.Errorf("pixels %v, want [0 255 0]", g)
	}
}

// FuzzDecode: no input makes the decoder panic, and none makes it
// allocate an image larger than its bytes can fill (at most one pixel a
// bit of the input, a PBM's eight a byte); an image that decodes has the
// size and colour model DecodeConfig reported.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.pnm"))
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err == nil {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := Decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		r := img.Bounds()
		if r.Dx()*r.Dy() > 8*len(b) {
			t.Fatalf("%d×%d pixels from %d bytes", r.Dx(), r.Dy(), len(b))
		}
		cfg, err := DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("decoded %v, but DecodeConfig: %v", r, err)
		}
		if r.Min != (image.Point{}) || r.Dx() != cfg.Width || r.Dy() != cfg.Height || img.ColorModel() != cfg.ColorModel {
			t.Fatalf("decoded %v (%T); DecodeConfig said %d×%d (%v)", r, img, cfg.Width, cfg.Height, cfg.ColorModel)
		}
	})
}

// TestHugeSizeRefused: sizes whose bytes overflow an int64 (2³² × 2³²
// made the bytes needed 0) are an error, not image.NewGray's panic: Decode
// is registered with package image, which checks no size before it.
func TestHugeSizeRefused(t *testing.T) {
	for _, s := range []string{"P5 4294967296 4294967296 255\n", "P6 4294967296 4294967296 255\n", "P4 9999999999 9999999999\n", "P6 2147483647 2147483647 255\n"} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%q: panic %v", s, r)
				}
			}()
			if _, err := Decode(strings.NewReader(s)); err == nil {
				t.Errorf("%q: no error", s)
			}
		}()
	}
}

// TestDecodeMemory: decoding holds the file's data and the image, not a
// third copy of the samples (it held them as a []uint16 as well: 13 bytes
// a pixel of a PPM where 7 are needed, 1.2 GB for the largest image
// package limits allows).
func TestDecodeMemory(t *testing.T) {
	const w, h = 1000, 1000
	for _, c := range []struct {
		head   string
		sample int // bytes a sample in the file
		pixel  int // bytes a pixel: the file's and the image's
	}{{"P6 1000 1000 255\n", 3, 3 + 4}, {"P5 1000 1000 255\n", 1, 1 + 1}, {"P5 1000 1000 1000\n", 2, 2 + 2}} {
		file := append([]byte(c.head), make([]byte, w*h*c.sample)...)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := Decode(bytes.NewReader(file)); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if alloc, limit := after.TotalAlloc-before.TotalAlloc, uint64(w*h*c.pixel+1<<20); alloc > limit {
			t.Errorf("%q: %d bytes allocated, more than the data and the image (%d)", c.head[:2], alloc, limit)
		}
	}
}

// TestErrorGivesNoImage: a file that fails in its samples gives the error
// and no image (a half-filled one came with it).
func TestErrorGivesNoImage(t *testing.T) {
	for _, f := range []string{"P2 2 1 15\n3 16\n", "P3 1 1 255\n1 2 x\n", "P2 2 1 65535\n3 70000\n"} {
		if img, err := Decode(bytes.NewReader([]byte(f))); err == nil || img != nil {
			t.Errorf("%q: %v, image %v", f, err, img)
		}
	}
}
