package transform

import (
	"fmt"
	"image"
	"image/color"
)

// Pixels returns an image's pixels, row by row, as grey (c = 1), RGB
// (c = 3) or RGBA (c = 4) bytes, converted as PIL's Image.convert("L"),
// convert("RGB") and convert("RGBA") do: colours are not premultiplied by
// alpha (alpha is dropped, not blended), grey is ITU-R 601-2 luma (Luma),
// 16-bit values keep their high byte. It panics, naming the argument, for
// a nil image or other channels. Package data and package infer both
// convert images with it, so a model sees the same pixels in training and
// in inference.
func Pixels(img image.Image, c int) []uint8 {
	if img == nil {
		panic("transform: Pixels of a nil image")
	}
	if c != 1 && c != 3 && c != 4 {
		panic(fmt.Sprintf("transform: Pixels in %d channels (1 grey, 3 RGB or 4 RGBA)", c))
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]uint8, w*h*c)
	put := func(i int, r, g, bl, a uint8) {
		switch c {
		case 1:
			out[i] = Luma(r, g, bl)
		case 3:
			out[3*i], out[3*i+1], out[3*i+2] = r, g, bl
		default:
			out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = r, g, bl, a
		}
	}
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				put(y*w+x, v, v, v, 255)
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := 0; x < w; x++ {
				put(y*w+x, row[4*x], row[4*x+1], row[4*x+2], row[4*x+3])
			}
		}
	case *image.RGBA: // what Go's PNG decoder returns for opaque RGB
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := 0; x < w; x++ {
				r, g, bl, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
				if a != 255 {
					r, g, bl, a = rawNRGBA(color.RGBA{r, g, bl, a})
				}
				put(y*w+x, r, g, bl, a)
			}
		}
	case *image.Paletted:
		pal := make([][4]uint8, len(m.Palette))
		for i, c := range m.Palette {
			pal[i][0], pal[i][1], pal[i][2], pal[i][3] = rawNRGBA(c)
		}
		for y := 0; y < h; y++ {
			for x, ci := range m.Pix[y*m.Stride : y*m.Stride+w] {
				var p [4]uint8 // an index outside the palette: black, as image.Paletted.At gives
				if int(ci) < len(pal) {
					p = pal[ci]
				}
				put(y*w+x, p[0], p[1], p[2], p[3])
			}
		}
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi, ci := m.YOffset(b.Min.X+x, b.Min.Y+y), m.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				put(y*w+x, r, g, bl, 255)
			}
		}
	case *image.NYCbCrA: // x/image/webp's lossy image with alpha
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi, ci := m.YOffset(b.Min.X+x, b.Min.Y+y), m.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				put(y*w+x, r, g, bl, m.A[m.AOffset(b.Min.X+x, b.Min.Y+y)])
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				r, g, bl, a := rawNRGBA(img.At(b.Min.X+x, b.Min.Y+y))
				put(y*w+x, r, g, bl, a)
			}
		}
	}
	return out
}

// rawNRGBA returns a colour's 8-bit red, green, blue and alpha, not
// premultiplied: as stored for non-premultiplied colours (no round trip
// through premultiplied values, which would lose the colour of nearly
// transparent pixels), the high bytes of 16-bit ones.
func rawNRGBA(c color.Color) (r, g, b, a uint8) {
	switch c := c.(type) {
	case color.NRGBA:
		return c.R, c.G, c.B, c.A
	case color.NRGBA64:
		return uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8), uint8(c.A >> 8)
	case color.NYCbCrA:
		r, g, b := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
		return r, g, b, c.A
	}
	p := color.NRGBA64Model.Convert(c).(color.NRGBA64)
	return uint8(p.R >> 8), uint8(p.G >> 8), uint8(p.B >> 8), uint8(p.A >> 8)
}

// Luma is the grey of an RGB pixel as PIL's convert("L") computes it
// (ITU-R 601-2): (19595 R + 38470 G + 7471 B + 2¹⁵) / 2¹⁶.
func Luma(r, g, b uint8) uint8 {
	return uint8((19595*uint32(r) + 38470*uint32(g) + 7471*uint32(b) + 1<<15) >> 16)
}
