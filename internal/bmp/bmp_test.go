package bmp

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/residual-nn/residual/internal/fixture"
)

const dir = "../../testdata/pil/bmp"

// rgb returns an image's pixels as PIL's convert("RGB") gives them: a
// palette's colours, alpha dropped (the colour straight, not blended).
func rgb(img image.Image) []uint8 {
	b := img.Bounds()
	var out []uint8
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if n, ok := img.(*image.NRGBA); ok {
				i := n.PixOffset(x, y)
				out = append(out, n.Pix[i:i+3]...)
				continue
			}
			r, g, bl, _ := img.At(x, y).RGBA()
			out = append(out, uint8(r>>8), uint8(g>>8), uint8(bl>>8))
		}
	}
	return out
}

// TestMatchesPIL decodes the bitmaps of testdata/pil/bmp (gen_fixtures.py
// bmp_fixtures: 16-bit, 32-bit bitfields with and without alpha, RLE8 and
// RLE4 with their quirks, OS/2 headers, short palettes, gaps, top-down,
// and what PIL writes) and compares every byte with PIL's decoding,
// converted to RGB: the tolerance is zero, the arithmetic being PIL's.
func TestMatchesPIL(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dir, "*.bmp"))
	if err != nil || len(files) < 20 {
		t.Fatalf("fixtures: %d files, %v", len(files), err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "bad_") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, format, err := image.Decode(bytes.NewReader(raw))
		if err != nil || format != "bmp" {
			t.Errorf("%s: %v (format %q)", name, err, format)
			continue
		}
		cfg, err := DecodeConfig(bytes.NewReader(raw))
		if err != nil || cfg.Width != got.Bounds().Dx() || cfg.Height != got.Bounds().Dy() {
			t.Errorf("%s: config %+v, %v; the image %v", name, cfg, err, got.Bounds())
		}
		want := fixture.PNG(t, strings.TrimSuffix(f, ".bmp")+".png")
		if got.Bounds() != want.Bounds() {
			t.Errorf("%s: %v, PIL %v", name, got.Bounds(), want.Bounds())
			continue
		}
		g, w := rgb(got), rgb(want)
		for i := range g {
			if g[i] != w[i] {
				t.Errorf("%s: byte %d (pixel %d, channel %d) is %d, PIL's %d", name, i, i/3, i%3, g[i], w[i])
				break
			}
		}
	}
}

// TestRefusedAsPIL: the bitmaps PIL refuses (a 52-byte header, JPEG
// compression, 4-4-4 bitfields, pixels cut short, RLE data that ends
// before the image is filled) are errors here too, and no input panics.
func TestRefusedAsPIL(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dir, "bad_*.bmp"))
	if err != nil || len(files) < 5 {
		t.Fatalf("fixtures: %d files, %v", len(files), err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if img, err := Decode(bytes.NewReader(raw)); err == nil {
			t.Errorf("%s: decoded (%v), PIL refuses it", filepath.Base(f), img.Bounds())
		}
	}
}

// FuzzDecode: no input panics or allocates beyond what its header and
// length allow, and an image that decodes has the size and kind of colour
// model DecodeConfig reported (the callers judge the size from it).
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.bmp"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := DecodeConfig(bytes.NewReader(b))
		if err != nil || cfg.Width*cfg.Height > 1<<20 {
			return // the callers check the size against package limits first
		}
		img, err := Decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		if r := img.Bounds(); r.Min != (image.Point{}) || r.Dx() != cfg.Width || r.Dy() != cfg.Height {
			t.Fatalf("decoded %v; DecodeConfig said %d×%d", r, cfg.Width, cfg.Height)
		}
		_, paletted := img.(*image.Paletted)
		if _, pal := cfg.ColorModel.(color.Palette); pal != paletted {
			t.Fatalf("decoded a %T; DecodeConfig's colour model is a %T", img, cfg.ColorModel)
		}
	})
}

// rleFile returns a 4×3 bitmap of RLE8 or RLE4 data with a 16-colour
// palette whose entry i is (i, 0, 0).
func rleFile(rle4 bool, data []byte) []byte {
	bits, comp := uint16(8), uint32(1)
	if rle4 {
		bits, comp = 4, 2
	}
	le := binary.LittleEndian
	head := make([]byte, 14+40)
	copy(head, "BM")
	le.PutUint32(head[10:], 14+40+64)
	le.PutUint32(head[14:], 40)
	le.PutUint32(head[18:], 4) // width
	le.PutUint32(head[22:], 3) // height, bottom-up
	le.PutUint16(head[26:], 1)
	le.PutUint16(head[28:], bits)
	le.PutUint32(head[30:], comp)
	le.PutUint32(head[46:], 16)
	pal := make([]byte, 64)
	for i := range 16 {
		pal[4*i+2] = uint8(i)
	}
	return append(append(head, pal...), data...)
}

// TestRLEAsTheFormatSays: a delta moves right and up by the two bytes
// after its escape, and an RLE4 absolute run of an odd count n is n
// pixels in (n+1)/2 bytes, then a pad to a 16-bit boundary — the two
// places where PIL 9.4 strays from the format (it reads a delta's offsets
// two bytes late and such a run one byte short, losing its place in the
// data). The expected indices are worked out from the format here.
func TestRLEAsTheFormatSays(t *testing.T) {
	for _, c := range []struct {
		name string
		rle4 bool
		data []byte
		want []uint8 // top row first
	}{
		// Bottom row: 1 1, a delta of 1 right and 1 up; the middle row from
		// x = 3: 2, end of line; the top row: 3 3 3 3.
		{"rle8 delta", false, []byte{2, 1, 0, 2, 1, 1, 1, 2, 0, 0, 4, 3, 0, 1}, []uint8{3, 3, 3, 3, 0, 0, 0, 2, 1, 1, 0, 0}},
		// Bottom row: an absolute run of 3 (5 6 7, in 2 bytes, already on
		// a 16-bit boundary), then a run of 1 (9); the middle row: a run
		// of 3 (a b a) and a run of 1 (c); the top row: an absolute run
		// of 3 (d e f) and a run of 1 (0).
		{"rle4 odd absolute", true, []byte{0, 3, 0x56, 0x70, 1, 0x90, 0, 0, 3, 0xAB, 1, 0xC0, 0, 0, 0, 3, 0xDE, 0xF0, 1, 0}, []uint8{13, 14, 15, 0, 10, 11, 10, 12, 5, 6, 7, 9}},
	} {
		img, err := Decode(bytes.NewReader(rleFile(c.rle4, c.data)))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		p := img.(*image.Paletted)
		var got []uint8
		for y := range 3 {
			got = append(got, p.Pix[y*p.Stride:y*p.Stride+4]...)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: indices %v, want %v", c.name, got, c.want)
		}
	}
}

// TestDeltaBounded: an RLE delta moves at most to the image's end: a
// 66-byte RLE8 file of 16,777,216×1 pixels with one delta of 255 rows
// allocated 4.3 GB (the delta's zeros appended whole).
func TestDeltaBounded(t *testing.T) {
	f := rleFile(false, []byte{0, 2, 0, 255, 0, 1})
	binary.LittleEndian.PutUint32(f[18:], 1<<24) // width
	binary.LittleEndian.PutUint32(f[22:], 1)     // height
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	Decode(bytes.NewReader(f)) // refused or not: what counts is the memory
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("a 16,777,216-pixel RLE8 bitmap of %d bytes allocated %d bytes", len(f), alloc)
	}
}
