// Package optim implements PyTorch's SGD, Adam and AdamW update rules,
// parameter groups, and learning-rate schedules.
//
// Each optimizer follows torch.optim (1.13) step for step, so a run here and
// a run in PyTorch from the same weights and gradients give the same
// parameters (checked against PyTorch fixtures in the tests).
package optim

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// Group is a set of parameters sharing hyper-parameters. Zero fields take
// the optimizer's defaults, WeightDecay included (a zero WeightDecay is the
// optimizer's, not none); set NoWeightDecay to turn weight decay off for the
// group (e.g. for BN parameters and biases).
type Group struct {
	Params        []*autograd.Value
	LR            float64
	WeightDecay   float64
	NoWeightDecay bool
}

// SplitDecay puts parameters of rank ≤ 1 (biases, BN γ and β) into a group
// without weight decay and the rest into a group with the default, the
// usual recipe.
func SplitDecay(params []*autograd.Value) []Group {
	var decay, none []*autograd.Value
	for _, p := range params {
		if p.Data.Rank() <= 1 {
			none = append(none, p)
		} else {
			decay = append(decay, p)
		}
	}
	return []Group{{Params: decay}, {Params: none, NoWeightDecay: true}}
}

// Schedule gives the learning-rate factor (multiplying each group's LR) for
// a 0-based optimizer step.
type Schedule interface {
	Factor(step int) float64
}

// Optimizer updates parameters from their gradients.
type Optimizer interface {
	// Step applies one update with the current gradients (parameters whose
	// Grad is nil are skipped, as in PyTorch) and advances the step count.
	Step()
	// LR returns the learning rate the next Step uses for group g.
	LR(g int) float64
	// Steps returns how many times Step has run (plus what SetSteps set);
	// the schedule's factor for the next Step is taken at this count.
	Steps() int
	// State returns the optimizer's internal tensors (momentum buffers,
	// moments) named "<param>.<kind>", for checkpoints; SetSteps and the
	// returned tensors' contents restore it.
	State() map[string]*tensor.Tensor
	// SetSteps sets the step count (when resuming).
	SetSteps(n int)
}

type base struct {
	groups   []Group
	lr       float64
	wd       float64
	schedule Schedule
	steps    int
}

func (b *base) groupLR(g int) float64 {
	lr := b.groups[g].LR
	if lr == 0 {
		lr = b.lr
	}
	if b.schedule != nil {
		lr *= b.schedule.Factor(b.steps)
	}
	return lr
}

func (b *base) groupWD(g int) float64 {
	if b.groups[g].NoWeightDecay {
		return 0
	}
	if w := b.groups[g].WeightDecay; w != 0 {
		return w
	}
	return b.wd
}

func (b *base) LR(g int) float64 { return b.groupLR(g) }
func (b *base) Steps() int       { return b.steps }
func (b *base) SetSteps(n int)   { b.steps = n }

func checkGroups(groups []Group) error {
	seen := map[*autograd.Value]bool{}
	for gi, g := range groups {
		for _, p := range g.Params {
			if seen[p] {
				return fmt.Errorf("optim: parameter %q appears in more than one group (group %d)", p.Name, gi)
			}
			seen[p] = true
		}
	}
	return nil
}

func stateName(p *autograd.Value, i int, kind string) string {
	n := p.Name
	if n == "" {
		n = fmt.Sprintf("param%d", i)
	}
	return n + "." + kind
}

// SGDConfig are SGD's hyper-parameters (torch.optim.SGD).
type SGDConfig struct {
	LR, Momentum, Dampening, WeightDecay float64
	Nesterov                             bool
	Schedule                             Schedule
}

// SGD is stochastic gradient descent with momentum, dampening, Nesterov
// momentum and L2 weight decay, exactly as torch.optim.SGD:
// g ← ∇ + λp; b ← μb + (1−τ)g (b ← g on the first step); g ← g + μb
// (Nesterov) or b; p ← p − lr·g.
type SGD struct {
	base
	cfg SGDConfig
	buf map[*autograd.Value]*tensor.Tensor
}

// NewSGD returns SGD over the groups. It fails if a parameter is in more
// than one group, or if Nesterov is asked for without momentum or with
// dampening (as torch.optim.SGD refuses it). Momentum buffers are made on
// each parameter's first update.
func NewSGD(groups []Group, c SGDConfig) (*SGD, error) {
	if err := checkGroups(groups); err != nil {
		return nil, err
	}
	if c.Nesterov && (c.Momentum <= 0 || c.Dampening != 0) {
		return nil, fmt.Errorf("optim: Nesterov momentum needs momentum > 0 and zero dampening")
	}
	return &SGD{base: base{groups: groups, lr: c.LR, wd: c.WeightDecay, schedule: c.Schedule}, cfg: c, buf: map[*autograd.Value]*tensor.Tensor{}}, nil
}

