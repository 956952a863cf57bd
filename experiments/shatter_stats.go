package experiments

import (
	"context"
	"math"
	"runtime"
	"sync"

	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// pairStats accumulates, over initialisations, what one plain ReLU network
// does to pairs of inputs at every layer. Every slice is indexed
// [layer][pair] and holds a sum over initialisations.
//
// The gradient statistics use the masked tangent a_l(x) = D_l(x)·∂h_l/∂u
// (D_l the 0/1 activation pattern of layer l, ∂h_l/∂u the derivative of
// the pre-activations along the input direction u). A network of depth L
// with a readout y = rᵀ·relu(h_L), r ~ N(0, σ²I) drawn independently of
// everything else, has dy/du = rᵀa_L, so over initialisations
//
//	E[dy/du(x_i) · dy/du(x_j)] = σ² E[a_L(x_i)·a_L(x_j)],  E[dy/du] = 0,
//
// and the correlation over initialisations of dy/du at x_i and x_j is
// E[a_i·a_j] / √(E|a_i|² E|a_j|²): the readout is integrated out exactly
// instead of sampled (a Rao–Blackwellised estimate, same expectation, less
// noise). One deep network gives every depth L ≤ MaxDepth this way — the
// depth-L network is its first L layers plus a fresh readout.
type pairStats struct {
	co, pi, pj    [][]float64 // fraction of units active at both inputs, at x_i, at x_j
	dot, ni, nj   [][]float64 // a_i·a_j, |a_i|², |a_j|²
	pco, ppi, ppj [][]float64 // Π_{k≤l} 2·co_k, Π 2·pi_k, Π 2·pj_k within one initialisation
	inits         int
}

func newPairStats(layers, pairs int) *pairStats {
	mk := func() [][]float64 {
		m := make([][]float64, layers)
		for i := range m {
			m[i] = make([]float64, pairs)
		}
		return m
	}
	return &pairStats{co: mk(), pi: mk(), pj: mk(), dot: mk(), ni: mk(), nj: mk(), pco: mk(), ppi: mk(), ppj: mk()}
}

func (s *pairStats) fields() [][][]float64 {
	return [][][]float64{s.co, s.pi, s.pj, s.dot, s.ni, s.nj, s.pco, s.ppi, s.ppj}
}

func (s *pairStats) add(o *pairStats) {
	of := o.fields()
	for f, m := range s.fields() {
		for l := range m {
			for p := range m[l] {
				m[l][p] += of[f][l][p]
			}
		}
	}
	s.inits += o.inits
}

// corr returns the correlation over initialisations of dy/du at the pair's
// inputs for depth l+1, pooled over the pairs listed.
func (s *pairStats) corr(l int, pairs []int) float64 {
	var d, a, b float64
	for _, p := range pairs {
		d, a, b = d+s.dot[l][p], a+s.ni[l][p], b+s.nj[l][p]
	}
	return d / math.Sqrt(a*b)
}

// coActive returns the mean fraction of units of layer l+1 active at both
// inputs of the pairs listed.
func (s *pairStats) coActive(l int, pairs []int) float64 {
	var c float64
	for _, p := range pairs {
		c += s.co[l][p]
	}
	return c / float64(len(pairs)*s.inits)
}

// predicted is the correlation that the activation patterns alone imply
// (Balduzzi et al. 2017, Theorem 1's mechanism; see coActivationPrediction).
func (s *pairStats) predicted(l, p int) float64 {
	return s.pco[l][p] / math.Sqrt(s.ppi[l][p]*s.ppj[l][p])
}

// shatterNet describes the networks of one statistics run: inputs x
// [rows, dim] (row-major), the derivative direction u = e_{dim−1}
// (orthogonal to every input, see shatterInputs), width units per layer,
// depth layers, batch norm or not.
type shatterNet struct {
	x            []float32
	rows, dim    int
	width, depth int
	bn           bool
	pairs        [][2]int
}

// run measures inits initialisations, split into a fixed number of chunks
// (whose sums sumStats adds in order, so that the result does not depend on
// how many goroutines ran them, and whose spread gives standard errors).
func (n shatterNet) run(ctx context.Context, seed uint64, inits int) ([]*pairStats, error) {
	const chunks = 16
	parts := make([]*pairStats, chunks)
	sem := make(chan struct{}, max(runtime.GOMAXPROCS(0), 1))
	var wg sync.WaitGroup
	for c := range chunks {
		lo, hi := c*inits/chunks, (c+1)*inits/chunks
		parts[c] = newPairStats(n.depth, len(n.pairs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			w := newShatterWork(n)
			for i := lo; i < hi; i++ {
				if ctx.Err() != nil {
					return
				}
				w.init(tensor.NewRNG(mixSeed(seed, uint64(i))), parts[c])
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return parts, nil
}

// mixSeed derives initialisation i's seed from the run's (SplitMix64's
// finaliser, so that neighbouring seeds give unrelated streams).
func mixSeed(seed, i uint64) uint64 {
	z := seed*0x9E3779B97F4A7C15 + (i+1)*0xBF58476D1CE4E5B9
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// shatterWork is one goroutine's buffers.
type shatterWork struct {
	n        shatterNet
	w1, w    *tensor.Tensor
	z, zNext []float32 // [2·rows, width]: pre-activations, then tangents
	pc, pi   []float64 // running products per pair (co, i), and pj
	pj       []float64
}

func newShatterWork(n shatterNet) *shatterWork {
	return &shatterWork{n: n, w1: tensor.New(n.width, n.dim), w: tensor.New(n.width, n.width),
		z: make([]float32, 2*n.rows*n.width), zNext: make([]float32, 2*n.rows*n.width),
		pc: make([]float64, len(n.pairs)), pi: make([]float64, len(n.pairs)), pj: make([]float64, len(n.pairs))}
}

// init draws one He-initialised network (weights N(0, 2/fan-in), no
// biases) and adds its statistics to acc.
func (w *shatterWork) init(rng *tensor.RNG, acc *pairStats) {
	n := w.n
	W, R := n.width, n.rows
	rng.FillNormal(w.w1, 0, math.Sqrt(2/float64(n.dim)))
	h, v := w.z[:R*W], w.z[R*W:]
	kernels.Gemm(false, true, R, W, n.dim, 1, n.x, n.dim, w.w1.Data, n.dim, 0, h, W)
	for k := range W { // the first layer's tangent is W₁u for every input
		t := w.w1.Data[k*n.dim+n.dim-1]
		for r := range R {
			v[r*W+k] = t
		}
	}
	for p := range n.pairs {
		w.pc[p], w.pi[p], w.pj[p] = 1, 1, 1
	}
	for l := range n.depth {
		if n.bn {
			// Batch norm with the batch's statistics held fixed: an
			// affine map per unit, which scales the tangent too.
			for k := range W {
				var s, q float64
				for r := range R {
					x := float64(h[r*W+k])
					s, q = s+x, q+x*x
				}
				m := s / float64(R)
				inv := 1 / math.Sqrt(max(q/float64(R)-m*m, 0)+1e-5)
				for r := range R {
					h[r*W+k] = float32((float64(h[r*W+k]) - m) * inv)
					v[r*W+k] = float32(float64(v[r*W+k]) * inv)
				}
			}
		}
		for i := range h { // relu, and the tangent through it
			if h[i] <= 0 {
				h[i], v[i] = 0, 0
			}
		}
		for p, pr := range n.pairs {
			hi, hj := h[pr[0]*W:(pr[0]+1)*W], h[pr[1]*W:(pr[1]+1)*W]
			vi, vj := v[pr[0]*W:(pr[0]+1)*W], v[pr[1]*W:(pr[1]+1)*W]
			var co, ai, aj int
			var dot, ni, nj float64
			for k := range W {
				a, b := hi[k] > 0, hj[k] > 0
				if a {
					ai++
				}
				if b {
					aj++
				}
				if a && b {
					co++
				}
				x, y := float64(vi[k]), float64(vj[k])
				dot, ni, nj = dot+x*y, ni+x*x, nj+y*y
			}
			c, fi, fj := float64(co)/float64(W), float64(ai)/float64(W), float64(aj)/float64(W)
			w.pc[p], w.pi[p], w.pj[p] = w.pc[p]*2*c, w.pi[p]*2*fi, w.pj[p]*2*fj
			acc.co[l][p] += c
			acc.pi[l][p] += fi
			acc.pj[l][p] += fj
			acc.dot[l][p] += dot
			acc.ni[l][p] += ni
			acc.nj[l][p] += nj
			acc.pco[l][p] += w.pc[p]
			acc.ppi[l][p] += w.pi[p]
			acc.ppj[l][p] += w.pj[p]
		}
		if l+1 < n.depth {
			// [relu(h); a] · Wᵀ in one product: the next pre-activations
			// and the next tangents.
			rng.FillNormal(w.w, 0, math.Sqrt(2/float64(W)))
			kernels.Gemm(false, true, 2*R, W, W, 1, w.z, W, w.w.Data, W, 0, w.zNext, W)
			w.z, w.zNext = w.zNext, w.z
			h, v = w.z[:R*W], w.z[R*W:]
		}
	}
	acc.inits++
}

// reluAngles returns θ_1 … θ_L, the angle between two inputs'
// pre-activations at each layer of an infinitely wide He-initialised plain
// ReLU network without biases whose inputs are θ_1 apart: the normalised
// arc-cosine kernel of degree 1 (Cho & Saul 2009),
//
//	cos θ_{l+1} = (sin θ_l + (π − θ_l)·cos θ_l) / π.
func reluAngles(theta1 float64, layers int) []float64 {
	th := make([]float64, layers)
	t := theta1
	for l := range th {
		th[l] = t
		c := (math.Sin(t) + (math.Pi-t)*math.Cos(t)) / math.Pi
		t = math.Acos(math.Max(-1, math.Min(1, c)))
	}
	return th
}

// reluTheory returns, for layers 1 … L, the infinite-width fraction of
// units co-active at two inputs θ_1 apart, (π − θ_l)/(2π), and the
// correlation over initialisations of the depth-l network's input
// derivatives, Π_{k≤l} (π − θ_k)/π (docs/EXPERIMENTS.md derives both).
func reluTheory(theta1 float64, layers int) (co, corr []float64) {
	prod := 1.0
	for _, t := range reluAngles(theta1, layers) {
		co = append(co, (math.Pi-t)/(2*math.Pi))
		prod *= (math.Pi - t) / math.Pi
		corr = append(corr, prod)
	}
	return co, corr
}
