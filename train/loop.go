package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensorboard"
)

func (r *run) loop(ctx context.Context) (*Result, error) {
	r.start = time.Now()
	tape := ag.NewTape()
	tape.SetPrecision(r.cfg.Precision)
	r.evalTape = tape.NoGradTape()
	params := r.params
	if r.ddp != nil {
		r.ddp.hook(tape)
	}
	stop := false // every rank was told to stop (Config.Comm)
	for ; r.epoch < r.cfg.Epochs; r.epoch, r.batch = r.epoch+1, 0 {
		nn.SetTraining(r.model, true)
		r.epochStart = time.Now()
		r.lossSum, r.accSum, r.seen, r.imgs, r.skipped = 0, 0, 0, 0, 0
		// An epoch that takes no step records the rate it would have.
		r.epochLR = r.opt.LR(0)
		if p := r.partial; p != nil && r.batch > 0 { // resumed in this epoch's middle: its metrics cover all of it
			r.lossSum, r.accSum, r.seen, r.imgs, r.skipped = p.LossSum, p.Hits, p.Seen, p.Images, p.Skipped
			r.epochStart = r.epochStart.Add(-time.Duration(p.Seconds * float64(time.Second)))
		}
		r.partial = nil
		// Under Config.Comm every rank runs every step of the epoch until
		// the control all-reduce says stop: its loader does not watch ctx.
		epochCtx, cancel := context.WithCancel(ctx)
		if r.ddp != nil {
			epochCtx, cancel = context.WithCancel(context.Background())
		}
		loader := r.loader(r.trainSet, true)
		failSeen := false // the batch status said a rank failed (Config.Comm)
		var stepErr error // rank 0's record of a step (its TensorBoard events) failed, under Config.Comm
		for b := range loader.Epoch(epochCtx, r.epoch, r.batch) {
			skip := b.Empty() // no file of the batch could be read
			if r.ddp != nil {
				// Every collective of the step (SyncBN's, the global loss
				// norm's, the gradients') needs every rank: they first
				// agree whether each has a batch.
				st, err := r.ddp.batchStatus(ctx, b)
				if err != nil {
					cancel()
					return nil, err
				}
				if st[stFail] > 0 {
					failSeen = true
					break // a rank failed: every rank leaves the epoch at this step, untaken (agree names the rank)
				}
				r.skipped += int(st[stSkipped])
				if skip = st[stEmpty] > 0; skip {
					stop = st[stStop] > 0 // a step taken reads it from its control all-reduce
					fmt.Fprintf(quiet(r.cfg), "%sepoch %d, batch %d: %d of %d ranks could read no file of their batch; every rank skips the step\n", r.clearLive(), r.epoch+1, b.Index+1, int(st[stEmpty]), r.worldSize())
				}
			} else {
				r.skipped += b.Skipped
				if skip {
					fmt.Fprintf(r.cfg.Log, "%sepoch %d, batch %d: no file of the batch could be read; the step is skipped\n", r.clearLive(), r.epoch+1, b.Index+1)
				}
			}
			if skip {
				r.batch = b.Index + 1
				r.skippedSteps++ // the schedule goes on (batchSchedule)
				r.progress(0)
				if (r.ddp == nil && ctx.Err() != nil) || stop {
					break
				}
				continue
			}
			for _, p := range params {
				p.ZeroGrad()
			}
			logits := r.model.Forward(tape.Constant(b.X))
			targets, weights := fitTargets(logits, b)
			loss, err := r.loss(logits, targets, weights)
			if err != nil {
				cancel()
				return nil, err
			}
			lv := float64(loss.Data.Data[0])
			bad := math.IsNaN(lv) || math.IsInf(lv, 0)
			hits, counted := float64(correct(logits.Data, targets)), float64(countedTargets(targets))
			var ctl []float32
			var ctlReq distributed.Request
			if r.ddp != nil {
				ctl = r.ddp.ctl // the last step's request is complete (finishStep)
				clear(ctl)
				ctl[ctlStop], ctl[ctlLoss], ctl[ctlCorrect], ctl[ctlCount] = stopRequested(ctx), float32(lv*counted), float32(hits), float32(counted)
				if r.globalLoss(weights) {
					ctl[ctlLoss] = float32(lv) // a share: the ranks' shares sum to size × the global loss
				}
				if bad {
					ctl[ctlBad] = 1
				}
				ctlReq = r.ddp.comm.StartAllReduceSum(ctl)
			} else if bad {
				cancel()
				return nil, fmt.Errorf("train: the loss is %g at epoch %d, batch %d (step %d); stopped, checkpoints left as they were (try a lower learning rate)",
					lv, r.epoch+1, b.Index+1, r.opt.Steps()+1)
			}
			tape.Backward(loss)
			if r.ddp != nil {
				if err := r.ddp.finishStep(params, ctlReq); err != nil {
					cancel()
					return nil, err
				}
				if ctl[ctlBad] > 0 {
					cancel()
					return nil, fmt.Errorf("train: the loss is not finite on %g of %d ranks at epoch %d, batch %d (step %d; here %g); stopped, checkpoints left as they were (try a lower learning rate)",
						ctl[ctlBad], r.worldSize(), r.epoch+1, b.Index+1, r.opt.Steps()+1, lv)
				}
				stop = ctl[ctlStop] > 0
				lv = float64(ctl[ctlLoss]) / max(float64(ctl[ctlCount]), 1) // the global batch's
				if r.globalLoss(weights) {
					lv = float64(ctl[ctlLoss]) / float64(r.worldSize())
				}
				r.accSum += float64(ctl[ctlCorrect])
				r.lossSum += lv * float64(ctl[ctlCount])
				r.seen += int(ctl[ctlCount])
			} else {
				r.accSum += hits
				r.lossSum += lv * counted
				r.seen += int(counted)
			}
			if r.cfg.ClipGrad > 0 {
				optim.ClipGradNorm(r.params, r.cfg.ClipGrad)
			}
			lr := r.opt.LR(0) // this step's, before Step advances the schedule
			r.opt.Step()
			r.epochLR = lr
			if r.ema != nil {
				r.ema.Update()
			}
			r.steps, r.stepLoss = append(r.steps, r.opt.Steps()), append(r.stepLoss, lv)
			if r.tb != nil {
				if err := r.tb.TrainStep(int64(r.opt.Steps()), lv, lr); err != nil {
					if r.ddp == nil {
						cancel()
						return nil, err
					}
					stepErr = err // the others learn it at the next step's batch status, or the epoch's end
				}
			}
			tape.Reset()
			r.batch = b.Index + 1
			r.progress(r.cfg.Batch * r.worldSize())
			if stepErr != nil || (r.ddp == nil && ctx.Err() != nil) || stop {
				break
			}
		}
		cancel()
		lerr := loader.Err() // an unreadable image file
		if (r.ddp == nil && ctx.Err() != nil) || stop {
			// Asked to stop: a file that the loader, making batches
			// ahead, could not read is past the step reached, and met
			// again when the run is resumed.
			lerr = nil
		}
		if lerr != nil {
			lerr = fmt.Errorf("train: epoch %d: %w", r.epoch+1, lerr)
		}
		lerr = errors.Join(lerr, stepErr)
		if r.ddp != nil && lerr != nil && !stop && !failSeen && r.batch < loader.Batches() {
			// The other ranks are at the next step's batch status: join
			// it with the flag that stops them all (they waited there for
			// ever, this rank in agree's all-reduce). After the epoch's
			// last step, or one where a stop was agreed, they are in
			// agree already. A rank that learnt at the batch status of
			// another's failure goes on to agree, even when its own
			// loader failed ahead of the step too.
			if err := r.ddp.announceFailure(); err != nil {
				return nil, errors.Join(lerr, err)
			}
		}
		if r.ddp != nil {
			lerr = agree(r.ddp.comm, fmt.Sprintf("epoch %d", r.epoch+1), lerr)
		}
		if lerr != nil {
			return nil, lerr
		}
		// An epoch cut short by cancellation (even before its first batch)
		// is not finished: save the exact position and stop.
		if (r.ddp == nil && ctx.Err() != nil) || stop {
			if err := r.saveStopped(); err != nil {
				return nil, err
			}
			return nil, ErrInterrupted
		}
		if err := r.endEpoch(ctx); err != nil {
			if errors.Is(err, errEvalStopped) {
				// Every batch is done, the validation is not: the
				// checkpoint's position is the epoch's end, and a resumed
				// run validates the epoch before the next.
				if err := r.saveStopped(); err != nil {
					return nil, err
				}
				return nil, ErrInterrupted
			}
			return nil, err
		}
		if err := r.onEpoch(); err != nil {
			return nil, err
		}
		if n := r.staleEpochs(); r.cfg.Patience > 0 && n >= r.cfg.Patience && r.epoch+1 < r.cfg.Epochs {
			fmt.Fprintf(r.cfg.Log, "stopping early after epoch %d of %d: the validation %s has not improved for %d epochs (best %.4f)\n",
				r.epoch+1, r.cfg.Epochs, r.scoreName(), n, r.best)
			r.epoch++
			r.stoppedEarly = true
			break
		}
	}
	if r.ddp != nil {
		if err := r.broadcastBuffers(); err != nil {
			return nil, err
		}
	}
	// A signal during the test pass stops it (on every rank: they agree
	// in evaluateOn); the training is complete and saved by then.
	test, err := r.evaluateOn(ctx, r.model, true)
	if errors.Is(err, errEvalStopped) {
		fmt.Fprintf(r.cfg.Log, "\nstopped during the test evaluation; the training is complete and saved in %s (residual eval --weights %s measures the test set)\n",
			r.cfg.Out, filepath.Join(r.cfg.Out, BestCheckpoint))
		return nil, errTestStopped{}
	}
	if err != nil {
		return nil, err
	}
	testLoss, testAcc, confusion := test.loss, test.acc, test.confusion
	res := r.result()
	res.TestAccuracy, res.TestLoss, res.TestTop5 = testAcc, testLoss, test.top5
	if r.cfg.Task == models.Segment {
		res.TestIoU, res.TestMeanIoU = IoU(confusion)
	}
	if r.tb != nil {
		step := int64(r.opt.Steps())
		tags, values := []string{"test/loss", "test/acc"}, []float64{testLoss, testAcc}
		switch {
		case r.cfg.Task == models.Segment:
			tags, values = append(tags, "test/miou"), append(values, res.TestMeanIoU)
		case len(r.testSet.Classes) >= 5:
			tags, values = append(tags, "test/top5"), append(values, test.top5)
		}
		if err := r.tb.Scalars(step, tags, values); err != nil {
			return nil, err
		}
		for _, name := range []string{"loss", "accuracy", "step_loss"} {
			if _, err := os.Stat(filepath.Join(r.cfg.Out, name+".png")); err != nil {
				continue // not drawn in this session (a resumed run with nothing left to train)
			}
			if err := r.tb.ImageFile(tensorboard.CurvesPrefix+name, step, filepath.Join(r.cfg.Out, name+".png")); err != nil {
				return nil, err
			}
		}
	}
	if r.cfg.Task == models.Segment {
		fmt.Fprintf(r.cfg.Log, "test pixel accuracy %.2f%%, mean IoU %.4f (loss %.4f) after %d epoch%s\n", 100*testAcc, res.TestMeanIoU, testLoss, r.epoch, map[bool]string{true: "s"}[r.epoch != 1])
		for c, v := range res.TestIoU {
			fmt.Fprintf(r.cfg.Log, "  IoU %-12s %s\n", r.testSet.Classes[c], FormatIoU(v))
		}
		return res, nil
	}
	top5 := ""
	if len(r.testSet.Classes) >= 5 {
		top5 = fmt.Sprintf(", top-5 %.2f%%", 100*test.top5)
	}
	fmt.Fprintf(r.cfg.Log, "test accuracy %.2f%%%s (loss %.4f) after %d epoch%s\n", 100*testAcc, top5, testLoss, r.epoch, map[bool]string{true: "s"}[r.epoch != 1])
	return res, nil
}

