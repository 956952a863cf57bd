package train

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/optim"
)

// ScheduleKind names the shape of a learning-rate schedule.
type ScheduleKind string

// The schedules a run can follow.
const (
	// ScheduleConstant keeps the rate (the zero Schedule's kind, "").
	ScheduleConstant ScheduleKind = "constant"
	// ScheduleCosine anneals the rate to zero over the run (after the
	// warm-up, if any).
	ScheduleCosine ScheduleKind = "cosine"
	// ScheduleHe divides the rate by 10 at 50% and 75% of the run (He et
	// al. 2015's 32k and 48k of 64k iterations).
	ScheduleHe ScheduleKind = "he"
	// ScheduleMultiStep multiplies the rate by Gamma at each of
	// Milestones (in epochs).
	ScheduleMultiStep ScheduleKind = "multistep"
)

// Schedule is a run's learning-rate schedule in terms of epochs; the
// trainer turns it into an optim.Schedule over steps once it knows how
// many steps an epoch has, and takes it at every batch, a step skipped
// included (batchSchedule).
type Schedule struct {
	Kind ScheduleKind `json:"kind,omitempty"`
	// Milestones are the epochs (counted from the start of training,
	// fractions allowed) at which ScheduleMultiStep multiplies the rate by
	// Gamma; they must increase.
	Milestones []float64 `json:"milestones,omitempty"`
	// Gamma is ScheduleMultiStep's factor (0: 0.1).
	Gamma float64 `json:"gamma,omitempty"`
	// WarmupEpochs is how long the rate rises linearly from 0 at the
	// start of the run. A cosine then spans the rest of the run (as
	// PyTorch's SequentialLR of LinearLR and CosineAnnealingLR); epoch
	// milestones (multistep, he) stay where they are in the run, and one
	// inside the warm-up multiplies the rising rate from its step on (as
	// ChainedScheduler of LinearLR and MultiStepLR). A Steps schedule
	// starts after the warm-up (SequentialLR): its steps count from the
	// warm-up's end, and it may not hold a warm-up of its own.
	WarmupEpochs float64 `json:"warmup_epochs,omitempty"`
	// Steps, when set, is an optim.ParseSchedule spec counted in steps
	// (multistep:S1,S2[:gamma], cosine:STEPS, warmup:N+...) used instead
	// of Kind.
	Steps string `json:"steps,omitempty"`
}

// ParseSchedule reads the command line's form of a schedule: a kind
// (cosine, he, constant), or an optim.ParseSchedule spec counted in steps
// (multistep:S1,S2[:gamma], cosine:STEPS, warmup:N+...), kept in Steps.
func ParseSchedule(s string) (Schedule, error) {
	switch k := ScheduleKind(s); k {
	case ScheduleCosine, ScheduleHe, ScheduleConstant:
		return Schedule{Kind: k}, nil
	}
	if _, err := optim.ParseSchedule(s); err != nil {
		return Schedule{}, fmt.Errorf("train: schedule %q: %w; or cosine, he, constant over the run's epochs, with --warmup-epochs (Schedule.WarmupEpochs) for a warm-up", s, err)
	}
	return Schedule{Steps: s}, nil
}

// UnmarshalJSON reads a schedule object, or the spec string that
// checkpoints written before Schedule was typed record.
func (s *Schedule) UnmarshalJSON(b []byte) error {
	var spec string
	if json.Unmarshal(b, &spec) == nil {
		p, err := ParseSchedule(spec)
		if err != nil {
			return err
		}
		*s = p
		return nil
	}
	type plain Schedule
	return json.Unmarshal(b, (*plain)(s))
}

// String is the schedule in words, for logs.
func (s Schedule) String() string {
	var b strings.Builder
	switch {
	case s.Steps != "":
		b.WriteString(s.Steps)
	case s.Kind == "":
		b.WriteString(string(ScheduleConstant))
	case s.Kind == ScheduleMultiStep:
		ms := make([]string, len(s.Milestones))
		for i, m := range s.Milestones {
			ms[i] = strconv.FormatFloat(m, 'g', -1, 64)
		}
		fmt.Fprintf(&b, "multistep at epochs %s ×%g", strings.Join(ms, ","), s.gamma())
	default:
		b.WriteString(string(s.Kind))
	}
	if s.WarmupEpochs > 0 {
		fmt.Fprintf(&b, " after %g warm-up epochs", s.WarmupEpochs)
	}
	return b.String()
}

func (s Schedule) gamma() float64 {
	if s.Gamma == 0 {
		return 0.1
	}
	return s.Gamma
}

