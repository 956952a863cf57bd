package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Data-parallel training (Config.Comm) follows PyTorch's
// DistributedDataParallel: every rank builds the whole model, takes rank
// 0's parameters, buffers and (when resuming) optimizer state and
// position, trains on its own shard of each epoch (distributed.Sampler)
// and averages the gradients over the ranks in buckets that are reduced
// during the backward pass (distributed.Reducer, driven by
// Tape.SetGradReady), so that every rank takes the same optimizer step.
//
// Each step opens with a small all-reduce of the ranks' batch status
// (batchStatus): whether a rank's loader failed or rank 0 could not
// record the previous step (every rank then leaves the epoch), or a
// rank's batch is empty (every rank then skips the step), so that either
// all ranks run the step's other collectives — SyncBN's, the global loss
// norm's, the gradients' — or none does.
//
// Another small all-reduce per step, started after the forward pass and
// completed with the buckets, carries the step's loss sum, correct count
// and target count (for the progress display and the epoch's training
// metrics, over the global batch), whether any rank's loss is not finite
// (every rank then stops with the error) and whether any rank was asked
// to stop (every rank then stops after this step, and rank 0 writes the
// checkpoint): the ranks always stop at the same step boundary.
//
// Evaluation is sharded (rank r takes images r, r+size, …, each once) and
// its sums and counts (loss, correct, top-5, the confusion matrix) are
// all-reduced in float64. Only rank 0 prints, plots, writes TensorBoard
// events, metrics and checkpoints; before each evaluation and checkpoint
// every rank takes rank 0's batch-norm running statistics (which differ
// between ranks without SyncBN, as DDP's broadcast_buffers does each step).

// control is the layout of the per-step control all-reduce.
const (
	ctlBad     = iota // ranks whose loss is not finite
	ctlStop           // ranks asked to stop
	ctlLoss           // Σ loss·targets over the ranks
	ctlCorrect        // Σ correct
	ctlCount          // Σ targets
	ctlLen
)

// status is the layout of the all-reduce that opens each step, before any
// other collective of it.
const (
	stFail    = iota // ranks whose loader failed (an unreadable file) or whose step's record did (rank 0's events): every rank leaves the epoch
	stEmpty          // ranks none of whose batch's files could be read: every rank skips the step
	stSkipped        // Σ unreadable files left out of the batches
	stStop           // ranks asked to stop (read when the step is skipped)
	stLen
)

// ddp is the data-parallel state of a run.
type ddp struct {
	comm     distributed.Comm
	red      *distributed.Reducer
	index    map[*ag.Value]int // parameter → its index in run.params
	sampler  *distributed.Sampler
	valShard *data.Dataset // this rank's share of the validation set
	testEval *data.Dataset // … and of the test set
	syncErr  error         // the first failure of a SyncBN all-reduce or a MarkReady
	marked   []bool
	// The buffers of a step's batch status and control all-reduces,
	// reused: a step allocates nothing for them. Each is an allocation of
	// its own: cgo (the MPI build) refuses memory that holds Go pointers,
	// as ddp does, to be handed to C.
	status, ctl []float32
}

// agree makes every rank of c learn whether any rank failed: it returns
// err on the ranks where it is set, and on the others an error naming the
// failed ranks, so that all ranks stop together instead of waiting for
// ever in the next collective.
func agree(c distributed.Comm, stage string, err error) error {
	flags := make([]float64, c.Size())
	if err != nil {
		flags[c.Rank()] = 1
	}
	if cerr := c.AllReduceSumFloat64(flags); cerr != nil {
		return errors.Join(err, fmt.Errorf("train: %s: %w", stage, cerr))
	}
	if err != nil {
		return err
	}
	var failed []string
	for r, f := range flags {
		if f != 0 {
			failed = append(failed, fmt.Sprint(r))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("train: %s failed on rank %s (see its message): %w", stage, strings.Join(failed, ", "), ErrOtherRank)
	}
	return nil
}

// ErrOtherRank is in the error of a rank whose own part succeeded where
// another rank's failed (a checkpoint write on rank 0, a data set missing
// on one machine): that rank's error says why. A launcher such as mpirun
// ends the job as soon as one rank exits with an error, so a program
// should let the failing rank report first (the CLI waits a second).
var ErrOtherRank = errors.New("another rank failed")

// rank0 says whether this process writes the run's output: always
// without Config.Comm.
func (r *run) rank0() bool { return r.ddp == nil || r.ddp.comm.Rank() == 0 }

// worldSize is the number of ranks (1 without Config.Comm).
func (r *run) worldSize() int {
	if r.ddp == nil {
		return 1
	}
	return r.ddp.comm.Size()
}

// flagsText lists, one "key=value" per line, what every rank must
// share: the run's config as recorded in checkpoints (model, data, batch,
// learning rate, schedule, seed, …) and the flags that are not recorded.
// The run folder may differ (each machine names its own), as may the
// progress display and TensorBoard, which only rank 0 writes.
func flagsText(cfg Config) (string, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return "", err
	}
	delete(m, "model") // checked on its own
	delete(m, "data")
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var lines []string
	for _, k := range keys {
		lines = append(lines, k+"="+compact(m[k]))
	}
	lines = append(lines, fmt.Sprintf("resume=%v", cfg.Resume), fmt.Sprintf("overwrite=%v", cfg.Overwrite))
	return strings.Join(lines, "\n"), nil
}

