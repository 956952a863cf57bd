package imagefile

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"image"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/image/tiff"

	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/limits"
)

// TestTIFFMatchesPIL decodes TIFF files written by PIL (libtiff) — RGB,
// grey, RGBA, paletted, bitmaps (uncompressed, CCITT group 3 and 4, in
// both photometric interpretations), 16-bit grey; uncompressed, LZW,
// Deflate, PackBits, with a horizontal predictor; Orientation tags 6 and
// 8, which PIL's reader applies as it loads; associated alpha, which PIL
// divides out as it unpacks; 16-bit RGBA, unassociated and associated
// (written byte by byte: PIL reads it and does not write it; PIL divides
// the high bytes, an alpha below 256 making the pixel transparent) — and
// compares them with PIL's decoding of each
// (testdata/pil/gen_fixtures.py): every sample
// equal (RGBA's four channels; 16-bit grey's 16-bit values, which
// Pixels then reduces to their high byte where PIL's convert clips them,
// the documented difference of 16-bit PNGs too). Lossless formats and
// the same integers on both sides: no tolerance.
func TestTIFFMatchesPIL(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(pilDir, "tiff", "*.png"))
	if err != nil || len(files) < 15 {
		t.Fatalf("fixtures: %d files, %v", len(files), err)
	}
	for _, want := range files {
		name := strings.TrimSuffix(filepath.Base(want), ".png")
		got := mustLoad(t, strings.TrimSuffix(want, ".png")+".tif")
		ref := mustLoad(t, want)
		if got.Bounds() != ref.Bounds() {
			t.Errorf("%s: %v, PIL %v", name, got.Bounds(), ref.Bounds())
			continue
		}
		if g16, ok := ref.(*image.Gray16); ok {
			if !slices.Equal(got.(*image.Gray16).Pix, g16.Pix) {
				t.Errorf("%s: 16-bit values differ from PIL's", name)
			}
			continue
		}
		if worst, n := fixture.ByteDiff(t, transform.Pixels(got, 3), transform.Pixels(ref, 3)); worst != 0 {
			t.Errorf("%s.tif: %d bytes of RGB differ from PIL's, by up to %d", name, n, worst)
		}
		if worst, n := fixture.ByteDiff(t, transform.Pixels(got, 4), transform.Pixels(ref, 4)); worst != 0 {
			t.Errorf("%s.tif: %d bytes of RGBA differ from PIL's, by up to %d", name, n, worst)
		}
	}
	// Two pages: the first is read, as PIL and ImageFolder read it.
	if worst, _ := fixture.ByteDiff(t, transform.Pixels(mustLoad(t, filepath.Join(pilDir, "tiff", "pages.tif")), 3), transform.Pixels(mustLoad(t, filepath.Join(pilDir, "tiff", "rgb.png")), 3)); worst != 0 {
		t.Errorf("pages.tif: not its first page (differs by up to %d)", worst)
	}
}

// TestTIFFUnsupportedNamed: TIFF files PIL reads and Go's decoder cannot
// are refused at the header check, named by what they are.
func TestTIFFUnsupportedNamed(t *testing.T) {
	for file, says := range map[string]string{
		"unsupported_jpeg.tif":       "a TIFF compressed with JPEG (compression 7)",
		"unsupported_cmyk.tif":       "a CMYK (separated) TIFF",
		"unsupported_grey_alpha.tif": "a TIFF with a feature Go's TIFF decoder does not read (extra samples",
		"unsupported_float.tif":      "a TIFF of floating-point samples",
		"unsupported_rgbx.tif":       "a TIFF with an extra sample of unspecified meaning (ExtraSamples 0",
	} {
		path := filepath.Join(pilDir, "tiff", file)
		if err := CheckFile(path); err == nil || !strings.Contains(err.Error(), says) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: header check %v; want it named as %s", file, err, says)
		}
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: load %v; want it named as %s", file, err, says)
		}
	}
}

