// Package bmp decodes Windows and OS/2 bitmaps as PIL (Pillow 9.4) reads
// them, and registers them with package image as "bmp", where they
// follow the format (BMP's RLE deltas and odd RLE4 absolute runs, which
// PIL 9.4 misreads).
//
// It reads what PIL's BmpImagePlugin reads — the OS/2 header (12 bytes)
// and the Windows ones of 40, 64, 108 and 124 bytes; 1-, 4- and 8-bit
// palettes (and 2-bit, which PIL refuses); 16 bits as 5-5-5 or, with
// BI_BITFIELDS masks, 5-6-5; 24 bits; 32 bits as BGRX or, with masks, the
// channel orders PIL knows (with alpha where a mask gives one); RLE8 and
// RLE4 compression — with PIL's arithmetic and choices: a palette is read
// right after the header, an index beyond it is the grey of its value
// (PIL's palettes start as a grey ramp), 16-bit channels are widened as
// v·255/31 (or /63) truncated, a run that overflows its row is cut at the
// row's end, and RLE data that ends (or marks its end) before the image
// is filled is an error. Two things PIL 9.4 gets wrong are read as the
// format defines them: a delta's offsets are the two bytes after its
// escape (PIL reads the next two, losing its place), and an RLE4 absolute
// run of an odd count n is n pixels in (n+1)/2 bytes (PIL reads n/2).
// Golang.org/x/image/bmp reads neither 16-bit nor RLE bitmaps, nor a
// palette not followed at once by the pixels.
//
// The pixels come as an *image.Paletted (1 to 8 bits), an *image.RGBA (opaque colour) or an
// *image.NRGBA (32 bits with an alpha mask; PIL's RGBA).
package bmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
)

func init() {
	image.RegisterFormat("bmp", "BM", Decode, DecodeConfig)
}

// Compressions.
const (
	biRGB       = 0
	biRLE8      = 1
	biRLE4      = 2
	biBitfields = 3
)

// header is what a bitmap's headers say, as PIL reads them.
type header struct {
	width, height int
	bottomUp      bool
	bits          int
	compression   uint32
	offset        int    // of the pixels in the file
	palette       int    // where the palette starts
	palPad        int    // bytes a palette entry (3 for OS/2, 4 otherwise)
	colors        int    // palette entries
	layout        string // of 16, 24 and 32-bit pixels: PIL's raw mode
	alpha         bool   // the layout carries alpha
}

// rawLayouts maps a depth and its bitfield masks (red, green, blue, alpha)
// to PIL's raw mode.
var rawLayouts = map[[5]uint32]string{
	{32, 0xff0000, 0xff00, 0xff, 0}:          "BGRX",
	{32, 0xff000000, 0xff0000, 0xff00, 0}:    "XBGR",
	{32, 0xff000000, 0xff0000, 0xff00, 0xff}: "ABGR",
	{32, 0xff, 0xff00, 0xff0000, 0xff000000}: "RGBA",
	{32, 0xff0000, 0xff00, 0xff, 0xff000000}: "BGRA",
	{32, 0, 0, 0, 0}:                         "BGRA",
	{24, 0xff0000, 0xff00, 0xff, 0}:          "BGR",
	{16, 0xf800, 0x7e0, 0x1f, 0}:             "BGR;16",
	{16, 0x7c00, 0x3e0, 0x1f, 0}:             "BGR;15",
}

