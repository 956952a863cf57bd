package imagefile

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/limits"
)

const pilDir = "../../testdata/pil"

func mustLoad(t *testing.T, path string) image.Image {
	t.Helper()
	img, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestWebPMatchesPIL decodes lossless and lossy WebP files (with and
// without alpha, odd and even sizes) made by PIL and compares them with
// libwebp's decoding as PIL saved it. Lossless WebP is exact by
// definition; lossy VP8 decoding is bit-exact by its specification, and
// webpRGB converts to RGB with libwebp's own integer arithmetic and
// chroma upsampling, so the tolerance is zero for both.
func TestWebPMatchesPIL(t *testing.T) {
	for _, name := range []string{"lossless", "lossless_alpha", "lossy", "lossy_alpha", "lossy_even"} {
		got := mustLoad(t, filepath.Join(pilDir, "webp", name+".webp"))
		want := mustLoad(t, filepath.Join(pilDir, "webp", name+".png"))
		if got.Bounds() != want.Bounds() {
			t.Fatalf("%s: %v, PIL %v", name, got.Bounds(), want.Bounds())
		}
		if worst, n := fixture.ByteDiff(t, transform.Pixels(got, 4), transform.Pixels(want, 4)); worst != 0 {
			t.Errorf("%s.webp: %d bytes differ from libwebp's, by up to %d", name, n, worst)
		}
	}
}

// TestEXIFOrientation loads JPEGs written by PIL with each EXIF
// orientation (2 to 8) of one picture stored turned or mirrored, and
// checks that each comes out upright: like the picture PIL's
// ImageOps.exif_transpose gives. The picture is of flat 8×8 blocks, which
// JPEG at quality 95 without chroma subsampling keeps within a few levels;
// the bound, 24, is far below the 100+ levels between any two blocks'
// colours, so a wrong orientation cannot pass.
func TestEXIFOrientation(t *testing.T) {
	want := transform.Pixels(mustLoad(t, filepath.Join(pilDir, "exif", "upright.png")), 3)
	for o := 2; o <= 8; o++ {
		path := filepath.Join(pilDir, "exif", "orientation"+string(rune('0'+o))+".jpg")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := exifOrientation(raw); got != o {
			t.Errorf("%s: orientation %d", path, got)
		}
		img := mustLoad(t, path)
		if b := img.Bounds(); b.Dx() != 24 || b.Dy() != 16 {
			t.Fatalf("orientation %d: %dx%d, want 24x16", o, b.Dx(), b.Dy())
		}
		if worst, _ := fixture.ByteDiff(t, transform.Pixels(img, 3), want); worst > 24 {
			t.Errorf("orientation %d: pixels differ from the upright picture by up to %d", o, worst)
		}
	}
	// Both byte orders of the TIFF header, and segments that lie.
	for _, bo := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		if o := exifOrientation(jpegWithExif(t, bo, 6)); o != 6 {
			t.Errorf("%v: orientation %d, want 6", bo, o)
		}
	}
	good := jpegWithExif(t, binary.BigEndian, 3)
	for name, b := range map[string][]byte{
		"segment past the end": append(append([]byte{}, good[:4]...), 0xff, 0xff),
		"truncated IFD":        good[:30],
		"not a JPEG":           []byte("GIF89a"),
		"orientation 9":        jpegWithExif(t, binary.BigEndian, 9),
	} {
		if o := exifOrientation(b); o != 0 {
			t.Errorf("%s: orientation %d, want 0 (none)", name, o)
		}
	}
}

// jpegWithExif encodes a small JPEG and inserts an APP1 Exif segment with
// the given orientation right after its SOI marker.
func jpegWithExif(t *testing.T, bo binary.AppendByteOrder, o uint16) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
		t.Fatal(err)
	}
	tiff := []byte("II*\x00")
	if bo == binary.BigEndian {
		tiff = []byte("MM\x00*")
	}
	tiff = bo.AppendUint32(tiff, 8) // IFD0 offset
	tiff = bo.AppendUint16(tiff, 1) // one entry
	tiff = bo.AppendUint16(tiff, 0x0112)
	tiff = bo.AppendUint16(tiff, 3) // SHORT
	tiff = bo.AppendUint32(tiff, 1)
	tiff = bo.AppendUint16(tiff, o)
	tiff = append(tiff, 0, 0, 0, 0, 0, 0) // padding, next IFD
	seg := append([]byte("Exif\x00\x00"), tiff...)
	out := []byte{0xff, 0xd8, 0xff, 0xe1}
	out = binary.BigEndian.AppendUint16(out, uint16(len(seg)+2))
	out = append(out, seg...)
	return append(out, buf.Bytes()[2:]...)
}

