package experiments

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
	"github.com/residual-nn/residual/train"
)

// Budget is the training recipe shared by every network of a training
// experiment, so that they are compared on equal terms.
type Budget struct {
	Data   string // e.g. "fashion-mnist"
	Limit  int    // training (and test) images used; 0: all
	Epochs int
	Batch  int
	LR     float64
	// Warmup is the fraction of the steps over which the learning rate
	// rises linearly from 0 before the cosine decay (0: none). Deep
	// networks at lr 0.1 need it in short runs (He et al. 2015 warmed
	// ResNet-110 up at lr 0.01).
	Warmup float64
	Seed   uint64
	Log    io.Writer // progress; nil for none
}

// schedule returns the learning-rate schedule: a cosine, after a linear
// warm-up over the fraction Warmup of the run.
func (b Budget) schedule() train.Schedule {
	return train.Schedule{Kind: train.ScheduleCosine, WarmupEpochs: b.Warmup * float64(b.Epochs)}
}

// recipe describes the budget's training recipe for a report.
func (b Budget) recipe() string {
	s := fmt.Sprintf("SGD, momentum 0.9, lr %g cosine", b.LR)
	if b.Warmup > 0 {
		s = fmt.Sprintf("SGD, momentum 0.9, lr %g cosine after a linear warm-up over %.0f%% of the steps", b.LR, 100*b.Warmup)
	}
	return s
}

// trained trains one network and returns its result and checkpoint path.
func (b Budget) trained(ctx context.Context, mc models.Config, dir string) (*train.Result, string, error) {
	log := b.Log
	if log == nil {
		log = io.Discard
	}
	fmt.Fprintf(log, "training %s (%d epochs on %s)\n", mc.Name, b.Epochs, b.Data)
	res, err := train.Run(ctx, train.Config{Model: mc, Data: b.Data, Epochs: b.Epochs, Batch: b.Batch, Optimizer: "sgd", LR: b.LR,
		Momentum: 0.9, WeightDecay: 1e-4, Schedule: b.schedule(), Augment: &data.Augment{Pad: 2}, Seed: b.Seed, Limit: b.Limit,
		Out: dir, Overwrite: true, Log: log}) // an experiment re-run replaces its runs
	if err != nil {
		return nil, "", fmt.Errorf("experiments: training %s: %w", mc.Name, err)
	}
	return res, filepath.Join(dir, train.LastCheckpoint), nil
}

func preset(name string) models.Config {
	c, err := models.Preset(name)
	if err != nil {
		panic(err)
	}
	return c
}

// DegradationConfig: plain-N against ResNet-N (He et al. 2015, Fig. 6).
type DegradationConfig struct {
	Depths []int
	Budget Budget
}

// DefaultDegradation trains plain and residual 20/32/44/56 on 10,000
// Fashion-MNIST images for 2 epochs (minutes); --full in the CLI uses all
// 60,000 for 20 epochs.
func DefaultDegradation() DegradationConfig {
	return DegradationConfig{Depths: []int{20, 32, 44, 56},
		Budget: Budget{Data: "fashion-mnist", Limit: 10000, Epochs: 2, Batch: 128, LR: 0.1, Warmup: 0.1, Seed: 1}}
}

// DegradationRow is one network's final errors.
type DegradationRow struct {
	Name       string          `json:"name"`
	Depth      int             `json:"depth"`
	Plain      bool            `json:"plain"`
	TrainError float64         `json:"train_error"`
	TestError  float64         `json:"test_error"`
	History    []train.Metrics `json:"history"`
}