// checkEvalSets reads every image of the validation and test sets kept as
// files (a folder's; this rank's shares under Config.Comm) as their
// evaluations will, before the first step: a file whose header is good
// and whose pixel data is not (found only by decoding it) stopped the run
// at the first validation, an epoch of training later, or at the test
// pass after all of it; so did, with skip-bad, a set of which no file
// could be read. A set whose files have the fingerprint (evalPrints) the
// resumed checkpoint recorded for it, after a read that passed, is not
// read again. A ctx done during the reading ends it quietly (without
// Config.Comm; under it every rank reads its whole share): the loop then
// stops at its first step boundary, as for a ctx done before Train.
func (r *run) checkEvalSets(ctx context.Context) error {
	readCtx := ctx
	if r.ddp != nil { // every rank reads its whole share, as in the loop's epochs
		readCtx = context.Background()
	}
	// Recorded again only once this read has passed: a checkpoint of a
	// run stopped during it says nothing was read.
	was := r.evalRead
	r.evalRead = [2]string{}
	prints, err := r.evalPrints()
	if err != nil {
		return err
	}
	names := [2]string{"validation set", "test set"}
	// Per set, the images read and the files left out as unreadable; −1
	// read for a set not read here (in memory, the validation set, or
	// unchanged since a read that passed).
	var counts [4]float64
	read, skipped := counts[:2], counts[2:]
	err = func() error {
		for i, test := range []bool{false, true} {
			if readCtx.Err() != nil {
				break // no test set after a validation set cut short
			}
			d := r.evalSet(test)
			if d.Files == nil || (test && r.valSet == r.testSet) {
				read[i] = -1
				continue
			}
			if prints[i] != "" && prints[i] == was[i] {
				fmt.Fprintf(r.cfg.Log, "the %d files of the %s have the names, sizes and modification times they had when read before: not read again\n", d.Len(), names[i])
				read[i] = -1
				continue
			}
			fmt.Fprintf(r.cfg.Log, "reading the %d images of the %s once, to find unreadable files before training\n", d.Len(), names[i])
			l := r.loader(d, false)
			for range l.Epoch(readCtx, 0, 0) {
			}
			if err := l.Err(); err != nil {
				return fmt.Errorf("train: %s (read before training): %w", names[i], err)
			}
			read[i], skipped[i] = float64(d.Len()-l.Skipped()), float64(l.Skipped())
		}
		return nil
	}()
	if r.ddp != nil {
		if err = agree(r.ddp.comm, "reading the validation and test sets", err); err == nil {
			if err = r.ddp.comm.AllReduceSumFloat64(counts[:]); err != nil { // the ranks' shares
				err = fmt.Errorf("train: counting the readable images of the validation and test sets: %w", err)
			}
		}
	}
	if err != nil || (r.ddp == nil && ctx.Err() != nil) {
		return err
	}
	for i, n := range read {
		if n == 0 {
			return fmt.Errorf("train: %s (read before training): %w", names[i], nothingEvaluated(nil, int(skipped[i])))
		}
	}
	r.evalRead = prints
	return nil
}