// TestOrient checks the eight orientations on a 2×3 picture against the
// EXIF specification's table: where the stored first row and column end
// up.
func TestOrient(t *testing.T) {
	// Stored 2 rows × 3 columns: 1 2 3 / 4 5 6.
	stored := []uint8{1, 2, 3, 4, 5, 6}
	want := map[int][]uint8{
		1: {1, 2, 3, 4, 5, 6},
		2: {3, 2, 1, 6, 5, 4}, // mirrored
		3: {6, 5, 4, 3, 2, 1}, // turned 180°
		4: {4, 5, 6, 1, 2, 3}, // flipped
		5: {1, 4, 2, 5, 3, 6}, // transposed
		6: {4, 1, 5, 2, 6, 3}, // stored turned 90° counter-clockwise: shown turned clockwise
		7: {6, 3, 5, 2, 4, 1}, // transversed
		8: {3, 6, 2, 5, 1, 4}, // stored turned 90° clockwise
	}
	for o, w := range want {
		got, h, wd := orient(stored, 2, 3, 1, o)
		if string(got) != string(w) || (o >= 5) != (h == 3 && wd == 2) {
			t.Errorf("orientation %d: %v (%dx%d), want %v", o, got, wd, h, w)
		}
	}
}

// TestCMYK decodes an Adobe CMYK JPEG made by PIL (Go's encoder cannot
// write one) and compares with PIL's conversion to RGB. Both decoders'
// inverse DCTs round differently (a level or two per channel), and the
// CMYK → RGB product (255−C)(255−K)/255 can double a difference in C or K:
// the bound is 6.
func TestCMYK(t *testing.T) {
	img := mustLoad(t, filepath.Join(pilDir, "cmyk.jpg"))
	if _, ok := img.(*image.CMYK); !ok {
		t.Fatalf("cmyk.jpg decodes as %T", img)
	}
	if worst, _ := fixture.ByteDiff(t, transform.Pixels(img, 3), transform.Pixels(mustLoad(t, filepath.Join(pilDir, "cmyk.png")), 3)); worst > 6 {
		t.Errorf("CMYK JPEG differs from PIL's RGB by up to %d", worst)
	}
}

