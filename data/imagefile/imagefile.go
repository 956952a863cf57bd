// Package imagefile reads image files as PIL reads them: JPEG (EXIF
// orientation applied, CMYK converted), PNG, GIF (the first frame on its
// canvas), BMP, WebP, TIFF (the first page, its orientation applied) and
// PBM/PGM/PPM. Every reader checks the header against package limits
// before any pixel is allocated, bounds what it reads, and turns the
// decoders' panics into errors naming the file. Package data's folders,
// package serve's image routes and the command line decode through it; a
// program that only infers needs it and package infer, not the data sets.
package imagefile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // registers GIF decoding
	_ "image/jpeg"
	_ "image/png"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/image/tiff"
	_ "golang.org/x/image/webp" // registers WebP decoding

	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/internal/bmp"
	"github.com/residual-nn/residual/internal/pngheader"
	_ "github.com/residual-nn/residual/internal/pnm" // registers PBM, PGM and PPM decoding
	"github.com/residual-nn/residual/limits"
)

// maxImageFile bounds the bytes read from one image file: the largest
// image limits.ImagePixels allows, stored uncompressed at 8 bytes a pixel
// (16-bit RGBA), plus 1 MiB of metadata. It stops a read of a device or an
// endless file, not a bomb (the header check does that).
func maxImageFile() int64 { return 8*int64(limits.ImagePixels) + 1<<20 }

