package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/image/bmp"

	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/internal/fixture"
)

// writeImage encodes img into path ("png", "jpeg", "gif" or "bmp" by the
// extension), creating the folders.
func writeImage(t *testing.T, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		err = png.Encode(&buf, img)
	case ".jpg", ".jpeg":
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 100})
	case ".gif":
		err = gif.Encode(&buf, img, nil)
	case ".bmp":
		err = bmp.Encode(&buf, img)
	default:
		t.Fatalf("no encoder for %s", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	writeBytes(t, path, buf.Bytes())
}

func writeBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeBytes(t, to, b)
}

// flat returns a w×h image of one colour in the given mode.
func flat(mode string, w, h int, c color.NRGBA) image.Image {
	r := image.Rect(0, 0, w, h)
	var img draw
	switch mode {
	case "gray":
		img = image.NewGray(r)
	case "gray16":
		img = image.NewGray16(r)
	case "rgba": // opaque colour, stored premultiplied
		img = image.NewRGBA(r)
	case "nrgba-half": // half transparent: the colour must survive (alpha is dropped)
		img = image.NewNRGBA(r)
		c.A = 128
	case "rgba64":
		img = image.NewRGBA64(r)
	case "nrgba64":
		img = image.NewNRGBA64(r)
	case "paletted":
		img = image.NewPaletted(r, color.Palette{color.Black, c})
	case "cmyk":
		img = image.NewCMYK(r)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	return img
}

type draw interface {
	image.Image
	Set(x, y int, c color.Color)
}

// batches runs one epoch of a loader and returns its batches, failing on
// a loader error.
func batches(t *testing.T, l *Loader, epoch int) []Batch {
	t.Helper()
	var out []Batch
	for b := range l.Epoch(context.Background(), epoch, 0) {
		out = append(out, b)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFolderFormats reads a folder of real files in every format and mode
// the decoders return, of mixed sizes and shapes: flat colours (grey for
// the grey modes), which the evaluation transform must keep exactly
// (PIL's resize of a flat image is flat: the fixed-point weights sum to
// 2^22 within ksize/2, far below the ½ that would change a byte), except
// JPEG, whose Y'CbCr round trip moves a colour by up to 2 levels per
// channel at quality 100 (the bound used, 3). The WebP and CMYK files are
// PIL's, compared with the evaluation transform of PIL's decoding.
func TestFolderFormats(t *testing.T) {
	dir := t.TempDir()
	type file struct {
		name, mode string
		w, h       int
		tol        int
	}
	files := []file{
		{"a.png", "gray", 40, 30, 0}, {"b.png", "gray16", 30, 45, 0}, {"c.png", "rgba", 64, 64, 0},
		{"d.png", "nrgba-half", 17, 9, 0}, {"e.png", "rgba64", 5, 300, 0}, {"f.png", "nrgba64", 300, 5, 0},
		{"g.png", "paletted", 1, 1, 0}, {"h.jpg", "rgba", 33, 21, 3}, {"i.jpeg", "gray", 21, 33, 3},
		{"j.gif", "paletted", 50, 40, 0}, {"k.bmp", "rgba", 23, 29, 0}, {"l.BMP", "gray", 9, 12, 0},
	}
	want := map[int][3]uint8{}
	for i, f := range files {
		c := color.NRGBA{uint8(20 * i), uint8(200 - 10*i), uint8(7 * i), 255}
		if strings.HasPrefix(f.mode, "gray") {
			c.G, c.B = c.R, c.R
		}
		class := []string{"ant", "bee"}[i%2]
		writeImage(t, filepath.Join(dir, "train", class, f.name), flat(f.mode, f.w, f.h, c))
		want[i] = [3]uint8{c.R, c.G, c.B}
	}
	copyFile(t, filepath.Join(pilDir, "webp", "lossy_alpha.webp"), filepath.Join(dir, "train", "bee", "z1.webp"))
	copyFile(t, filepath.Join(pilDir, "cmyk.jpg"), filepath.Join(dir, "train", "bee", "z2.jpg"))
	writeBytes(t, filepath.Join(dir, "train", "bee", "notes.txt"), []byte("not an image: ignored"))
	writeImage(t, filepath.Join(dir, "val", "ant", "v.png"), flat("gray", 3, 3, color.NRGBA{9, 9, 9, 255}))

	const size = 16
	train, test, err := Open(context.Background(), fmt.Sprintf("folder,size=%d:%s", size, dir), 3)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != len(files)+2 || test.Len() != 1 || !slices.Equal(train.Classes, []string{"ant", "bee"}) || train.Pixels != nil {
		t.Fatalf("train: %d files %v, classes %v; test: %d", train.Len(), train.Files, train.Classes, test.Len())
	}
	l := &Loader{Data: train, Batch: 5}
	var got []float32
	var labels []int32
	for _, b := range batches(t, l, 0) {
		if b.X.Shape[1] != size || b.X.Shape[2] != size || b.X.Shape[3] != 3 {
			t.Fatalf("batch shape %v", b.X.Shape)
		}
		got = append(got, b.X.Data...)
		labels = append(labels, b.Y...)
	}
	n := size * size * 3
	for k, path := range train.Files {
		px := got[k*n : (k+1)*n]
		name := filepath.Base(path)
		if labels[k] != train.Labels[k] {
			t.Errorf("%s: label %d, want %d", name, labels[k], train.Labels[k])
		}
		i := slices.IndexFunc(files, func(f file) bool { return f.name == name })
		if i < 0 { // PIL's files: the transform of PIL's decoding
			ref := map[string]string{"z1.webp": "webp/lossy_alpha.png", "z2.jpg": "cmyk.png"}[name]
			img := mustLoad(t, filepath.Join(pilDir, ref))
			b := img.Bounds()
			exp, err := transform.EvalTransform(transform.Pixels(img, 3), b.Dy(), b.Dx(), 3, transform.EvalResize(size), size, size)
			if err != nil {
				t.Fatal(err)
			}
			tol := map[string]int{"z1.webp": 0, "z2.jpg": 6}[name] // see TestWebPMatchesPIL, TestCMYK
			for j, v := range exp {
				if d := int(px[j]*255+0.5) - int(v); d > tol || d < -tol {
					t.Fatalf("%s: byte %d is %g·255, want %d", name, j, px[j], v)
				}
			}
			continue
		}
		for j, v := range px {
			if d := int(v*255+0.5) - int(want[i][j%3]); d > files[i].tol || d < -files[i].tol {
				t.Fatalf("%s (%s %dx%d): byte %d is %g·255, want %d", name, files[i].mode, files[i].w, files[i].h, j, v, want[i][j%3])
			}
		}
	}
	// Grey: the same files as one channel.
	grey, _, err := Open(context.Background(), fmt.Sprintf("folder,size=%d:%s", size, dir), 1)
	if err != nil || grey.C != 1 {
		t.Fatalf("grey: %v", err)
	}
	if b := batches(t, &Loader{Data: grey, Batch: 32}, 0); b[0].X.Shape[3] != 1 || b[0].X.Shape[0] != grey.Len() {
		t.Errorf("grey batch %v", b[0].X.Shape)
	}
}

// TestFolderLayouts checks the three layouts: train/ + test/, train/ +
// val/, and one folder of classes split per class by a fixed seed (the
// same split on every open, whatever the training seed).
func TestFolderLayouts(t *testing.T) {
	dir := t.TempDir()
	for c, class := range []string{"zebra", "ant", "mole"} {
		for i := range 10 + c {
			writeImage(t, filepath.Join(dir, class, fmt.Sprintf("%02d.png", i)), flat("gray", 4, 4, color.NRGBA{uint8(i), 0, 0, 255}))
		}
	}
	writeImage(t, filepath.Join(dir, "ant", "deeper", "x.png"), flat("gray", 4, 4, color.NRGBA{}))
	train, test, err := Open(context.Background(), "folder:"+dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(train.Classes, []string{"ant", "mole", "zebra"}) || train.C != 3 || train.H != DefaultImageSize {
		t.Fatalf("classes %v, %dx%dx%d", train.Classes, train.H, train.W, train.C)
	}
	// ant: 11 + 1 nested = 12 → 2 held out; mole 12 → 2; zebra 10 → 2.
	count := func(d *Dataset) [3]int {
		var n [3]int
		for _, l := range d.Labels {
			n[l]++
		}
		return n
	}
	if count(test) != [3]int{2, 2, 2} || count(train) != [3]int{10, 10, 8} {
		t.Errorf("split: train %v, test %v", count(train), count(test))
	}
	for _, f := range test.Files {
		if slices.Contains(train.Files, f) {
			t.Errorf("%s is in both sets", f)
		}
	}
	train2, test2, err := Open(context.Background(), "folder:"+dir, 3)
	if err != nil || !slices.Equal(test2.Files, test.Files) || !slices.Equal(train2.Files, train.Files) {
		t.Errorf("a second open split differently: %v", err)
	}
	// all: every image is the test set, and the same set the training one.
	train3, test3, err := Open(context.Background(), "folder,all:"+dir, 3)
	if err != nil || train3 != test3 || count(test3) != [3]int{12, 12, 10} {
		t.Errorf("folder,all: %v (train and test the same: %v)", err, train3 == test3)
	}
	one := t.TempDir()
	writeImage(t, filepath.Join(one, "a", "1.png"), flat("gray", 4, 4, color.NRGBA{}))
	writeImage(t, filepath.Join(one, "b", "1.png"), flat("gray", 4, 4, color.NRGBA{}))
	if _, _, err := Open(context.Background(), "folder:"+one, 3); err == nil || !strings.Contains(err.Error(), "two images") {
		t.Errorf("a split with nothing to hold out: %v", err)
	}
	// A class folder that is a link to a folder is read through it, as
	// ImageFolder reads it, and its files keep the link's name (WalkDir
	// alone lists such a root without entering it: "holds no usable
	// images").
	linked := t.TempDir()
	for _, class := range []string{"ant", "zebra"} {
		if err := os.Symlink(filepath.Join(dir, class), filepath.Join(linked, class)); err != nil {
			t.Fatal(err)
		}
	}
	train4, test4, err := Open(context.Background(), "folder,all:"+linked, 3)
	if err != nil || train4 != test4 || count(test4) != [3]int{12, 10, 0} || !strings.HasPrefix(test4.Files[0], filepath.Join(linked, "ant")+string(filepath.Separator)) {
		t.Errorf("class folders that are links: %v", err)
	}
	// train/ and test/: test classes take the training labels; a class
	// only in test/ is an error naming it.
	lay := t.TempDir()
	writeImage(t, filepath.Join(lay, "train", "b", "1.png"), flat("gray", 4, 4, color.NRGBA{}))
	writeImage(t, filepath.Join(lay, "train", "c", "1.png"), flat("gray", 4, 4, color.NRGBA{}))
	writeImage(t, filepath.Join(lay, "test", "c", "1.png"), flat("gray", 4, 4, color.NRGBA{}))
	_, test, err = Open(context.Background(), "folder:"+lay, 3)
	if err != nil || test.Len() != 1 || test.Labels[0] != 1 || len(test.Classes) != 2 {
		t.Errorf("test with a subset of the classes: %v", err)
	}
	writeImage(t, filepath.Join(lay, "test", "d", "1.png"), flat("gray", 4, 4, color.NRGBA{}))
	if _, _, err := Open(context.Background(), "folder:"+lay, 3); err == nil || !strings.Contains(err.Error(), `"d"`) {
		t.Errorf("a class only in test/: %v", err)
	}
	// all on a split folder names the folder of classes to read; a lone
	// test/ is read that way, as the message for folder:DIR says.
	if _, _, err := Open(context.Background(), "folder,all:"+lay, 3); err == nil || !strings.Contains(err.Error(), "folder,all:"+filepath.Join(lay, "train")) {
		t.Errorf("folder,all of a split folder: %v", err)
	}
	lone := t.TempDir()
	writeImage(t, filepath.Join(lone, "test", "c", "1.png"), flat("gray", 4, 4, color.NRGBA{}))
	if _, _, err := Open(context.Background(), "folder:"+lone, 3); err == nil || !strings.Contains(err.Error(), "folder,all:"+filepath.Join(lone, "test")) {
		t.Errorf("a lone test/: %v", err)
	}
	if _, test, err := Open(context.Background(), "folder,all:"+filepath.Join(lone, "test"), 3); err != nil || test.Len() != 1 {
		t.Errorf("folder,all of a lone test/: %v", err)
	}
	for spec, want := range map[string]string{
		"folder,size=0x:" + lay:   "not a number",
		"folder,size=9999:" + lay: "outside",
		"folder,zoom:" + lay:      "unknown folder option",
		"mnist,size=3":            "takes no options",
		// A repeated option took its last value without a word.
		"folder,size=64,size=32:" + lay:          `folder option size given twice ("size=64", then "size=32")`,
		"folder,skip-bad,size=8,skip-bad:" + lay: `folder option skip-bad given twice ("skip-bad", then "skip-bad")`,
		"folder,all,all:" + lay:                  "folder option all given twice",
		"folder:" + t.TempDir():                  "no class sub-folders",
	} {
		if _, _, err := Open(context.Background(), spec, 3); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", spec, err, want)
		}
	}
	for _, c := range []struct {
		spec          string
		size          int
		skip          bool
		want, wantErr string
	}{
		{"folder:d", 0, false, "folder:d", ""},
		{"folder:d", 160, false, "folder,size=160:d", ""},
		{"folder,size=64:d", 0, true, "folder,size=64,skip-bad:d", ""},
		{"folder,all:d", 32, false, "folder,size=32,all:d", ""},
		{"folder:d", 0, true, "folder,skip-bad:d", ""},
		{"mnist", 0, false, "mnist", ""},
		{"mnist", 32, false, "", "for folder:DIR"},
		{"folder,size=64,size=32:d", 16, false, "", "folder option size given twice"},
	} {
		got, err := FolderSpec(c.spec, c.size, c.skip)
		if got != c.want || (err == nil) != (c.wantErr == "") || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("FolderSpec(%q, %d, %v) = %q, %v", c.spec, c.size, c.skip, got, err)
		}
	}
	for spec, want := range map[string]string{
		"folder,skip-bad:d":             "folder:d",
		"folder,size=64,skip-bad,all:d": "folder,size=64,all:d",
		"folder,size=64:skip-bad":       "folder,size=64:skip-bad", // a folder named so
		"folder:d":                      "folder:d",
		"segfolder:skip-bad":            "segfolder:skip-bad",
		"mnist":                         "mnist",
	} {
		if got := WithoutSkipBad(spec); got != want {
			t.Errorf("WithoutSkipBad(%q) = %q, want %q", spec, got, want)
		}
	}
}

// skipBadHint is how an unreadable file's error, without SkipBadImages,
// says to skip such files: the flag of the commands that read folders
// first, then the field.
const skipBadHint = "; --skip-bad-images (ImageOptions.SkipBadImages), or a folder,skip-bad:DIR spec, skips unreadable files"

// TestFolderBadFiles checks broken files: refused at open with the file
// and the way to skip it named when the header is bad (not an image, a
// bomb), or in the epoch when only the pixel data is (a truncated PNG);
// with SkipBadImages each is left out with one warning naming it.
func TestFolderBadFiles(t *testing.T) {
	dir := t.TempDir()
	for i := range 6 {
		writeImage(t, filepath.Join(dir, "a", fmt.Sprintf("%d.png", i)), flat("gray", 20, 20, color.NRGBA{uint8(i), 0, 0, 255}))
	}
	writeBytes(t, filepath.Join(dir, "a", "3t.png"), fixture.CutPNG())
	if _, _, err := Open(context.Background(), "folder,size=8:"+dir, 1); err != nil {
		t.Fatalf("the truncated file's header is good: %v", err)
	}
	train, err := FolderWith(context.Background(), dir, &ImageOptions{Channels: 1, ImageSize: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &Loader{Data: train, Batch: 3}
	n := 0
	for range l.Epoch(context.Background(), 0, 0) {
		n++
	}
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "3t.png") || !strings.Contains(err.Error(), skipBadHint) || n != 1 {
		t.Errorf("a truncated file in the epoch: %d batches before it, error %v; want the file and the way to skip it named", n, err)
	}
	var log strings.Builder
	skip, err := FolderWith(context.Background(), dir, &ImageOptions{Channels: 1, ImageSize: 8, SkipBadImages: true, Log: &log}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen, skipped int
	for range 2 { // two epochs, one warning
		for _, b := range batches(t, &Loader{Data: skip, Batch: 3}, 0) {
			seen, skipped = seen+b.X.Shape[0], skipped+b.Skipped
		}
	}
	if seen != 12 || skipped != 2 || strings.Count(log.String(), "3t.png") != 1 {
		t.Errorf("skipping: %d images in two epochs, %d counted as left out (want 12, 2); log %q", seen, skipped, log.String())
	}
	// A batch of the truncated file alone has no image: left out (it was
	// an error ending the epoch), or with KeepEmpty handed over empty.
	for _, keep := range []bool{false, true} {
		var index []int
		empty := 0
		l := &Loader{Data: skip, Batch: 1, KeepEmpty: keep}
		for _, b := range batches(t, l, 0) {
			index = append(index, b.Index)
			if b.Empty() {
				if b.Skipped != 1 || len(b.Y) != 0 || b.X.Shape[0] != 0 {
					t.Errorf("KeepEmpty=%v: the empty batch %d has Skipped %d, %d labels, shape %v", keep, b.Index, b.Skipped, len(b.Y), b.X.Shape)
				}
				empty++
			}
		}
		wantBatches, wantEmpty := 6, 0
		if keep {
			wantBatches, wantEmpty = 7, 1
		}
		if len(index) != wantBatches || empty != wantEmpty {
			t.Errorf("KeepEmpty=%v: batches %v, %d empty; want %d batches, %d empty", keep, index, empty, wantBatches, wantEmpty)
		}
		if l.Skipped() != 1 { // a batch left out whole counts too
			t.Errorf("KeepEmpty=%v: the loader's Skipped %d, want 1", keep, l.Skipped())
		}
	}

	for name, b := range map[string][]byte{"bomb.png": fixture.PNGWithSize(50000, 50000), "text.jpg": []byte("hello")} {
		bad := t.TempDir()
		writeImage(t, filepath.Join(bad, "a", "ok.png"), flat("gray", 4, 4, color.NRGBA{}))
		writeBytes(t, filepath.Join(bad, "a", name), b)
		if _, err := FolderWith(context.Background(), bad, &ImageOptions{}, nil); err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), skipBadHint) {
			t.Errorf("%s: %v; want the file and the way to skip it named", name, err)
		}
		log.Reset()
		d, err := FolderWith(context.Background(), bad, &ImageOptions{SkipBadImages: true, Log: &log}, nil)
		if err != nil || d.Len() != 1 || !strings.Contains(log.String(), name) || strings.Contains(log.String(), skipBadHint) {
			t.Errorf("%s skipped: %v, %d images, log %q", name, err, d.Len(), log.String())
		}
	}
}

// TestFolderEmptyClass: a class sub-folder of a training folder that
// holds no image (empty, or only other files, or only bad images skipped)
// is refused, naming it, rather than becoming a class no image teaches;
// a test folder may lack a class's images.
func TestFolderEmptyClass(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, filepath.Join(dir, "a", "0.png"), flat("gray", 4, 4, color.NRGBA{}))
	writeBytes(t, filepath.Join(dir, "b", "notes.txt"), []byte("no images here"))
	if _, err := FolderWith(context.Background(), dir, &ImageOptions{}, nil); err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("a class folder without images: %v; want an error naming it", err)
	}
	if d, err := FolderWith(context.Background(), dir, &ImageOptions{}, []string{"a", "b"}); err != nil || d.Len() != 1 {
		t.Errorf("a test folder lacking a class's images: %v", err)
	}
	writeBytes(t, filepath.Join(dir, "b", "bad.png"), []byte("not a png"))
	var log strings.Builder
	if _, err := FolderWith(context.Background(), dir, &ImageOptions{SkipBadImages: true, Log: &log}, nil); err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("a class folder whose only image is skipped as bad: %v; want an error naming it", err)
	}
}

