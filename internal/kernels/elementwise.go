package kernels

// ReLUForward writes y = max(x, 0).
func ReLUForward[T Float](x, y []T) {
	for i, v := range x {
		y[i] = max(v, 0)
	}
}

// ReLUBackward writes dx = dy where the output y is positive, 0 elsewhere.
func ReLUBackward[T Float](y, dy, dx []T) {
	for i, v := range y {
		if v > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = 0
		}
	}
}

// Add writes y = a + b.
func Add[T Float](a, b, y []T) {
	b = b[:len(a)]
	y = y[:len(a)]
	for i, v := range a {
		y[i] = v + b[i]
	}
}

// Accumulate adds x into y.
func Accumulate[T Float](x, y []T) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += v
	}
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
