package kernels

import "math"

// SoftmaxForward computes the softmax of x viewed as [outer, k, inner] along
// the middle axis.
func SoftmaxForward[T Float](outer, k, inner int, x, y []T) {
	softmaxLike(outer, k, inner, x, y, false)
}

// LogSoftmaxForward computes the log-softmax of x viewed as
// [outer, k, inner] along the middle axis.
func LogSoftmaxForward[T Float](outer, k, inner int, x, y []T) {
	softmaxLike(outer, k, inner, x, y, true)
}

func softmaxLike[T Float](outer, k, inner int, x, y []T, log bool) {
	for o := 0; o < outer; o++ {
		for in := 0; in < inner; in++ {
			base := o*k*inner + in
			mx := math.Inf(-1)
			for j := 0; j < k; j++ {
				mx = math.Max(mx, float64(x[base+j*inner]))
			}
			s := 0.0
			for j := 0; j < k; j++ {
				s += math.Exp(float64(x[base+j*inner]) - mx)
			}
			ls := math.Log(s)
			for j := 0; j < k; j++ {
				z := float64(x[base+j*inner]) - mx - ls
				if log {
					y[base+j*inner] = T(z)
				} else {
					y[base+j*inner] = T(math.Exp(z))
				}
			}
		}
	}
}

// SoftmaxBackward computes dx = y·(dy − Σ dy·y) from the softmax output y.
func SoftmaxBackward[T Float](outer, k, inner int, y, dy, dx []T) {
	for o := 0; o < outer; o++ {
		for in := 0; in < inner; in++ {
			base := o*k*inner + in
			s := 0.0
			for j := 0; j < k; j++ {
				s += float64(dy[base+j*inner]) * float64(y[base+j*inner])
			}
			for j := 0; j < k; j++ {
				i := base + j*inner
				dx[i] = T(float64(y[i]) * (float64(dy[i]) - s))
			}
		}
	}
}

// LogSoftmaxBackward computes dx = dy − exp(y)·Σ dy from the log-softmax
// output y.
func LogSoftmaxBackward[T Float](outer, k, inner int, y, dy, dx []T) {
	for o := 0; o < outer; o++ {
		for in := 0; in < inner; in++ {
			base := o*k*inner + in
			s := 0.0
			for j := 0; j < k; j++ {
				s += float64(dy[base+j*inner])
			}
			for j := 0; j < k; j++ {
				i := base + j*inner
				dx[i] = T(float64(dy[i]) - math.Exp(float64(y[i]))*s)
			}
		}
	}
}