// evalPrints returns the fingerprints of the validation and test sets kept
// as files ("" for one in memory, or with a file that cannot be stat'ed
// or was modified in the last mtimeSlack, which the next resume reads):
// a SHA-256 over the options that decide whether a file can be read
// (the image size and channels, skip-bad, the limits) and, per file, its
// path as the loader opens it, size and modification time. Under
// Config.Comm, of every rank's share, in rank order, the same on every
// rank (one all-reduce). Stat'ing costs microseconds a file where
// reading one costs milliseconds; a file rewritten with its size and
// modification time kept (touch -r, an archive extracted again) is
// missed (its evaluation then finds it). One rewritten within its
// file system's tick of its stat is not, thanks to mtimeSlack.
func (r *run) evalPrints() ([2]string, error) {
	var sums [2][sha256.Size]byte // zero: no fingerprint
	now := time.Now()
	for i, test := range []bool{false, true} {
		if d := r.evalSet(test); d.Files != nil && !(test && r.valSet == r.testSet) {
			sums[i] = filesPrint(d, now)
		}
	}
	if r.ddp == nil {
		var out [2]string
		for i, s := range sums {
			if s != ([sha256.Size]byte{}) {
				out[i] = hex.EncodeToString(s[:])
			}
		}
		return out, nil
	}
	// Each rank's sums, 32-bit words (exact in a float64) in its slots.
	const words = sha256.Size / 4
	c := r.ddp.comm
	all := make([]float64, 2*words*c.Size())
	for i, s := range sums {
		for w := range words {
			all[(c.Rank()*2+i)*words+w] = float64(binary.LittleEndian.Uint32(s[4*w:]))
		}
	}
	if err := c.AllReduceSumFloat64(all); err != nil {
		return [2]string{}, fmt.Errorf("train: comparing the ranks' validation and test files: %w", err)
	}
	var out [2]string
	for i := range sums {
		h := sha256.New()
		fmt.Fprintf(h, "ranks=%d\n", c.Size())
		ok := true
		for k := range c.Size() {
			var s [sha256.Size]byte
			for w := range words {
				binary.LittleEndian.PutUint32(s[4*w:], uint32(all[(k*2+i)*words+w]))
			}
			ok = ok && s != [sha256.Size]byte{}
			h.Write(s[:])
		}
		if ok {
			out[i] = hex.EncodeToString(h.Sum(nil))
		}
	}
	return out, nil
}

