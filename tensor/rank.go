package tensor

import (
	"cmp"
	"slices"
)

// ArgMax returns the index of the first largest element of v (the
// predicted class of a row of scores), or -1 for an empty v. A NaN counts
// as larger than every number, as in torch.argmax and numpy.argmax: the
// first NaN, if any, is the answer (a diverged network's scores are not
// ranked as if the NaN were not there).
func ArgMax(v []float32) int {
	if len(v) == 0 {
		return -1
	}
	best := 0
	for i, x := range v {
		if x != x { // NaN
			return i
		}
		if x > v[best] {
			best = i
		}
	}
	return best
}

// TopK returns the indices of the k largest elements of v, largest first;
// equal elements keep their order, NaNs come before every number (as in
// torch.topk, and as ArgMax takes them: TopK(v, 1) is [ArgMax(v)]), and k
// is capped at len(v) (k ≤ 0 gives none).
func TopK(v []float32, k int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return descending(v[a], v[b]) })
	return idx[:min(max(k, 0), len(idx))]
}

// descending orders x before y when x is larger, a NaN before every
// number.
func descending(x, y float32) int {
	switch xn, yn := x != x, y != y; {
	case xn && yn:
		return 0
	case xn:
		return -1
	case yn:
		return 1
	}
	return cmp.Compare(y, x)
}