// TestFolderLazy checks that opening a folder decodes no image: 24 files
// of 240×240 RGB (4.1 MB decoded, 5.5 MB as RGBA) are opened with under
// 1 MiB allocated
// (paths, labels and the header reads), and the loader holds at most a
// batch's worth of decoded images.
func TestFolderLazy(t *testing.T) {
	dir := t.TempDir()
	for i := range 24 {
		writeImage(t, filepath.Join(dir, []string{"x", "y"}[i%2], fmt.Sprintf("%d.png", i)), flat("rgba", 240, 240, color.NRGBA{uint8(i), 1, 2, 255}))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d, err := FolderWith(context.Background(), dir, &ImageOptions{ImageSize: 32}, nil)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("opening 24 images of 240×240 allocated %d bytes", alloc)
	}
	if d.Len() != 24 || d.Pixels != nil {
		t.Errorf("%d images, %d pixel bytes held", d.Len(), len(d.Pixels))
	}
	mean, _, err := d.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The red channel holds 0…23 (mean 11.5), green 1, blue 2.
	if mean[0]*255 < 11.49 || mean[0]*255 > 11.51 || mean[1]*255 < 0.99 || mean[1]*255 > 1.01 {
		t.Errorf("mean %v ·255", mean)
	}
}

// TestFolderLoaderDeterministic checks that a folder's training batches
// (RandomResizedCrop + flip) depend only on the seed, the epoch and the
// batch: the same with 1 and 4 goroutines decoding, and when an epoch is
// resumed after its first batch; another epoch differs.
func TestFolderLoaderDeterministic(t *testing.T) {
	dir := t.TempDir()
	for i := range 10 {
		img := image.NewRGBA(image.Rect(0, 0, 30+7*i, 50-3*i))
		for p := range img.Pix {
			img.Pix[p] = uint8(p*7 + i)
		}
		writeImage(t, filepath.Join(dir, []string{"p", "q"}[i%2], fmt.Sprintf("%d.png", i)), img)
	}
	d, err := FolderWith(context.Background(), dir, &ImageOptions{ImageSize: 12}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &Loader{Data: d, Batch: 4, Shuffle: true, Augment: Augment{ResizedCrop: true, Flip: true}, Seed: 3}
	collect := func(epoch, skip, procs int) [][]float32 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		var out [][]float32
		for b := range l.Epoch(context.Background(), epoch, skip) {
			out = append(out, append(b.X.Data, float32(b.Y[0])))
		}
		if err := l.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := collect(1, 0, 1), collect(1, 0, 4)
	if len(a) != 3 {
		t.Fatalf("%d batches", len(a))
	}
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			t.Fatalf("batch %d differs between 1 and 4 goroutines", i)
		}
	}
	if r := collect(1, 1, 2); !slices.Equal(r[0], a[1]) {
		t.Error("a resumed epoch's first batch differs")
	}
	if slices.Equal(collect(2, 0, 2)[0], a[0]) {
		t.Error("epochs 1 and 2 gave the same first batch")
	}
	// Without augmentation: the evaluation transform, the same every epoch.
	l.Augment, l.Shuffle = Augment{}, false
	if !slices.Equal(collect(1, 0, 2)[0], collect(5, 0, 2)[0]) {
		t.Error("evaluation batches differ between epochs")
	}
}

