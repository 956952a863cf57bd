package infer_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// TestOverlapTile checks the overlap-tile strategy on a small valid U-Net:
// stitching tiles gives what the network computes on the whole mirrored
// image at once (1e-5 relative to the logits' scale: the same arithmetic
// on other tile boundaries), on an image whose size is no multiple of the
// tile.
func TestOverlapTile(t *testing.T) {
	c := unet.Config{InChannels: 2, Classes: 3, Depth: 2, Base: 4, Valid: true}
	if m := c.Margin(); m != 20 {
		t.Fatalf("margin %d, want 20 (2+2 at level 1, 4+4 at level 2, 8 at the bottom)", m)
	}
	if o, _ := unet.Original().OutputSize(572); unet.Original().Margin() != (572-o)/2 {
		t.Fatalf("original margin %d, output %d", unet.Original().Margin(), o)
	}
	n, err := unet.New(c, tensor.NewRNG(4))
	if err != nil {
		t.Fatal(err)
	}
	rng := tensor.NewRNG(5)
	x := tensor.New(1, 37, 29, 2)
	for i := range x.Data {
		x.Data[i] = float32(rng.Normal())
	}
	const out = 12
	got, err := infer.SegmentUNet(context.Background(), n, x, out, ag.FP32)
	if err != nil {
		t.Fatal(err)
	}
	in, tile := c.TileFor(out)
	m := (in - tile) / 2
	// The whole image, mirrored by the margin and extended to a size the
	// network takes: the output's top-left 37×29 must equal the tiles'.
	side := 37 + 2*m
	for {
		if o, err := c.OutputSize(side); err == nil && o >= 37 {
			break
		}
		side++
	}
	whole := n.Forward(ag.Constant(unet.Mirrored(x, m, m, side-37-m, side-29-m))).Data
	want := tensor.New(1, 37, 29, 3)
	ow := whole.Shape[2]
	for y := 0; y < 37; y++ {
		copy(want.Data[y*29*3:(y+1)*29*3], whole.Data[y*ow*3:(y*ow+29)*3])
	}
	if err := fixture.Compare(got, want, 1e-5); err != nil {
		t.Error(err)
	}
}

// TestPaddedTiles: a padded U-Net segments an image in tiles as it does
// in one pass over the whole image (mirrored at the bottom and right to a
// multiple of 2^Depth): each tile's window reaches the context of its
// receptive field, aligned to the pooling grid. (Tiles without context
// changed a quarter of the mask of a 64×64 image at 16-pixel tiles.) The
// bound is 1e-5 of the logits' scale: the same products, summed over
// other spans by the kernels.
func TestPaddedTiles(t *testing.T) {
	c := unet.Config{InChannels: 2, Classes: 3, Depth: 2, Base: 4}
	n, err := unet.New(c, tensor.NewRNG(4))
	if err != nil {
		t.Fatal(err)
	}
	nn.SetTraining(n, false)
	rng := tensor.NewRNG(5)
	x := tensor.New(1, 93, 70, 2)
	for i := range x.Data {
		x.Data[i] = float32(rng.Normal())
	}
	whole := n.Forward(ag.Constant(unet.Mirrored(x, 0, 0, 96-93, 72-70))).Data
	want := tensor.New(1, 93, 70, 3)
	for y := range 93 {
		copy(want.Data[y*70*3:(y+1)*70*3], whole.Data[y*72*3:(y*72+70)*3])
	}
	for _, out := range []int{0, 8, 13, 40} {
		got, err := infer.SegmentUNet(context.Background(), n, x, out, ag.FP32)
		if err != nil {
			t.Fatal(err)
		}
		if err := fixture.Compare(got, want, 1e-5); err != nil {
			t.Errorf("tiles of %d: %v", out, err)
		}
	}
}

// SegmentUNet refuses a tile side below 0 or beyond limits.ImageSide,
// naming it, for both forms (a padded U-Net's tile of MaxInt overflowed
// into a negative input side, refused by the network's size check in
// words about levels; a negative one was the default). Any side in range
// passes: a padded U-Net's tile is rounded up to a multiple of 2^Depth
// (TestPaddedTiles: the logits do not change), a valid one's to the next
// output side the network gives, which need not be such a multiple (the
// original's are 4 + 16k).
func TestSegmentTileRange(t *testing.T) {
	if o, err := unet.Original().OutputSize(572); err != nil || o%16 != 4 {
		t.Fatalf("the original U-Net's output of 572: %d, %v", o, err)
	}
	x := tensor.New(1, 10, 7, 1)
	for _, valid := range []bool{false, true} {
		n, err := unet.New(unet.Config{InChannels: 1, Classes: 2, Depth: 2, Base: 4, Valid: valid}, tensor.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		nn.SetTraining(n, false)
		for _, out := range []int{-1, limits.ImageSide + 1, math.MaxInt} {
			_, err := infer.SegmentUNet(context.Background(), n, x, out, ag.FP32)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("tiles of %d output pixels: want 0 (the network's default) to %d", out, limits.ImageSide)) {
				t.Errorf("valid %v, tile %d: %v", valid, out, err)
			}
		}
		for _, out := range []int{0, 1, 5, 100} {
			if _, err := infer.SegmentUNet(context.Background(), n, x, out, ag.FP32); err != nil {
				t.Errorf("valid %v, tile %d: %v", valid, out, err)
			}
		}
	}
}

