package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
	"github.com/residual-nn/residual/train"
)

// readClaimsN checks that dir/claims.json holds n claims with every field
// and returns them.
func readClaimsN(t *testing.T, dir string, n int) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "claims.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s/claims.json: %v", dir, err)
	}
	if len(got) != n {
		t.Errorf("%s/claims.json has %d claims, want %d:\n%s", dir, len(got), n, b)
	}
	for _, c := range got {
		for _, k := range []string{"claim", "source", "measured", "criterion", "pass"} {
			if _, ok := c[k]; !ok {
				t.Errorf("%s/claims.json: a claim lacks %q: %v", dir, k, c)
			}
		}
		if _, ok := c["pass"].(bool); !ok {
			t.Errorf("%s/claims.json: pass is not a boolean: %v", dir, c)
		}
	}
	return got
}

// The training experiments in their quick mode (the configurations behind
// --quick): they run end to end and write their outputs and claims; path
// counts are exactly binomial; and deleting one block of a trained ResNet
// raises its error less than deleting a layer of a plain network of the
// same depth raises the plain network's (Veit et al. 2016). Whether the
// claims pass needs the default protocols (docs/EXPERIMENTS.md); the
// criteria themselves are tested on synthetic numbers below.
func TestTrainingExperimentsQuick(t *testing.T) {
	if kernels.Active() == kernels.Generic {
		t.Skip("about thirty small training runs: under a minute on the assembly kernels, over 10 minutes on the pure-Go reference kernels " +
			"(RESIDUAL_KERNELS=generic, CI's second pass, which checks the kernels' correctness); CI's main pass runs this test")
	}
	ctx := context.Background()
	dir := t.TempDir()
	deg := filepath.Join(dir, "degradation")
	rows, err := Degradation(ctx, QuickDegradation(), deg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 8 || !rows[0].Plain || rows[2].Plain || rows[4].Seed != 2 {
		t.Fatalf("degradation rows: %+v", rows)
	}
	for _, r := range rows {
		if r.TrainError < 0 || r.TrainError > 1 || r.TestError < 0 || r.TestError > 1 || len(r.History) != 1 {
			t.Errorf("%s: train error %g, test error %g, %d epochs", r.Name, r.TrainError, r.TestError, len(r.History))
		}
	}
	readClaimsN(t, deg, 4)
	for _, f := range []string{"degradation.png", "degradation.json", "summary.md"} {
		if _, err := os.Stat(filepath.Join(deg, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}

	// The lesion comparison needs both networks to have learned something:
	// 3,000 images for 2 epochs (a plain net after 10 steps is at chance),
	// and nine blocks: a 6-block ResNet-14 at this budget loses as much as
	// its plain twin when one block goes (+0.52 and +0.53), ResNet-20
	// loses +0.26 against plain-20's +0.63.
	ensDir := filepath.Join(dir, "ensemble")
	ens, err := Ensemble(ctx, QuickEnsemble(), ensDir)
	if err != nil {
		t.Fatal(err)
	}
	if ens.Blocks != 9 {
		t.Fatalf("resnet20 has %d blocks, want 9", ens.Blocks)
	}
	want := []float64{1, 9, 36, 84, 126, 126, 84, 36, 9, 1}
	for k, c := range ens.PathCounts {
		if c != want[k] {
			t.Errorf("paths of length %d: %g, want C(9,%d) = %g", k, c, k, want[k])
		}
	}
	for k, g := range ens.PathGrad {
		if !(g > 0) || math.IsInf(g, 0) {
			t.Errorf("path gradient of length %d is %g, want a positive number", k, g)
		}
	}
	if len(ens.DeleteK) != 5 || len(ens.Reorder) != 3 {
		t.Errorf("%d deletion counts (want k = 0…4), %d re-orderings (want 3)", len(ens.DeleteK), len(ens.Reorder))
	}
	if ens.PlainBase > 0.5 || ens.BaseError > 0.5 {
		t.Fatalf("the networks did not learn: errors %.3f (residual), %.3f (plain)", ens.BaseError, ens.PlainBase)
	}
	// Compare over the same blocks: those with identity shortcuts, the
	// only ones a plain net can lose (Veit et al. delete only those too).
	var rdel, pdel []float64
	for i, ok := range ens.Deletable {
		if ok {
			rdel, pdel = append(rdel, ens.DeleteOne[i]), append(pdel, ens.PlainDelete[i])
		}
	}
	rd, pd := meanOf(rdel)-ens.BaseError, meanOf(pdel)-ens.PlainBase
	t.Logf("deleting one identity block: ResNet error +%.3f, plain +%.3f", rd, pd)
	if len(rdel) == 0 || rd >= pd {
		t.Errorf("deleting one of %d identity blocks raised the ResNet's error by %.3f, the plain net's by %.3f; want the ResNet's smaller", len(rdel), rd, pd)
	}
	readClaimsN(t, ensDir, 9)
	// A plain network shallower than the residual one (the default
	// protocol's plain-20 beside ResNet-56): its downsampling blocks sit at
	// other indices and are never deleted (deleting plain-8's second block,
	// a stage's first, once fed 16 channels to a 32-channel convolution).
	short := QuickEnsemble()
	short.Plain, short.Weights = "plain8", filepath.Join(ensDir, "runs", "resnet20", "last.safetensors")
	short.Draws, short.MaxDelete, short.Reorderings, short.PathDraws, short.EvalLimit = 1, 1, 1, 1, 200
	short.Budget.Limit, short.Budget.Epochs = 500, 1
	sh, err := Ensemble(ctx, short, filepath.Join(dir, "ensemble-short"))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range sh.PlainDelete {
		if want := i == 0; !math.IsNaN(e) != want {
			t.Errorf("plain-8 block %d deleted: error %v; want a number only for block 0 (its one identity block)", i, e)
		}
	}
	// Given weights are loaded, not retrained.
	c := QuickEnsemble()
	weights := filepath.Join(ensDir, "runs", "resnet20", "last.safetensors")
	ck, path, err := c.trainedOrLoaded(ctx, c.Model, weights, filepath.Join(dir, "again"))
	if err != nil || path != weights || ck.Net.(*resnet.Net).Config.Classes != 10 {
		t.Fatalf("loading %s: %v, %s", weights, err, path)
	}
	if _, err := os.Stat(filepath.Join(dir, "again")); !os.IsNotExist(err) {
		t.Errorf("with weights given the ensemble experiment trained anyway: %v", err)
	}
	if _, _, err := c.trainedOrLoaded(ctx, c.Model, filepath.Join(dir, "missing.safetensors"), dir); err == nil {
		t.Error("a missing checkpoint loaded")
	}

	ordDir := filepath.Join(dir, "order")
	qo := QuickOrder()
	order, err := Order(ctx, qo, ordDir)
	if err != nil || len(order) != 10 {
		t.Fatalf("order: %d rows, %v", len(order), err)
	}
	steps := (qo.Budget.Limit + qo.Budget.Batch - 1) / qo.Budget.Batch
	for _, r := range order {
		if len(r.StepLoss) != steps || len(r.FirstEpochLoss) != qo.Segments {
			t.Errorf("%s seed %d: %d step losses (want %d), %d first-epoch parts (want %d)", r.Ordering, r.Seed, len(r.StepLoss), steps, len(r.FirstEpochLoss), qo.Segments)
		}
	}
	readClaimsN(t, ordDir, 2)

	// Stopped as its second run starts and resumed, the experiment gives
	// the uninterrupted rows exactly: the finished run is evaluated again,
	// the stopped one goes on from its checkpoint (its first step's loss
	// read back from its record), the rest are trained.
	one := QuickOrder()
	one.Seeds = 1
	resDir := filepath.Join(dir, "order-resumed")
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	one.Budget.Log = &cancelAt{prefix: "training resnet", n: 2, cancel: cancel}
	if _, err := Order(cctx, one, resDir); !errors.Is(err, train.ErrInterrupted) {
		t.Fatalf("order stopped in its second run: %v", err)
	}
	// The stopped experiment's runs wait in the staging folder; the
	// output folder is not made until the experiment finishes.
	if _, err := os.Stat(filepath.Join(resDir+".partial", "runs", "post-seed1")); err != nil {
		t.Errorf("the stopped experiment's first run: %v", err)
	}
	if _, err := os.Lstat(resDir); !os.IsNotExist(err) {
		t.Errorf("the stopped experiment made %s (%v)", resDir, err)
	}
	one.Budget.Log, one.Budget.Resume = nil, true
	again, err := Order(ctx, one, resDir)
	if err != nil || len(again) != len(Orderings) {
		t.Fatalf("order resumed: %d rows, %v", len(again), err)
	}
	for i, r := range again {
		w := order[i]
		if r.Ordering != w.Ordering || r.TrainError != w.TrainError || r.TestError != w.TestError || !slices.Equal(r.StepLoss, w.StepLoss) {
			t.Errorf("%s resumed: train error %v, test error %v, step losses %v; uninterrupted %v, %v, %v",
				r.Ordering, r.TrainError, r.TestError, r.StepLoss, w.TrainError, w.TestError, w.StepLoss)
		}
	}
	folderHolds(t, resDir, map[string]string{"summary.md": "", "claims.json": "", "order.json": "", "order.png": "", "runs": ""})
	// A run trained to another recipe is refused, naming the difference
	// (the finished runs, copied to be resumed), and the finished
	// experiment is left as it is.
	one.Budget.Epochs = 2
	if _, err := Order(ctx, one, resDir); err == nil || !strings.Contains(err.Error(), "epochs 1 → 2") {
		t.Errorf("order resumed with 2 epochs over runs of 1: %v", err)
	}
	if _, err := os.Stat(filepath.Join(resDir, "runs", "post-seed1", train.LastCheckpoint)); err != nil {
		t.Errorf("the finished experiment's run: %v", err)
	}

	segDir := filepath.Join(dir, "segment-unet")
	seg, err := SegmentUNet(ctx, QuickSegmentUNet(), segDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(seg) != 6 { // per seed: padded whole and tiled, valid overlap-tile
		t.Fatalf("segment-unet rows: %+v", seg)
	}
	for _, r := range seg {
		if !(r.MeanIoU >= 0 && r.MeanIoU <= 1) || !(r.PixelAcc >= 0 && r.PixelAcc <= 1) || r.Params == 0 { // 50 steps: not trained, only run
			t.Errorf("%s (%s): mean IoU %g, pixel accuracy %g", r.Net, r.Inference, r.MeanIoU, r.PixelAcc)
		}
	}
	readClaimsN(t, segDir, 1)
}

// cancelAt is a log that calls cancel when the n-th line starting with
// prefix is written.
type cancelAt struct {
	prefix string
	n      int
	cancel func()
}

func (c *cancelAt) Write(p []byte) (int, error) {
	if strings.HasPrefix(string(p), c.prefix) {
		if c.n--; c.n == 0 {
			c.cancel()
		}
	}
	return len(p), nil
}

// The degradation criteria on synthetic training errors: a plain curve
// rising 10 → 12 → 14 → 16% with seeds 1 point apart and residual nets at
// 8 and 8.3% pass every claim; a plain-44 below plain-32 fails the
// monotone rise only; seeds 7 points apart fail the spread claim only; a
// ResNet-56 0.6 points above ResNet-20 fails the last.
func TestDegradationClaims(t *testing.T) {
	mk := func(plain map[int][2]float64, res map[int][2]float64) []DegradationRow {
		var rows []DegradationRow
		for _, set := range []struct {
			plain bool
			m     map[int][2]float64
		}{{true, plain}, {false, res}} {
			for d, v := range set.m {
				for s, e := range v {
					rows = append(rows, DegradationRow{Depth: d, Plain: set.plain, Seed: uint64(s + 1), TrainError: e / 100})
				}
			}
		}
		return rows
	}
	res := map[int][2]float64{20: {8, 8}, 56: {8.2, 8.4}}
	good := map[int][2]float64{20: {9.5, 10.5}, 32: {11.5, 12.5}, 44: {13.5, 14.5}, 56: {15.5, 16.5}}
	check := func(name string, rows []DegradationRow, want []bool) {
		t.Helper()
		got := DegradationClaims(rows)
		if len(got) != len(want) {
			t.Fatalf("%s: %d claims, want %d", name, len(got), len(want))
		}
		for i := range want {
			if got[i].Pass != want[i] {
				t.Errorf("%s: claim %q (measured %g, %s): pass %v, want %v", name, got[i].Claim, got[i].Measured, got[i].Criterion, got[i].Pass, want[i])
			}
		}
	}
	check("good", mk(good, res), []bool{true, true, true, true})
	if c := DegradationClaims(mk(good, res)); math.Abs(c[1].Measured-6) > 1e-9 || math.Abs(c[2].Spread-1) > 1e-9 || math.Abs(c[3].Measured-0.3) > 1e-9 {
		t.Errorf("gap %g (want 6), spread %g (want 1), residual difference %g (want 0.3)", c[1].Measured, c[2].Spread, c[3].Measured)
	}
	dip := map[int][2]float64{20: {9.5, 10.5}, 32: {11.5, 12.5}, 44: {11, 11}, 56: {15.5, 16.5}}
	check("dip", mk(dip, res), []bool{false, true, true, true})
	wide := map[int][2]float64{20: {6.5, 13.5}, 32: {11.5, 12.5}, 44: {13.5, 14.5}, 56: {15.5, 16.5}}
	check("wide seeds", mk(wide, res), []bool{true, true, false, true})
	check("resnet56 worse", mk(good, map[int][2]float64{20: {8, 8}, 56: {8.6, 8.6}}), []bool{true, true, true, false})
}

// The ordering criteria on synthetic runs: (b) above (a) in every part of
// the first epoch for both seeds passes, one part below fails; final test
// errors (b, c) 2 points above (a, d, e) with seeds 0.5 apart pass, 0.4
// points above fail.
func TestOrderClaims(t *testing.T) {
	mk := func(bBelow bool, gap float64) []OrderRow {
		var rows []OrderRow
		for _, seed := range []uint64{1, 2} {
			for _, o := range Orderings {
				base := 0.10 + 0.005*float64(seed-1)
				loss := []float64{2, 1.5, 1.2, 1}
				if o == resnet.BNAfterAdd || o == resnet.ReLUBeforeAdd {
					base += gap / 100
				}
				if o == resnet.BNAfterAdd {
					loss = []float64{2.2, 1.7, 1.3, 1.1}
					if bBelow && seed == 2 {
						loss[3] = 0.9
					}
				}
				rows = append(rows, OrderRow{Ordering: o, Seed: seed, TestError: base, FirstEpochLoss: loss})
			}
		}
		return rows
	}
	for _, tc := range []struct {
		bBelow    bool
		gap       float64
		want0, w1 bool
		measured0 float64
	}{{false, 2, true, true, 1}, {true, 2, false, true, 0.75}, {false, 0.4, true, false, 1}} {
		c := OrderClaims(mk(tc.bBelow, tc.gap))
		if len(c) != 2 || c[0].Pass != tc.want0 || c[1].Pass != tc.w1 || c[0].Measured != tc.measured0 {
			t.Errorf("b below %v, gap %g: claims %+v", tc.bBelow, tc.gap, c)
		}
		if math.Abs(c[1].Measured-tc.gap) > 1e-9 || math.Abs(c[1].Spread-0.5) > 1e-9 {
			t.Errorf("gap %g, spread %g; want %g, 0.5", c[1].Measured, c[1].Spread, tc.gap)
		}
	}
	// A missing ordering fails instead of passing on what is left.
	rows := mk(false, 2)
	if c := OrderClaims(rows[:4]); c[1].Pass || !math.IsNaN(c[1].Measured) {
		t.Errorf("without (e) the ranking claim is %+v", c[1])
	}
}

// The ensemble criteria on a synthetic lesion study of a 27-block network
// (blocks 9 and 18 downsample): identity deletions costing 0…1.2 points,
// downsampling blocks costing 8, plain deletions at 70–90%, a smooth
// deletion curve, a re-ordering curve rising as τ falls, and path
// gradients falling by e^−1 per branch pass every claim; a cliff, a plain
// layer at 40%, a flat path gradient and one falling by only e^−0.5 per
// branch fail theirs.
func TestEnsembleClaims(t *testing.T) {
	mk := func(slope float64) *EnsembleResult {
		res := &EnsembleResult{Blocks: 27, BaseError: 0.07, PlainBase: 0.08}
		for i := 0; i < 27; i++ {
			ok := i != 9 && i != 18
			res.Deletable = append(res.Deletable, ok)
			inc := 0.05 * float64(i%25)
			if !ok {
				inc = 8
			}
			res.DeleteOne = append(res.DeleteOne, res.BaseError+inc/100)
			pe := math.NaN()
			if ok {
				pe = 0.7 + 0.2*float64(i)/27
			}
			res.PlainDelete = append(res.PlainDelete, pe)
		}
		for k := 0; k <= 10; k++ {
			res.DeleteK = append(res.DeleteK, 0.07+0.01*float64(k*k)/4)
		}
		for s := 1; s <= 10; s++ {
			res.Reorder = append(res.Reorder, Reordering{Swaps: s, Kendall: 1 - 0.05*float64(s), Error: 0.07 + 0.01*float64(s)})
		}
		for k := 0; k <= 27; k++ {
			g := math.Exp(slope * float64(k))
			res.PathCounts = append(res.PathCounts, binomial(27, k))
			res.PathGrad = append(res.PathGrad, g)
			res.TotalGrad = append(res.TotalGrad, binomial(27, k)*g)
		}
		res.PathFitSlope, res.PathFitR2 = logLinearFit(res.PathGrad)
		return res
	}
	res := mk(-1)
	c := EnsembleClaims(res)
	if len(c) != 9 {
		t.Fatalf("%d claims", len(c))
	}
	for _, cl := range c {
		if !cl.Pass {
			t.Errorf("synthetic pass case: %q measured %g, %s: failed", cl.Claim, cl.Measured, cl.Criterion)
		}
	}
	// (Sums of float64 fractions: compared at 1e-9.) The identity increases
	// are 0.05·(i mod 25) points for the 25 blocks
	// i ≠ 9, 18: 0, 0, 0.05, 0.1, …, sorted; the 13th of 25 is 0.55.
	if math.Abs(c[0].Measured-0.55) > 1e-9 || c[1].Measured != 1 || math.Abs(c[2].Measured-8) > 1e-9 || math.Abs(c[3].Measured-70) > 1e-9 {
		t.Errorf("median increase %g (want 0.55), fraction within 2 points %g (want 1), cheapest downsampling %g (want 8), lowest plain error %g (want 70)",
			c[0].Measured, c[1].Measured, c[2].Measured, c[3].Measured)
	}
	// Steps of (2k−1)/4 points: the largest, 4.75, is 0.19 of the 25-point rise.
	if math.Abs(c[4].Measured+0.25) > 1e-9 || math.Abs(c[5].Measured-0.19) > 1e-9 || math.Abs(c[6].Measured-1) > 1e-12 {
		t.Errorf("largest fall %g (want −0.25), largest step fraction %g (want 0.19), Spearman %g (want 1)", c[4].Measured, c[5].Measured, c[6].Measured)
	}
	if math.Abs(res.PathFitSlope+1) > 1e-9 || math.Abs(res.PathFitR2-1) > 1e-9 {
		t.Errorf("log-linear fit slope %g R² %g, want −1 and 1", res.PathFitSlope, res.PathFitR2)
	}
	// C(27,k)·e^−k peaks where (27−k)/(k+1)·e^−1 falls below 1: k = 7; with
	// e^−k/2, at k = 10.
	if c[8].Measured != 7 {
		t.Errorf("peak at k = %g, want 7", c[8].Measured)
	}
	// Broken cases.
	cliff := mk(-1)
	cliff.DeleteK[5] += 0.2 // a jump of 20 points and a fall after it
	plain := mk(-1)
	plain.PlainDelete[3] = 0.4
	long := mk(-0.5)
	flat := mk(-1)
	for k := range flat.PathGrad {
		flat.PathGrad[k] = 1 + 0.5*math.Sin(float64(k))
		flat.TotalGrad[k] = flat.PathCounts[k] * flat.PathGrad[k]
	}
	flat.PathFitSlope, flat.PathFitR2 = logLinearFit(flat.PathGrad)
	// A network of 9 blocks whose total gradient peaks at k = 5, past the
	// binomial centre: not short paths (a fixed bound of 9 passed it).
	small := mk(-1)
	small.Blocks, small.TotalGrad = 9, nil
	for k := 0; k <= 9; k++ {
		small.TotalGrad = append(small.TotalGrad, binomial(9, k)*math.Exp(0.1*float64(k)))
	}
	for _, tc := range []struct {
		name string
		res  *EnsembleResult
		fail []int
	}{{"cliff", cliff, []int{4, 5}}, {"plain", plain, []int{3}}, {"flat", flat, []int{7, 8}}, {"long paths", long, []int{8}}, {"9 blocks, peak past the centre", small, []int{8}}} {
		got := EnsembleClaims(tc.res)
		for _, i := range tc.fail {
			if got[i].Pass {
				t.Errorf("%s: %q (measured %g, %s) passed", tc.name, got[i].Claim, got[i].Measured, got[i].Criterion)
			}
		}
	}
}

// Kendall's τ, Spearman's ρ, the log-linear fit and the first epoch's
// parts on numbers worked by hand.
func TestEnsembleStatistics(t *testing.T) {
	if k := kendall([]float64{0, 1, 2, 3}); k != 1 {
		t.Errorf("τ of the sorted order %g", k)
	}
	if k := kendall([]float64{3, 2, 1, 0}); k != -1 {
		t.Errorf("τ of the reversed order %g", k)
	}
	if k := kendall([]float64{1, 0, 2, 3}); math.Abs(k-4.0/6) > 1e-12 { // one discordant pair of six
		t.Errorf("τ after one swap %g, want 2/3", k)
	}
	if r := spearman([]float64{1, 2, 3, 4}, []float64{10, 20, 30, 50}); math.Abs(r-1) > 1e-12 {
		t.Errorf("ρ of monotone data %g", r)
	}
	if r := spearman([]float64{1, 2, 3}, []float64{1, 1, 1}); !math.IsNaN(r) {
		t.Errorf("ρ with a constant %g, want NaN", r)
	}
	if got := ranks([]float64{5, 1, 5, 3}); got[0] != 3.5 || got[1] != 1 || got[2] != 3.5 || got[3] != 2 {
		t.Errorf("ranks with ties %v", got)
	}
	if s, r2 := logLinearFit([]float64{1, math.E, math.E * math.E, 0}); math.Abs(s-1) > 1e-12 || math.Abs(r2-1) > 1e-12 {
		t.Errorf("fit of e^k (a zero left out): slope %g R² %g", s, r2)
	}
	if got := segmentMeans([]float64{1, 3, 5, 7, 100}, 4, 2); got[0] != 2 || got[1] != 6 {
		t.Errorf("first-epoch parts %v, want [2 6] (the second epoch's 100 left out)", got)
	}
}

// The re-ordering swaps blocks within a stage, never a downsampling block,
// and puts them back.
func TestReorderedRestores(t *testing.T) {
	net := buildResNet(t, "resnet20")
	before := append([]any(nil), anyOf(net.Layer1)...)
	before = append(before, anyOf(net.Layer2)...)
	down := net.Layer2[0]
	var tau float64
	var seen bool
	tau, _ = reordered(net, 3, tensorRNG(5), func() float64 {
		seen = net.Layer2[0] == down
		return 0
	})
	if !seen {
		t.Error("a downsampling block was moved")
	}
	if tau >= 1 || tau < 0 {
		t.Errorf("τ after 3 swaps %g", tau)
	}
	after := append(anyOf(net.Layer1), anyOf(net.Layer2)...)
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("block %d not restored", i)
		}
	}
}

// mirrorSet extends images and masks by reflection about the edge pixels.
func TestMirrorSet(t *testing.T) {
	d := &data.Dataset{H: 2, W: 3, C: 1, Classes: []string{"a", "b"}, Pixels: []uint8{1, 2, 3, 4, 5, 6}, Masks: []uint8{0, 1, 0, 1, 1, 0}}
	m := mirrorSet(d, 1)
	if m.H != 4 || m.W != 5 || m.Len() != 1 {
		t.Fatalf("mirrored set %dx%d with %d images", m.H, m.W, m.Len())
	}
	want := []uint8{5, 4, 5, 6, 5, 2, 1, 2, 3, 2, 5, 4, 5, 6, 5, 2, 1, 2, 3, 2}
	for i, v := range want {
		if m.Pixels[i] != v {
			t.Fatalf("pixels %v, want %v", m.Pixels, want)
		}
	}
	if m.Masks[6] != 0 || m.Masks[7] != 1 || m.Masks[1] != 1 {
		t.Errorf("mask %v", m.Masks)
	}
}

// The U-Net criterion pairs the seeds: differences of +0.01 and −0.005
// pass (mean 0.0025), −0.03 and −0.02 fail; the tiled padded rows are not
// the padded reference; untrained networks (mean IoU 0.01) fail.
func TestUNetClaims(t *testing.T) {
	mk := func(d1, d2 float64) []UNetRow {
		return []UNetRow{
			{Net: "padded", Seed: 1, Inference: "whole image", MeanIoU: 0.9}, {Net: "padded", Seed: 1, Inference: "64-pixel tiles without context", MeanIoU: 0.5},
			{Net: "valid", Seed: 1, MeanIoU: 0.9 + d1},
			{Net: "padded", Seed: 2, Inference: "whole image", MeanIoU: 0.8}, {Net: "valid", Seed: 2, MeanIoU: 0.8 + d2},
		}
	}
	if c := UNetClaims(mk(0.01, -0.005)); !c[0].Pass || math.Abs(c[0].Measured-0.0025) > 1e-12 || c[0].Seeds != 2 {
		t.Errorf("pass case: %+v", c[0])
	}
	if c := UNetClaims(mk(-0.03, -0.02)); c[0].Pass {
		t.Errorf("fail case: %+v", c[0])
	}
	// Three seeds whose sum depends on its order in the last bit: the
	// claim is the same bit for bit on every call (the seeds were summed
	// in a map's order, which Go randomises).
	three := []UNetRow{
		{Net: "padded", Seed: 1, Inference: "whole image"}, {Net: "valid", Seed: 1, MeanIoU: 0.8607253439545516},
		{Net: "padded", Seed: 2, Inference: "whole image"}, {Net: "valid", Seed: 2, MeanIoU: 0.8975241618860579},
		{Net: "padded", Seed: 3, Inference: "whole image"}, {Net: "valid", Seed: 3, MeanIoU: 0.8079453623373872},
	}
	first := UNetClaims(three)[0]
	for range 100 {
		if c := UNetClaims(three)[0]; c.Measured != first.Measured || c.Spread != first.Spread {
			t.Fatalf("three seeds: measured %v (spread %v), then %v (%v)", first.Measured, first.Spread, c.Measured, c.Spread)
		}
	}
	if c := UNetClaims(mk(0, 0)[:2]); c[0].Pass || c[0].Seeds != 0 {
		t.Errorf("no valid U-Net: %+v", c[0])
	}
	untrained := mk(0, 0)
	for i := range untrained {
		untrained[i].MeanIoU = 0.01
	}
	if c := UNetClaims(untrained); c[0].Pass || c[0].Measured != 0 {
		t.Errorf("two untrained U-Nets agree, and must not pass: %+v", c[0])
	}
}

func buildResNet(t *testing.T, name string) *resnet.Net {
	t.Helper()
	l, err := models.Build(preset(name), tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	return l.(*resnet.Net)
}

func anyOf(l []nn.Layer) []any {
	out := make([]any, len(l))
	for i, v := range l {
		out[i] = v
	}
	return out
}

func tensorRNG(seed uint64) *tensor.RNG { return tensor.NewRNG(seed) }

// A resumed run whose step record lacks steps (a run folder from before the
// record was kept) is refused by the experiment that compares step losses.
func TestWholeStepLoss(t *testing.T) {
	whole := &train.Result{History: []train.Metrics{{Epoch: 1, Step: 3}}, StepLoss: []float64{2.3, 2.2, 2.1}}
	if err := wholeStepLoss(whole, "d"); err != nil {
		t.Errorf("a whole record: %v", err)
	}
	part := &train.Result{History: []train.Metrics{{Epoch: 1, Step: 3}}, StepLoss: []float64{2.1}}
	if err := wholeStepLoss(part, "d"); err == nil || !strings.Contains(err.Error(), "holds 1 of its 3 steps") {
		t.Errorf("a record of 1 step of 3: %v", err)
	}
}