// readHeader reads the headers from the start of a file (at least the
// first 14 + 124 + 12 bytes of it, or all of it if shorter).
func readHeader(b []byte) (header, error) {
	var h header
	if len(b) < 18 || string(b[:2]) != "BM" {
		return h, errors.New("bmp: not a BMP file")
	}
	le := binary.LittleEndian
	h.offset = int(le.Uint32(b[10:]))
	size := int(le.Uint32(b[14:]))
	if len(b) < 14+size {
		return h, io.ErrUnexpectedEOF
	}
	d := b[18:] // the header after its size
	var masks [4]uint32
	switch size {
	case 12: // OS/2 1.x
		h.width, h.height = int(le.Uint16(d[0:])), int(le.Uint16(d[2:]))
		h.bits = int(le.Uint16(d[6:]))
		h.bottomUp, h.palPad = true, 3
	case 40, 64, 108, 124:
		h.width = int(le.Uint32(d[0:]))
		ht := le.Uint32(d[4:])
		// PIL takes a height whose top byte is 0xFF as negative: top-down.
		h.bottomUp = d[7] != 0xff
		if !h.bottomUp {
			ht = -ht
		}
		h.height = int(ht)
		h.bits = int(le.Uint16(d[10:]))
		h.compression = le.Uint32(d[12:])
		h.colors = int(le.Uint32(d[28:]))
		h.palPad = 4
		if h.compression == biBitfields {
			if size >= 56 { // the masks are part of the header
				for i := range masks {
					masks[i] = le.Uint32(d[36+4*i:])
				}
			} else { // BITMAPINFOHEADER: three masks after it
				if len(b) < 14+size+12 {
					return h, io.ErrUnexpectedEOF
				}
				for i := range 3 {
					masks[i] = le.Uint32(b[14+size+4*i:])
				}
			}
		}
	default:
		return h, fmt.Errorf("bmp: unsupported header type (%d bytes)", size)
	}
	if h.colors == 0 {
		h.colors = 1 << min(h.bits, 24)
	}
	h.palette = 14 + size
	if h.offset == 14+size && h.bits <= 8 {
		h.offset += 4 * h.colors // PIL's guess where the header leaves no room for the palette
	}
	switch h.bits {
	case 1, 2, 4, 8:
		if h.colors < 1 || h.colors > 65536 {
			return h, fmt.Errorf("bmp: unsupported palette size (%d)", h.colors)
		}
	case 16:
		h.layout = "BGR;15"
	case 24:
		h.layout = "BGR"
	case 32:
		h.layout = "BGRX"
	default:
		return h, fmt.Errorf("bmp: unsupported pixel depth (%d)", h.bits)
	}
	switch h.compression {
	case biRGB:
	case biBitfields:
		key := [5]uint32{uint32(h.bits), masks[0], masks[1], masks[2], masks[3]}
		if h.bits != 32 {
			key[4] = 0 // PIL compares the colour masks alone below 32 bits
		}
		l, ok := rawLayouts[key]
		if !ok || h.bits <= 8 {
			return h, errors.New("bmp: unsupported bitfields layout")
		}
		h.layout = l
		h.alpha = h.bits == 32 && (l[0] == 'A' || l[3] == 'A')
	case biRLE8, biRLE4:
		if want := map[uint32]int{biRLE8: 8, biRLE4: 4}[h.compression]; h.bits != want {
			return h, fmt.Errorf("bmp: RLE%d compression of %d-bit pixels", want, h.bits)
		}
	default:
		return h, fmt.Errorf("bmp: unsupported compression (%d)", h.compression)
	}
	if h.width < 1 || h.height < 1 {
		return h, fmt.Errorf("bmp: empty image (%d×%d)", h.width, h.height)
	}
	if h.width > maxSide || h.height > maxSide {
		return h, fmt.Errorf("bmp: image of %d×%d pixels: a side over %d", h.width, h.height, maxSide)
	}
	if h.offset == 0 { // PIL reads the pixels from where the headers and the palette end
		h.offset = 14 + size
		if size == 40 && h.compression == biBitfields {
			h.offset += 12
		}
		if h.bits <= 8 {
			h.offset += h.palPad * h.colors
		}
	}
	return h, nil
}

// maxSide and maxPixels bound a bitmap's size, so that sizes and byte
// counts fit an int and a small file cannot make Decode allocate
// gigabytes (package image's Decode reaches it too; residual's callers
// apply their own, tighter limits to what DecodeConfig reports first).
const (
	maxSide   = 1 << 24
	maxPixels = 1 << 28
)

// headerBytes is the most readHeader reads.
const headerBytes = 14 + 124 + 12

