package experiments

import (
	"context"
	"fmt"
	"math"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/train"
)

// OrderConfig: the block orderings of He et al. 2016 (Fig. 4, Table 2).
type OrderConfig struct {
	Depth int // 6n+2
	Seeds int // seeds per ordering (Budget.Seed, Budget.Seed+1, …)
	// Segments cuts the first epoch into this many equal runs of steps
	// whose mean training losses are compared (10 by default).
	Segments int
	Budget   Budget
}

// DefaultOrder is the protocol of docs/EXPERIMENTS.md: the five orderings
// of ResNet-32 on all of Fashion-MNIST, 3 epochs, 2 seeds, no warm-up (He
// et al. used none at this depth).
func DefaultOrder() OrderConfig {
	return OrderConfig{Depth: 32, Seeds: 2, Segments: 10, Budget: Budget{Data: "fashion-mnist", Epochs: 3, Batch: 128, LR: 0.1, Seed: 1}}
}

// QuickOrder is a seconds-long version for tests (ResNet-8, 600 MNIST
// images, one epoch, 2 seeds); its numbers test the machinery only.
func QuickOrder() OrderConfig {
	return OrderConfig{Depth: 8, Seeds: 2, Segments: 3, Budget: Budget{Data: "mnist", Limit: 600, Epochs: 1, Batch: 100, LR: 0.1, Seed: 1}}
}

// Orderings are the five blocks of He et al. 2016, Fig. 4 (a)–(e).
var Orderings = []resnet.Ordering{resnet.PostActivation, resnet.BNAfterAdd, resnet.ReLUBeforeAdd, resnet.ReLUOnlyPreAct, resnet.PreActivation}

// OrderRow is one ordering's result for one seed.
type OrderRow struct {
	Ordering   resnet.Ordering `json:"ordering"`
	Seed       uint64          `json:"seed"`
	TrainError float64         `json:"train_error"` // running error of the last epoch
	TestError  float64         `json:"test_error"`
	// FirstEpochLoss is the mean training loss of each of the
	// OrderConfig.Segments equal parts of the first epoch.
	FirstEpochLoss []float64       `json:"first_epoch_loss"`
	StepLoss       []float64       `json:"step_loss"`
	History        []train.Metrics `json:"history"`
}

// segmentMeans cuts the first steps (one epoch) into n equal parts and
// returns their means.
func segmentMeans(loss []float64, steps, n int) []float64 {
	steps = min(steps, len(loss))
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		lo, hi := i*steps/n, (i+1)*steps/n
		if hi <= lo {
			out = append(out, math.NaN())
			continue
		}
		s := 0.0
		for _, v := range loss[lo:hi] {
			s += v
		}
		out = append(out, s/float64(hi-lo))
	}
	return out
}

// Order trains the five orderings with the same budget and seeds and tests
// He et al. 2016's ranking (claims.json).
func Order(ctx context.Context, c OrderConfig, out string) ([]OrderRow, error) {
	if c.Depth < 8 || (c.Depth-2)%6 != 0 {
		return nil, fmt.Errorf("experiments: order: depth %d is not 6n+2", c.Depth)
	}
	if c.Segments < 1 {
		c.Segments = 10
	}
	r, err := newReport(out, "Block orderings (He et al. 2016, Table 2)", true, c.Budget.Resume)
	if err != nil {
		return nil, err
	}
	defer r.abandon()
	var rows []OrderRow
	var lossLines, errLines []Line
	for si, seed := range seeds(c.Budget.Seed, c.Seeds) {
		for i, o := range Orderings {
			mc := preset(fmt.Sprintf("resnet%d", c.Depth))
			mc.Arch.(*models.ResNet).Ordering = o
			mc.Name = fmt.Sprintf("resnet%d-%s", c.Depth, o)
			b := c.Budget
			b.Seed = seed
			dir := r.path("runs", fmt.Sprintf("%s-seed%d", o, seed))
			res, _, err := b.trained(ctx, mc, dir)
			if err != nil {
				return nil, err
			}
			if err := wholeStepLoss(res, dir); err != nil { // the first epoch's loss is what is compared
				return nil, err
			}
			last := res.History[len(res.History)-1]
			perEpoch := len(res.StepLoss) / max(len(res.History), 1)
			rows = append(rows, OrderRow{Ordering: o, Seed: seed, TrainError: 1 - last.TrainAcc, TestError: 1 - res.TestAccuracy,
				FirstEpochLoss: segmentMeans(res.StepLoss, perEpoch, c.Segments), StepLoss: res.StepLoss, History: res.History})
			if si > 0 {
				continue
			}
			// The first epoch's loss, smoothed over a fiftieth of it.
			w := max(perEpoch/50, 1)
			sm := segmentMeans(res.StepLoss, perEpoch, perEpoch/w)
			xs := make([]float64, len(sm))
			for k := range xs {
				xs[k] = (float64(k) + 0.5) / float64(len(sm))
			}
			lossLines = append(lossLines, Line{Label: string(o), X: xs, Y: sm, Color: i})
			var ep, te []float64
			for _, m := range res.History {
				ep, te = append(ep, float64(m.Epoch)), append(te, 100*(1-m.ValAcc))
			}
			errLines = append(errLines, Line{Label: string(o), X: ep, Y: te, Color: i})
		}
	}
	if err := r.Figure("order.png", 2, 440, 340,
		Panel{Title: "Training loss through the first epoch (first seed)", XLabel: "epoch", YLabel: "loss", LogY: true, Lines: lossLines},
		Panel{Title: fmt.Sprintf("Test error, ResNet-%d", c.Depth), XLabel: "epoch", YLabel: "error (%)", Lines: errLines}); err != nil {
		return nil, err
	}
	b := c.Budget
	r.Printf("ResNet-%d (option A), each ordering with the same recipe: %s; seeds %v.\n", c.Depth, b.recipe(), seeds(b.Seed, c.Seeds))
	r.Printf("| ordering | running train error (last epoch) | test error | He et al. 2016, ResNet-110 on CIFAR-10 |\n|---|---|---|---|")
	paper := map[resnet.Ordering]string{resnet.PostActivation: "6.61%", resnet.BNAfterAdd: "8.17%", resnet.ReLUBeforeAdd: "7.84%", resnet.ReLUOnlyPreAct: "6.71%", resnet.PreActivation: "6.37%"}
	for _, o := range Orderings {
		var tr, te []float64
		for _, row := range rows {
			if row.Ordering == o {
				tr, te = append(tr, row.TrainError), append(te, row.TestError)
			}
		}
		r.Printf("| %s | %.2f%% ± %.2f | %.2f%% ± %.2f | %s |", o, 100*meanOf(tr), 50*seedRange(tr), 100*meanOf(te), 50*seedRange(te), paper[o])
	}
	r.Printf("\nMean over seeds ± half the range.")
	if err := r.JSON("order.json", rows); err != nil {
		return nil, err
	}
	if err := r.Claims(OrderClaims(rows)); err != nil {
		return nil, err
	}
	return rows, r.Close()
}

