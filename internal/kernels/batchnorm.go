package kernels

import (
	"math"
	"unsafe"
)

// Fused is what a batch norm computes after its normalisation, in the same
// passes over memory: y = ReLU(bn(x) + Skip). The zero value fuses
// nothing.
//
// The forward pass reads Skip (nil: no addition) and ReLU. The backward
// pass reads ReLU and Y, the forward pass's output, whose zeros mask the
// gradient; it writes the gradient of Skip (the masked dy) into DSkip
// unless DSkip is nil.
//
// XStats, when Done, are x's statistics, computed as a convolution stored
// x (ConvEpilogue.Stats): the training forward pass then does not read x
// to compute them.
//
// Mask, for the training backward pass with ReLU and no Skip, is the map
// from x to the output (BatchNormTrainStats, ReLUAffine): the mask is
// recomputed from x, Mask.Of(x) ≠ 0, and Y is not read (the output may
// never have been stored, or is not read again).
//
// YB, where BatchNormForwardToBF16OK, receives the training forward
// pass's output as bfloat16 too (BF16FromFloat32 of each element, as a
// bfloat16 convolution's staging converts it), as it is stored: for a
// convolution that reads the output as bfloat16 (ConvForwardFromBF16,
// ConvBackwardWeightInputsBF16).
//
// Sums are the training backward pass's first pass, Σg and Σg·(x − mean)
// per channel, computed already (DataGradSums): the level's kernels do not
// make it (the reference, which makes it all the same, gets the same
// sums up to rounding), and turn Sums into their own next values in place
// (a caller that reads them again passes a copy). Without Mask, dy is g already (the ReLU's mask
// applied: DataGradSums.Y), which DSkip, where it is another buffer,
// receives a copy of.
type Fused[T Float] struct {
	Skip   []T
	ReLU   bool
	Y      []T
	DSkip  []T
	XStats *ConvStats
	Mask   *ReLUAffine
	Sums   []float64
	YB     []uint16
}

// BatchNormForwardToBF16OK reports whether BatchNormTrainForward stores
// its output of c channels as bfloat16 too (Fused.YB): on AVX-512's
// per-channel kernels with AVX512-BF16's conversion.
func BatchNormForwardToBF16OK(c int) bool { return toBF16DXOK(c) }

// DataGradSums asks a bfloat16 convolution's data gradient
// (ConvBackwardDataSumsFromBF16) for the first pass of the backward step
// of the training batch norm and ReLU whose output the convolution read:
// per channel Σg and Σg·(x − Mean), g the gradient where the ReLU passes
// it, added up from each block of the gradient as it is stored, in cache,
// instead of in a pass over the whole gradient, X and the mask's source.
// The mask comes from X through Mask (Fused.Mask), or from the stored
// output Y (a ReLU after a skip addition), and then the gradient is
// stored masked, g in place of the ReLU's output gradient. Exactly one of
// Mask and Y is set. Where Done, the kernels filled Sums and the batch
// norm takes them (Fused.Sums); otherwise it makes the pass itself.
type DataGradSums struct {
	X    []float32   // the batch norm's input, laid out as the gradient
	Mean []float32   // its batch mean
	Mask *ReLUAffine // its ReLU's map from X, or nil
	Y    []float32   // or its ReLU's stored output, laid out as X
	Sums []float64   // Σg in [0, C), Σg·(x − mean) in [C, 2C)
	Done bool
}

// wideRow is the channel count from which the per-channel sums walk rows
// left to right instead of channel vectors down the rows (a row of 512
// bytes; measured: better from 128 channels, worse at 32).
const wideRow = 128

// ReLUAffine is a batch norm and ReLU whose output is computed where it is
// read instead of stored: z = max(x·Scale + Shift, 0) per channel (x's
// last dimension), with one rounding of the multiply-add, as the stored
// output is computed. A convolution reads its input through one
// (ConvForwardReLUAffineBF16), and the batch norm's backward pass
// recomputes its mask from one (Fused.Mask).
type ReLUAffine struct{ Scale, Shift []float32 }

// Of returns z for x in channel j, bit for bit as the kernels compute it
// (VFMADD213PS, then VMAXPS with zero first: NaN and −0 pass).
func (a *ReLUAffine) Of(x float32, j int) float32 {
	if v := fma32(x, a.Scale[j], a.Shift[j]); !(v < 0) {
		return v
	}
	return 0
}

