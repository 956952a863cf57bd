package pngsize

import (
	"bytes"
	"errors"
	"image/png"
	"testing"

	"github.com/residual-nn/residual/internal/fixture"
)

// A header whose size png.DecodeConfig refuses as a dimension overflow
// gives that size; a smaller one, a bad checksum or another error give
// none.
func TestOverflowed(t *testing.T) {
	decode := func(b []byte) (int, int, bool) {
		_, err := png.DecodeConfig(bytes.NewReader(b))
		return Overflowed(b, err)
	}
	if w, h, ok := decode(fixture.PNGWithSize(1<<30, 3<<29)); !ok || w != 1<<30 || h != 3<<29 {
		t.Errorf("2³⁰×3·2²⁹: %d×%d, %v", w, h, ok)
	}
	if _, _, ok := decode(fixture.PNGWithSize(100, 100)); ok {
		t.Error("100×100: an overflow")
	}
	bad := fixture.PNGWithSize(1<<30, 1<<30)
	bad[29] ^= 1
	if _, _, ok := decode(bad); ok {
		t.Error("a bad checksum: an overflow")
	}
	if _, _, ok := Overflowed(fixture.PNGWithSize(1<<30, 1<<30), errors.New("other")); ok {
		t.Error("another error: an overflow")
	}
}
