package kernels

import "math"

// ReLUForward writes y = max(x, 0) (NaN where x is NaN).
func ReLUForward(x, y []float32) {
	if !relu32(x, y) {
		reluForwardRef(x, y)
	}
}

// reluForwardRef is ReLUForward's reference.
func reluForwardRef[T Float](x, y []T) {
	parallelFor(len(x)/elemChunk+1, func(lo, hi int) {
		a, b := lo*elemChunk, min(hi*elemChunk, len(x))
		for i, v := range x[a:b] {
			y[a+i] = max(v, 0)
		}
	})
}

// ReLUBackward writes dx = dy where ReLU's output y is not zero (positive,
// or NaN as in PyTorch), 0 elsewhere.
func ReLUBackward(y, dy, dx []float32) {
	if use.k == nil {
		reluBackwardRef(y, dy, dx)
		return
	}
	reluBackward32(y, dy, dx)
}

// reluBackwardRef is ReLUBackward's reference.
func reluBackwardRef[T Float](y, dy, dx []T) {
	parallelFor(len(y)/elemChunk+1, func(lo, hi int) {
		for i := lo * elemChunk; i < min(hi*elemChunk, len(y)); i++ {
			if y[i] != 0 {
				dx[i] = dy[i]
			} else {
				dx[i] = 0
			}
		}
	})
}

// elemChunk is the number of elements one goroutine takes at a time in the
// element-wise kernels.
const elemChunk = 1 << 14

// reluBackward32 is ReLUBackward at the assembly levels: reluGrad512, or
// a branch-free loop that masks dy with y's bits.
func reluBackward32(y, dy, dx []float32) {
	if reluGrad32(y, dy, dx) {
		return
	}
	parallelFor(len(y)/elemChunk+1, func(lo, hi int) {
		a, b := lo*elemChunk, min(hi*elemChunk, len(y))
		ys, gs, ds := y[a:b], dy[a:b], dx[a:b]
		gs, ds = gs[:len(ys)], ds[:len(ys)]
		for i, v := range ys {
			b := math.Float32bits(v) << 1     // y without its sign: 0 for ±0
			mask := uint32(int32(b|-b) >> 31) // all ones unless y is ±0
			ds[i] = math.Float32frombits(math.Float32bits(gs[i]) & mask)
		}
	})
}

// Add writes y = a + b.
func Add(a, b, y []float32) {
	if !add32(a, b, y) {
		addRef(a, b, y)
	}
}

// addRef is Add's reference.
func addRef[T Float](a, b, y []T) {
	parallelFor(len(a)/elemChunk+1, func(lo, hi int) {
		s, e := lo*elemChunk, min(hi*elemChunk, len(a))
		as, bs, ys := a[s:e], b[s:e], y[s:e]
		bs, ys = bs[:len(as)], ys[:len(as)]
		for i, v := range as {
			ys[i] = v + bs[i]
		}
	})
}

// SGDMomentum applies one step of SGD with momentum to w in place, as
// PyTorch does after its first step (no Nesterov): d = g + wd·w,
// buf = mu·buf + damp·d, w −= lr·buf. It runs in parallel chunks, with
// AVX-512 where present.
func SGDMomentum(w, g, buf []float32, lr, wd, mu, damp float32) {
	g, buf = g[:len(w)], buf[:len(w)]
	coef := [4]float32{lr, wd, mu, damp}
	if sgd32(w, g, buf, &coef) {
		return
	}
	parallelFor(len(w)/elemChunk+1, func(lo, hi int) {
		for i := lo * elemChunk; i < min(hi*elemChunk, len(w)); i++ {
			d := g[i] + wd*w[i]
			buf[i] = mu*buf[i] + damp*d
			w[i] -= lr * buf[i]
		}
	})
}

// Scale writes y = a·x.
func Scale[T Float](a T, x, y []T) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] = a * v
	}
}

// Mul writes y = a⊙b (element-wise).
func Mul[T Float](a, b, y []T) {
	b = b[:len(a)]
	y = y[:len(a)]
	for i, v := range a {
		y[i] = v * b[i]
	}
}