// TestPixelModes converts images of every mode Go's decoders return and
// checks the bytes: colours not premultiplied by alpha (PIL's convert
// drops alpha), 16-bit values by their high byte, grey by ITU-R 601-2.
func TestPixelModes(t *testing.T) {
	r := image.Rect(0, 0, 1, 1)
	nrgba := image.NewNRGBA(r)
	nrgba.Pix = []uint8{200, 100, 50, 128}
	rgba64 := image.NewRGBA64(r)
	rgba64.SetRGBA64(0, 0, color.RGBA64{0xc8ff, 0x6400, 0x3210, 0xffff})
	nrgba64 := image.NewNRGBA64(r)
	nrgba64.SetNRGBA64(0, 0, color.NRGBA64{0xc812, 0x6434, 0x32ff, 0x1000})
	g16 := image.NewGray16(r)
	g16.SetGray16(0, 0, color.Gray16{0x7fff})
	pal := image.NewPaletted(r, color.Palette{color.Black, color.NRGBA{200, 100, 50, 3}}) // nearly transparent: the colour must survive
	pal.SetColorIndex(0, 0, 1)
	rgba := image.NewRGBA(image.Rect(0, 0, 2, 1))
	rgba.Pix = []uint8{200, 100, 50, 255, 100, 50, 25, 128} // premultiplied: (200, 100, 50) at half alpha
	cmyk := image.NewCMYK(r)
	cmyk.SetCMYK(0, 0, color.CMYK{55, 155, 205, 0}) // (255−C)(255−K)/255 = 200, 100, 50
	ycc := image.NewYCbCr(r, image.YCbCrSubsampleRatio444)
	ycc.Y[0], ycc.Cb[0], ycc.Cr[0] = color.RGBToYCbCr(200, 100, 50)
	for name, c := range map[string]struct {
		img  image.Image
		want [3]uint8
	}{
		"NRGBA half transparent": {nrgba, [3]uint8{200, 100, 50}},
		"RGBA64":                 {rgba64, [3]uint8{0xc8, 0x64, 0x32}},
		"NRGBA64":                {nrgba64, [3]uint8{0xc8, 0x64, 0x32}},
		"Gray16":                 {g16, [3]uint8{0x7f, 0x7f, 0x7f}},
		"Paletted":               {pal, [3]uint8{200, 100, 50}},
		"RGBA":                   {rgba.SubImage(image.Rect(0, 0, 1, 1)), [3]uint8{200, 100, 50}},
		"RGBA half transparent":  {rgba.SubImage(image.Rect(1, 0, 2, 1)), [3]uint8{199, 99, 49}}, // un-premultiplied in 16 bits: 100·257·65535/(128·257) = 51199.6 → high byte 199
		"CMYK":                   {cmyk, [3]uint8{200, 100, 50}},
	} {
		if got := transform.Pixels(c.img, 3); [3]uint8(got) != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
	if got := transform.Pixels(ycc, 3); absDiff(got[0], 200) > 1 || absDiff(got[1], 100) > 1 || absDiff(got[2], 50) > 1 {
		t.Errorf("YCbCr: %v, want 200 100 50 ± 1 (the round trip through 8-bit Y'CbCr)", got)
	}
	// PIL's L of (200, 100, 50): (19595·200 + 38470·100 + 7471·50 + 2^15) >> 16 = 124.
	if got := transform.Pixels(nrgba, 1); got[0] != 124 {
		t.Errorf("grey of (200, 100, 50): %d, want 124", got[0])
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

// bombs returns files of each format whose headers claim 50,000×50,000
// pixels (2.5 gigapixels: 10 GB as RGBA) in a few hundred bytes.
func bombs(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{"bomb.png": fixture.PNGWithSize(50000, 50000)}
	var buf bytes.Buffer
	if err := gif.Encode(&buf, image.NewPaletted(image.Rect(0, 0, 1, 1), palette.Plan9), nil); err != nil {
		t.Fatal(err)
	}
	g := bytes.Clone(buf.Bytes())
	binary.LittleEndian.PutUint16(g[6:], 50000) // logical screen width, height
	binary.LittleEndian.PutUint16(g[8:], 50000)
	out["bomb.gif"] = g
	buf.Reset()
	if err := bmp.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	bm := bytes.Clone(buf.Bytes())
	binary.LittleEndian.PutUint32(bm[18:], 50000) // BITMAPINFOHEADER width, height
	binary.LittleEndian.PutUint32(bm[22:], 50000)
	out["bomb.bmp"] = bm
	buf.Reset()
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
		t.Fatal(err)
	}
	j := bytes.Clone(buf.Bytes())
	sof := bytes.Index(j, []byte{0xff, 0xc0})
	binary.BigEndian.PutUint16(j[sof+5:], 50000) // SOF0: length (2), precision (1), height, width
	binary.BigEndian.PutUint16(j[sof+7:], 50000)
	out["bomb.jpg"] = j
	buf.Reset()
	if err := tiff.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1)), nil); err != nil {
		t.Fatal(err)
	}
	tf := bytes.Clone(buf.Bytes())
	ifd := int(binary.LittleEndian.Uint32(tf[4:]))
	for e := ifd + 2; e < ifd+2+12*int(binary.LittleEndian.Uint16(tf[ifd:])); e += 12 {
		if tag := binary.LittleEndian.Uint16(tf[e:]); tag == 256 || tag == 257 { // ImageWidth, ImageLength (SHORT)
			binary.LittleEndian.PutUint16(tf[e+8:], 50000)
		}
	}
	out["bomb.tif"] = tf
	out["bomb.pgm"] = []byte("P5 50000 50000 255\n\x00")
	return out
}

