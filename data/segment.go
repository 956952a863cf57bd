package data

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/internal/pngheader"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// Segmentation data: a Dataset whose Masks are set holds one class index
// per pixel instead of one label per image. The loader then yields the
// masks (and the weight maps, if any) as per-pixel targets, transformed
// with the images.

// IsSegmentation reports whether the data set holds masks.
func (d *Dataset) IsSegmentation() bool { return d.Masks != nil }

// Mask returns the mask of image i (segmentation sets). It panics, naming
// i, if there is no such mask.
func (d *Dataset) Mask(i int) []uint8 {
	n := d.H * d.W
	if i < 0 || n < 1 || i >= len(d.Masks)/n {
		panic(fmt.Sprintf("data: mask %d of a set of %d masks of %dx%d", i, len(d.Masks)/max(n, 1), d.H, d.W))
	}
	return d.Masks[i*n : (i+1)*n]
}

// CanvasOptions configure Canvases.
type CanvasOptions struct {
	Side int // canvas side in pixels (default 64)
	// MinItems and MaxItems bound the items per canvas (default 2 and 4,
	// each alone when the other is set: MaxItems 1 alone means 1 to 1;
	// at most MaxCanvasItems).
	MinItems, MaxItems int
	// MinScale and MaxScale bound an item's side, in pixels (default 20
	// and 40, each alone as MinItems and MaxItems; MNIST items are 28).
	MinScale, MaxScale int
	// Threshold: an item's pixel above it is the item's class in the mask
	// (default 127).
	Threshold uint8
}

func (o *CanvasOptions) defaults() {
	if o.Side == 0 {
		o.Side = 64
	}
	o.MinItems, o.MaxItems = defaultRange(o.MinItems, o.MaxItems, 2, 4)
	o.MinScale, o.MaxScale = defaultRange(o.MinScale, o.MaxScale, 20, 40)
	if o.Threshold == 0 {
		o.Threshold = 127
	}
}

// MaxCanvasItems bounds CanvasOptions.MaxItems: each item takes up to 30
// tries to place.
const MaxCanvasItems = 256

// defaultRange fills the zero bounds of [lo, hi] from the default range
// [dlo, dhi], keeping one that is set (and the range non-empty where the
// default would empty it).
func defaultRange(lo, hi, dlo, dhi int) (int, int) {
	switch {
	case lo == 0 && hi == 0:
		return dlo, dhi
	case lo == 0:
		return min(dlo, hi), hi
	case hi == 0:
		return lo, max(dhi, lo)
	}
	return lo, hi
}