// validate checks the schedule against a run of the given epochs.
func (s Schedule) validate(epochs int) error {
	if s.Steps != "" {
		if _, err := optim.ParseSchedule(s.Steps); err != nil {
			return fmt.Errorf("train: schedule: %w", err)
		}
	} else {
		switch s.Kind {
		case "", ScheduleConstant, ScheduleCosine, ScheduleHe:
			if len(s.Milestones) > 0 {
				return fmt.Errorf("train: schedule %s takes no milestones", s.Kind)
			}
		case ScheduleMultiStep:
			if len(s.Milestones) == 0 {
				return fmt.Errorf("train: multistep schedule without milestones")
			}
			for i, m := range s.Milestones {
				if !(m > 0) || math.IsInf(m, 0) || (i > 0 && m <= s.Milestones[i-1]) {
					return fmt.Errorf("train: schedule milestones %v must be increasing epochs > 0", s.Milestones)
				}
			}
			if !(s.Gamma >= 0) || math.IsInf(s.Gamma, 0) {
				return fmt.Errorf("train: schedule gamma %g must be ≥ 0", s.Gamma)
			}
			// The factor after the last milestone: +Inf made every weight NaN.
			if math.IsInf(math.Pow(s.gamma(), float64(len(s.Milestones))), 0) {
				return fmt.Errorf("train: schedule gamma %g: over %d milestones it multiplies the rate by more than a float64 holds", s.Gamma, len(s.Milestones))
			}
		default:
			return fmt.Errorf("train: unknown schedule %q (cosine, he, multistep, constant)", s.Kind)
		}
	}
	if !(s.WarmupEpochs >= 0) || s.WarmupEpochs >= float64(epochs) {
		return fmt.Errorf("train: %g warm-up epochs for a run of %d epochs (want 0 ≤ warm-up < epochs)", s.WarmupEpochs, epochs)
	}
	if s.WarmupEpochs > 0 && strings.HasPrefix(s.Steps, "warmup:") {
		// The schedule's warm-up would start after this one, at a rate of
		// 0 again.
		return fmt.Errorf("train: two warm-ups: the schedule %q has its own and --warmup-epochs (Schedule.WarmupEpochs) adds %g epochs; give one", s.Steps, s.WarmupEpochs)
	}
	return nil
}

// resolve returns the schedule over steps for a run of epochs epochs of
// stepsPerEpoch steps.
func (s Schedule) resolve(stepsPerEpoch, epochs int) (optim.Schedule, error) {
	total := stepsPerEpoch * epochs
	steps := func(e float64) int { return int(e*float64(stepsPerEpoch) + 1e-9) }
	warm := steps(s.WarmupEpochs)
	var inner optim.Schedule
	offset := true // the inner schedule counts from the warm-up's end (SequentialLR)
	if s.Steps != "" {
		p, err := optim.ParseSchedule(s.Steps)
		if err != nil {
			return nil, fmt.Errorf("train: schedule: %w", err)
		}
		inner = p
	} else {
		switch s.Kind {
		case "", ScheduleConstant:
			inner = optim.Constant{}
		case ScheduleCosine:
			inner = optim.Cosine{Total: max(total-warm, 1)} // over the rest of the run
		case ScheduleHe:
			inner = optim.MultiStep{Milestones: []int{total / 2, total * 3 / 4}, Gamma: 0.1}
		case ScheduleMultiStep:
			ms := optim.MultiStep{Gamma: s.gamma()}
			for _, m := range s.Milestones {
				ms.Milestones = append(ms.Milestones, steps(m))
			}
			inner = ms
		default:
			return nil, fmt.Errorf("train: unknown schedule %q (cosine, he, multistep, constant)", s.Kind)
		}
		// Milestones in epochs count from the start of the run, a
		// warm-up or not: one inside the warm-up acts at its step there
		// (the warm-up's factor times the schedule's, as PyTorch's
		// ChainedScheduler of LinearLR and MultiStepLR).
		offset = s.Kind == ScheduleCosine
	}
	if warm < 1 {
		return inner, nil
	}
	return optim.Warmup{Steps: warm, Then: inner, Offset: offset}, nil
}

// batchSchedule takes a schedule at the run's batches rather than at the
// optimizer's steps: a step skipped (a batch of which no file could be
// read) advances it as a step taken does, as PyTorch's loop calls
// scheduler.step() every iteration whether or not GradScaler skipped
// optimizer.step(). The optimizer's own count (optim.Optimizer.Steps,
// Adam's bias correction, Position.Step) is of the updates applied;
// *skipped is the difference.
type batchSchedule struct {
	s       optim.Schedule
	skipped *int
}

// Factor returns the schedule's factor at the batch after step updates
// and the steps skipped so far.
func (b batchSchedule) Factor(step int) float64 { return b.s.Factor(step + *b.skipped) }

// setSteps restores the optimizer's count of updates, step, at the
// position r.epoch, r.batch (when resuming): each batch before it was a
// step, taken or skipped, so the rest were skipped.
func (r *run) setSteps(step int) {
	r.opt.SetSteps(step)
	r.skippedSteps = r.epoch*r.stepsPerEpoch + r.batch - step
}
