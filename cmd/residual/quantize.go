package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/tensor"
	"github.com/residual-nn/residual/train"
)

// runQuantize quantizes a float checkpoint to int8 (package quant) with
// activation ranges calibrated on batches of a data set's training split
// (never the test split it is then evaluated on).
func runQuantize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("quantize", stderr)
	spec := fs.String("calibrate", "", "data set whose training images calibrate the activation ranges (default: the one the checkpoint was trained on)")
	images := fs.String("calibrate-images", "", "instead of --calibrate: a comma-separated list of image files, preprocessed as predict does, one batch")
	batches := fs.Int("batches", 8, "calibration batches")
	batch := fs.Int("batch", 32, "images per calibration batch")
	method := fs.String("method", "percentile", "calibration: minmax, percentile or entropy")
	pct := fs.Float64("percentile", 99.99, "with --method percentile: the percentile of magnitudes kept")
	out := fs.String("out", "", "int8 checkpoint to write (.safetensors)")
	weights := fs.String("weights", "", "the float checkpoint (or give it as the argument)")
	skipBad := skipBadFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 1 && *weights == "" {
		*weights, pos = pos[0], nil
	}
	// Name what is wrong: the usage line alone left it to guess.
	what := ""
	switch {
	case len(pos) > 1 && *weights == "":
		what = fmt.Sprintf("one checkpoint at a time (%d given)", len(pos))
	case len(pos) > 0:
		what = fmt.Sprintf("unexpected argument %q (the checkpoint is --weights %s)", pos[0], *weights)
	case *weights == "":
		what = "no checkpoint given"
	case *out == "":
		what = "no --out given for the int8 checkpoint"
	}
	if what != "" {
		return fmt.Errorf("%w: %s: residual quantize CKPT [--calibrate SPEC] --out CKPT8", errUsage, what)
	}
	m, err := quant.ParseMethod(*method)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	c, err := checkpoint.Load(*weights)
	if err != nil {
		return err
	}
	if c.Int8 != nil {
		return fmt.Errorf("%s is already an int8 checkpoint", *weights)
	}
	p := c.Preprocess
	in := []int{1, p.Height, p.Width, p.Channels}
	n := 0
	var next func() (*tensor.Tensor, error)
	if *images != "" {
		files := strings.Split(*images, ",")
		x := tensor.New(len(files), p.Height, p.Width, p.Channels)
		for i, f := range files {
			img, err := imagefile.Load(f)
			if err != nil {
				return err
			}
			xi, err := infer.Input(p, img)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			copy(x.Data[i*len(xi.Data):], xi.Data)
		}
		*spec = counted(len(files), "image")
		next = func() (*tensor.Tensor, error) {
			if n++; n > 1 {
				n = 1
				return nil, nil
			}
			return x, nil
		}
		return quantizeAndWrite(ctx, c, in, next, m, *pct, *out, func() string { return fmt.Sprintf("1 batch of %s", *spec) }, stdout)
	}
	if *spec == "" {
		if *spec = c.DataSpec(); *spec == "" {
			return fmt.Errorf("%w: the checkpoint does not name its data set; pass --calibrate", errUsage)
		}
	}
	if *spec, err = withSkipBad(fs, *spec, *skipBad); err != nil {
		return err
	}
	if *spec, err = folderAtModelSize(*spec, p); err != nil {
		return err
	}
	trainSet, _, err := data.Open(ctx, *spec, c.Preprocess.Channels)
	if err != nil {
		if errors.Is(err, data.ErrNoTestSplit) {
			// Calibration needs no test split: every image may calibrate.
			return fmt.Errorf("%w (to calibrate on every image of a folder of classes, give --calibrate folder,all:DIR)", err)
		}
		return err
	}
	l, err := train.Loader(p, trainSet, *batch)
	if err != nil {
		return fmt.Errorf("%s: %w", *spec, err)
	}
	l.Shuffle, l.Seed = true, 1
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := l.Epoch(lctx, 0, 0)
	next = func() (*tensor.Tensor, error) {
		if n >= *batches {
			return nil, nil
		}
		b, ok := <-ch
		if !ok {
			if err := l.Err(); err != nil {
				return nil, err
			}
			if n == 0 && l.Skipped() > 0 {
				return nil, fmt.Errorf("%s: no file could be read (%d left out as unreadable)", *spec, l.Skipped())
			}
			return nil, nil // the set is smaller than the batches asked for
		}
		n++
		return b.X, nil
	}
	return quantizeAndWrite(ctx, c, in, next, m, *pct, *out, func() string {
		if n == 1 {
			return "1 batch of " + *spec
		}
		return fmt.Sprintf("%d batches of %s", n, *spec)
	}, stdout)
}

