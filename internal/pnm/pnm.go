// Package pnm decodes the Netpbm image formats — PBM, PGM and PPM, binary
// (P4, P5, P6) and plain (P1, P2, P3) — as PIL (Pillow 9.4) reads them, and
// registers them with package image as "pnm".
//
// The pixels are PIL's: a bitmap is 0 (black, a 1 bit) or 255; grey and
// colour samples of a maximum value other than 255 are scaled to 8 bits,
// v/maxval·255 rounded half to even (Python's round), except grey above 8
// bits, which PIL reads as 32-bit integers scaled to 16 bits and is
// returned here as an image.Gray16 of those values. A binary sample above
// maxval is clipped, a plain one is an error; comments (# to the end of the
// line) are skipped in the header and in plain data; one whitespace byte
// ends the header of a binary file. PAM (P7) and PFM are not read (neither
// does PIL 9.4).
//
// Decoding never allocates more than the file can fill: the header's size
// is checked against the bytes that follow it before the image is made.
package pnm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
)

func init() {
	for _, m := range []string{"P1", "P2", "P3", "P4", "P5", "P6"} {
		image.RegisterFormat("pnm", m, Decode, DecodeConfig)
	}
}

// maxToken is the longest header token PIL reads (10 characters).
const maxToken = 10

// header is what a PNM file's header says.
type header struct {
	kind          byte // '1' to '6'
	width, height int
	maxval        int // 1 for bitmaps
}

func (h header) plain() bool   { return h.kind <= '3' }
func (h header) bitmap() bool  { return h.kind == '1' || h.kind == '4' }
func (h header) colour() bool  { return h.kind == '3' || h.kind == '6' }
func (h header) sixteen() bool { return h.maxval > 255 }

// samples is how many samples a pixel has.
func (h header) samples() int {
	if h.colour() {
		return 3
	}
	return 1
}

// readHeader reads the magic number, the size and (but for bitmaps) the
// maximum value, and the one whitespace byte after the last of them, as
// PIL's PpmImageFile._open does.
func readHeader(r *bufio.Reader) (header, error) {
	var magic [2]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return header{}, fmt.Errorf("pnm: %w", unexpected(err))
	}
	if magic[0] != 'P' || magic[1] < '1' || magic[1] > '6' {
		return header{}, errors.New("pnm: not a PBM, PGM or PPM file (no P1 to P6 magic number)")
	}
	h := header{kind: magic[1], maxval: 1}
	// The magic number ends with whitespace (PIL reads it up to the first
	// whitespace byte, and "P5x" is no format of its).
	if c, err := r.ReadByte(); err != nil {
		return header{}, fmt.Errorf("pnm: %w", unexpected(err))
	} else if !space(c) {
		return header{}, fmt.Errorf("pnm: the magic number P%c is followed by %q, not whitespace", h.kind, c)
	}
	fields := []*int{&h.width, &h.height, &h.maxval}
	names := []string{"width", "height", "maximum value"}
	if h.bitmap() {
		fields = fields[:2]
	}
	for i, f := range fields {
		v, err := token(r)
		if err != nil {
			return header{}, fmt.Errorf("pnm: the header's %s: %w", names[i], err)
		}
		*f = v
	}
	// Ten digits hold up to 9,999,999,999 a side: sides over 2³¹ − 1 are
	// refused, so that their product fits in an int64.
	if h.width <= 0 || h.height <= 0 || h.width > math.MaxInt32 || h.height > math.MaxInt32 {
		return header{}, fmt.Errorf("pnm: a size of %d×%d pixels", h.width, h.height)
	}
	if h.maxval < 1 || h.maxval > 65535 {
		return header{}, fmt.Errorf("pnm: a maximum value of %d (it must be 1 to 65535)", h.maxval)
	}
	return h, nil
}

