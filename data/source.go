package data

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/limits"
)

// minCanvasSide is the smallest side of Open's canvases: room for an item
// of the largest default scale (40).
const minCanvasSide = 40

// maxCanvasSide returns the largest side of n square canvases whose
// bytes, a grey pixel and a mask value each, stay within
// limits.TotalBytes (463 for MNIST's 10,000 training canvases).
func maxCanvasSide(n int) int {
	per := limits.TotalBytes / (2 * int64(max(n, 1))) // pixels per canvas
	s := int64(math.Sqrt(float64(per)))
	for s*s > per {
		s--
	}
	for (s+1)*(s+1) <= per {
		s++
	}
	return int(s)
}

// Open reads a data set named by spec and returns its training and test
// sets:
//
//	mnist                 the embedded MNIST
//	fashion-mnist[:DIR]   Fashion-MNIST IDX files (Debian's dataset-fashion-mnist by default)
//	idx:DIR               any MNIST-layout folder of IDX files
//	cifar10:DIR           the CIFAR-10 binary distribution
//	cifar100:DIR          the CIFAR-100 binary distribution
//	folder[,size=N][,skip-bad][,all]:DIR
//	                      images of any size (JPEG, PNG, GIF, BMP, WebP, TIFF, PGM, PPM) in DIR/train/CLASS/…
//	                      and DIR/test/CLASS/… or DIR/val/CLASS/…, or in DIR/CLASS/… split
//	                      (see OpenFolder); N×N samples (224 by default), decoded by the
//	                      loader; skip-bad skips unreadable files with a warning; all
//	                      reads every image of DIR/CLASS/… as the test set (and as the
//	                      training set: for evaluation and calibration only); each
//	                      option once
//	                      (ImageOptions; channels 1 or 3, 3 by default)
//
// and segmentation sets (masks of class indices, class 0 the background):
//
//	mnist-canvas[:SIDE]   canvases of MNIST digits (Canvases; side 64 by default)
//	fashion-canvas[:SIDE] canvases of Fashion-MNIST items
//	segfolder[,ignore=V]:DIR
//	                      DIR/train and DIR/test, each as SegFolder reads it; mask value V
//	                      (0–255, above the classes) marks pixels to ignore (Dataset.Ignore)
//
// channels is 1 (grey) or 3 (RGB), the images' channels, converted as
// PIL's Image.convert("L") and convert("RGB") do when they are stored
// otherwise (grey replicated, or the luma of RGB); or 0, as stored — for
// folder and segfolder, whose files may mix both, RGB.
//
// Reading a folder stops, with ctx's cause, once ctx is done.
func Open(ctx context.Context, spec string, channels int) (train, test *Dataset, err error) {
	if ctx == nil {
		return nil, nil, errors.New("data: Open: nil context")
	}
	if channels != 0 && channels != 1 && channels != 3 {
		return nil, nil, fmt.Errorf("data: %s: images of %d channels (want 1 grey, 3 RGB, or 0 as stored)", spec, channels)
	}
	train, test, err = open(ctx, spec, channels)
	if err != nil {
		return nil, nil, err
	}
	if channels == 0 || train.Files != nil { // a folder's files are decoded to its channels
		return train, test, nil
	}
	if train, err = train.withChannels(channels); err != nil {
		return nil, nil, err
	}
	if test, err = test.withChannels(channels); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// open is Open, the in-memory sets in their stored channels.
func open(ctx context.Context, spec string, channels int) (train, test *Dataset, err error) {
	kindOpts, dir, _ := strings.Cut(spec, ":")
	kind, _, _ := strings.Cut(kindOpts, ",")
	if kind != "folder" && kind != "segfolder" && kind != kindOpts {
		return nil, nil, fmt.Errorf("data: %s takes no options (%q)", kind, kindOpts)
	}
	switch kind {
	case "mnist-canvas", "fashion-canvas":
		var o CanvasOptions
		if dir != "" {
			if o.Side, err = strconv.Atoi(dir); err != nil || o.Side < minCanvasSide {
				return nil, nil, fmt.Errorf("data: %s: canvas side %q must be a number ≥ %d", kind, dir, minCanvasSide)
			}
		}
		if kind == "mnist-canvas" {
			train, test, err = MNIST()
		} else {
			train, test, err = FashionMNIST("")
		}
		if err != nil {
			return nil, nil, err
		}
		// CanvasSets makes train.Len()/6 and test.Len()/10 canvases.
		n := max(train.Len()/6, test.Len()/10, 1)
		if top := maxCanvasSide(n); o.Side > top {
			return nil, nil, fmt.Errorf("data: %s: canvas side %d outside [%d, %d]: %d canvases of that side and their masks would take more than %d bytes (limits.TotalBytes)",
				kind, o.Side, minCanvasSide, top, n, limits.TotalBytes)
		}
		return CanvasSets(train, test, 1, o)
	case "segfolder":
		if dir == "" {
			return nil, nil, fmt.Errorf("data: segfolder needs a path: segfolder:DIR (with train/ and test/ inside)")
		}
		if channels == 0 {
			channels = 3
		}
		ignore, err := segfolderSpec(kindOpts)
		if err != nil {
			return nil, nil, err
		}
		if err := strayClasses(dir); err != nil {
			return nil, nil, err
		}
		if train, err = SegFolder(ctx, dir+"/train", channels, ignore); err != nil {
			return nil, nil, err
		}
		if test, err = SegFolder(ctx, dir+"/test", channels, ignore); err != nil {
			return nil, nil, err
		}
		if train.H != test.H || train.W != test.W {
			return nil, nil, fmt.Errorf("data: %s: the test images are %dx%d, the training images %dx%d", dir, test.W, test.H, train.W, train.H)
		}
		if len(test.Classes) > len(train.Classes) {
			return nil, nil, beyondClasses(dir, train, test)
		}
		if _, err := os.Stat(dir + "/test/classes.txt"); err == nil && !slices.Equal(test.Classes, train.Classes[:len(test.Classes)]) {
			// The test masks' values are the training set's classes: names
			// in another order would score them under the wrong ones.
			return nil, nil, fmt.Errorf("data: %s: test/classes.txt names %q, train/classes.txt %q: the same values must name the same classes (or leave test/classes.txt out)", dir, test.Classes, train.Classes[:len(test.Classes)])
		}
		test.Classes = train.Classes
		return train, test, nil
	case "mnist":
		if dir != "" { // a folder of the user's own MNIST files would be ignored
			return nil, nil, fmt.Errorf("data: mnist is the embedded MNIST and takes no folder (%q); an MNIST-layout folder is idx:DIR", dir)
		}
		return MNIST()
	case "fashion-mnist":
		return FashionMNIST(dir)
	case "idx":
		if dir == "" {
			return nil, nil, fmt.Errorf("data: idx needs a folder: idx:DIR (train-images-idx3-ubyte[.gz] and the other three inside)")
		}
		return IDXDir(dir, nil)
	case "cifar10", "cifar100":
		if dir == "" {
			return nil, nil, fmt.Errorf("data: %s needs a folder: %s:DIR", kind, kind)
		}
		n := 10
		if kind == "cifar100" {
			n = 100
		}
		return CIFAR(dir, n)
	case "folder":
		if dir == "" {
			return nil, nil, fmt.Errorf("data: folder needs a path: folder:DIR (with CLASS/ sub-folders, or train/ and test/ or val/ with CLASS/ inside)")
		}
		o, err := folderSpec(kindOpts, channels)
		if err != nil {
			return nil, nil, err
		}
		if path, opts, found := strings.Cut(dir, ","); found && !isDir(dir) && isDir(path) {
			return nil, nil, fmt.Errorf("data: %s: a folder's options go before the colon: folder,%s:%s", spec, opts, path)
		}
		return OpenFolder(ctx, dir, o)
	}
	return nil, nil, fmt.Errorf("data: unknown data set %q (mnist, fashion-mnist[:DIR], idx:DIR, cifar10:DIR, cifar100:DIR, folder[,size=N][,skip-bad][,all]:DIR, mnist-canvas[:SIDE], fashion-canvas[:SIDE], segfolder[,ignore=V]:DIR)", spec)
}

// segfolderSpec parses the options of a segfolder spec's kind,
// "segfolder[,ignore=V]".
func segfolderSpec(kind string) (Ignore, error) {
	var g Ignore
	for _, p := range strings.Split(kind, ",")[1:] {
		v, ok := strings.CutPrefix(p, "ignore=")
		if !ok {
			return g, fmt.Errorf("data: unknown segfolder option %q (ignore=V)", p)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 255 || v != strconv.Itoa(n) {
			return g, fmt.Errorf("data: segfolder option %q: the ignored mask value must be a number from 0 to 255", p)
		}
		if g.Set {
			return g, fmt.Errorf("data: segfolder option %q: one ignored value only (ignore=%d given before)", p, g.Value)
		}
		g = Ignore{Set: true, Value: uint8(n)}
	}
	return g, nil
}

// strayClasses refuses a classes.txt beside a segfolder's train/ and
// test/ when train/ has none: the names are read from train/classes.txt,
// and one at the top was ignored without a word, the classes numbered
// 0, 1, … instead.
func strayClasses(dir string) error {
	top := filepath.Join(dir, "classes.txt")
	if _, err := os.Lstat(top); err != nil {
		return nil
	}
	if _, err := os.Lstat(filepath.Join(dir, "train", "classes.txt")); err == nil {
		return nil
	}
	return fmt.Errorf("data: %s is not read: a segfolder's classes are named by train/classes.txt (test/classes.txt, if any, naming the same); move it to %s", top, filepath.Join(dir, "train", "classes.txt"))
}

// beyondClasses names the first test mask pixel of segfolder dir whose
// class the training set does not have.
func beyondClasses(dir string, train, test *Dataset) error {
	names, _ := imageFiles(filepath.Join(dir, "test", "images"))
	for i := range test.Len() {
		for p, v := range test.Mask(i) {
			if int(v) < len(train.Classes) || test.Ignore.Is(v) {
				continue
			}
			mask := fmt.Sprintf("test mask %d", i)
			if i < len(names) {
				mask = filepath.Join(dir, "test", "masks", strings.TrimSuffix(names[i], filepath.Ext(names[i]))+".png")
			}
			return fmt.Errorf("data: mask %s: value %d at pixel (%d, %d) is not one of the training set's %d classes (%s)", mask, v, p%test.W, p/test.W, len(train.Classes), filepath.Join(dir, "train"))
		}
	}
	return fmt.Errorf("data: %s: the test set has %d classes, the training set %d", dir, len(test.Classes), len(train.Classes))
}
