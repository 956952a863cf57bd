package experiments

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
	"github.com/residual-nn/residual/train"
)

// EnsembleConfig: residual networks as ensembles of paths (Veit et al.
// 2016).
type EnsembleConfig struct {
	Model, Plain string // presets, e.g. resnet56 and plain20
	// Weights and PlainWeights, when set, are checkpoints of the two
	// networks to study instead of training them (a long training is not
	// repeated); they must be CIFAR-style ResNets of the same data set.
	Weights, PlainWeights string
	Budget                Budget
	// Draws is the number of random draws for each number of deleted
	// blocks; MaxDelete the largest number (Veit et al. Fig. 5a).
	Draws, MaxDelete int
	// Reorderings is the number of random re-orderings (1, 2, …
	// Reorderings swaps of two blocks of a stage; Veit et al. Fig. 5b).
	Reorderings int
	// PathDraws gradients are sampled per path length, each on a random
	// training batch of PathBatch images.
	PathDraws, PathBatch int
	// EvalLimit keeps the first EvalLimit test images for the lesion
	// study (0: all).
	EvalLimit int
}

// DefaultEnsemble is the protocol of docs/EXPERIMENTS.md: ResNet-56 (27
// blocks) and plain-20 trained on all of Fashion-MNIST for 10 epochs with
// pad-4 crops and flips, lr 0.1 cosine after a warm-up over 5% of the
// steps; every block deleted in turn, k = 1…10 random blocks × 5 draws, 10
// re-orderings, on the 10,000 test images; 20 path-gradient draws per
// length on batches of 64.
func DefaultEnsemble() EnsembleConfig {
	return EnsembleConfig{Model: "resnet56", Plain: "plain20", Draws: 5, MaxDelete: 10, Reorderings: 10, PathDraws: 20, PathBatch: 64,
		Budget: Budget{Data: "fashion-mnist", Epochs: 10, Batch: 128, LR: 0.1, Warmup: 0.05, Augment: &data.Augment{Pad: 4, Flip: true}, Seed: 1}}
}

// QuickEnsemble is a version of a minute or so for tests: ResNet-20 and
// plain-20 on 3,000 MNIST images for 2 epochs (enough for both to learn),
// 2 draws, k up to 4, 3 re-orderings, on 1,000 test images. Its numbers
// test the machinery; the claims need the default protocol.
func QuickEnsemble() EnsembleConfig {
	return EnsembleConfig{Model: "resnet20", Plain: "plain20", Draws: 2, MaxDelete: 4, Reorderings: 3, PathDraws: 2, PathBatch: 32, EvalLimit: 1000,
		Budget: Budget{Data: "mnist", Limit: 3000, Epochs: 2, Batch: 100, LR: 0.1, Seed: 1}}
}

// EnsembleResult holds the numbers.
type EnsembleResult struct {
	Blocks     int       `json:"blocks"`
	PathCounts []float64 `json:"path_counts"`         // C(n, k), k = 0…n
	PathGrad   []float64 `json:"path_gradient"`       // mean ‖dL/dh‖ at the first block's input h through k branches
	TotalGrad  []float64 `json:"total_path_gradient"` // C(n,k)·PathGrad[k]
	// PathFitSlope and PathFitR2 are the least-squares fit of ln PathGrad
	// against k and its coefficient of determination.
	PathFitSlope float64   `json:"path_fit_slope"`
	PathFitR2    float64   `json:"path_fit_r2"`
	BaseError    float64   `json:"base_error"`       // the residual net, intact
	DeleteOne    []float64 `json:"delete_one_error"` // error with block i deleted
	// DeleteK[k] is the mean error with k random identity blocks deleted
	// (k = 0…MaxDelete), DeleteKDraws the draws.
	DeleteK      []float64   `json:"delete_k_error"`
	DeleteKDraws [][]float64 `json:"delete_k_draws"`
	// Reorder holds the random re-orderings: swaps made, Kendall's τ
	// between the new and the original order, and the error.
	Reorder       []Reordering `json:"reorderings"`
	PlainBase     float64      `json:"plain_base_error"`   // the plain net, intact
	PlainDelete   nullable     `json:"plain_delete_error"` // error with layer (block) i deleted; NaN (null) where impossible
	Deletable     []bool       `json:"deletable"`          // blocks whose input and output shapes agree
	TestImages    int          `json:"test_images"`
	ResidualModel string       `json:"residual_model"`
	PlainModel    string       `json:"plain_model"`
}