// mtimeSlack is how long before evalPrints a file's modification time
// must be for its fingerprint to count: FAT keeps times to 2 s, ext3 and
// HFS+ to 1 s, and a file written again within the same tick, after the
// stat or during the read, keeps its time. A file written since would
// have a later one.
const mtimeSlack = 2 * time.Second

// filesPrint is evalPrints' SHA-256 of one set (this rank's share), its
// files stat'ed at now: zero when a file cannot be stat'ed, or was
// modified less than mtimeSlack before now (or after it), as git does
// for a file as recent as its index.
func filesPrint(d *data.Dataset, now time.Time) [sha256.Size]byte {
	h := sha256.New()
	skipBad := d.Images != nil && d.Images.SkipBadImages
	fmt.Fprintf(h, "eval-read 1\n%dx%dx%d shorter=%d skip-bad=%v side=%d pixels=%d files=%d\n",
		d.H, d.W, d.C, d.EvalShorter(), skipBad, limits.ImageSide, limits.ImagePixels, len(d.Files))
	for _, f := range d.Files {
		st, err := os.Stat(f)
		if err != nil || st.ModTime().After(now.Add(-mtimeSlack)) {
			return [sha256.Size]byte{}
		}
		fmt.Fprintf(h, "%q %d %d\n", f, st.Size(), st.ModTime().UnixNano())
	}
	var s [sha256.Size]byte
	h.Sum(s[:0])
	return s
}

