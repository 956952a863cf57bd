package kernels

import "math"

// Fused is what a batch norm computes after its normalisation, in the same
// passes over memory: y = ReLU(bn(x) + Skip). The zero value fuses
// nothing.
//
// The forward pass reads Skip (nil: no addition) and ReLU. The backward
// pass reads ReLU and Y, the forward pass's output, whose zeros mask the
// gradient; it writes the gradient of Skip (the masked dy) into DSkip
// unless DSkip is nil.
type Fused[T Float] struct {
	Skip  []T
	ReLU  bool
	Y     []T
	DSkip []T
}

// mask returns ReLU's mask source for the fast kernels: Y when a ReLU is
// fused, nil (no mask) otherwise.
func (f Fused[T]) mask() []T {
	if f.ReLU {
		return f.Y
	}
	return nil
}

// grad returns the gradient reaching the normalisation at i: dy masked by
// the fused ReLU.
func (f Fused[T]) grad(dy []T, i int) T {
	if f.ReLU && f.Y[i] == 0 {
		return 0
	}
	return dy[i]
}

// BatchNormTrainForward normalises x viewed as [M, C] with the batch's
// statistics per channel, writes y = gamma·x̂ + beta, stores the batch mean
// and 1/sqrt(var+eps) in mean and invStd for the backward pass, and updates
// the running statistics as PyTorch does: the running variance uses the
// unbiased batch variance (·M/(M−1)), with runMean ← (1−momentum)·runMean +
// momentum·mean. runMean and runVar may be nil. Sums are taken in float64.
// f's skip addition and ReLU are applied to y in the same pass.
func BatchNormTrainForward[T Float](m, c int, x, gamma, beta, y, mean, invStd, runMean, runVar []T, momentum, eps float64, f Fused[T]) {
	xf, fast := any(x).([]float32)
	fast = fast && chanOK(c)
	mu := make([]float64, c)
	var sq []float64 // Σ (x − mean)²
	switch {
	case fast && shiftedStats(c):
		// One pass about a shift K, the first row: Σ (x−K)² and Σ (x−K).
		// Sums of deviations from a sample of the batch cancel little,
		// whatever the mean (an unshifted Σx² − M·mean² would lose the
		// variance when the mean dwarfs it).
		k := xf[:c]
		sk := chanSums32(xf, nil, nil, nil, m, c, k, true)
		sq = sk[:c]
		for j := range mu {
			d := sk[c+j] / float64(m)
			mu[j] = float64(k[j]) + d
			sq[j] = max(sq[j]-float64(m)*d*d, 0)
		}
	case fast:
		sum := chanSums32(xf, nil, nil, nil, m, c, nil, false)
		mu32 := make([]float32, c)
		for j := range mu {
			mu[j] = sum[j] / float64(m)
			mu32[j] = float32(mu[j])
		}
		sq = chanSums32(xf, nil, nil, nil, m, c, mu32, false)
	default:
		sum := parallelSums(m, c, func(lo, hi int, acc []float64) {
			for i := lo; i < hi; i++ {
				for j, v := range x[i*c:][:c] {
					acc[j] += float64(v)
				}
			}
		})
		for j := range mu {
			mu[j] = sum[j] / float64(m)
		}
		sq = parallelSums(m, c, func(lo, hi int, acc []float64) {
			for i := lo; i < hi; i++ {
				for j, v := range x[i*c:][:c] {
					d := float64(v) - mu[j]
					acc[j] += d * d
				}
			}
		})
	}
	scale := make([]T, c)
	shift := make([]T, c)
	for j := 0; j < c; j++ {
		v := sq[j] / float64(m)
		is := 1 / math.Sqrt(v+eps)
		mean[j] = T(mu[j])
		invStd[j] = T(is)
		g := 1.0
		if gamma != nil {
			g = float64(gamma[j])
		}
		b := 0.0
		if beta != nil {
			b = float64(beta[j])
		}
		scale[j] = T(g * is)
		shift[j] = T(b - mu[j]*g*is)
		if runMean != nil {
			runMean[j] = T((1-momentum)*float64(runMean[j]) + momentum*mu[j])
		}
		if runVar != nil {
			unbiased := v
			if m > 1 {
				unbiased = sq[j] / float64(m-1)
			}
			runVar[j] = T((1-momentum)*float64(runVar[j]) + momentum*unbiased)
		}
	}
	affineRows(m, c, x, scale, shift, y, f)
}