// Reordering is one re-ordered network's result.
type Reordering struct {
	Swaps   int     `json:"swaps"`
	Kendall float64 `json:"kendall_tau"`
	Error   float64 `json:"error"`
}

// binomial returns C(n, k) as a float.
func binomial(n, k int) float64 {
	v := 1.0
	for i := 1; i <= k; i++ {
		v = v * float64(n-k+i) / float64(i)
	}
	return math.Round(v)
}

// trainedOrLoaded returns a network's checkpoint: the one at weights if
// given, else one trained with the budget.
func (c EnsembleConfig) trainedOrLoaded(ctx context.Context, model, weights, out string) (*checkpoint.Checkpoint, string, error) {
	if weights == "" {
		_, p, err := c.Budget.trained(ctx, preset(model), filepath.Join(out, "runs", model))
		if err != nil {
			return nil, "", err
		}
		weights = p
	}
	ck, err := checkpoint.Load(weights)
	if err != nil {
		return nil, "", fmt.Errorf("experiments: ensemble: %w", err)
	}
	if ck.Int8 != nil {
		return nil, "", fmt.Errorf("experiments: ensemble: %s is an int8 checkpoint; the study deletes blocks of a float network", weights)
	}
	if _, ok := ck.Net.(*resnet.Net); !ok {
		return nil, "", fmt.Errorf("experiments: ensemble: %s holds a %T, not a ResNet or plain network", weights, ck.Net)
	}
	return ck, weights, nil
}