// TestTIFFDirectoryAtTheEnd: a TIFF whose image directory follows 120 KB
// of pixels (as Go's and libtiff's encoders write it) is checked at the
// header check — its size read, a size beyond the pixel limits refused —
// though the check reads the first 64 KiB of a file.
func TestTIFFDirectoryAtTheEnd(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 200, 150))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	if err := tiff.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if ifd := binary.LittleEndian.Uint32(b[4:]); ifd < 64<<10 {
		t.Fatalf("the directory is at %d, inside the first 64 KiB", ifd)
	}
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.tif")
	if err := os.WriteFile(ok, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg, err := FileConfig(ok); err != nil || cfg.Width != 200 || cfg.Height != 150 {
		t.Errorf("header check: %+v, %v; want 200×150", cfg, err)
	}
	// The width tag (256) made a LONG of 1,000,000 pixels, past
	// limits.ImageSide.
	ifd := int(binary.LittleEndian.Uint32(b[4:]))
	n := int(binary.LittleEndian.Uint16(b[ifd:]))
	for e := ifd + 2; e < ifd+2+12*n; e += 12 {
		if binary.LittleEndian.Uint16(b[e:]) == 256 {
			binary.LittleEndian.PutUint16(b[e+2:], 4)
			binary.LittleEndian.PutUint32(b[e+8:], 1_000_000)
		}
	}
	bomb := filepath.Join(dir, "bomb.tif")
	if err := os.WriteFile(bomb, b, 0o644); err != nil {
		t.Fatal(err)
	}
	want := limits.CheckImage("imagefile: "+bomb, 1_000_000, 150)
	if err := CheckFile(bomb); want == nil || err == nil || err.Error() != want.Error() {
		t.Errorf("a 1000000×150 TIFF: header check %v; want %v", err, want)
	}
}

// TestPNMRead: PBM, PGM and PPM files are images of the folders (their
// decoding against PIL's is internal/pnm's test); a 16-bit PGM keeps its
// high byte, as a 16-bit PNG or TIFF does.
func TestPNMRead(t *testing.T) {
	dir := t.TempDir()
	for name, b := range map[string]string{
		"a.ppm": "P6 2 1 255\n\x01\x02\x03\xfa\xfb\xfc",
		"b.pgm": "P5 2 1 65535\n\x12\x34\xab\xcd",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := transform.Pixels(mustLoad(t, filepath.Join(dir, "a.ppm")), 3); !slices.Equal(got, []uint8{1, 2, 3, 250, 251, 252}) {
		t.Errorf("a.ppm: %v", got)
	}
	if got := transform.Pixels(mustLoad(t, filepath.Join(dir, "b.pgm")), 1); !slices.Equal(got, []uint8{0x12, 0xab}) {
		t.Errorf("b.pgm: %v", got)
	}
	if !HasExtension("x.TIFF") || !HasExtension("x.pgm") {
		t.Error("TIFF and PGM names are not taken as images")
	}
}

// minimalTIFF returns a little-endian TIFF of one image directory holding
// the given tags (each a LONG; sorted here) and then data, to which the
// StripOffsets tag (273), if given as 0, points.
func minimalTIFF(tags map[uint16]uint32, data []byte) []byte {
	keys := slices.Sorted(maps.Keys(tags))
	dataAt := uint32(8 + 2 + 12*len(keys) + 4)
	b := binary.LittleEndian.AppendUint32([]byte("II*\x00"), 8)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(keys)))
	for _, k := range keys {
		v := tags[k]
		if k == 273 && v == 0 {
			v = dataAt
		}
		b = binary.LittleEndian.AppendUint16(b, k)
		b = binary.LittleEndian.AppendUint16(b, 4)
		b = binary.LittleEndian.AppendUint32(b, 1)
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = binary.LittleEndian.AppendUint32(b, 0)
	return append(b, data...)
}

