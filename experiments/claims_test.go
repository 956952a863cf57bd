package experiments

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClaimsFile(t *testing.T) {
	dir := t.TempDir()
	r, err := NewReport(dir, "t")
	if err != nil {
		t.Fatal(err)
	}
	claims := []Claim{
		Within("slope is one", "Prince Fig. 11.6", 1.03, 1, 0.05),
		AtMost("median increase", "Veit et al. 2016, Fig. 3", 1.5, 1),
		AtLeast("nan", "x", math.NaN(), 0),
	}
	claims[2].Pass = true // a NaN must fail whatever the caller set
	if err := r.Claims(claims); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "claims.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0]["pass"] != true || got[1]["pass"] != false || got[2]["pass"] != false || got[2]["measured"] != nil {
		t.Fatalf("claims.json = %s", b)
	}
	for _, k := range []string{"claim", "source", "measured", "criterion", "pass"} {
		if _, ok := got[0][k]; !ok {
			t.Errorf("claims.json lacks %q: %s", k, b)
		}
	}
	s, _ := os.ReadFile(filepath.Join(dir, "summary.md"))
	if !strings.Contains(string(s), "| slope is one | Prince Fig. 11.6 | 1.03 | 1 ± 0.05 | yes |") {
		t.Errorf("summary.md lacks the claims table:\n%s", s)
	}
	// ReadClaims gives back what was written, the null measurement as NaN.
	back, err := ReadClaims(dir)
	if err != nil || len(back) != 3 {
		t.Fatalf("ReadClaims: %v, %d claims", err, len(back))
	}
	if back[0] != claims[0] || back[1] != claims[1] || !math.IsNaN(back[2].Measured) || back[2].Pass || back[2].Claim != "nan" {
		t.Errorf("ReadClaims = %+v, want %+v", back, claims)
	}
	if _, err := ReadClaims(t.TempDir()); err == nil || !strings.Contains(err.Error(), "claims.json") {
		t.Errorf("ReadClaims of a folder without claims.json: %v", err)
	}
}

func TestMeanSpreadMedian(t *testing.T) {
	m, sd := meanSpread([]float64{1, 2, 3, 4})
	if m != 2.5 || math.Abs(sd-math.Sqrt(5.0/3)) > 1e-12 {
		t.Errorf("meanSpread = %v, %v", m, sd)
	}
	if median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 3, 2}) != 2.5 {
		t.Error("median wrong")
	}
}

// A figure the plotting library cannot draw (values ≤ 0 on a log axis, as
// a diverged run's can be) is an error naming the figure; the library's panic once
// ended the process.
func TestFigureRefusesUndrawable(t *testing.T) {
	r, err := NewReport(t.TempDir(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, y := range [][]float64{{0, 0}, {0, 1}} {
		bad := Panel{LogY: true, Lines: []Line{{X: []float64{1, 2}, Y: y, Color: -1}}}
		if err := r.Figure("bad.png", 1, 100, 100, bad); err == nil || !strings.Contains(err.Error(), "bad.png") {
			t.Errorf("%v on a log axis: %v", y, err)
		}
	}
	good := Panel{LogY: true, Lines: []Line{{X: []float64{1, 2}, Y: []float64{1, 10}, Color: -1}}}
	if err := r.Figure("good.png", 1, 100, 100, good); err != nil {
		t.Errorf("a drawable figure: %v", err)
	}
}

func TestFormatNumber(t *testing.T) {
	for _, c := range []struct {
		x    float64
		want string
	}{
		{1.0 / 3, "0.3333"},
		{2.0 / 3, "0.6667"},
		{8.0 / 3, "2.667"},
		{1, "1"},
		{60, "60"},
		{-2, "-2"},
		{12345, "12345"},
		{1234.56, "1235"},
		{12345.6, "12350"},
		{1.056, "1.056"},
		{4.09, "4.09"},
		{0.5, "0.5"},
		{0.05, "0.05"},
		{0.01, "0.01"},
		{0.0004, "0.0004"},
		{0.000123456, "0.0001235"},
		{-0.12345, "-0.1235"},
		{1e-5, "1e-05"},
		{2.5e6, "2.5e+06"},
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "+Inf"},
	} {
		if got := FormatNumber(c.x); got != c.want {
			t.Errorf("FormatNumber(%v) = %q, want %q", c.x, got, c.want)
		}
	}
}

// A criterion's bound reads as a person writes it, not as a float64 prints in
// full ("≤ 0.3333333333333333"), and in summary.md at the measurement's
// precision.
func TestClaimsCriteriaRounded(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{AtMost("smooth", "s", 0.3421, 1.0/3).Criterion, "≤ 0.3333"},
		{AtLeast("fraction", "s", 0.9, 2.0/3).Criterion, "≥ 0.6667"},
		{Within("ratio", "s", 1.05, 1.056, 0.02).Criterion, "1.056 ± 0.02"},
		{Within("third", "s", 0.3, 1.0/3, 0.1/3).Criterion, "0.3333 ± 0.03333"},
	} {
		if c.got != c.want {
			t.Errorf("criterion %q, want %q", c.got, c.want)
		}
	}
	dir := writeClaims(t, AtMost("smooth", "s", 0.342123, 1.0/3))
	s, _ := os.ReadFile(filepath.Join(dir, "summary.md"))
	if !strings.Contains(string(s), "| smooth | s | 0.3421 | ≤ 0.3333 | no |") {
		t.Errorf("summary.md's claims table:\n%s", s)
	}
	// claims.json keeps the measurement exact: only the strings are rounded.
	back, err := ReadClaims(dir)
	if err != nil || len(back) != 1 || back[0].Measured != 0.342123 || back[0].Criterion != "≤ 0.3333" {
		t.Errorf("ReadClaims = %+v, %v", back, err)
	}
}