// Ensemble trains (or loads) a residual and a plain network, deletes and
// re-orders blocks at test time (the lesion study), measures the loss
// gradient through paths of each length, and tests Veit et al.'s claims
// (claims.json).
func Ensemble(ctx context.Context, c EnsembleConfig, out string) (*EnsembleResult, error) {
	r, err := newReport(out, "Residual networks as ensembles of shallow paths", true, c.Budget.Resume)
	if err != nil {
		return nil, err
	}
	defer r.abandon()
	rc, rpath, err := c.trainedOrLoaded(ctx, c.Model, c.Weights, r.path())
	if err != nil {
		return nil, err
	}
	pc, ppath, err := c.trainedOrLoaded(ctx, c.Plain, c.PlainWeights, r.path())
	if err != nil {
		return nil, err
	}
	trainSet, test, err := data.Open(ctx, c.Budget.Data, rc.Preprocess.Channels)
	if err != nil {
		return nil, fmt.Errorf("experiments: ensemble: %w", err)
	}
	if c.EvalLimit > 0 && c.EvalLimit < test.Len() {
		test = test.Subset(seqInts(c.EvalLimit))
	}
	rnet, pnet := rc.Net.(*resnet.Net), pc.Net.(*resnet.Net)
	for _, n := range []*resnet.Net{rnet, pnet} {
		if n.Config.Classes != len(test.Classes) {
			return nil, fmt.Errorf("experiments: ensemble: a network has %d classes, %s %d", n.Config.Classes, c.Budget.Data, len(test.Classes))
		}
	}
	res := &EnsembleResult{ResidualModel: c.Model, PlainModel: c.Plain, TestImages: test.Len()}
	if c.Weights != "" {
		res.ResidualModel = rpath
	}
	if c.PlainWeights != "" {
		res.PlainModel = ppath
	}
	blocks := flatBlocks(rnet)
	n := len(blocks)
	res.Blocks = n
	if pb := flatBlocks(pnet); len(pb) != n {
		fmt.Fprintf(logOf(c.Budget), "the plain network has %d blocks, the residual %d: plain deletions cover the first %d\n", len(pb), n, min(n, len(pb)))
	}
	rl, err := train.Loader(rc.Preprocess, test, 256)
	if err != nil {
		return nil, fmt.Errorf("experiments: ensemble: test set: %w", err)
	}
	pl, err := train.Loader(pc.Preprocess, test, 256)
	if err != nil {
		return nil, fmt.Errorf("experiments: ensemble: test set: %w", err)
	}
	var evalErr error
	errorWith := func(net *resnet.Net, l *data.Loader, deleted []int) float64 {
		bl := flatBlocks(net)
		net.Lesion = map[[2]int]bool{}
		for _, i := range deleted {
			net.Lesion[bl[i]] = true
		}
		defer func() { net.Lesion = nil }()
		e, err := train.Evaluate(ctx, net, l, len(test.Classes), ag.FP32)
		if err != nil && evalErr == nil {
			evalErr = err
		}
		return 1 - e.Accuracy
	}
	res.BaseError = errorWith(rnet, rl, nil)
	res.PlainBase = errorWith(pnet, pl, nil)
	pblocks := flatBlocks(pnet)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ok := deletable(blocks[i])
		res.Deletable = append(res.Deletable, ok)
		res.DeleteOne = append(res.DeleteOne, errorWith(rnet, rl, []int{i}))
		// The plain network's own block i (it may be shallower than the
		// residual one, so its downsampling blocks sit at other indices):
		// one that changes the shape cannot be deleted.
		pe := math.NaN()
		if i < len(pblocks) && deletable(pblocks[i]) {
			pe = errorWith(pnet, pl, []int{i})
		}
		res.PlainDelete = append(res.PlainDelete, pe)
	}
	rng := tensor.NewRNG(c.Budget.Seed)
	var idBlocks []int // blocks that can be deleted (identity shortcut)
	for i, ok := range res.Deletable {
		if ok {
			idBlocks = append(idBlocks, i)
		}
	}
	for k := 0; k <= min(c.MaxDelete, len(idBlocks)); k++ {
		var draws []float64
		for d := 0; d < max(c.Draws, 1); d++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if k == 0 {
				draws = append(draws, res.BaseError)
				break
			}
			perm := rng.Perm(len(idBlocks))
			var del []int
			for _, p := range perm[:k] {
				del = append(del, idBlocks[p])
			}
			draws = append(draws, errorWith(rnet, rl, del))
		}
		res.DeleteKDraws = append(res.DeleteKDraws, draws)
		res.DeleteK = append(res.DeleteK, meanOf(draws))
	}
	for s := 1; s <= c.Reorderings; s++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tau, e := reordered(rnet, s, rng, func() float64 { return errorWith(rnet, rl, nil) })
		res.Reorder = append(res.Reorder, Reordering{Swaps: s, Kendall: tau, Error: e})
	}
	if evalErr != nil {
		return nil, fmt.Errorf("experiments: ensemble: test set: %w", evalErr)
	}
	// Paths: a path of length k passes through k residual branches and the
	// shortcuts of the other blocks; its gradient is sampled as Veit et al.
	// do (forward through the whole network, backward along the path), on
	// random training batches, at the first block's input.
	tl, err := train.Loader(rc.Preprocess, trainSet, max(c.PathBatch, 1))
	if err != nil {
		return nil, fmt.Errorf("experiments: %w", err)
	}
	tl.Shuffle, tl.Seed = true, c.Budget.Seed
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	batches := tl.Epoch(pctx, 0, 0)
	for k := 0; k <= n; k++ {
		res.PathCounts = append(res.PathCounts, binomial(n, k))
		s := 0.0
		for d := 0; d < max(c.PathDraws, 1); d++ {
			b, ok := <-batches
			if !ok {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				batches = tl.Epoch(pctx, k+d+1, 0)
				b = <-batches
			}
			g, err := pathGradNorm(rnet, blocks, rng.Perm(n)[:k], b.X, b.Y)
			if err != nil {
				return nil, err
			}
			s += g
		}
		res.PathGrad = append(res.PathGrad, s/float64(max(c.PathDraws, 1)))
		res.TotalGrad = append(res.TotalGrad, res.PathCounts[k]*res.PathGrad[k])
	}
	stop()
	res.PathFitSlope, res.PathFitR2 = logLinearFit(res.PathGrad)
	if err := ensembleFigure(r, c, res); err != nil {
		return nil, err
	}
	ensembleSummary(r, c, res, test.Len())
	if err := r.JSON("ensemble.json", res); err != nil {
		return nil, err
	}
	if err := r.Claims(EnsembleClaims(res)); err != nil {
		return nil, err
	}
	return res, r.Close()
}

