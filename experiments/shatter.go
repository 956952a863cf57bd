package experiments

import (
	"context"
	"fmt"
	"math"
	"math/cmplx"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/models/mlp"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// ShatterConfig sizes the shattered-gradients experiment (Balduzzi et al.
// 2017). Two parts: the Fig. 1 pictures — dy/dt of networks with a 2-D input
// on the unit circle x(t) = (cos t, sin t) at Points angles t ∈ [−2, 2] —
// and the
// statistics over Inits initialisations of plain ReLU networks of Width
// units and up to MaxDepth layers, with and without batch norm, at pairs of
// inputs (docs/EXPERIMENTS.md gives the protocol and the theory).
type ShatterConfig struct {
	Points     int // Fig. 1: inputs on the circle, t ∈ [−2, 2] (256)
	Width      int // units per hidden layer (200)
	PlainDepth int // Fig. 1: hidden layers of the deep plain net (24)
	ResBlocks  int // Fig. 1: blocks of the residual net (50)
	Inits      int // statistics: initialisations (500)
	MaxDepth   int // statistics: layers of the deepest network (50)
	Dim        int // statistics: input dimension (200)
	Batch      int // statistics: random inputs, the batch-norm batch (64)
	Arc        int // statistics: intervals of the half circle t ∈ [0, π] (64)
	Seed       uint64
}

// DefaultShatter is the protocol of issue #19: width 200, depths 1 … 50,
// 500 initialisations.
func DefaultShatter() ShatterConfig {
	return ShatterConfig{Points: 256, Width: 200, PlainDepth: 24, ResBlocks: 50,
		Inits: 500, MaxDepth: 50, Dim: 200, Batch: 64, Arc: 64, Seed: 1}
}

// QuickShatter is a seconds-long version for tests: the same networks with
// fewer initialisations, layers and points.
func QuickShatter() ShatterConfig {
	return ShatterConfig{Points: 256, Width: 200, PlainDepth: 24, ResBlocks: 50,
		Inits: 48, MaxDepth: 12, Dim: 200, Batch: 64, Arc: 64, Seed: 1}
}

// MinShatterInits is the fewest initialisations (ShatterConfig.Inits)
// Shatter takes.
const MinShatterInits = 16

func (c ShatterConfig) validate() error {
	if c.Points < 8 || c.Width < 2 || c.PlainDepth < 2 || c.ResBlocks < 1 || c.Inits < MinShatterInits || c.MaxDepth < 1 ||
		c.Dim < 3 || c.Batch < 4 || c.Batch%2 != 0 || c.Arc < 2 || c.Arc%2 != 0 {
		return fmt.Errorf("experiments: shatter needs ≥ 8 points, width ≥ 2, plain depth ≥ 2, ≥ 1 block, ≥ %d initialisations, depth ≥ 1, input dimension ≥ 3, an even batch ≥ 4 and an even arc ≥ 2; got %+v", MinShatterInits, c)
	}
	return nil
}

// ShatterNet is one Fig. 1 network's derivatives along the circle.
type ShatterNet struct {
	Name     string    `json:"name"`
	Init     string    `json:"init"`
	BN       bool      `json:"batch_norm"`
	Grad     []float64 `json:"dydt"`
	NeighCor float64   `json:"neighbour_correlation"`
	Slope    float64   `json:"spectrum_slope"`
}

// ShatterGroup is a set of input pairs measured over initialisations, layer
// by layer (index l is layer, or depth, l+1).
type ShatterGroup struct {
	Name  string  `json:"name"`
	BN    bool    `json:"batch_norm"`
	Pairs int     `json:"pairs"`
	Theta float64 `json:"input_angle"` // mean angle between the inputs of a pair
	// CoActive is the fraction of units active at both inputs.
	CoActive []float64 `json:"co_active"`
	// Corr is the correlation over initialisations of dy/du at the two
	// inputs for the network of that depth, pooled over the pairs; CorrSE
	// its standard error (from 16 independent chunks of initialisations).
	Corr   []float64 `json:"gradient_correlation"`
	CorrSE []float64 `json:"gradient_correlation_se"`
	// Implied is the correlation the measured activation patterns imply,
	// Π 2·co / √(Π 2·p_i · Π 2·p_j) (Balduzzi et al.'s mechanism).
	Implied []float64 `json:"pattern_implied_correlation"`
	// TheoryCo and TheoryCorr are the infinite-width predictions: the
	// arc-cosine recursion without batch norm, ¼ and 2^−L with it.
	TheoryCo   []float64 `json:"theory_co_active"`
	TheoryCorr []float64 `json:"theory_correlation"`
}

// ShatterResult holds the measured numbers.
type ShatterResult struct {
	T      []float64      `json:"t"`
	Nets   []ShatterNet   `json:"networks"`
	Groups []ShatterGroup `json:"groups"`
	Claims []Claim        `json:"claims"`
}

// shallow is the one-hidden-layer network: Linear(2→W), [BN], ReLU,
// Linear(W→1).
type shallow struct {
	In   *nn.Linear
	BN   *nn.BatchNorm
	Head *nn.Linear
}

func (s *shallow) Forward(x *ag.Value) *ag.Value {
	h := s.In.Forward(x)
	if s.BN != nil {
		h = s.BN.Forward(h)
	}
	return s.Head.Forward(ag.ReLU(h))
}

// net builds a Fig. 1 network of the given kind (hidden layers for plain
// nets, blocks for residual ones) with two inputs, weights He or Glorot
// normal and zero biases. The input is on the unit circle, so the
// positive homogeneity of a bias-free ReLU net (y(αx) = α·y(x)) does not
// make it trivial as it would on a line through 0.
func (c ShatterConfig) net(residual bool, depth int, bn bool, init string, rng *tensor.RNG) (nn.Layer, error) {
	if depth <= 1 && !residual {
		s := &shallow{In: nn.NewLinear(rng, 2, c.Width, true), Head: nn.NewLinear(rng, c.Width, 1, true)}
		for _, l := range []*nn.Linear{s.In, s.Head} {
			if init == "glorot" {
				nn.GlorotNormal(rng, l)
			} else {
				nn.HeNormal(rng, l, nn.FanIn)
			}
		}
		if bn {
			s.BN = nn.NewBatchNorm(c.Width)
		}
		return s, nil
	}
	blocks := depth
	if !residual {
		blocks = depth - 1 // the input layer is the first hidden layer
	}
	return mlp.New(mlp.Config{In: 2, Out: 1, Width: c.Width, Depth: blocks, Skip: residual, BatchNorm: bn, Init: init}, rng)
}

// circleGradients returns dy/dt at x(t) = (cos t, sin t) for every row of
// x. Batch norms take the statistics of the whole batch of inputs and hold
// them fixed (one calibration pass), so that each input's derivative is
// its own.
func circleGradients(net nn.Layer, x *tensor.Tensor) []float64 {
	for _, l := range nn.Layers(net) {
		if b, ok := l.Layer.(*nn.BatchNorm); ok {
			b.Momentum = 1
		}
	}
	nn.SetTraining(net, true)
	net.Forward(ag.Constant(x)) // running statistics := this batch's
	nn.SetTraining(net, false)
	tape := ag.NewTape()
	xv := tape.Variable(x)
	tape.Backward(ag.Sum(net.Forward(xv)))
	n := x.Shape[0]
	g := make([]float64, n)
	for i := range n {
		// dx/dt = (−sin t, cos t) = (−x₂, x₁).
		g[i] = -float64(xv.Grad.Data[2*i])*float64(x.Data[2*i+1]) + float64(xv.Grad.Data[2*i+1])*float64(x.Data[2*i])
	}
	return g
}

func neighbourCorrelation(g []float64) float64 { return pearson(g[:len(g)-1], g[1:]) }

func pearson(a, b []float64) float64 {
	ma, _ := meanSpread(a)
	mb, _ := meanSpread(b)
	var sab, saa, sbb float64
	for i := range a {
		da, db := a[i]-ma, b[i]-mb
		sab += da * db
		saa += da * da
		sbb += db * db
	}
	if saa == 0 || sbb == 0 {
		return 0
	}
	return sab / math.Sqrt(saa*sbb)
}

// autocorrelation returns the normalised autocorrelation for lags 0…maxLag.
func autocorrelation(g []float64, maxLag int) []float64 {
	m, _ := meanSpread(g)
	var v float64
	for _, x := range g {
		v += (x - m) * (x - m)
	}
	ac := make([]float64, maxLag+1)
	for l := range ac {
		s := 0.0
		for i := 0; i+l < len(g); i++ {
			s += (g[i] - m) * (g[i+l] - m)
		}
		ac[l] = s / v
	}
	return ac
}

// spectrum returns the power |G(f)|² of the mean-removed sequence for
// frequencies 1 … n/2 (a plain DFT), and the slope of log power on log
// frequency (brown noise ≈ −2, white noise ≈ 0).
func spectrum(g []float64) (freq, power []float64, slope float64) {
	n := len(g)
	m, _ := meanSpread(g)
	var lx, ly []float64
	for f := 1; f <= n/2; f++ {
		var s complex128
		for i, v := range g {
			s += complex(v-m, 0) * cmplx.Exp(complex(0, -2*math.Pi*float64(f*i)/float64(n)))
		}
		p := real(s)*real(s) + imag(s)*imag(s)
		freq, power = append(freq, float64(f)), append(power, p)
		if p > 0 {
			lx, ly = append(lx, math.Log(float64(f))), append(ly, math.Log(p))
		}
	}
	slope, _ = fitLine(lx, ly)
	return freq, power, slope
}

// Shatter runs the experiment and writes its figures, numbers and
// claims.json to out.
func Shatter(ctx context.Context, c ShatterConfig, out string) (*ShatterResult, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	r, err := NewReport(out, "Shattered gradients")
	if err != nil {
		return nil, err
	}
	defer r.abandon()
	res := &ShatterResult{}
	if err := c.figure1(ctx, r, res); err != nil {
		return nil, err
	}
	if err := c.statistics(ctx, r, res); err != nil {
		return nil, err
	}
	if err := r.Claims(res.Claims); err != nil {
		return nil, err
	}
	if err := r.JSON("shatter.json", res); err != nil {
		return nil, err
	}
	return res, r.Close()
}

// figure1 draws dy/dt of the twelve networks along the circle, their
// autocorrelations and power spectra (Balduzzi et al. 2017, Figs. 1–2).
func (c ShatterConfig) figure1(ctx context.Context, r *Report, res *ShatterResult) error {
	x := tensor.New(c.Points, 2)
	for i := range c.Points {
		t := -2 + 4*float64(i)/float64(c.Points-1)
		x.Data[2*i], x.Data[2*i+1] = float32(math.Cos(t)), float32(math.Sin(t))
		res.T = append(res.T, t)
	}
	var panels []Panel
	for _, kind := range []struct {
		name     string
		residual bool
		depth    int
	}{{"1 hidden layer", false, 1}, {fmt.Sprintf("%d-layer plain", c.PlainDepth), false, c.PlainDepth}, {fmt.Sprintf("%d-block residual", c.ResBlocks), true, c.ResBlocks}} {
		for _, bn := range []bool{false, true} {
			for _, init := range []string{"he", "glorot"} {
				if err := ctx.Err(); err != nil {
					return err
				}
				net, err := c.net(kind.residual, kind.depth, bn, init, tensor.NewRNG(c.Seed))
				if err != nil {
					return err
				}
				g := circleGradients(net, x)
				_, _, slope := spectrum(g)
				sn := ShatterNet{Name: kind.name, Init: init, BN: bn, Grad: g, NeighCor: neighbourCorrelation(g), Slope: slope}
				res.Nets = append(res.Nets, sn)
				title := fmt.Sprintf("%s, %s%s: r=%.2f", kind.name, init, map[bool]string{true: ", BN", false: ""}[bn], sn.NeighCor)
				panels = append(panels, Panel{Title: title, XLabel: "t (input (cos t, sin t))", YLabel: "dy/dt", Lines: []Line{{X: res.T, Y: g, Color: 0}}})
			}
		}
	}
	if err := r.Figure("gradients.png", 4, 260, 190, panels...); err != nil {
		return err
	}
	var ac, sp []Line
	lags := seq(0, 40)
	for i, n := range res.Nets {
		if n.Init != "he" {
			continue
		}
		label := n.Name + map[bool]string{true: " + BN", false: ""}[n.BN]
		ac = append(ac, Line{Label: label, X: lags, Y: autocorrelation(n.Grad, 40), Dashed: n.BN, Color: i / 4})
		f, p, _ := spectrum(n.Grad)
		sp = append(sp, Line{Label: fmt.Sprintf("%s (slope %.2f)", label, n.Slope), X: f, Y: p, Dashed: n.BN, Color: i / 4})
	}
	if err := r.Figure("autocorrelation.png", 2, 420, 320,
		Panel{Title: "Autocorrelation of dy/dt (He init)", XLabel: "lag (inputs)", YLabel: "autocorrelation", Lines: ac},
		Panel{Title: "Power spectrum of dy/dt (brown ≈ −2, white ≈ 0)", XLabel: "frequency", YLabel: "power", LogX: true, LogY: true, Lines: sp}); err != nil {
		return err
	}
	r.Printf("## Fig. 1: gradients along an input curve\n")
	r.Printf("Networks with a 2-D input on the unit circle x(t) = (cos t, sin t), %d angles t ∈ [−2, 2], one output; %d units per hidden layer; weights He or Glorot normal, zero biases; batch norms use the statistics of the %d inputs, held fixed. dy/dt = ∇y·(−sin t, cos t). Seed %d.\n",
		c.Points, c.Width, c.Points, c.Seed)
	r.Printf("| network | init | BN | neighbour correlation | spectrum slope |\n|---|---|---|---|---|")
	for _, n := range res.Nets {
		r.Printf("| %s | %s | %v | %.3f | %.2f |", n.Name, n.Init, n.BN, n.NeighCor, n.Slope)
	}
	return nil
}

// statistics measures co-activation and the correlation of input
// derivatives over initialisations, and states the claims.
func (c ShatterConfig) statistics(ctx context.Context, r *Report, res *ShatterResult) error {
	// Inputs. Random: Gaussian in the first Dim−1 coordinates, norm √Dim.
	// Arc: x(t) = √Dim·(cos t, sin t, 0, …) at t = kπ/Arc. The derivative
	// direction u = e_Dim is orthogonal to all of them.
	rng := tensor.NewRNG(c.Seed)
	d := c.Dim
	scale := math.Sqrt(float64(d))
	random := make([]float32, c.Batch*d)
	for i := range c.Batch {
		row := random[i*d : (i+1)*d]
		var n float64
		for k := 0; k < d-1; k++ {
			v := rng.Normal()
			row[k] = float32(v)
			n += v * v
		}
		for k := range row {
			row[k] = float32(float64(row[k]) * scale / math.Sqrt(n))
		}
	}
	arc := make([]float32, (c.Arc+1)*d)
	for k := 0; k <= c.Arc; k++ {
		t := math.Pi * float64(k) / float64(c.Arc)
		arc[k*d], arc[k*d+1] = float32(scale*math.Cos(t)), float32(scale*math.Sin(t))
	}
	angle := func(x []float32, i, j int) float64 {
		var dot, a, b float64
		for k := range d {
			p, q := float64(x[i*d+k]), float64(x[j*d+k])
			dot, a, b = dot+p*q, a+p*p, b+q*q
		}
		return math.Acos(math.Max(-1, math.Min(1, dot/math.Sqrt(a*b))))
	}
	var randomPairs [][2]int
	for i := 0; i < c.Batch; i += 2 {
		randomPairs = append(randomPairs, [2]int{i, i + 1})
	}
	// Without batch norm: the arc (rows 0 … Arc) and the random inputs
	// after it, pairs grouped by their separation on the arc.
	type group struct {
		name  string
		pairs []int
	}
	plainX := append(append([]float32(nil), arc...), random...)
	var plainPairs [][2]int
	var plainGroups []group
	seps := []int{1, c.Arc / 16, c.Arc / 4, c.Arc / 2, c.Arc}
	for gi, k := range seps {
		if k < 1 || (gi > 0 && k <= seps[gi-1]) {
			continue
		}
		g := group{name: fmt.Sprintf("arc, θ = %d·π/%d", k, c.Arc)}
		switch {
		case k == 1:
			g.name = fmt.Sprintf("neighbours, θ = π/%d", c.Arc)
		case 2*k == c.Arc:
			g.name = "orthogonal, θ = π/2"
		case k == c.Arc:
			g.name = "opposite, θ = π (x = ±1)"
		}
		for i := 0; i+k <= c.Arc; i++ {
			g.pairs = append(g.pairs, len(plainPairs))
			plainPairs = append(plainPairs, [2]int{i, i + k})
		}
		plainGroups = append(plainGroups, g)
	}
	g := group{name: "random pairs"}
	for _, p := range randomPairs {
		g.pairs = append(g.pairs, len(plainPairs))
		plainPairs = append(plainPairs, [2]int{c.Arc + 1 + p[0], c.Arc + 1 + p[1]})
	}
	plainGroups = append(plainGroups, g)

	plainNet := shatterNet{x: plainX, rows: c.Arc + 1 + c.Batch, dim: d, width: c.Width, depth: c.MaxDepth, pairs: plainPairs}
	bnNet := shatterNet{x: random, rows: c.Batch, dim: d, width: c.Width, depth: c.MaxDepth, bn: true, pairs: randomPairs}
	plainParts, err := plainNet.run(ctx, c.Seed, c.Inits)
	if err != nil {
		return err
	}
	bnParts, err := bnNet.run(ctx, c.Seed^0x5bd1e995, c.Inits)
	if err != nil {
		return err
	}
	measure := func(name string, bn bool, parts []*pairStats, pairs []int, theta float64, co, corr []float64) ShatterGroup {
		total := sumStats(parts)
		sg := ShatterGroup{Name: name, BN: bn, Pairs: len(pairs), Theta: theta, TheoryCo: co, TheoryCorr: corr}
		for l := range c.MaxDepth {
			sg.CoActive = append(sg.CoActive, total.coActive(l, pairs))
			sg.Corr = append(sg.Corr, total.corr(l, pairs))
			var chunk []float64
			for _, p := range parts {
				if p.inits > 0 {
					chunk = append(chunk, p.corr(l, pairs))
				}
			}
			_, sd := meanSpread(chunk)
			sg.CorrSE = append(sg.CorrSE, sd/math.Sqrt(float64(len(chunk))))
			var imp float64
			for _, p := range pairs {
				imp += total.predicted(l, p)
			}
			sg.Implied = append(sg.Implied, imp/float64(len(pairs)))
		}
		return sg
	}
	// Theory per group: the recursion from each pair's input angle,
	// averaged over the group's pairs.
	for _, g := range plainGroups {
		co, corr := make([]float64, c.MaxDepth), make([]float64, c.MaxDepth)
		var theta float64
		for _, p := range g.pairs {
			pr := plainPairs[p]
			th := angle(plainX, pr[0], pr[1])
			theta += th / float64(len(g.pairs))
			tc, tr := reluTheory(th, c.MaxDepth)
			for l := range co {
				co[l] += tc[l] / float64(len(g.pairs))
				corr[l] += tr[l] / float64(len(g.pairs))
			}
		}
		res.Groups = append(res.Groups, measure(g.name, false, plainParts, g.pairs, theta, co, corr))
	}
	var bnPairs []int
	var theta float64
	for p, pr := range randomPairs {
		bnPairs = append(bnPairs, p)
		theta += angle(random, pr[0], pr[1]) / float64(len(randomPairs))
	}
	quarter, halves := make([]float64, c.MaxDepth), make([]float64, c.MaxDepth)
	for l := range quarter {
		quarter[l], halves[l] = 0.25, math.Pow(2, -float64(l+1))
	}
	bn := measure("random pairs, batch norm", true, bnParts, bnPairs, theta, quarter, halves)
	res.Groups = append(res.Groups, bn)
	res.Claims = c.shatterClaims(res.Groups)
	return c.report(r, res)
}

func sumStats(parts []*pairStats) *pairStats {
	total := newPairStats(len(parts[0].co), len(parts[0].co[0]))
	for _, p := range parts {
		total.add(p)
	}
	return total
}

// shatterClaims states issue #19's pass criteria for the measured groups
// (the last group is the batch-normalised one).
func (c ShatterConfig) shatterClaims(groups []ShatterGroup) []Claim {
	const src = "Balduzzi et al. 2017, Theorem 1"
	bn := groups[len(groups)-1]
	var claims []Claim
	// 1. With batch norm, ¼ co-active at every layer.
	worst, pass := 0.25, true
	for _, v := range bn.CoActive {
		if math.Abs(v-0.25) > math.Abs(worst-0.25) {
			worst = v
		}
		pass = pass && math.Abs(v-0.25) <= 0.02
	}
	claims = append(claims, Claim{Claim: fmt.Sprintf("with batch norm, the fraction of units co-active at two random inputs is ¼ at every layer 1…%d (measured: the layer farthest from ¼)", c.MaxDepth),
		Source: src + " (its assumption)", Measured: worst, Seeds: c.Inits, Criterion: "0.25 ± 0.02 at every layer", Pass: pass})
	// 2. With batch norm, correlation 2^−L within a factor 2 for L ≤ 8.
	lmax := min(8, c.MaxDepth)
	off := func(ratio float64) float64 { // how far from 1, in octaves
		if !(ratio > 0) {
			return math.Inf(1)
		}
		return math.Abs(math.Log2(ratio))
	}
	worst, pass, wl := 1.0, true, 1
	for l := range lmax {
		ratio := bn.Corr[l] * math.Pow(2, float64(l+1))
		if off(ratio) > off(worst) {
			worst, wl = ratio, l+1
		}
		pass = pass && ratio >= 0.5 && ratio <= 2
	}
	claims = append(claims, Claim{Claim: fmt.Sprintf("with batch norm, the correlation over initialisations of dy/du at two random inputs follows 2^−L for L ≤ %d (measured: the ratio to 2^−L farthest from 1, at L = %d)", lmax, wl),
		Source: src, Measured: worst, Spread: bn.CorrSE[wl-1] * math.Pow(2, float64(wl)), Seeds: c.Inits, Criterion: "between 0.5 and 2 at every L", Pass: pass})
	// 3. Without batch norm, co-activation rises with depth (random pairs
	// and the opposite pair, x = ±1).
	var checks []int
	for _, l := range []int{1, 2, 4, 8, 16, 32, 50} {
		if l <= c.MaxDepth {
			checks = append(checks, l)
		}
	}
	if checks[len(checks)-1] != c.MaxDepth {
		checks = append(checks, c.MaxDepth)
	}
	rise := math.Inf(1)
	for _, g := range groups[:len(groups)-1] {
		if g.Name != "random pairs" && g.Name != "opposite, θ = π (x = ±1)" {
			continue
		}
		for i := 1; i < len(checks); i++ {
			rise = math.Min(rise, g.CoActive[checks[i]-1]-g.CoActive[checks[i-1]-1])
		}
	}
	claims = append(claims, Claim{Claim: fmt.Sprintf("without batch norm, the co-active fraction at random and at opposite inputs rises with depth (measured: the smallest rise between layers %v)", checks),
		Source: "issue #19 (infinite-width ReLU recursion)", Measured: rise, Seeds: c.Inits, Criterion: "> 0", Pass: rise > 0})
	// 4. Without batch norm, neighbours follow the recursion within 0.1.
	dev := func(g ShatterGroup) (float64, float64) {
		w, se := 0.0, 0.0
		for l := range g.Corr {
			if e := math.Abs(g.Corr[l] - g.TheoryCorr[l]); e > w || math.IsNaN(e) {
				w, se = e, g.CorrSE[l]
			}
		}
		return w, se
	}
	nb := groups[0]
	w, se := dev(nb)
	claims = append(claims, Claim{Claim: fmt.Sprintf("without batch norm, the correlation of dy/du at neighbouring inputs (θ = π/%d) follows the infinite-width arc-cosine recursion Π(π−θ_l)/π for L ≤ %d (measured: largest |measured − theory|)", c.Arc, c.MaxDepth),
		Source: "issue #19; Cho & Saul 2009 kernel", Measured: w, Spread: se, Seeds: c.Inits, Criterion: "≤ 0.1", Pass: w <= 0.1})
	// 5. The same for every other group without batch norm (informative:
	// the recursion is for any angle).
	w, se = 0, 0
	for _, g := range groups[1 : len(groups)-1] {
		if e, s := dev(g); e > w || math.IsNaN(e) {
			w, se = e, s
		}
	}
	claims = append(claims, Claim{Claim: fmt.Sprintf("without batch norm, the recursion holds for pairs at every separation and for random pairs, L ≤ %d (measured: largest |measured − theory|)", c.MaxDepth),
		Source: "Cho & Saul 2009 kernel; Balduzzi et al. 2017, Theorem 1's mechanism", Measured: w, Spread: se, Seeds: c.Inits, Criterion: "≤ 0.1", Pass: w <= 0.1})
	// 6. The co-active fraction follows (π − θ_l)/(2π) without batch norm.
	w = 0
	for _, g := range groups[:len(groups)-1] {
		for l := range g.CoActive {
			if e := math.Abs(g.CoActive[l] - g.TheoryCo[l]); e > w || math.IsNaN(e) {
				w = e
			}
		}
	}
	claims = append(claims, Claim{Claim: fmt.Sprintf("without batch norm, the co-active fraction follows the recursion's (π − θ_l)/(2π) at every layer ≤ %d and separation (measured: largest deviation)", c.MaxDepth),
		Source: "arc-cosine recursion", Measured: w, Seeds: c.Inits, Criterion: "≤ 0.02", Pass: w <= 0.02})
	return claims
}

// report draws the statistics' figures and adds them to the summary.
func (c ShatterConfig) report(r *Report, res *ShatterResult) error {
	ls := seq(1, c.MaxDepth)
	var coLines, corrLines, logLines []Line
	for i, g := range res.Groups {
		coLines = append(coLines, Line{Label: g.Name, X: ls, Y: g.CoActive, Color: i},
			Line{X: ls, Y: g.TheoryCo, Color: i, Dashed: true})
		corrLines = append(corrLines, Line{Label: g.Name, X: ls, Y: g.Corr, Color: i},
			Line{X: ls, Y: g.TheoryCorr, Color: i, Dashed: true})
		if g.BN || g.Name == "random pairs" {
			logLines = append(logLines, Line{Label: g.Name, X: ls, Y: g.Corr, Color: i},
				Line{Label: g.Name + ": implied by patterns", X: ls, Y: g.Implied, Color: i, Dashed: true})
		}
	}
	two := make([]float64, len(ls))
	for l := range two {
		two[l] = math.Pow(2, -ls[l])
	}
	logLines = append(logLines, Line{Label: "2^−L", X: ls, Y: two, Color: 7, Dashed: true})
	if err := r.Figure("coactivation.png", 2, 460, 360,
		Panel{Title: "Fraction of units co-active at two inputs (dashed: theory)", XLabel: "layer", YLabel: "co-active fraction", Lines: coLines},
		Panel{Title: "Correlation over initialisations of dy/du (dashed: theory)", XLabel: "depth L", YLabel: "correlation", Lines: corrLines}); err != nil {
		return err
	}
	if err := r.Figure("correlation_depth.png", 1, 560, 400,
		Panel{Title: "Correlation of dy/du at random pairs (log scale)", XLabel: "depth L", YLabel: "correlation", LogY: true, Lines: logLines}); err != nil {
		return err
	}
	r.Printf("\n## Co-activation and gradient correlation over %d initialisations\n", c.Inits)
	r.Printf("Plain He-initialised ReLU networks without biases, width %d, depths 1 … %d (the depth-L network is the first L layers of one deep network with a fresh readout, integrated out exactly); input dimension %d; derivative dy/du along u = e_%d, orthogonal to every input. Without batch norm: %d+1 inputs on a half circle (t = kπ/%d) and %d random inputs; with batch norm (statistics of the %d random inputs, held fixed): the random inputs, in %d disjoint pairs. Seed %d.\n",
		c.Width, c.MaxDepth, c.Dim, c.Dim, c.Arc, c.Arc, c.Batch, c.Batch, c.Batch/2, c.Seed)
	r.Printf("| pairs | BN | pairs measured | input angle | co-active: layer 1, %d | theory | correlation: L = 1, 2, 8, %d | ± SE at L = %d | theory |\n|---|---|---|---|---|---|---|---|---|", c.MaxDepth, c.MaxDepth, c.MaxDepth)
	L := c.MaxDepth - 1
	at := func(v []float64, l int) float64 { return v[min(l, len(v)-1)] }
	for _, g := range res.Groups {
		r.Printf("| %s | %v | %d | %.3f | %.3f, %.3f | %.3f, %.3f | %.4f, %.4f, %.4f, %.4f | %.4f | %.4f, %.4f, %.4f, %.4f |", g.Name, g.BN, g.Pairs, g.Theta,
			g.CoActive[0], g.CoActive[L], g.TheoryCo[0], g.TheoryCo[L],
			at(g.Corr, 0), at(g.Corr, 1), at(g.Corr, 7), g.Corr[L], g.CorrSE[L],
			at(g.TheoryCorr, 0), at(g.TheoryCorr, 1), at(g.TheoryCorr, 7), g.TheoryCorr[L])
	}
	return nil
}