// TestTIFFDecompressionBounded: Go's TIFF decoder bounds a strip's
// decompressed bytes by the RowsPerStrip tag, and decodes whole tiles:
// a 1×1 image whose 48 KB Deflate strip inflates to 48 MB of zeros,
// under a RowsPerStrip of 2³²−1 (what writers put for "one strip"), is
// read with under 1 MiB allocated (the tag lowered to the height), and a
// 1×1 image in tiles of 65,536×65,536 is refused at its header.
func TestTIFFDecompressionBounded(t *testing.T) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 48<<20))
	zw.Close()
	common := map[uint16]uint32{256: 1, 257: 1, 258: 8, 259: 8, 262: 1, 273: 0, 277: 1, 279: uint32(z.Len())}
	tags := maps.Clone(common)
	tags[278] = 1<<32 - 1
	b := minimalTIFF(tags, z.Bytes())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	img, err := Decode(b, "strip.tif")
	runtime.ReadMemStats(&after)
	if err != nil || img.Bounds().Dx() != 1 {
		t.Fatalf("1×1 TIFF: %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("%d bytes allocated to decode a 1×1 TIFF", alloc)
	}
	tags = maps.Clone(common)
	tags[322], tags[323] = 1<<16, 1<<16
	delete(tags, 273)
	delete(tags, 279)
	tags[324], tags[325] = 0, uint32(z.Len()) // TileOffsets, TileByteCounts
	if _, err := Decode(minimalTIFF(tags, z.Bytes()), "tiles.tif"); err == nil || !strings.Contains(err.Error(), "in tiles of 65536×65536") {
		t.Errorf("1×1 TIFF in 65536×65536 tiles: %v", err)
	}
}

// TestTIFFOffsetsBeyondTheFile: a 5 KB TIFF whose header names an image
// directory 4 GB into the file is a corrupt header, refused with under
// 1 MiB allocated, by Decode and by DecodeConfig (through
// image.DecodeConfig's stream, Go's TIFF decoder buffered the file up to
// that offset: 4 GB).
func TestTIFFOffsetsBeyondTheFile(t *testing.T) {
	b := append([]byte("II*\x00\x00\x00\xff\xff"), make([]byte, 5000)...)
	for name, decode := range map[string]func() error{
		"Decode":       func() error { _, err := Decode(b, "far.tif"); return err },
		"DecodeConfig": func() error { _, _, err := DecodeConfig(b); return err },
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := decode()
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%s: %d bytes allocated to refuse it", name, alloc)
		}
	}
}

