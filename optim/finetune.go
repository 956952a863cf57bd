package optim

import (
	"fmt"
	"math"

	"github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/tensor"
)

// ClipGradNorm scales the gradients of params so that their joint L2 norm
// is at most maxNorm, as PyTorch's clip_grad_norm_: every gradient is
// multiplied by maxNorm/(norm + 1e-6) when that is below 1. It returns the
// norm before clipping (NaN or +Inf when a gradient holds one, and then
// leaves the gradients as they are, for the caller's NaN guard). Parameters
// without a gradient are skipped.
func ClipGradNorm(params []*autograd.Value, maxNorm float64) float64 {
	sq := 0.0
	for _, p := range params {
		if p.Grad == nil {
			continue
		}
		for _, v := range p.Grad.Data {
			sq += float64(v) * float64(v)
		}
	}
	norm := math.Sqrt(sq)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	if c := maxNorm / (norm + 1e-6); c < 1 {
		for _, p := range params {
			if p.Grad != nil {
				for i := range p.Grad.Data {
					p.Grad.Data[i] = float32(float64(p.Grad.Data[i]) * c)
				}
			}
		}
	}
	return norm
}

// EMA keeps an exponential moving average of a model's tensors — its
// parameters and its buffers such as batch norms' running statistics, as
// timm's ModelEmaV2 — for evaluation with weights that average over the
// last ~1/(1−Decay) steps: after each optimizer step, Update sets
// avg ← Decay·avg + (1−Decay)·value. Averages start as copies of the
// tensors.
type EMA struct {
	Decay float64
	src   []*tensor.Tensor
	avg   []*tensor.Tensor
}

// NewEMA returns the moving average of tensors (e.g. every entry of
// nn.StateDict) with the given decay in [0, 1).
func NewEMA(tensors []*tensor.Tensor, decay float64) (*EMA, error) {
	if !(decay >= 0 && decay < 1) {
		return nil, fmt.Errorf("optim: EMA decay %g outside [0, 1)", decay)
	}
	e := &EMA{Decay: decay, src: tensors}
	for _, t := range tensors {
		e.avg = append(e.avg, t.Clone())
	}
	return e, nil
}

// Update moves the averages towards the tensors' current values.
func (e *EMA) Update() {
	for i, t := range e.src {
		a := e.avg[i].Data
		for j, v := range t.Data {
			a[j] = float32(e.Decay*float64(a[j]) + (1-e.Decay)*float64(v))
		}
	}
}

// Averages returns the averaged tensors, in the order given to NewEMA:
// copy them into a model of the same architecture to evaluate or save the
// averaged weights, or fill them from a checkpoint to resume.
func (e *EMA) Averages() []*tensor.Tensor { return e.avg }
