package main

import (
	"fmt"
	"os"
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
		if line := fmt.Sprintf("%s  %s (criterion %s): %s\n", verdict, experiments.FormatNumber(c.Measured), c.Criterion, c.Claim); !strings.Contains(stdout, line) {
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

// TestPrintClaimsRounds: the verdict line states the measurement and the
// criterion at 4 significant digits; a bound of 1/3 printed in full, "≤
// 0.3333333333333333".
func TestPrintClaimsRounds(t *testing.T) {
	var b strings.Builder
	printClaims(&b, []experiments.Claim{experiments.AtMost("smooth", "s", 0.342123, 1.0/3)})
	if want := "FAIL  0.3421 (criterion ≤ 0.3333): smooth\n0 of 1 claims pass (claims.json)\n"; b.String() != want {
		t.Errorf("printed %q, want %q", b.String(), want)
	}
}

// TestExperimentKeepsAStoppedTrainingRun: an experiment that trains
// nothing, given the --out of a stopped training experiment whose runs
// wait in OUT.partial/runs/ for --resume, refuses, naming the folder and
// that experiment, and leaves the runs as they were: it removed them.
func TestExperimentKeepsAStoppedTrainingRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "order")
	partial := out + ".partial"
	ck := filepath.Join(partial, "runs", "post-seed1", "last.safetensors")
	if err := os.MkdirAll(filepath.Dir(ck), 0o755); err != nil {
		t.Fatal(err)
	}
	// What order leaves when stopped during its first network.
	for path, content := range map[string]string{ck: "weights", filepath.Join(partial, "experiment.md"): "# Block orderings (He et al. 2016, Table 2)\n"} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr := runCLI("experiment", "variance", "--quick", "--out", out)
	want := partial + ` holds the runs of a stopped experiment ("Block orderings (He et al. 2016, Table 2)")`
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	if b, err := os.ReadFile(ck); err != nil || string(b) != "weights" {
		t.Errorf("the stopped run's checkpoint: %q, %v", b, err)
	}
}