// dataText describes the data as this rank opened it: the spec, the sizes
// of the sets, the classes, the normalisation (statistics of every
// training pixel) and the labels' hash.
func (r *run) dataText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "spec=%s\n", r.cfg.Data)
	for _, s := range []struct {
		name string
		d    *data.Dataset
	}{{"train", r.trainSet}, {"val", r.valSet}, {"test", r.testSet}} {
		fmt.Fprintf(&b, "%s=%d images of %dx%dx%d\n", s.name, s.d.Len(), s.d.H, s.d.W, s.d.C)
		fmt.Fprintf(&b, "%s labels=%x\n", s.name, labelsHash(s.d))
		if len(s.d.Pixels) > 0 { // a set in memory (a folder's images are read lazily: their names count)
			fmt.Fprintf(&b, "%s pixels=%08x\n", s.name, crc32.Checksum(s.d.Pixels, castagnoli))
		}
	}
	fmt.Fprintf(&b, "classes=%s\n", strings.Join(r.trainSet.Classes, ","))
	fmt.Fprintf(&b, "mean=%v\nstd=%v\nbgr=%v scale255=%v", r.norm.Mean, r.norm.Std, r.norm.BGR, r.norm.Scale255)
	return b.String()
}

// castagnoli is the CRC-32C table: the CPU computes it (SSE4.2, ARMv8),
// about 20 GB/s, so hashing MNIST's pixels costs a few milliseconds.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// labelsHash is an FNV-1a hash of a set's labels (or masks) and file
// names: two ranks with other copies of the data set differ in it.
func labelsHash(d *data.Dataset) uint64 {
	h := uint64(14695981039346656037)
	add := func(b byte) { h = (h ^ uint64(b)) * 1099511628211 }
	for _, y := range d.Labels {
		for k := 0; k < 4; k++ {
			add(byte(y >> (8 * k)))
		}
	}
	for _, m := range d.Masks {
		add(m)
	}
	for _, f := range d.Files {
		for i := 0; i < len(f); i++ {
			add(f[i])
		}
		add(0)
	}
	return h
}

// position is what rank 0 sends the others after loading a checkpoint.
type position struct {
	Epoch, Batch, Step int
	Best               float64
	RNG                []byte
	History            []Metrics
	Partial            *checkpoint.Partial // the epoch resumed in its middle
	Steps              []int               // the step record read back
	StepLoss           []float64
	EvalRead           [2]string // the fingerprints of the validation and test files recorded
}

