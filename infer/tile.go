package infer

import (
	"context"
	"errors"
	"fmt"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// SegmentUNet returns the logits [1,H,W,Classes] of a U-Net for an image
// x [1,H,W,C] of any size.
//
// A valid U-Net runs the overlap-tile strategy of Ronneberger et al. 2015:
// the image is extended by mirroring — by the network's margin on every
// side, and up to a whole number of tiles at the bottom and right — and
// cut into tiles of out×out output pixels (0: the network's smallest tile
// of at least 128), each run with the context the margin supplies; the
// tiles' outputs are stitched and cropped to H×W.
//
// A padded U-Net computes what one pass over the whole image gives (the
// image extended by mirroring at the bottom and right to a multiple of
// 2^Depth, which the network needs): with out 0, in that one pass when
// the image has at most 1024² pixels, else in tiles of 512; with out > 0,
// in tiles of out (rounded up to a multiple of 2^Depth). Each tile runs
// with the context its receptive field reaches where the image extends
// beyond it — the valid form's margin, and 2^Depth more for the pooling
// windows' alignment, rounded up to a multiple of 2^Depth so that the
// pooling grids are the whole pass's — so tiles only bound the memory
// used: the logits equal the one pass's up to the order of float32 sums.
//
// The network should be in evaluation mode. An x that is not one image
// of the network's channels with at least one pixel, or whose values do
// not fill its shape, and a tile side out of [0, limits.ImageSide] (a
// larger one is no image the network could see) are errors.
//
// The convolutions and matrix products run in precision p
// (autograd.Precision: FP32, or BF16's products of bfloat16 operands). It
// stops between tiles when ctx is done, returning its error. It only reads
// the network, so calls may run concurrently on one network.
func SegmentUNet(ctx context.Context, n *unet.Net, x *tensor.Tensor, out int, p ag.Precision) (*tensor.Tensor, error) {
	switch {
	case ctx == nil:
		return nil, errors.New("infer: SegmentUNet: nil context")
	case n == nil:
		return nil, errors.New("infer: SegmentUNet: no network (nil)")
	case x == nil:
		return nil, errors.New("infer: SegmentUNet: no image (nil)")
	case p != ag.FP32 && p != ag.BF16:
		return nil, fmt.Errorf("infer: SegmentUNet: unknown precision ag.Precision(%d) (want ag.FP32 or ag.BF16)", int(p))
	case out < 0 || out > limits.ImageSide:
		// A padded U-Net's tile near MaxInt overflowed its rounding up
		// into a negative input side.
		return nil, fmt.Errorf("infer: SegmentUNet: tiles of %d output pixels: want 0 (the network's default) to %d (limits.ImageSide)", out, limits.ImageSide)
	}
	if x.Rank() != 4 || x.Shape[0] != 1 || x.Shape[1] < 1 || x.Shape[2] < 1 || x.Shape[3] != n.Config.InChannels {
		// An empty image has nothing to mirror (a valid U-Net's extension
		// would panic) and nothing to segment.
		return nil, fmt.Errorf("infer: segmenting needs one image [1,H,W,%d] with H, W ≥ 1, got %v", n.Config.InChannels, x.Shape)
	}
	if err := checkValues(x); err != nil {
		return nil, err
	}
	if !n.Config.Valid {
		return segmentPadded(ctx, n, x, out, p)
	}
	if out == 0 {
		out = 128
	}
	in, t := n.Config.TileFor(out)
	if in == 0 {
		return nil, fmt.Errorf("infer: no U-Net input side up to %d gives tiles of %d pixels", limits.ImageSide, out)
	}
	m := (in - t) / 2
	h, w := x.Shape[1], x.Shape[2]
	ty, tx := (h+t-1)/t, (w+t-1)/t
	// The result, and the image mirrored by the margin around whole tiles.
	whole := int64(h)*int64(w)*int64(n.Config.Classes) + int64(ty*t+2*m)*int64(tx*t+2*m)*int64(x.Shape[3])
	if err := checkTileMemory(n, in, in, 4*whole); err != nil {
		return nil, err
	}
	big := unet.Mirrored(x, m, m, ty*t-h+m, tx*t-w+m)
	k := n.Config.Classes
	res := tensor.New(1, h, w, k)
	tape := ag.NewNoGradTape()
	tape.SetPrecision(p)
	tape.PlanMemory() // each tile's pass reads only the network's output
	tile := tensor.New(1, in, in, x.Shape[3])
	bw, c := big.Shape[2], x.Shape[3]
	for i := 0; i < ty; i++ {
		for j := 0; j < tx; j++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			for y := 0; y < in; y++ {
				src := ((i*t+y)*bw + j*t) * c
				copy(tile.Data[y*in*c:(y+1)*in*c], big.Data[src:src+in*c])
			}
			y := n.Forward(tape.Constant(tile)).Tensor()
			for r := 0; r < t && i*t+r < h; r++ {
				cols := min(t, w-j*t)
				dst := ((i*t+r)*w + j*t) * k
				copy(res.Data[dst:dst+cols*k], y.Data[r*t*k:(r*t+cols)*k])
			}
			tape.Reset()
		}
	}
	return res, nil
}