// Degradation trains plain and residual networks of each depth with the
// same budget and draws their error curves.
func Degradation(ctx context.Context, c DegradationConfig, out string) ([]DegradationRow, error) {
	r, err := NewReport(out, "Degradation: plain against residual networks")
	if err != nil {
		return nil, err
	}
	var rows []DegradationRow
	var trainLines, testLines []Line
	for di, d := range c.Depths {
		for _, plain := range []bool{true, false} {
			name := fmt.Sprintf("resnet%d", d)
			if plain {
				name = fmt.Sprintf("plain%d", d)
			}
			mc := preset(name)
			res, _, err := c.Budget.trained(ctx, mc, filepath.Join(out, "runs", name))
			if err != nil {
				return nil, err
			}
			last := res.History[len(res.History)-1]
			row := DegradationRow{Name: name, Depth: d, Plain: plain, TrainError: 1 - last.TrainAcc, TestError: 1 - res.TestAccuracy, History: res.History}
			rows = append(rows, row)
			var ep, tre, tee []float64
			for _, m := range res.History {
				ep, tre, tee = append(ep, float64(m.Epoch)), append(tre, 100*(1-m.TrainAcc)), append(tee, 100*(1-m.ValAcc))
			}
			trainLines = append(trainLines, Line{Label: name, X: ep, Y: tre, Dashed: plain, Color: di})
			testLines = append(testLines, Line{Label: name, X: ep, Y: tee, Dashed: plain, Color: di})
		}
	}
	if err := r.Figure("degradation.png", 2, 440, 340,
		Panel{Title: "Training error (dashed: plain, solid: residual)", XLabel: "epoch", YLabel: "error (%)", Lines: trainLines},
		Panel{Title: "Test error", XLabel: "epoch", YLabel: "error (%)", Lines: testLines}); err != nil {
		return nil, err
	}
	b := c.Budget
	r.Printf("Same recipe for every network: %s, weight decay 1e-4, batch %d, %d epochs on %d images of %s (random 2-pixel shifts), seed %d.\n",
		b.recipe(), b.Batch, b.Epochs, b.Limit, b.Data, b.Seed)
	r.Printf("| depth | plain train error | plain test error | residual train error | residual test error |\n|---|---|---|---|---|")
	for i := 0; i+1 < len(rows); i += 2 {
		r.Printf("| %d | %.2f%% | %.2f%% | %.2f%% | %.2f%% |", rows[i].Depth, 100*rows[i].TrainError, 100*rows[i].TestError, 100*rows[i+1].TrainError, 100*rows[i+1].TestError)
	}
	r.Printf("\nHe et al. 2015 (Fig. 6): deeper plain networks reach a higher training error (degradation); deeper residual networks do not.")
	if err := r.JSON("degradation.json", rows); err != nil {
		return nil, err
	}
	return rows, r.Close()
}

// EnsembleConfig: residual networks as ensembles of paths (Veit et al.
// 2016).
type EnsembleConfig struct {
	Model, Plain string // e.g. resnet20 and plain20
	Budget       Budget
	Draws        int // random draws per number of deleted blocks and per path length
}

// DefaultEnsemble trains ResNet-20 and plain-20 on 10,000 MNIST images for
// 2 epochs.
func DefaultEnsemble() EnsembleConfig {
	return EnsembleConfig{Model: "resnet20", Plain: "plain20", Draws: 10,
		Budget: Budget{Data: "mnist", Limit: 10000, Epochs: 2, Batch: 128, LR: 0.1, Seed: 1}}
}

// EnsembleResult holds the numbers.
type EnsembleResult struct {
	Blocks        int       `json:"blocks"`
	PathCounts    []float64 `json:"path_counts"`         // C(n, k), k = 0…n
	PathGrad      []float64 `json:"path_gradient"`       // mean ‖dL/dx‖ through k active branches
	TotalGrad     []float64 `json:"total_path_gradient"` // C(n,k)·PathGrad[k]
	BaseError     float64   `json:"base_error"`          // the residual net, intact
	DeleteOne     []float64 `json:"delete_one_error"`    // error with block i deleted
	DeleteK       []float64 `json:"delete_k_error"`      // mean error with k random blocks deleted
	PlainBase     float64   `json:"plain_base_error"`    // the plain net, intact
	PlainDelete   nullable  `json:"plain_delete_error"`  // error with layer (block) i deleted; NaN (null) where impossible
	Deletable     []bool    `json:"deletable"`           // blocks whose input and output shapes agree
	ResidualModel string    `json:"residual_model"`
	PlainModel    string    `json:"plain_model"`
}