// Extensions are the file name extensions (lower case) that the
// folder readers take as images; other files are ignored. They are
// torchvision's ImageFolder's, and .gif.
var Extensions = []string{".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}

// HasExtension reports whether a file name ends in one of Extensions, in
// any case.
func HasExtension(name string) bool {
	return slices.Contains(Extensions, strings.ToLower(filepath.Ext(name)))
}

// Load decodes a JPEG, PNG, GIF (its first frame), BMP, WebP, TIFF
// (its first page) or PBM/PGM/PPM file, upright: a JPEG's EXIF
// orientation is applied. The header is checked
// against limits.CheckImage before any pixel is allocated, so a file that
// claims 50,000×50,000 pixels is refused at the cost of reading its
// header. Errors name the file.
func Load(path string) (image.Image, error) {
	b, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(b, path)
}

// openImageFile opens path, following links, if it is a regular file or
// a FIFO (a pipe such as a shell's <(…)): a device, a socket or a folder
// is an error naming it. It opens as limits.OpenNoWait does: a FIFO that
// no process writes reads as empty at once, where os.Open would block for
// ever, beyond any signal's reach.
func openImageFile(path string) (*os.File, error) {
	f, err := limits.OpenNoWait(path)
	if err != nil {
		return nil, fmt.Errorf("imagefile: %w", err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() && st.Mode()&fs.ModeNamedPipe == 0 {
		err = fmt.Errorf("imagefile: %s: not a regular file but %s, so not an image", path, fileKind(st.Mode()))
	} else if err != nil {
		err = fmt.Errorf("imagefile: %w", err)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// fileKind names the kind of file, neither regular nor a FIFO, that a
// mode describes.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file (" + m.Type().String() + ")"
}

// ReadFile reads an image file whole, refusing one larger than
// maxImageFile.
func ReadFile(path string) ([]byte, error) {
	f, err := openImageFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	max := maxImageFile()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("imagefile: %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("imagefile: %s: more than %d bytes, too large for an image within limits.ImagePixels", path, max)
	}
	return b, nil
}

// Decode decodes an image file's bytes as Load does; name is
// used in errors.
func Decode(b []byte, name string) (img image.Image, err error) {
	format, cfg, err := CheckHeader(b, name)
	if err != nil {
		return nil, err
	}
	// The decoders are not ours: a panic on a crafted file is an error
	// naming the file, not a crash.
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("imagefile: %s: corrupt %s image (the decoder failed: %v)", name, format, r)
		}
	}()
	src := b
	if format == "tiff" {
		src = tiffOneStrip(b, cfg.Height)
		if err := tiffBlocksBounded(src); err != nil {
			return nil, fmt.Errorf("imagefile: %s: %w", name, err)
		}
	}
	switch format {
	case "tiff":
		img, err = tiff.Decode(bytes.NewReader(src)) // through io.ReaderAt: see DecodeConfig
	case "bmp": // ours, whatever else a program registers under "BM"
		img, err = bmp.Decode(bytes.NewReader(src))
	default:
		img, _, err = image.Decode(bytes.NewReader(src))
	}
	if err != nil {
		return nil, fmt.Errorf("imagefile: %s: corrupt %s image: %w", name, format, err)
	}
	if r := img.Bounds(); format != "gif" && (r.Dx() != cfg.Width || r.Dy() != cfg.Height) {
		// Its header checked one size and the decoder made another (a
		// GIF's first frame may be smaller than its screen: gifColours).
		return nil, fmt.Errorf("imagefile: %s: corrupt %s image: its header says %d×%d, its data %d×%d", name, format, cfg.Width, cfg.Height, r.Dx(), r.Dy())
	}
	if format == "webp" {
		img = webpRGB(img)
	}
	if format == "gif" {
		img = gifColours(img, b)
	}
	if format == "png" {
		pngShortPalette(img, b)
	}
	if format == "tiff" {
		img = tiffUpright(img, b)
	}
	if format == "jpeg" {
		img = jpegRGB(img)
		if o := exifOrientation(b); o > 1 {
			img = orientImage(img, o)
		}
	}
	return img, nil
}

// DecodeConfig is image.DecodeConfig on an image file's bytes, safe
// for TIFF: image.DecodeConfig hands the decoders a stream, which
// golang.org/x/image/tiff buffers up to whatever offset a header names
// (4 GB for a crafted 5 KB file), where given an io.ReaderAt it reads
// only what is there. It checks no limits (CheckHeader does).
func DecodeConfig(b []byte) (image.Config, string, error) {
	if isTIFF(b) {
		cfg, err := tiff.DecodeConfig(bytes.NewReader(b))
		return cfg, "tiff", err
	}
	if len(b) >= 2 && string(b[:2]) == "BM" {
		cfg, err := bmp.DecodeConfig(bytes.NewReader(b))
		return cfg, "bmp", err
	}
	return image.DecodeConfig(bytes.NewReader(b))
}

// CheckHeader reads an image's header and refuses an unknown format
// or a size outside limits.CheckImage, before any pixel is decoded.
func CheckHeader(b []byte, name string) (format string, cfg image.Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("imagefile: %s: corrupt image header (the decoder failed: %v)", name, r)
		}
	}()
	cfg, format, err = DecodeConfig(b)
	if errors.Is(err, image.ErrFormat) {
		return "", cfg, fmt.Errorf("imagefile: %s: not a JPEG, PNG, GIF, BMP, WebP, TIFF, PBM, PGM or PPM image", name)
	}
	if format == "tiff" {
		cfg, err = tiffConfig(bytes.NewReader(b), int64(len(b)), name)
		if err != nil {
			return "", cfg, err
		}
	}
	// Kinds of file that Go's decoders cannot read although the header
	// looks fine (or is called corrupt): refused here, at the folder scan,
	// by what they are, rather than in the middle of an epoch.
	if format == "jpeg" {
		if why := jpegUnsupported(b); why != "" {
			return "", cfg, fmt.Errorf("imagefile: %s: %s, which Go's JPEG decoder cannot read; re-encode it (for example with PIL, or jpegtran without -arithmetic or -restart)", name, why)
		}
	}
	if format == "gif" {
		if why := gifFrameOutside(b); why != "" {
			return "", cfg, fmt.Errorf("imagefile: %s: %s, which Go's GIF decoder cannot read (PIL enlarges the screen); save it again with a screen that holds the image", name, why)
		}
	}
	if format == "webp" && len(b) >= 21 && string(b[12:16]) == "VP8X" && b[20]&0x02 != 0 {
		return "", cfg, fmt.Errorf("imagefile: %s: an animated WebP, which Go's WebP decoder cannot read; save its first frame as a still image", name)
	}
	if format == "webp" && err == nil {
		if w, h, ok := webpBitstreamSize(b); ok && (w != cfg.Width || h != cfg.Height) {
			return "", cfg, fmt.Errorf("imagefile: %s: corrupt webp header: its canvas is %d×%d and its image %d×%d (libwebp and PIL refuse such a file)", name, cfg.Width, cfg.Height, w, h)
		}
	}
	if w, h, ok := pngheader.Overflowed(b, err); ok { // too large for the decoder's int: named by the limit
		if err := limits.CheckImage("imagefile: "+name, w, h); err != nil {
			return "", cfg, err
		}
	}
	if err != nil {
		return "", cfg, fmt.Errorf("imagefile: %s: corrupt %s header: %w", name, format, err)
	}
	if err := limits.CheckImage("imagefile: "+name, cfg.Width, cfg.Height); err != nil {
		return "", cfg, err
	}
	return format, cfg, nil
}