// Canvases composes n grey canvases from the single-channel images of src
// (MNIST, Fashion-MNIST): each holds up to MinItems…MaxItems items at
// random positions and sizes, drawn in turn from a permutation of src, and
// placed so that the ink (pixels above the threshold) of two items is at
// least a pixel apart — an item that finds no such place in 30 tries is
// left out. A canvas pixel is the brightest item pixel over it, and the
// mask holds, where an item's pixel is above the threshold, its class + 1,
// and 0 (background) elsewhere. The classes are "background"
// followed by src's (at most 255 of them). Everything follows from seed.
// n must be ≥ 0, and the n canvases' pixels within limits.TensorElements.
func Canvases(src *Dataset, n int, seed uint64, o CanvasOptions) (*Dataset, error) {
	o.defaults()
	if src == nil {
		return nil, fmt.Errorf("data: canvases need a grey classification data set, got none (nil)")
	}
	if src.C != 1 || src.Len() == 0 || src.IsSegmentation() || src.Files != nil {
		return nil, fmt.Errorf("data: canvases need a grey classification data set in memory, got %dx%dx%d with %d images", src.H, src.W, src.C, src.Len())
	}
	if err := src.Check(); err != nil {
		return nil, fmt.Errorf("data: canvases: %w", err)
	}
	if len(src.Classes) > 255 {
		return nil, fmt.Errorf("data: canvases: %d classes and the background do not fit a mask's 256 values", len(src.Classes))
	}
	if n < 0 {
		return nil, fmt.Errorf("data: %d canvases (want ≥ 0)", n)
	}
	if o.MaxScale > o.Side || o.MinScale < 1 || o.MinScale > o.MaxScale || o.MinItems < 1 || o.MinItems > o.MaxItems || o.MaxItems > MaxCanvasItems {
		return nil, fmt.Errorf("data: bad canvas options %+v", o)
	}
	// uint8 pixels and masks: bounded in bytes, as Open's maxCanvasSide.
	if o.Side > limits.ImageSide || float64(n)*float64(o.Side)*float64(o.Side) > float64(limits.TotalBytes/2) {
		return nil, fmt.Errorf("data: %d canvases of %dx%d and their masks take more than %d bytes (limits.TotalBytes)", n, o.Side, o.Side, limits.TotalBytes)
	}
	rng := tensor.NewRNG(seed)
	perm := rng.Perm(src.Len())
	next := 0
	s := o.Side
	d := &Dataset{H: s, W: s, C: 1, Pixels: make([]uint8, n*s*s), Masks: make([]uint8, n*s*s),
		Classes: append([]string{"background"}, src.Classes...)}
	type box struct{ y0, x0, y1, x1 int } // ink bounds, half-open
	for i := 0; i < n; i++ {
		img, mask := d.Image(i), d.Mask(i)
		var boxes []box
		items := o.MinItems + rng.IntN(o.MaxItems-o.MinItems+1)
		for k := 0; k < items; k++ {
			j := perm[next%len(perm)]
			next++
			size := o.MinScale + rng.IntN(o.MaxScale-o.MinScale+1)
			item, err := transform.Resize(src.Image(j), src.H, src.W, 1, size, size)
			if err != nil {
				return nil, err
			}
			ink := box{size, size, 0, 0}
			for y := 0; y < size; y++ {
				for x := 0; x < size; x++ {
					if item[y*size+x] > o.Threshold {
						ink = box{min(ink.y0, y), min(ink.x0, x), max(ink.y1, y+1), max(ink.x1, x+1)}
					}
				}
			}
			// Place the item where its ink touches no other item's, so that
			// every labelled pixel is visibly one item's; give up on it
			// after 30 tries.
			top, left, placed := 0, 0, false
			for try := 0; try < 30 && !placed; try++ {
				top, left = rng.IntN(s-size+1), rng.IntN(s-size+1)
				b := box{top + ink.y0, left + ink.x0, top + ink.y1, left + ink.x1}
				placed = true
				for _, o := range boxes {
					if b.y0 < o.y1+1 && o.y0 < b.y1+1 && b.x0 < o.x1+1 && o.x0 < b.x1+1 {
						placed = false
						break
					}
				}
				if placed {
					boxes = append(boxes, b)
				}
			}
			if !placed {
				continue
			}
			class := uint8(src.Labels[j] + 1)
			for y := 0; y < size; y++ {
				for x := 0; x < size; x++ {
					v := item[y*size+x]
					at := (top+y)*s + left + x
					img[at] = max(img[at], v)
					if v > o.Threshold {
						mask[at] = class
					}
				}
			}
		}
	}
	return d, nil
}

// CanvasSets returns the canvas task of a grey data set: train canvases
// from its training images and test canvases from its test images (5 and 1
// canvases for every 30 and 10 source images: 10,000 and 1,000 from MNIST).
func CanvasSets(train, test *Dataset, seed uint64, o CanvasOptions) (*Dataset, *Dataset, error) {
	if train == nil || test == nil {
		return nil, nil, fmt.Errorf("data: canvases need a training and a test set (got nil)")
	}
	tr, err := Canvases(train, train.Len()/6, seed, o)
	if err != nil {
		return nil, nil, err
	}
	te, err := Canvases(test, test.Len()/10, seed^0x7e57, o)
	if err != nil {
		return nil, nil, err
	}
	return tr, te, nil
}

