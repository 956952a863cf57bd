// Package pngheader reads a PNG's header chunk (IHDR) from the file's
// first 33 bytes: the size of a PNG that Go's image/png refuses for its
// size alone, so that the readers of images can refuse it by their limits
// (limits.CheckImage) rather than as corrupt, and the bit depth and colour
// type that say what a file was saved as.
package pngheader

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image/png"
	"math"
)

// Header is a PNG's IHDR: its size, bit depth and colour type (0 grey,
// 2 RGB, 3 paletted, 4 grey with alpha, 6 RGBA).
type Header struct {
	Width, Height int
	Depth, Colour int
}

// Read returns b's header, ok false for a b that does not start with
// the PNG signature and a sound IHDR (its length, type and checksum
// right, each side at most 2³¹−1 as the format bounds it).
func Read(b []byte) (h Header, ok bool) {
	if len(b) < 33 || string(b[:16]) != "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" ||
		crc32.ChecksumIEEE(b[12:29]) != binary.BigEndian.Uint32(b[29:33]) {
		return Header{}, false
	}
	w, ht := binary.BigEndian.Uint32(b[16:20]), binary.BigEndian.Uint32(b[20:24])
	if w > math.MaxInt32 || ht > math.MaxInt32 {
		return Header{}, false
	}
	return Header{Width: int(w), Height: int(ht), Depth: int(b[24]), Colour: int(b[25])}, true
}

// Overflowed returns the width and height of the PNG b when err, what
// png.DecodeConfig returned for it, is its "dimension overflow": pixels,
// times the 8 bytes of the widest, past an int, which a 32-bit int is
// from 2²⁸ pixels (16,384 × 16,384) and a 64-bit one from 2⁶⁰. ok is
// false for any other error and for a header that Read refuses.
func Overflowed(b []byte, err error) (w, h int, ok bool) {
	if !errors.Is(err, png.UnsupportedError("dimension overflow")) {
		return 0, 0, false
	}
	hd, ok := Read(b)
	return hd.Width, hd.Height, ok
}
