// Package pngsize reads the size of a PNG whose header Go's image/png
// refuses for its size alone, so that the readers of images can refuse
// it by their limits (limits.CheckImage) rather than as corrupt.
package pngsize

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image/png"
)

// Overflowed returns the width and height of the PNG b when err, what
// png.DecodeConfig returned for it, is its "dimension overflow": pixels,
// times the 8 bytes of the widest, past an int, which a 32-bit int is
// from 2²⁸ pixels (16,384 × 16,384) and a 64-bit one from 2⁶⁰. ok is
// false for any other error and for a header chunk that is not sound
// (its length, type or checksum wrong).
func Overflowed(b []byte, err error) (w, h int, ok bool) {
	if !errors.Is(err, png.UnsupportedError("dimension overflow")) || len(b) < 33 ||
		string(b[:16]) != "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" ||
		crc32.ChecksumIEEE(b[12:29]) != binary.BigEndian.Uint32(b[29:33]) {
		return 0, 0, false
	}
	// The decoder has read both as positive int32s.
	return int(binary.BigEndian.Uint32(b[16:20])), int(binary.BigEndian.Uint32(b[20:24])), true
}