// BorderWeights sets d.Weights to the weight map of Ronneberger et al.
// 2015, eq. 2: w(x) = w_c(x) + w0·exp(−(d1(x) + d2(x))²/(2σ²)), where w_c
// balances the class frequencies over the whole set (w_c = total /
// (classes · count of the class), normalised so the mean weight of a pixel
// is 1 before the border term), and d1, d2 are the distances to the nearest
// and second-nearest object, objects being the 4-connected regions of one
// non-background class. The border term is added to background pixels
// only, where it separates touching objects. The paper uses w0 = 10, σ = 5.
// Ignored pixels (Dataset.Ignore) weigh 0 and are no object. It returns an error, leaving d as it is, for a set without masks, one
// that fails Check, or w0 < 0 or σ ≤ 0 (or either not finite).
func (d *Dataset) BorderWeights(w0, sigma float64) error {
	switch {
	case d == nil || !d.IsSegmentation():
		return fmt.Errorf("data: border weights need a segmentation set (with masks)")
	case !(w0 >= 0) || math.IsInf(w0, 1) || !(sigma > 0) || math.IsInf(sigma, 1):
		return fmt.Errorf("data: border weights with w0 %g and σ %g (want w0 ≥ 0 and σ > 0, finite)", w0, sigma)
	}
	if err := d.Check(); err != nil {
		return fmt.Errorf("data: border weights: %w", err)
	}
	// Ignored pixels (Dataset.Ignore) are counted in no class, weigh 0,
	// and are no object: background to the distances.
	counts := make([]float64, len(d.Classes))
	total := 0.0
	for _, m := range d.Masks {
		if !d.Ignore.Is(m) {
			counts[m]++
			total++
		}
	}
	wc := make([]float64, len(counts))
	for c, n := range counts {
		if n > 0 {
			wc[c] = total / (float64(len(counts)) * n)
		}
	}
	d.Weights = make([]float32, len(d.Masks))
	n := d.H * d.W
	objects := make([]uint8, n)
	for i := 0; i < d.Len(); i++ {
		mask, w := d.Mask(i), d.Weights[i*n:(i+1)*n]
		for p, m := range mask {
			objects[p] = m
			if d.Ignore.Is(m) {
				objects[p] = 0
			}
		}
		d1, d2 := nearestTwo(objects, d.H, d.W)
		for p, m := range mask {
			if d.Ignore.Is(m) {
				w[p] = 0
				continue
			}
			v := wc[m]
			if m == 0 && !math.IsInf(d2[p], 1) {
				s := d1[p] + d2[p]
				v += w0 * math.Exp(-s*s/(2*sigma*sigma))
			}
			w[p] = float32(v)
		}
	}
	return nil
}

// nearestTwo returns, for every pixel, the distance to the nearest and the
// second-nearest object of a mask (+Inf where there are fewer objects).
func nearestTwo(mask []uint8, h, w int) (d1, d2 []float64) {
	labels, count := components(mask, h, w)
	d1, d2 = make([]float64, h*w), make([]float64, h*w)
	for i := range d1 {
		d1[i], d2[i] = math.Inf(1), math.Inf(1)
	}
	for obj := 1; obj <= count; obj++ {
		dist := distanceTransform(labels, int32(obj), h, w)
		for i, v := range dist {
			switch {
			case v < d1[i]:
				d1[i], d2[i] = v, d1[i]
			case v < d2[i]:
				d2[i] = v
			}
		}
	}
	return d1, d2
}

// components labels the 4-connected regions of equal non-zero mask value
// 1…count (0: background).
func components(mask []uint8, h, w int) ([]int32, int) {
	labels := make([]int32, h*w)
	count := int32(0)
	var stack []int
	for start, m := range mask {
		if m == 0 || labels[start] != 0 {
			continue
		}
		count++
		labels[start] = count
		stack = append(stack[:0], start)
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			y, x := p/w, p%w
			for _, q := range [4][2]int{{y - 1, x}, {y + 1, x}, {y, x - 1}, {y, x + 1}} {
				if q[0] < 0 || q[0] >= h || q[1] < 0 || q[1] >= w {
					continue
				}
				at := q[0]*w + q[1]
				if labels[at] == 0 && mask[at] == m {
					labels[at] = count
					stack = append(stack, at)
				}
			}
		}
	}
	return labels, int(count)
}

// distanceTransform returns the exact Euclidean distance from every pixel
// to the nearest pixel labelled obj (Felzenszwalb and Huttenlocher's
// separable transform of squared distances).
func distanceTransform(labels []int32, obj int32, h, w int) []float64 {
	const inf = 1e20
	f := make([]float64, h*w)
	for i, l := range labels {
		if l != obj {
			f[i] = inf
		}
	}
	buf := make([]float64, max(h, w))
	out := make([]float64, max(h, w))
	for x := 0; x < w; x++ { // columns
		for y := 0; y < h; y++ {
			buf[y] = f[y*w+x]
		}
		dt1(buf[:h], out[:h])
		for y := 0; y < h; y++ {
			f[y*w+x] = out[y]
		}
	}
	for y := 0; y < h; y++ { // rows
		dt1(f[y*w:(y+1)*w], out[:w])
		copy(f[y*w:(y+1)*w], out[:w])
	}
	for i, v := range f {
		f[i] = math.Sqrt(v)
	}
	return f
}