func logOf(b Budget) io.Writer {
	if b.Log == nil {
		return io.Discard
	}
	return b.Log
}

func ensembleFigure(r *Report, c EnsembleConfig, res *EnsembleResult) error {
	return r.Figure("ensemble.png", 2, 440, 330, ensemblePanels(c, res)...)
}

// ensemblePanels returns the study's four panels: the path gradients, one
// block deleted, k blocks deleted, and the re-orderings' errors in the
// order of their Kendall τ (joined in the order of their swaps, the line
// zigzagged and meant nothing).
func ensemblePanels(c EnsembleConfig, res *EnsembleResult) []Panel {
	n := res.Blocks
	ks := seq(0, n)
	is := seq(0, n-1)
	byTau := append([]Reordering(nil), res.Reorder...)
	sort.SliceStable(byTau, func(i, j int) bool { return byTau[i].Kendall < byTau[j].Kendall })
	var tau, rerr []float64
	for _, o := range byTau {
		tau, rerr = append(tau, o.Kendall), append(rerr, 100*o.Error)
	}
	return []Panel{
		{Title: "Loss gradient at the first block's input, paths of length k", XLabel: "path length (branches)", YLabel: "‖dL/dh‖", LogY: true, Lines: []Line{
			{Label: "one path", X: ks, Y: res.PathGrad, Color: 1}, {Label: "all C(n,k) paths of that length", X: ks, Y: res.TotalGrad, Color: 2}}},
		{Title: "Test error with one block deleted", XLabel: "block deleted", YLabel: "error (%)", Lines: []Line{
			{Label: c.Model, X: is, Y: pct(res.DeleteOne), Color: 0}, {Label: c.Plain, X: is, Y: pct(res.PlainDelete), Color: 1, Dashed: true},
			{Label: c.Model + " intact", X: is, Y: constant(100*res.BaseError, n), Color: 7, Dashed: true}}},
		{Title: "Test error with k random identity blocks deleted", XLabel: "blocks deleted", YLabel: "error (%)", Lines: []Line{
			{Label: c.Model, X: seq(0, len(res.DeleteK)-1), Y: pct(res.DeleteK), Color: 0}}},
		{Title: "Test error after random re-orderings", XLabel: "Kendall's τ with the trained order", YLabel: "error (%)", Lines: []Line{
			{Label: c.Model, X: tau, Y: rerr, Color: 0}}}}
}

func ensembleSummary(r *Report, c EnsembleConfig, res *EnsembleResult, images int) {
	trained := fmt.Sprintf("%s and %s trained with the same recipe (%s, seed %d)", c.Model, c.Plain, c.Budget.recipe(), c.Budget.Seed)
	if c.Weights != "" || c.PlainWeights != "" {
		trained = fmt.Sprintf("networks from %s and %s (given checkpoints where named; others trained with %s)", res.ResidualModel, res.PlainModel, c.Budget.recipe())
	}
	r.Printf("%s; errors on %d test images. A deleted block passes its input through its shortcut only (the downsampling blocks keep their option-A shortcut).\n", trained, images)
	inc := identityIncreases(res)
	r.Printf("| | intact | median increase, one identity block deleted | worst |\n|---|---|---|---|")
	r.Printf("| %s | %.2f%% | %+.2f points | %.2f%% |", c.Model, 100*res.BaseError, median(inc), 100*maxOf(res.DeleteOne))
	r.Printf("| %s | %.2f%% | %+.2f points (mean) | %.2f%% |", c.Plain, 100*res.PlainBase, 100*(meanOf(res.PlainDelete)-res.PlainBase), 100*maxOf(res.PlainDelete))
	r.Printf("\nk random identity blocks deleted (mean of %d draws): %s.", c.Draws, joinPct(res.DeleteK))
	for _, o := range res.Reorder {
		r.Printf("- %d swaps: Kendall τ %.3f, error %.2f%%", o.Swaps, o.Kendall, 100*o.Error)
	}
	r.Printf("\nPath gradient: ln ‖dL/dh‖ = %.3f·k + const (R² %.3f); the C(%d,k)-weighted total peaks at k = %d (binomial centre %.1f).",
		res.PathFitSlope, res.PathFitR2, res.Blocks, argmax(res.TotalGrad), float64(res.Blocks)/2)
}