// binomial returns C(n, k) as a float.
func binomial(n, k int) float64 {
	v := 1.0
	for i := 1; i <= k; i++ {
		v = v * float64(n-k+i) / float64(i)
	}
	return math.Round(v)
}

// Ensemble trains a residual and a plain network, then deletes blocks at
// test time (lesion study) and measures gradients through paths of each
// length.
func Ensemble(ctx context.Context, c EnsembleConfig, out string) (*EnsembleResult, error) {
	r, err := NewReport(out, "Residual networks as ensembles of shallow paths")
	if err != nil {
		return nil, err
	}
	_, rpath, err := c.Budget.trained(ctx, preset(c.Model), filepath.Join(out, "runs", c.Model))
	if err != nil {
		return nil, err
	}
	_, ppath, err := c.Budget.trained(ctx, preset(c.Plain), filepath.Join(out, "runs", c.Plain))
	if err != nil {
		return nil, err
	}
	rc, err := checkpoint.Load(rpath)
	if err != nil {
		return nil, err
	}
	pc, err := checkpoint.Load(ppath)
	if err != nil {
		return nil, err
	}
	_, test, err := data.Open(c.Budget.Data, 0)
	if err != nil {
		return nil, err
	}
	if c.Budget.Limit > 0 && c.Budget.Limit < test.Len() {
		test = test.Subset(seqInts(c.Budget.Limit))
	}
	res := &EnsembleResult{ResidualModel: c.Model, PlainModel: c.Plain}
	rnet, pnet := rc.Net.(*resnet.Net), pc.Net.(*resnet.Net)
	blocks := flatBlocks(rnet)
	n := len(blocks)
	res.Blocks = n
	loader := &data.Loader{Data: test, Batch: 256, Mean: rc.Preprocess.Mean, Std: rc.Preprocess.Std}
	errorWith := func(net *resnet.Net, deleted []int) float64 {
		net.Lesion = map[[2]int]bool{}
		for _, i := range deleted {
			net.Lesion[blocks[i]] = true
		}
		defer func() { net.Lesion = nil }()
		_, acc, _ := train.Evaluate(net, loader, len(test.Classes))
		return 1 - acc
	}
	res.BaseError = errorWith(rnet, nil)
	res.PlainBase = errorWith(pnet, nil)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ok := deletable(rnet, blocks[i])
		res.Deletable = append(res.Deletable, ok)
		res.DeleteOne = append(res.DeleteOne, errorWith(rnet, []int{i}))
		pe := math.NaN() // a plain layer that changes the shape cannot be deleted
		if ok {
			pe = errorWith(pnet, []int{i})
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
	for k := 0; k <= len(idBlocks); k++ {
		s := 0.0
		for d := 0; d < c.Draws; d++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			perm := rng.Perm(len(idBlocks))
			var del []int
			for _, p := range perm[:k] {
				del = append(del, idBlocks[p])
			}
			s += errorWith(rnet, del)
		}
		res.DeleteK = append(res.DeleteK, s/float64(c.Draws))
	}
	// Paths: a path of length k passes through k residual branches and the
	// shortcuts of the other blocks; its gradient is sampled as Veit et al.
	// do (forward through the whole network, backward along the path).
	x := firstBatch(loader)
	for k := 0; k <= n; k++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res.PathCounts = append(res.PathCounts, binomial(n, k))
		s := 0.0
		for d := 0; d < c.Draws; d++ {
			s += pathGradNorm(rnet, blocks, rng.Perm(n)[:k], x)
		}
		res.PathGrad = append(res.PathGrad, s/float64(c.Draws))
		res.TotalGrad = append(res.TotalGrad, res.PathCounts[k]*res.PathGrad[k])
	}
	ks := seq(0, n)
	is := seq(0, n-1)
	if err := r.Figure("ensemble.png", 2, 440, 330,
		Panel{Title: fmt.Sprintf("Paths of each length in %d blocks (2^%d in all)", n, n), XLabel: "path length (branches)", YLabel: "number of paths", Lines: []Line{{Label: "C(n, k)", X: ks, Y: res.PathCounts, Color: 0}}},
		Panel{Title: "Gradient at the input through paths of length k", XLabel: "path length", YLabel: "‖dL/dx‖", LogY: true, Lines: []Line{
			{Label: "one path", X: ks, Y: res.PathGrad, Color: 1}, {Label: "all paths of that length", X: ks, Y: res.TotalGrad, Color: 2}}},
		Panel{Title: "Test error with one block deleted", XLabel: "block deleted", YLabel: "error (%)", Lines: []Line{
			{Label: c.Model, X: is, Y: pct(res.DeleteOne), Color: 0}, {Label: c.Plain, X: is, Y: pct(res.PlainDelete), Color: 1, Dashed: true},
			{Label: c.Model + " intact", X: is, Y: constant(100*res.BaseError, n), Color: 7, Dashed: true}}},
		Panel{Title: "Test error with k random blocks deleted", XLabel: "blocks deleted", YLabel: "error (%)", Lines: []Line{
			{Label: c.Model, X: seq(0, len(idBlocks)), Y: pct(res.DeleteK), Color: 0}}}); err != nil {
		return nil, err
	}
	r.Printf("%s and %s trained with the same budget (%d epochs on %d %s images); errors on %d test images. A deleted block passes its input through its shortcut only (blocks that change the shape keep their projection or option-A shortcut).\n",
		c.Model, c.Plain, c.Budget.Epochs, c.Budget.Limit, c.Budget.Data, test.Len())
	r.Printf("| | intact | mean with one block deleted | worst |\n|---|---|---|---|")
	r.Printf("| %s | %.2f%% | %.2f%% | %.2f%% |", c.Model, 100*res.BaseError, 100*meanOf(res.DeleteOne), 100*maxOf(res.DeleteOne))
	r.Printf("| %s | %.2f%% | %.2f%% | %.2f%% |", c.Plain, 100*res.PlainBase, 100*meanOf(res.PlainDelete), 100*maxOf(res.PlainDelete))
	r.Printf("\nPath counts are binomial: %d blocks give 2^%d = %.0f paths, most of length near %d. Veit et al. 2016: deleting one block of a trained ResNet barely changes its error, deleting a layer of a plain network destroys it; error grows smoothly with the number of deleted blocks, as an ensemble's would.", n, n, math.Pow(2, float64(n)), n/2)
	if err := r.JSON("ensemble.json", res); err != nil {
		return nil, err
	}
	return res, r.Close()
}