// dt1 is the 1-D squared distance transform of sampled function f: the
// lower envelope of the parabolas rooted at each sample.
func dt1(f, d []float64) {
	n := len(f)
	v := make([]int, n)
	z := make([]float64, n+1)
	k := 0
	z[0], z[1] = math.Inf(-1), math.Inf(1)
	for q := 1; q < n; q++ {
		s := ((f[q] + float64(q*q)) - (f[v[k]] + float64(v[k]*v[k]))) / float64(2*q-2*v[k])
		for s <= z[k] { // z[0] = −∞ ends the loop at k = 0
			k--
			s = ((f[q] + float64(q*q)) - (f[v[k]] + float64(v[k]*v[k]))) / float64(2*q-2*v[k])
		}
		k++
		v[k], z[k], z[k+1] = q, s, math.Inf(1)
	}
	k = 0
	for q := 0; q < n; q++ {
		for z[k+1] < float64(q) {
			k++
		}
		dq := float64(q - v[k])
		d[q] = dq*dq + f[v[k]]
	}
}

// SegFolder reads a segmentation folder: dir/images/NAME (any of
// imagefile.Extensions) and
// dir/masks/NAME.png, one mask per image with the image's size, holding
// class indices (the grey value of an 8-bit grey PNG — or the stored value
// of a 1-, 2- or 4-bit one: 0 and 1 for a 1-bit mask — or the palette
// index of a paletted one). Every image must have the size of the first; channels
// is 1 or 3. The classes are named by dir/classes.txt (one per line) if it
// exists, otherwise "0", "1", … up to the largest index found (a 255 is
// then an error, unless ignored: VOC's void far more often than a 256th
// class). The mask
// value ignore names, if set, is no class: its pixels count in no loss
// and no metric (Dataset.Ignore). It stops, with ctx's cause, once ctx is
// done.
func SegFolder(ctx context.Context, dir string, channels int, ignore Ignore) (*Dataset, error) {
	if ctx == nil {
		return nil, errors.New("data: SegFolder: nil context")
	}
	if channels != 1 && channels != 3 {
		return nil, fmt.Errorf("data: images need 1 or 3 channels, not %d", channels)
	}
	names, err := imageFiles(filepath.Join(dir, "images"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("data: %s has no images (%s)", filepath.Join(dir, "images"), strings.Join(imagefile.Extensions, ", "))
	}
	d := &Dataset{C: channels, Ignore: ignore}
	top := 0
	var maskPaths []string
	for _, name := range names {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if err := d.appendImage(filepath.Join(dir, "images", name)); err != nil {
			return nil, err
		}
		mp := filepath.Join(dir, "masks", strings.TrimSuffix(name, filepath.Ext(name))+".png")
		raw, err := imagefile.ReadFile(mp)
		var mimg image.Image
		if err == nil {
			if format, _, herr := imagefile.CheckHeader(raw, mp); herr == nil && format != "png" {
				// A lossy format's ringing invents classes at the edges.
				return nil, fmt.Errorf("data: mask %s is a %s image: masks must be PNG files of class indices", mp, format)
			}
			mimg, err = imagefile.Decode(raw, mp)
		}
		if err != nil {
			return nil, fmt.Errorf("data: the mask of %s: %w", name, err)
		}
		if mb := mimg.Bounds(); mb.Dy() != d.H || mb.Dx() != d.W {
			return nil, fmt.Errorf("data: mask %s is %dx%d, its image %dx%d", mp, mb.Dx(), mb.Dy(), d.W, d.H)
		}
		m, err := maskIndices(mimg, raw)
		if err != nil {
			return nil, fmt.Errorf("data: mask %s: %w", mp, err)
		}
		if depth := pngGreyDepth(raw); depth < 8 {
			// Go's decoder scales 1-, 2- and 4-bit grey to 0–255; the
			// indices are the stored values.
			step := uint8(255 / (1<<depth - 1))
			for i := range m {
				m[i] /= step
			}
		}
		for _, v := range m {
			if !ignore.Is(v) {
				top = max(top, int(v))
			}
		}
		d.Masks = append(d.Masks, m...)
		maskPaths = append(maskPaths, mp)
	}
	// classes.txt, when there is one, is a regular file of a bounded
	// size (a FIFO blocked, /dev/zero ran out of memory); one that cannot
	// be read is an error, not a reason to number the classes.
	if raw, err := limits.ReadFile(filepath.Join(dir, "classes.txt"), limits.HeaderBytes); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			d.Classes = append(d.Classes, strings.TrimSpace(l))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("data: %w", err)
	} else {
		// A 255 with nothing to say what it is: VOC's void, or the
		// foreground of a mask of 0 and 255, far more often than the last
		// of 256 classes (which made 256 classes, most of them empty, and
		// a mean IoU near 0).
		if top == 255 && !ignore.Set {
			return nil, fmt.Errorf("data: %s: masks hold the value 255 and there is no classes.txt: if 255 marks pixels to leave out (VOC's void), read the folder as segfolder,ignore=255:DIR; if the masks are of 0 and 255, store them as 0 and 1 (a 1-bit PNG reads as 0 and 1); if there are 256 classes, name them in classes.txt", dir)
		}
		for c := 0; c <= top; c++ {
			d.Classes = append(d.Classes, strconv.Itoa(c))
		}
	}
	// An ignored value that is a class, then a mask index beyond
	// classes.txt's classes, named by its file; and a set of nothing but
	// ignored pixels, which nothing could be learnt or scored on.
	if err := d.ignoredClass(); err != nil {
		return nil, fmt.Errorf("data: %s: %w", dir, err)
	}
	if ignore.Set && !slices.ContainsFunc(d.Masks, func(m uint8) bool { return !ignore.Is(m) }) {
		return nil, fmt.Errorf("data: %s: every mask pixel has the ignored value %d: nothing to train or score on", dir, ignore.Value)
	}
	px := d.H * d.W
	for i, mp := range maskPaths {
		for p, v := range d.Masks[i*px : (i+1)*px] {
			if int(v) >= len(d.Classes) && !ignore.Is(v) {
				return nil, fmt.Errorf("data: mask %s: value %d at pixel (%d, %d) is not one of the %d classes of %s%s", mp, v, p%d.W, p/d.W, len(d.Classes), filepath.Join(dir, "classes.txt"), ignoreHint(ignore))
			}
		}
	}
	return d, d.Check()
}