// DecodeConfig returns a bitmap's size and colour model.
func DecodeConfig(r io.Reader) (image.Config, error) {
	b, err := io.ReadAll(io.LimitReader(r, headerBytes))
	if err != nil {
		return image.Config{}, err
	}
	h, err := readHeader(b)
	if err != nil {
		return image.Config{}, err
	}
	var m color.Model = color.RGBAModel
	switch {
	case h.bits <= 8:
		m = color.Palette{} // the palette comes with the pixels
	case h.alpha:
		m = color.NRGBAModel
	}
	return image.Config{ColorModel: m, Width: h.width, Height: h.height}, nil
}

// Decode reads a bitmap. The header's size is checked against the bytes
// that follow it before the image is made (for RLE data, against the
// most pixels it could code).
func Decode(r io.Reader) (image.Image, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	h, err := readHeader(b)
	if err != nil {
		return nil, err
	}
	if h.width*h.height > maxPixels { // DecodeConfig reports the size: its caller judges it
		return nil, fmt.Errorf("bmp: image of %d×%d pixels: more than %d", h.width, h.height, maxPixels)
	}
	rect := image.Rect(0, 0, h.width, h.height)
	if h.bits <= 8 {
		return decodePaletted(b, h, rect)
	}
	stride := (h.width*h.bits + 31) / 32 * 4
	if h.offset > len(b) || (len(b)-h.offset)/stride < h.height {
		return nil, io.ErrUnexpectedEOF
	}
	var img interface {
		image.Image
		SetRGBA(x, y int, c color.RGBA)
	}
	var nrgba *image.NRGBA
	if h.alpha {
		nrgba = image.NewNRGBA(rect)
	} else {
		img = image.NewRGBA(rect)
	}
	for y := range h.height {
		row := b[h.offset+y*stride:]
		if h.bottomUp {
			row = b[h.offset+(h.height-1-y)*stride:]
		}
		for x := range h.width {
			c := pixel(row, x, h.layout)
			if nrgba != nil {
				i := nrgba.PixOffset(x, y)
				copy(nrgba.Pix[i:i+4], []uint8{c.R, c.G, c.B, c.A})
			} else {
				img.SetRGBA(x, y, c)
			}
		}
	}
	if nrgba != nil {
		return nrgba, nil
	}
	return img, nil
}

// pixel unpacks pixel x of a row in PIL's raw mode layout; the colour is
// straight (not premultiplied) where the layout has alpha, else opaque.
func pixel(row []byte, x int, layout string) color.RGBA {
	switch layout {
	case "BGR;15", "BGR;16":
		p := int(binary.LittleEndian.Uint16(row[2*x:]))
		if layout == "BGR;15" {
			return color.RGBA{uint8((p >> 10 & 31) * 255 / 31), uint8((p >> 5 & 31) * 255 / 31), uint8((p & 31) * 255 / 31), 255}
		}
		return color.RGBA{uint8((p >> 11 & 31) * 255 / 31), uint8((p >> 5 & 63) * 255 / 63), uint8((p & 31) * 255 / 31), 255}
	case "BGR":
		q := row[3*x:]
		return color.RGBA{q[2], q[1], q[0], 255}
	}
	q := row[4*x : 4*x+4]
	switch layout {
	case "BGRX":
		return color.RGBA{q[2], q[1], q[0], 255}
	case "XBGR":
		return color.RGBA{q[3], q[2], q[1], 255}
	case "ABGR":
		return color.RGBA{q[3], q[2], q[1], q[0]}
	case "RGBA":
		return color.RGBA{q[0], q[1], q[2], q[3]}
	default: // "BGRA"
		return color.RGBA{q[2], q[1], q[0], q[3]}
	}
}