// result is the Result of the run so far, without the test figures: an
// interrupted run's, and a finished one's before its test pass.
func (r *run) result() *Result {
	return &Result{History: r.history, Epochs: r.epoch, BestValAccuracy: r.best, StoppedEarly: r.stoppedEarly,
		Seconds: time.Since(r.start).Seconds(), StepLoss: append([]float64(nil), r.stepLoss...)}
}

// saveStopped writes the checkpoint of a run stopped mid-epoch (rank 0's,
// under Config.Comm, once every rank holds its batch-norm statistics).
func (r *run) saveStopped() error {
	save := func() error {
		if !r.rank0() {
			return nil
		}
		if r.replacing() {
			// The run --overwrite replaces goes back (Run): a checkpoint
			// of this one would be deleted with the rest of it.
			fmt.Fprintf(r.cfg.Log, "\nstopped at epoch %d, batch %d, before the first epoch's end: nothing of this run is kept\n", r.epoch+1, r.batch)
			return nil
		}
		if r.ema != nil { // the average up to this step, to resume from
			if err := r.saveNet(EMACheckpoint, r.emaWeights(), nil); err != nil {
				return err
			}
		}
		// The record first: it may hold steps the checkpoint does not
		// (they are ignored on resuming), never fewer.
		if err := writeStepLoss(r.cfg.Out, r.steps, r.stepLoss); err != nil {
			return err
		}
		if err := r.save(LastCheckpoint); err != nil {
			return err
		}
		if r.batch == r.stepsPerEpoch {
			fmt.Fprintf(r.cfg.Log, "\nstopped after the last batch of epoch %d, before its validation (a resumed run validates it first); checkpoint written to %s\n", r.epoch+1, filepath.Join(r.cfg.Out, LastCheckpoint))
		} else {
			fmt.Fprintf(r.cfg.Log, "\nstopped at epoch %d, batch %d; checkpoint written to %s\n", r.epoch+1, r.batch, filepath.Join(r.cfg.Out, LastCheckpoint))
		}
		return nil
	}
	if r.ddp == nil {
		return save()
	}
	if err := r.broadcastBuffers(); err != nil {
		return err
	}
	return agree(r.ddp.comm, "writing the checkpoint", save())
}