// webpBitstreamSize returns the size a WebP's image data ("VP8 " or
// "VP8L" chunk) is coded at, and false when b ends before it: an extended
// WebP ("VP8X") gives its canvas size in its own chunk, which is what
// golang.org/x/image/webp's DecodeConfig reports, but its decoder decodes
// the size in the image data, so a 56-byte file whose canvas is 1×1 decoded
// to 16384×16384 pixels (1.15 GB) past the limits CheckHeader applies.
// The RIFF chunks are walked to the first image chunk (WebP container
// specification: "Extended File Format").
func webpBitstreamSize(b []byte) (w, h int, ok bool) {
	le := func(b []byte) int { return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24 }
	for o := 12; o+8 <= len(b); {
		fourcc, size := string(b[o:o+4]), le(b[o+4:o+8])
		p := b[o+8:]
		switch fourcc {
		case "VP8 ": // frame tag (3 bytes), start code (3), then 14-bit width and height
			if len(p) < 10 {
				return 0, 0, false
			}
			return (int(p[6]) | int(p[7])<<8) & 0x3fff, (int(p[8]) | int(p[9])<<8) & 0x3fff, true
		case "VP8L": // signature 0x2f, then width-1 and height-1 in 14 bits each
			if len(p) < 5 {
				return 0, 0, false
			}
			v := le(p[1:5])
			return v&0x3fff + 1, (v>>14)&0x3fff + 1, true
		}
		if size < 0 || size > len(b) { // a size past the file: nothing further to read
			return 0, 0, false
		}
		o += 8 + size + size&1
	}
	return 0, 0, false
}

// CheckFile reads only the header of an image file and checks it as
// Load would before decoding: a known format within the limits.
func CheckFile(path string) error {
	_, err := FileConfig(path)
	return err
}

// FileConfig is CheckFile, returning the header's size (zero
// for a header longer than it reads, checked when the file is decoded).
func FileConfig(path string) (image.Config, error) {
	f, err := openImageFile(path)
	if err != nil {
		return image.Config{}, err
	}
	defer f.Close()
	// Headers sit in the first bytes; 64 KiB holds a JPEG's EXIF segment
	// and any PNG, GIF, BMP, WebP or PNM header.
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return image.Config{}, fmt.Errorf("imagefile: %s: %w", path, err)
	}
	_, cfg, err := CheckHeader(b, path)
	if errors.Is(err, io.ErrUnexpectedEOF) && len(b) == 64<<10 {
		// A TIFF's image directory may be anywhere in the file (libtiff
		// writes it after the pixels): it is read where it is, in a
		// regular file.
		if st, serr := f.Stat(); serr == nil && st.Mode().IsRegular() && isTIFF(b) {
			if cfg, err = tiffConfig(f, st.Size(), path); err == nil {
				err = limits.CheckImage("imagefile: "+path, cfg.Width, cfg.Height)
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				return cfg, err
			}
		}
		return image.Config{}, nil // a header longer than 64 KiB: checked again when decoded
	}
	return cfg, err
}

// exifOrientation returns the EXIF orientation (1 to 8) of a JPEG file's
// APP1 segment, or 0 when it has none or the segment is malformed.
func exifOrientation(b []byte) int {
	for marker, seg := range jpegSegments(b) {
		if marker == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
	}
	return 0
}

