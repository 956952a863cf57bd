package infer

import (
	"fmt"
	"image"
	"image/color"
)

// MaskClasses is how many classes the masks of MaskImage and Overlay
// hold: one byte a pixel, as data.SegFolder reads masks. Mask.Class is
// wider because a U-Net may have up to limits.Classes classes: a
// segmentation of more than MaskClasses needs another encoding.
const MaskClasses = 256

// MaskImage returns a mask (h·w class indices, row by row) as
// an 8-bit grey image of class indices (what data.SegFolder reads); the
// pixels a shorter mask does not reach are 0, the background.
func MaskImage(mask []uint8, h, w int) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	copy(g.Pix, mask)
	return g
}

// Overlay returns an RGB picture of an image (h×w pixels of c = 1 or 3
// channels) with its mask's classes blended in colour (background left
// as is), or an error naming sizes that do not agree.
func Overlay(pix []uint8, mask []uint8, h, w, c int) (*image.RGBA, error) {
	if (c != 1 && c != 3) || h < 1 || w < 1 || len(mask) != h*w || len(pix) != h*w*c {
		return nil, fmt.Errorf("infer: overlay of %d pixel values and %d mask values as %d×%d×%d", len(pix), len(mask), h, w, c)
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for i, m := range mask {
		var r, g, b float64
		if c == 1 {
			r, g, b = float64(pix[i]), float64(pix[i]), float64(pix[i])
		} else {
			r, g, b = float64(pix[3*i]), float64(pix[3*i+1]), float64(pix[3*i+2])
		}
		if m != 0 {
			col := Palette(int(m))
			r = 0.45*r + 0.55*float64(col.R)
			g = 0.45*g + 0.55*float64(col.G)
			b = 0.45*b + 0.55*float64(col.B)
		}
		out.Set(i%w, i/w, color.RGBA{uint8(r), uint8(g), uint8(b), 255})
	}
	return out, nil
}

// Palette returns a distinct colour for class c (c > 0; the 15 colours
// repeat, for any c).
func Palette(c int) color.RGBA {
	cols := []color.RGBA{{230, 25, 75, 255}, {60, 180, 75, 255}, {255, 225, 25, 255}, {0, 130, 200, 255}, {245, 130, 48, 255},
		{145, 30, 180, 255}, {70, 240, 240, 255}, {240, 50, 230, 255}, {210, 245, 60, 255}, {250, 190, 212, 255},
		{0, 128, 128, 255}, {220, 190, 255, 255}, {170, 110, 40, 255}, {128, 0, 0, 255}, {170, 255, 195, 255}}
	n := len(cols)
	return cols[((c-1)%n+n)%n]
}