func joinPct(v []float64) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%.2f%%", 100*x)
	}
	return s
}

// identityIncreases returns the error increases (points) from deleting each
// identity block of the residual network.
func identityIncreases(res *EnsembleResult) []float64 {
	var v []float64
	for i, ok := range res.Deletable {
		if ok {
			v = append(v, 100*(res.DeleteOne[i]-res.BaseError))
		}
	}
	return v
}

func argmax(v []float64) int {
	best := -1
	for i, x := range v {
		if !math.IsNaN(x) && (best < 0 || x > v[best]) {
			best = i
		}
	}
	return best
}

// logLinearFit fits ln v against the index and returns the slope and R²
// (entries that are not positive are left out; NaN with fewer than three
// left).
func logLinearFit(v []float64) (slope, r2 float64) {
	var x, y []float64
	for i, g := range v {
		if g > 0 && !math.IsInf(g, 0) {
			x, y = append(x, float64(i)), append(y, math.Log(g))
		}
	}
	if len(x) < 3 {
		return math.NaN(), math.NaN()
	}
	slope, icpt := fitLine(x, y)
	my, _ := meanSpread(y)
	var ssr, sst float64
	for i := range x {
		e := y[i] - (slope*x[i] + icpt)
		ssr += e * e
		sst += (y[i] - my) * (y[i] - my)
	}
	if sst == 0 {
		return slope, 1
	}
	return slope, 1 - ssr/sst
}

// spearman returns the rank correlation of x and y (average ranks for
// ties).
func spearman(x, y []float64) float64 {
	if len(x) != len(y) || len(x) < 2 {
		return math.NaN()
	}
	rx, ry := ranks(x), ranks(y)
	mx, _ := meanSpread(rx)
	my, _ := meanSpread(ry)
	var sxy, sxx, syy float64
	for i := range rx {
		sxy += (rx[i] - mx) * (ry[i] - my)
		sxx += (rx[i] - mx) * (rx[i] - mx)
		syy += (ry[i] - my) * (ry[i] - my)
	}
	if sxx == 0 || syy == 0 {
		return math.NaN()
	}
	return sxy / math.Sqrt(sxx*syy)
}

func ranks(v []float64) []float64 {
	idx := seqInts(len(v))
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
			j++
		}
		for k := i; k <= j; k++ {
			r[idx[k]] = float64(i+j)/2 + 1
		}
		i = j + 1
	}
	return r
}