// joinGroup makes the prepared run one rank of cfg.Comm's group (err is
// what its own preparation returned): the ranks agree that they all
// prepared, check that they share model, data and flags, rank 0 prepares
// the run folder and (with Resume) loads the checkpoint, and every rank
// takes rank 0's parameters, buffers, optimizer state and position.
func joinGroup(c distributed.Comm, r *run, err error) error {
	var model string // compared below; a config JSON refuses fails here, with the group
	if err == nil {
		if model, err = r.cfg.Model.Marshal(); err != nil {
			err = fmt.Errorf("train: %w", err)
		}
	}
	if err := agree(c, "preparing the run", err); err != nil {
		return err
	}
	cfg := r.cfg
	if err := distributed.CheckSame(c, "the model config", model); err != nil {
		return err
	}
	// The flags before the data: a --seed, --limit or --val-split given
	// to one rank alone changes its data too, and is named as a flag.
	flags, err := flagsText(cfg)
	if err != nil {
		return err
	}
	if err := distributed.CheckSame(c, "the flags", flags); err != nil {
		return err
	}
	if err := distributed.CheckSame(c, "the data", r.dataText()); err != nil {
		return err
	}
	d := &ddp{comm: c, index: map[*ag.Value]int{}, status: make([]float32, stLen), ctl: make([]float32, ctlLen)}
	r.ddp = d
	if d.sampler, err = distributed.NewSampler(distributed.Sampler{N: r.trainSet.Len(), Rank: c.Rank(), Size: c.Size(), Shuffle: true, Seed: cfg.Seed}); err != nil {
		return err
	}
	d.valShard, d.testEval = shard(r.valSet, c), shard(r.testSet, c)
	sizes := make([]int, len(r.params))
	for i, p := range r.params {
		sizes[i] = p.Data.Len()
		d.index[p] = i
	}
	d.marked = make([]bool, len(r.params))
	comp, err := distributed.ParseCompression(cfg.GradCompression)
	if err != nil {
		return err
	}
	if d.red, err = distributed.NewReducer(c, sizes, distributed.ReducerOptions{Compression: comp}); err != nil {
		return err
	}
	if cfg.SyncBN {
		sync := func(s []float64) {
			if err := c.AllReduceSumFloat64(s); err != nil && d.syncErr == nil {
				d.syncErr = fmt.Errorf("train: SyncBatchNorm: %w", err)
			}
		}
		n := 0
		for _, l := range nn.Layers(r.model) {
			if bn, ok := l.Layer.(*nn.BatchNorm); ok {
				bn.Sync = sync
				n++
			}
		}
		fmt.Fprintf(cfg.Log, "SyncBatchNorm: the batch statistics of %d batch norms are all-reduced over %d ranks\n", n, c.Size())
	}

	// Rank 0 alone touches the run folder; the others wait for its word.
	var ferr error
	if c.Rank() == 0 {
		if r.lock, ferr = prepareFolder(cfg); ferr == nil && cfg.Resume {
			ferr = r.restore(filepath.Join(cfg.Out, LastCheckpoint))
		}
	}
	if err := agree(c, "preparing the run folder", ferr); err != nil {
		return err
	}
	if cfg.EMA > 0 {
		emaCfg := cfg
		emaCfg.Resume = cfg.Resume && c.Rank() == 0
		r.cfg = emaCfg
		ferr = r.startEMA()
		r.cfg = cfg
		if err := agree(c, "resuming the moving average", ferr); err != nil {
			return err
		}
	}
	if err := r.broadcastState(); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Log, "data-parallel over %d ranks: batch %d per rank (%d in all), %d steps per epoch\n", c.Size(), cfg.Batch, cfg.Batch*c.Size(), r.stepsPerEpoch)
	return nil
}

// broadcastState gives every rank rank 0's model tensors (parameters and
// buffers), optimizer state, moving averages and position.
func (r *run) broadcastState() error {
	c := r.ddp.comm
	var ts [][]float32
	for _, e := range nn.StateDict(r.model) {
		ts = append(ts, e.Tensor.Data)
	}
	state := r.opt.State()
	keys := make([]string, 0, len(state))
	for k := range state {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ts = append(ts, state[k].Data)
	}
	if r.ema != nil {
		for _, a := range r.ema.Averages() {
			ts = append(ts, a.Data)
		}
	}
	if err := distributed.BroadcastTensors(c, ts, 0); err != nil {
		return fmt.Errorf("train: giving every rank rank 0's model: %w", err)
	}
	var msg []byte
	if c.Rank() == 0 {
		rng, err := r.rng.MarshalBinary()
		if err != nil {
			return err
		}
		if msg, err = json.Marshal(position{r.epoch, r.batch, r.opt.Steps(), r.best, rng, r.history, r.partial, r.steps, r.stepLoss, r.evalRead}); err != nil {
			return err
		}
	}
	s, err := distributed.BroadcastString(c, string(msg), 0)
	if err != nil {
		return fmt.Errorf("train: giving every rank rank 0's position: %w", err)
	}
	var p position
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return fmt.Errorf("train: rank 0's position: %w", err)
	}
	if c.Rank() != 0 {
		r.epoch, r.batch, r.best, r.history = p.Epoch, p.Batch, p.Best, p.History
		r.partial, r.steps, r.stepLoss, r.evalRead = p.Partial, p.Steps, p.StepLoss, p.EvalRead
		r.setSteps(p.Step)
		if err := r.rng.UnmarshalBinary(p.RNG); err != nil {
			return fmt.Errorf("train: rank 0's RNG state: %w", err)
		}
	}
	return nil
}