// BatchNormTrainBackward computes dx, dgamma and dbeta for the training-mode
// forward pass (batch statistics depend on x), given dy, the gradient of
// the forward pass's output (after f's skip addition and ReLU), and writes
// the skip's gradient into f.DSkip. dgamma and dbeta may be nil.
func BatchNormTrainBackward[T Float](m, c int, x, gamma, mean, invStd, dy, dx, dgamma, dbeta []T, f Fused[T]) {
	// Σg and Σg·x̂ per channel, g the gradient after the ReLU's mask, in one
	// pass: acc[j] and acc[c+j].
	xf, fast := any(x).([]float32)
	fast = fast && chanOK(c)
	var sums []float64
	if fast {
		sums = chanSums32(xf, any(dy).([]float32), any(f.mask()).([]float32), any(f.DSkip).([]float32), m, c, any(mean).([]float32), false)
		for j := 0; j < c; j++ { // Σg·(x − mean) → Σg·x̂
			sums[c+j] *= float64(invStd[j])
		}
	} else {
		sums = parallelSums(m, 2*c, func(lo, hi int, acc []float64) {
			for i := lo; i < hi; i++ {
				xr := x[i*c:][:c]
				for j := range xr {
					gt := f.grad(dy, i*c+j)
					if f.DSkip != nil {
						f.DSkip[i*c+j] = gt
					}
					g := float64(gt)
					acc[j] += g
					acc[c+j] += g * (float64(xr[j]) - float64(mean[j])) * float64(invStd[j])
				}
			}
		})
	}
	sdy, sdyx := sums[:c], sums[c:]
	// dx = gamma·invStd/M · (M·dy − Σdy − x̂·Σ(dy·x̂))
	a := make([]T, c)
	b := make([]T, c)
	k := make([]T, c)
	for j := 0; j < c; j++ {
		g := 1.0
		if gamma != nil {
			g = float64(gamma[j])
		}
		is := float64(invStd[j])
		a[j] = T(g * is)
		// dx = a·dy − a/M·Σdy − a/M·x̂·Σ(dy·x̂), x̂ = (x − mean)·is
		k[j] = T(g * is * is * sdyx[j] / float64(m))
		b[j] = T(-g*is*sdy[j]/float64(m) + g*is*is*sdyx[j]*float64(mean[j])/float64(m))
		if dgamma != nil {
			dgamma[j] = T(sdyx[j])
		}
		if dbeta != nil {
			dbeta[j] = T(sdy[j])
		}
	}
	if fast {
		g, y := dy, f.mask()
		if f.DSkip != nil { // the masked gradient is already there
			g, y = f.DSkip, nil
		}
		chanAffine2_32(xf, any(g).([]float32), any(y).([]float32), m, c, any(a).([]float32), any(k).([]float32), any(b).([]float32), any(dx).([]float32))
		return
	}
	parallelFor(m, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr, dr := x[i*c:][:c], dx[i*c:][:c]
			for j := range dr {
				dr[j] = a[j]*f.grad(dy, i*c+j) - k[j]*xr[j] + b[j]
			}
		}
	})
}

// BatchNormEvalForward normalises x [M, C] with the running statistics,
// then applies f's skip addition and ReLU.
func BatchNormEvalForward[T Float](m, c int, x, gamma, beta, runMean, runVar, y []T, eps float64, f Fused[T]) {
	scale := make([]T, c)
	shift := make([]T, c)
	for j := 0; j < c; j++ {
		is := 1 / math.Sqrt(float64(runVar[j])+eps)
		g, b := 1.0, 0.0
		if gamma != nil {
			g = float64(gamma[j])
		}
		if beta != nil {
			b = float64(beta[j])
		}
		scale[j] = T(g * is)
		shift[j] = T(b - float64(runMean[j])*g*is)
	}
	affineRows(m, c, x, scale, shift, y, f)
}

// BatchNormEvalBackward computes dx, dgamma and dbeta when the running
// statistics were used (they are constants), from dy, the gradient of the
// output after f's skip addition and ReLU; the skip's gradient goes into
// f.DSkip. dgamma and dbeta may be nil.
func BatchNormEvalBackward[T Float](m, c int, x, gamma, runMean, runVar, dy, dx, dgamma, dbeta []T, eps float64, f Fused[T]) {
	is := make([]float64, c)
	for j := range is {
		is[j] = 1 / math.Sqrt(float64(runVar[j])+eps)
	}
	sdy := make([]float64, c)
	sdyx := make([]float64, c)
	scale := make([]T, c)
	for j := range scale {
		g := 1.0
		if gamma != nil {
			g = float64(gamma[j])
		}
		scale[j] = T(g * is[j])
	}
	for i := 0; i < m; i++ {
		xr, dr := x[i*c:][:c], dx[i*c:][:c]
		for j := range dr {
			gt := f.grad(dy, i*c+j)
			if f.DSkip != nil {
				f.DSkip[i*c+j] = gt
			}
			g := float64(gt)
			sdy[j] += g
			sdyx[j] += g * (float64(xr[j]) - float64(runMean[j])) * is[j]
			dr[j] = gt * scale[j]
		}
	}
	for j := 0; j < c; j++ {
		if dgamma != nil {
			dgamma[j] = T(sdyx[j])
		}
		if dbeta != nil {
			dbeta[j] = T(sdy[j])
		}
	}
}

// affineRows writes y = x·scale + shift per channel, then f's skip
// addition and ReLU.
func affineRows[T Float](m, c int, x, scale, shift, y []T, f Fused[T]) {
	if xf, ok := any(x).([]float32); ok && chanOK(c) {
		chanAffine32(xf, any(f.Skip).([]float32), m, c, any(scale).([]float32), any(shift).([]float32), any(y).([]float32), f.ReLU)
		return
	}
	parallelFor(m, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr, yr := x[i*c:][:c], y[i*c:][:c]
			for j := range yr {
				v := xr[j]*scale[j] + shift[j]
				if f.Skip != nil {
					v += f.Skip[i*c+j]
				}
				if f.ReLU {
					v = max(v, 0)
				}
				yr[j] = v
			}
		}
	})
}