// EnsembleClaims tests Veit et al. 2016's claims on an ensemble result:
// deleting one identity block raises the error by a median of ≤ 1 point
// and by ≤ 2 points for ≥ 80% of the blocks; each downsampling block costs
// more than that median; deleting any deletable layer of the plain network
// leaves it at ≥ 60% error; with k random blocks deleted the mean error
// never falls by more than 0.5 points from k to k+1 and no single step
// makes more than a third of the rise from none to the most deleted
// (smooth, not a cliff); the error rises as re-orderings depart from the
// trained order (Spearman correlation of error with −τ ≥ 0.65, the 5%
// two-sided critical value for 10 pairs); and the loss gradient through
// paths of length k is log-linear in k (R² ≥ 0.9) with the C(n,k)-weighted
// total peaking at k ≤ 9.
func EnsembleClaims(res *EnsembleResult) []Claim {
	const lesion, reorder, paths = "Veit et al. 2016, Fig. 3 (CIFAR-10)", "Veit et al. 2016, Fig. 5b", "Veit et al. 2016, Fig. 6"
	inc := identityIncreases(res)
	med := median(inc)
	within2 := math.NaN()
	if len(inc) > 0 {
		k := 0
		for _, v := range inc {
			if v <= 2 {
				k++
			}
		}
		within2 = float64(k) / float64(len(inc))
	}
	claims := []Claim{
		AtMost("deleting one identity block raises the test error by a median of ≤ 1 point (measured: the median increase, points)", lesion, med, 1),
		AtLeast("≥ 80% of identity-block deletions cost ≤ 2 points (measured: the fraction)", lesion, within2, 0.8),
	}
	down := math.Inf(1)
	nd := 0
	for i, ok := range res.Deletable {
		if !ok {
			down = math.Min(down, 100*(res.DeleteOne[i]-res.BaseError))
			nd++
		}
	}
	if nd == 0 {
		down = math.NaN()
	}
	claims = append(claims, Claim{Claim: "each downsampling block costs more than the median identity block (measured: the cheapest downsampling block's increase, points)",
		Source: lesion, Measured: down, Criterion: "> " + FormatNumber(med) + " points (the median)", Pass: down > med})
	plainMin := math.Inf(1)
	np := 0
	for _, e := range res.PlainDelete {
		if !math.IsNaN(e) {
			plainMin = math.Min(plainMin, 100*e)
			np++
		}
	}
	if np == 0 {
		plainMin = math.NaN()
	}
	claims = append(claims, AtLeast("deleting any one layer of the plain network leaves it at ≥ 60% test error (measured: the lowest such error, %)", lesion, plainMin, 60))
	drop, jump := math.NaN(), math.NaN()
	if len(res.DeleteK) >= 3 {
		drop, jump = math.Inf(-1), 0
		rise := 100 * (res.DeleteK[len(res.DeleteK)-1] - res.DeleteK[0])
		for k := 1; k < len(res.DeleteK); k++ {
			d := 100 * (res.DeleteK[k] - res.DeleteK[k-1])
			drop, jump = math.Max(drop, -d), math.Max(jump, d)
		}
		if rise > 0 {
			jump /= rise
		} else {
			jump = math.NaN()
		}
	}
	claims = append(claims,
		AtMost("error grows with the number k of deleted blocks: the largest fall from k to k+1 (points)", "Veit et al. 2016, Fig. 5a", drop, 0.5),
		AtMost("… smoothly: the largest step from k to k+1 as a fraction of the whole rise", "Veit et al. 2016, Fig. 5a", jump, 1.0/3))
	var tau, errs []float64
	for _, o := range res.Reorder {
		tau, errs = append(tau, -o.Kendall), append(errs, o.Error)
	}
	claims = append(claims, AtLeast("error rises as the block order departs from the trained one (Spearman correlation of error with −Kendall τ)", reorder, spearman(tau, errs), 0.65))
	claims = append(claims, AtLeast("the loss gradient through a path falls log-linearly with its length k (R² of ln ‖dL/dh‖ on k)", paths, res.PathFitR2, 0.9))
	peak := float64(argmax(res.TotalGrad))
	if peak < 0 {
		peak = math.NaN()
	}
	// Short: within the first third of the lengths, 9 of ResNet-110's 27
	// blocks, as Veit et al. find (5–17 of 54); a fixed 9 passed any
	// network of 9 blocks or fewer, whatever its peak.
	claims = append(claims, AtMost(fmt.Sprintf("the total gradient of all paths of length k, C(%d,k)·g_k, peaks at short paths, within the first third of the lengths (measured: the k of the peak)", res.Blocks), paths, peak, float64(res.Blocks)/3))
	return claims
}

// flatBlocks lists the (stage, index) of every block.
func flatBlocks(n *resnet.Net) [][2]int {
	var out [][2]int
	for s, stage := range n.Stages() {
		for i := range stage {
			out = append(out, [2]int{s, i})
		}
	}
	return out
}

// deletable reports whether a block keeps its input shape: deleting it
// leaves a working network even without a shortcut (a plain network).
// The first block of every stage after the first downsamples.
func deletable(b [2]int) bool {
	return !(b[0] > 0 && b[1] == 0)
}

