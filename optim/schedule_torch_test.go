package optim_test

import (
	"fmt"
	"math"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/optim"
)

// scheduledOptimizer builds the optimizer of an optim_long.json case over
// ps (group 0: ps[0] at the base rate with weight decay; group 1: ps[1] at
// its own rate, without), with the case's schedule.
func scheduledOptimizer(t *testing.T, c fixture.Case, ps []*ag.Value) optim.Optimizer {
	t.Helper()
	f := func(k string) float64 { v, _ := c.Attrs[k].(float64); return v }
	var s optim.Schedule
	if n := f("cosine"); n != 0 {
		s = optim.Cosine{Total: int(n)}
	}
	if ms, ok := c.Attrs["milestones"].([]any); ok {
		m := optim.MultiStep{Gamma: f("gamma")}
		for _, v := range ms {
			m.Milestones = append(m.Milestones, int(v.(float64)))
		}
		s = m
	}
	if f("warmup") != 0 { // SequentialLR(LinearLR, then): then counts from the end of the warm-up
		s = optim.Warmup{Steps: c.Int("warmup"), StartFactor: f("start_factor"), Then: s, Offset: true}
	}
	groups := []optim.Group{{Params: ps[:1]}, {Params: ps[1:], LR: f("lr1"), NoWeightDecay: true}}
	opt := torchOptimizer(t, c, groups, s)
	return opt
}

// TestTorchGoldenScheduledTraining runs ten steps of SGD (Nesterov, weight
// decay), Adam and AdamW under schedules (warm-up then multi-step, cosine,
// warm-up then cosine) over two parameter groups with their own rates, as
// testdata/torch/gen_optim_long.py ran torch.optim with its lr_scheduler
// stepped after every step. It checks each group's rate before every step
// (float64 on both sides: 1e-9 relative), the parameters after every step,
// the state after step 5 under PyTorch's names (momentum_buffer, exp_avg,
// exp_avg_sq), and a resumption: a new optimizer given PyTorch's state
// after step 5 and SetSteps(5) continues along PyTorch's trajectory.
//
// Tolerance for tensors: 1e-5·(|want| + max|want|) (fixture.Compare), as in
// TestTorchGoldenOptimizers. Both sides update in float32; each step's
// update rounds a few times (≤ 2⁻²⁴ relative each) and PyTorch's and
// residual's orders of operations differ, so ten steps drift by at most
// about 10·4·2⁻²⁴ ≈ 2.4e-6 of the parameters' scale, below 1e-5; an
// update taken with the wrong step's rate (a schedule off by one step)
// moves a parameter by ~1e-3, a hundred times more.
func TestTorchGoldenScheduledTraining(t *testing.T) {
	f, err := fixture.Load("../testdata/torch/optim_long.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) != 3 {
		t.Fatalf("%d cases in optim_long.json, want 3", len(f.Cases))
	}
	for _, c := range f.Cases {
		t.Run(c.Op, func(t *testing.T) {
			resume := c.Int("resume")
			lrs := [2][]float64{c.Tensors["lr0"].Data, c.Tensors["lr1"].Data}
			run := func(opt optim.Optimizer, ps []*ag.Value, from, to int) {
				t.Helper()
				for s := from; s < to; s++ {
					for g := range 2 {
						if got, want := opt.LR(g), lrs[g][s]; math.Abs(got-want) > 1e-9*want {
							t.Errorf("step %d group %d: rate %g, PyTorch %g", s, g, got, want)
						}
					}
					for i, p := range ps {
						p.Grad = c.T(fmt.Sprintf("grad%d.%d", s, i))
					}
					opt.Step()
					for i, p := range ps {
						if err := fixture.Compare(p.Data, c.T(fmt.Sprintf("step%d.%d", s, i)), 1e-5); err != nil {
							t.Errorf("step %d param %d: %v", s, i, err)
						}
					}
				}
			}
			kinds := []string{"exp_avg", "exp_avg_sq"}
			if c.Op == "sgd" {
				kinds = []string{"momentum_buffer"}
			}
			names := []string{"w", "b"}

			ps := []*ag.Value{ag.Param(c.T("p0.0"), "w"), ag.Param(c.T("p0.1"), "b")}
			opt := scheduledOptimizer(t, c, ps)
			run(opt, ps, 0, resume)
			st := opt.State()
			for i, n := range names {
				for _, k := range kinds {
					if err := fixture.Compare(st[n+"."+k], c.T(fmt.Sprintf("state%d.%d.%s", resume, i, k)), 1e-5); err != nil {
						t.Errorf("state %s.%s after step %d: %v", n, k, resume, err)
					}
				}
			}
			run(opt, ps, resume, len(lrs[0]))

			// Resume from PyTorch's parameters and state after step 5.
			rs := []*ag.Value{ag.Param(c.T(fmt.Sprintf("step%d.0", resume-1)), "w"), ag.Param(c.T(fmt.Sprintf("step%d.1", resume-1)), "b")}
			ro := scheduledOptimizer(t, c, rs)
			rst := ro.State()
			for i, n := range names {
				for _, k := range kinds {
					copy(rst[n+"."+k].Data, c.T(fmt.Sprintf("state%d.%d.%s", resume, i, k)).Data)
				}
			}
			ro.SetSteps(resume)
			run(ro, rs, resume, len(lrs[0]))
		})
	}
}