// endEpoch validates, records metrics and curves, and writes checkpoints.
func (r *run) endEpoch(ctx context.Context) error {
	if r.ddp == nil {
		return r.endEpochHere(ctx)
	}
	if err := r.broadcastBuffers(); err != nil {
		return err
	}
	// Rank 0's writes can fail (a full disk) while the others wait to go
	// on: they learn it here and stop with it.
	return agree(r.ddp.comm, fmt.Sprintf("ending epoch %d", r.epoch+1), r.endEpochHere(ctx))
}

// endEpochHere is endEpoch on this rank: the evaluation (summed over the
// ranks under Config.Comm), then rank 0's records and checkpoints.
func (r *run) endEpochHere(ctx context.Context) error {
	val, err := r.evaluateOn(ctx, r.model, false)
	if err != nil {
		return err
	}
	valLoss, valAcc, confusion := val.loss, val.acc, val.confusion
	secs := time.Since(r.epochStart).Seconds()
	m := Metrics{Epoch: r.epoch + 1, Step: r.opt.Steps(), LR: r.epochLR, TrainLoss: r.lossSum / float64(max(r.seen, 1)),
		TrainAcc: r.accSum / float64(max(r.seen, 1)), ValLoss: valLoss, ValAcc: valAcc, ImgPerSec: float64(r.imgs) / secs, Seconds: secs, Skipped: r.skipped}
	score := valAcc // what picks the best checkpoint
	if r.cfg.Task == models.Segment {
		_, m.ValMeanIoU = IoU(confusion)
		score = m.ValMeanIoU
	} else if len(r.valSet.Classes) >= 5 {
		m.ValTop5 = val.top5
	}
	if r.ema != nil {
		e, err := r.evaluateEMA(ctx)
		if err != nil {
			return err
		}
		m.ValAccEMA, m.ValLossEMA = e.acc, e.loss
	}
	r.history = append(r.history, m)
	fmt.Fprint(r.cfg.Log, r.clearLive())
	miou := ""
	if r.cfg.Task == models.Segment {
		miou = fmt.Sprintf(" mIoU %.4f", m.ValMeanIoU)
	} else if m.ValTop5 > 0 {
		miou = fmt.Sprintf(" top-5 %.2f%%", 100*m.ValTop5)
	}
	if r.ema != nil {
		miou += fmt.Sprintf("  EMA val loss %.4f acc %.2f%%", m.ValLossEMA, 100*m.ValAccEMA)
	}
	skipped := ""
	if m.Skipped > 0 {
		skipped = fmt.Sprintf("  (%d unreadable file%s left out)", m.Skipped, map[bool]string{true: "s"}[m.Skipped != 1])
	}
	fmt.Fprintf(r.cfg.Log, "epoch %d/%d  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%%s  %.0f img/s  %.0fs%s\n",
		m.Epoch, r.cfg.Epochs, m.TrainLoss, 100*m.TrainAcc, m.ValLoss, 100*m.ValAcc, miou, m.ImgPerSec, secs, skipped)
	if err := m.checkFinite(); err != nil {
		return err
	}
	if !r.rank0() { // the same history and best score as rank 0, nothing written
		if score > r.best {
			r.best = score
		}
		return nil
	}
	if err := writeMetrics(r.cfg.Out, r.history); err != nil {
		return err
	}
	if err := PlotCurves(r.history, r.cfg.Out, r.cfg.Task); err != nil {
		return err
	}
	if len(r.steps) > 0 { // none when resumed at an epoch's end without a record
		if err := writeStepLoss(r.cfg.Out, r.steps, r.stepLoss); err != nil {
			return err
		}
		if err := PlotStepLoss(r.steps, r.stepLoss, filepath.Join(r.cfg.Out, "step_loss.png")); err != nil {
			return err
		}
	}
	if r.tb != nil {
		if err := r.tb.Metrics(tensorboard.EpochPrefix, int64(m.Step), m, "step"); err != nil {
			return err
		}
		if err := r.tb.Flush(); err != nil {
			return err
		}
	}
	r.epoch++ // the checkpoint records the completed epoch
	defer func() { r.epoch-- }()
	r.batch = 0
	if score > r.best {
		r.best = score
		if err := r.save(BestCheckpoint); err != nil {
			return err
		}
	}
	if r.ema != nil {
		if err := r.saveNet(EMACheckpoint, r.emaWeights(), nil); err != nil {
			return err
		}
	}
	if err := r.save(LastCheckpoint); err != nil {
		return err
	}
	if r.cfg.Overwrite && !r.replacedDropped && r.rank0() {
		// A whole epoch of the new run is saved: the run it replaces goes.
		r.replacedDropped = true
		dropReplaced(r.cfg.Out, r.cfg.Log)
	}
	return nil
}

