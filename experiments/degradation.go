package experiments

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/train"
)

// DegradationConfig: plain-N against ResNet-N (He et al. 2015, Fig. 6 and
// Table 6).
type DegradationConfig struct {
	// Models are preset names, plainN and resnetN.
	Models []string
	// Seeds is how many seeds each network is trained with (Budget.Seed,
	// Budget.Seed+1, …).
	Seeds  int
	Budget Budget
}

// DefaultDegradation is the protocol of docs/EXPERIMENTS.md: plain-20, -32,
// -44, -56 and ResNet-20, -56 trained on 10,000 Fashion-MNIST images for
// 25 epochs with 2 seeds, without a warm-up (He et al. used none up to 56
// layers), random 2-pixel shifts.
func DefaultDegradation() DegradationConfig {
	return DegradationConfig{Models: []string{"plain20", "plain32", "plain44", "plain56", "resnet20", "resnet56"}, Seeds: 2,
		Budget: Budget{Data: "fashion-mnist", Limit: 10000, Epochs: 25, Batch: 128, LR: 0.1, Seed: 1}}
}

// QuickDegradation is a seconds-long version for tests: plain and residual
// 8 and 14 on 600 MNIST images, one epoch, 2 seeds. Its numbers test the
// machinery, not the claim.
func QuickDegradation() DegradationConfig {
	return DegradationConfig{Models: []string{"plain8", "plain14", "resnet8", "resnet14"}, Seeds: 2,
		Budget: Budget{Data: "mnist", Limit: 600, Epochs: 1, Batch: 100, LR: 0.1, Seed: 1}}
}

// DegradationRow is one network's final errors for one seed.
type DegradationRow struct {
	Name  string `json:"name"`
	Depth int    `json:"depth"`
	Plain bool   `json:"plain"`
	Seed  uint64 `json:"seed"`
	// TrainError is the final weights' error on the training images,
	// evaluated without augmentation; RunningTrainError the running error
	// of the last epoch (with augmentation, as He et al. plot it).
	TrainError        float64         `json:"train_error"`
	RunningTrainError float64         `json:"running_train_error"`
	TestError         float64         `json:"test_error"`
	History           []train.Metrics `json:"history"`
}

// depthOf parses plainN / resnetN.
func depthOf(name string) (depth int, plain bool, err error) {
	s, plain := strings.CutPrefix(name, "plain")
	if !plain {
		var ok bool
		if s, ok = strings.CutPrefix(name, "resnet"); !ok {
			return 0, false, fmt.Errorf("experiments: degradation compares plainN and resnetN networks, not %q", name)
		}
	}
	d, err := strconv.Atoi(s)
	if err != nil || d < 8 || (d-2)%6 != 0 {
		return 0, false, fmt.Errorf("experiments: degradation: %q is not a CIFAR-style depth 6n+2", name)
	}
	return d, plain, nil
}

// Degradation trains plain and residual networks of each depth with the
// same budget and seeds, draws their error curves and tests He et al.'s
// claims on the training errors (claims.json).
func Degradation(ctx context.Context, c DegradationConfig, out string) ([]DegradationRow, error) {
	for _, m := range c.Models {
		if _, _, err := depthOf(m); err != nil {
			return nil, err
		}
	}
	r, err := newReport(out, "Degradation: plain against residual networks", true, c.Budget.Resume)
	if err != nil {
		return nil, err
	}
	defer r.abandon()
	var rows []DegradationRow
	var trainLines, testLines []Line
	for si, seed := range seeds(c.Budget.Seed, c.Seeds) {
		for mi, name := range c.Models {
			d, plain, _ := depthOf(name)
			b := c.Budget
			b.Seed = seed
			res, ck, err := b.trained(ctx, preset(name), r.path("runs", fmt.Sprintf("%s-seed%d", name, seed)))
			if err != nil {
				return nil, err
			}
			te, err := trainError(ctx, ck, b.Data, b.Limit)
			if err != nil {
				return nil, err
			}
			last := res.History[len(res.History)-1]
			rows = append(rows, DegradationRow{Name: name, Depth: d, Plain: plain, Seed: seed, TrainError: te, RunningTrainError: 1 - last.TrainAcc,
				TestError: 1 - res.TestAccuracy, History: res.History})
			if si > 0 {
				continue // curves of the first seed
			}
			var ep, tre, tee []float64
			for _, m := range res.History {
				ep, tre, tee = append(ep, float64(m.Epoch)), append(tre, 100*(1-m.TrainAcc)), append(tee, 100*(1-m.ValAcc))
			}
			trainLines = append(trainLines, Line{Label: name, X: ep, Y: tre, Dashed: plain, Color: mi})
			testLines = append(testLines, Line{Label: name, X: ep, Y: tee, Dashed: plain, Color: mi})
		}
	}
	if err := r.Figure("degradation.png", 2, 440, 340,
		Panel{Title: "Running training error, first seed (dashed: plain)", XLabel: "epoch", YLabel: "error (%)", Lines: trainLines},
		Panel{Title: "Test error", XLabel: "epoch", YLabel: "error (%)", Lines: testLines}); err != nil {
		return nil, err
	}
	b := c.Budget
	r.Printf("Same recipe for every network: %s; seeds %v.\n", b.recipe(), seeds(b.Seed, c.Seeds))
	r.Printf("Training error: the final weights evaluated on the training images without augmentation (the running error of the last epoch in brackets). Mean over seeds ± half the range.\n")
	r.Printf("| network | training error | test error |\n|---|---|---|")
	for _, name := range c.Models {
		var tr, run, te []float64
		for _, row := range rows {
			if row.Name == name {
				tr, run, te = append(tr, row.TrainError), append(run, row.RunningTrainError), append(te, row.TestError)
			}
		}
		r.Printf("| %s | %.2f%% ± %.2f (%.2f%%) | %.2f%% ± %.2f |", name, 100*meanOf(tr), 50*seedRange(tr), 100*meanOf(run), 100*meanOf(te), 50*seedRange(te))
	}
	if err := r.JSON("degradation.json", rows); err != nil {
		return nil, err
	}
	if err := r.Claims(DegradationClaims(rows)); err != nil {
		return nil, err
	}
	return rows, r.Close()
}