// jpegSegments yields a JPEG's marker segments before its first scan
// (marker, payload), as far as they are whole and well formed; nothing
// for bytes that are not a JPEG.
func jpegSegments(b []byte) iter.Seq2[byte, []byte] {
	return func(yield func(byte, []byte) bool) {
		if len(b) < 4 || b[0] != 0xff || b[1] != 0xd8 {
			return
		}
		for i := 2; i+4 <= len(b); {
			if b[i] != 0xff {
				return
			}
			marker := b[i+1]
			if marker == 0xff { // fill byte
				i++
				continue
			}
			if marker == 0xda || marker == 0xd9 { // start of scan, end of image
				return
			}
			n := int(binary.BigEndian.Uint16(b[i+2:]))
			if n < 2 || i+2+n > len(b) || !yield(marker, b[i+4:i+2+n]) {
				return
			}
			i += 2 + n
		}
	}
}

// gifColours reads a GIF's first image as PIL does. Its transparent
// palette entry gets back its colour: Go's decoder makes it transparent
// black, where PIL's convert("RGB") (and so torchvision) reads the colour
// the file's table holds (the first image's local table when it has one,
// else the global one). And an image smaller than the GIF's canvas is
// placed on it, the rest filled with the transparent entry, or entry 0
// without one, as PIL's first frame is (Go's decoder returns the image
// alone).
func gifColours(img image.Image, b []byte) image.Image {
	p, ok := img.(*image.Paletted)
	if !ok || len(b) < 13 {
		return img
	}
	table := func(flags byte, at int) []byte {
		if flags&0x80 == 0 {
			return nil
		}
		n := 3 << (flags&7 + 1)
		if at+n > len(b) {
			return nil
		}
		return b[at : at+n]
	}
	colours := table(b[10], 13)
	if b[10]&0x80 != 0 && colours == nil {
		return img
	}
	if i, ok := gifFirstImage(b); ok {
		if local := table(b[i+9], i+10); local != nil {
			colours = local
		}
	}
	var pal color.Palette
	fill := uint8(0)
	for j, c := range p.Palette {
		if _, _, _, a := c.RGBA(); a == 0 {
			fill = uint8(j)
			if 3*j+2 < len(colours) {
				if pal == nil {
					pal = slices.Clone(p.Palette)
				}
				pal[j] = color.RGBA{colours[3*j], colours[3*j+1], colours[3*j+2], 255}
			}
		}
	}
	q := *p
	if pal != nil {
		q.Palette = pal
	}
	canvas := image.Rect(0, 0, int(binary.LittleEndian.Uint16(b[6:])), int(binary.LittleEndian.Uint16(b[8:])))
	if r := p.Rect.Intersect(canvas); r != canvas && !canvas.Empty() && r == p.Rect {
		c := image.NewPaletted(canvas, q.Palette)
		if fill != 0 {
			for i := range c.Pix {
				c.Pix[i] = fill
			}
		}
		for y := r.Min.Y; y < r.Max.Y; y++ {
			copy(c.Pix[c.PixOffset(r.Min.X, y):c.PixOffset(r.Max.X, y)], p.Pix[p.PixOffset(r.Min.X, y):p.PixOffset(r.Max.X, y)])
		}
		return c
	}
	if pal == nil {
		return img
	}
	return &q
}

// pngShortPalette gives the pixels of a paletted PNG whose index is past
// its PLTE chunk's entries the colour PIL reads for them, grey (i, i, i)
// opaque for index i (PIL's palette starts as a grey ramp, which the PLTE
// overwrites): Go's decoder extends the palette with opaque black, as
// libpng 1.5.13 does (the PNG specification calls such an index an
// error). The palette is the decoder's own, changed in place.
func pngShortPalette(img image.Image, b []byte) {
	p, ok := img.(*image.Paletted)
	if !ok {
		return
	}
	n, ok := pngPaletteEntries(b)
	if !ok {
		return
	}
	for i := n; i < len(p.Palette); i++ {
		p.Palette[i] = color.RGBA{uint8(i), uint8(i), uint8(i), 255}
	}
}

// pngPaletteEntries returns the entries of a PNG's PLTE chunk, walking
// the chunks from the signature (8 bytes; then each chunk's length, type,
// data and CRC), and false without one before the image data.
func pngPaletteEntries(b []byte) (int, bool) {
	for o := 8; o+8 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[o:]))
		if n > len(b) {
			return 0, false
		}
		switch string(b[o+4 : o+8]) {
		case "PLTE":
			return n / 3, true
		case "IDAT":
			return 0, false
		}
		o += 12 + n
	}
	return 0, false
}