// fma32 returns x·y + z rounded once to float32. The product is exact in
// float64; the sum, rounded to float64, is rounded to odd (its last bit
// set where the sum was inexact and the bit is clear, stepping towards
// the lost part) so that rounding it to float32 is a single rounding of
// the exact sum (round to odd on p ≥ q + 2 bits makes double rounding
// exact).
func fma32(x, y, z float32) float32 {
	p := float64(x) * float64(y)
	s := p + float64(z)
	if math.IsInf(s, 0) || s != s {
		return float32(s)
	}
	bv := s - p
	err := (p - (s - bv)) + (float64(z) - bv) // TwoSum: s + err = p + z exactly
	if b := math.Float64bits(s); err != 0 && b&1 == 0 {
		if (err > 0) == (s > 0) {
			s = math.Float64frombits(b + 1)
		} else {
			s = math.Float64frombits(b - 1)
		}
	}
	return float32(s)
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

// gradX is grad for the reference kernels, which know x: with Mask, the
// mask recomputed from x (c channels).
func (f Fused[T]) gradX(x, dy []T, i, c int) T {
	if f.Mask != nil && f.ReLU {
		if f.Mask.Of(float32(x[i]), i%c) == 0 {
			return 0
		}
		return dy[i]
	}
	return f.grad(dy, i)
}

// BatchNormTrainForward normalises x viewed as [M, C] with the batch's
// statistics per channel, writes y = gamma·x̂ + beta, stores the batch mean
// and 1/sqrt(var+eps) in mean and invStd for the backward pass, and updates
// the running statistics as PyTorch does: the running variance uses the
// unbiased batch variance (·M/(M−1)), with runMean ← (1−momentum)·runMean +
// momentum·mean. runMean and runVar may be nil. The statistics are those
// f hands over (XStats, when done for M rows), else summed here: in
// float64, from the vector kernels' float32 sums over at most 256 rows
// about a shift where c is a whole number of vectors. f's skip addition and
// ReLU are applied to y in the same pass.
//
// It takes the active level's per-channel kernels where they apply (chanOK), the
// reference (batchNormTrainForwardRef) otherwise.
func BatchNormTrainForward(m, c int, x, gamma, beta, y, mean, invStd, runMean, runVar []float32, momentum, eps float64, f Fused[float32]) {
	if f.YB != nil && !BatchNormForwardToBF16OK(c) {
		panic("kernels: Fused.YB where BatchNormForwardToBF16OK is false")
	}
	if !chanOK(c) {
		batchNormTrainForwardRef(m, c, x, gamma, beta, y, mean, invStd, runMean, runVar, momentum, eps, f)
		return
	}
	mu, sq := chanMoments(m, c, x, f)
	scale, shift := trainStats(m, mu, sq, gamma, beta, mean, invStd, runMean, runVar, momentum, eps)
	chanAffineTo(x, f.Skip, m, c, scale, shift, y, f.YB, f.ReLU, 4*m*c >= bnStreamMinBytes)
}

// chanMoments returns the mean and M2 (Σ (x − mean)²) of x's c channels
// over m rows: f's XStats where they are done, else from one pass on the
// level's per-channel kernels (chanOK(c)).
func chanMoments(m, c int, x []float32, f Fused[float32]) (mu, sq []float64) {
	mu, sq = xStats(f, m, c)
	if mu != nil {
		return mu, sq
	}
	// One pass about a shift K, the first row: Σ (x−K)² and Σ (x−K).
	// Sums of deviations from a sample of the batch cancel little,
	// whatever the mean (an unshifted Σx² − M·mean² would lose the
	// variance when the mean dwarfs it). A non-finite K would turn
	// every deviation into NaN (Inf − Inf), where the reference's mean
	// is ±Inf: such channels are shifted by 0.
	k := x[:c]
	if !allFinite(k) {
		k = finiteOrZero(k)
	}
	sk := chanSums32(x, nil, nil, nil, m, c, k)
	sq, mu = sk[:c], sk[c:] // Σ (x − mean)², and the mean in place of Σ (x − K)
	for j := range mu {
		d := mu[j] / float64(m)
		mu[j] = float64(k[j]) + d
		sq[j] = max(sq[j]-float64(m)*d*d, 0)
	}
	return mu, sq
}

// BatchNormTrainStats is BatchNormTrainForward followed by a ReLU, without
// the output: it stores mean and invStd, updates the running statistics
// and returns the map from x to the output, which BatchNormTrainForward
// with Fused{ReLU: true} would have stored (ReLUAffine). xs, when done,
// are x's statistics (Fused.XStats). It needs the level's per-channel
// kernels (chanOK(c)) and reports false without them.
func BatchNormTrainStats(m, c int, x, gamma, beta, mean, invStd, runMean, runVar []float32, momentum, eps float64, xs *ConvStats) (*ReLUAffine, bool) {
	if !chanOK(c) {
		return nil, false
	}
	mu, sq := chanMoments(m, c, x, Fused[float32]{XStats: xs})
	scale, shift := trainStats(m, mu, sq, gamma, beta, mean, invStd, runMean, runVar, momentum, eps)
	return &ReLUAffine{Scale: scale, Shift: shift}, true
}

// MaskFromXOK reports whether a training batch norm of c channels with a
// ReLU runs its backward pass with the mask recomputed from x (Fused.Mask)
// on the level's kernels: BatchNormTrainStats gives its map, and
// BatchNormTrainBackward has the kernels that read it (AVX-512's).
func MaskFromXOK(c int) bool { return chanOK(c) && maskKernelsOK() }

// ApplyReLUAffine writes a's output for x (m rows of c channels) into z:
// on the per-channel kernels (chanOK(c), where BatchNormTrainStats
// returns maps), what BatchNormTrainForward would have stored; elsewhere
// Of's values.
func ApplyReLUAffine(m, c int, x []float32, a *ReLUAffine, z []float32) {
	if chanOK(c) {
		chanAffine32(x, nil, m, c, a.Scale, a.Shift, z, true, 4*m*c >= bnStreamMinBytes)
		return
	}
	parallelFor(m, func(lo, hi int) {
		for i := lo * c; i < hi*c; i++ {
			z[i] = a.Of(x[i], i%c)
		}
	})
}

// bnStreamMinBytes is the output size from which a training batch norm
// stores its output with streaming stores, past the caches (a cached store
// first reads each line that no cache holds). Its output is read next by
// the next layer and again in the backward pass. On the Intel Xeon
// (forward pass, medians of 10 steps, alternated rounds): CIFAR's
// ResNet-20 at batch 128 (outputs of 2 to 8 MB), bfloat16 39.9–41.0 →
// 38.1–39.7 ms and float32 50.3–51.0 → 48.5–49.3 (three rounds), the
// backward pass level; ResNet-50 at batch 8 (0.8 to 26 MB, every size
// streamed), float32 330–337 → 322–330 ms, bfloat16 level (two rounds).
// The threshold keeps small outputs, which the next layer finds in cache,
// cached. (The backward pass's dx streamed made CIFAR's backward pass
// 5–10% longer: it stays cached.)
const bnStreamMinBytes = 1 << 20

// xStats returns the mean and M2 of x's c channels (m rows) that f hands
// over (XStats, when Done for m rows), or nils.
func xStats[T Float](f Fused[T], m, c int) (mean, m2 []float64) {
	if st := f.XStats; st != nil && st.Done && st.N == m && len(st.Mean) == c && len(st.M2) == c {
		return st.Mean, st.M2
	}
	return nil, nil
}

// finiteOrZero returns a copy of v with its NaN and ±Inf replaced by 0.
func finiteOrZero(v []float32) []float32 {
	o := make([]float32, len(v))
	for i, x := range v {
		if !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) {
			o[i] = x
		}
	}
	return o
}