// decodePaletted reads a bitmap of 1, 2, 4 or 8 bits a pixel, raw or RLE.
func decodePaletted(b []byte, h header, rect image.Rectangle) (image.Image, error) {
	n := h.palPad * h.colors
	if h.palette+n > len(b) {
		return nil, io.ErrUnexpectedEOF
	}
	// Indices beyond the palette are grey: PIL's palettes have 256 entries
	// and start as a grey ramp, which the file's colours overwrite.
	pal := make(color.Palette, max(1<<h.bits, min(h.colors, 256)))
	for i := range pal {
		pal[i] = color.RGBA{uint8(i), uint8(i), uint8(i), 255}
		if i < h.colors {
			e := b[h.palette+h.palPad*i:]
			pal[i] = color.RGBA{e[2], e[1], e[0], 255}
		}
	}
	var rows []byte // the indices, row by row in the file's order
	if h.compression == biRGB {
		stride := (h.width*h.bits + 31) / 32 * 4
		if h.offset > len(b) || (len(b)-h.offset)/stride < h.height {
			return nil, io.ErrUnexpectedEOF
		}
		rows = make([]byte, h.width*h.height)
		for y := range h.height {
			src := b[h.offset+y*stride:]
			for x := range h.width {
				bit := x * h.bits
				rows[y*h.width+x] = src[bit/8] >> (8 - h.bits - bit%8) & (1<<h.bits - 1)
			}
		}
	} else {
		// Two bytes code at most 255 pixels, or a delta of 255 + 255 rows.
		if coded := (len(b) - min(h.offset, len(b))) / 2 * (255 + 255*h.width); coded < h.width*h.height {
			return nil, fmt.Errorf("bmp: %d bytes of RLE data cannot code %d×%d pixels", len(b)-min(h.offset, len(b)), h.width, h.height)
		}
		var ok bool
		if rows, ok = decodeRLE(b, h); !ok {
			return nil, errors.New("bmp: the RLE data ends before the image is filled")
		}
	}
	img := image.NewPaletted(rect, pal)
	for y := range h.height {
		src := y
		if h.bottomUp {
			src = h.height - 1 - y
		}
		copy(img.Pix[y*img.Stride:y*img.Stride+h.width], rows[src*h.width:])
	}
	return img, nil
}

// decodeRLE expands RLE8 or RLE4 data as PIL's BmpRleDecoder does, into
// width·height indices — but for deltas and odd RLE4 absolute runs, read
// as the format defines them (see the package comment); ok is false when
// the data ends, or marks its end, before it fills them (PIL: "not enough
// image data").
func decodeRLE(b []byte, h header) (indices []byte, ok bool) {
	w, total := h.width, h.width*h.height
	rle4 := h.compression == biRLE4
	data := make([]byte, 0, total)
	pos := min(h.offset, len(b))
	read := func(n int) []byte {
		s := b[pos:min(pos+n, len(b))]
		pos += len(s)
		return s
	}
	x := 0
	for len(data) < total {
		pb := read(2)
		if len(pb) < 2 {
			break
		}
		count, v := int(pb[0]), pb[1]
		if count > 0 { // a run of count pixels
			if x+count > w {
				count = max(0, w-x) // too many for the row
			}
			for i := range count {
				if !rle4 {
					data = append(data, v)
				} else if i%2 == 0 {
					data = append(data, v>>4)
				} else {
					data = append(data, v&15)
				}
			}
			x += count
			continue
		}
		switch v {
		case 0: // end of line
			for len(data)%w != 0 {
				data = append(data, 0)
			}
			x = 0
			continue
		case 1: // end of bitmap
		case 2: // delta
			d := read(2)
			if len(d) < 2 {
				break
			}
			data = append(data, make([]byte, min(int(d[0])+int(d[1])*w, total-len(data)))...)
			x = len(data) % w
			continue
		default: // absolute: v pixels follow
			n := int(v)
			if rle4 {
				n = (int(v) + 1) / 2
			}
			s := read(n)
			if len(s) < n {
				break
			}
			for i, c := range s {
				if !rle4 {
					data = append(data, c)
				} else if data = append(data, c>>4); 2*i+1 < int(v) {
					data = append(data, c&15)
				}
			}
			x += int(v)
			if pos%2 != 0 { // runs end on a 16-bit boundary of the file
				pos = min(pos+1, len(b))
			}
			continue
		}
		break // the end of the bitmap, or of the data (the breaks above leave the switch)
	}
	if len(data) < total {
		return nil, false
	}
	return data[:total], true
}