// Step applies one SGD update.
func (o *SGD) Step() {
	mu, damp := float32(o.cfg.Momentum), float32(1-o.cfg.Dampening)
	for gi, g := range o.groups {
		lr, wd := float32(o.groupLR(gi)), float32(o.groupWD(gi))
		for _, p := range g.Params {
			if p.Grad == nil {
				continue
			}
			w, grad := p.Data.Data, p.Grad.Data
			var buf []float32
			first := false
			if mu != 0 {
				b := o.buf[p]
				if b == nil {
					b = tensor.New(p.Data.Shape...)
					o.buf[p] = b
					first = true
				}
				buf = b.Data
			}
			if mu != 0 && !first && !o.cfg.Nesterov {
				kernels.SGDMomentum(w, grad, buf, lr, wd, mu, damp)
				continue
			}
			for i := range w {
				d := grad[i]
				if wd != 0 {
					d += wd * w[i]
				}
				if mu != 0 {
					if first {
						buf[i] = d
					} else {
						buf[i] = mu*buf[i] + damp*d
					}
					if o.cfg.Nesterov {
						d += mu * buf[i]
					} else {
						d = buf[i]
					}
				}
				w[i] -= lr * d
			}
		}
	}
	o.steps++
}

// State returns the momentum buffers as "<param>.momentum_buffer". A
// parameter whose buffer does not exist yet gets one (zero), and it is
// marked as existing: restore it only with a step count above zero.
func (o *SGD) State() map[string]*tensor.Tensor {
	st := map[string]*tensor.Tensor{}
	if o.cfg.Momentum == 0 {
		return st
	}
	i := 0
	for _, g := range o.groups {
		for _, p := range g.Params {
			b := o.buf[p]
			if b == nil {
				b = tensor.New(p.Data.Shape...)
				o.buf[p] = b
			}
			st[stateName(p, i, "momentum_buffer")] = b
			i++
		}
	}
	return st
}

// AdamConfig are Adam's hyper-parameters (torch.optim.Adam / AdamW).
// Zero betas and eps take PyTorch's defaults (0.9, 0.999, 1e-8), unless
// ExplicitBetas says that the betas are as given.
type AdamConfig struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	Schedule                           Schedule
	// ExplicitBetas takes Beta1 and Beta2 as they are, 0 included, as
	// PyTorch does (0 ≤ β < 1): β1 = 0 keeps no moving average of the
	// gradient (an RMSprop-like update), β2 = 0 divides by the last
	// gradient's magnitude alone. The bias corrections 1 − β^t are then 1.
	ExplicitBetas bool
}

// Adam is torch.optim.Adam (L2 weight decay added to the gradient) or, with
// decoupled weight decay, torch.optim.AdamW (p ← p·(1 − lr·λ) before the
// Adam update).
type Adam struct {
	base
	cfg       AdamConfig
	decoupled bool
	m, v      map[*autograd.Value]*tensor.Tensor
	pstep     map[*autograd.Value]int
}

// NewAdam returns Adam (L2 weight decay added to the gradient) over the
// groups. Zero betas (unless c.ExplicitBetas) and Eps take PyTorch's
// defaults (0.9, 0.999, 1e-8); betas outside [0, 1) or a parameter in
// more than one group are errors.
func NewAdam(groups []Group, c AdamConfig) (*Adam, error) { return newAdam(groups, c, false) }

// NewAdamW returns AdamW (decoupled weight decay) over the groups. Note that
// PyTorch's AdamW defaults to weight decay 0.01; here the config says.
func NewAdamW(groups []Group, c AdamConfig) (*Adam, error) { return newAdam(groups, c, true) }

func newAdam(groups []Group, c AdamConfig, decoupled bool) (*Adam, error) {
	if err := checkGroups(groups); err != nil {
		return nil, err
	}
	if c.Beta1 == 0 && !c.ExplicitBetas {
		c.Beta1 = 0.9
	}
	if c.Beta2 == 0 && !c.ExplicitBetas {
		c.Beta2 = 0.999
	}
	if c.Eps == 0 {
		c.Eps = 1e-8
	}
	if !(c.Beta1 >= 0 && c.Beta1 < 1 && c.Beta2 >= 0 && c.Beta2 < 1) { // NaN too
		zero := "0 means the default; AdamConfig.ExplicitBetas takes it as 0"
		if c.ExplicitBetas {
			zero = "as given: AdamConfig.ExplicitBetas"
		}
		return nil, fmt.Errorf("optim: Adam betas (%g, %g) outside [0, 1) (%s)", c.Beta1, c.Beta2, zero)
	}
	return &Adam{base: base{groups: groups, lr: c.LR, wd: c.WeightDecay, schedule: c.Schedule}, cfg: c, decoupled: decoupled,
		m: map[*autograd.Value]*tensor.Tensor{}, v: map[*autograd.Value]*tensor.Tensor{}, pstep: map[*autograd.Value]int{}}, nil
}

