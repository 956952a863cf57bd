package data

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// DefaultImageSize is the side of the square images made from a folder
// when ImageOptions.ImageSize is 0: torchvision's and timm's 224.
const DefaultImageSize = 224

// FolderTestFraction is the share of each class that OpenFolder holds out
// as the test set of a folder without train/ and val/ or test/
// sub-folders.
const FolderTestFraction = 0.2

// ImageOptions say how a folder of image files of any size becomes
// same-sized samples.
type ImageOptions struct {
	// Channels is 1 (grey) or 3 (RGB, the default when 0).
	Channels int
	// ImageSize is the side of the square samples (0: DefaultImageSize).
	// Evaluation resizes the shorter side to transform.EvalResize(ImageSize) and
	// takes the centre; training with Augment.ResizedCrop takes a
	// RandomResizedCrop of this size.
	ImageSize int
	// SkipBadImages skips a file that cannot be decoded or is over the
	// limits, with a warning naming it, instead of failing: at open when
	// its header is bad, otherwise out of its batch (Batch.Skipped; a
	// batch of no readable file is left out, or empty with
	// Loader.KeepEmpty).
	SkipBadImages bool
	// Log receives the warnings for skipped files (nil: standard error).
	Log io.Writer
	// All reads every image of DIR/CLASS/… as the test set, holding none
	// out, and returns the same set as the training set: for evaluating
	// or calibrating on a folder of new images, never for training. A
	// folder with train/, test/ or val/ is refused (read the one wanted).
	All bool
}

// warned holds the warnings given, so that each is given once in a
// process (a file is skipped every epoch, and a set may be opened twice).
var warned sync.Map

// warn reports a skipped file, once.
func (o *ImageOptions) warn(err error) {
	if _, seen := warned.LoadOrStore(err.Error(), true); seen {
		return
	}
	w := o.Log
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "warning: skipped: %v\n", err)
}

func (o *ImageOptions) defaults() error {
	if o.Channels == 0 {
		o.Channels = 3
	}
	if o.ImageSize == 0 {
		o.ImageSize = DefaultImageSize
	}
	if o.Channels != 1 && o.Channels != 3 {
		return fmt.Errorf("data: folder images need 1 or 3 channels, not %d", o.Channels)
	}
	if o.ImageSize < 1 || o.ImageSize > 4096 {
		return fmt.Errorf("data: image size %d outside [1, 4096]", o.ImageSize)
	}
	return nil
}

// Folder reads a folder of images of any size and format (JPEG, PNG, GIF,
// BMP, WebP, TIFF, PGM, PPM: imagefile.Extensions) with one sub-folder of
// images per class (classes sorted by name, images found in any depth
// below, as torchvision's ImageFolder does), as square samples of
// DefaultImageSize in the given channels.
// Only the headers are read now; the loader decodes the images batch by
// batch. The scan stops, with ctx's cause, once ctx is done.
func Folder(ctx context.Context, dir string, channels int) (*Dataset, error) {
	return FolderWith(ctx, dir, &ImageOptions{Channels: channels}, nil)
}

