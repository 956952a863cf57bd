package kernels

// ConcatForward copies the inputs, each viewed as [outer, dims[i], inner],
// side by side along the middle axis into y [outer, Σdims, inner].
func ConcatForward[T Float](outer, inner int, dims []int, xs [][]T, y []T) {
	total := 0
	for _, d := range dims {
		total += d
	}
	for o := 0; o < outer; o++ {
		off := 0
		for i, x := range xs {
			n := dims[i] * inner
			copy(y[(o*total+off)*inner:][:n], x[o*n:][:n])
			off += dims[i]
		}
	}
}

// ConcatBackward splits dy back into the inputs' gradients.
func ConcatBackward[T Float](outer, inner int, dims []int, dy []T, dxs [][]T) {
	total := 0
	for _, d := range dims {
		total += d
	}
	for o := 0; o < outer; o++ {
		off := 0
		for i, dx := range dxs {
			n := dims[i] * inner
			if dx != nil {
				copy(dx[o*n:][:n], dy[(o*total+off)*inner:][:n])
			}
			off += dims[i]
		}
	}
}

// CropForward copies the window [top, top+oh)×[left, left+ow) of each
// image of x [N,H,W,C] into y [N,oh,ow,C].
func CropForward[T Float](n, h, w, c, top, left, oh, ow int, x, y []T) {
	for i := 0; i < n; i++ {
		for r := 0; r < oh; r++ {
			copy(y[((i*oh+r)*ow)*c:][:ow*c], x[((i*h+r+top)*w+left)*c:][:ow*c])
		}
	}
}

// CropBackward writes dy into the window of a zeroed dx.
func CropBackward[T Float](n, h, w, c, top, left, oh, ow int, dy, dx []T) {
	clear(dx[:n*h*w*c])
	for i := 0; i < n; i++ {
		for r := 0; r < oh; r++ {
			copy(dx[((i*h+r+top)*w+left)*c:][:ow*c], dy[((i*oh+r)*ow)*c:][:ow*c])
		}
	}
}

// PadMode selects how Pad fills the border.
type PadMode int

// The padding modes (ONNX's constant, reflect and edge; PyTorch's constant,
// reflect and replicate).
const (
	PadConstant PadMode = iota
	PadReflect
	PadEdge
)

// PadIndex returns, for each output position along one axis of size n padded
// by before and after, the input index it reads (−1 for the constant
// border).
func PadIndex(n, before, after int, mode PadMode) []int {
	idx := make([]int, n+before+after)
	for o := range idx {
		i := o - before
		switch {
		case i >= 0 && i < n:
		case mode == PadConstant:
			i = -1
		case mode == PadEdge:
			i = min(max(i, 0), n-1)
		default: // reflect, without repeating the edge
			period := 2 * (n - 1)
			if period == 0 {
				i = 0
				break
			}
			i = ((i % period) + period) % period
			if i >= n {
				i = period - i
			}
		}
		idx[o] = i
	}
	return idx
}

// PadForward pads x of shape in (any rank) into y; maps[a] is PadIndex for
// axis a and value fills the constant border.
func PadForward[T Float](in []int, maps [][]int, value T, x, y []T) {
	padWalk(in, maps, func(yi, xi int) {
		if xi < 0 {
			y[yi] = value
		} else {
			y[yi] = x[xi]
		}
	})
}

// PadBackward accumulates dy into a zeroed dx through the same index maps
// (a reflected or repeated input receives every copy's gradient).
func PadBackward[T Float](in []int, maps [][]int, dy, dx []T) {
	clear(dx[:numel(in)])
	padWalk(in, maps, func(yi, xi int) {
		if xi >= 0 {
			dx[xi] += dy[yi]
		}
	})
}

func padWalk(in []int, maps [][]int, f func(yi, xi int)) {
	rank := len(in)
	inStride := make([]int, rank)
	s := 1
	for a := rank - 1; a >= 0; a-- {
		inStride[a] = s
		s *= in[a]
	}
	yi := 0
	var rec func(a, xoff int, valid bool)
	rec = func(a, xoff int, valid bool) {
		for _, src := range maps[a] {
			ok := valid && src >= 0
			off := xoff
			if ok {
				off += src * inStride[a]
			}
			if a == rank-1 {
				if ok {
					f(yi, off)
				} else {
					f(yi, -1)
				}
				yi++
			} else {
				rec(a+1, off, ok)
			}
		}
	}
	if rank == 0 {
		f(0, 0)
		return
	}
	rec(0, 0, true)
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// SubsamplePadForward implements the option-A shortcut of He et al. 2015:
// y[n,i,j,before+c] = x[n,i·s,j·s,c], with zero channels before and after.
// y has shape [N, ceil(H/s), ceil(W/s), before+C+after]. Each element of y
// is written once, output rows in parallel.
func SubsamplePadForward[T Float](n, h, w, c, s, before, after int, x, y []T) {
	oh, ow, oc := (h+s-1)/s, (w+s-1)/s, before+c+after
	y = y[:n*oh*ow*oc]
	parallelRows(n*oh, ow*oc, func(r0, r1 int) {
		for row := r0; row < r1; row++ {
			i, r := row/oh, row%oh
			src := x[(i*h+r*s)*w*c:]
			dst := y[row*ow*oc:][:ow*oc]
			for q := range ow {
				px := dst[q*oc:][:oc]
				clear(px[:before])
				copy(px[before:before+c], src[q*s*c:][:c])
				clear(px[before+c:])
			}
		}
	})
}

// SubsamplePadBackward routes dy back to the subsampled positions of dx
// and zeroes the others: each element of dx is written once, input rows
// in parallel.
func SubsamplePadBackward[T Float](n, h, w, c, s, before, after int, dy, dx []T) {
	oh, ow, oc := (h+s-1)/s, (w+s-1)/s, before+c+after
	dx = dx[:n*h*w*c]
	parallelRows(n*h, w*c, func(r0, r1 int) {
		for row := r0; row < r1; row++ {
			i, r := row/h, row%h
			dst := dx[row*w*c:][:w*c]
			if r%s != 0 {
				clear(dst)
				continue
			}
			src := dy[(i*oh+r/s)*ow*oc:]
			for q := range w {
				if q%s != 0 {
					clear(dst[q*c:][:c])
					continue
				}
				copy(dst[q*c:][:c], src[(q/s)*oc+before:][:c])
			}
		}
	})
}

// parallelRows runs fn over [0, rows) in parallel chunks of whole rows of
// rowElems elements each, about elemChunk elements a chunk (one chunk,
// inline, for a small tensor).
func parallelRows(rows, rowElems int, fn func(r0, r1 int)) {
	per := max(1, elemChunk/max(1, rowElems))
	parallelFor((rows+per-1)/per, func(lo, hi int) { fn(lo*per, min(hi*per, rows)) })
}
