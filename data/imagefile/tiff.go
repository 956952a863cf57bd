package imagefile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"slices"

	"golang.org/x/image/tiff"

	"github.com/residual-nn/residual/limits"
)

// TIFF files are read by golang.org/x/image/tiff, whose first page PIL
// reads too; this file holds what is checked around it: the kinds of TIFF
// it cannot read, named at the header check, and the CCITT bitmaps that it
// reads inverted.

// The TIFF tags read here (TIFF 6.0, section 8).
const (
	tagCompression  = 259
	tagPhotometric  = 262
	tagSampleFormat = 339
	tagOrientation  = 0x0112
	tagRowsPerStrip = 278
	tagTileWidth    = 322
	tagTileLength   = 323
	tagFillOrder    = 266
	tagPlanar       = 284 // PlanarConfiguration
	tagExtraSamples = 338
)

// tiffCompressions are the compression schemes Go's decoder reads: none,
// CCITT group 3 and 4 (bitmaps), LZW, Deflate (both codes) and PackBits.
var tiffCompressions = map[int]bool{1: true, 3: true, 4: true, 5: true, 8: true, 32946: true, 32773: true}

// tiffCompressionNames names the schemes it does not read that writers use.
var tiffCompressionNames = map[int]string{2: "CCITT modified Huffman", 6: "old-style JPEG", 7: "JPEG", 34712: "JPEG 2000", 34887: "LERC", 34925: "LZMA", 50000: "Zstandard", 50001: "WebP"}

// tiffPhotometricNames names the colour spaces it does not read.
var tiffPhotometricNames = map[int]string{4: "a transparency mask", 5: "CMYK (separated)", 6: "YCbCr", 8: "CIE L*a*b*", 9: "ICC L*a*b*", 10: "ITU L*a*b*", 32844: "LogL", 32845: "LogLuv"}

// isTIFF reports whether b starts as a TIFF file does.
func isTIFF(b []byte) bool {
	return len(b) >= 4 && (string(b[:4]) == "II*\x00" || string(b[:4]) == "MM\x00*")
}

// tiffDir is what readTIFFDir reads of a TIFF's first image directory.
type tiffDir struct {
	bo     binary.ByteOrder
	values map[int][]uint32 // the values of each tag asked for that could be read
	entry  map[int]int64    // the offset of each tag's entry, read or not
}

// first returns the first value of tag, or def where there is none: the
// value Go's decoder takes of most tags.
func (d tiffDir) first(tag int, def int64) int64 {
	if v := d.values[tag]; len(v) > 0 {
		return int64(v[0])
	}
	return def
}

// readTIFFDir reads the given tags of the first image directory of the
// TIFF that r holds (size bytes) as Go's decoder reads them: entries of
// BYTEs, SHORTs or LONGs, their values in the entry where they fit in its
// four bytes and at the offset it names otherwise. A tag of another type,
// or whose values lie beyond the file, has no values. It is the one
// reader of TIFF tags here, so that no guard reads a tag otherwise than
// the decoder it guards (a LONG count of two, a BYTE width or values
// stored at an offset had each let a file past a guard).
func readTIFFDir(r io.ReaderAt, size int64, tags ...int) (tiffDir, error) {
	var head [8]byte
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return tiffDir{}, unexpectedEOF(err)
	}
	if !isTIFF(head[:]) {
		return tiffDir{}, errors.New("not a TIFF header")
	}
	d := tiffDir{bo: binary.LittleEndian, values: map[int][]uint32{}, entry: map[int]int64{}}
	if head[0] == 'M' {
		d.bo = binary.BigEndian
	}
	ifd := int64(d.bo.Uint32(head[4:]))
	var count [2]byte
	if _, err := r.ReadAt(count[:], ifd); err != nil {
		return tiffDir{}, unexpectedEOF(err)
	}
	entries := make([]byte, 12*int(d.bo.Uint16(count[:])))
	if _, err := r.ReadAt(entries, ifd+2); err != nil {
		return tiffDir{}, unexpectedEOF(err)
	}
	for e := 0; e < len(entries); e += 12 {
		tag := int(d.bo.Uint16(entries[e:]))
		if !slices.Contains(tags, tag) {
			continue
		}
		d.entry[tag] = ifd + 2 + int64(e)
		if v, ok := tiffValues(r, size, d.bo, entries[e:e+12]); ok {
			d.values[tag] = v
		}
	}
	return d, nil
}

