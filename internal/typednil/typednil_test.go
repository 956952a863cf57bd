package typednil

import (
	"image"
	"testing"
)

func TestIs(t *testing.T) {
	var img image.Image
	for _, c := range []struct {
		v    any
		want bool
	}{
		{nil, true},
		{img, true},
		{image.Image((*image.Gray)(nil)), true},
		{[]int(nil), true},
		{map[int]int(nil), true},
		{(func())(nil), true},
		{image.NewGray(image.Rect(0, 0, 1, 1)), false},
		{0, false},
		{"", false},
	} {
		if got := Is(c.v); got != c.want {
			t.Errorf("Is(%#v) = %v, want %v", c.v, got, c.want)
		}
	}
}