// TestBombsRefused checks that files claiming 50,000×50,000 pixels are
// refused, with the file named, from their headers alone: the allocations
// stay under 1 MiB (the file bytes and the decoders' small state; decoding
// would need 2.5 GB as grey, 10 GB as RGBA).
func TestBombsRefused(t *testing.T) {
	dir := t.TempDir()
	for name, b := range bombs(t) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Load(path)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "limits.Image") {
			t.Errorf("%s: %v", name, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%s: %d bytes allocated to refuse it", name, alloc)
		}
		if err := CheckFile(path); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: header check: %v", name, err)
		}
	}
	// 20,000×20,000 in 1 MB: over limits.ImagePixels (89,478,485).
	if _, err := Decode(fixture.PNGWithSize(20000, 20000), "big.png"); err == nil || !strings.Contains(err.Error(), "limits.ImagePixels") {
		t.Errorf("20000×20000: %v", err)
	}
	// Sizes whose pixels Go's PNG decoder refuses as a "dimension
	// overflow" of its int (from 16,384×16,384 on a 32-bit platform, from
	// 2³⁰×2³⁰ on a 64-bit one) get the limit's error, as smaller ones do;
	// with a bad checksum the header is corrupt.
	huge := fixture.PNGWithSize(1<<30, 1<<30)
	if _, err := Decode(huge, "huge.png"); err == nil || err.Error() != "imagefile: huge.png: image of 1073741824×1073741824 pixels has a side over 65536 (limits.ImageSide)" {
		t.Errorf("2³⁰×2³⁰: %v", err)
	}
	huge[29] ^= 1
	if _, err := Decode(huge, "huge.png"); err == nil || !strings.Contains(err.Error(), "imagefile: huge.png: corrupt png header") {
		t.Errorf("2³⁰×2³⁰ with a bad checksum: %v", err)
	}
}

// webpCanvasBomb is a 56-byte extended WebP whose canvas (VP8X) is 1×1
// and whose lossless image data is 16384×16384 of one colour.
const webpCanvasBomb = "52494646300000005745425056503858" + "0a000000000000000000000000005650" + "384c11000000" + "2fffffff0f0750e42ad4a3ff8188e87f0000"

