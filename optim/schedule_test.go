package optim_test

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/residual-nn/residual/optim"
)

// FuzzParseSchedule feeds arbitrary --schedule specs to ParseSchedule: a
// spec it accepts is a schedule of the documented shapes within their
// bounds, reads back the same from its plain spelling (specOf), and has a
// finite factor ≥ 0 at every step, the last included (a learning rate of
// +Inf or NaN stops the run at its first step with a loss that is not
// finite, far from the flag that caused it).
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"constant", "", "multistep:32000,48000", "multistep:10:0.5", "multistep:1,2,3:10", "multistep:+05,6",
		"cosine:100", "cosine:100:0.1", "cosine:1:1", "warmup:10+cosine:100", "warmup:5+multistep:3,7:0.5", "warmup:1+constant",
		"warmup:5+", "multistep:5abc,7", "cosine:10:NaN", "::", "constant:", "warmup:2+warmup:3+cosine:10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := optim.ParseSchedule(spec)
		if err != nil {
			if s != nil {
				t.Fatalf("ParseSchedule(%q) = %#v with the error %v", spec, s, err)
			}
			return
		}
		plain := specOf(t, spec, s)
		if again, err := optim.ParseSchedule(plain); err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("ParseSchedule(%q) = %#v, spelt %q, which reads back as %#v, %v", spec, s, plain, again, err)
		}
		for _, step := range []int{0, 1, 2, 1000, math.MaxInt / 2, math.MaxInt} {
			if x := s.Factor(step); !(x >= 0) || math.IsInf(x, 0) {
				t.Fatalf("ParseSchedule(%q) = %#v: factor %g at step %d", spec, s, x, step)
			}
		}
	})
}

// specOf spells s as ParseSchedule reads it, failing t where s is no shape
// or holds a value ParseSchedule refuses.
func specOf(t *testing.T, spec string, s optim.Schedule) string {
	t.Helper()
	switch s := s.(type) {
	case optim.Constant:
		return "constant"
	case optim.MultiStep:
		ms := make([]string, len(s.Milestones))
		for i, m := range s.Milestones {
			if m < 1 || (i > 0 && m <= s.Milestones[i-1]) {
				t.Fatalf("ParseSchedule(%q): milestones %v, want increasing positive steps", spec, s.Milestones)
			}
			ms[i] = strconv.Itoa(m)
		}
		if len(ms) == 0 || !(s.Gamma > 0) || math.IsInf(s.Gamma, 0) {
			t.Fatalf("ParseSchedule(%q) = %#v, want milestones and a finite gamma > 0", spec, s)
		}
		return "multistep:" + strings.Join(ms, ",") + ":" + strconv.FormatFloat(s.Gamma, 'g', -1, 64)
	case optim.Cosine:
		if s.Total < 1 || !(s.MinFactor >= 0 && s.MinFactor <= 1) {
			t.Fatalf("ParseSchedule(%q) = %#v, want a total ≥ 1 and a minimum in [0, 1]", spec, s)
		}
		return "cosine:" + strconv.Itoa(s.Total) + ":" + strconv.FormatFloat(s.MinFactor, 'g', -1, 64)
	case optim.Warmup:
		if s.Steps < 1 || s.StartFactor != 0 || !s.Offset || s.Then == nil {
			t.Fatalf("ParseSchedule(%q) = %#v, want a warm-up of ≥ 1 steps from 0 before a schedule", spec, s)
		}
		return "warmup:" + strconv.Itoa(s.Steps) + "+" + specOf(t, spec, s.Then)
	}
	t.Fatalf("ParseSchedule(%q) = %#v, of no shape it reads", spec, s)
	return ""
}
