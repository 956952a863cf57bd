package kernels

import (
	"fmt"
	"math"
)

// CrossEntropy describes a cross-entropy loss over logits viewed as [M, K]
// (rows are samples or pixels, K classes), as PyTorch's cross_entropy.
type CrossEntropy[T Float] struct {
	M, K int
	// Weight, if not nil, holds one weight per class.
	Weight []T
	// RowWeight, if not nil, holds one weight per row (per pixel: the
	// U-Net paper's weight map), multiplying the class weight.
	RowWeight []T
	// IgnoreIndex: rows whose target equals it contribute nothing. Use a
	// negative value (PyTorch's default is −100) to ignore nothing in range.
	IgnoreIndex int
	// Sum selects the sum over rows instead of the (weighted) mean.
	Sum bool
	// Smoothing is PyTorch's label_smoothing ε: the target becomes 1 − ε on
	// the true class plus ε/K on every class, so a row's loss is
	// w_t·(1−ε)·(−log p_t) + ε/K·Σ_k w_k·(−log p_k), normalised by Σ w_t.
	Smoothing float64
}

// Check reports targets outside [0, K) that are not the ignore index.
func (l CrossEntropy[T]) Check(targets []int32) error {
	if len(targets) != l.M {
		return fmt.Errorf("cross-entropy: %d targets for %d rows", len(targets), l.M)
	}
	if l.Weight != nil && len(l.Weight) != l.K {
		return fmt.Errorf("cross-entropy: %d class weights for %d classes", len(l.Weight), l.K)
	}
	if l.RowWeight != nil && len(l.RowWeight) != l.M {
		return fmt.Errorf("cross-entropy: %d row weights for %d rows", len(l.RowWeight), l.M)
	}
	if l.Smoothing < 0 || l.Smoothing > 1 || math.IsNaN(l.Smoothing) {
		return fmt.Errorf("cross-entropy: label smoothing %g outside [0, 1]", l.Smoothing)
	}
	for i, t := range targets {
		if int(t) != l.IgnoreIndex && (t < 0 || int(t) >= l.K) {
			return fmt.Errorf("cross-entropy: target %d at row %d is outside [0, %d)", t, i, l.K)
		}
	}
	return nil
}

func (l CrossEntropy[T]) weight(i int, t int32) float64 {
	return l.classWeight(int(t)) * l.rowWeight(i)
}

func (l CrossEntropy[T]) classWeight(k int) float64 {
	if l.Weight == nil {
		return 1
	}
	return float64(l.Weight[k])
}

func (l CrossEntropy[T]) rowWeight(i int) float64 {
	if l.RowWeight == nil {
		return 1
	}
	return float64(l.RowWeight[i])
}

// Forward returns the loss and the normaliser (the summed weight of the
// rows counted, or 1 with Sum). With every row ignored, the mean is NaN, as
// in PyTorch.
func (l CrossEntropy[T]) Forward(logits []T, targets []int32) (loss, norm float64) {
	for i := 0; i < l.M; i++ {
		t := targets[i]
		if int(t) == l.IgnoreIndex {
			continue
		}
		row := logits[i*l.K:][:l.K]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		w, lse := l.weight(i, t), mx+math.Log(s)
		loss += w * (1 - l.Smoothing) * (lse - float64(row[t]))
		if l.Smoothing != 0 {
			smooth := 0.0
			for k, v := range row {
				smooth += l.classWeight(k) * (lse - float64(v))
			}
			loss += l.rowWeight(i) * l.Smoothing / float64(l.K) * smooth
		}
		norm += w
	}
	if l.Sum {
		return loss, 1
	}
	if norm == 0 {
		return 0, 0 // every row ignored or of weight 0 (PyTorch's mean is NaN there): no loss, no gradient
	}
	return loss / norm, norm
}

// Backward writes dlogits for an upstream gradient g of the loss, given the
// normaliser returned by Forward.
func (l CrossEntropy[T]) Backward(logits []T, targets []int32, norm, g float64, dlogits []T) {
	if norm == 0 { // no row weighs anything: the loss is 0 (Forward)
		clear(dlogits[:l.M*l.K])
		return
	}
	for i := 0; i < l.M; i++ {
		row, d := logits[i*l.K:][:l.K], dlogits[i*l.K:][:l.K]
		t := targets[i]
		if int(t) == l.IgnoreIndex {
			clear(d)
			continue
		}
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		c := g * l.weight(i, t) * (1 - l.Smoothing) / norm
		cs, wsum := 0.0, 0.0 // the smoothing term: ε/K·(p_j·Σ_k w_k − w_j)
		if l.Smoothing != 0 {
			cs = g * l.rowWeight(i) * l.Smoothing / float64(l.K) / norm
			for k := range row {
				wsum += l.classWeight(k)
			}
		}
		for j, v := range row {
			p := math.Exp(float64(v)-mx) / s
			dj := p
			if int32(j) == t {
				dj--
			}
			d[j] = T(c*dj + cs*(p*wsum-l.classWeight(j)))
		}
	}
}