// FolderWith is Folder with options (nil: the zero ImageOptions, the
// defaults); it fills in o's defaults. Without classes, every sub-folder
// is a class and must hold an image (as ImageFolder requires). With
// classes given, the sub-folders must be among them and take their labels
// (a test folder may lack some of the training classes, or hold none of
// a class's images).
func FolderWith(ctx context.Context, dir string, o *ImageOptions, classes []string) (*Dataset, error) {
	if ctx == nil {
		return nil, errors.New("data: folder: nil context")
	}
	if o == nil {
		o = &ImageOptions{}
	}
	if err := o.defaults(); err != nil {
		return nil, err
	}
	found, err := classDirs(dir)
	if err != nil {
		return nil, err
	}
	training := classes == nil // every sub-folder is a class, so each must hold images
	if training {
		classes = found
	}
	d := &Dataset{H: o.ImageSize, W: o.ImageSize, C: o.Channels, Classes: classes, Images: o}
	for _, class := range found {
		before := d.Len()
		label := slices.Index(classes, class)
		if label < 0 {
			return nil, fmt.Errorf("data: %s: class %q is not one of the training classes %v", dir, class, classes)
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		files, err := imageFilesBelow(filepath.Join(dir, class))
		if err != nil {
			return nil, err
		}
		for i, f := range files {
			if i%64 == 63 && ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			if err := checkFolderImage(f, o.ImageSize); err != nil {
				if o.SkipBadImages {
					o.warn(err)
					continue
				}
				return nil, unreadable(err)
			}
			d.Files = append(d.Files, f)
			d.Labels = append(d.Labels, int32(label))
		}
		if training && d.Len() == before {
			return nil, fmt.Errorf("data: %s: the class folder %q holds no usable images (%s); remove it or add images", dir, class, strings.Join(imagefile.Extensions, ", "))
		}
	}
	if d.Len() == 0 {
		return nil, fmt.Errorf("data: no images (%s) under %s", strings.Join(imagefile.Extensions, ", "), dir)
	}
	return d, d.Check()
}

// classDirs lists the sub-folders of dir (links to folders included),
// sorted.
func classDirs(dir string) ([]string, error) {
	classes, err := listDir(dir, func(e os.DirEntry) bool { return isDir(filepath.Join(dir, e.Name())) })
	if err == nil && len(classes) == 0 {
		err = fmt.Errorf("data: %s has no class sub-folders", dir)
	}
	return classes, err
}

// checkFolderImage checks an image file's header as imagefile.CheckFile does,
// and the size the evaluation transform resizes it to before its centre
// crop of side size (a 1×60,000 image becomes 32×1,920,000 for a side of
// 28): so that a file no pass could read is refused, or skipped, as the
// folder is read rather than at the test pass after the training.
func checkFolderImage(path string, size int) error {
	cfg, err := imagefile.FileConfig(path)
	if err != nil || cfg.Width == 0 {
		return err
	}
	oh, ow := transform.ShorterSide(cfg.Height, cfg.Width, transform.EvalResize(size))
	return limits.CheckImage(fmt.Sprintf("data: %s: %d×%d resized for evaluation", path, cfg.Width, cfg.Height), ow, oh)
}

// unreadable adds to the error of a file that cannot be read, or is over
// the limits, the way to skip such files, for a folder read without
// SkipBadImages.
func unreadable(err error) error {
	return fmt.Errorf("%w; --skip-bad-images (ImageOptions.SkipBadImages), or a folder,skip-bad:DIR spec, skips unreadable files", err)
}

// listDir returns the names of the entries of dir that keep accepts,
// sorted.
func listDir(dir string, keep func(os.DirEntry) bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	var names []string
	for _, e := range entries {
		if keep(e) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func isDir(path string) bool {
	st, err := os.Stat(path) // follows links, as ImageFolder does
	return err == nil && st.IsDir()
}

// imageFilesBelow lists the image files in dir and its sub-folders in
// ImageFolder's order (sorted(os.walk(dir, followlinks=True)), each
// folder's files sorted): by folder, then by name, so that a folder's own
// files come before those of its sub-folders, where sorting whole paths
// put "a/b/x.png" before "a/z.png". Links to folders are followed, as
// ImageFolder follows them, and the files keep the link's path; a link to
// a folder that contains it is not (ImageFolder follows such a loop until
// the system's limit on links, listing the same images dozens of times).
func imageFilesBelow(dir string) ([]string, error) {
	var files []string
	var walk func(path string, above map[string]bool) error
	walk = func(path string, above map[string]bool) error {
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return err
		}
		if above[real] { // a link back up: a loop
			return nil
		}
		above[real] = true
		defer delete(above, real)
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(path, e.Name())
			if e.IsDir() || e.Type()&fs.ModeSymlink != 0 && isDir(p) {
				if err := walk(p, above); err != nil {
					return err
				}
			} else if imagefile.HasExtension(e.Name()) {
				files = append(files, p)
			}
		}
		return nil
	}
	if err := walk(dir, map[string]bool{}); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	slices.SortFunc(files, func(a, b string) int {
		if c := strings.Compare(filepath.Dir(a), filepath.Dir(b)); c != 0 {
			return c
		}
		return strings.Compare(filepath.Base(a), filepath.Base(b))
	})
	return files, nil
}

// OpenFolder reads an image folder laid out as
//
//	DIR/train/CLASS/…  and  DIR/test/CLASS/… (or DIR/val/CLASS/…)
//
// or, without train/, as DIR/CLASS/… split into training and test sets:
// FolderTestFraction of each class's images (rounded down, at least one
// of a class with two or more) are held out: those whose FNV-1a hash of
// class and file name is lowest, so that the split is the same on every
// run, whatever the training seed or where the folder is. Adding files to
// a class moves an image from training to the test set only as the count
// held out grows (one for five files added); a test/ folder keeps a split
// fixed. A train/ without test/ or
// val/ is split the same way. Nil options are the zero ImageOptions (the
// defaults: RGB samples of DefaultImageSize). The scan stops, with ctx's
// cause, once ctx is done.
func OpenFolder(ctx context.Context, dir string, o *ImageOptions) (train, test *Dataset, err error) {
	if ctx == nil {
		return nil, nil, errors.New("data: OpenFolder: nil context")
	}
	if o == nil {
		o = &ImageOptions{}
	}
	if o.All {
		for _, name := range []string{"train", "test", "val"} {
			if isDir(filepath.Join(dir, name)) {
				return nil, nil, fmt.Errorf("data: folder,all reads DIR/CLASS/…, and %s has %s/: name the folder of classes to read (folder,all:%s)", dir, name, filepath.Join(dir, name))
			}
		}
		all, err := FolderWith(ctx, dir, o, nil)
		return all, all, err
	}
	trainDir := filepath.Join(dir, "train")
	testDir := ""
	for _, name := range []string{"test", "val"} {
		if isDir(filepath.Join(dir, name)) {
			testDir = filepath.Join(dir, name)
			break
		}
	}
	if !isDir(trainDir) {
		if testDir != "" {
			return nil, nil, fmt.Errorf("data: %s has %s but no train/ (to read it alone, as a test set: folder,all:%s)", dir, filepath.Base(testDir), testDir)
		}
		trainDir = dir
	}
	if train, err = FolderWith(ctx, trainDir, o, nil); err != nil {
		return nil, nil, err
	}
	if testDir == "" {
		train, test = train.classSplit()
		if test.Len() == 0 {
			return nil, nil, fmt.Errorf("data: %s: %w; add images or a test/ folder", dir, ErrNoTestSplit)
		}
		return train, test, nil
	}
	if test, err = FolderWith(ctx, testDir, o, train.Classes); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// classSplit splits a folder's images into training and test sets, per
// class, as OpenFolder describes.
func (d *Dataset) classSplit() (train, test *Dataset) {
	byClass := make([][]int, len(d.Classes))
	for i, l := range d.Labels {
		byClass[l] = append(byClass[l], i)
	}
	var tr, te []int
	for c, idx := range byClass {
		n := int(float64(len(idx)) * FolderTestFraction)
		if n == 0 && len(idx) >= 2 {
			n = 1
		}
		// The n files whose names hash lowest: a file's place in the order
		// is its own, so adding files to the class moves none from the test
		// set to training but the few that n's growth takes (one in five
		// files added). (A permutation of the files by position moved many:
		// 3 of 8 test images were trained ones after one file was added.)
		key := make([]uint64, len(idx))
		for k, i := range idx {
			h := fnv.New64a()
			h.Write([]byte(d.Classes[c] + "/" + filepath.Base(d.Files[i])))
			key[k] = h.Sum64()
		}
		rank := make([]int, len(idx))
		for k := range rank {
			rank[k] = k
		}
		sort.SliceStable(rank, func(a, b int) bool { return key[rank[a]] < key[rank[b]] })
		held := make([]bool, len(idx))
		for _, k := range rank[:n] {
			held[k] = true
		}
		for k, i := range idx { // each side keeps the folder's order
			if held[k] {
				te = append(te, i)
			} else {
				tr = append(tr, i)
			}
		}
	}
	sort.Ints(tr)
	sort.Ints(te)
	return d.Subset(tr), d.Subset(te)
}

// folderSpec parses the options of a folder spec's kind,
// "folder[,size=N][,skip-bad][,all]".
func folderSpec(kind string, channels int) (*ImageOptions, error) {
	o := &ImageOptions{Channels: channels}
	parts := strings.Split(kind, ",")
	seen := map[string]string{} // option name → as first given
	for _, p := range parts[1:] {
		key, _, _ := strings.Cut(p, "=")
		if was, ok := seen[key]; ok {
			return nil, fmt.Errorf("data: folder option %s given twice (%q, then %q): give it once", key, was, p)
		}
		seen[key] = p
		switch {
		case strings.HasPrefix(p, "size="):
			n, err := strconv.Atoi(strings.TrimPrefix(p, "size="))
			if err != nil {
				return nil, fmt.Errorf("data: folder option %q: not a number", p)
			}
			o.ImageSize = n
		case p == "skip-bad":
			o.SkipBadImages = true
		case p == "all":
			o.All = true
		default:
			return nil, fmt.Errorf("data: unknown folder option %q (size=N, skip-bad, all)", p)
		}
	}
	return o, o.defaults()
}

// ErrNoTestSplit is in the error of a folder of classes too small to hold
// images out for a test split (no class has two images); a command that
// needs no test split may read it with folder,all:DIR instead.
var ErrNoTestSplit = errors.New("no class has the two images needed to hold one out for testing")

// IsFolderSpec reports whether spec names an image folder
// ("folder[,options]:DIR").
func IsFolderSpec(spec string) bool {
	kind, _, _ := strings.Cut(spec, ":")
	k, _, _ := strings.Cut(kind, ",")
	return k == "folder"
}

// FolderSize returns the image size a folder spec names (its size=N),
// and 0 for a folder spec without one (the default, DefaultImageSize) and
// for any other spec.
func FolderSize(spec string) int {
	if !IsFolderSpec(spec) {
		return 0
	}
	kind, _, _ := strings.Cut(spec, ":")
	o, err := folderSpec(kind, 0)
	if err != nil || !strings.Contains(kind, ",size=") {
		return 0
	}
	return o.ImageSize
}

// FolderSpec returns the data spec (for Open) of an image folder read
// with the given image size (0: the default) and bad-image skipping; a
// spec that is not a folder one is returned as it is when both are unset,
// and refused otherwise.
func FolderSpec(spec string, imageSize int, skipBad bool) (string, error) {
	kind, dir, _ := strings.Cut(spec, ":")
	if imageSize == 0 && !skipBad {
		return spec, nil
	}
	if k, _, _ := strings.Cut(kind, ","); k != "folder" {
		return "", fmt.Errorf("data: an image size and skipping bad images are for folder:DIR, not %q", spec)
	}
	o, err := folderSpec(kind, 0)
	if err != nil {
		return "", err
	}
	sized := imageSize != 0 || strings.Contains(kind, ",size=")
	if imageSize != 0 {
		o.ImageSize = imageSize
	}
	o.SkipBadImages = o.SkipBadImages || skipBad
	if err := o.defaults(); err != nil {
		return "", err
	}
	kind = "folder"
	if sized { // a size left out stays the default, for a later size to fill
		kind += ",size=" + strconv.Itoa(o.ImageSize)
	}
	if o.SkipBadImages {
		kind += ",skip-bad"
	}
	if o.All {
		kind += ",all"
	}
	return kind + ":" + dir, nil
}

// WithoutSkipBad returns a folder spec with its skip-bad option removed,
// so that an unreadable file stops the reading, named, where the spec
// left it out (what a caller's explicit "do not skip" asks of a spec
// that skips, which FolderSpec's skipBad cannot undo). The folder is
// read in the same order with the same images, or not at all. Any other
// spec is returned as it is.
func WithoutSkipBad(spec string) string {
	kind, dir, found := strings.Cut(spec, ":")
	if !IsFolderSpec(spec) || !found {
		return spec
	}
	parts := strings.Split(kind, ",")
	kept := parts[:1]
	for _, p := range parts[1:] {
		if p != "skip-bad" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ",") + ":" + dir
}

// appendImage decodes an image file and appends its pixels, converted to
// d.C channels; the first image sets the size, which every other must
// have (SegFolder's images, which stay in memory).
func (d *Dataset) appendImage(path string) error {
	img, err := imagefile.Load(path)
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
	d.Pixels = append(d.Pixels, transform.Pixels(img, d.C)...)
	return nil
}

// imageFiles lists the image files of a folder (not below it), sorted by
// name.
func imageFiles(dir string) ([]string, error) {
	return listDir(dir, func(e os.DirEntry) bool { return !e.IsDir() && imagefile.HasExtension(e.Name()) })
}

// sample decodes image i of a folder set and transforms it to H×W×C:
// RandomResizedCrop with rng when crop is set, the evaluation transform
// otherwise.
func (d *Dataset) sample(i int, crop bool, rng *tensor.RNG) ([]uint8, error) {
	img, err := imagefile.Load(d.Files[i])
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	pix := transform.Pixels(img, d.C)
	if crop {
		pix, err = transform.RandomResizedCrop(rng, pix, b.Dy(), b.Dx(), d.C, d.H, d.W)
	} else {
		pix, err = transform.EvalTransform(pix, b.Dy(), b.Dx(), d.C, transform.EvalResize(d.H), d.H, d.W)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Files[i], err)
	}
	return pix, nil
}