// batchNormTrainForwardRef is BatchNormTrainForward's reference, for any
// Float.
func batchNormTrainForwardRef[T Float](m, c int, x, gamma, beta, y, mean, invStd, runMean, runVar []T, momentum, eps float64, f Fused[T]) {
	mu, sq := xStats(f, m, c)
	if mu == nil {
		sum := parallelSums(m, c, func(lo, hi int, acc []float64) {
			for i := lo; i < hi; i++ {
				for j, v := range x[i*c:][:c] {
					acc[j] += float64(v)
				}
			}
		})
		mu = make([]float64, c)
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
	scale, shift := trainStats(m, mu, sq, gamma, beta, mean, invStd, runMean, runVar, momentum, eps)
	affineRowsRef(m, c, x, scale, shift, y, f)
}

// trainStats finishes a training-mode forward pass from the batch's mean
// mu and squared deviations sq (Σ (x − mean)², M rows) per channel: it
// stores the mean and 1/sqrt(var+eps), updates the running statistics
// (either may be nil) and returns the affine map y = x·scale + shift that
// normalises and applies gamma and beta (nil: 1 and 0).
func trainStats[T Float](m int, mu, sq []float64, gamma, beta, mean, invStd, runMean, runVar []T, momentum, eps float64) (scale, shift []T) {
	c := len(mu)
	scale = make([]T, c)
	shift = make([]T, c)
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
	return scale, shift
}

// BatchNormTrainBackward computes dx, dgamma and dbeta for the training-mode
// forward pass (batch statistics depend on x), given dy, the gradient of
// the forward pass's output (after f's skip addition and ReLU), and writes
// the skip's gradient into f.DSkip. dgamma and dbeta may be nil.
//
// It takes the active level's per-channel kernels where they apply (chanOK), the
// reference (batchNormTrainBackwardRef) otherwise.
func BatchNormTrainBackward(m, c int, x, gamma, mean, invStd, dy, dx, dgamma, dbeta []float32, f Fused[float32]) {
	f.checkMask()
	if !chanOK(c) || f.Mask != nil && !maskKernelsOK() {
		batchNormTrainBackwardRef(m, c, x, gamma, mean, invStd, dy, dx, dgamma, dbeta, f)
		return
	}
	a, k, b, g, y := trainBackwardPass(m, c, x, gamma, mean, invStd, dy, dgamma, dbeta, f)
	if f.Mask != nil {
		chanAffine2Masked32(x, g, m, c, a, k, b, f.Mask, dx)
		return
	}
	chanAffine2_32(x, g, y, m, c, a, k, b, dx)
}

// BatchNormBackwardToBF16OK reports whether BatchNormTrainBackwardToBF16
// stores the gradient of c channels (mask: with Fused.Mask).
func BatchNormBackwardToBF16OK(c int, mask bool) bool {
	return toBF16DXOK(c) && (!mask || maskKernelsOK())
}

// BF16Of views the first n halves of a float32 buffer (at least n/2
// rounded up long) as bfloat16 bits: a tape buffer for a gradient stored
// as bfloat16.
func BF16Of(buf []float32, n int) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(buf[:(n+1)/2]))), n)
}