// gifFirstImage returns where a GIF's first image descriptor (0x2C, then
// left, top, width, height and flags) starts, past the global colour
// table and the extensions before it, and false if b ends first.
func gifFirstImage(b []byte) (int, bool) {
	if len(b) < 13 {
		return 0, false
	}
	i := 13
	if b[10]&0x80 != 0 {
		i += 3 << (b[10]&7 + 1)
	}
	// Extensions (0x21 label, sub-blocks) up to the first image (0x2C).
	for i < len(b) && b[i] == 0x21 {
		i += 2
		for i < len(b) && b[i] != 0 {
			i += int(b[i]) + 1
		}
		i++
	}
	return i, i+10 <= len(b) && b[i] == 0x2c
}

// gifFrameOutside returns, for a GIF whose first image extends past its
// screen, a sentence saying so, or "": Go's decoder refuses such a file
// ("frame bounds larger than image bounds"), where PIL enlarges the
// screen to hold the image.
func gifFrameOutside(b []byte) string {
	i, ok := gifFirstImage(b)
	if !ok {
		return ""
	}
	u16 := func(at int) int { return int(binary.LittleEndian.Uint16(b[at:])) }
	sw, sh := u16(6), u16(8)
	x, y, w, h := u16(i+1), u16(i+3), u16(i+5), u16(i+7)
	if x+w <= sw && y+h <= sh {
		return ""
	}
	return fmt.Sprintf("a GIF whose first image (%d×%d at %d,%d) extends past its %d×%d screen", w, h, x, y, sw, sh)
}

// jpegUnsupported returns what makes a JPEG one that Go's decoder cannot
// read, from its markers up to the first scan, or "": arithmetic coding
// (SOF9–SOF11, SOF13–SOF15: "unknown marker", as if corrupt), and a
// progressive JPEG with restart intervals whose components are not all
// sampled alike (its single-component scans' restarts are miscounted:
// "missing 0xff00 sequence", found only when the image is decoded).
func jpegUnsupported(b []byte) string {
	progressive, restarts, mixed := false, false, false
	for marker, seg := range jpegSegments(b) {
		switch {
		case marker == 0xc9 || marker == 0xca || marker == 0xcb || marker == 0xcd || marker == 0xce || marker == 0xcf:
			return "an arithmetic-coded JPEG"
		case marker == 0xc2:
			progressive = true
			fallthrough
		case marker == 0xc0 || marker == 0xc1:
			// Components from byte 6: id, sampling (h<<4|v), table.
			if len(seg) >= 6 {
				nc := int(seg[5])
				for c := 1; c < nc && 6+3*c+1 < len(seg); c++ {
					mixed = mixed || seg[6+3*c+1] != seg[7]
				}
			}
		case marker == 0xdd && len(seg) >= 2:
			restarts = restarts || binary.BigEndian.Uint16(seg) != 0
		}
	}
	if progressive && restarts && mixed {
		return "a progressive JPEG with restart intervals and subsampled colour"
	}
	return ""
}

// tiffOrientation reads the Orientation tag of a TIFF header's first
// image directory (EXIF's), or 0.
func tiffOrientation(t []byte) int {
	d, err := readTIFFDir(bytes.NewReader(t), int64(len(t)), tagOrientation)
	if o := d.first(tagOrientation, 0); err == nil && o >= 1 && o <= 8 {
		return int(o)
	}
	return 0
}

// orientImage returns img turned upright for EXIF orientation o (2 to 8),
// as PIL's ImageOps.exif_transpose does.
func orientImage(img image.Image, o int) image.Image {
	b := img.Bounds()
	pix, h, w := orient(transform.Pixels(img, 4), b.Dy(), b.Dx(), 4, o)
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	copy(out.Pix, pix)
	return out
}