// ExampleOpenFolder opens a folder of photos as 64×64 RGB samples and
// reads one training batch with torchvision's training augmentation.
func ExampleOpenFolder() {
	dir, _ := os.MkdirTemp("", "photos")
	defer os.RemoveAll(dir)
	for i, name := range []string{"chelsea", "coffee", "astronaut", "rocket"} {
		class := []string{"animal", "thing"}[i%2]
		os.MkdirAll(filepath.Join(dir, "train", class), 0o755)
		b, _ := os.ReadFile(filepath.Join("..", "testdata", "pil", "resize", name+".png"))
		os.WriteFile(filepath.Join(dir, "train", class, name+".png"), b, 0o644)
	}
	train, test, err := OpenFolder(context.Background(), dir, &ImageOptions{ImageSize: 64, Log: io.Discard})
	if err != nil {
		fmt.Println(err)
		return
	}
	l := &Loader{Data: train, Batch: 4, Shuffle: true, Augment: Augment{ResizedCrop: true, Flip: true}, Seed: 1}
	for b := range l.Epoch(context.Background(), 0, 0) {
		fmt.Println("batch", b.X.Shape, "classes", train.Classes, "test images", test.Len())
	}
	if err := l.Err(); err != nil {
		fmt.Println(err)
	}
	// Output: batch [2 64 64 3] classes [animal thing] test images 2
}

