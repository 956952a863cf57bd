package data

import (
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers JPEG decoding
	_ "image/png"  // registers PNG decoding
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Folder reads a folder with one sub-folder of PNG/JPEG images per class
// (classes sorted by name). Every image must have the size of the first;
// channels is 1 (grey) or 3 (RGB), images are converted to it.
func Folder(dir string, channels int) (*Dataset, error) {
	if channels != 1 && channels != 3 {
		return nil, fmt.Errorf("data: folder images need 1 or 3 channels, not %d", channels)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	d := &Dataset{C: channels}
	for _, e := range entries {
		if e.IsDir() {
			d.Classes = append(d.Classes, e.Name())
		}
	}
	sort.Strings(d.Classes)
	if len(d.Classes) == 0 {
		return nil, fmt.Errorf("data: %s has no class sub-folders", dir)
	}
	for label, class := range d.Classes {
		files, err := imageFiles(filepath.Join(dir, class))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if err := d.appendImage(filepath.Join(dir, class, f)); err != nil {
				return nil, err
			}
			d.Labels = append(d.Labels, int32(label))
		}
	}
	if d.Len() == 0 {
		return nil, fmt.Errorf("data: no PNG or JPEG images under %s", dir)
	}
	return d, d.Check()
}

// appendImage decodes an image file and appends its pixels, converted to
// d.C channels; the first image sets the size, which every other must have.
func (d *Dataset) appendImage(path string) error {
	img, err := LoadImage(path)
	if err != nil {
		return err
	}
	b := img.Bounds()
	if d.H == 0 {
		d.H, d.W = b.Dy(), b.Dx()
	}
	if b.Dy() != d.H || b.Dx() != d.W {
		return fmt.Errorf("data: %s is %dx%d, the first image was %dx%d", path, b.Dx(), b.Dy(), d.W, d.H)
	}
	d.Pixels = append(d.Pixels, Pixels(img, d.C)...)
	return nil
}

// imageFiles lists the PNG and JPEG files of a folder, sorted by name.
func imageFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	var names []string
	for _, f := range entries {
		ext := strings.ToLower(filepath.Ext(f.Name()))
		if !f.IsDir() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg") {
			names = append(names, f.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// LoadImage decodes a PNG or JPEG file.
func LoadImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	return img, nil
}

// Pixels returns an image's pixels, row by row, as grey (channels 1) or
// RGB (channels 3) bytes.
func Pixels(img image.Image, channels int) []uint8 {
	b := img.Bounds()
	out := make([]uint8, 0, b.Dx()*b.Dy()*channels)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			if channels == 1 {
				out = append(out, color.GrayModel.Convert(c).(color.Gray).Y)
				continue
			}
			r, g, bl, _ := c.RGBA()
			out = append(out, uint8(r>>8), uint8(g>>8), uint8(bl>>8))
		}
	}
	return out
}

// Resize scales an 8-bit NHWC image of h×w×c to oh×ow by bilinear
// interpolation (pixel centres aligned, as PIL and torchvision do).
func Resize(pix []uint8, h, w, c, oh, ow int) []uint8 {
	out := make([]uint8, oh*ow*c)
	sy, sx := float64(h)/float64(oh), float64(w)/float64(ow)
	for y := 0; y < oh; y++ {
		fy := max((float64(y)+0.5)*sy-0.5, 0)
		y0 := min(int(fy), h-1)
		y1 := min(y0+1, h-1)
		wy := fy - float64(y0)
		for x := 0; x < ow; x++ {
			fx := max((float64(x)+0.5)*sx-0.5, 0)
			x0 := min(int(fx), w-1)
			x1 := min(x0+1, w-1)
			wx := fx - float64(x0)
			for ch := 0; ch < c; ch++ {
				at := func(yy, xx int) float64 { return float64(pix[(yy*w+xx)*c+ch]) }
				v := (1-wy)*((1-wx)*at(y0, x0)+wx*at(y0, x1)) + wy*((1-wx)*at(y1, x0)+wx*at(y1, x1))
				out[(y*ow+x)*c+ch] = uint8(min(max(v+0.5, 0), 255))
			}
		}
	}
	return out
}