// TestWebPCanvasMatchesImage: an extended WebP is refused at its header
// when its canvas and its image data disagree, as libwebp (and so PIL)
// refuse it: golang.org/x/image/webp reports the canvas and decodes the
// data, so webpCanvasBomb passed the limits as 1×1 and decoded to 268
// million pixels (1.15 GB). PIL's lossy WebP with alpha (VP8X, ALPH, VP8)
// still loads; with its canvas a pixel wider it is refused.
func TestWebPCanvasMatchesImage(t *testing.T) {
	bomb, err := hex.DecodeString(webpCanvasBomb)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = Decode(bomb, "bomb.webp")
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "canvas is 1×1 and its image 16384×16384") {
		t.Errorf("bomb.webp: %v; want its canvas and image sizes named", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("bomb.webp: %d bytes allocated to refuse it", alloc)
	}
	b, err := os.ReadFile(filepath.Join(pilDir, "webp/lossy_alpha.webp"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b[12:16]) != "VP8X" {
		t.Fatalf("lossy_alpha.webp holds %q first; want VP8X", b[12:16])
	}
	if _, err := Decode(b, "lossy_alpha.webp"); err != nil {
		t.Fatal(err)
	}
	wider := bytes.Clone(b)
	wider[24]++ // the canvas's width − 1, low byte (VP8X payload bytes 4–6)
	if _, err := Decode(wider, "wider.webp"); err == nil || !strings.Contains(err.Error(), "its canvas is") {
		t.Errorf("a canvas a pixel wider than the image: %v", err)
	}
}

// TestWideImageBounded is issue 21's 260-byte PNG of 60,000×1 pixels: it
// is within the header limits (60,000 pixels) and decodes, but the
// evaluation transform would resize its shorter side (1) to 256 and so
// its longer to 15,360,000: the resize size is refused before any
// allocation, and the whole path allocates under 4 MiB (the decoded
// 60,000 pixels as RGBA are 240 kB).
func TestWideImageBounded(t *testing.T) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 60000, 1))); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	img, err := Decode(buf.Bytes(), "wide.png")
	if err != nil {
		t.Fatal(err)
	}
	_, err = transform.EvalTransform(transform.Pixels(img, 3), 1, 60000, 3, 256, 224, 224)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "limits.Image") {
		t.Errorf("resizing 60000×1 to a shorter side of 256: %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("%d bytes allocated", alloc)
	}
	if _, err := transform.ResizeAA([]uint8{1, 2, 3}, 1, 1, 3, 1, 1<<17); err == nil {
		t.Error("a resize to 131072 columns was accepted")
	}
}

// TestCorruptImages checks that broken files are errors naming the file,
// never panics: not an image, a truncated PNG (its header intact), a
// header cut short, an empty file.
func TestCorruptImages(t *testing.T) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 64, 64))); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for name, b := range map[string][]byte{
		"text.png":      []byte("not an image at all"),
		"truncated.png": good[:len(good)/2],
		"header.png":    good[:20],
		"empty.jpg":     nil,
		"zero.png":      fixture.PNGWithSize(0, 10),
	} {
		if _, err := Decode(b, name); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.png")); err == nil || !strings.Contains(err.Error(), "missing.png") {
		t.Errorf("a missing file: %v", err)
	}
}

// FuzzDecodeImage feeds arbitrary bytes to the decoders behind the pixel
// limits: no panic, and an image that decodes is within the limits. The
// pixel limit is lowered to 2^16 while it runs: a header within the real
// limit may make a decoder allocate and fill up to 89 megapixels from a
// few bytes (truncated VP8 data reads as zeros, for one), which is
// allowed but would slow the fuzzer to a few inputs a minute.
func FuzzDecodeImage(f *testing.F) {
	pixels := limits.ImagePixels
	limits.ImagePixels = 1 << 16
	f.Cleanup(func() { limits.ImagePixels = pixels })
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 3, 2)))
	f.Add(buf.Bytes())
	buf.Reset()
	jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 9, 7)), nil)
	f.Add(buf.Bytes())
	if b, err := hex.DecodeString(webpCanvasBomb); err == nil {
		f.Add(b)
	}
	for _, name := range []string{"webp/lossy.webp", "webp/lossless_alpha.webp", "webp/lossy_alpha.webp", "exif/orientation6.jpg", "tiff/rgb_lzw_predictor.tif", "tiff/bitmap_g4.tif", "tiff/palette.tif", "pnm/p6_1000.pnm", "pnm/p1.pnm"} {
		if b, err := os.ReadFile(filepath.Join(pilDir, name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := Decode(b, "fuzz")
		if err != nil {
			return
		}
		r := img.Bounds()
		if r.Dx() < 1 || r.Dy() < 1 || r.Dx()*r.Dy() > limits.ImagePixels {
			t.Fatalf("decoded %v", r)
		}
		transform.Pixels(img, 3)
	})
}