// ignoreHint is what an error about a mask value outside the classes
// adds when no value is ignored: how to ignore one.
func ignoreHint(ignore Ignore) string {
	if ignore.Set {
		return ""
	}
	return " (if it marks pixels to leave out, as VOC's 255 does, read the folder as segfolder,ignore=V:DIR)"
}

// pngGreyDepth returns the bit depth of a grey PNG (colour type 0) from
// its header, and 8 for anything else.
func pngGreyDepth(b []byte) int {
	if h, ok := pngheader.Read(b); ok && h.Colour == 0 {
		switch h.Depth {
		case 1, 2, 4:
			return h.Depth
		}
	}
	return 8
}

// pngMaskKind names, for an error, the kind of a PNG that is no mask of
// class indices, from its header: what the user saved it as.
func pngMaskKind(b []byte) string {
	h, ok := pngheader.Read(b)
	switch {
	case !ok:
	case h.Colour == 0 && h.Depth == 16:
		return "a 16-bit grey PNG"
	case h.Colour == 0:
		return "a grey PNG with a transparent colour (a tRNS chunk)"
	case h.Colour == 2:
		return "an RGB PNG: colours are no class indices; store each pixel's class as its grey value (or as a palette index)"
	case h.Colour == 4:
		return "a grey PNG with alpha"
	case h.Colour == 6:
		return "an RGBA PNG: colours are no class indices; store each pixel's class as its grey value (or as a palette index)"
	}
	return "not a PNG whose header could be read"
}

// maskIndices returns the class index of every pixel of a mask image,
// decoded from the PNG file raw.
func maskIndices(img image.Image, raw []byte) ([]uint8, error) {
	b := img.Bounds()
	out := make([]uint8, 0, b.Dx()*b.Dy())
	switch m := img.(type) {
	case *image.Paletted:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				out = append(out, m.ColorIndexAt(x, y))
			}
		}
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				out = append(out, m.GrayAt(x, y).Y)
			}
		}
	default:
		return nil, fmt.Errorf("a mask must be a grey PNG (8, 4, 2 or 1 bits, no alpha) or a paletted PNG of class indices, this one is %s", pngMaskKind(raw))
	}
	return out, nil
}