// OrderClaims tests He et al. 2016's qualitative claims on the rows: (b) BN
// after addition has a higher training loss than (a) the original in every
// part of the first epoch, for every seed (measured: the smallest fraction
// of parts, over seeds, where it is higher; the seeds pair the runs, which
// see the same batches); and (b) and (c) end with a higher mean test error
// than each of (a), (d), (e) by more than the seed spread (measured: the
// smallest such gap in points; spread: the largest seed range of the five).
func OrderClaims(rows []OrderRow) []Claim {
	const src = "He et al. 2016, Sec. 4.1, Fig. 4 and Table 2"
	get := func(o resnet.Ordering, seed uint64) *OrderRow {
		for i := range rows {
			if rows[i].Ordering == o && rows[i].Seed == seed {
				return &rows[i]
			}
		}
		return nil
	}
	var seedList []uint64
	for _, r := range rows {
		if r.Ordering == resnet.PostActivation {
			seedList = append(seedList, r.Seed)
		}
	}
	frac := math.NaN()
	for _, s := range seedList {
		a, b := get(resnet.PostActivation, s), get(resnet.BNAfterAdd, s)
		if a == nil || b == nil || len(a.FirstEpochLoss) != len(b.FirstEpochLoss) || len(a.FirstEpochLoss) == 0 {
			frac = math.NaN()
			break
		}
		above := 0
		for i := range a.FirstEpochLoss {
			if b.FirstEpochLoss[i] > a.FirstEpochLoss[i] {
				above++
			}
		}
		f := float64(above) / float64(len(a.FirstEpochLoss))
		if math.IsNaN(frac) || f < frac {
			frac = f
		}
	}
	var claims []Claim
	c := Claim{Claim: "(b) BN after addition: training loss above (a)'s in every part of the first epoch, for every seed (measured: the smallest fraction of parts, over seeds)",
		Source: src, Measured: frac, Seeds: len(seedList), Criterion: "= 1", Pass: frac == 1}
	claims = append(claims, c)
	means := map[resnet.Ordering]float64{}
	spread := 0.0
	for _, o := range Orderings {
		var te []float64
		for _, r := range rows {
			if r.Ordering == o {
				te = append(te, 100*r.TestError)
			}
		}
		means[o] = math.NaN()
		if len(te) > 0 {
			means[o] = meanOf(te)
		}
		spread = math.Max(spread, seedRange(te))
	}
	gap := math.Inf(1)
	for _, worse := range []resnet.Ordering{resnet.BNAfterAdd, resnet.ReLUBeforeAdd} {
		for _, better := range []resnet.Ordering{resnet.PostActivation, resnet.ReLUOnlyPreAct, resnet.PreActivation} {
			gap = math.Min(gap, means[worse]-means[better]) // a missing ordering's NaN propagates
		}
	}
	claims = append(claims, Claim{Claim: "(b) and (c) end with a higher test error than each of (a), (d), (e) (measured: the smallest gap, points) by more than the seed spread",
		Source: src, Measured: gap, Spread: spread, Seeds: len(seedList), Criterion: "> " + FormatNumber(spread) + " points (the largest seed range)", Pass: gap > spread})
	return claims
}
