package optim_test

import (
	"math"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensor"
)

// TestTorchGoldenFineTune compares ClipGradNorm with PyTorch's
// clip_grad_norm_ (a case that clips and one that does not) and warm-up
// schedules with LinearLR + CosineAnnealingLR / MultiStepLR chained by
// SequentialLR, from testdata/torch/gen_finetune.py. Both sides compute
// in float32 (gradients) or float64 (rates): 1e-6 relative.
func TestTorchGoldenFineTune(t *testing.T) {
	f, err := fixture.Load("../testdata/torch/finetune.json")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, c := range f.Cases {
		seen[c.Op]++
		switch c.Op {
		case "clip_grad_norm":
			p1, p2 := ag.Param(tensor.New(3, 4), "p1"), ag.Param(tensor.New(5), "p2")
			p1.Grad, p2.Grad = c.T("g1"), c.T("g2")
			norm := optim.ClipGradNorm([]*ag.Value{p1, p2}, c.Float("max_norm"))
			if want := float64(c.T("norm").Data[0]); math.Abs(norm-want) > 1e-6*want {
				t.Errorf("max_norm %g: norm %g, PyTorch %g", c.Float("max_norm"), norm, want)
			}
			for _, g := range []struct {
				got, want *tensor.Tensor
			}{{p1.Grad, c.T("out1")}, {p2.Grad, c.T("out2")}} {
				if err := fixture.Compare(g.got, g.want, 1e-6); err != nil {
					t.Errorf("max_norm %g: %v", c.Float("max_norm"), err)
				}
			}
		case "warmup_cosine", "warmup_multistep":
			var then optim.Schedule = optim.Cosine{Total: 15}
			if c.Op == "warmup_multistep" {
				then = optim.MultiStep{Milestones: []int{6, 11}, Gamma: 0.1}
			}
			s := optim.Warmup{Steps: c.Int("warmup"), StartFactor: c.Float("start_factor"), Then: then, Offset: true}
			for step, want := range c.T("lr").Data {
				if got := 0.1 * s.Factor(step); math.Abs(got-float64(want)) > 1e-6*float64(want) {
					t.Errorf("%s step %d: lr %g, PyTorch %g", c.Op, step, got, want)
				}
			}
		}
	}
	for _, op := range []string{"clip_grad_norm", "warmup_cosine", "warmup_multistep"} {
		if seen[op] == 0 {
			t.Errorf("no %s case in the fixture", op)
		}
	}
}

// TestClipGradNormLeavesNaN checks that a NaN gradient is reported, not
// spread over every other gradient by the scaling.
func TestClipGradNormLeavesNaN(t *testing.T) {
	p, q := ag.Param(tensor.New(2), "p"), ag.Param(tensor.New(2), "q")
	p.Grad, q.Grad = tensor.MustFromData([]float32{float32(math.NaN()), 1}, 2), tensor.MustFromData([]float32{3, 4}, 2)
	if n := optim.ClipGradNorm([]*ag.Value{p, q}, 1); !math.IsNaN(n) || q.Grad.Data[0] != 3 {
		t.Errorf("norm %g, q's gradient %v: want NaN and q untouched", n, q.Grad.Data)
	}
}

// TestEMA checks the moving average against its recurrence in float64
// over a few updates, and that the averages start as copies.
func TestEMA(t *testing.T) {
	w := tensor.MustFromData([]float32{1, -2}, 2)
	e, err := optim.NewEMA([]*tensor.Tensor{w}, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, -2}
	for step := range 5 {
		w.Data[0], w.Data[1] = float32(step), float32(-step*step)
		e.Update()
		for i := range want {
			want[i] = 0.9*want[i] + 0.1*float64(w.Data[i])
		}
	}
	for i, v := range e.Averages()[0].Data {
		if math.Abs(float64(v)-want[i]) > 1e-6*math.Max(1, math.Abs(want[i])) {
			t.Errorf("average %d: %g, want %g", i, v, want[i])
		}
	}
	if _, err := optim.NewEMA(nil, 1); err == nil {
		t.Error("decay 1 accepted")
	}
}
