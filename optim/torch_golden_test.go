package optim_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/optim"
)

// Three steps of each optimizer from the same parameters and gradients as
// PyTorch, with two parameter groups (the second without weight decay);
// parameters compared after every step at |got − want| ≤ 1e-5·(|want| +
// max|want|) (fixture.Compare). Adam and AdamW run with β1 = 0 and with
// β2 = 0 too (AdamConfig.ExplicitBetas; a zero was the default).
func TestTorchGoldenOptimizers(t *testing.T) {
	f, err := fixture.Load("../testdata/torch/optim.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range f.Cases {
		if c.Op != "sgd" && c.Op != "adam" && c.Op != "adamw" {
			continue
		}
		n++
		ps := []*ag.Value{ag.Param(c.T("p0.0"), "w"), ag.Param(c.T("p0.1"), "b")}
		groups := []optim.Group{{Params: ps[:1]}, {Params: ps[1:], NoWeightDecay: true}}
		opt := torchOptimizer(t, c, groups, nil)
		for s := 0; s < 3; s++ {
			for i, p := range ps {
				p.Grad = c.T(fmt.Sprintf("grad%d.%d", s, i))
			}
			opt.Step()
			for i, p := range ps {
				if err := fixture.Compare(p.Data, c.T(fmt.Sprintf("step%d.%d", s, i)), 1e-5); err != nil {
					t.Errorf("%s %v step %d param %d: %v", c.Op, c.Attrs, s, i, err)
				}
			}
		}
	}
	if n < 10 { // the last three with a zero beta
		t.Errorf("only %d optimizer cases in the fixture", n)
	}
}

// The schedules give PyTorch's learning rates at every step (base 0.1).
func TestTorchGoldenSchedules(t *testing.T) {
	f, err := fixture.Load("../testdata/torch/optim.json")
	if err != nil {
		t.Fatal(err)
	}
	scheds := map[string]optim.Schedule{
		"schedule_multistep":     optim.MultiStep{Milestones: []int{3, 7}, Gamma: 0.1},
		"schedule_cosine":        optim.Cosine{Total: 10, MinFactor: 0.01},
		"schedule_linear_warmup": optim.Warmup{Steps: 4, StartFactor: 0.25},
	}
	for _, c := range f.Cases {
		s, ok := scheds[c.Op]
		if !ok {
			continue
		}
		delete(scheds, c.Op)
		want := c.Tensors["lr"].Data
		for step, w := range want {
			// Cosine beyond Total: PyTorch's recursive form keeps cycling;
			// residual holds the minimum, so compare within the period.
			if c.Op == "schedule_cosine" && step > 10 {
				continue
			}
			if got := 0.1 * s.Factor(step); math.Abs(got-w) > 1e-9 {
				t.Errorf("%s step %d: lr %g, PyTorch %g", c.Op, step, got, w)
			}
		}
	}
	for k := range scheds {
		t.Errorf("fixture lacks %s", k)
	}
}

func TestParseSchedule(t *testing.T) {
	for _, tc := range []struct {
		in   string
		step int
		want float64
	}{
		{"multistep:32000,48000", 40000, 0.1},
		{"multistep:32000,48000", 50000, 0.01},
		{"multistep:10:0.5", 10, 0.5},
		{"cosine:100", 50, 0.5},
		{"warmup:10+cosine:100", 5, 0.5},
		{"warmup:10+cosine:100", 60, 0.5},
		{"constant", 7, 1},
	} {
		s, err := optim.ParseSchedule(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := s.Factor(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s at %d: %g, want %g", tc.in, tc.step, got, tc.want)
		}
	}
	for _, bad := range []string{"multistep", "multistep:5,3", "cosine:x", "warmup:0+constant", "step:3", "warmup:5",
		// once accepted: Sscanf read a prefix, and NaN, negative or extra fields passed
		"::", "constant:junk", "multistep:5:NaN", "multistep:-5", "multistep:5abc,7", "multistep:5:0.1:3", "cosine:10:NaN", "cosine:10:-3", "cosine:10x", "warmup:5x+constant", "warmup:5+",
		// once accepted: a factor of +Inf after the second milestone
		"multistep:1,2:1e300",
		// once accepted: the second warm-up started from 0 again
		"warmup:5+warmup:3+constant"} {
		if _, err := optim.ParseSchedule(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// Adam refuses betas outside [0, 1), NaN included (it passed the range
// check), saying how a 0 is read; 0 is the default unless ExplicitBetas.
func TestAdamBetas(t *testing.T) {
	groups := []optim.Group{{Params: []*ag.Value{ag.Param(nil, "p")}}}
	for _, c := range []optim.AdamConfig{
		{Beta1: -0.1}, {Beta1: 1}, {Beta2: 1.5}, {Beta1: math.NaN()}, {Beta2: math.NaN(), ExplicitBetas: true}, {Beta1: 1, ExplicitBetas: true},
	} {
		if _, err := optim.NewAdam(groups, c); err == nil || !strings.Contains(err.Error(), "outside [0, 1)") {
			t.Errorf("betas (%g, %g), explicit %v: %v", c.Beta1, c.Beta2, c.ExplicitBetas, err)
		}
	}
	for _, c := range []optim.AdamConfig{{}, {ExplicitBetas: true}, {Beta1: 0.5, Beta2: 0.9}} {
		if _, err := optim.NewAdam(groups, c); err != nil {
			t.Errorf("betas (%g, %g), explicit %v: %v", c.Beta1, c.Beta2, c.ExplicitBetas, err)
		}
	}
}

func TestGroupsRejectDuplicates(t *testing.T) {
	p := ag.Param(nil, "p")
	if _, err := optim.NewSGD([]optim.Group{{Params: []*ag.Value{p}}, {Params: []*ag.Value{p}}}, optim.SGDConfig{LR: 0.1}); err == nil {
		t.Error("a parameter in two groups was accepted")
	}
}

// torchOptimizer returns the optimizer a fixture case of torch.optim names
// (Op "sgd", "adam" or "adamw"; its hyper-parameters in Attrs, absent ones
// 0, the defaults), over groups, with schedule s (nil: constant).
func torchOptimizer(t *testing.T, c fixture.Case, groups []optim.Group, s optim.Schedule) optim.Optimizer {
	t.Helper()
	f := func(k string) float64 { v, _ := c.Attrs[k].(float64); return v }
	var opt optim.Optimizer
	var err error
	switch c.Op {
	case "sgd":
		opt, err = optim.NewSGD(groups, optim.SGDConfig{LR: f("lr"), Momentum: f("momentum"), Dampening: f("dampening"), WeightDecay: f("weight_decay"), Nesterov: c.Bool("nesterov"), Schedule: s})
	default:
		cfg := optim.AdamConfig{LR: f("lr"), WeightDecay: f("weight_decay"), Eps: f("eps"), Schedule: s}
		if b, ok := c.Attrs["betas"].([]any); ok {
			cfg.Beta1, cfg.Beta2, cfg.ExplicitBetas = b[0].(float64), b[1].(float64), true
		}
		if c.Op == "adam" {
			opt, err = optim.NewAdam(groups, cfg)
		} else {
			opt, err = optim.NewAdamW(groups, cfg)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return opt
}