// panicWriter panics when written to.
type panicWriter struct{}

func (panicWriter) Write([]byte) (int, error) { panic("the log writer broke") }

// TestLoaderRecoversPanic: a panic on the loader's goroutine (here in the
// writer of a skipped file's warning) ends the epoch with an error naming
// it and its value, instead of ending the process.
func TestLoaderRecoversPanic(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, filepath.Join(dir, "a", "0.png"), flat("gray", 4, 4, color.NRGBA{}))
	writeBytes(t, filepath.Join(dir, "a", "1.png"), []byte("not a png"))
	d := &Dataset{H: 4, W: 4, C: 1, Files: []string{filepath.Join(dir, "a", "0.png"), filepath.Join(dir, "a", "1.png")},
		Images: &ImageOptions{Channels: 1, ImageSize: 4, SkipBadImages: true, Log: panicWriter{}}, Labels: []int32{0, 0}, Classes: []string{"a"}}
	l := &Loader{Data: d, Batch: 2}
	n, err := drain(l, 0)
	if n != 0 || err == nil || !strings.Contains(err.Error(), "panicked") || !strings.Contains(err.Error(), "the log writer broke") {
		t.Errorf("%d batches, error %v; want none and an error naming the panic", n, err)
	}
}

// TestOpenFolderNilOptions: nil options are the defaults (RGB samples of
// DefaultImageSize), not a nil dereference.
func TestOpenFolderNilOptions(t *testing.T) {
	dir := t.TempDir()
	for i := range 4 {
		writeImage(t, filepath.Join(dir, []string{"a", "b"}[i%2], fmt.Sprintf("%d.png", i)), flat("gray", 6, 6, color.NRGBA{}))
	}
	train, test, err := OpenFolder(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if train.C != 3 || train.H != DefaultImageSize || test.Len() != 2 || train.Images == nil || train.Images != test.Images {
		t.Errorf("nil options: %dx%dx%d, %d test images, options %+v", train.H, train.W, train.C, test.Len(), train.Images)
	}
	if d, err := FolderWith(context.Background(), dir, nil, nil); err != nil || d.C != 3 {
		t.Errorf("FolderWith nil options: %v", err)
	}
}

// TestFolderRefusesImagesNoPassCanRead: a very long, thin image (within
// the header limits, but 32×1,920,000 pixels once the evaluation resizes
// its shorter side for 28-pixel samples) is refused as the folder is read,
// naming it, or skipped with SkipBadImages (it was found at the test pass,
// after the whole training).
func TestFolderRefusesImagesNoPassCanRead(t *testing.T) {
	dir := t.TempDir()
	for i := range 3 {
		writeImage(t, filepath.Join(dir, "a", fmt.Sprintf("%d.png", i)), flat("gray", 20, 20, color.NRGBA{uint8(i), 0, 0, 255}))
	}
	writeImage(t, filepath.Join(dir, "a", "thin.png"), flat("gray", 60000, 1, color.NRGBA{}))
	_, err := FolderWith(context.Background(), dir, &ImageOptions{Channels: 1, ImageSize: 28}, nil)
	if err == nil || !strings.Contains(err.Error(), "thin.png: 60000×1 resized for evaluation") || !strings.Contains(err.Error(), "limits.ImageSide") {
		t.Errorf("a 60000×1 image at size 28: %v", err)
	}
	var log strings.Builder
	if d, err := FolderWith(context.Background(), dir, &ImageOptions{Channels: 1, ImageSize: 28, SkipBadImages: true, Log: &log}, nil); err != nil || d.Len() != 3 || !strings.Contains(log.String(), "thin.png") {
		t.Errorf("skipped: %v, %v, log %q", err, d, log.String())
	}
	if d, err := FolderWith(context.Background(), dir, &ImageOptions{Channels: 1, ImageSize: 1}, nil); err != nil || d.Len() != 4 {
		t.Errorf("at size 1 (shorter side 1: 1×60000 fits): %v, %v", err, d)
	}
}

// TestFolderOrderIsImageFolders: images in sub-folders of a class come in
// torchvision's ImageFolder order — sorted(os.walk(class)), each folder's
// files sorted: a folder's own files before its sub-folders', "a-b"
// before "a/b" (as Python compares the folders' paths) — which decides
// the held-out split and the order of evaluation.
func TestFolderOrderIsImageFolders(t *testing.T) {
	dir := t.TempDir()
	img := flat("gray", 2, 2, color.NRGBA{9, 9, 9, 255})
	for _, f := range []string{"c/a/b/x.png", "c/z.png", "c/a-b/y.png", "c/a/w.png", "c/a/b/v.png"} {
		writeImage(t, filepath.Join(dir, f), img)
	}
	d, err := Folder(context.Background(), dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := relFiles(dir, d.Files)
	// torchvision.datasets.ImageFolder(dir).samples, checked with 0.14.
	want := []string{"c/z.png", "c/a/w.png", "c/a-b/y.png", "c/a/b/v.png", "c/a/b/x.png"}
	if !slices.Equal(got, want) {
		t.Errorf("files %v, ImageFolder's %v", got, want)
	}
}

// relFiles returns files relative to root, with forward slashes.
func relFiles(root string, files []string) []string {
	var rel []string
	for _, f := range files {
		r, _ := filepath.Rel(root, f)
		rel = append(rel, filepath.ToSlash(r))
	}
	return rel
}

// TestFolderFollowsLinks: links to folders inside a class folder are
// followed, as ImageFolder follows them (os.walk(followlinks=True)), in
// its order and under the links' names (they were skipped); a link to a
// file is a file; a link back up to a folder that contains it is not
// followed (ImageFolder follows it until the system's link limit: 324
// samples here instead of 8).
func TestFolderFollowsLinks(t *testing.T) {
	dir := t.TempDir()
	img := flat("gray", 2, 2, color.NRGBA{9, 9, 9, 255})
	for _, f := range []string{"root/c/z.png", "root/c/a/w.png", "outside/o.png", "outside/deep/p.png", "root/c/m.png"} {
		writeImage(t, filepath.Join(dir, f), img)
	}
	for link, target := range map[string]string{"root/c/link": "../../outside", "root/c/a/zlink": "../../../outside", "root/c/a/file.png": "../../../outside/o.png", "root/c/a/up": ".."} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Skip("no symbolic links here:", err)
		}
	}
	root := filepath.Join(dir, "root")
	d, err := Folder(context.Background(), root, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := relFiles(root, d.Files)
	// torchvision.datasets.ImageFolder(root).samples (0.14), without the
	// loop.
	want := []string{"c/m.png", "c/z.png", "c/a/file.png", "c/a/w.png", "c/a/zlink/o.png", "c/a/zlink/deep/p.png", "c/link/o.png", "c/link/deep/p.png"}
	if !slices.Equal(got, want) {
		t.Errorf("files %v, ImageFolder's %v", got, want)
	}
}

// cancelAfter is a context whose Err is nil for its first n calls and
// context.Canceled from then on: a cancellation that arrives in the middle
// of a scan.
type cancelAfter struct {
	context.Context
	n int
}

func (c *cancelAfter) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// TestReadingStopsWhenCancelled: a folder's scan, its statistics and a
// segmentation folder's reading stop once the context is done, with its
// cause (a first Ctrl-C during the scan of a large folder did nothing: the
// command only stopped at a second), and the scan notices in the middle of
// a class folder, not only between classes.
func TestReadingStopsWhenCancelled(t *testing.T) {
	dir := t.TempDir()
	for i := range 130 { // one class: nothing between classes to notice the cancellation
		writeImage(t, filepath.Join(dir, "x", fmt.Sprintf("%03d.png", i)), flat("gray", 4, 4, color.NRGBA{uint8(i), 0, 0, 255}))
	}
	cause := errors.New("stopped by a test")
	done, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	if _, err := FolderWith(done, dir, &ImageOptions{ImageSize: 4}, nil); err != cause {
		t.Errorf("FolderWith, cancelled: %v; want the cause", err)
	}
	if _, _, err := Open(done, "folder,size=4:"+dir, 1); err != cause {
		t.Errorf("Open, cancelled: %v; want the cause", err)
	}
	// Cancelled after the first check (before the class "x"): the scan
	// stops inside x's 130 files.
	if _, err := FolderWith(&cancelAfter{context.Background(), 1}, dir, &ImageOptions{ImageSize: 4}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("FolderWith, cancelled in a class folder: %v; want context.Canceled", err)
	}
	d, err := FolderWith(context.Background(), dir, &ImageOptions{ImageSize: 4}, nil)
	if err != nil || d.Len() != 130 {
		t.Fatalf("FolderWith: %v", err)
	}
	if _, _, err := d.Stats(done); err != cause {
		t.Errorf("Stats, cancelled: %v; want the cause", err)
	}
	seg := t.TempDir()
	writeImage(t, filepath.Join(seg, "images", "a.png"), flat("gray", 4, 4, color.NRGBA{1, 0, 0, 255}))
	writeImage(t, filepath.Join(seg, "masks", "a.png"), flat("gray", 4, 4, color.NRGBA{1, 0, 0, 255}))
	if _, err := SegFolder(done, seg, 1, Ignore{}); err != cause {
		t.Errorf("SegFolder, cancelled: %v; want the cause", err)
	}
	if _, err := SegFolder(context.Background(), seg, 1, Ignore{}); err != nil {
		t.Errorf("SegFolder: %v", err)
	}
	// A nil context is an error naming it, not a nil dereference.
	var none context.Context
	for name, f := range map[string]func() error{
		"Open":       func() error { _, _, err := Open(none, "folder,size=4:"+dir, 1); return err },
		"OpenFolder": func() error { _, _, err := OpenFolder(none, dir, nil); return err },
		"Folder":     func() error { _, err := Folder(none, dir, 1); return err },
		"FolderWith": func() error { _, err := FolderWith(none, dir, nil, nil); return err },
		"SegFolder":  func() error { _, err := SegFolder(none, seg, 1, Ignore{}); return err },
		"Stats":      func() error { _, _, err := d.Stats(none); return err },
	} {
		if err := f(); err == nil || !strings.Contains(err.Error(), "nil context") {
			t.Errorf("%s with a nil context: %v", name, err)
		}
	}
}

const pilDir = "../testdata/pil"

func mustLoad(t *testing.T, path string) image.Image {
	t.Helper()
	img, err := imagefile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// A consumer that leaves an epoch early (cancelling, as Epoch asks) and
// starts another on the same loader: Skipped counts the new epoch's files
// only. The first epoch's goroutine, still making the batches it had room
// for, added to the count after Epoch reset it (10 of 50 trials).
func TestLoaderSkippedPerEpoch(t *testing.T) {
	dir := t.TempDir()
	for i := range 10 {
		writeBytes(t, filepath.Join(dir, "a", fmt.Sprintf("%d.png", i)), fixture.CutPNG())
	}
	d, err := FolderWith(context.Background(), dir, &ImageOptions{Channels: 1, ImageSize: 8, SkipBadImages: true, Log: io.Discard}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for trial := range 50 {
		l := &Loader{Data: d, Batch: 1, KeepEmpty: true}
		ctx, cancel := context.WithCancel(context.Background())
		<-l.Epoch(ctx, 0, 0)
		cancel()
		n := 0
		for range l.Epoch(context.Background(), 0, 0) {
			n++
		}
		if l.Skipped() != n {
			t.Fatalf("trial %d: %d batches of one unreadable file each, Skipped %d", trial, n, l.Skipped())
		}
	}
}

// A folder of classes keeps its split as photos are added: a file's place
// is its own name's hash, so one more file in a class of 20 (4 held out
// either way) moves no training image into the test set, and five more (5
// held out) at most one. (Held out by position in the class's file list,
// one added file put 3 of 8 trained images in the test set.)
func TestFolderSplitStableAsFilesAreAdded(t *testing.T) {
	dir := t.TempDir()
	add := func(class string, i int) {
		writeImage(t, filepath.Join(dir, class, fmt.Sprintf("%04d.png", i)), flat("gray", 4, 4, color.NRGBA{uint8(i), 0, 0, 255}))
	}
	for _, class := range []string{"a", "b"} {
		for i := 1; i <= 20; i++ {
			add(class, i)
		}
	}
	open := func() (train, test []string) {
		tr, te, err := Open(context.Background(), "folder,size=8:"+dir, 1)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Files, te.Files
	}
	trained, _ := open()
	moved := func() int {
		_, test := open()
		n := 0
		for _, f := range test {
			if slices.Contains(trained, f) {
				n++
			}
		}
		return n
	}
	add("a", 0) // sorts first: every position in the class moves
	if n := moved(); n != 0 {
		t.Errorf("one file added to a class of 20: %d training images now in the test set; want 0", n)
	}
	for i := 21; i < 25; i++ {
		add("a", i)
	}
	if n := moved(); n > 1 {
		t.Errorf("five files added to a class of 20: %d training images now in the test set; want at most 1", n)
	}
}

// FuzzFolderSpec feeds arbitrary data specs, image sizes and skip-bad
// settings to the folder spec functions: FolderSpec with neither setting
// returns the spec as it is; a spec it writes parses, keeps the folder,
// holds the size and skip-bad asked (the spec's own where not asked) and
// its all, is written again unchanged, and WithoutSkipBad takes only
// skip-bad out of it; a segfolder spec's ignored value reads back the same.
func FuzzFolderSpec(f *testing.F) {
	for _, s := range []string{"folder:d", "folder,size=64,skip-bad,all:d", "folder,size=08:a:b", "folder,all:skip-bad", "folder,size=0:d",
		"folder,size=64,size=32:d", "folder,x:d", "folder", "mnist", "segfolder,ignore=255:d", "segfolder,ignore=1,ignore=2:d"} {
		f.Add(s, 0, false)
		f.Add(s, 32, true)
	}
	f.Add("folder:d", -1, false)
	f.Add("folder:d", 4097, true)
	f.Fuzz(func(t *testing.T, spec string, size int, skip bool) {
		kind, dir, _ := strings.Cut(spec, ":")
		if g, err := segfolderSpec(kind); err == nil && g.Set {
			if again, err := segfolderSpec("segfolder,ignore=" + strconv.Itoa(int(g.Value))); err != nil || again != g {
				t.Fatalf("%q ignores %d, which reads back as %+v: %v", spec, g.Value, again, err)
			}
		}
		out, err := FolderSpec(spec, size, skip)
		if size == 0 && !skip {
			if out != spec || err != nil {
				t.Fatalf("FolderSpec(%q, 0, false) = %q, %v; want the spec as it is", spec, out, err)
			}
			return
		}
		if err != nil {
			return
		}
		was, err := folderSpec(kind, 0)
		if err != nil {
			t.Fatalf("FolderSpec(%q, %d, %v) = %q from options that do not parse: %v", spec, size, skip, out, err)
		}
		okind, odir, found := strings.Cut(out, ":")
		o, err := folderSpec(okind, 0)
		if !found || odir != dir || !IsFolderSpec(out) || err != nil {
			t.Fatalf("FolderSpec(%q, %d, %v) = %q: not a folder spec of %q (%v)", spec, size, skip, out, dir, err)
		}
		wantSize := size
		if size == 0 {
			wantSize = was.ImageSize
		}
		if o.ImageSize != wantSize || o.SkipBadImages != (skip || was.SkipBadImages) || o.All != was.All {
			t.Fatalf("FolderSpec(%q, %d, %v) = %q: size %d, skip-bad %v, all %v; want %d, %v, %v",
				spec, size, skip, out, o.ImageSize, o.SkipBadImages, o.All, wantSize, skip || was.SkipBadImages, was.All)
		}
		if size != 0 && FolderSize(out) != size {
			t.Fatalf("FolderSpec(%q, %d, %v) = %q, whose FolderSize is %d", spec, size, skip, out, FolderSize(out))
		}
		if again, err := FolderSpec(out, size, skip); again != out || err != nil {
			t.Fatalf("FolderSpec(%q, %d, %v) = %q, then %q, %v", spec, size, skip, out, again, err)
		}
		w := WithoutSkipBad(out)
		wkind, wdir, _ := strings.Cut(w, ":")
		wo, err := folderSpec(wkind, 0)
		if err != nil || wdir != dir || wo.SkipBadImages || wo.ImageSize != o.ImageSize || wo.All != o.All || FolderSize(w) != FolderSize(out) {
			t.Fatalf("WithoutSkipBad(%q) = %q (%v)", out, w, err)
		}
	})
}
