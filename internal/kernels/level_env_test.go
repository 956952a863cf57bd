package kernels

import (
	"strings"
	"testing"
)

// A kernel switch set to a value that means nothing is reported (a
// misspelt "emulate" ran the native path without a word); the known
// values and unset switches are not.
func TestEnvProblems(t *testing.T) {
	t.Setenv("RESIDUAL_KERNELS", "avx2")
	t.Setenv("RESIDUAL_BF16", "emulated")
	t.Setenv("RESIDUAL_WINOGRAD", "")
	t.Setenv("RESIDUAL_AMX", "0")
	got := EnvProblems()
	if len(got) != 1 || !strings.Contains(got[0], `RESIDUAL_BF16="emulated" means nothing to the kernels (it takes emulate); ignored`) {
		t.Errorf("EnvProblems: %q", got)
	}
	t.Setenv("RESIDUAL_AMX", "off")
	if got := EnvProblems(); len(got) != 2 || !strings.Contains(got[1], `RESIDUAL_AMX="off" means nothing to the kernels (it takes 0); ignored`) {
		t.Errorf("EnvProblems: %q", got)
	}
	t.Setenv("RESIDUAL_AMX", "")
	t.Setenv("RESIDUAL_BF16", "emulate")
	if got := EnvProblems(); len(got) != 0 {
		t.Errorf("known values: %q", got)
	}
}
