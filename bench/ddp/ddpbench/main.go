// Command ddpbench measures a data-parallel training step: its time, the
// time the ranks spend all-reducing gradients, and how much of that the
// overlap with the backward pass hides. Run it as one process, or as N
// ranks under mpirun (a binary built with -tags mpi):
//
//	GOMAXPROCS=2 ddpbench --model resnet20 --batch 128
//	mpirun -np 2 --bind-to core -x GOMAXPROCS=1 ddpbench --model resnet20 --batch 64
//
// It trains on one fixed random batch per rank (synthetic data: the data
// loader is not measured), with the trainer's gradient path: a Reducer
// with DDP's buckets, fed by Tape.SetGradReady. It times, per step, in
// three phases of --steps steps each after --warmup untimed ones:
//
//   - overlap: buckets all-reduced during the backward pass (the trainer);
//   - after: every bucket all-reduced after the backward pass (no
//     overlap);
//   - comm: the buckets alone, no computation: the all-reduce time.
//
// and prints, on rank 0, one line "RESULT {json}" with the medians (over
// steps, then the mean over ranks) in seconds: step_s (overlap);
// exposed_s (also wait_s: the part of the overlap step spent in
// Reducer.Wait, the communication the overlap did not hide); comm_s (the
// total communication time, the buckets alone); hidden_s = comm_s −
// exposed_s (clamped at 0), the part the overlap hid, and hidden_frac =
// hidden_s / comm_s; step_after_s. exposed_s also holds a rank's wait for
// a slower rank (the ranks' imbalance), which no overlap can hide. With
// one process the collectives do nothing: comm_s measures only the copies
// in and out of the buckets, and the after phase, which would repeat the
// overlap phase, is not run (step_after_s is step_s).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensor"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ddpbench:", err)
		os.Exit(1)
	}
}