// tiffValues returns the values of an image directory entry (12 bytes:
// tag, type, count, the values or their offset) of BYTEs, SHORTs or
// LONGs, and false for another type or values beyond the size bytes of r.
func tiffValues(r io.ReaderAt, size int64, bo binary.ByteOrder, entry []byte) ([]uint32, bool) {
	var width int64
	switch bo.Uint16(entry[2:]) {
	case 1:
		width = 1
	case 3:
		width = 2
	case 4:
		width = 4
	default:
		return nil, false
	}
	count := int64(bo.Uint32(entry[4:]))
	raw := entry[8:12]
	if n := count * width; n > 4 {
		at := int64(bo.Uint32(entry[8:]))
		if n > size-at {
			return nil, false
		}
		raw = make([]byte, n)
		if _, err := r.ReadAt(raw, at); err != nil {
			return nil, false
		}
	}
	out := make([]uint32, count)
	for i := range out {
		switch width {
		case 1:
			out[i] = uint32(raw[i])
		case 2:
			out[i] = uint32(bo.Uint16(raw[2*i:]))
		default:
			out[i] = bo.Uint32(raw[4*i:])
		}
	}
	return out, true
}

// tiffOneStrip returns b with its RowsPerStrip tag lowered to height
// where it says more (writers put 2³²−1 there for "one strip"), so that
// Go's decoder, which takes the tag's first value to bound a strip's
// decompressed bytes, expects no more than the image holds: else a
// Deflate or CCITT stream of a few bytes could fill gigabytes. The entry
// becomes one LONG, whatever it held (the decoder reads no other value of
// it); the image decoded is the same. b itself is not changed; a copy is
// made where the tag must be.
func tiffOneStrip(b []byte, height int) []byte {
	d, err := readTIFFDir(bytes.NewReader(b), int64(len(b)), tagRowsPerStrip)
	at, ok := d.entry[tagRowsPerStrip]
	if err != nil || !ok || d.first(tagRowsPerStrip, 0) <= int64(height) {
		return b
	}
	b = bytes.Clone(b)
	d.bo.PutUint16(b[at+2:], 4)
	d.bo.PutUint32(b[at+4:], 1)
	d.bo.PutUint32(b[at+8:], uint32(height))
	return b
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// tiffConfig is CheckHeader for a TIFF that r holds (size bytes):
// its size, or an error naming a kind of TIFF that Go's decoder cannot
// read (refused at the folder scan by what it is, rather than as corrupt
// in the middle of an epoch), or a corrupt header. A header that ends early is an error
// wrapping io.ErrUnexpectedEOF.
func tiffConfig(r io.ReaderAt, size int64, name string) (image.Config, error) {
	cfg, err := tiff.DecodeConfig(io.NewSectionReader(r, 0, size))
	d, terr := readTIFFDir(r, size, tagCompression, tagPhotometric, tagSampleFormat, tagTileWidth, tagTileLength, tagFillOrder, tagPlanar, tagSamplesPerPixel, tagBitsPerSample, tagExtraSamples)
	if err == nil {
		err = terr
	}
	if terr == nil {
		cannot := func(what string) error {
			return fmt.Errorf("imagefile: %s: %s, which Go's TIFF decoder cannot read; re-encode it (for example with PIL, as an uncompressed or LZW TIFF of RGB or grey, or as PNG)", name, what)
		}
		photometric := tiffPhotometricNames[int(d.first(tagPhotometric, 0))]
		// Go's decoder takes a pixel's samples from BitsPerSample's count.
		samples := max(d.first(tagSamplesPerPixel, 1), int64(len(d.values[tagBitsPerSample])))
		switch comp := int(d.first(tagCompression, 0)); {
		case comp != 0 && !tiffCompressions[comp]:
			what := tiffCompressionNames[comp]
			if what == "" {
				what = "an unknown scheme"
			}
			return cfg, cannot(fmt.Sprintf("a TIFF compressed with %s (compression %d)", what, comp))
		case photometric != "":
			return cfg, cannot("a " + photometric + " TIFF")
		case slices.Contains(d.values[tagSampleFormat], 2):
			return cfg, cannot("a TIFF of signed integers")
		case slices.Contains(d.values[tagSampleFormat], 3):
			return cfg, cannot("a TIFF of floating-point samples")
		// Go's decoder reads neither of these, and decodes them without
		// an error, into other pixels than PIL's (libtiff's).
		case d.first(tagPlanar, 1) == 2 && samples > 1:
			return cfg, cannot("a TIFF of separate colour planes (PlanarConfiguration 2)")
		case d.first(tagFillOrder, 1) == 2 && comp != 3 && comp != 4:
			return cfg, cannot("a TIFF of bits in reversed order (FillOrder 2) not CCITT-compressed")
		case d.first(tagExtraSamples, -1) == 0:
			return cfg, cannot("a TIFF with an extra sample of unspecified meaning (ExtraSamples 0: RGBX, say)")
		}
		// Go's decoder decodes a whole tile, however large, into memory: a
		// CCITT or Deflate stream of a few bytes can fill gigabytes. Tiles
		// larger than a few times the image (a 256×256 tile for a 100×100
		// image is common) are refused, and sides over limits.ImageSide
		// first, whose product could overflow (3,037,000,500² is negative
		// in an int64; the decoder's eight bytes a pixel of it are 1.2 GB).
		tw, th := d.first(tagTileWidth, 0), d.first(tagTileLength, 0)
		if err == nil && (tw > int64(limits.ImageSide) || th > int64(limits.ImageSide) || tw*th > max(4*int64(cfg.Width)*int64(cfg.Height), 1<<20)) {
			return cfg, fmt.Errorf("imagefile: %s: a TIFF of %d×%d pixels in tiles of %d×%d: corrupt or hostile, refused", name, cfg.Width, cfg.Height, tw, th)
		}
	}
	var unsupported tiff.UnsupportedError
	switch {
	case errors.As(err, &unsupported):
		return cfg, fmt.Errorf("imagefile: %s: a TIFF with a feature Go's TIFF decoder does not read (%s: grey with alpha, or samples of other than 1, 8 or 16 bits, say); re-encode it (for example with PIL, as an uncompressed or LZW TIFF of RGB or grey, or as PNG)", name, string(unsupported))
	case errors.Is(err, io.EOF):
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return cfg, fmt.Errorf("imagefile: %s: corrupt tiff header: %w", name, err)
	}
	return cfg, nil
}

// tiffUpright returns a TIFF's image as PIL reads it. A CCITT-compressed
// bitmap whose photometric interpretation is BlackIsZero comes out of
// Go's decoder inverted (it reads the fax code's white runs as white,
// where libtiff's fax decoder gives them the bit 0, black in that
// interpretation), and is inverted back. And the Orientation tag is
// applied, as PIL's TIFF reader applies it when it loads the image (so
// torchvision's ImageFolder sees the picture upright); a turned image
// comes back as 8-bit NRGBA (orientImage), what Pixels would take of a
// 16-bit one anyway. Associated alpha is divided out as PIL divides it
// (unpremultiply).
func tiffUpright(img image.Image, b []byte) image.Image {
	d, err := readTIFFDir(bytes.NewReader(b), int64(len(b)), tagCompression, tagPhotometric, tagOrientation)
	if err != nil {
		return img
	}
	c := d.first(tagCompression, 0)
	if g, ok := img.(*image.Gray); ok && d.first(tagPhotometric, 0) == 1 && (c == 3 || c == 4) {
		for i, v := range g.Pix {
			g.Pix[i] = 255 - v
		}
	}
	switch m := img.(type) {
	case *image.RGBA:
		img = unpremultiply(m)
	case *image.RGBA64:
		img = unpremultiply(highBytes(m))
	}
	if o := d.first(tagOrientation, 0); o > 1 && o <= 8 {
		img = orientImage(img, int(o))
	}
	return img
}

// unpremultiply returns an 8-bit image of associated (premultiplied)
// alpha — what Go's decoder returns for a TIFF of ExtraSamples 1, or of
// no alpha (all opaque: returned as it is) — with its colours divided by
// alpha as PIL's unpacker divides them: ⌊255·c/a⌋, at most 255, and 0
// where a is 0. (Go's own conversion rounds through 16 bits: one level
// above PIL on about one sample in ten.)
func unpremultiply(m *image.RGBA) image.Image {
	opaque := true
	for i := 3; i < len(m.Pix); i += 4 {
		if m.Pix[i] != 255 {
			opaque = false
			break
		}
	}
	if opaque {
		return m
	}
	out := &image.NRGBA{Pix: make([]uint8, len(m.Pix)), Stride: m.Stride, Rect: m.Rect}
	for i := 0; i+3 < len(m.Pix); i += 4 {
		a := int(m.Pix[i+3])
		out.Pix[i+3] = uint8(a)
		if a == 0 {
			continue
		}
		for k := range 3 {
			out.Pix[i+k] = uint8(min(255, 255*int(m.Pix[i+k])/a))
		}
	}
	return out
}

// highBytes returns a 16-bit image of associated alpha as 8 bits, each
// sample's high byte: what PIL's unpacker ("RGBa;16") divides, where Go's
// conversion divides the 16-bit values (and, at small alphas, hundreds of
// levels away from PIL: an alpha of 255 has a high byte of 0, which PIL
// reads as transparent). A 16-bit RGB TIFF without alpha comes through
// as an opaque one.
func highBytes(m *image.RGBA64) *image.RGBA {
	out := &image.RGBA{Pix: make([]uint8, len(m.Pix)/2), Stride: m.Stride / 2, Rect: m.Rect}
	for i := range out.Pix {
		out.Pix[i] = m.Pix[2*i]
	}
	return out
}

// The tags that locate a TIFF's blocks of pixels.
const (
	tagImageWidth      = 256
	tagImageLength     = 257
	tagBitsPerSample   = 258
	tagStripOffsets    = 273
	tagSamplesPerPixel = 277
	tagStripByteCounts = 279
	tagTileOffsets     = 324
	tagTileByteCounts  = 325
)

// tiffBlocksBounded refuses a TIFF whose blocks (strips or tiles) would
// make Go's decoder work or allocate far beyond what the file and the
// image hold, before it decodes them. The decoder reads every block's
// bytes as its byte count says, however many blocks share them: a 1.5 MB
// file whose 65,535 strips all name the same megabyte took minutes. And
// it unpacks a PackBits block whole, unbounded by the block's size: a
// 30 MB PackBits strip of a 1×1 image unpacked to 2 GB (out of memory,
// a crash no recover catches). So the byte counts of the blocks the
// decoder reads must add up to no more than the file and the image's
// bytes together, and a PackBits block must unpack to no more than twice
// its rows (libtiff drops what a block holds beyond them). Only b's first
// image directory is read; what cannot be read is left to the decoder.
func tiffBlocksBounded(b []byte) error {
	d, err := readTIFFDir(bytes.NewReader(b), int64(len(b)), tagImageWidth, tagImageLength, tagBitsPerSample, tagSamplesPerPixel, tagRowsPerStrip, tagCompression,
		tagTileWidth, tagTileLength, tagStripOffsets, tagStripByteCounts, tagTileOffsets, tagTileByteCounts)
	if err != nil {
		return nil
	}
	arrays, first := d.values, d.first
	w, h := first(tagImageWidth, 0), first(tagImageLength, 0)
	bps, spp := max(first(tagBitsPerSample, 1), 1), max(first(tagSamplesPerPixel, 1), 1)
	if w <= 0 || h <= 0 || w > int64(limits.ImageSide) || h > int64(limits.ImageSide) || bps > 64 || spp > 64 {
		return nil // refused by the header check, or by the decoder
	}
	rowBytes := func(px int64) int64 { return (px*spp*bps + 7) / 8 }
	bw, bh := w, min(first(tagRowsPerStrip, h), h)
	if bh <= 0 { // the decoder reads a RowsPerStrip of 0 as one strip
		bh = h
	}
	offsets, counts := arrays[tagStripOffsets], arrays[tagStripByteCounts]
	if tw := first(tagTileWidth, 0); tw != 0 {
		bw, bh = tw, first(tagTileLength, 0)
		if bw <= 0 || bh <= 0 || bw > int64(limits.ImageSide) || bh > int64(limits.ImageSide) {
			return nil
		}
		offsets, counts = arrays[tagTileOffsets], arrays[tagTileByteCounts]
	}
	blocks := ((w + bw - 1) / bw) * ((h + bh - 1) / bh)
	if int64(len(offsets)) < blocks || int64(len(counts)) < blocks {
		return nil // "inconsistent header", from the decoder
	}
	blockBytes := rowBytes(bw) * bh
	imageBytes := rowBytes(w) * h
	total := int64(0)
	for i := range blocks {
		total += int64(counts[i])
	}
	if total > int64(len(b))+imageBytes {
		return fmt.Errorf("a TIFF whose %d blocks of pixels claim %d bytes where the file holds %d and the %d×%d image %d: blocks reread, corrupt or hostile, refused", blocks, total, len(b), w, h, imageBytes)
	}
	if first(tagCompression, 1) != 32773 {
		return nil
	}
	for i := range blocks {
		off, end := int64(offsets[i]), int64(offsets[i])+int64(counts[i])
		if off >= int64(len(b)) {
			continue
		}
		if out := packBitsLength(b[off:min(end, int64(len(b)))], 2*blockBytes); out > 2*blockBytes {
			return fmt.Errorf("a PackBits TIFF whose block %d unpacks to more than %d bytes, twice its %d: corrupt or hostile, refused", i, 2*blockBytes, blockBytes)
		}
	}
	return nil
}

// packBitsLength returns the bytes that PackBits data unpacks to (TIFF
// 6.0, section 9), counting no further than just past limit.
func packBitsLength(src []byte, limit int64) int64 {
	n := int64(0)
	for i := 0; i < len(src) && n <= limit; {
		code := int(int8(src[i]))
		switch {
		case code >= 0:
			n += int64(code + 1)
			i += code + 2
		case code == -128:
			i++
		default:
			n += int64(1 - code)
			i += 2
		}
	}
	return n
}