// claims.json writes a criterion's ">" as it is: Claim.MarshalJSON, through
// json.Marshal, wrote "\u003e 0" whatever the encoder that called it said.
func TestClaimsFileKeepsComparisons(t *testing.T) {
	c := Claim{Claim: "rises & falls", Source: "s", Measured: 0.5, Criterion: "> 0 (< 1)", Pass: true}
	dir := writeClaims(t, c)
	b, err := os.ReadFile(filepath.Join(dir, "claims.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"criterion": "> 0 (< 1)"`) || !strings.Contains(string(b), `"claim": "rises & falls"`) {
		t.Errorf("claims.json = %s", b)
	}
	back, err := ReadClaims(dir)
	if err != nil || len(back) != 1 || back[0] != c {
		t.Errorf("ReadClaims = %+v, %v", back, err)
	}
}

// writeClaims writes the claims with Report.Claims into a new folder's
// claims.json and summary.md, and returns the folder.
func writeClaims(t *testing.T, claims ...Claim) string {
	t.Helper()
	dir := t.TempDir()
	r, err := NewReport(dir, "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Claims(claims); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A "|" in a claim (shatter's "|measured − theory|") is escaped in
// summary.md's table, whose row it split into more cells than the header's.
func TestClaimsTableEscapesBars(t *testing.T) {
	dir := writeClaims(t, AtMost("largest |measured − theory|", "a | b", 0.05, 0.1))
	s, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `| largest \|measured − theory\| | a \| b | 0.05 | ≤ 0.1 | yes |`; !strings.Contains(string(s), want) {
		t.Errorf("summary.md lacks %q:\n%s", want, s)
	}
	// claims.json keeps the claim as it was written.
	if back, err := ReadClaims(dir); err != nil || len(back) != 1 || back[0].Claim != "largest |measured − theory|" {
		t.Errorf("ReadClaims = %+v, %v", back, err)
	}
}

// degradation's and order's bound is the seed spread; summary.md writes the
// spread beside the measurement as the criterion writes it, where it wrote
// "2.333 ± 2.2 (2 seeds) | > 2.167 points".
func TestClaimsTableSpreadAsCriterion(t *testing.T) {
	spread := 13.0 / 6
	dir := writeClaims(t, Claim{Claim: "gap", Source: "s", Measured: 7.0 / 3, Spread: spread, Seeds: 2,
		Criterion: "> " + FormatNumber(spread) + " points", Pass: true})
	s, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "| gap | s | 2.333 ± 2.167 (2 seeds) | > 2.167 points | yes |"; !strings.Contains(string(s), want) {
		t.Errorf("summary.md lacks %q:\n%s", want, s)
	}
}