// TestJPEGMatchesPIL decodes JPEGs written by PIL (4:2:0 of odd and even
// sizes, baseline and progressive, 4:2:2, 4:4:4, grey; narrow images of
// random colours whose chroma rows hold at most 2 samples, which libjpeg
// repeats instead of interpolating; quality 90) and
// compares them with libjpeg's decoding as PIL saved it. jpegRGB upsamples
// chroma and converts to RGB with libjpeg's own integer arithmetic; what
// differs is the inverse DCT (Go's and libjpeg's are both accurate to IEEE
// 1180: each Y, Cb and Cr sample within one level of the exact transform).
// So R = Y + 1.402 (Cr − 128) may be off by 1 + 1.402, G by 1 + 0.344 +
// 0.714 and B by 1 + 1.772 levels before rounding: 3 levels at most.
// (With Go's own conversion, which repeats each chroma sample instead of
// interpolating, 4:2:0 and 4:2:2 differed by up to 14 levels, on half
// the bytes.)
func TestJPEGMatchesPIL(t *testing.T) {
	for _, name := range []string{"s420_odd", "s420_even", "s420_progressive", "s422_odd", "s444_odd", "grey", "s420_narrow3", "s420_narrow1", "s422_narrow4", "s420_progressive_narrow", "s440_odd", "s440_narrow2"} {
		got := mustLoad(t, filepath.Join(pilDir, "jpeg", name+".jpg"))
		want := mustLoad(t, filepath.Join(pilDir, "jpeg", name+".png"))
		if got.Bounds() != want.Bounds() {
			t.Fatalf("%s: %v, PIL %v", name, got.Bounds(), want.Bounds())
		}
		worst, n := fixture.ByteDiff(t, transform.Pixels(got, 3), transform.Pixels(want, 3))
		if worst > 3 {
			t.Errorf("%s.jpg: %d bytes differ from libjpeg's, by up to %d (bound 3)", name, n, worst)
		}
		t.Logf("%s.jpg: %d of %d bytes differ from libjpeg's, by up to %d", name, n, 3*got.Bounds().Dx()*got.Bounds().Dy(), worst)
	}
}

// TestUnsupportedImagesRefusedAtTheHeader: files that Go's decoders cannot
// read though their headers look fine are refused by the header check —
// the folder scan — naming what they are (an arithmetic-coded JPEG was
// "corrupt: unknown marker"; a progressive JPEG with restart intervals and
// subsampled colour, and an animated WebP, passed the scan and stopped a
// run in the middle of an epoch). Fixtures: gen_fixtures.py's
// unsupported_fixtures (cjpeg, PIL), which PIL reads.
func TestUnsupportedImagesRefusedAtTheHeader(t *testing.T) {
	for file, says := range map[string]string{
		"arithmetic.jpg":          "an arithmetic-coded JPEG",
		"progressive_restart.jpg": "a progressive JPEG with restart intervals and subsampled colour",
		"animated.webp":           "an animated WebP",
	} {
		path := filepath.Join(pilDir, "unsupported", file)
		if err := CheckFile(path); err == nil || !strings.Contains(err.Error(), says) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: header check %v; want it named as %s", file, err, says)
		}
	}
	// A GIF whose first image extends past its screen (Go's decoder:
	// "frame bounds larger than image bounds"; PIL enlarges the screen) is
	// refused at its header, not in the middle of an epoch.
	var buf bytes.Buffer
	if err := gif.Encode(&buf, image.NewPaletted(image.Rect(0, 0, 5, 6), color.Palette{color.Black, color.White}), nil); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	i, ok := gifFirstImage(b)
	if !ok {
		t.Fatal("no image descriptor in Go's GIF")
	}
	if _, err := Decode(b, "inside.gif"); err != nil {
		t.Fatalf("the GIF as written: %v", err)
	}
	b[i+1] = 3 // left: the 5-wide image at x = 3 on the 5×6 screen
	path := filepath.Join(t.TempDir(), "outside.gif")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(path); err == nil || !strings.Contains(err.Error(), "first image (5×6 at 3,0) extends past its 5×6 screen") {
		t.Errorf("outside.gif: header check %v; want the image and screen named", err)
	}
	// Progressive JPEGs with restarts but no subsampling, and without
	// restarts, decode (the fixtures of TestJPEGMatchesPIL cover them).
	for _, file := range []string{"s420_progressive.jpg", "s444_odd.jpg"} {
		if err := CheckFile(filepath.Join(pilDir, "jpeg", file)); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}

