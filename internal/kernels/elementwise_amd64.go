//go:build amd64 && !purego

package kernels

import "unsafe"

// elementwise32 runs one of the active level's vector kernels over n
// elements in parallel chunks (the last n mod the vector width are left to
// tail); it returns false at the generic level.
func elementwise32(n int, kernel func(off, len int), tail func(off int)) bool {
	if use.vk == nil {
		return false
	}
	body := n &^ (use.vk.vec - 1)
	parallelFor(body/elemChunk+1, func(lo, hi int) {
		a, b := lo*elemChunk, min(hi*elemChunk, body)
		if b > a {
			kernel(a, b-a)
		}
	})
	tail(body)
	return true
}

func relu32(x, y []float32) bool {
	return elementwise32(len(x), func(o, n int) { use.vk.relu(unsafe.Pointer(&x[o]), unsafe.Pointer(&y[o]), n) },
		func(o int) {
			for i := o; i < len(x); i++ {
				y[i] = max(x[i], 0)
			}
		})
}

func reluGrad32(y, dy, dx []float32) bool {
	return elementwise32(len(y), func(o, n int) {
		use.vk.reluGrad(unsafe.Pointer(&y[o]), unsafe.Pointer(&dy[o]), unsafe.Pointer(&dx[o]), n)
	}, func(o int) {
		for i := o; i < len(y); i++ {
			if y[i] != 0 {
				dx[i] = dy[i]
			} else {
				dx[i] = 0
			}
		}
	})
}

func add32(a, b, y []float32) bool {
	return elementwise32(len(a), func(o, n int) {
		use.vk.add(unsafe.Pointer(&a[o]), unsafe.Pointer(&b[o]), unsafe.Pointer(&y[o]), n)
	}, func(o int) {
		for i := o; i < len(a); i++ {
			y[i] = a[i] + b[i]
		}
	})
}

// sgd32 runs the level's SGD kernel over w, g and buf in parallel chunks
// (coef = lr, wd, mu, damp), the last elements short of a vector in Go;
// false at the generic level.
func sgd32(w, g, buf []float32, coef *[4]float32) bool {
	lr, wd, mu, damp := coef[0], coef[1], coef[2], coef[3]
	return elementwise32(len(w), func(o, n int) {
		use.vk.sgd(unsafe.Pointer(&w[o]), unsafe.Pointer(&g[o]), unsafe.Pointer(&buf[o]), n, unsafe.Pointer(coef))
	}, func(o int) {
		for i := o; i < len(w); i++ {
			d := g[i] + wd*w[i]
			buf[i] = mu*buf[i] + damp*d
			w[i] -= lr * buf[i]
		}
	})
}

// The element-wise kernels (elementwise_amd64.s), AVX-512, over n
// elements, n a multiple of 16.

// relu512 writes y[i] = max(x[i], 0).
//
//go:noescape
func relu512(x, y unsafe.Pointer, n int)

// reluGrad512 writes dx[i] = dy[i] where y[i] ≠ 0 (or is NaN), 0
// elsewhere.
//
//go:noescape
func reluGrad512(y, dy, dx unsafe.Pointer, n int)

// add512 writes y[i] = a[i] + b[i].
//
//go:noescape
func add512(a, b, y unsafe.Pointer, n int)

// sgd512 applies one SGD step with momentum, coef = [lr, wd, mu, damp]:
// d = grad[i] + wd·w[i]; buf[i] = mu·buf[i] + damp·d; w[i] −= lr·buf[i].
//
//go:noescape
func sgd512(w, grad, buf unsafe.Pointer, n int, coef unsafe.Pointer)

// The AVX2 versions (elementwise_avx2_amd64.s), over n elements, n a
// multiple of 8.

//go:noescape
func reluAVX2(x, y unsafe.Pointer, n int)

//go:noescape
func reluGradAVX2(y, dy, dx unsafe.Pointer, n int)

//go:noescape
func addAVX2(a, b, y unsafe.Pointer, n int)

//go:noescape
func sgdAVX2(w, grad, buf unsafe.Pointer, n int, coef unsafe.Pointer)