// broadcastBuffers gives every rank rank 0's batch-norm running
// statistics (and moving averages), before an evaluation or a checkpoint.
func (r *run) broadcastBuffers() error {
	var ts [][]float32
	for _, e := range nn.StateDict(r.model) {
		if e.Param == nil {
			ts = append(ts, e.Tensor.Data)
		}
	}
	if r.ema != nil {
		for _, a := range r.ema.Averages() {
			ts = append(ts, a.Data)
		}
	}
	if len(ts) == 0 {
		return nil
	}
	if err := distributed.BroadcastTensors(r.ddp.comm, ts, 0); err != nil {
		return fmt.Errorf("train: giving every rank rank 0's batch-norm statistics: %w", err)
	}
	return nil
}

// shard returns rank c.Rank()'s share of an evaluation set: images r,
// r+size, r+2·size, …, each image on exactly one rank.
func shard(d *data.Dataset, c distributed.Comm) *data.Dataset {
	var idx []int
	for i := c.Rank(); i < d.Len(); i += c.Size() {
		idx = append(idx, i)
	}
	return d.Subset(idx)
}

// stepsFor returns the number of steps of an epoch over the training set:
// of this rank's shard under Config.Comm.
func (r *run) stepsFor(batch int) int {
	n := r.trainSet.Len()
	if r.cfg.Comm != nil {
		n = (n + r.cfg.Comm.Size() - 1) / r.cfg.Comm.Size() // Sampler.Len without DropLast
	}
	return (n + batch - 1) / batch // data.Loader.Batches without DropLast
}

// hook arms the Reducer for a step: SetGradReady hands each
// parameter's gradient to it as soon as the backward pass has finished it.
func (d *ddp) hook(tape *ag.Tape) {
	tape.SetGradReady(func(v *ag.Value) {
		i, ok := d.index[v]
		if !ok || d.marked[i] {
			return
		}
		d.marked[i] = true
		if err := d.red.MarkReady(i, v.Grad.Data); err != nil && d.syncErr == nil {
			d.syncErr = err
		}
	})
}

// batchStatus is the all-reduce that opens a step, before any other
// collective of it: every rank learns whether any rank's loader failed and
// whether any rank's batch is empty, so that all of them run the step's
// other collectives or none does. The status it returns is valid until the
// next step's.
func (d *ddp) batchStatus(ctx context.Context, b data.Batch) ([]float32, error) {
	st := d.status
	clear(st)
	st[stSkipped], st[stStop] = float32(b.Skipped), stopRequested(ctx)
	if b.Empty() {
		st[stEmpty] = 1
	}
	return st, d.reduceStatus(st)
}

// announceFailure is the step of a rank whose loader failed, or which
// failed to record the step before: its batch status says so, and every
// rank leaves the epoch there.
func (d *ddp) announceFailure() error {
	st := d.status
	clear(st)
	st[stFail] = 1
	return d.reduceStatus(st)
}

func (d *ddp) reduceStatus(st []float32) error {
	if err := d.comm.AllReduceSum(st); err != nil {
		return fmt.Errorf("train: agreeing on the step's batches: %w", err)
	}
	return nil
}

// finishStep hands in the gradients the backward pass did not report (a
// parameter no gradient reached: zeros, as DDP's find_unused_parameters),
// completes the gradient all-reduce and the control all-reduce.
func (d *ddp) finishStep(params []*ag.Value, ctl distributed.Request) error {
	for i, p := range params {
		if d.marked[i] {
			continue
		}
		if p.Grad == nil {
			p.Grad = tensor.New(p.Data.Shape...)
		}
		if err := d.red.MarkReady(i, p.Grad.Data); err != nil && d.syncErr == nil {
			d.syncErr = err
		}
	}
	clear(d.marked)
	err := d.red.Wait()
	if cerr := ctl.Wait(); err == nil {
		err = cerr
	}
	if err == nil {
		err, d.syncErr = d.syncErr, nil
	}
	if err != nil {
		return fmt.Errorf("train: averaging the gradients over the ranks: %w", err)
	}
	return nil
}

// errEvalStopped is evaluateOn's error for an evaluation that a signal
// cut short (ctx done): on every rank under Config.Comm, whichever rank
// was signalled, as they agree in reduceEval.
var errEvalStopped = errors.New("train: evaluation stopped")

