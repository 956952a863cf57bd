package pngheader

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"testing"

	"github.com/residual-nn/residual/internal/fixture"
)

// A header whose size png.DecodeConfig refuses as a dimension overflow
// gives that size; a smaller one, a bad checksum or another error give
// none.
func TestOverflowed(t *testing.T) {
	decode := func(b []byte) (int, int, bool) {
		_, err := png.DecodeConfig(bytes.NewReader(b))
		return Overflowed(b, err)
	}
	if w, h, ok := decode(fixture.PNGWithSize(1<<30, 3<<29)); !ok || w != 1<<30 || h != 3<<29 {
		t.Errorf("2³⁰×3·2²⁹: %d×%d, %v", w, h, ok)
	}
	if _, _, ok := decode(fixture.PNGWithSize(100, 100)); ok {
		t.Error("100×100: an overflow")
	}
	bad := fixture.PNGWithSize(1<<30, 1<<30)
	bad[29] ^= 1
	if _, _, ok := decode(bad); ok {
		t.Error("a bad checksum: an overflow")
	}
	if _, _, ok := Overflowed(fixture.PNGWithSize(1<<30, 1<<30), errors.New("other")); ok {
		t.Error("another error: an overflow")
	}
}

// Read gives what image/png wrote: the size, bit depth and colour type;
// nothing for a bad checksum or a file that is no PNG.
func TestRead(t *testing.T) {
	for _, tc := range []struct {
		img           image.Image
		depth, colour int
	}{
		{image.NewGray(image.Rect(0, 0, 3, 2)), 8, 0},
		{image.NewGray16(image.Rect(0, 0, 3, 2)), 16, 0},
		{image.NewNRGBA(image.Rect(0, 0, 3, 2)), 8, 6}, // transparent: RGBA
	} {
		var b bytes.Buffer
		if err := png.Encode(&b, tc.img); err != nil {
			t.Fatal(err)
		}
		want := Header{Width: 3, Height: 2, Depth: tc.depth, Colour: tc.colour}
		if h, ok := Read(b.Bytes()); !ok || h != want {
			t.Errorf("%T: %+v, %v; want %+v", tc.img, h, ok, want)
		}
		bad := b.Bytes()
		bad[29] ^= 1
		if _, ok := Read(bad); ok {
			t.Errorf("%T with a bad checksum: read", tc.img)
		}
	}
	if _, ok := Read([]byte("GIF89a")); ok {
		t.Error("a GIF: read")
	}
}
