package unet

import (
	"fmt"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// Margin returns how many pixels the network loses on each side: (input −
// output)/2, constant for a valid U-Net (92 for the original's 4 levels) and
// 0 for the padded form.
func (c Config) Margin() int {
	if !c.Valid {
		return 0
	}
	// Each level loses 4 px on the way down and 4 on the way up at its
	// scale, the bottom 4 at its scale.
	m, scale := 0, 1
	for d := 0; d < c.Depth; d++ {
		m += 2 * scale // down: two 3×3 valid convs, 1 px each side each
		m += 2 * scale // up, at the same scale
		scale *= 2
	}
	return m + 2*scale
}

// TileFor returns the smallest valid input side whose output is at least
// out pixels, and that output. For the padded form the input equals the
// output and must be a multiple of 2^Depth. It returns 0, 0 when no side
// up to limits.ImageSide serves (a config too deep for any image, which
// Validate refuses).
func (c Config) TileFor(out int) (in, got int) {
	m := c.Margin()
	if m < 0 || m > limits.ImageSide || out > limits.ImageSide {
		return 0, 0
	}
	for in = max(out+2*m, 1); in <= limits.ImageSide; in++ {
		if o, err := c.OutputSize(in); err == nil && o >= out {
			return in, o
		}
	}
	return 0, 0
}

// mirror maps an index of an axis extended on both sides onto [0, n) by
// reflection about the edge pixels (…, 2, 1, 0, 1, 2, …), repeated as often
// as needed.
func mirror(i, n int) int {
	if n == 1 {
		return 0
	}
	p := 2 * (n - 1)
	i %= p
	if i < 0 {
		i += p
	}
	if i >= n {
		i = p - i
	}
	return i
}

// Mirrored returns the image x [1,H,W,C] extended by top, left, bottom and
// right pixels of mirror image: reflected about the edge pixels (numpy.pad's
// "reflect" mode), repeatedly where an extension is wider than the image.
// It panics, naming the shape, on an x that is not one non-empty image and
// on a negative extension.
func Mirrored(x *tensor.Tensor, top, left, bottom, right int) *tensor.Tensor {
	if x.Rank() != 4 || x.Shape[0] != 1 || x.Shape[1] < 1 || x.Shape[2] < 1 || top < 0 || left < 0 || bottom < 0 || right < 0 {
		panic(fmt.Sprintf("unet: Mirrored needs one image [1,H,W,C] and extensions ≥ 0, got %v extended by %d, %d, %d, %d", x.Shape, top, left, bottom, right))
	}
	h, w, c := x.Shape[1], x.Shape[2], x.Shape[3]
	oh, ow := h+top+bottom, w+left+right
	out := tensor.New(1, oh, ow, c)
	for y := 0; y < oh; y++ {
		sy := mirror(y-top, h)
		for xx := 0; xx < ow; xx++ {
			sx := mirror(xx-left, w)
			copy(out.Data[(y*ow+xx)*c:(y*ow+xx+1)*c], x.Data[(sy*w+sx)*c:(sy*w+sx+1)*c])
		}
	}
	return out
}
