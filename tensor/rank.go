package tensor

import (
	"cmp"
	"slices"
)

// ArgMax returns the index of the first largest element of v (the
// predicted class of a row of scores), or -1 for an empty v. It compares
// with >, so a NaN never displaces an earlier element and one at index 0
// is never displaced.
func ArgMax(v []float32) int {
	if len(v) == 0 {
		return -1
	}
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// TopK returns the indices of the k largest elements of v, largest first;
// equal elements keep their order, NaNs come after every number, and k is
// capped at len(v) (k ≤ 0 gives none).
func TopK(v []float32, k int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(v[b], v[a]) })
	return idx[:min(max(k, 0), len(idx))]
}
