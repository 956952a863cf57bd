package experiments

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// A Claim is one statement from the literature tested by an experiment: what
// the source says, the number the run measured for it, the criterion that
// number must meet, and whether it did. Experiments write their claims to
// claims.json in their output folder (Report.Claims), so that a run can be
// judged by a program and not only by reading a figure.
type Claim struct {
	// Claim says what is asserted, in a sentence ("deleting one identity
	// block raises the median test error by at most 1 point").
	Claim string `json:"claim"`
	// Source names the paper and the figure, table or theorem.
	Source string `json:"source"`
	// Measured is the statistic the criterion is applied to.
	Measured float64 `json:"measured"`
	// Spread is the measured statistic's spread over seeds (a standard
	// deviation or a half-range, as Criterion says); 0 when there is one run.
	Spread float64 `json:"spread,omitempty"`
	// Seeds is how many seeds (or initialisations) Measured summarises.
	Seeds int `json:"seeds,omitempty"`
	// Criterion states the pass condition in words and numbers
	// ("≤ 1.0 points").
	Criterion string `json:"criterion"`
	// Pass is whether Measured met Criterion.
	Pass bool `json:"pass"`
}

// MarshalJSON writes a non-finite Measured or Spread as null: JSON has no NaN,
// and a claim whose statistic could not be computed must still be written
// (and fail) rather than abort the report. It leaves "<", ">" and "&" as
// they are (criteria say "> 0"), so that an encoder that does not escape
// HTML writes them so; json.Marshal escapes them all the same.
func (c Claim) MarshalJSON() ([]byte, error) {
	type plain Claim
	out := struct {
		plain
		Measured *float64 `json:"measured"`
		Spread   *float64 `json:"spread,omitempty"`
	}{plain: plain(c)}
	if !math.IsNaN(c.Measured) && !math.IsInf(c.Measured, 0) {
		out.Measured = &c.Measured
	}
	if c.Spread != 0 && !math.IsNaN(c.Spread) && !math.IsInf(c.Spread, 0) {
		out.Spread = &c.Spread
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reads a claim as MarshalJSON writes it: a null Measured
// (a statistic that could not be computed) is NaN.
func (c *Claim) UnmarshalJSON(b []byte) error {
	type plain Claim
	in := struct {
		*plain
		Measured *float64 `json:"measured"`
	}{plain: (*plain)(c)}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	c.Measured = math.NaN()
	if in.Measured != nil {
		c.Measured = *in.Measured
	}
	return nil
}

// ReadClaims reads the claims.json that an experiment wrote into dir.
func ReadClaims(dir string) ([]Claim, error) {
	b, err := os.ReadFile(filepath.Join(dir, "claims.json"))
	if err != nil {
		return nil, fmt.Errorf("experiments: %w", err)
	}
	var claims []Claim
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, fmt.Errorf("experiments: %s: %w", filepath.Join(dir, "claims.json"), err)
	}
	return claims, nil
}

// FormatNumber writes x as claims state their numbers: to 4 significant
// digits, which keeps a bound written with up to 4 ("1.056 ± 0.02") as it
// was written, in plain decimals without trailing zeros (1/3 is "0.3333",
// 0.0004 is "0.0004"), a whole number exactly ("60", "12345"), and in
// exponent form below 1e-4 and from 1e6 up ("1.235e+06"). Criteria, and the
// measured values and their spreads in summary.md and on the terminal, use
// it, so that a measurement and its bound read at the same precision (a
// bound that is the seed spread reads as the spread beside it).
func FormatNumber(x float64) string {
	a := math.Abs(x)
	switch {
	case x == 0:
		return "0" // and not "-0"
	case math.IsNaN(x) || math.IsInf(x, 0):
		return strconv.FormatFloat(x, 'g', -1, 64)
	case a < 1e-4 || a >= 1e6:
		return strconv.FormatFloat(x, 'g', 4, 64)
	case x == math.Trunc(x):
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	// Round to 4 significant digits and write the result in plain decimals,
	// where %.4g would write 12345.6 as 1.235e+04.
	r, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'e', 3, 64), 64)
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// Within returns a claim that passes when |measured − want| ≤ tol.
func Within(claim, source string, measured, want, tol float64) Claim {
	return Claim{Claim: claim, Source: source, Measured: measured,
		Criterion: FormatNumber(want) + " ± " + FormatNumber(tol),
		Pass:      math.Abs(measured-want) <= tol}
}

// AtMost returns a claim that passes when measured ≤ bound.
func AtMost(claim, source string, measured, bound float64) Claim {
	return Claim{Claim: claim, Source: source, Measured: measured,
		Criterion: "≤ " + FormatNumber(bound), Pass: measured <= bound}
}

// AtLeast returns a claim that passes when measured ≥ bound.
func AtLeast(claim, source string, measured, bound float64) Claim {
	return Claim{Claim: claim, Source: source, Measured: measured,
		Criterion: "≥ " + FormatNumber(bound), Pass: measured >= bound}
}

// Claims writes the claims to claims.json (sorted as given) and adds a table
// of them to the summary. A NaN measurement fails its claim.
func (r *Report) Claims(claims []Claim) error {
	for i := range claims {
		if math.IsNaN(claims[i].Measured) {
			claims[i].Pass = false
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // criteria say "≥" and "<" as they are
	enc.SetIndent("", " ")
	if err := enc.Encode(claims); err != nil {
		return fmt.Errorf("experiments: claims: %w", err)
	}
	if err := os.WriteFile(r.path("claims.json"), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("experiments: %w", err)
	}
	r.Printf("\n| claim | source | measured | criterion | pass |\n|---|---|---|---|---|")
	for _, c := range claims {
		m := FormatNumber(c.Measured)
		if c.Spread != 0 {
			m += " ± " + FormatNumber(c.Spread)
		}
		if c.Seeds > 0 {
			m += fmt.Sprintf(" (%d seeds)", c.Seeds)
		}
		pass := "no"
		if c.Pass {
			pass = "yes"
		}
		r.Printf("| %s | %s | %s | %s | %s |", tableCell(c.Claim), tableCell(c.Source), m, tableCell(c.Criterion), pass)
	}
	return nil
}

// tableCell escapes the "|" in s (shatter's "largest |measured − theory|"),
// which would otherwise end the Markdown table's cell.
func tableCell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

// meanSpread returns the mean and the sample standard deviation of v (0 for
// fewer than two values).
func meanSpread(v []float64) (mean, sd float64) {
	if len(v) == 0 {
		return math.NaN(), 0
	}
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	if len(v) < 2 {
		return mean, 0
	}
	for _, x := range v {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(v)-1))
}

// median returns the median of v without reordering it.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
