// Command fashionfolder writes Fashion-MNIST as a folder of photos the way a
// user's own data arrives: RGB files of mixed sizes and aspect ratios, half
// PNG and half JPEG, under DIR/train/CLASS/ (a small labelled subset: -per
// images of each class, drawn by -seed) and DIR/test/CLASS/ (the full
// 10,000-image test set). It is the data of the README's fine-tuning runs
// (residual train --data folder:DIR --init …).
//
//	go run ./bench/fashionfolder -out /tmp/fashion-folder -per 100
package main

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/image/draw"

	"github.com/residual-nn/residual/data"
)

func main() {
	out := flag.String("out", "", "output folder (must not exist)")
	per := flag.Int("per", 100, "training images per class")
	testN := flag.Int("test", 10000, "test images (the first N of the test set)")
	seed := flag.Uint64("seed", 1, "seed of the subset and the sizes")
	minSide := flag.Int("min", 56, "smallest image side")
	maxSide := flag.Int("max", 256, "largest image side")
	dir := flag.String("fashion", "", "Fashion-MNIST IDX folder (Debian's dataset-fashion-mnist by default)")
	flag.Parse()
	if err := run(*out, *dir, *per, *testN, *seed, *minSide, *maxSide); err != nil {
		fmt.Fprintln(os.Stderr, "fashionfolder:", err)
		os.Exit(1)
	}
}

func run(out, dir string, per, testN int, seed uint64, minSide, maxSide int) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s exists; choose a new folder", out)
	}
	if per < 1 || testN < 1 || minSide < 8 || maxSide < minSide {
		return fmt.Errorf("bad sizes: -per %d -test %d -min %d -max %d", per, testN, minSide, maxSide)
	}
	train, test, err := data.FashionMNIST(dir)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	// The training subset: the first per images of each class in a seeded
	// permutation of the training set.
	var pick []int
	count := make([]int, len(train.Classes))
	for _, i := range rng.Perm(train.Len()) {
		if l := train.Labels[i]; count[l] < per {
			count[l]++
			pick = append(pick, i)
		}
	}
	if err := write(filepath.Join(out, "train"), train, pick, rng, minSide, maxSide); err != nil {
		return err
	}
	all := make([]int, min(testN, test.Len()))
	for i := range all {
		all[i] = i
	}
	return write(filepath.Join(out, "test"), test, all, rng, minSide, maxSide)
}

// write saves images idx of d under root/CLASS/, each scaled (bilinear) to a
// random width and height in [lo, hi] with an aspect ratio within 3:4..4:3,
// as RGB, alternately PNG and JPEG (quality 92).
func write(root string, d *data.Dataset, idx []int, rng *rand.Rand, lo, hi int) error {
	for _, c := range d.Classes {
		if err := os.MkdirAll(filepath.Join(root, folderName(c)), 0o755); err != nil {
			return err
		}
	}
	for n, i := range idx {
		src := image.NewGray(image.Rect(0, 0, d.W, d.H))
		copy(src.Pix, d.Image(i))
		w := lo + rng.IntN(hi-lo+1)
		h := min(hi, max(lo, int(float64(w)*(0.75+0.5833*rng.Float64()))))
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.BiLinear.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
		for p := 3; p < len(dst.Pix); p += 4 {
			dst.Pix[p] = 0xff
		}
		name := filepath.Join(root, folderName(d.Classes[d.Labels[i]]), fmt.Sprintf("%05d", i))
		var err error
		if n%2 == 0 {
			err = save(name+".png", func(f *os.File) error { return png.Encode(f, rgb{dst}) })
		} else {
			err = save(name+".jpg", func(f *os.File) error { return jpeg.Encode(f, dst, &jpeg.Options{Quality: 92}) })
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rgb presents an opaque RGBA image as having no alpha channel, so that
// image/png writes it as 8-bit RGB (colour type 2).
type rgb struct{ *image.RGBA }

func (rgb) ColorModel() color.Model { return color.RGBAModel }
func (rgb) Opaque() bool            { return true }

func save(name string, enc func(*os.File) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := enc(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return f.Close()
}

// folderName makes a class name usable as a folder ("T-shirt/top" →
// "T-shirt-top").
func folderName(class string) string { return strings.ReplaceAll(class, "/", "-") }