// Step applies one Adam update as torch.optim.Adam (non-amsgrad, non-fused).
func (o *Adam) Step() {
	b1, b2, eps := o.cfg.Beta1, o.cfg.Beta2, o.cfg.Eps
	for gi, g := range o.groups {
		lr, wd := o.groupLR(gi), o.groupWD(gi)
		for _, p := range g.Params {
			if p.Grad == nil {
				continue
			}
			if o.m[p] == nil {
				o.m[p], o.v[p] = tensor.New(p.Data.Shape...), tensor.New(p.Data.Shape...)
			}
			o.pstep[p]++
			t := float64(o.pstep[p])
			bc1 := 1 - math.Pow(b1, t)
			bc2 := 1 - math.Pow(b2, t)
			stepSize := float32(lr / bc1)
			sqrtBC2 := float32(math.Sqrt(bc2))
			w, grad, m, v := p.Data.Data, p.Grad.Data, o.m[p].Data, o.v[p].Data
			fb1, fb2, fwd, feps := float32(b1), float32(b2), float32(wd), float32(eps)
			decay := float32(1 - lr*wd)
			for i := range w {
				d := grad[i]
				if wd != 0 {
					if o.decoupled {
						w[i] *= decay
					} else {
						d += fwd * w[i]
					}
				}
				m[i] = fb1*m[i] + (1-fb1)*d
				v[i] = fb2*v[i] + (1-fb2)*d*d
				denom := float32(math.Sqrt(float64(v[i])))/sqrtBC2 + feps
				w[i] -= stepSize * m[i] / denom
			}
		}
	}
	o.steps++
}

// State returns the moments as "<param>.exp_avg" and "<param>.exp_avg_sq"
// (PyTorch's names); every parameter's moments exist from the first step.
func (o *Adam) State() map[string]*tensor.Tensor {
	st := map[string]*tensor.Tensor{}
	i := 0
	for _, g := range o.groups {
		for _, p := range g.Params {
			if o.m[p] == nil {
				o.m[p], o.v[p] = tensor.New(p.Data.Shape...), tensor.New(p.Data.Shape...)
			}
			st[stateName(p, i, "exp_avg")] = o.m[p]
			st[stateName(p, i, "exp_avg_sq")] = o.v[p]
			i++
		}
	}
	return st
}

// SetSteps sets the step count and every parameter's own step (Adam's bias
// correction), for resuming.
func (o *Adam) SetSteps(n int) {
	o.steps = n
	for _, g := range o.groups {
		for _, p := range g.Params {
			o.pstep[p] = n
		}
	}
}

// MultiStep multiplies the rate by Gamma at each milestone step (He et al.
// 2015: ÷10 at 32k and 48k iterations). Milestones must be increasing.
type MultiStep struct {
	Milestones []int
	Gamma      float64
}

// Factor returns Gamma^(number of milestones ≤ step).
func (s MultiStep) Factor(step int) float64 {
	f := 1.0
	for _, m := range s.Milestones {
		if step >= m {
			f *= s.Gamma
		}
	}
	return f
}

// Cosine anneals the factor from 1 to MinFactor over Total steps
// (PyTorch's CosineAnnealingLR in closed form), staying at MinFactor after.
type Cosine struct {
	Total     int
	MinFactor float64
}

// Factor returns MinFactor + (1 − MinFactor)(1 + cos(π·step/Total))/2,
// and MinFactor from step Total on.
func (s Cosine) Factor(step int) float64 {
	if step >= s.Total {
		return s.MinFactor
	}
	return s.MinFactor + (1-s.MinFactor)*(1+math.Cos(math.Pi*float64(step)/float64(s.Total)))/2
}

// Warmup rises linearly from StartFactor to 1 over Steps steps, multiplied
// by Then's factor (1 if Then is nil). Then sees the step count from the
// start of training, or, with Offset, from the end of the warm-up (as
// PyTorch's SequentialLR).
type Warmup struct {
	Steps       int
	StartFactor float64
	Then        Schedule
	// Offset makes Then see step − Steps, i.e. start after the warm-up.
	Offset bool
}

