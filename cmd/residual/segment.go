package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"

	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/internal/atomicfile"
	"github.com/residual-nn/residual/models"
)

func runSegment(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("segment", stderr)
	weights := fs.String("weights", "", "U-Net checkpoint (.safetensors), if not given as the first argument")
	out := fs.String("out", "", "mask to write: a grey PNG of class indices")
	overlay := fs.String("overlay", "", "coloured overlay PNG (default: the mask's name with -overlay)")
	tile := fs.Int("tile", 0, "output pixels per tile side (0: the network's default); rounded up to a side the network gives: a multiple of 2^levels for a padded U-Net (the mask is the same), the next output side of a valid one")
	precision := precisionFlag(fs)
	pos, err := parseCheckpointFirst(fs, args)
	if err != nil {
		return err
	}
	pr, err := parsePrecision(*precision)
	if err != nil {
		return err
	}
	if *weights == "" || *out == "" || len(pos) != 1 {
		// Name what is missing: the usage line alone left it to guess.
		what := "no checkpoint given"
		switch {
		case *weights == "":
		case len(pos) == 0:
			what = "no image given"
		case len(pos) > 1:
			what = fmt.Sprintf("one image at a time (%d given)", len(pos))
		default:
			what = "no --out given for the mask"
		}
		return fmt.Errorf("%w: %s: residual segment CKPT IMAGE --out MASK.png [--overlay OVERLAY.png] (or the checkpoint as --weights CKPT)", errUsage, what)
	}
	*overlay = overlayPath(*out, *overlay)
	m, err := openForTask(*weights, models.Segment, pr)
	if err != nil {
		return err
	}
	info := m.Info()
	if len(info.Classes) > infer.MaskClasses {
		return fmt.Errorf("%s has %d classes; a grey PNG mask holds %d", *weights, len(info.Classes), infer.MaskClasses)
	}
	if err := stopped(ctx); err != nil {
		return err
	}
	img, err := imagefile.Load(pos[0])
	if err != nil {
		return err
	}
	seg, err := m.SegmentTiles(ctx, img, *tile)
	if err != nil {
		if cause := stopped(ctx); cause != nil {
			return cause // the signal, for the exit status
		}
		return err
	}
	counts, err := writeMasks(ctx, img, seg, info.Channels, *out, *overlay)
	if err != nil {
		return err
	}
	h, w := seg.Height, seg.Width
	fmt.Fprintf(stdout, "%s: %dx%d pixels segmented, mask %s, overlay %s\n", pos[0], w, h, *out, *overlay)
	for k, n := range counts {
		if n > 0 {
			fmt.Fprintf(stdout, "  %-12s %6.2f%%\n", info.Classes[k], 100*float64(n)/float64(h*w))
		}
	}
	return nil
}

// writeMasks writes seg, the segmentation of img (channels as the model
// takes it), as a grey PNG of class indices to out and as a coloured
// overlay to overlay, and returns how many pixels each class has. Both
// files are encoded and staged before either replaces a file: a failure
// leaves both paths as they were (see atomicfile.WriteAll), and so does
// ctx cancelled before the write, which stops the encoding (seconds for
// a large image) at once.
func writeMasks(ctx context.Context, img image.Image, seg *infer.Mask, channels int, out, overlay string) ([]int, error) {
	h, w := seg.Height, seg.Width
	mask := make([]uint8, len(seg.Class))
	counts := make([]int, len(seg.Names))
	for i, k := range seg.Class {
		mask[i] = uint8(k)
		counts[k]++
	}
	maskPNG, err := encodePNG(ctx, infer.MaskImage(mask, h, w))
	if err != nil {
		return nil, err
	}
	over, err := infer.Overlay(transform.Pixels(img, channels), mask, h, w, channels)
	if err != nil {
		return nil, err
	}
	overlayPNG, err := encodePNG(ctx, over)
	if err != nil {
		return nil, err
	}
	if err := stopped(ctx); err != nil {
		return nil, err
	}
	return counts, atomicfile.WriteAll([]string{out, overlay}, [][]byte{maskPNG, overlayPNG})
}

// encodePNG returns img as a PNG file, or ctx's cause once ctx is
// cancelled: the encoder's output goes through a writer that refuses it
// then, so that the encoding stops at its next write (every 32 KiB of
// compressed data).
func encodePNG(ctx context.Context, img image.Image) ([]byte, error) {
	w := &stopWriter{ctx: ctx}
	if err := png.Encode(w, img); err != nil {
		if cause := stopped(ctx); cause != nil {
			return nil, cause
		}
		return nil, err
	}
	return w.b.Bytes(), nil
}

// stopWriter is a bytes.Buffer whose Write fails with ctx's cause once
// ctx is cancelled.
type stopWriter struct {
	ctx context.Context
	b   bytes.Buffer
}

func (w *stopWriter) Write(p []byte) (int, error) {
	if err := stopped(w.ctx); err != nil {
		return 0, err
	}
	return w.b.Write(p)
}