// orient applies EXIF orientation o to h×w×c pixels: the stored picture
// is mirrored (2), turned 180° (3), flipped (4), transposed (5), turned
// 90° clockwise (6), transversed (7) or turned 90° counter-clockwise (8)
// back upright.
func orient(pix []uint8, h, w, c, o int) ([]uint8, int, int) {
	if o < 2 || o > 8 {
		return pix, h, w
	}
	oh, ow := h, w
	if o >= 5 {
		oh, ow = w, h
	}
	out := make([]uint8, len(pix))
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			var sy, sx int // the stored pixel shown at (y, x)
			switch o {
			case 2:
				sy, sx = y, w-1-x
			case 3:
				sy, sx = h-1-y, w-1-x
			case 4:
				sy, sx = h-1-y, x
			case 5:
				sy, sx = x, y
			case 6:
				sy, sx = h-1-x, y
			case 7:
				sy, sx = h-1-x, w-1-y
			case 8:
				sy, sx = x, w-1-y
			}
			copy(out[(y*ow+x)*c:(y*ow+x+1)*c], pix[(sy*w+sx)*c:(sy*w+sx+1)*c])
		}
	}
	return out, oh, ow
}

// webpRGB converts a lossy WebP's Y'CbCr (golang.org/x/image/webp returns
// it as image.YCbCr or image.NYCbCrA, whose At would convert it as
// full-range JFIF) to RGB as libwebp, and so PIL and torchvision, do:
// BT.601 limited range with libwebp's fixed-point constants and its
// "fancy" chroma upsampling (each chroma value interpolated 9:3:3:1 from
// the four nearest samples). Lossless WebPs are already RGB.
func webpRGB(img image.Image) image.Image {
	var m *image.YCbCr
	var alpha []uint8
	var astride int
	switch t := img.(type) {
	case *image.YCbCr:
		m = t
	case *image.NYCbCrA:
		m, alpha, astride = &t.YCbCr, t.A, t.AStride
	default:
		return img
	}
	if m.SubsampleRatio != image.YCbCrSubsampleRatio420 || m.Rect.Min != (image.Point{}) {
		return img
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	cw, ch := (w+1)/2, (h+1)/2
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	chroma := func(p []uint8, x, y int) int { return int(p[y*m.CStride+x]) }
	// up returns the upsampled chroma at pixel (x, y) from plane p.
	up := func(p []uint8, x, y int) int {
		ny, fy := nearFar(y, ch)
		if fy < 0 { // first row, or the last of an even height: the nearest row twice
			fy = ny
		}
		nx, fx := nearFar(x, cw)
		a, c := chroma(p, nx, ny), chroma(p, nx, fy)
		if fx < 0 { // first column, or the last of an even width: libwebp interpolates only vertically
			return (3*a + c + 2) >> 2
		}
		bb, d := chroma(p, fx, ny), chroma(p, fx, fy)
		return (((a + 3*bb + 3*c + d + 8) >> 3) + a) >> 1
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			yy := int(m.Y[y*m.YStride+x])
			u, v := up(m.Cb, x, y), up(m.Cr, x, y)
			o := out.Pix[y*out.Stride+4*x:]
			o[0] = clip6(multHi(yy, 19077) + multHi(v, 26149) - 14234)
			o[1] = clip6(multHi(yy, 19077) - multHi(u, 6419) - multHi(v, 13320) + 8708)
			o[2] = clip6(multHi(yy, 19077) + multHi(u, 33050) - 17685)
			o[3] = 255
			if alpha != nil {
				o[3] = alpha[y*astride+x]
			}
		}
	}
	return out
}