// errStopOnEpoch is the cause of the interruption of a rank other than
// 0 under Config.Comm when rank 0's Config.OnEpoch stopped the run.
var errStopOnEpoch = errors.New("rank 0's Config.OnEpoch stopped the run")

// onEpoch calls Config.OnEpoch with the epoch just ended (on rank 0 alone
// under Config.Comm, whose ranks then learn its answer) and, when it asks
// to stop, returns ErrInterrupted with the epoch counted as completed: the
// last checkpoint (endEpoch's) holds its end.
func (r *run) onEpoch() error {
	var stop error
	if r.cfg.OnEpoch != nil && r.rank0() {
		stop = callOnEpoch(r.cfg.OnEpoch, r.history[len(r.history)-1])
	}
	if r.ddp != nil {
		flag := []float64{0}
		if stop != nil {
			flag[0] = 1
		}
		if err := r.ddp.comm.AllReduceSumFloat64(flag); err != nil {
			return fmt.Errorf("train: sharing rank 0's Config.OnEpoch answer after epoch %d: %w", r.epoch+1, err)
		}
		if flag[0] > 0 && stop == nil {
			stop = errStopOnEpoch
		}
	}
	if stop == nil {
		return nil
	}
	r.epoch, r.batch = r.epoch+1, 0
	r.stopCause = stop
	fmt.Fprintf(r.cfg.Log, "stopped after epoch %d of %d by Config.OnEpoch (%v); checkpoint written to %s\n",
		r.epoch, r.cfg.Epochs, stop, filepath.Join(r.cfg.Out, LastCheckpoint))
	return ErrInterrupted
}

// callOnEpoch calls f with m, a panic in f an error that stops the run as
// f's own would: under Config.Comm the other ranks wait in an all-reduce
// for rank 0's answer, which a panic recovered by the caller of Train
// would never give (they waited for ever).
func callOnEpoch(f func(Metrics) error, m Metrics) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Config.OnEpoch panicked: %v", p)
		}
	}()
	return f(m)
}

// progress counts a step's images (0 for a step skipped) into the
// epoch's rate and shows the epoch's progress line.
func (r *run) progress(images int) {
	r.imgs += images
	n := r.stepsPerEpoch
	el := time.Since(r.epochStart).Seconds()
	rate := float64(r.imgs) / el
	eta := "?" // no image trained yet: the epoch's first steps were skipped
	if r.imgs > 0 {
		eta = time.Duration(float64(n-r.batch) * float64(r.cfg.Batch*r.worldSize()) / rate * float64(time.Second)).Round(time.Second).String()
	}
	line := fmt.Sprintf("epoch %d/%d %s %d/%d  ETA %s  loss %.4f  acc %.2f%%  %.0f img/s",
		r.epoch+1, r.cfg.Epochs, bar(r.batch, n, 20), r.batch, n, eta, r.lossSum/float64(max(r.seen, 1)), 100*r.accSum/float64(max(r.seen, 1)), rate)
	switch {
	case r.cfg.Live:
		fmt.Fprint(r.cfg.Log, r.clearLive()+line)
	case r.batch%max(n/5, 1) == 0 && r.batch < n:
		fmt.Fprintln(r.cfg.Log, line)
	}
}