// Factor returns the warm-up factor times Then's.
func (s Warmup) Factor(step int) float64 {
	f := 1.0
	if step < s.Steps {
		f = s.StartFactor + (1-s.StartFactor)*float64(step)/float64(s.Steps)
	}
	if s.Then != nil {
		st := step
		if s.Offset {
			st = max(step-s.Steps, 0)
		}
		f *= s.Then.Factor(st)
	}
	return f
}

// Constant keeps the factor at 1.
type Constant struct{}

// Factor returns 1 at every step.
func (Constant) Factor(int) float64 { return 1 }

// ParseSchedule reads a schedule from text: "constant", "multistep:M1,M2[:gamma]"
// (gamma 0.1 by default), "cosine:TOTAL[:minfactor]", optionally prefixed by
// "warmup:STEPS+" for a linear warm-up from 0.
func ParseSchedule(s string) (Schedule, error) {
	// Numbers are read whole (strconv, not Sscanf, which stops at the first
	// character it cannot use: "5abc" read as 5), and must be finite.
	count := func(f string) (int, bool) {
		n, err := strconv.Atoi(f)
		return n, err == nil
	}
	factor := func(f string) (float64, bool) {
		v, err := strconv.ParseFloat(f, 64)
		return v, err == nil && !math.IsNaN(v) && !math.IsInf(v, 0)
	}
	if rest, ok := strings.CutPrefix(s, "warmup:"); ok {
		n, tail, found := strings.Cut(rest, "+")
		steps, ok := count(n)
		if !ok || steps < 1 || !found || tail == "" {
			return nil, fmt.Errorf("optim: bad warm-up %q (want warmup:STEPS+SCHEDULE, e.g. warmup:500+cosine:10000)", s)
		}
		if strings.HasPrefix(tail, "warmup:") {
			// The second warm-up would start again from a rate of 0 where
			// the first ends.
			return nil, fmt.Errorf("optim: bad warm-up %q: two warm-ups, give one", s)
		}
		then, err := ParseSchedule(tail)
		if err != nil {
			return nil, err
		}
		return Warmup{Steps: steps, Then: then, Offset: true}, nil
	}
	parts := strings.Split(s, ":")
	switch parts[0] {
	case "constant", "":
		if len(parts) > 1 {
			return nil, fmt.Errorf("optim: the constant schedule takes no parameters, got %q", s)
		}
		return Constant{}, nil
	case "multistep":
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("optim: bad multistep %q (want multistep:MILESTONES[:GAMMA], e.g. multistep:32000,48000)", s)
		}
		ms := MultiStep{Gamma: 0.1}
		for _, f := range strings.Split(parts[1], ",") {
			m, ok := count(f)
			if !ok || m < 1 || (len(ms.Milestones) > 0 && m <= ms.Milestones[len(ms.Milestones)-1]) {
				return nil, fmt.Errorf("optim: bad milestones %q (increasing positive integers)", parts[1])
			}
			ms.Milestones = append(ms.Milestones, m)
		}
		if len(parts) > 2 {
			g, ok := factor(parts[2])
			if !ok || g <= 0 {
				return nil, fmt.Errorf("optim: bad gamma %q (a finite factor > 0)", parts[2])
			}
			ms.Gamma = g
		}
		// The factor after the last milestone, as Factor computes it.
		if f := ms.Factor(ms.Milestones[len(ms.Milestones)-1]); math.IsInf(f, 0) {
			return nil, fmt.Errorf("optim: bad gamma %g: over %d milestones it multiplies the rate by more than a float64 holds", ms.Gamma, len(ms.Milestones))
		}
		return ms, nil
	case "cosine":
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("optim: bad cosine %q (want cosine:TOTAL[:MIN], e.g. cosine:10000)", s)
		}
		c := Cosine{}
		var ok bool
		if c.Total, ok = count(parts[1]); !ok || c.Total < 1 {
			return nil, fmt.Errorf("optim: bad cosine total %q", parts[1])
		}
		if len(parts) > 2 {
			if c.MinFactor, ok = factor(parts[2]); !ok || c.MinFactor < 0 || c.MinFactor > 1 {
				return nil, fmt.Errorf("optim: bad cosine minimum %q (a factor in [0, 1])", parts[2])
			}
		}
		return c, nil
	}
	return nil, fmt.Errorf("optim: unknown schedule %q (constant, multistep:..., cosine:..., warmup:N+...)", s)
}