// jpegRGB converts a JPEG's Y'CbCr (image/jpeg returns it as image.YCbCr,
// whose At repeats each chroma sample over the pixels it covers) to RGB as
// libjpeg, and so PIL and torchvision, do: "fancy" chroma upsampling (each
// 4:2:0 chroma value interpolated 9:3:3:1 from the four nearest samples,
// each 4:2:2 and 4:4:0 one 3:1 from the two nearest; the edges
// replicated; 4:2:0 and 4:2:2 planes of at most 2 samples a row repeated
// instead, as libjpeg does) and
// libjpeg's fixed-point JFIF conversion (jdsample.c, jdcolor.c). Other
// subsamplings keep Go's conversion. What still differs from libjpeg is
// the inverse DCT: both are accurate to IEEE 1180 (each sample within one
// level of the exact transform), so each colour is within 3 levels of
// PIL's (TestJPEGMatchesPIL).
func jpegRGB(img image.Image) image.Image {
	m, ok := img.(*image.YCbCr)
	if !ok || m.Rect.Min != (image.Point{}) {
		return img
	}
	var h2, v2 bool // chroma halved horizontally, vertically
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio420:
		h2, v2 = true, true
	case image.YCbCrSubsampleRatio422:
		h2 = true
	case image.YCbCrSubsampleRatio440:
		v2 = true
	case image.YCbCrSubsampleRatio444:
	default:
		return img
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	cw, ch := w, h
	if h2 {
		cw = (w + 1) / 2
	}
	if v2 {
		ch = (h + 1) / 2
	}
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	cb, cr := make([]int, w), make([]int, w) // one row of upsampled chroma
	sum := make([]int, cw)
	// row upsamples chroma plane p for output row y into dst.
	row := func(p []uint8, y int, dst []int) {
		if h2 && cw <= 2 {
			// libjpeg upsamples fancily only planes wider than 2 samples
			// when it doubles them horizontally (jinit_upsampler); it
			// repeats the samples of narrower ones.
			cy := y
			if v2 {
				cy = y / 2
			}
			in := p[cy*m.CStride:][:cw]
			for x := range w {
				dst[x] = int(in[x/2])
			}
			return
		}
		if !v2 {
			in := p[y*m.CStride:][:cw]
			if !h2 {
				for x, v := range in {
					dst[x] = int(v)
				}
				return
			}
			for x := range w { // h2v1_fancy_upsample
				c := x / 2
				v := 3 * int(in[c])
				switch {
				case x%2 == 0 && c == 0, x%2 == 1 && c == cw-1:
					dst[x] = int(in[c])
				case x%2 == 0:
					dst[x] = (v + int(in[c-1]) + 1) >> 2
				default:
					dst[x] = (v + int(in[c+1]) + 2) >> 2
				}
			}
			return
		}
		near := y / 2 // h2v2_fancy_upsample: the nearest row ×3 and the next nearest
		far := near - 1
		if y%2 == 1 {
			far = near + 1
		}
		far = min(max(far, 0), ch-1) // the edge rows replicated
		a, b := p[near*m.CStride:][:cw], p[far*m.CStride:][:cw]
		if !h2 { // h1v2_fancy_upsample (4:4:0): vertically only, 3:1
			bias := 1 // toward the row above
			if y%2 == 1 {
				bias = 2
			}
			for x := range w {
				dst[x] = (3*int(a[x]) + int(b[x]) + bias) >> 2
			}
			return
		}
		for c := range cw {
			sum[c] = 3*int(a[c]) + int(b[c])
		}
		for x := range w {
			c := x / 2
			switch {
			case x%2 == 0 && c == 0:
				dst[x] = (4*sum[0] + 8) >> 4
			case x%2 == 1 && c == cw-1:
				dst[x] = (4*sum[c] + 7) >> 4
			case x%2 == 0:
				dst[x] = (3*sum[c] + sum[c-1] + 8) >> 4
			default:
				dst[x] = (3*sum[c] + sum[c+1] + 7) >> 4
			}
		}
	}
	for y := range h {
		row(m.Cb, y, cb)
		row(m.Cr, y, cr)
		ys := m.Y[y*m.YStride:][:w]
		o := out.Pix[y*out.Stride:][:4*w]
		for x, yv := range ys {
			b, r := cb[x]-128, cr[x]-128
			yy := int(yv)
			o[4*x] = clamp8(yy + (91881*r+32768)>>16)
			o[4*x+1] = clamp8(yy + (-22554*b-46802*r+32768)>>16)
			o[4*x+2] = clamp8(yy + (116130*b+32768)>>16)
			o[4*x+3] = 255
		}
	}
	return out
}

// clamp8 is v limited to [0, 255].
func clamp8(v int) uint8 { return uint8(min(max(v, 0), 255)) }

// nearFar returns the nearest chroma sample of luma position i (of a
// 2:1 subsampled axis with n samples) and the second nearest, or −1 where
// that falls outside (the first position, and the last of an even length).
func nearFar(i, n int) (near, far int) {
	near = i / 2
	if i%2 == 1 {
		far = near + 1
	} else {
		far = near - 1
	}
	if far < 0 || far >= n {
		far = -1
	}
	return near, far
}

func multHi(v, c int) int { return (v * c) >> 8 }

func clip6(v int) uint8 {
	switch {
	case v < 0:
		return 0
	case v>>6 > 255:
		return 255
	}
	return uint8(v >> 6)
}
