package imagefile_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"

	"github.com/residual-nn/residual/data/imagefile"
)

// A PNG's bytes (what an HTTP body or a file holds) decoded as Load
// decodes a file: the header checked against the limits first, the name
// used in errors.
func ExampleDecode() {
	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	img.Set(1, 2, color.RGBA{R: 200, G: 100, B: 50, A: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	got, err := imagefile.Decode(b.Bytes(), "upload.png")
	if err != nil {
		panic(err)
	}
	r, g, bl, _ := got.At(1, 2).RGBA()
	fmt.Println(got.Bounds().Dx(), "x", got.Bounds().Dy(), r>>8, g>>8, bl>>8)

	// Bytes of no image format: an error naming them, not a panic.
	_, err = imagefile.Decode([]byte("not an image"), "notes.txt")
	fmt.Println(err)
	// Output:
	// 4 x 3 200 100 50
	// imagefile: notes.txt: not a JPEG, PNG, GIF, BMP, WebP, TIFF, PBM, PGM or PPM image
}

// CheckHeader reads only the header: a file that claims more pixels than
// limits.ImagePixels is refused before any pixel is allocated.
func ExampleCheckHeader() {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 640, 480))); err != nil {
		panic(err)
	}
	format, cfg, err := imagefile.CheckHeader(b.Bytes(), "photo.png")
	fmt.Println(format, cfg.Width, cfg.Height, err)

	// The 33 bytes of a PNG's signature and header chunk claiming
	// 60,000 × 60,000 pixels (a decompression bomb's start).
	ihdr := []byte("IHDR\x00\x00\xea\x60\x00\x00\xea\x60\x08\x00\x00\x00\x00")
	bomb := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d"), ihdr...)
	bomb = binary.BigEndian.AppendUint32(bomb, crc32.ChecksumIEEE(ihdr))
	_, _, err = imagefile.CheckHeader(bomb, "bomb.png")
	fmt.Println(err)
	// Output:
	// png 640 480 <nil>
	// imagefile: bomb.png: image of 60000×60000 = 3600000000 pixels is over 89478485 (limits.ImagePixels): refused as a possible decompression bomb
}