// segmentPadded is SegmentUNet for the padded form: tiles of out output
// pixels whose windows reach the context of their receptive field, so
// that each tile's kept outputs are the whole image's.
func segmentPadded(ctx context.Context, n *unet.Net, x *tensor.Tensor, out int, p ag.Precision) (*tensor.Tensor, error) {
	a := 1 << n.Config.Depth
	up := func(v int) int { return (v + a - 1) / a * a }
	h, w, c, k := x.Shape[1], x.Shape[2], x.Shape[3], n.Config.Classes
	eh, ew := up(h), up(w)
	switch {
	case out > 0:
		out = up(out)
	case eh*ew <= 1<<20:
		out = max(eh, ew)
	default:
		out = 512
	}
	valid := n.Config
	valid.Valid = true
	m := up(valid.Margin() + a)
	// The result, and the image extended to multiples of a.
	whole := int64(h)*int64(w)*int64(k) + int64(eh)*int64(ew)*int64(c)
	if err := checkTileMemory(n, min(out+2*m, eh), min(out+2*m, ew), 4*whole); err != nil {
		return nil, err
	}
	ext := unet.Mirrored(x, 0, 0, eh-h, ew-w)
	res := tensor.New(1, h, w, k)
	tape := ag.NewNoGradTape()
	tape.SetPrecision(p)
	tape.PlanMemory() // each tile's pass reads only the network's output
	for oy := 0; oy < h; oy += out {
		for ox := 0; ox < w; ox += out {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			// The window: the tile and up to m pixels of context on each
			// side, within the extended image (whose edges the network
			// pads as the whole pass does). Every bound is a multiple of a.
			y0, y1 := max(oy-m, 0), min(oy+out+m, eh)
			x0, x1 := max(ox-m, 0), min(ox+out+m, ew)
			wh, ww := y1-y0, x1-x0
			win := tensor.New(1, wh, ww, c)
			for y := range wh {
				src := ((y0+y)*ew + x0) * c
				copy(win.Data[y*ww*c:(y+1)*ww*c], ext.Data[src:src+ww*c])
			}
			logits := n.Forward(tape.Constant(win)).Tensor()
			rows, cols := min(out, h-oy), min(out, w-ox)
			for r := range rows {
				src := ((oy-y0+r)*ww + ox - x0) * k
				dst := ((oy+r)*w + ox) * k
				copy(res.Data[dst:dst+cols*k], logits.Data[src:src+cols*k])
			}
			tape.Reset()
		}
	}
	return res, nil
}

// checkTileMemory refuses tiles of h×w input pixels whose inference pass
// needs more memory than is available (limits.CheckMemory; a lower bound,
// nn.Summary.InferenceBytes), and a whole image whose result and padded
// copy (wholeBytes) would not fit beside it, before any is allocated: a
// tile as large as a 8000×8000 photo grew until the kernel killed the
// process, and so did the logits of a large image under many classes.
func checkTileMemory(n *unet.Net, h, w int, wholeBytes int64) error {
	s, err := nn.Summarize(n, []int{1, h, w, n.Config.InChannels})
	if err != nil {
		return fmt.Errorf("infer: segment: %w", err)
	}
	if err := limits.CheckMemory(fmt.Sprintf("infer: segmenting in tiles of %dx%d input pixels", w, h), s.InferenceBytes()); err != nil {
		return fmt.Errorf("%w: use smaller tiles", err)
	}
	if err := limits.CheckMemory(fmt.Sprintf("infer: segmenting an image into %d classes", n.Config.Classes), s.InferenceBytes()+wholeBytes); err != nil {
		return fmt.Errorf("%w: segment a smaller image", err)
	}
	return nil
}
