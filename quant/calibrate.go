package quant

import (
	"fmt"
	"math"
)

// Method is how calibration turns the activations it saw into a range.
type Method string

// The calibration methods.
const (
	// MinMax takes the smallest and largest values seen: nothing is
	// clipped, at the cost of resolution when a few values are far out.
	MinMax Method = "minmax"
	// Percentile clips at the Percentile-th percentile of the
	// magnitudes seen on each side of zero.
	Percentile Method = "percentile"
	// Entropy clips where the Kullback-Leibler divergence between the
	// histogram of magnitudes and its quantized version is smallest
	// (TensorRT's calibration, Migacz 2017), the first bin (exact zeros)
	// flattened to its neighbour as pytorch-quantization does.
	Entropy Method = "entropy"
	// FromQDQ is no calibration: the scales were read from an imported
	// QDQ ONNX model (interop/onnx.ImportInt8). ParseMethod does not
	// accept it.
	FromQDQ Method = "onnx-qdq"
)

// ParseMethod returns the method a name spells.
func ParseMethod(s string) (Method, error) {
	switch m := Method(s); m {
	case MinMax, Percentile, Entropy:
		return m, nil
	}
	return "", fmt.Errorf("quant: unknown calibration method %q (minmax, percentile or entropy)", s)
}

// histBins is the number of bins of each side's histogram of magnitudes.
const histBins = 2048

// observer gathers one value's statistics over the calibration batches:
// its extremes and, for the clipping methods, a histogram of magnitudes
// for each sign over [0, top], top doubling (bins merging pairwise) when
// a batch exceeds it.
type observer struct {
	min, max float64
	top      float64
	pos, neg [histBins]float64
	// zeros counts the values seen before the histogram had a range
	// (every one of them 0): they go into its first bin once it has.
	zeros float64
	seen  bool
}

// add observes xs. A NaN or an infinity is an error: no range holds it,
// and it means the float network itself has gone wrong (weights or
// input), which calibration must not hide.
func (o *observer) add(xs []float32, hist bool) error {
	for i, v := range xs {
		f := float64(v)
		if !finite(v) {
			return fmt.Errorf("value %d of %d is %v", i, len(xs), v)
		}
		if !o.seen {
			o.min, o.max, o.seen = f, f, true
		}
		o.min, o.max = min(o.min, f), max(o.max, f)
	}
	if !hist {
		return nil
	}
	m := max(o.max, -o.min)
	if m == 0 { // every value so far is 0: no range to bin them in yet
		o.zeros += float64(len(xs))
		return nil
	}
	if o.top == 0 {
		o.top = m
		o.pos[0], o.zeros = o.zeros, 0
	}
	for o.top < m {
		for _, h := range []*[histBins]float64{&o.pos, &o.neg} {
			for i := 0; i < histBins/2; i++ {
				h[i] = h[2*i] + h[2*i+1]
			}
			clear(h[histBins/2:])
		}
		o.top *= 2
	}
	w := histBins / o.top
	for _, v := range xs {
		f := float64(v)
		h := &o.pos
		if f < 0 {
			h, f = &o.neg, -f
		}
		h[min(int(f*w), histBins-1)]++
	}
	return nil
}

// rangeOf returns the range [lo, hi] (lo ≤ 0 ≤ hi) the method chooses.
func (o *observer) rangeOf(m Method, pct float64) (lo, hi float64) {
	lo, hi = min(o.min, 0), max(o.max, 0)
	if m == MinMax || o.top == 0 {
		return lo, hi
	}
	bin := o.top / histBins
	var npos, nneg float64
	for i := range histBins {
		npos += o.pos[i]
		nneg += o.neg[i]
	}
	side := func(h *[histBins]float64, n float64, levels int) float64 {
		if n == 0 {
			return 0
		}
		if m == Percentile {
			var c float64
			for i := range histBins {
				c += h[i]
				if c >= pct/100*n {
					return float64(i+1) * bin
				}
			}
			return o.top
		}
		// The first bin holds every exact zero (a ReLU's output is mostly
		// zeros): a spike that any grouping of Q averages away, so the
		// divergence favoured the tightest threshold and clipped to a
		// quarter of the range. It is flattened to its neighbour first,
		// as pytorch-quantization's entropy calibrator does
		// (histogram.py, _compute_amax_entropy: bins[0] = bins[1]).
		hh := *h
		hh[0] = hh[1]
		return float64(klThreshold(hh[:], levels)) * bin
	}
	// A side with values gets the levels its share of the range would:
	// 255 for a one-signed value, about half each otherwise.
	levels := 255
	if npos > 0 && nneg > 0 {
		levels = 128
	}
	hi = min(hi, side(&o.pos, npos, levels))
	lo = max(lo, -side(&o.neg, nneg, levels))
	return lo, hi
}

// klStep is the spacing of the clip thresholds klThreshold tries, in bins
// (of histBins).
const klStep = 8

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// klThreshold returns the number of histogram bins to keep (the clip
// threshold in bins) that minimizes KL(P‖Q), P the histogram clipped
// there (outliers added to its last bin), Q it quantized to levels levels.
func klThreshold(h []float64, levels int) int {
	last := len(h)
	for last > 0 && h[last-1] == 0 {
		last--
	}
	if last <= levels {
		return max(last, 1)
	}
	best, bestKL := last, math.Inf(1)
	p := make([]float64, last)
	q := make([]float64, last)
	// Candidates every klStep bins (and the full range): the divergence
	// varies slowly with the threshold, and each candidate costs O(t).
	for t := levels; t <= last; t = min(t+klStep, last+boolInt(t == last)) {
		copy(p, h[:t])
		for _, v := range h[t:last] {
			p[t-1] += v
		}
		// Q: h[:t] merged into levels groups, each group's mass spread
		// evenly over its non-empty bins.
		for j := range levels {
			a, b := j*t/levels, (j+1)*t/levels
			var sum float64
			nz := 0
			for i := a; i < b; i++ {
				sum += h[i]
				if h[i] != 0 {
					nz++
				}
			}
			for i := a; i < b; i++ {
				q[i] = 0
				if h[i] != 0 {
					q[i] = sum / float64(nz)
				}
			}
		}
		var sp, sq float64
		for i := range t {
			sp += p[i]
			sq += q[i]
		}
		var kl float64
		for i := range t {
			if p[i] == 0 {
				continue
			}
			pi := p[i] / sp
			qi := q[i] / sq
			if qi == 0 {
				qi = 1e-12 // the outliers' bin has no counterpart in Q
			}
			kl += pi * math.Log(pi/qi)
		}
		if kl < bestKL {
			best, bestKL = t, kl
		}
	}
	return best
}