// TestTIFFBlocksBounded: Go's TIFF decoder reads each block (strip or
// tile) as its byte count says, however many blocks share the same bytes,
// and unpacks a PackBits block whole, however large: a 4 MB PackBits
// strip of a 1×1 image unpacked to 256 MB, 1.5 GB allocated (a 30 MB
// one, under the server's default body limit, crashed it out of memory),
// and 4,096 strips naming the same 256 KB allocated and copied a
// gigabyte. Both are refused before
// the decoder runs, with under 1 MiB allocated; a PackBits image whose
// strips are what they should be decodes.
func TestTIFFBlocksBounded(t *testing.T) {
	// tiff writes a little-endian TIFF of a grey 8-bit image, its strips
	// (all at the offset of data, each of count bytes) in an array.
	tiff := func(w, h, rows, comp uint32, data []byte, offsets, counts []uint32) []byte {
		const entries = 9
		arrays := uint32(8 + 2 + 12*entries + 4)
		dataAt := arrays + 8*uint32(len(offsets))
		b := binary.LittleEndian.AppendUint32([]byte("II*\x00"), 8)
		b = binary.LittleEndian.AppendUint16(b, entries)
		entry := func(tag, typ uint16, count, v uint32) {
			b = binary.LittleEndian.AppendUint16(b, tag)
			b = binary.LittleEndian.AppendUint16(b, typ)
			b = binary.LittleEndian.AppendUint32(b, count)
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		n := uint32(len(offsets))
		offsetsAt, countsAt := arrays, arrays+4*n
		if n == 1 { // one LONG is held in the entry itself
			dataAt = arrays
			offsetsAt, countsAt = dataAt+offsets[0], counts[0]
		}
		entry(256, 4, 1, w)
		entry(257, 4, 1, h)
		entry(258, 3, 1, 8)
		entry(259, 3, 1, comp)
		entry(262, 3, 1, 1)
		entry(273, 4, n, offsetsAt)
		entry(277, 3, 1, 1)
		entry(278, 4, 1, rows)
		entry(279, 4, n, countsAt)
		b = binary.LittleEndian.AppendUint32(b, 0)
		if n > 1 {
			for _, o := range offsets {
				b = binary.LittleEndian.AppendUint32(b, dataAt+o)
			}
			for _, c := range counts {
				b = binary.LittleEndian.AppendUint32(b, c)
			}
		}
		return append(b, data...)
	}
	bomb := bytes.Repeat([]byte{0x81, 0x00}, 2<<20) // 4 MB unpacking to 256 MB
	shared := make([]byte, 256<<10)
	offsets, counts := make([]uint32, 4096), make([]uint32, 4096)
	for i := range counts {
		counts[i] = uint32(len(shared))
	}
	for name, c := range map[string]struct {
		b    []byte
		says string
	}{
		"packbits.tif": {tiff(1, 1, 1, 32773, bomb, []uint32{0}, []uint32{uint32(len(bomb))}), "unpacks to more than"},
		"shared.tif":   {tiff(64, 4096, 1, 1, shared, offsets, counts), "blocks reread"},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Decode(c.b, name)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v; want it refused, named, as %q", name, err, c.says)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%s: %d bytes allocated to refuse it", name, alloc)
		}
	}
	// 3×2 pixels in two PackBits strips: a run of three 7s, then the
	// literal 1, 2, 3.
	data := []byte{0xfe, 7, 2, 1, 2, 3}
	img, err := Decode(tiff(3, 2, 1, 32773, data, []uint32{0, 2}, []uint32{2, 4}), "ok.tif")
	if err != nil {
		t.Fatal(err)
	}
	if got := transform.Pixels(img, 1); !slices.Equal(got, []uint8{7, 7, 7, 1, 2, 3}) {
		t.Errorf("PackBits strips: %v, want [7 7 7 1 2 3]", got)
	}
}

// TestTIFFLayoutsRefused: separate colour planes (PlanarConfiguration 2,
// as tifffile writes an array of shape (3, H, W)) and bits in reversed
// order (FillOrder 2) outside CCITT, which Go's decoder decodes without an
// error into other pixels than PIL's (a 2×1 RGB image in planes came out
// as pixels (1, 3, 5) and (2, 4, 6)), are refused at the header, named.
func TestTIFFLayoutsRefused(t *testing.T) {
	// shorts returns a little-endian TIFF of a 2×1 image whose tags are
	// SHORTs (more than two stored after the directory), then data (at
	// StripOffsets, 273, given as 0).
	shorts := func(tags map[uint16][]uint16, data []byte) []byte {
		keys := slices.Sorted(maps.Keys(tags))
		at := uint32(8 + 2 + 12*len(keys) + 4)
		var extra []byte
		b := binary.LittleEndian.AppendUint32([]byte("II*\x00"), 8)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(keys)))
		for _, k := range keys {
			v := tags[k]
			b = binary.LittleEndian.AppendUint16(b, k)
			b = binary.LittleEndian.AppendUint16(b, 3)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
			if len(v) > 2 {
				b = binary.LittleEndian.AppendUint32(b, at+uint32(len(extra)))
				for _, x := range v {
					extra = binary.LittleEndian.AppendUint16(extra, x)
				}
				continue
			}
			v = append(slices.Clone(v), 0, 0)
			b = binary.LittleEndian.AppendUint16(b, v[0])
			b = binary.LittleEndian.AppendUint16(b, v[1])
		}
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = append(b, extra...)
		for e := 8 + 2; e < 8+2+12*len(keys); e += 12 {
			if binary.LittleEndian.Uint16(b[e:]) == 273 {
				binary.LittleEndian.PutUint16(b[e+8:], uint16(len(b)))
			}
		}
		return append(b, data...)
	}
	data := []byte{1, 2, 3, 4, 5, 6}
	rgb := map[uint16][]uint16{256: {2}, 257: {1}, 258: {8, 8, 8}, 259: {1}, 262: {2}, 273: {0}, 277: {3}, 279: {6}}
	if img, err := Decode(shorts(rgb, data), "rgb.tif"); err != nil || !slices.Equal(transform.Pixels(img, 3), data) {
		t.Fatalf("rgb.tif: %v", err)
	}
	planar := maps.Clone(rgb)
	planar[284] = []uint16{2}
	fill := maps.Clone(rgb)
	fill[266] = []uint16{2}
	for name, c := range map[string]struct {
		b    []byte
		says string
	}{
		"planar.tif": {shorts(planar, data), "separate colour planes"},
		"fill.tif":   {shorts(fill, data), "FillOrder 2"},
	} {
		if _, err := Decode(c.b, name); err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v; want it refused, named, as %q", name, err, c.says)
		}
	}
	// One sample per pixel: PlanarConfiguration 2 is the same layout.
	grey := map[uint16][]uint16{256: {2}, 257: {1}, 258: {8}, 259: {1}, 262: {1}, 273: {0}, 277: {1}, 279: {2}, 284: {2}}
	if img, err := Decode(shorts(grey, []byte{7, 9}), "grey.tif"); err != nil || !slices.Equal(transform.Pixels(img, 1), []uint8{7, 9}) {
		t.Errorf("grey, PlanarConfiguration 2: %v", err)
	}
}