// BatchNormTrainBackwardToBF16 is BatchNormTrainBackward storing dx as
// bfloat16 in dxb (BF16FromFloat32 of the float32 it would store), for a
// gradient that is only read as bfloat16 (a bfloat16 convolution's output
// gradient), where the level's kernels do so (AVX-512 with AVX512-BF16);
// elsewhere it computes nothing and reports false.
func BatchNormTrainBackwardToBF16(m, c int, x, gamma, mean, invStd, dy []float32, dxb []uint16, dgamma, dbeta []float32, f Fused[float32]) bool {
	f.checkMask()
	if !BatchNormBackwardToBF16OK(c, f.Mask != nil) {
		return false
	}
	a, k, b, g, y := trainBackwardPass(m, c, x, gamma, mean, invStd, dy, dgamma, dbeta, f)
	chanAffine2ToBF16(x, g, y, m, c, a, k, b, f.Mask, dxb)
	return true
}

// checkMask panics unless f.Mask, where set, is a ReLU's mask without a
// skip addition (the only one the kernels recompute from x).
func (f Fused[T]) checkMask() {
	if f.Mask != nil && (!f.ReLU || f.DSkip != nil) {
		panic("kernels: Fused.Mask is a ReLU's mask without a skip addition")
	}
}

// trainBackwardPass is the training backward pass's first pass on the
// level's kernels: Σg and Σg·(x − mean) per channel, g the gradient after
// the ReLU's mask (stored in f.DSkip where it is not nil), dgamma and
// dbeta. It returns the coefficients of dx = a·g − k·x + b and the second
// pass's operands: g's source and the output whose mask applies (nil:
// none) — dy and nil under f.Mask, which recomputes the mask from x, or
// with f.Sums, whose dy is masked already; f.DSkip and nil where the
// masked gradient is stored there already.
func trainBackwardPass(m, c int, x, gamma, mean, invStd, dy, dgamma, dbeta []float32, f Fused[float32]) (a, k, b, g, y []float32) {
	var sums []float64
	switch {
	case f.Sums != nil:
		sums = f.Sums[:2*c] // turned in place, below
		if f.Mask == nil && f.DSkip != nil && unsafe.SliceData(f.DSkip) != unsafe.SliceData(dy) {
			copy(f.DSkip[:m*c], dy) // g, masked already
		}
	case f.Mask != nil:
		sums = chanSumsMasked32(x, dy, f.DSkip, m, c, mean, f.Mask)
	default:
		sums = chanSums32(x, dy, f.mask(), f.DSkip, m, c, mean)
	}
	for j := 0; j < c; j++ { // Σg·(x − mean) → Σg·x̂
		sums[c+j] *= float64(invStd[j])
	}
	a, k, b = trainBackwardCoefs(m, sums, gamma, mean, invStd, dgamma, dbeta)
	switch {
	case f.DSkip != nil: // never with f.Mask (checkMask)
		return a, k, b, f.DSkip, nil
	case f.Mask != nil || f.Sums != nil: // the mask recomputed from x, or applied to dy already
		return a, k, b, dy, nil
	}
	return a, k, b, dy, f.mask()
}