// clearLive returns what clears the live progress line (Config.Live)
// before a line of its own: nothing without it.
func (r *run) clearLive() string {
	if r.cfg.Live {
		return "\r\033[K"
	}
	return ""
}

func bar(done, total, width int) string {
	f := done * width / max(total, 1)
	b := make([]byte, width+2)
	b[0], b[width+1] = '[', ']'
	for i := 0; i < width; i++ {
		b[i+1] = '.'
		if i < f {
			b[i+1] = '#'
		}
	}
	return string(b)
}

// fitTargets returns a batch's targets for the model's output: the labels,
// or for segmentation the masks (and weights) centre-cropped to the
// output's size, which a valid-convolution U-Net makes smaller than its
// input.
func fitTargets(logits *ag.Value, b data.Batch) ([]int32, []float32) {
	s := logits.Shape()
	if len(s) != 4 || b.X.Rank() != 4 {
		return b.Y, b.W
	}
	n, h, w, oh, ow := b.X.Shape[0], b.X.Shape[1], b.X.Shape[2], s[1], s[2]
	if oh == h && ow == w {
		return b.Y, b.W
	}
	top, left := (h-oh)/2, (w-ow)/2
	y := make([]int32, 0, n*oh*ow)
	var wt []float32
	for i := 0; i < n; i++ {
		for r := top; r < top+oh; r++ {
			at := (i*h+r)*w + left
			y = append(y, b.Y[at:at+ow]...)
			if b.W != nil {
				wt = append(wt, b.W[at:at+ow]...)
			}
		}
	}
	return y, wt
}

// ignoreIndex marks targets that count in no loss and no metric: the
// loader gives it to a segmentation set's ignored pixels.
const ignoreIndex = data.IgnoreTarget

// globalLoss reports whether this step's cross-entropy is normalised over
// the global batch (see loss): under Config.Comm, with weights or ignored
// targets. Each rank's loss is then its share: their mean over the ranks
// is the global batch's loss.
func (r *run) globalLoss(weights []float32) bool {
	return r.ddp != nil && r.cfg.Loss != Dice && (weights != nil || r.trainSet.Ignore.Set)
}

// loss is the configured training loss. Under Config.Comm a weighted
// cross-entropy (Σ w·loss / Σ w), and one over a set with ignored
// targets (a mean over the counted ones), is normalised by the global
// batch's Σ w or count (see weightNorm), as one process over the global
// batch computes it; the Dice loss is each rank's batch's, averaged over
// the ranks with the gradients.
func (r *run) loss(logits *ag.Value, targets []int32, weights []float32) (*ag.Value, error) {
	var total *ag.Value
	if r.cfg.Loss != Dice {
		o := ag.CrossEntropyOptions{Ignore: true, IgnoreIndex: ignoreIndex, RowWeight: weights, LabelSmoothing: r.cfg.LabelSmoothing}
		global := r.globalLoss(weights)
		o.Sum = global
		ce, err := ag.CrossEntropy(logits, targets, o)
		if err != nil {
			return nil, err
		}
		if global {
			f, err := r.weightNorm(targets, weights)
			if err != nil {
				return nil, err
			}
			ce = ag.Scale(ce, f)
		}
		total = ce
	}
	if r.cfg.Loss == Dice || r.cfg.Loss == CEDice {
		d, err := ag.Dice(logits, targets, ignoreIndex)
		if err != nil {
			return nil, err
		}
		if total == nil {
			return d, nil
		}
		total = ag.Add(total, d)
	}
	return total, nil
}