// DegradationClaims tests He et al. 2015's degradation claims on the rows'
// training errors (in points): the plain networks' mean training error
// rises with every step in depth; the deepest plain network's exceeds the
// shallowest's by at least 2 points and by more than their seed spread
// (the larger of the two seed ranges); and the deepest residual network's
// is at most 0.5 points above the shallowest residual network's.
func DegradationClaims(rows []DegradationRow) []Claim {
	const src = "He et al. 2015, Fig. 6 and Table 6"
	type stat struct {
		mean, rng float64
		n         int
	}
	by := func(plain bool) (depths []int, s map[int]stat) {
		vals := map[int][]float64{}
		for _, r := range rows {
			if r.Plain == plain {
				if _, ok := vals[r.Depth]; !ok {
					depths = append(depths, r.Depth)
				}
				vals[r.Depth] = append(vals[r.Depth], 100*r.TrainError)
			}
		}
		s = map[int]stat{}
		for d, v := range vals {
			m, _ := meanSpread(v)
			s[d] = stat{m, seedRange(v), len(v)}
		}
		sort.Ints(depths)
		return depths, s
	}
	var claims []Claim
	pd, ps := by(true)
	if len(pd) >= 2 {
		rise := math.Inf(1)
		for i := 1; i < len(pd); i++ {
			rise = math.Min(rise, ps[pd[i]].mean-ps[pd[i-1]].mean)
		}
		claims = append(claims, Claim{Claim: fmt.Sprintf("plain networks' training error rises with depth (%v): smallest rise between neighbouring depths, points", pd),
			Source: src, Measured: rise, Seeds: ps[pd[0]].n, Criterion: "> 0 points", Pass: rise > 0})
		lo, hi := ps[pd[0]], ps[pd[len(pd)-1]]
		gap := hi.mean - lo.mean
		c := AtLeast(fmt.Sprintf("plain-%d's training error exceeds plain-%d's by ≥ 2 points", pd[len(pd)-1], pd[0]), src, gap, 2)
		c.Seeds = lo.n
		spread := math.Max(lo.rng, hi.rng)
		claims = append(claims, c, Claim{Claim: fmt.Sprintf("… and by more than the seed spread (the larger seed range of plain-%d and plain-%d)", pd[0], pd[len(pd)-1]),
			Source: src, Measured: gap, Spread: spread, Seeds: lo.n, Criterion: "> " + FormatNumber(spread) + " points", Pass: gap > spread})
	}
	rd, rs := by(false)
	if len(rd) >= 2 {
		lo, hi := rs[rd[0]], rs[rd[len(rd)-1]]
		c := AtMost(fmt.Sprintf("ResNet-%d's training error is at most ResNet-%d's + 0.5 points (measured: the difference)", rd[len(rd)-1], rd[0]), src, hi.mean-lo.mean, 0.5)
		c.Spread, c.Seeds = math.Max(lo.rng, hi.rng), lo.n
		claims = append(claims, c)
	}
	return claims
}
