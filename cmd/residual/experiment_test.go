package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/residual-nn/residual/experiments"
)

// TestExperimentPrintsClaims: every experiment ends with its verdicts, one
// line a claim of claims.json and how many passed; variance (as
// degradation, ensemble, order and segment-unet) printed only its numbers,
// its claims left to be found in the files.
func TestExperimentPrintsClaims(t *testing.T) {
	out := filepath.Join(t.TempDir(), "variance")
	code, stdout, stderr := runCLI("experiment", "variance", "--quick", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	claims, err := experiments.ReadClaims(out)
	if err != nil {
		t.Fatal(err)
	}
	passed := 0
	for _, c := range claims {
		verdict := "FAIL"
		if c.Pass {
			verdict, passed = "pass", passed+1
		}
		if line := fmt.Sprintf("%s  %.4g (criterion %s): %s\n", verdict, c.Measured, c.Criterion, c.Claim); !strings.Contains(stdout, line) {
			t.Errorf("the output lacks %q:\n%s", line, stdout)
		}
	}
	if want := fmt.Sprintf("\n%d of 12 claims pass (claims.json)\n", passed); len(claims) != 12 || !strings.Contains(stdout, want) {
		t.Errorf("%d claims; the output lacks %q:\n%s", len(claims), want, stdout)
	}
	if n := strings.Count(stdout, "(criterion "); n != len(claims) {
		t.Errorf("%d claim lines printed, claims.json holds %d", n, len(claims))
	}
}