// reordered swaps swaps random pairs of identity blocks within a stage of
// net, measures with eval, restores the order and returns Kendall's τ
// between the new and the original order of all blocks, and the measure.
func reordered(net *resnet.Net, swaps int, rng *tensor.RNG, eval func() float64) (tau, measured float64) {
	stages := net.Stages()
	type pos struct{ s, i int }
	var movable []pos
	for s, st := range stages {
		for i := range st {
			if deletable([2]int{s, i}) {
				movable = append(movable, pos{s, i})
			}
		}
	}
	// order[s][i] is the original index of the block now at (s, i).
	order := make([][]int, len(stages))
	for s, st := range stages {
		order[s] = seqInts(len(st))
	}
	var done [][2]pos
	for k := 0; k < swaps; k++ {
		a := movable[rng.IntN(len(movable))]
		var same []pos
		for _, p := range movable {
			if p.s == a.s && p.i != a.i {
				same = append(same, p)
			}
		}
		if len(same) == 0 {
			continue
		}
		b := same[rng.IntN(len(same))]
		st := stages[a.s]
		st[a.i], st[b.i] = st[b.i], st[a.i]
		order[a.s][a.i], order[a.s][b.i] = order[a.s][b.i], order[a.s][a.i]
		done = append(done, [2]pos{a, b})
	}
	measured = eval()
	for k := len(done) - 1; k >= 0; k-- {
		a, b := done[k][0], done[k][1]
		st := stages[a.s]
		st[a.i], st[b.i] = st[b.i], st[a.i]
	}
	var flat []float64
	off := 0
	for _, o := range order {
		for _, v := range o {
			flat = append(flat, float64(off+v))
		}
		off += len(o)
	}
	return kendall(flat), measured
}

// kendall returns Kendall's τ between the sequence v and its sorted order.
func kendall(v []float64) float64 {
	n := len(v)
	if n < 2 {
		return 1
	}
	c := 0
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if v[i] < v[j] {
				c++
			} else if v[i] > v[j] {
				c--
			}
		}
	}
	return float64(c) / float64(n*(n-1)/2)
}

// pathGradNorm measures the loss gradient at the first block's input along
// paths that pass through the residual branches of the blocks in branch and
// through the shortcuts of all others (Veit et al. 2016): the whole
// network runs forward (in evaluation mode), and the backward pass is
// routed. It returns the mean over the batch of each image's gradient norm
// (the loss summed over the batch, so that each image's gradient is that
// of its own loss).
func pathGradNorm(net *resnet.Net, blocks [][2]int, branch []int, x *tensor.Tensor, y []int32) (float64, error) {
	on := map[int]bool{}
	for _, i := range branch {
		on[i] = true
	}
	stages := net.Stages()
	for i, b := range blocks {
		j := resnet.JoinOf(stages[b[0]][b[1]])
		if on[i] {
			j.Route = resnet.RouteBranch
		} else {
			j.Route = resnet.RouteSkip
		}
	}
	defer func() {
		for _, b := range blocks {
			resnet.JoinOf(stages[b[0]][b[1]]).Route = resnet.RouteBoth
		}
	}()
	nn.SetTraining(net, false)
	if net.Config.Stem == "imagenet" {
		return 0, fmt.Errorf("experiments: path gradients need a CIFAR-style stem")
	}
	stem := ag.NewNoGradTape()
	h0 := stem.Constant(x)
	if net.BN1 != nil {
		h0 = ag.ReLU(net.BN1.Forward(net.Conv1.Forward(h0)))
	} else {
		h0 = net.Conv1.Forward(h0)
	}
	tape := ag.NewTape()
	hv := tape.Variable(h0.Tensor().Clone())
	h := hv
	for _, st := range stages {
		for _, b := range st {
			h = b.Forward(h)
		}
	}
	switch {
	case net.BN != nil:
		h = ag.ReLU(net.BN.Forward(h))
	case net.Config.Ordering == resnet.ReLUOnlyPreAct:
		h = ag.ReLU(h)
	}
	logits := net.FC.Forward(ag.GlobalAvgPool(h))
	loss, err := ag.CrossEntropy(logits, y, ag.CrossEntropyOptions{Sum: true})
	if err != nil {
		return 0, fmt.Errorf("experiments: path gradient: %w", err)
	}
	tape.Backward(loss)
	g := hv.Grad.Data
	nimg := x.Shape[0]
	per := len(g) / nimg
	s := 0.0
	for i := 0; i < nimg; i++ {
		var q float64
		for _, v := range g[i*per : (i+1)*per] {
			q += float64(v) * float64(v)
		}
		s += math.Sqrt(q)
	}
	return s / float64(nimg), nil
}