func run() error {
	model := flag.String("model", "resnet20", "model preset (resnet20: CIFAR, 32×32; resnet50: ImageNet, 224×224)")
	batch := flag.Int("batch", 0, "batch per rank (default: 128 for CIFAR models, 8 for ImageNet ones, divided by the ranks)")
	side := flag.Int("side", 0, "image side (default: the model's, 32 or 224)")
	steps := flag.Int("steps", 10, "timed steps per phase")
	warmup := flag.Int("warmup", 2, "untimed steps before each phase")
	kind := flag.String("distributed", "auto", "none, mpi or auto")
	syncBN := flag.Bool("sync-bn", false, "SyncBatchNorm")
	bucketMB := flag.Float64("bucket-mb", 25, "bucket size in MiB (DDP's bucket_cap_mb)")
	firstMB := flag.Float64("first-bucket-mb", 1, "the first bucket's size in MiB (DDP's 1 MiB)")
	compressFlag := flag.String("grad-compression", "none", "none or bf16: the form in which gradients are all-reduced (distributed.Compression)")
	flag.Parse()
	compress, err := distributed.ParseCompression(*compressFlag)
	if err != nil {
		return err
	}

	comm, err := distributed.Init(*kind)
	if err != nil {
		return err
	}
	cfg, err := models.Preset(*model)
	if err != nil {
		return err
	}
	if *side == 0 {
		*side = cfg.DefaultSide()
	}
	if *batch == 0 {
		global := 128
		if *side > 64 {
			global = 8
		}
		*batch = max(global/comm.Size(), 1)
	}
	rng := tensor.NewRNG(1)
	m, err := models.Build(cfg, rng)
	if err != nil {
		return err
	}
	params := nn.Parameters(m)
	var weights [][]float32
	sizes := make([]int, len(params))
	index := map[*ag.Value]int{}
	for i, p := range params {
		sizes[i], index[p] = p.Data.Len(), i
	}
	for _, e := range nn.StateDict(m) {
		weights = append(weights, e.Tensor.Data)
	}
	if err := distributed.BroadcastTensors(comm, weights, 0); err != nil {
		return err
	}
	if *syncBN {
		for _, l := range nn.Layers(m) {
			if bn, ok := l.Layer.(*nn.BatchNorm); ok {
				bn.Sync = func(s []float64) {
					if err := comm.AllReduceSumFloat64(s); err != nil {
						panic(err)
					}
				}
			}
		}
	}
	red, err := distributed.NewReducer(comm, sizes, distributed.ReducerOptions{BucketBytes: int(*bucketMB * (1 << 20)), FirstBucketBytes: int(*firstMB * (1 << 20)), Compression: compress})
	if err != nil {
		return err
	}
	opt, err := optim.NewSGD([]optim.Group{{Params: params}}, optim.SGDConfig{LR: 0.01, Momentum: 0.9, WeightDecay: 1e-4})
	if err != nil {
		return err
	}
	data := tensor.NewRNG(uint64(100 + comm.Rank())) // each rank its own batch
	x := data.Randn(cfg.InputShape(*batch, *side)...)
	labels := make([]int32, *batch)
	for i := range labels {
		labels[i] = int32(data.IntN(cfg.Classes()))
	}

	tape := ag.NewTape()
	overlap := false
	var markErr error
	marked := make([]bool, len(params))
	tape.SetGradReady(func(v *ag.Value) {
		if i, ok := index[v]; ok && overlap {
			marked[i] = true
			if err := red.MarkReady(i, v.Grad.Data); err != nil && markErr == nil {
				markErr = err
			}
		}
	})
	// step runs one training step and returns its time and the time spent
	// in Reducer.Wait.
	step := func() (total, wait time.Duration, err error) {
		start := time.Now()
		for _, p := range params {
			p.ZeroGrad()
		}
		loss, err := ag.CrossEntropy(m.Forward(tape.Constant(x)), labels, ag.CrossEntropyOptions{})
		if err != nil {
			return 0, 0, err
		}
		tape.Backward(loss)
		for i, p := range params {
			if !marked[i] {
				if p.Grad == nil {
					p.Grad = tensor.New(p.Data.Shape...)
				}
				if err := red.MarkReady(i, p.Grad.Data); err != nil {
					return 0, 0, err
				}
			}
		}
		clear(marked)
		w := time.Now()
		if err := red.Wait(); err != nil {
			return 0, 0, err
		}
		wait = time.Since(w)
		opt.Step()
		tape.Reset()
		return time.Since(start), wait, markErr
	}
	phase := func(withOverlap bool) (total, wait float64, err error) {
		overlap = withOverlap
		var ts, ws []float64
		for i := range *warmup + *steps {
			t, w, err := step()
			if err != nil {
				return 0, 0, err
			}
			if i >= *warmup {
				ts, ws = append(ts, t.Seconds()), append(ws, w.Seconds())
			}
		}
		return median(ts), median(ws), nil
	}
	stepS, waitS, err := phase(true)
	if err != nil {
		return err
	}
	afterS := stepS
	if comm.Size() > 1 {
		if afterS, _, err = phase(false); err != nil {
			return err
		}
	}
	// The buckets alone: what the all-reduces take with nothing to hide
	// them behind (the ranks first meet, so that none measures the
	// others' lateness).
	var cs []float64
	for i := range *warmup + *steps {
		if err := comm.Barrier(); err != nil {
			return err
		}
		start := time.Now()
		for j := len(params) - 1; j >= 0; j-- {
			if err := red.MarkReady(j, params[j].Grad.Data); err != nil {
				return err
			}
		}
		if err := red.Wait(); err != nil {
			return err
		}
		if i >= *warmup {
			cs = append(cs, time.Since(start).Seconds())
		}
	}
	commS := median(cs)
	vals := []float64{stepS, waitS, afterS, commS}
	if err := comm.AllReduceSumFloat64(vals); err != nil {
		return err
	}
	for i := range vals {
		vals[i] /= float64(comm.Size())
	}
	bytes := 0
	for _, n := range sizes {
		bytes += 4 * n
	}
	hidden := max(vals[3]-vals[1], 0)
	res := map[string]any{
		"name": fmt.Sprintf("ddp %s b%d×%d ranks×%d threads", *model, *batch, comm.Size(), runtime.GOMAXPROCS(0)), "model": *model,
		"batch_per_rank": *batch, "ranks": comm.Size(), "threads": runtime.GOMAXPROCS(0), "side": *side, "sync_bn": *syncBN, "grad_compression": compress.String(),
		"buckets": len(red.Buckets()), "grad_bytes": bytes, "steps": *steps,
		"step_s": vals[0], "wait_s": vals[1], "exposed_s": vals[1], "step_after_s": vals[2], "comm_s": vals[3], "hidden_s": hidden,
		"hidden_frac": hidden / max(vals[3], 1e-12), "img_per_s": float64(*batch*comm.Size()) / vals[0],
	}
	if comm.Rank() == 0 {
		b, _ := json.Marshal(res)
		fmt.Println("RESULT " + string(b))
	}
	return comm.Finalize()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
