package infer

import (
	"strings"
	"testing"
)

// TestOverlayChecksSizes: an overlay of pixels and a mask that do not
// agree with the size is an error naming them (an index out of range
// before), and Palette has a colour for every class number.
func TestOverlayChecksSizes(t *testing.T) {
	pix, mask := make([]uint8, 2*3*3), []uint8{0, 1, 2, 0, 1, 2}
	img, err := Overlay(pix, mask, 2, 3, 3)
	if err != nil || img.Bounds().Dx() != 3 || img.RGBAAt(1, 0) == img.RGBAAt(0, 0) {
		t.Fatalf("overlay: %v", err)
	}
	for _, c := range []struct{ pix, mask, h, w, ch int }{{18, 5, 2, 3, 3}, {17, 6, 2, 3, 3}, {6, 6, 2, 3, 2}, {0, 0, 0, 3, 3}} {
		if _, err := Overlay(make([]uint8, c.pix), make([]uint8, c.mask), c.h, c.w, c.ch); err == nil || !strings.Contains(err.Error(), "infer: overlay of") {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if Palette(-1) != Palette(14) || Palette(0) != Palette(15) || Palette(16) != Palette(1) {
		t.Error("Palette does not repeat its 15 colours over every class number")
	}
}
