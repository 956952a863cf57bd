// Package transform holds torchvision's image transforms on 8-bit NHWC
// pixels, computed as PIL and torchvision compute them (byte for byte):
// the conversion of a decoded image to grey or RGB pixels (PIL's convert),
// PIL's antialiased bilinear resize, crops, Resize(shorter side) followed
// by CenterCrop for evaluation, and RandomResizedCrop for training. Package
// data applies them to data sets, package infer to a program's images; it
// imports neither, so a program that only infers links no data set.
package transform

import (
	"fmt"
	"math"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// ResizeAA resizes 8-bit h×w×c pixels to oh×ow as PIL's
// Image.resize(size, Image.BILINEAR) does, and so torchvision's Resize and
// RandomResizedCrop on PIL images: a triangle filter whose support grows
// with the shrinking factor (antialiased when shrinking, plain bilinear
// when enlarging), applied horizontally then vertically. It is PIL's
// algorithm in PIL's arithmetic (coefficients computed in float64, then
// summed in fixed point with 22 fractional bits, each pass rounded to 8
// bits), so the output equals PIL's byte for byte. The output size is
// checked against limits.CheckImage first.
func ResizeAA(pix []uint8, h, w, c, oh, ow int) ([]uint8, error) {
	if err := limits.CheckImage("data: resize output", ow, oh); err != nil {
		return nil, err
	}
	if len(pix) != h*w*c || h < 1 || w < 1 {
		return nil, fmt.Errorf("data: resize of %d values as %d×%d×%d pixels", len(pix), h, w, c)
	}
	if ow != w {
		pix = resamplePass(pix, h, w, c, ow, true)
	}
	if oh != h {
		pix = resamplePass(pix, h, ow, c, oh, false)
	}
	return pix, nil
}

// precisionBits are the fractional bits of PIL's fixed-point coefficients
// for 8-bit images (PRECISION_BITS = 32 − 8 − 2).
const precisionBits = 22

// filterCoeffs returns, for each of out positions resampling in positions,
// the first input index and the weights in fixed point: PIL's
// precompute_coeffs for the bilinear filter (support 1) and
// normalize_coeffs_8bpc.
func filterCoeffs(in, out int) (first []int, weights [][]int32) {
	scale := float64(in) / float64(out)
	filterScale := max(scale, 1)
	support := filterScale // the bilinear filter's support (1) times the scale
	ss := 1 / filterScale
	first, weights = make([]int, out), make([][]int32, out)
	k := make([]float64, 0, int(math.Ceil(support))*2+1)
	for o := range out {
		center := (float64(o) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		k, sum := k[:0], 0.0
		for x := lo; x < hi; x++ {
			t := math.Abs((float64(x) - center + 0.5) * ss)
			v := 0.0
			if t < 1 {
				v = 1 - t
			}
			k = append(k, v)
			sum += v
		}
		ws := make([]int32, len(k))
		for i, v := range k {
			if sum != 0 {
				v /= sum
			}
			if v < 0 {
				ws[i] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				ws[i] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		first[o], weights[o] = lo, ws
	}
	return first, weights
}

// resamplePass resamples h×w×c pixels along x (horizontal) to n columns,
// or along y to n rows.
func resamplePass(pix []uint8, h, w, c, n int, horizontal bool) []uint8 {
	in := h
	if horizontal {
		in = w
	}
	first, weights := filterCoeffs(in, n)
	var out []uint8
	if horizontal {
		out = make([]uint8, h*n*c)
		for y := 0; y < h; y++ {
			row := pix[y*w*c : (y+1)*w*c]
			for o := range n {
				ws, x0 := weights[o], first[o]
				for ch := 0; ch < c; ch++ {
					s := int32(1 << (precisionBits - 1))
					for i, wt := range ws {
						s += int32(row[(x0+i)*c+ch]) * wt
					}
					out[(y*n+o)*c+ch] = clip8(s)
				}
			}
		}
		return out
	}
	out = make([]uint8, n*w*c)
	acc := make([]int32, w*c)
	for o := range n {
		for j := range acc {
			acc[j] = 1 << (precisionBits - 1)
		}
		for i, wt := range weights[o] {
			src := pix[(first[o]+i)*w*c : (first[o]+i+1)*w*c]
			for j, v := range src {
				acc[j] += int32(v) * wt
			}
		}
		dst := out[o*w*c : (o+1)*w*c]
		for j, s := range acc {
			dst[j] = clip8(s)
		}
	}
	return out
}

// clip8 is PIL's: the fixed-point sum (with its half already added)
// truncated to 8 bits and clamped to 0…255.
func clip8(s int32) uint8 {
	switch {
	case s >= 256<<precisionBits:
		return 255
	case s <= 0:
		return 0
	}
	return uint8(s >> precisionBits)
}

// Crop returns the ch×cw window of h×w×c pixels whose top-left corner is
// (top, left); the parts of the window outside the image are zeros (as
// torchvision pads a centre crop larger than the image).
func Crop(pix []uint8, h, w, c, top, left, ch, cw int) []uint8 {
	out := make([]uint8, ch*cw*c)
	for y := 0; y < ch; y++ {
		sy := top + y
		if sy < 0 || sy >= h {
			continue
		}
		x0, x1 := max(0, -left), min(cw, w-left)
		if x0 >= x1 {
			continue
		}
		copy(out[(y*cw+x0)*c:(y*cw+x1)*c], pix[(sy*w+left+x0)*c:(sy*w+left+x1)*c])
	}
	return out
}

// CenterCrop is torchvision's CenterCrop((ch, cw)): the window centred
// with Python's round (halves to even) of (h−ch)/2 and (w−cw)/2, padded
// with zeros where it is larger than the image.
func CenterCrop(pix []uint8, h, w, c, ch, cw int) []uint8 {
	if ch == h && cw == w {
		return pix
	}
	top, left := centreOffset(h, ch), centreOffset(w, cw)
	return Crop(pix, h, w, c, top, left, ch, cw)
}

// centreOffset is torchvision's offset of a centred crop of n out of size
// (negative when padding: −⌊(n − size)/2⌋ first, then centred).
func centreOffset(size, n int) int {
	if n > size { // padded by ⌊(n − size)/2⌋ before, the rest after: then the crop is the whole
		return -(n - size) / 2
	}
	return int(math.RoundToEven(float64(size-n) / 2))
}

// ShorterSide returns the size torchvision's Resize(shorter) gives an
// h×w image: the shorter side becomes shorter, the other
// int(shorter·long/short) (truncated, computed in float64 as Python does).
func ShorterSide(h, w, shorter int) (oh, ow int) {
	if h <= w {
		return shorter, int(float64(shorter) * float64(w) / float64(h))
	}
	return int(float64(shorter) * float64(h) / float64(w)), shorter
}

// EvalTransform is torchvision's evaluation transform on 8-bit h×w×c
// pixels: Resize(shorter) (the shorter side to shorter, antialiased, see
// ResizeAA) then CenterCrop((oh, ow)); with shorter 0 the image is resized
// to oh×ow directly. Sizes beyond limits.CheckImage are refused, so a
// 60,000×1 image is an error, not a 15-gigapixel allocation.
func EvalTransform(pix []uint8, h, w, c, shorter, oh, ow int) ([]uint8, error) {
	if err := limits.CheckImage("data: transform output", ow, oh); err != nil {
		return nil, err
	}
	if shorter <= 0 {
		if oh == h && ow == w {
			return pix, nil
		}
		return ResizeAA(pix, h, w, c, oh, ow)
	}
	rh, rw := ShorterSide(h, w, shorter)
	if rh < 1 || rw < 1 {
		return nil, fmt.Errorf("data: a %d×%d image resized to a shorter side of %d is empty", w, h, shorter)
	}
	r, err := ResizeAA(pix, h, w, c, rh, rw)
	if err != nil {
		return nil, err
	}
	return CenterCrop(r, rh, rw, c, oh, ow), nil
}

// EvalResize is the shorter side that the evaluation transform of square
// images of side size resizes to: timm's and torchvision's size/0.875
// (⌊8·size/7⌋: 256 for 224).
func EvalResize(size int) int { return 8 * size / 7 }

// Area and aspect-ratio ranges of torchvision's RandomResizedCrop.
const (
	CropScaleMin = 0.08
	CropScaleMax = 1.0
	CropRatioMin = 3.0 / 4
	CropRatioMax = 4.0 / 3
)

// RandomCrop returns the window torchvision's
// RandomResizedCrop.get_params(scale=(0.08, 1), ratio=(3/4, 4/3)) picks in
// an h×w image: up to 10 tries of an area fraction uniform in the scale
// range and an aspect ratio (width/height) log-uniform in the ratio range,
// the first that fits placed uniformly; failing those, the largest centred
// window whose ratio is within range.
func RandomCrop(rng *tensor.RNG, h, w int) (top, left, ch, cw int) {
	area := float64(h) * float64(w)
	lo, hi := math.Log(CropRatioMin), math.Log(CropRatioMax)
	for range 10 {
		target := area * rng.Uniform(CropScaleMin, CropScaleMax)
		ratio := math.Exp(rng.Uniform(lo, hi))
		cw = int(math.RoundToEven(math.Sqrt(target * ratio)))
		ch = int(math.RoundToEven(math.Sqrt(target / ratio)))
		if 0 < cw && cw <= w && 0 < ch && ch <= h {
			top = rng.IntN(h - ch + 1)
			left = rng.IntN(w - cw + 1)
			return top, left, ch, cw
		}
	}
	switch in := float64(w) / float64(h); {
	case in < CropRatioMin:
		cw = w
		ch = int(math.RoundToEven(float64(cw) / CropRatioMin))
	case in > CropRatioMax:
		ch = h
		cw = int(math.RoundToEven(float64(ch) * CropRatioMax))
	default:
		ch, cw = h, w
	}
	return (h - ch) / 2, (w - cw) / 2, ch, cw
}

// RandomResizedCrop is torchvision's RandomResizedCrop((oh, ow)) on 8-bit
// h×w×c pixels: the RandomCrop window, resized to oh×ow with ResizeAA.
func RandomResizedCrop(rng *tensor.RNG, pix []uint8, h, w, c, oh, ow int) ([]uint8, error) {
	if len(pix) != h*w*c || h < 1 || w < 1 || c < 1 {
		return nil, fmt.Errorf("data: random resized crop of %d values as %d×%d×%d pixels", len(pix), h, w, c)
	}
	top, left, ch, cw := RandomCrop(rng, h, w)
	return ResizeAA(Crop(pix, h, w, c, top, left, ch, cw), ch, cw, c, oh, ow)
}

// Resize scales an 8-bit NHWC image of h×w×c to oh×ow by bilinear
// interpolation without antialiasing (pixel centres aligned, as
// torchvision's tensor resize with antialias=False does, rounding values
// halfway between two bytes to the even one, as its torch.round does);
// the canvases and predictions on images of another size use it.
// ResizeAA is PIL's antialiased resize. Like it, it returns an error for
// pixels that are not h×w×c or an output outside limits.CheckImage.
func Resize(pix []uint8, h, w, c, oh, ow int) ([]uint8, error) {
	if err := limits.CheckImage("data: resize output", ow, oh); err != nil {
		return nil, err
	}
	if len(pix) != h*w*c || h < 1 || w < 1 || c < 1 {
		return nil, fmt.Errorf("data: resize of %d values as %d×%d×%d pixels", len(pix), h, w, c)
	}
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
				out[(y*ow+x)*c+ch] = uint8(min(max(math.RoundToEven(v), 0), 255))
			}
		}
	}
	return out, nil
}
