package train

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/residual-nn/residual/optim"
)

// The typed schedules resolve to the optim schedules their step-counted
// specs describe, factor for factor over the whole run: a cosine after a
// warm-up of 1.5 epochs of 10 steps is "warmup:15+cosine:45" for 6
// epochs; he is ÷10 at 50% and 75%; multistep milestones in epochs keep
// their place in the run after a warm-up.
func TestScheduleResolves(t *testing.T) {
	const spe, epochs = 10, 6
	for _, c := range []struct {
		s    Schedule
		want string
	}{
		{Schedule{Kind: ScheduleCosine}, "cosine:60"},
		{Schedule{Kind: ScheduleCosine, WarmupEpochs: 1.5}, "warmup:15+cosine:45"},
		{Schedule{Kind: ScheduleHe}, "multistep:30,45"},
		{Schedule{Kind: ScheduleHe, WarmupEpochs: 1}, "warmup:10+multistep:20,35"},
		{Schedule{Kind: ScheduleMultiStep, Milestones: []float64{2, 4.5}, Gamma: 0.5}, "multistep:20,45:0.5"},
		{Schedule{Kind: ScheduleMultiStep, Milestones: []float64{2}, WarmupEpochs: 0.5}, "warmup:5+multistep:15"},
		{Schedule{}, "constant"},
		{Schedule{Kind: ScheduleConstant, WarmupEpochs: 2}, "warmup:20+constant"},
		{Schedule{Steps: "multistep:10"}, "multistep:10"},
	} {
		got, err := c.s.resolve(spe, epochs)
		if err != nil {
			t.Fatalf("%v: %v", c.s, err)
		}
		want, err := optim.ParseSchedule(c.want)
		if err != nil {
			t.Fatal(err)
		}
		for step := 0; step <= spe*epochs; step++ {
			if g, w := got.Factor(step), want.Factor(step); g != w {
				t.Errorf("%v at step %d: factor %g, %s gives %g", c.s, step, g, c.want, w)
				break
			}
		}
	}
}

// An epoch milestone inside the warm-up acts at its own step, on the
// rising rate (PyTorch's ChainedScheduler of LinearLR and MultiStepLR):
// multistep at epochs 1 and 7 (×0.5) after 2 warm-up epochs of 4 steps.
// It acted from step 0 (the milestone, counted from the warm-up's end,
// became 0): 0.0625 at step 1 where 0.125 is due.
func TestScheduleMilestoneInWarmup(t *testing.T) {
	s := Schedule{Kind: ScheduleMultiStep, Milestones: []float64{1, 7}, Gamma: 0.5, WarmupEpochs: 2}
	got, err := s.resolve(4, 8)
	if err != nil {
		t.Fatal(err)
	}
	for step, want := range map[int]float64{0: 0, 1: 0.125, 3: 0.375, 4: 0.25, 7: 0.4375, 8: 0.5, 27: 0.5, 28: 0.25, 31: 0.25} {
		if g := got.Factor(step); math.Abs(g-want) > 1e-15 {
			t.Errorf("step %d: factor %g, want %g", step, g, want)
		}
	}
	// he over 4 epochs of 4 steps after 3 warm-up epochs: ÷10 at step 8,
	// ÷100 at step 12, on the rising rate (step 7: 7/12).
	he := Schedule{Kind: ScheduleHe, WarmupEpochs: 3}
	if got, err = he.resolve(4, 4); err != nil {
		t.Fatal(err)
	}
	for step, want := range map[int]float64{7: 7.0 / 12, 8: 8.0 / 12 / 10, 11: 11.0 / 12 / 10, 12: 0.01, 15: 0.01} {
		if g := got.Factor(step); math.Abs(g-want) > 1e-15 {
			t.Errorf("he, step %d: factor %g, want %g", step, g, want)
		}
	}
}

// Bad schedules are refused before any work, naming the problem.
func TestScheduleValidate(t *testing.T) {
	for _, c := range []struct {
		s    Schedule
		want string
	}{
		{Schedule{Kind: "linear"}, "unknown schedule"},
		{Schedule{Kind: ScheduleMultiStep}, "without milestones"},
		{Schedule{Kind: ScheduleMultiStep, Milestones: []float64{3, 2}}, "increasing"},
		{Schedule{Kind: ScheduleCosine, Milestones: []float64{1}}, "no milestones"},
		{Schedule{Kind: ScheduleCosine, WarmupEpochs: 6}, "warm-up"},
		{Schedule{Kind: ScheduleCosine, WarmupEpochs: -1}, "warm-up"},
		{Schedule{Steps: "multistep:x"}, "milestones"},
		// A schedule with its own warm-up and WarmupEpochs: the second
		// started at 0 again after the first (a rate of 0 for both).
		{Schedule{Steps: "warmup:4+cosine:36", WarmupEpochs: 2}, "two warm-ups"},
		// A factor of +Inf after the second milestone.
		{Schedule{Kind: ScheduleMultiStep, Milestones: []float64{1, 2}, Gamma: 1e300}, "more than a float64"},
	} {
		if err := c.s.validate(6); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one about %q", c.s, err, c.want)
		}
	}
	if _, err := ParseSchedule("cosine:abc"); err == nil {
		t.Error("ParseSchedule accepted cosine:abc")
	}
}

// A config recorded before schedules were typed (a spec string) still
// reads, and a typed one round-trips through JSON.
func TestScheduleJSON(t *testing.T) {
	var old struct {
		Schedule Schedule `json:"schedule"`
	}
	if err := json.Unmarshal([]byte(`{"schedule":"he"}`), &old); err != nil || old.Schedule.Kind != ScheduleHe {
		t.Errorf("old string form: %+v, %v", old.Schedule, err)
	}
	if err := json.Unmarshal([]byte(`{"schedule":"warmup:5+cosine:10"}`), &old); err != nil || old.Schedule.Steps != "warmup:5+cosine:10" {
		t.Errorf("old step spec: %+v, %v", old.Schedule, err)
	}
	s := Schedule{Kind: ScheduleMultiStep, Milestones: []float64{1, 2.5}, Gamma: 0.2, WarmupEpochs: 0.5}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Schedule
	if err := json.Unmarshal(b, &back); err != nil || back.String() != s.String() || back.WarmupEpochs != 0.5 || len(back.Milestones) != 2 {
		t.Errorf("%s read back as %+v (%v)", b, back, err)
	}
}

// An epoch's metrics carry the learning rate its last step took, not the
// next epoch's: He's schedule divides by 10 at steps 6 and 9 of 12 (two
// epochs of 6), so epoch 1 trains at 0.05 throughout and ends at it, and
// epoch 2 ends at 0.0005. The next step's rate recorded 0.005 for epoch 1.
func TestMetricsLRIsTheEpochsLastStep(t *testing.T) {
	c := tiny(t.TempDir())
	c.Schedule = Schedule{Kind: ScheduleHe}
	c.TensorBoard = false
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{c.LR, c.LR / 100} {
		if got := res.History[i].LR; math.Abs(got-want) > 1e-12 {
			t.Errorf("epoch %d: lr %g; want %g, its last step's", i+1, got, want)
		}
	}
}