// TestGIFTransparentColour: a GIF's transparent palette entry reads as
// the colour its table holds, as PIL's convert("RGB") reads it (Go's
// decoder makes it black).
func TestGIFTransparentColour(t *testing.T) {
	dir := filepath.Join(pilDir, "unsupported")
	got := transform.Pixels(mustLoad(t, filepath.Join(dir, "transparent.gif")), 3)
	want := transform.Pixels(mustLoad(t, filepath.Join(dir, "transparent.png")), 3)
	if !slices.Equal(got, want) {
		t.Errorf("GIF with a transparent entry: %v, PIL %v", got, want)
	}
}

// TestPNGShortPalette: a paletted PNG (1, 2, 4 and 8 bits; one with a
// tRNS chunk) whose pixels index past its PLTE reads as PIL's
// convert("RGB") reads it, such an index i as grey (i, i, i): Go's decoder
// made them black (testdata/pil/palette, gen_fixtures.py).
func TestPNGShortPalette(t *testing.T) {
	dir := filepath.Join(pilDir, "palette")
	for _, name := range []string{"short1", "short2", "short4", "short8", "short8_trns"} {
		got := transform.Pixels(mustLoad(t, filepath.Join(dir, name+".png")), 3)
		want := transform.Pixels(mustLoad(t, filepath.Join(dir, name+"_rgb.png")), 3)
		if !slices.Equal(got, want) {
			t.Errorf("%s.png: %v, PIL %v", name, got, want)
		}
	}
}

// TestEXIFOrientationLong: an Orientation tag stored as a LONG, as some
// writers store it, is applied as a SHORT one is (PIL reads both).
func TestEXIFOrientationLong(t *testing.T) {
	for _, tc := range []struct {
		typ  uint16
		val  []byte
		want int
	}{
		{3, []byte{6, 0, 0, 0}, 6},
		{4, []byte{6, 0, 0, 0}, 6},
		{4, []byte{0, 0, 1, 0}, 0}, // 65536: out of range
		{5, []byte{6, 0, 0, 0}, 0}, // a RATIONAL: not an orientation
	} {
		ifd := []byte("II*\x00\x08\x00\x00\x00\x01\x00\x12\x01")
		ifd = binary.LittleEndian.AppendUint16(ifd, tc.typ)
		ifd = append(ifd, 1, 0, 0, 0)
		ifd = append(ifd, tc.val...)
		if got := tiffOrientation(ifd); got != tc.want {
			t.Errorf("type %d, value % x: orientation %d, want %d", tc.typ, tc.val, got, tc.want)
		}
	}
}

// TestGIFCanvas: a GIF whose first image is smaller than its canvas reads
// as PIL reads it: the canvas, the image at its place, the rest filled
// with palette entry 0 (Go's decoder returned the 5×5 image alone).
func TestGIFCanvas(t *testing.T) {
	dir := filepath.Join(pilDir, "unsupported")
	img := mustLoad(t, filepath.Join(dir, "canvas.gif"))
	want := mustLoad(t, filepath.Join(dir, "canvas.png"))
	if img.Bounds() != want.Bounds() || !slices.Equal(transform.Pixels(img, 3), transform.Pixels(want, 3)) {
		t.Errorf("GIF of a 5×5 image on an 11×9 canvas: %v %v, PIL %v %v", img.Bounds(), transform.Pixels(img, 3), want.Bounds(), transform.Pixels(want, 3))
	}
}