// token reads a header's decimal number: whitespace before it and
// comments are skipped, one whitespace byte ends it (consumed).
func token(r *bufio.Reader) (int, error) {
	var digits []byte
	for len(digits) <= maxToken {
		c, err := r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		switch {
		case space(c):
			if len(digits) == 0 {
				continue
			}
		case c == '#':
			if err := skipComment(r); err != nil {
				return 0, err
			}
			continue
		case c >= '0' && c <= '9':
			digits = append(digits, c)
			continue
		default:
			return 0, fmt.Errorf("%q is not a digit", c)
		}
		break
	}
	if len(digits) == 0 {
		return 0, errors.New("the file ends before it")
	}
	if len(digits) > maxToken {
		return 0, fmt.Errorf("a number of more than %d digits", maxToken)
	}
	v := 0
	for _, d := range digits {
		v = 10*v + int(d-'0')
	}
	return v, nil
}

// skipComment reads up to and including the end of the line (CR or LF).
func skipComment(r *bufio.Reader) error {
	for {
		c, err := r.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if c == '\n' || c == '\r' {
			return nil
		}
	}
}

// space is PIL's whitespace in these files (b" \t\n\x0b\x0c\r").
func space(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// DecodeConfig returns a PNM file's size and colour model (color.GrayModel,
// color.Gray16Model or color.RGBAModel) from its header.
func DecodeConfig(r io.Reader) (image.Config, error) {
	h, err := readHeader(bufio.NewReader(r))
	if err != nil {
		return image.Config{}, err
	}
	return image.Config{ColorModel: h.model(), Width: h.width, Height: h.height}, nil
}

func (h header) model() color.Model {
	switch {
	case h.colour():
		return color.RGBAModel
	case h.sixteen():
		return color.Gray16Model
	}
	return color.GrayModel
}

// Decode reads a PNM image: an *image.Gray (bitmaps, and grey up to 8
// bits), an *image.Gray16 (grey of more than 8 bits) or an *image.RGBA
// (colour, opaque).
func Decode(r io.Reader) (image.Image, error) {
	br := bufio.NewReader(r)
	h, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	// What the pixels need at the least — a binary sample's bytes, a plain
	// one's digit and separator (a plain bitmap's digit) — against what
	// the file holds, before anything is allocated: a header claiming
	// more than the file is refused at the cost of reading the file.
	// More pixels than the most data read here could hold (8 a byte, a
	// P4's) are refused before they are counted in bytes, which could
	// overflow.
	if px := int64(h.width) * int64(h.height); px > 8*math.MaxInt32 {
		return nil, fmt.Errorf("pnm: %d×%d pixels: more than a file of at most %d bytes holds", h.width, h.height, math.MaxInt32)
	}
	n := int64(h.width) * int64(h.height) * int64(h.samples())
	need := n
	switch {
	case h.kind == '4':
		need = int64((h.width+7)/8) * int64(h.height)
	case h.kind == '1':
	case h.plain():
		need = 2*n - 1
	case h.sixteen():
		need = 2 * n
	}
	// A reader that knows its length (the bytes.Reader of a file read
	// whole) is read into a buffer of that size, not one grown by
	// doubling (which allocated twice the data).
	var buf bytes.Buffer
	if l, ok := r.(interface{ Len() int }); ok {
		buf.Grow(min(br.Buffered()+l.Len()+bytes.MinRead, math.MaxInt32)) // MinRead: room to read the EOF
	}
	if _, err := buf.ReadFrom(io.LimitReader(br, math.MaxInt32)); err != nil {
		return nil, fmt.Errorf("pnm: %w", err)
	}
	rest := buf.Bytes()
	if int64(len(rest)) < need {
		return nil, fmt.Errorf("pnm: truncated: %d×%d pixels need at least %d bytes of data, the file has %d", h.width, h.height, need, len(rest))
	}
	rect := image.Rect(0, 0, h.width, h.height)
	switch {
	case h.bitmap():
		img := image.NewGray(rect)
		if err := h.bits(rest, img.Pix); err != nil {
			return nil, err
		}
		return img, nil
	case h.colour():
		img := image.NewRGBA(rect)
		if err := h.values(rest, 255, func(i int, v uint16) {
			img.Pix[i+i/3] = uint8(v)
			if i%3 == 2 {
				img.Pix[i+i/3+1] = 255
			}
		}); err != nil {
			return nil, err
		}
		return img, nil
	case h.sixteen():
		img := image.NewGray16(rect)
		if err := h.values(rest, 65535, func(i int, v uint16) { img.Pix[2*i], img.Pix[2*i+1] = uint8(v>>8), uint8(v) }); err != nil {
			return nil, err
		}
		return img, nil
	}
	img := image.NewGray(rect)
	if err := h.values(rest, 255, func(i int, v uint16) { img.Pix[i] = uint8(v) }); err != nil {
		return nil, err
	}
	return img, nil
}

// bits writes a bitmap's pixels (1 is black) into pix as 0 and 255.
func (h header) bits(data, pix []uint8) error {
	if h.kind == '4' {
		stride := (h.width + 7) / 8
		for y := range h.height {
			row := data[y*stride:]
			for x := range h.width {
				pix[y*h.width+x] = 255 * (1 - row[x/8]>>(7-x%8)&1)
			}
		}
		return nil
	}
	// Plain: a digit per pixel, whitespace between them optional.
	i := 0
	for j := 0; j < len(data) && i < len(pix); j++ {
		switch c := data[j]; {
		case c == '0' || c == '1':
			pix[i] = 255 * (1 - (c - '0'))
			i++
		case c == '#':
			j = lineEnd(data, j)
		case !space(c):
			return fmt.Errorf("pnm: %q in a plain bitmap's pixels (only 0 and 1)", c)
		}
	}
	if i < len(pix) {
		return fmt.Errorf("pnm: truncated: %d of %d pixels", i, len(pix))
	}
	return nil
}

// values hands put the samples in order, scaled from [0, maxval] to
// [0, top] as PIL rounds them: v/maxval·top, half to even; a binary
// sample above maxval is clipped to top. (Written into the image as they
// come: a slice of them took 2 bytes a sample beside the image.)
func (h header) values(data []byte, top int, put func(i int, v uint16)) error {
	n := h.width * h.height * h.samples()
	// Binary samples of maxval 255 (or 65535 at 16 bits) are the values
	// themselves; others go through a table of every possible sample.
	width := 1
	if h.sixteen() {
		width = 2
	}
	table := make([]uint16, 1<<(8*width))
	for v := range table {
		table[v] = uint16(min(top, int(math.RoundToEven(float64(v)/float64(h.maxval)*float64(top)))))
	}
	if !h.plain() {
		for i := range n {
			v := int(data[i*width])
			if width == 2 {
				v = v<<8 | int(data[2*i+1])
			}
			put(i, table[v])
		}
		return nil
	}
	i, j := 0, 0
	for i < n {
		for j < len(data) && (space(data[j]) || data[j] == '#') {
			if data[j] == '#' {
				j = lineEnd(data, j)
				continue
			}
			j++
		}
		if j == len(data) {
			return fmt.Errorf("pnm: truncated: %d of %d samples", i, n)
		}
		v, k := 0, j
		for ; k < len(data) && data[k] >= '0' && data[k] <= '9'; k++ {
			if k-j == maxToken {
				return fmt.Errorf("pnm: a sample of more than %d digits", maxToken)
			}
			v = 10*v + int(data[k]-'0')
		}
		if k == j {
			return fmt.Errorf("pnm: %q in a plain file's samples (only digits)", data[j])
		}
		if v > h.maxval {
			return fmt.Errorf("pnm: sample %d is above the maximum value %d", v, h.maxval)
		}
		put(i, table[v])
		i, j = i+1, k
	}
	return nil
}

// lineEnd returns the index of the CR or LF that ends the line of data
// holding index j (a comment's), or len(data).
func lineEnd(data []byte, j int) int {
	for j < len(data) && data[j] != '\n' && data[j] != '\r' {
		j++
	}
	return j
}