// nullable is a float slice whose NaN entries are written as JSON null.
type nullable []float64

// MarshalJSON writes NaN as null.
func (v nullable) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		if math.IsNaN(x) {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
		}
	}
	b.WriteByte(']')
	return []byte(b.String()), nil
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
func deletable(n *resnet.Net, b [2]int) bool {
	return !(b[0] > 0 && b[1] == 0)
}

// pathGradNorm measures the gradient at the input along paths that pass
// through the residual branches of the blocks in branch and through the
// shortcuts of all others (Veit et al. 2016): the whole network runs
// forward, and the backward pass is routed.
func pathGradNorm(net *resnet.Net, blocks [][2]int, branch []int, x *tensor.Tensor) float64 {
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
	tape := ag.NewTape()
	xv := tape.Variable(x)
	out := net.Forward(xv)
	tape.BackwardWith(out, tensor.Full(1, out.Shape()...))
	var s float64
	for _, v := range xv.Grad.Data {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(x.Shape[0]))
}

func firstBatch(l *data.Loader) *tensor.Tensor {
	for b := range l.Epoch(context.Background(), 0, 0) {
		return b.X
	}
	return nil
}

func seqInts(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func pct(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = 100 * x
	}
	return out
}

func constant(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// meanOf and maxOf skip NaN entries (blocks that could not be deleted).
func meanOf(v []float64) float64 {
	s, n := 0.0, 0
	for _, x := range v {
		if !math.IsNaN(x) {
			s, n = s+x, n+1
		}
	}
	return s / float64(max(n, 1))
}

func maxOf(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		if !math.IsNaN(x) {
			m = math.Max(m, x)
		}
	}
	return m
}