// TestTIFFTagsReadAsTheDecoderReads: the guards read every tag as Go's
// decoder does — a BYTE, SHORT or LONG, its first value stored at an
// offset where the values do not fit in the entry. Each of these had
// passed a guard or been refused wrongly: a big-endian RGB TIFF whose
// SampleFormat (1, 1, 1) lies at 0x20000 or 0x30000 (the offset's high
// half was read as the value: "signed integers", "floating-point"); a
// RowsPerStrip of two SHORTs (not lowered: 16 MB inflated for a 4096×1
// image); tiles given as two LONGs (the offset read as the size: 16384²
// tiles decoded), or sides whose product overflowed to a negative area;
// a width and height of BYTEs (every block check
// skipped: a 4 MB PackBits strip of a 1×1 image unpacked to 256 MB).
func TestTIFFTagsReadAsTheDecoderReads(t *testing.T) {
	type entry struct {
		tag, typ uint16
		vals     []uint32
	}
	// build writes a TIFF of the entries (sorted), the values that do not
	// fit in an entry after pad bytes, then data, to which a StripOffsets
	// or TileOffsets value of 0 points.
	build := func(bo interface {
		binary.ByteOrder
		binary.AppendByteOrder
	}, big bool, ents []entry, pad int, data []byte) []byte {
		b := []byte("II*\x00")
		if big {
			b = []byte("MM\x00*")
		}
		b = bo.AppendUint32(b, 8)
		b = bo.AppendUint16(b, uint16(len(ents)))
		extraAt := 8 + 2 + 12*len(ents) + 4 + pad
		var extra []byte
		for _, e := range ents {
			if n := len(e.vals) * map[uint16]int{1: 1, 3: 2, 4: 4}[e.typ]; n > 4 {
				extra = append(extra, make([]byte, (n+3)/4*4)...)
			}
		}
		dataAt := uint32(extraAt + len(extra))
		extra = extra[:0]
		for _, e := range ents {
			var raw []byte
			for _, v := range e.vals {
				if v == 0 && (e.tag == 273 || e.tag == 324) {
					v = dataAt
				}
				switch e.typ {
				case 1:
					raw = append(raw, byte(v))
				case 3:
					raw = bo.AppendUint16(raw, uint16(v))
				case 4:
					raw = bo.AppendUint32(raw, v)
				}
			}
			b = bo.AppendUint16(b, e.tag)
			b = bo.AppendUint16(b, e.typ)
			b = bo.AppendUint32(b, uint32(len(e.vals)))
			if len(raw) > 4 {
				b = bo.AppendUint32(b, uint32(extraAt+len(extra)))
				extra = append(extra, raw...)
				extra = append(extra, make([]byte, (4-len(raw)%4)%4)...)
				continue
			}
			b = append(b, append(raw, 0, 0, 0, 0)[:4]...)
		}
		b = bo.AppendUint32(b, 0)
		b = append(b, make([]byte, pad)...)
		b = append(b, extra...)
		return append(b, data...)
	}
	le := binary.LittleEndian
	rgb := []byte{1, 2, 3, 4, 5, 6}
	for _, pad := range []int{0x20000, 0x30000} {
		b := build(binary.BigEndian, true, []entry{{256, 3, []uint32{2}}, {257, 3, []uint32{1}}, {258, 3, []uint32{8, 8, 8}}, {259, 3, []uint32{1}},
			{262, 3, []uint32{2}}, {273, 4, []uint32{0}}, {277, 3, []uint32{3}}, {279, 4, []uint32{6}}, {339, 3, []uint32{1, 1, 1}}}, pad, rgb)
		if img, err := Decode(b, "big.tif"); err != nil || !slices.Equal(transform.Pixels(img, 3), rgb) {
			t.Errorf("big-endian RGB, SampleFormat at %#x: %v", pad, err)
		}
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 16<<20))
	zw.Close()
	var pb []byte
	for range 1 << 15 {
		pb = append(pb, 0x81, 0)
	}
	pb = bytes.Repeat(pb, 64) // 4 MB unpacking to 256 MB
	for name, c := range map[string]struct {
		b    []byte
		says string // "" for an image decoded
	}{
		"rows.tif": {build(le, false, []entry{{256, 4, []uint32{4096}}, {257, 4, []uint32{1}}, {258, 3, []uint32{8}}, {259, 3, []uint32{8}}, {262, 3, []uint32{1}},
			{273, 4, []uint32{0}}, {277, 3, []uint32{1}}, {278, 3, []uint32{65535, 65535}}, {279, 4, []uint32{uint32(z.Len())}}}, 0, z.Bytes()), ""},
		"tiles.tif": {build(le, false, []entry{{256, 4, []uint32{1}}, {257, 4, []uint32{1}}, {258, 3, []uint32{8}}, {259, 3, []uint32{8}}, {262, 3, []uint32{1}},
			{277, 3, []uint32{1}}, {322, 4, []uint32{1 << 14, 0}}, {323, 4, []uint32{1 << 14, 0}}, {324, 4, []uint32{0}}, {325, 4, []uint32{uint32(z.Len())}}}, 0, z.Bytes()), "in tiles of 16384×16384"},
		// 3,037,000,500² overflows an int64 to a negative area.
		"wrap.tif": {build(le, false, []entry{{256, 4, []uint32{1}}, {257, 4, []uint32{1}}, {258, 3, []uint32{8}}, {259, 3, []uint32{8}}, {262, 3, []uint32{1}},
			{277, 3, []uint32{1}}, {322, 4, []uint32{3037000500}}, {323, 4, []uint32{3037000500}}, {324, 4, []uint32{0}}, {325, 4, []uint32{uint32(z.Len())}}}, 0, z.Bytes()), "in tiles of 3037000500×3037000500"},
		"bytes.tif": {build(le, false, []entry{{256, 1, []uint32{1}}, {257, 1, []uint32{1}}, {258, 3, []uint32{8}}, {259, 3, []uint32{32773}}, {262, 3, []uint32{1}},
			{273, 4, []uint32{0}}, {277, 3, []uint32{1}}, {278, 4, []uint32{1}}, {279, 4, []uint32{uint32(len(pb))}}}, 0, pb), "unpacks to more than"},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Decode(c.b, name)
		runtime.ReadMemStats(&after)
		if c.says == "" && err != nil || c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)) {
			t.Errorf("%s: %v; want %q", name, err, c.says)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%s: %d bytes allocated", name, alloc)
		}
	}
}