// BCEWithLogitsForward returns the mean of the binary cross-entropy between
// sigmoid(x) and targets t, computed stably.
func BCEWithLogitsForward[T Float](x, t []T) float64 {
	s := 0.0
	for i, v := range x {
		z := float64(v)
		s += math.Max(z, 0) - z*float64(t[i]) + math.Log1p(math.Exp(-math.Abs(z)))
	}
	return s / float64(len(x))
}

// BCEWithLogitsBackward writes dx = g·(sigmoid(x) − t)/n.
func BCEWithLogitsBackward[T Float](x, t []T, g float64, dx []T) {
	c := g / float64(len(x))
	for i, v := range x {
		dx[i] = T(c * (1/(1+math.Exp(-float64(v))) - float64(t[i])))
	}
}

// MSEForward returns the mean of (x − t)².
func MSEForward[T Float](x, t []T) float64 {
	s := 0.0
	for i, v := range x {
		d := float64(v) - float64(t[i])
		s += d * d
	}
	return s / float64(len(x))
}

// MSEBackward writes dx = g·2(x − t)/n.
func MSEBackward[T Float](x, t []T, g float64, dx []T) {
	c := 2 * g / float64(len(x))
	for i, v := range x {
		dx[i] = T(c * (float64(v) - float64(t[i])))
	}
}

// Dice is the soft Dice loss (Milletari et al. 2016) over logits viewed as
// [M, K] rows: with p the softmax of each row, for every class c,
// dice_c = (2·Σ p_c·[t = c] + 1) / (Σ p_c + Σ [t = c] + 1), and the loss is
// 1 − the mean of dice_c over the K classes. Rows whose target is
// IgnoreIndex take no part.
type Dice[T Float] struct {
	M, K        int
	IgnoreIndex int
}

// Check reports targets outside [0, K) that are not the ignore index.
func (l Dice[T]) Check(targets []int32) error {
	return CrossEntropy[T]{M: l.M, K: l.K, IgnoreIndex: l.IgnoreIndex}.Check(targets)
}

// sums returns the softmax rows and, per class, Σ p·[t = c], Σ p and
// Σ [t = c].
func (l Dice[T]) sums(logits []T, targets []int32) (p []float64, inter, psum, gsum []float64) {
	p = make([]float64, l.M*l.K)
	inter, psum, gsum = make([]float64, l.K), make([]float64, l.K), make([]float64, l.K)
	for i := 0; i < l.M; i++ {
		t := targets[i]
		if int(t) == l.IgnoreIndex {
			continue
		}
		row, pr := logits[i*l.K:][:l.K], p[i*l.K:][:l.K]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		s := 0.0
		for j, v := range row {
			pr[j] = math.Exp(float64(v) - mx)
			s += pr[j]
		}
		for j := range pr {
			pr[j] /= s
			psum[j] += pr[j]
		}
		inter[t] += pr[t]
		gsum[t]++
	}
	return p, inter, psum, gsum
}

// Forward returns the loss.
func (l Dice[T]) Forward(logits []T, targets []int32) float64 {
	_, inter, psum, gsum := l.sums(logits, targets)
	d := 0.0
	for c := range inter {
		d += (2*inter[c] + 1) / (psum[c] + gsum[c] + 1)
	}
	return 1 - d/float64(l.K)
}

// Backward writes dlogits for an upstream gradient g of the loss.
func (l Dice[T]) Backward(logits []T, targets []int32, g float64, dlogits []T) {
	p, inter, psum, gsum := l.sums(logits, targets)
	dp := make([]float64, l.K)
	for i := 0; i < l.M; i++ {
		t := targets[i]
		d := dlogits[i*l.K:][:l.K]
		if int(t) == l.IgnoreIndex {
			clear(d)
			continue
		}
		pr := p[i*l.K:][:l.K]
		dot := 0.0
		for c := range dp {
			den := psum[c] + gsum[c] + 1
			num := -(2*inter[c] + 1)
			if int32(c) == t {
				num += 2 * den
			}
			dp[c] = -g / float64(l.K) * num / (den * den)
			dot += pr[c] * dp[c]
		}
		for c := range d {
			d[c] = T(pr[c] * (dp[c] - dot))
		}
	}
}