// reduceEval sums an evaluation's sums and counts over the ranks, with
// whether any rank's ctx asked it to stop (errEvalStopped on every rank).
func (r *run) reduceEval(ctx context.Context, e evaluation) (evaluation, error) {
	if r.ddp == nil {
		return e, nil
	}
	k := len(e.confusion)
	buf := make([]float64, 5, 5+k*k)
	buf[0], buf[1], buf[2], buf[3], buf[4] = e.lossSum, e.hits, e.top5Hits, float64(e.n), float64(stopRequested(ctx))
	for _, row := range e.confusion {
		for _, v := range row {
			buf = append(buf, float64(v))
		}
	}
	if err := r.ddp.comm.AllReduceSumFloat64(buf); err != nil {
		return e, fmt.Errorf("train: summing the evaluation over the ranks: %w", err)
	}
	if buf[4] > 0 {
		return e, errEvalStopped
	}
	out := evaluation{lossSum: buf[0], hits: buf[1], top5Hits: buf[2], n: int(buf[3]), confusion: make([][]int, k)}
	for i := range out.confusion {
		out.confusion[i] = make([]int, k)
		for j := range out.confusion[i] {
			out.confusion[i][j] = int(buf[5+i*k+j])
		}
	}
	out.means()
	return out, nil
}

// evalSet returns what this rank evaluates of the validation or test set.
func (r *run) evalSet(test bool) *data.Dataset {
	switch {
	case r.ddp == nil && test:
		return r.testSet
	case r.ddp == nil:
		return r.valSet
	case test:
		return r.ddp.testEval
	}
	return r.ddp.valShard
}

// evaluateOn evaluates net on this rank's share of the validation or
// test set and sums the result over the ranks.
func (r *run) evaluateOn(ctx context.Context, net nn.Layer, test bool) (evaluation, error) {
	d, name := r.evalSet(test), "validation set"
	if test {
		name = "test set"
	}
	l := r.loader(d, false)
	e, lerr := evaluate(ctx, net, l, len(r.trainSet.Classes), r.evalTape)
	if lerr == nil {
		lerr = l.Err()
	}
	if lerr != nil {
		lerr = fmt.Errorf("train: %s: %w", name, lerr)
	}
	if r.ddp == nil {
		if lerr == nil && ctx.Err() != nil {
			return e, errEvalStopped
		}
		if lerr == nil && e.n == 0 {
			lerr = fmt.Errorf("train: %s: %w", name, nothingEvaluated(d, l.Skipped()))
		}
		return e, lerr
	}
	if err := agree(r.ddp.comm, "evaluating the "+name, lerr); err != nil {
		return e, err
	}
	e, err := r.reduceEval(ctx, e)
	if err == nil && e.n == 0 { // the global count: every rank says so
		err = fmt.Errorf("train: %s: %w", name, nothingEvaluated(d, l.Skipped()))
	}
	return e, err
}

// weightNorm returns, for a weighted loss or one with ignored targets
// under Config.Comm, the factor that turns this rank's Σ w·loss into its
// share of the global weighted mean: size / Σ w over every rank's batch
// (w = 1 without weights: the count of targets not ignored), so that the
// Reducer's average over the ranks gives Σ_all w·loss / Σ_all w, the loss
// of one process over the global batch, or 0 where Σ_all w is 0 (every
// pixel ignored: the loss is 0, as a mean over no weight is on one
// process). (A plain mean needs no such factor: every rank's batch has
// the same number of targets.)
func (r *run) weightNorm(targets []int32, weights []float32) (float32, error) {
	var sum [1]float64
	for i, y := range targets {
		if y == ignoreIndex {
			continue
		}
		if weights == nil {
			sum[0]++
		} else {
			sum[0] += float64(weights[i])
		}
	}
	if err := r.ddp.comm.AllReduceSumFloat64(sum[:]); err != nil {
		return 0, fmt.Errorf("train: summing the loss weights over the ranks: %w", err)
	}
	switch {
	case sum[0] == 0:
		return 0, nil // every pixel ignored, or of weight 0: no loss, no gradient, as on one process
	case math.IsNaN(sum[0]) || sum[0] < 0:
		return 0, fmt.Errorf("train: the loss weights of the global batch sum to %g", sum[0])
	}
	return float32(float64(r.ddp.comm.Size()) / sum[0]), nil
}

// quiet returns the writer for messages of a rank that is not rank 0.
func quiet(cfg Config) io.Writer {
	if cfg.Comm != nil && cfg.Comm.Rank() != 0 {
		return io.Discard
	}
	return cfg.Log
}

// stopRequested reports whether ctx asks this rank to stop, as the
// control all-reduce's flag.
func stopRequested(ctx context.Context) float32 {
	if ctx.Err() != nil {
		return 1
	}
	return 0
}
