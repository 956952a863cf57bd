package tensor

import (
	"math"
	"slices"
	"testing"
)

func TestArgMaxAndTopK(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		v      []float32
		k      int
		argmax int
		top    []int
	}{
		{nil, 3, -1, []int{}},
		{[]float32{0.1, 0.7, 0.2}, 2, 1, []int{1, 2}},
		{[]float32{0.3, 0.3, 0.1, 0.3}, 4, 0, []int{0, 1, 3, 2}}, // ties: first, then index order
		{[]float32{-2, -1, -3}, 5, 1, []int{1, 0, 2}},            // k capped
		{[]float32{1, 2}, 0, 1, []int{}},
		{[]float32{1, 2}, -1, 1, []int{}},
		{[]float32{-inf, inf, 0}, 1, 1, []int{1}},
		// NaN is larger than every number, the first NaN the largest:
		// what Debian's PyTorch 1.13 gives (torch.argmax(t),
		// torch.topk(t, k).indices) for these rows.
		{[]float32{1, nan, 3, -inf}, 4, 1, []int{1, 2, 0, 3}},
		{[]float32{nan, 5, 1}, 3, 0, []int{0, 1, 2}},
		{[]float32{1, nan, 3, nan}, 2, 1, []int{1, 3}},
		{[]float32{3, nan, 3}, 3, 1, []int{1, 0, 2}},
		{[]float32{-inf, nan}, 1, 1, []int{1}},
		{[]float32{nan, nan}, 2, 0, []int{0, 1}},
		{[]float32{1, 2, nan}, 1, 2, []int{2}},
	} {
		if got := ArgMax(c.v); got != c.argmax {
			t.Errorf("ArgMax(%v) = %d, want %d", c.v, got, c.argmax)
		}
		if got := TopK(c.v, c.k); !slices.Equal(got, c.top) {
			t.Errorf("TopK(%v, %d) = %v, want %v", c.v, c.k, got, c.top)
		}
		if top := TopK(c.v, 1); len(c.v) > 0 && (len(top) != 1 || top[0] != ArgMax(c.v)) {
			t.Errorf("TopK(%v, 1) = %v, ArgMax %d: they disagree", c.v, top, ArgMax(c.v))
		}
	}
}