// OrderConfig: the block orderings of He et al. 2016, Table 2.
type OrderConfig struct {
	Depth  int // 6n+2, at least 56 by default
	Budget Budget
}

// DefaultOrder trains the five orderings at depth 56 on 10,000
// Fashion-MNIST images for 2 epochs.
func DefaultOrder() OrderConfig {
	return OrderConfig{Depth: 56, Budget: Budget{Data: "fashion-mnist", Limit: 10000, Epochs: 2, Batch: 128, LR: 0.1, Warmup: 0.1, Seed: 1}}
}

// OrderRow is one ordering's result.
type OrderRow struct {
	Ordering   resnet.Ordering `json:"ordering"`
	TrainError float64         `json:"train_error"`
	TestError  float64         `json:"test_error"`
	History    []train.Metrics `json:"history"`
}

// Order trains the five orderings with the same budget.
func Order(ctx context.Context, c OrderConfig, out string) ([]OrderRow, error) {
	r, err := NewReport(out, "Block orderings (He et al. 2016, Table 2)")
	if err != nil {
		return nil, err
	}
	var rows []OrderRow
	var lines []Line
	for i, o := range []resnet.Ordering{resnet.PostActivation, resnet.BNAfterAdd, resnet.ReLUBeforeAdd, resnet.ReLUOnlyPreAct, resnet.PreActivation} {
		mc := preset(fmt.Sprintf("resnet%d", c.Depth))
		mc.Arch.(*models.ResNet).Ordering = o
		mc.Name = fmt.Sprintf("resnet%d-%s", c.Depth, o)
		res, _, err := c.Budget.trained(ctx, mc, filepath.Join(out, "runs", string(o)))
		if err != nil {
			return nil, err
		}
		last := res.History[len(res.History)-1]
		rows = append(rows, OrderRow{Ordering: o, TrainError: 1 - last.TrainAcc, TestError: 1 - res.TestAccuracy, History: res.History})
		var ep, te []float64
		for _, m := range res.History {
			ep, te = append(ep, float64(m.Epoch)), append(te, 100*(1-m.ValAcc))
		}
		lines = append(lines, Line{Label: string(o), X: ep, Y: te, Color: i})
	}
	if err := r.Figure("order.png", 1, 520, 360, Panel{Title: fmt.Sprintf("Test error, ResNet-%d, five orderings", c.Depth), XLabel: "epoch", YLabel: "error (%)", Lines: lines}); err != nil {
		return nil, err
	}
	b := c.Budget
	r.Printf("ResNet-%d (option A), each ordering with the same recipe: %s, weight decay 1e-4, batch %d, %d epochs on %d %s images.\n", c.Depth, b.recipe(), b.Batch, b.Epochs, b.Limit, b.Data)
	sorted := append([]OrderRow(nil), rows...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].TestError < sorted[j].TestError })
	r.Printf("| ordering | train error | test error |\n|---|---|---|")
	for _, row := range rows {
		r.Printf("| %s | %.2f%% | %.2f%% |", row.Ordering, 100*row.TrainError, 100*row.TestError)
	}
	r.Printf("\nHe et al. 2016 (CIFAR-10, ResNet-110): original 6.61%%, BN after addition 8.17%%, ReLU before addition 7.84%%, ReLU-only pre-activation 6.71%%, full pre-activation 6.37%%. Best here: %s.", sorted[0].Ordering)
	if err := r.JSON("order.json", rows); err != nil {
		return nil, err
	}
	return rows, r.Close()
}