// batchNormTrainBackwardRef is BatchNormTrainBackward's reference, for
// any Float.
func batchNormTrainBackwardRef[T Float](m, c int, x, gamma, mean, invStd, dy, dx, dgamma, dbeta []T, f Fused[T]) {
	// Σg and Σg·x̂ per channel, g the gradient after the ReLU's mask, in one
	// pass: acc[j] and acc[c+j].
	sums := parallelSums(m, 2*c, func(lo, hi int, acc []float64) {
		for i := lo; i < hi; i++ {
			xr := x[i*c:][:c]
			for j := range xr {
				gt := f.gradX(x, dy, i*c+j, c)
				if f.DSkip != nil {
					f.DSkip[i*c+j] = gt
				}
				g := float64(gt)
				acc[j] += g
				acc[c+j] += g * (float64(xr[j]) - float64(mean[j])) * float64(invStd[j])
			}
		}
	})
	a, k, b := trainBackwardCoefs(m, sums, gamma, mean, invStd, dgamma, dbeta)
	parallelFor(m, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr, dr := x[i*c:][:c], dx[i*c:][:c]
			for j := range dr {
				dr[j] = a[j]*f.gradX(x, dy, i*c+j, c) - k[j]*xr[j] + b[j]
			}
		}
	})
}

// trainBackwardCoefs returns, from sums = (Σg, Σg·x̂) per channel over M
// rows, the coefficients of dx = a·g − k·x + b, and stores dgamma = Σg·x̂
// and dbeta = Σg unless they are nil.
func trainBackwardCoefs[T Float](m int, sums []float64, gamma, mean, invStd, dgamma, dbeta []T) (a, k, b []T) {
	c := len(sums) / 2
	sdy, sdyx := sums[:c], sums[c:]
	// dx = gamma·invStd/M · (M·dy − Σdy − x̂·Σ(dy·x̂))
	a = make([]T, c)
	b = make([]T, c)
	k = make([]T, c)
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
	return a, k, b
}

// BatchNormEvalForward normalises x [M, C] with the running statistics,
// then applies f's skip addition and ReLU; on the active level's
// per-channel kernels where they apply.
func BatchNormEvalForward(m, c int, x, gamma, beta, runMean, runVar, y []float32, eps float64, f Fused[float32]) {
	scale, shift := evalAffine(c, gamma, beta, runMean, runVar, eps)
	if chanOK(c) {
		chanAffine32(x, f.Skip, m, c, scale, shift, y, f.ReLU, false)
		return
	}
	affineRowsRef(m, c, x, scale, shift, y, f)
}

// batchNormEvalForwardRef is BatchNormEvalForward's reference, for any
// Float.
func batchNormEvalForwardRef[T Float](m, c int, x, gamma, beta, runMean, runVar, y []T, eps float64, f Fused[T]) {
	scale, shift := evalAffine(c, gamma, beta, runMean, runVar, eps)
	affineRowsRef(m, c, x, scale, shift, y, f)
}

// evalAffine returns the affine map y = x·scale + shift of a batch norm
// in evaluation mode.
func evalAffine[T Float](c int, gamma, beta, runMean, runVar []T, eps float64) (scale, shift []T) {
	scale = make([]T, c)
	shift = make([]T, c)
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
	return scale, shift
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

// affineRowsRef writes y = x·scale + shift per channel, then f's skip
// addition and ReLU.
func affineRowsRef[T Float](m, c int, x, scale, shift, y []T, f Fused[T]) {
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
