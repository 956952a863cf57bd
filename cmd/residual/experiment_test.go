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