// Tiles whose pass needs more memory than is available (limits.Memory,
// 1 MB here) are refused before any work, naming the tile, for both
// forms; the default tiles of a small image pass.
func TestSegmentTileMemory(t *testing.T) {
	for _, valid := range []bool{false, true} {
		n, err := unet.New(unet.Config{InChannels: 1, Classes: 2, Depth: 2, Base: 8, Valid: valid}, tensor.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		nn.SetTraining(n, false)
		x := tensor.New(1, 300, 300, 1)
		limits.Memory = 1 << 20
		_, err = infer.SegmentUNet(context.Background(), n, x, 256, ag.FP32)
		limits.Memory = 0
		if err == nil || !strings.Contains(err.Error(), "infer: segmenting in tiles of") || !strings.Contains(err.Error(), "use smaller tiles") {
			t.Errorf("valid %v: tiles of 256 within 1 MB: %v", valid, err)
		}
		if _, err := infer.SegmentUNet(context.Background(), n, tensor.New(1, 20, 20, 1), 0, ag.FP32); err != nil {
			t.Errorf("valid %v: a small image: %v", valid, err)
		}
	}
}

// SegmentUNet refuses what it cannot segment before it extends the image:
// a shape its values do not fill (it sliced past them, or, for a shape
// of 2^40 pixels claimed with no data, allocated the extension and ran
// out of memory), one over limits.TensorElements, as Forward does, an
// image of no pixels, and a negative tile (a padded U-Net took it for 0).
func TestSegmentRefusesBadInput(t *testing.T) {
	for _, valid := range []bool{false, true} {
		n, err := unet.New(unet.Config{InChannels: 1, Classes: 2, Depth: 2, Base: 4, Valid: valid}, tensor.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		nn.SetTraining(n, false)
		for _, c := range []struct {
			name string
			x    *tensor.Tensor
			out  int
			want string
		}{
			{"short", &tensor.Tensor{Shape: []int{1, 8, 8, 1}}, 0, "holds 0 values for shape [1 8 8 1]"},
			{"negative tile", tensor.New(1, 8, 8, 1), -3, "tiles of -3 output pixels"},
			// No pixel: a valid U-Net's mirrored extension panicked, a
			// padded one's pass was refused in words about levels.
			{"no rows", tensor.New(1, 0, 8, 1), 0, "one image [1,H,W,1] with H, W ≥ 1, got [1 0 8 1]"},
			{"no columns", tensor.New(1, 8, 0, 1), 4, "one image [1,H,W,1] with H, W ≥ 1, got [1 8 0 1]"},
		} {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("valid %v, %s: panicked: %v", valid, c.name, r)
					}
				}()
				if _, err := infer.SegmentUNet(context.Background(), n, c.x, c.out, ag.FP32); err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("valid %v, %s: error %v, want one containing %q", valid, c.name, err, c.want)
				}
			}()
		}
		bound := limits.TensorElements
		limits.TensorElements = 63
		_, err = infer.SegmentUNet(context.Background(), n, tensor.New(1, 8, 8, 1), 0, ag.FP32)
		limits.TensorElements = bound
		if err == nil || !strings.Contains(err.Error(), "infer: input") {
			t.Errorf("valid %v: 64 values over limits.TensorElements = 63: error %v", valid, err)
		}
	}
}

// TestSegmentPrecision: SegmentUNet computes in the precision it is
// given, in both forms: a padded U-Net's one pass in BF16 equals Forward
// on a BF16 tape bit for bit and differs from the FP32 pass (it was
// always FP32, so infer's SetPrecision(BF16) reached no segmentation),
// and a valid U-Net's tiles in BF16 differ from its FP32 ones.
func TestSegmentPrecision(t *testing.T) {
	rng := tensor.NewRNG(6)
	x := tensor.New(1, 16, 16, 2)
	for i := range x.Data {
		x.Data[i] = float32(rng.Normal())
	}
	for _, valid := range []bool{false, true} {
		n, err := unet.New(unet.Config{InChannels: 2, Classes: 3, Depth: 2, Base: 8, Valid: valid}, tensor.NewRNG(4))
		if err != nil {
			t.Fatal(err)
		}
		bf, err := infer.SegmentUNet(context.Background(), n, x, 0, ag.BF16)
		if err != nil {
			t.Fatal(err)
		}
		fp, err := infer.SegmentUNet(context.Background(), n, x, 0, ag.FP32)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(bf.Data, fp.Data) {
			t.Errorf("valid %v: the BF16 logits are the FP32 ones", valid)
		}
		if valid {
			continue
		}
		tape := ag.NewNoGradTape()
		tape.SetPrecision(ag.BF16)
		if want := n.Forward(tape.Constant(x)).Tensor(); !slices.Equal(bf.Data, want.Data) {
			t.Error("the padded U-Net's BF16 segmentation is not its BF16 forward pass")
		}
	}
}

// SegmentUNet refuses an image whose logits (H·W·classes) would not fit
// in memory beside a tile's pass, before allocating them, in both forms:
// with 2000 classes a 256×256 image's logits take 524 MB, where an 8×8
// image's tiles run within a 256 MB budget.
func TestSegmentWholeImageMemory(t *testing.T) {
	defer func(m int64) { limits.Memory = m }(limits.Memory)
	limits.Memory = 256 << 20
	for _, valid := range []bool{false, true} {
		n, err := unet.New(unet.Config{InChannels: 1, Classes: 2000, Depth: 2, Base: 4, Valid: valid}, tensor.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		nn.SetTraining(n, false)
		if _, err := infer.SegmentUNet(context.Background(), n, tensor.New(1, 8, 8, 1), 8, ag.FP32); err != nil {
			t.Errorf("valid %v, 8×8: %v", valid, err)
		}
		_, err = infer.SegmentUNet(context.Background(), n, tensor.New(1, 256, 256, 1), 8, ag.FP32)
		if err == nil || !strings.Contains(err.Error(), "segmenting an image into 2000 classes") {
			t.Errorf("valid %v, 256×256: %v; want the whole image's memory refused", valid, err)
		}
	}
}
