package data

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/residual-nn/residual/tensor"
)

func TestCanvases(t *testing.T) {
	train, _, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	src := train.Subset([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	a, err := Canvases(src, 20, 3, CanvasOptions{Side: 48})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Canvases(src, 20, 3, CanvasOptions{Side: 48})
	if !bytes.Equal(a.Pixels, b.Pixels) || !bytes.Equal(a.Masks, b.Masks) {
		t.Error("the same seed gave different canvases")
	}
	if err := a.Check(); err != nil || a.Len() != 20 || len(a.Classes) != 11 || a.Classes[0] != "background" {
		t.Fatalf("check %v, %d canvases, classes %v", err, a.Len(), a.Classes)
	}
	fg := 0
	for i, m := range a.Masks {
		if m != 0 {
			fg++
			if a.Pixels[i] <= 127 {
				t.Fatalf("pixel %d is %d but labelled %d", i, a.Pixels[i], m)
			}
		}
	}
	if frac := float64(fg) / float64(len(a.Masks)); frac < 0.05 || frac > 0.5 {
		t.Errorf("%.3f of the pixels are foreground", frac)
	}
	if _, err := Canvases(src, 1, 3, CanvasOptions{Side: 30}); err == nil {
		t.Error("items larger than the canvas were accepted")
	}
	if _, err := Canvases(a, 1, 3, CanvasOptions{}); err == nil {
		t.Error("canvases of canvases were accepted")
	}
}

// TestDistanceTransform compares the separable transform with brute force.
func TestDistanceTransform(t *testing.T) {
	rng := tensor.NewRNG(8)
	const h, w = 13, 17
	mask := make([]uint8, h*w)
	for i := range mask {
		if rng.Float64() < 0.08 {
			mask[i] = uint8(1 + rng.IntN(2))
		}
	}
	labels, n := components(mask, h, w)
	if n < 3 {
		t.Fatalf("only %d objects", n)
	}
	for obj := int32(1); obj <= int32(n); obj++ {
		got := distanceTransform(labels, obj, h, w)
		for p := range got {
			want := math.Inf(1)
			for q, l := range labels {
				if l == obj {
					dy, dx := float64(p/w-q/w), float64(p%w-q%w)
					want = math.Min(want, math.Hypot(dy, dx))
				}
			}
			if math.Abs(got[p]-want) > 1e-9 {
				t.Fatalf("object %d, pixel %d: %g, brute force %g", obj, p, got[p], want)
			}
		}
	}
}

// TestBorderWeights checks the weight map on two objects with a narrow gap.
func TestBorderWeights(t *testing.T) {
	const h, w = 10, 20
	d := &Dataset{H: h, W: w, C: 1, Pixels: make([]uint8, h*w), Masks: make([]uint8, h*w), Classes: []string{"bg", "a"}}
	for y := 2; y < 8; y++ {
		for x := 2; x < 8; x++ {
			d.Masks[y*w+x] = 1
			d.Masks[y*w+x+8] = 1 // a second square, 2 px to the right
		}
	}
	if err := d.BorderWeights(10, 5); err != nil {
		t.Fatal(err)
	}
	gap, far, inside := d.Weights[5*w+8], d.Weights[0*w+19], d.Weights[5*w+4]
	if !(gap > far+5 && far >= inside*0.1) {
		t.Errorf("weights: gap %g, far background %g, object %g", gap, far, inside)
	}
	// Class balance: 72 object pixels of 200 weigh more than background ones.
	if wb, wo := d.Weights[9*w+0], inside; wo <= wb*0.5 || wo < 1 {
		t.Errorf("object weight %g, background %g", wo, wb)
	}
}

func writeImagePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func TestSegFolder(t *testing.T) {
	dir := t.TempDir()
	for i, name := range []string{"a", "b", "c"} {
		img := image.NewRGBA(image.Rect(0, 0, 6, 4))
		mask := image.NewGray(image.Rect(0, 0, 6, 4))
		for p := range mask.Pix {
			mask.Pix[p] = uint8((p + i) % 3)
			img.Set(p%6, p/6, color.RGBA{uint8(40 * mask.Pix[p]), 0, 0, 255})
		}
		writeImagePNG(t, filepath.Join(dir, "images", name+".png"), img)
		writeImagePNG(t, filepath.Join(dir, "masks", name+".png"), mask)
	}
	d, err := SegFolder(context.Background(), dir, 3, Ignore{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 3 || d.H != 4 || d.W != 6 || len(d.Classes) != 3 || d.Mask(1)[0] != 1 || d.Image(1)[0] != 40 {
		t.Fatalf("read %d images %dx%d, classes %v", d.Len(), d.H, d.W, d.Classes)
	}
	// Paletted masks hold indices too.
	pal := image.NewPaletted(image.Rect(0, 0, 6, 4), color.Palette{color.Black, color.White, color.Gray{128}})
	pal.Pix[0] = 2
	writeImagePNG(t, filepath.Join(dir, "masks", "c.png"), pal)
	if d, err = SegFolder(context.Background(), dir, 1, Ignore{}); err != nil || d.Mask(2)[0] != 2 {
		t.Fatalf("paletted mask: %v", err)
	}
	// 1-, 2- and 4-bit grey masks hold their stored values as indices
	// (Go's decoder scales them to 0–255: a 1-bit mask of 0/1 read as
	// 0/255 and made 256 classes).
	for _, depth := range []int{1, 2, 4} {
		vals := make([]uint8, 24)
		for p := range vals {
			vals[p] = uint8(p % 2)
		}
		vals[5] = uint8(1<<depth - 1)
		greyPNG(t, filepath.Join(dir, "masks", "c.png"), 6, 4, depth, vals)
		d, err := SegFolder(context.Background(), dir, 1, Ignore{})
		if err != nil || !slices.Equal(d.Mask(2), vals) || len(d.Classes) != max(3, 1<<depth) {
			t.Errorf("a %d-bit grey mask: %v; read %v, want %v", depth, err, d.Mask(2), vals)
		}
	}
	bad := []struct {
		setup func()
		want  string
	}{
		// An index beyond classes.txt names its mask file and pixel.
		{func() { os.WriteFile(filepath.Join(dir, "classes.txt"), []byte("bg\nfg\n"), 0o644) }, "mask " + filepath.Join(dir, "masks", "a.png") + ": value 2 at pixel (2, 0) is not one of the 2 classes"},
		// A mask of another kind is named as it was saved (not as Go's
		// decoder's *image.RGBA): an opaque RGBA image is written as RGB.
		{func() {
			rgb := image.NewRGBA(image.Rect(0, 0, 6, 4))
			for p := 3; p < len(rgb.Pix); p += 4 {
				rgb.Pix[p] = 255 // opaque: written as RGB
			}
			writeImagePNG(t, filepath.Join(dir, "masks", "c.png"), rgb)
		}, "a grey PNG (8, 4, 2 or 1 bits, no alpha) or a paletted PNG of class indices, this one is an RGB PNG: colours are no class indices"},
		{func() { writeImagePNG(t, filepath.Join(dir, "masks", "c.png"), image.NewNRGBA(image.Rect(0, 0, 6, 4))) }, "this one is an RGBA PNG"},
		{func() {
			writeImagePNG(t, filepath.Join(dir, "masks", "c.png"), image.NewGray16(image.Rect(0, 0, 6, 4)))
		}, "this one is a 16-bit grey PNG"},
		{func() { writeImagePNG(t, filepath.Join(dir, "masks", "c.png"), image.NewGray(image.Rect(0, 0, 5, 4))) }, "is 5x4, its image 6x4"},
		// A JPEG named .png: its ringing invented classes at the edges.
		{func() {
			f, err := os.Create(filepath.Join(dir, "masks", "c.png"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := jpeg.Encode(f, image.NewGray(image.Rect(0, 0, 6, 4)), nil); err != nil {
				t.Fatal(err)
			}
		}, "mask " + filepath.Join(dir, "masks", "c.png") + " is a jpeg image: masks must be PNG files"},
		{func() { os.Remove(filepath.Join(dir, "masks", "c.png")) }, "the mask of c.png"},
		{func() {
			writeImagePNG(t, filepath.Join(dir, "masks", "c.png"), image.NewGray(image.Rect(0, 0, 6, 4)))
			os.WriteFile(filepath.Join(dir, "images", "d.png"), []byte("\x89PNG\r\n\x1a\ntruncated"), 0o644)
		}, "d.png"},
	}
	for _, b := range bad {
		b.setup()
		if _, err := SegFolder(context.Background(), dir, 3, Ignore{}); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("error %v, want one containing %q", err, b.want)
		}
	}
}

// TestLoaderMovesMasks checks that augmentation moves a mask with its
// image: the mask is foreground exactly where the image is non-zero.
func TestLoaderMovesMasks(t *testing.T) {
	train, _, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Canvases(train.Subset([]int{0, 1, 2, 3, 4, 5, 6, 7}), 8, 1, CanvasOptions{Side: 40, Threshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.BorderWeights(10, 5); err != nil {
		t.Fatal(err)
	}
	l := &Loader{Data: d, Batch: 4, Shuffle: true, Augment: Augment{Pad: 5, Flip: true}, Seed: 3}
	for b := range l.Epoch(context.Background(), 2, 0) {
		if len(b.Y) != b.X.Len() || len(b.W) != len(b.Y) {
			t.Fatalf("%d targets, %d weights for %v", len(b.Y), len(b.W), b.X.Shape)
		}
		for i, y := range b.Y {
			if (y != 0) != (b.X.Data[i] > 1.5/255) {
				t.Fatalf("pixel %d: value %g, class %d", i, b.X.Data[i], y)
			}
		}
	}
}

// TestCanvasesBadArguments: a nil source, a negative count, too many
// pixels and a source of over 255 classes are errors, not panics.
func TestCanvasesBadArguments(t *testing.T) {
	src := &Dataset{H: 28, W: 28, C: 1, Pixels: make([]uint8, 2*28*28), Labels: []int32{0, 1}, Classes: []string{"a", "b"}}
	many := *src
	many.Classes = make([]string, 256)
	for _, c := range []struct {
		name string
		src  *Dataset
		n    int
		o    CanvasOptions
		want string
	}{
		{"nil source", nil, 1, CanvasOptions{}, "nil"},
		{"negative count", src, -1, CanvasOptions{}, "-1 canvases"},
		{"too many bytes", src, 1 << 20, CanvasOptions{Side: 1 << 10}, "limits.TotalBytes"},
		{"256 classes", &many, 1, CanvasOptions{}, "256 classes"},
		{"a million items a canvas", src, 1, CanvasOptions{MinItems: 1e6, MaxItems: 1e6}, "bad canvas options"},
	} {
		if _, err := Canvases(c.src, c.n, 1, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error naming %q", c.name, err, c.want)
		}
	}
	if _, _, err := CanvasSets(nil, src, 1, CanvasOptions{}); err == nil {
		t.Error("CanvasSets of a nil training set accepted")
	}
	if d, err := Canvases(src, 0, 1, CanvasOptions{}); err != nil || d.Len() != 0 {
		t.Errorf("no canvases: %v", err)
	}
	// A bound given alone keeps its value; the other takes the default
	// (MaxItems 1 alone was replaced by 2…4).
	for _, c := range []struct {
		o    CanvasOptions
		want [4]int
	}{
		{CanvasOptions{MaxItems: 1}, [4]int{1, 1, 20, 40}},
		{CanvasOptions{MinItems: 6}, [4]int{6, 6, 20, 40}},
		{CanvasOptions{MinItems: 3}, [4]int{3, 4, 20, 40}},
		{CanvasOptions{MaxScale: 10}, [4]int{2, 4, 10, 10}},
		{CanvasOptions{MinScale: 30}, [4]int{2, 4, 30, 40}},
		{CanvasOptions{}, [4]int{2, 4, 20, 40}},
	} {
		o := c.o
		o.defaults()
		if got := [4]int{o.MinItems, o.MaxItems, o.MinScale, o.MaxScale}; got != c.want {
			t.Errorf("defaults of %+v: items and scales %v, want %v", c.o, got, c.want)
		}
	}
}

// TestBorderWeightsRefused: weights of a set without masks, or with bad
// parameters, are an error that leaves the set as it is.
func TestBorderWeightsRefused(t *testing.T) {
	cls := &Dataset{H: 2, W: 2, C: 1, Pixels: make([]uint8, 8), Labels: []int32{0, 1}, Classes: []string{"a", "b"}}
	if err := cls.BorderWeights(10, 5); err == nil || !strings.Contains(err.Error(), "segmentation") || cls.Weights != nil {
		t.Errorf("a classification set: %v", err)
	}
	seg := &Dataset{H: 2, W: 2, C: 1, Pixels: make([]uint8, 4), Masks: []uint8{0, 1, 0, 1}, Classes: []string{"bg", "a"}}
	for _, p := range [][2]float64{{-1, 5}, {10, 0}, {math.NaN(), 5}, {10, math.Inf(1)}} {
		if err := seg.BorderWeights(p[0], p[1]); err == nil || seg.Weights != nil {
			t.Errorf("w0 %g, σ %g: %v", p[0], p[1], err)
		}
	}
	seg.Masks[3] = 2 // not a class
	if err := seg.BorderWeights(10, 5); err == nil || !strings.Contains(err.Error(), "mask value 2") {
		t.Errorf("a mask value outside the classes: %v", err)
	}
	seg.Masks[3] = 1
	if err := seg.BorderWeights(10, 5); err != nil || len(seg.Weights) != 4 {
		t.Errorf("a good set: %v", err)
	}
}

// greyPNG writes a grey PNG of bit depth 1, 2 or 4 (which Go's encoder
// does not write) holding vals, one per pixel, row by row.
func greyPNG(t *testing.T, path string, w, h, depth int, vals []uint8) {
	t.Helper()
	chunk := func(out *bytes.Buffer, typ string, data []byte) {
		binary.Write(out, binary.BigEndian, uint32(len(data)))
		crc := crc32.NewIEEE()
		io.WriteString(crc, typ)
		crc.Write(data)
		out.WriteString(typ)
		out.Write(data)
		binary.Write(out, binary.BigEndian, crc.Sum32())
	}
	var raw bytes.Buffer
	rowBytes := (w*depth + 7) / 8
	for y := range h {
		row := make([]byte, 1+rowBytes) // filter 0, then the packed samples
		for x := range w {
			bit := x * depth
			row[1+bit/8] |= vals[y*w+x] << (8 - depth - bit%8)
		}
		raw.Write(row)
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(raw.Bytes())
	zw.Close()
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = byte(depth), 0 // grey
	chunk(&out, "IHDR", ihdr)
	chunk(&out, "IDAT", z.Bytes())
	chunk(&out, "IEND", nil)
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// segfolder:DIR reads DIR/train and DIR/test; a test mask with a class the
// training set lacks is named with its value and pixel, and test images of
// another size say both sizes (one message, "train and test differ in
// classes or image size", said neither).
func TestSegFolderSpec(t *testing.T) {
	dir := t.TempDir()
	write := func(set, name string, w, h int, top uint8) {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		mask := image.NewGray(image.Rect(0, 0, w, h))
		for p := range mask.Pix {
			mask.Pix[p] = uint8(p) % 3
		}
		mask.Pix[len(mask.Pix)-1] = top
		writeImagePNG(t, filepath.Join(dir, set, "images", name+".png"), img)
		writeImagePNG(t, filepath.Join(dir, set, "masks", name+".png"), mask)
	}
	write("train", "a", 6, 4, 2)
	write("test", "b", 6, 4, 1)
	train, test, err := Open(context.Background(), "segfolder:"+dir, 3)
	if err != nil || train.Len() != 1 || test.Len() != 1 || len(test.Classes) != 3 {
		t.Fatalf("segfolder: %v", err)
	}
	// A classes.txt beside train/ and test/ is refused, naming where it
	// belongs, rather than left unread with the classes numbered; with
	// train/classes.txt there it is not in the way.
	top := filepath.Join(dir, "classes.txt")
	os.WriteFile(top, []byte("background\ncat\ndog\n"), 0o644)
	if _, _, err := Open(context.Background(), "segfolder:"+dir, 3); err == nil || !strings.Contains(err.Error(), top+" is not read") || !strings.Contains(err.Error(), "move it to "+filepath.Join(dir, "train", "classes.txt")) {
		t.Errorf("classes.txt beside train/: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "train", "classes.txt"), []byte("background\ncat\ndog\n"), 0o644)
	if train, _, err := Open(context.Background(), "segfolder:"+dir, 3); err != nil || train.Classes[1] != "cat" {
		t.Errorf("classes.txt beside train/ and in it: %v", err)
	}
	os.Remove(top)
	os.Remove(filepath.Join(dir, "train", "classes.txt"))
	write("test", "c", 6, 4, 4)
	if _, _, err := Open(context.Background(), "segfolder:"+dir, 3); err == nil || !strings.Contains(err.Error(), "mask "+filepath.Join(dir, "test", "masks", "c.png")+": value 4 at pixel (5, 3) is not one of the training set's 3 classes") {
		t.Errorf("a test mask beyond the training classes: %v", err)
	}
	// The test set's classes.txt must name the same values alike (it was
	// replaced by the training set's without a look: masks scored under
	// swapped names); the same names, or none, are fine.
	os.Remove(filepath.Join(dir, "test", "masks", "c.png"))
	os.Remove(filepath.Join(dir, "test", "images", "c.png"))
	os.WriteFile(filepath.Join(dir, "train", "classes.txt"), []byte("background\ncat\ndog\n"), 0o644)
	for names, want := range map[string]string{"background\ncat\ndog\n": "", "background\ndog\ncat\n": `test/classes.txt names ["background" "dog" "cat"]`} {
		os.WriteFile(filepath.Join(dir, "test", "classes.txt"), []byte(names), 0o644)
		_, _, err := Open(context.Background(), "segfolder:"+dir, 3)
		if (want == "" && err != nil) || (want != "" && (err == nil || !strings.Contains(err.Error(), want))) {
			t.Errorf("test/classes.txt %q: %v; want %q", names, err, want)
		}
	}
	os.RemoveAll(filepath.Join(dir, "test"))
	write("test", "b", 8, 4, 1)
	if _, _, err := Open(context.Background(), "segfolder:"+dir, 3); err == nil || !strings.Contains(err.Error(), "the test images are 8x4, the training images 6x4") {
		t.Errorf("test images of another size: %v", err)
	}
}

// TestSegFolderIgnore: segfolder,ignore=255 reads VOC-style masks whose
// 255 marks pixels to ignore — no class (the classes are 0…2, not 0…255),
// the target IgnoreTarget in every batch (augmented or not: it moves with
// the image, and the padding of a shift is ignored too), weight 0 and no
// object in the border weights, whose class balance counts the other
// pixels only — and refuses an ignored value that is a class, a set of
// nothing but ignored pixels, or a bad option.
func TestSegFolderIgnore(t *testing.T) {
	dir := t.TempDir()
	for _, split := range []string{"train", "test"} {
		for i, name := range []string{"a", "b"} {
			img := image.NewGray(image.Rect(0, 0, 6, 4))
			mask := image.NewGray(image.Rect(0, 0, 6, 4))
			for p := range mask.Pix {
				mask.Pix[p] = uint8((p + i) % 3)
				if p%5 == 0 {
					mask.Pix[p] = 255
				}
				img.Pix[p] = mask.Pix[p] + 1 // 1…3, and 255 → 0 would be padding: kept 255 below
				if mask.Pix[p] == 255 {
					img.Pix[p] = 255
				}
			}
			writeImagePNG(t, filepath.Join(dir, split, "images", name+".png"), img)
			writeImagePNG(t, filepath.Join(dir, split, "masks", name+".png"), mask)
		}
	}
	// Without the option and without classes.txt, a 255 is refused, with
	// the ways out (it made 256 classes, most of them empty); with a
	// classes.txt of 256 names it is a class.
	if _, _, err := Open(context.Background(), "segfolder:"+dir, 1); err == nil || !strings.Contains(err.Error(), "read the folder as segfolder,ignore=255:DIR") {
		t.Errorf("255 without the option: %v", err)
	}
	names := make([]string, 256)
	for i := range names {
		names[i] = fmt.Sprint("class ", i)
	}
	for _, split := range []string{"train", "test"} {
		if err := os.WriteFile(filepath.Join(dir, split, "classes.txt"), []byte(strings.Join(names, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if tr, _, err := Open(context.Background(), "segfolder:"+dir, 1); err != nil || len(tr.Classes) != 256 {
		t.Errorf("256 named classes: %v", err)
	}
	for _, split := range []string{"train", "test"} {
		os.Remove(filepath.Join(dir, split, "classes.txt"))
	}
	train, test, err := Open(context.Background(), "segfolder,ignore=255:"+dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(train.Classes) != 3 || len(test.Classes) != 3 || !train.Ignore.Is(255) || !test.Ignore.Is(255) {
		t.Fatalf("classes %v, %v; ignore %+v", train.Classes, test.Classes, train.Ignore)
	}
	for _, aug := range []Augment{{}, {Pad: 2, Flip: true}} {
		l := &Loader{Data: train, Batch: 2, Augment: aug, Seed: 1}
		for b := range l.Epoch(context.Background(), 0, 0) {
			for p, y := range b.Y {
				// The image's pixel is its class + 1, or 255 where ignored,
				// or 0 where padded: padding is ignored too.
				v := int32(b.X.Data[p]*255 + 0.5)
				want := v - 1
				if v == 255 || v == 0 {
					want = IgnoreTarget
				}
				if y != want {
					t.Fatalf("augment %+v: pixel %d of mask value %d has target %d", aug, p, v, y)
				}
			}
		}
		if l.Err() != nil {
			t.Fatal(l.Err())
		}
	}
	if err := train.BorderWeights(10, 5); err != nil {
		t.Fatal(err)
	}
	for p, m := range train.Masks {
		if (m == 255) != (train.Weights[p] == 0) {
			t.Fatalf("pixel %d of mask value %d weighs %g", p, m, train.Weights[p])
		}
	}
	// The class balance alone (--class-weights): total / (classes · count)
	// over the pixels that count.
	if err := train.BorderWeights(0, 5); err != nil {
		t.Fatal(err)
	}
	var counts [3]float64
	total := 0.0
	for _, m := range train.Masks {
		if m != 255 {
			counts[m]++
			total++
		}
	}
	for p, m := range train.Masks {
		if m == 255 {
			continue
		}
		if want := total / (3 * counts[m]); math.Abs(float64(train.Weights[p])-want) > 1e-6*want {
			t.Fatalf("pixel %d of class %d weighs %g, want %g", p, m, train.Weights[p], want)
		}
	}
	// Every test pixel ignored: nothing to score on.
	all := image.NewGray(image.Rect(0, 0, 6, 4))
	for p := range all.Pix {
		all.Pix[p] = 255
	}
	for _, name := range []string{"a", "b"} {
		writeImagePNG(t, filepath.Join(dir, "test", "masks", name+".png"), all)
	}
	if _, _, err := Open(context.Background(), "segfolder,ignore=255:"+dir, 1); err == nil || !strings.Contains(err.Error(), "every mask pixel has the ignored value 255") {
		t.Errorf("a test set of ignored pixels: %v", err)
	}
	for opt, says := range map[string]string{
		"ignore=1":              `the ignored mask value 1 is also class "1"'s`,
		"ignore=256":            "must be a number from 0 to 255",
		"ignore=+25":            "must be a number from 0 to 255",
		"ignore=0255":           "must be a number from 0 to 255",
		"ignore=255,ignore=254": `"ignore=254": one ignored value only (ignore=255 given before)`,
		"void=255":              `unknown segfolder option "void=255"`,
	} {
		if _, _, err := Open(context.Background(), "segfolder,"+opt+":"+dir, 1); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v; want an error saying %q", opt, err, says)
		}
	}
}