// quantizeAndWrite quantizes c's model on the calibration batches next
// yields and writes the int8 checkpoint; what describes the calibration
// data for the report (after the batches ran).
func quantizeAndWrite(ctx context.Context, c *checkpoint.Checkpoint, in []int, next func() (*tensor.Tensor, error), m quant.Method, pct float64, out string, what func() string, stdout io.Writer) error {
	q, err := quant.Quantize(ctx, c.Net, in, next, quant.Options{Method: m, Percentile: pct})
	if err != nil {
		if cause := stopped(ctx); cause != nil {
			return cause
		}
		return err
	}
	// A signal once the last batch ran, or one that ended the loader's
	// epoch early (next then returns no batch, as at the set's end), is
	// seen here: a model calibrated on fewer batches than asked for is
	// not written.
	if err := stopped(ctx); err != nil {
		return err
	}
	if err := checkpoint.WriteInt8(out, q, c.Meta); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "quantized %s to int8 (%s calibration on %s) and wrote %s\n", c.Model.Name, m, what(), out)
	return nil
}

func checkQuantize(fs *flag.FlagSet, pos []string) error {
	if err := firstError(intIn(fs, "batches", 1, 1<<20), intIn(fs, "batch", 1, 4096),
		floatIn(fs, "percentile", 50, false, 100, true), checkOutName(fs, "out", "safetensors", ".safetensors")); err != nil {
		return err
	}
	if m := stringFlag(fs, "method"); flagSet(fs, "percentile") && m != string(quant.Percentile) {
		return badFlag("percentile", floatFlag(fs, "percentile"), "applies to --method percentile, not --method %s", m)
	}
	var images []string
	if flagSet(fs, "calibrate-images") {
		list := stringFlag(fs, "calibrate-images")
		if strings.Trim(list, ", ") == "" {
			return badFlag("calibrate-images", list, "lists no image files")
		}
		images = strings.Split(list, ",")
		if slices.Contains(images, "") {
			return badFlag("calibrate-images", list, "has an empty item; separate the image files with single commas")
		}
		if flagSet(fs, "calibrate") {
			return badFlag("calibrate-images", list, "and --calibrate %s both choose the calibration data; give one", stringFlag(fs, "calibrate"))
		}
	}
	if err := checkDataSpec("calibrate", stringFlag(fs, "calibrate")); err != nil {
		return err
	}
	if err := checkCheckpoint("weights", stringFlag(fs, "weights")); err != nil {
		return err
	}
	if len(pos) == 1 {
		if err := checkCheckpoint("", pos[0]); err != nil {
			return err
		}
	}
	out := stringFlag(fs, "out")
	if out == "" {
		return nil // the command reports the missing flag with its usage
	}
	for _, in := range append([]string{stringFlag(fs, "weights")}, pos...) {
		if in != "" && samePath(out, in) {
			return badFlag("out", out, "is the checkpoint being quantized; quantize would overwrite it")
		}
	}
	for _, in := range images {
		if samePath(out, in) {
			return badFlag("out", out, "is the calibration image %s; quantize would overwrite it", in)
		}
	}
	return checkOutFile("out", out)
}
