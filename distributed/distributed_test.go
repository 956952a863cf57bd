package distributed

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/residual-nn/residual/tensor"
)

// onRanks runs f on every rank of a new in-process group of size ranks,
// each on its own goroutine, and returns their errors.
func onRanks(size int, f func(c Comm) error) []error {
	cs := NewGroup(size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r, c := range cs {
		wg.Go(func() { errs[r] = f(c) })
	}
	wg.Wait()
	return errs
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

func TestInitKinds(t *testing.T) {
	for _, kind := range []string{"", KindNone, KindLocal} {
		c, err := Init(kind)
		if err != nil {
			t.Fatalf("Init(%q): %v", kind, err)
		}
		if c.Rank() != 0 || c.Size() != 1 {
			t.Errorf("Init(%q): rank %d of %d, want 0 of 1", kind, c.Rank(), c.Size())
		}
	}
	if _, err := Init("nccl"); err == nil || !strings.Contains(err.Error(), `unknown kind "nccl"`) {
		t.Errorf(`Init("nccl") = %v, want an unknown-kind error`, err)
	}
	if !MPIAvailable {
		if _, err := Init(KindMPI); err == nil || !strings.Contains(err.Error(), "-tags mpi") {
			t.Errorf("Init(mpi) without MPI = %v, want an error saying how to build with it", err)
		}
		// auto under a 4-process launch, in a binary without MPI, must
		// refuse rather than train 4 independent copies.
		t.Setenv("OMPI_COMM_WORLD_RANK", "1")
		t.Setenv("OMPI_COMM_WORLD_SIZE", "4")
		if _, err := Init(KindAuto); err == nil || !strings.Contains(err.Error(), "rank 1 of 4 by Open MPI") {
			t.Errorf("Init(auto) as rank 1 of 4 without MPI = %v, want an error naming the launch", err)
		}
	}
}

func TestInitAutoAlone(t *testing.T) {
	for _, v := range []string{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "K_MPI_JOB_ROLE"} {
		t.Setenv(v, "")
	}
	c, err := Init(KindAuto)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*Local); !ok {
		t.Errorf("Init(auto) with no launcher = %T, want *Local", c)
	}
}

func TestLocal(t *testing.T) {
	c := NewLocal()
	buf := []float32{1, 2, 3}
	if err := c.AllReduceSum(buf); err != nil || fmt.Sprint(buf) != "[1 2 3]" {
		t.Errorf("AllReduceSum = %v, %v; want the buffer unchanged", buf, err)
	}
	if err := c.StartAllReduceSum(buf).Wait(); err != nil {
		t.Error(err)
	}
	if err := c.Broadcast(buf, 1); err == nil {
		t.Error("Broadcast from rank 1 of 1: no error")
	}
	if err := c.Barrier(); err != nil {
		t.Error(err)
	}
	if err := c.Finalize(); err != nil {
		t.Error(err)
	}
	if err := c.AllReduceSum(buf); !errors.Is(err, ErrFinalized) {
		t.Errorf("AllReduceSum after Finalize = %v, want ErrFinalized", err)
	}
}

func TestDetectLauncher(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, c := range []struct {
		name     string
		getenv   func(string) string
		ok       bool
		want     string // Launcher.String(), or the error's text
		wantErr  bool
		rank     int
		localRnk int
	}{
		{name: "none", getenv: env()},
		{name: "open mpi", getenv: env("OMPI_COMM_WORLD_RANK", "2", "OMPI_COMM_WORLD_SIZE", "4", "OMPI_COMM_WORLD_LOCAL_RANK", "0"),
			ok: true, want: "rank 2 of 4, started by Open MPI (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK)"},
		{name: "open mpi in an mpijob, inside slurm", getenv: env("OMPI_COMM_WORLD_RANK", "1", "OMPI_COMM_WORLD_SIZE", "2", "SLURM_PROCID", "0", "SLURM_NTASKS", "2", "K_MPI_JOB_ROLE", "worker"),
			ok: true, want: "rank 1 of 2, started by Open MPI (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE), Kubeflow MPIJob worker"},
		{name: "hydra", getenv: env("PMI_RANK", "3", "PMI_SIZE", "8", "MPI_LOCALRANKID", "1"),
			ok: true, want: "rank 3 of 8, started by MPICH/Hydra (PMI_RANK, PMI_SIZE, MPI_LOCALRANKID)"},
		{name: "srun", getenv: env("SLURM_PROCID", "5", "SLURM_STEP_NUM_TASKS", "6", "SLURM_NTASKS", "6", "SLURM_LOCALID", "1"),
			ok: true, want: "rank 5 of 6, started by Slurm srun (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID)"},
		// A batch script's shell is no task of a step.
		{name: "sbatch shell", getenv: env("SLURM_PROCID", "0", "SLURM_NTASKS", "6")},
		{name: "bad rank", getenv: env("PMI_RANK", "8", "PMI_SIZE", "8"), wantErr: true, want: `MPICH/Hydra: PMI_RANK="8" and PMI_SIZE="8" are not a rank and a size`},
		{name: "not a number", getenv: env("OMPI_COMM_WORLD_RANK", "x", "OMPI_COMM_WORLD_SIZE", "2"), wantErr: true, want: "are not a rank and a size"},
		{name: "kubeflow launcher pod", getenv: env("K_MPI_JOB_ROLE", "launcher"), wantErr: true, want: "must be mpirun"},
	} {
		l, ok, err := DetectLauncher(c.getenv)
		switch {
		case c.wantErr:
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
			}
		case err != nil || ok != c.ok:
			t.Errorf("%s: ok %v, error %v; want ok %v", c.name, ok, err, c.ok)
		case ok && l.String() != c.want:
			t.Errorf("%s: %q, want %q", c.name, l.String(), c.want)
		}
	}
	// A nil getenv is the process's environment.
	t.Setenv("PMI_RANK", "1")
	t.Setenv("PMI_SIZE", "2")
	if l, ok, err := DetectLauncher(nil); err != nil || !ok || l.Rank != 1 || l.Size != 2 {
		t.Errorf("DetectLauncher(nil) with PMI_RANK=1 PMI_SIZE=2 set: %v, %v, %v", l, ok, err)
	}
}

func TestGroupCollectives(t *testing.T) {
	for _, size := range []int{1, 2, 3} {
		errs := onRanks(size, func(c Comm) error {
			r := c.Rank()
			sizes := []int{0, 1, 3, 1000003}
			reqs := make([]Request, len(sizes))
			bufs := make([][]float32, len(sizes))
			for k, n := range sizes {
				bufs[k] = rankData(r, k, n)
				reqs[k] = c.StartAllReduceSum(bufs[k])
			}
			for k := range sizes {
				if err := reqs[k].Wait(); err != nil {
					return err
				}
				if err := checkSum("sum", bufs[k], size, k, 1); err != nil {
					return err
				}
			}
			// float64 sums keep what float32 would round away.
			d := []float64{1e15 + float64(r), 0.1}
			if err := c.AllReduceSumFloat64(d); err != nil {
				return err
			}
			if want := float64(size)*1e15 + float64(size*(size-1)/2); d[0] != want {
				return fmt.Errorf("AllReduceSumFloat64 = %v, want %v", d[0], want)
			}
			f := rankData(r, 9, 5)
			if err := c.Broadcast(f, size-1); err != nil {
				return err
			}
			if !slices.Equal(f, rankData(size-1, 9, 5)) {
				return errors.New("Broadcast: not the root's values")
			}
			b := []byte{byte(r)}
			if err := c.BroadcastBytes(b, 0); err != nil || b[0] != 0 {
				return fmt.Errorf("BroadcastBytes: %v, %v", b, err)
			}
			return c.Barrier()
		})
		noErrors(t, errs)
	}
}

func TestGroupMismatchFailsInsteadOfHanging(t *testing.T) {
	errs := onRanks(2, func(c Comm) error {
		if c.Rank() == 0 {
			return c.AllReduceSum(make([]float32, 3))
		}
		return c.Broadcast(make([]float32, 3), 0)
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "collective 0 is") {
			t.Errorf("rank %d: %v, want an error naming the mismatch", r, err)
		}
	}
	errs = onRanks(2, func(c Comm) error { return c.AllReduceSum(make([]float32, 2+c.Rank())) })
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "2 values on rank 0 and 3 on rank 1") {
			t.Errorf("rank %d: %v, want an error naming the lengths", r, err)
		}
	}
	// Three ranks: the mismatch is found when the second comes, and the
	// third, coming later to the failed collective, gets its error too
	// (it made a fresh round and waited for the others for ever); the
	// next collective works on all three.
	finished := make(chan []error, 1)
	go func() {
		finished <- onRanks(3, func(c Comm) error {
			time.Sleep(time.Duration(c.Rank()) * 50 * time.Millisecond)
			var err error
			if c.Rank() == 1 {
				err = c.Barrier()
			} else {
				err = c.AllReduceSum(make([]float32, 4))
			}
			if err == nil || !strings.Contains(err.Error(), "collective 0 is") {
				return fmt.Errorf("the mismatched collective: %v, want an error naming it", err)
			}
			return c.Barrier()
		})
	}()
	select {
	case errs := <-finished:
		noErrors(t, errs)
	case <-time.After(20 * time.Second):
		t.Fatal("three ranks, one of them late to a mismatched collective: still waiting after 20 s")
	}
	// A rank that leaves makes the others' collectives fail.
	errs = onRanks(3, func(c Comm) error {
		if c.Rank() == 2 {
			return c.Finalize()
		}
		return c.Barrier()
	})
	for r, err := range errs[:2] {
		if err == nil || !strings.Contains(err.Error(), "rank 2 finalized") {
			t.Errorf("rank %d: %v, want an error naming the finalized rank", r, err)
		}
	}
}

func TestAssignBuckets(t *testing.T) {
	// 4 parameters of 100, 200, 300, 400 floats (400 … 1600 bytes), caps
	// of 1000 bytes (first) and 2000: backwards, parameter 3 fills the
	// first bucket alone; 2 and 1 reach 2000 bytes; 0 is left over.
	got := AssignBuckets([]int{100, 200, 300, 400}, 2000, 1000)
	if want := [][]int{{3}, {2, 1}, {0}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("AssignBuckets = %v, want %v", got, want)
	}
	// The defaults: a ResNet-50-like list, every bucket within its cap
	// but for its last gradient, in reverse order, covering everything.
	sizes := []int{9408, 64, 64}
	for range 50 {
		sizes = append(sizes, 2359296, 512, 512)
	}
	sizes = append(sizes, 2048000, 1000)
	bs := AssignBuckets(sizes, DefaultBucketBytes, DefaultFirstBucketBytes)
	var seen []int
	for k, b := range bs {
		bytes := 0
		for _, p := range b {
			bytes += 4 * sizes[p]
		}
		lim := DefaultBucketBytes
		if k == 0 {
			lim = DefaultFirstBucketBytes
		}
		if last := 4 * sizes[b[len(b)-1]]; bytes-last >= lim {
			t.Errorf("bucket %d holds %d bytes, %d before its last gradient, cap %d", k, bytes, bytes-last, lim)
		}
		seen = append(seen, b...)
	}
	for i, p := range seen {
		if p != len(sizes)-1-i {
			t.Fatalf("buckets %v do not list the parameters in reverse order", bs)
		}
	}
	if len(seen) != len(sizes) {
		t.Errorf("buckets cover %d of %d parameters", len(seen), len(sizes))
	}
}

// TestReducerEqualsPlainSum: the bucketed, averaged gradients equal, bit
// for bit, each gradient all-reduced on its own and divided by the
// number of ranks (the group adds in rank order either way), and the
// float64 mean within the tolerance of checkSum — for odd sizes, 2 and 3
// ranks, several buckets, gradients marked in a different order on each
// rank, over several steps.
func TestReducerEqualsPlainSum(t *testing.T) {
	sizes := []int{1, 3, 1000003, 5, 257, 4096, 1}
	for _, size := range []int{2, 3} {
		plain := make([][][]float32, size) // [rank][step·len(sizes)+i]
		noErrors(t, onRanks(size, func(c Comm) error {
			for step := range 2 {
				for i, n := range sizes {
					g := rankData(c.Rank(), 100+10*step+i, n)
					if err := c.AllReduceSum(g); err != nil {
						return err
					}
					for k := range g {
						g[k] /= float32(size)
					}
					plain[c.Rank()] = append(plain[c.Rank()], g)
				}
			}
			return nil
		}))
		noErrors(t, onRanks(size, func(c Comm) error {
			red, err := NewReducer(c, sizes, ReducerOptions{BucketBytes: 64 << 10, FirstBucketBytes: 1 << 10})
			if err != nil {
				return err
			}
			if nb := len(red.Buckets()); nb < 3 {
				return fmt.Errorf("%d buckets, want several", nb)
			}
			for step := range 2 {
				grads, err := reduceStep(red, c.Rank(), 100+10*step, sizes, uint64(c.Rank()+10*step))
				if err != nil {
					return err
				}
				for i, g := range grads {
					if !slices.Equal(g, plain[c.Rank()][step*len(sizes)+i]) {
						return fmt.Errorf("step %d: gradient %d differs from the plain all-reduce", step, i)
					}
					if err := checkSum(fmt.Sprintf("step %d, gradient %d", step, i), g, size, 100+10*step+i, float64(size)); err != nil {
						return err
					}
				}
			}
			return nil
		}))
	}
}

// reduceStep runs one step of red on this rank: the gradients
// rankData(rank, k0+i, sizes[i]), marked in an order drawn from seed, then
// Wait. It returns the gradients, averaged in place.
func reduceStep(red *Reducer, rank, k0 int, sizes []int, seed uint64) ([][]float32, error) {
	grads := make([][]float32, len(sizes))
	for i, n := range sizes {
		grads[i] = rankData(rank, k0+i, n)
	}
	for _, i := range tensor.NewRNG(seed).Perm(len(sizes)) {
		if err := red.MarkReady(i, grads[i]); err != nil {
			return nil, err
		}
	}
	return grads, red.Wait()
}

// recorder is a Comm that counts the all-reduces started.
type recorder struct {
	Comm
	started, startedBF16 int
}

func (r *recorder) StartAllReduceSum(buf []float32) Request {
	r.started++
	return r.Comm.StartAllReduceSum(buf)
}

func (r *recorder) StartAllReduceSumBF16(buf []uint16) Request {
	r.startedBF16++
	return r.Comm.StartAllReduceSumBF16(buf)
}

// TestAllReduceSumBF16 checks the in-process group's bfloat16 sums (the
// MPI implementation runs the same checks in TestMPICollectives) and that
// one process leaves its buffer alone.
func TestAllReduceSumBF16(t *testing.T) {
	for _, size := range []int{1, 2, 3} {
		noErrors(t, onRanks(size, checkBF16))
	}
	buf := []uint16{0x3F80, 0x7FC1}
	if err := NewLocal().StartAllReduceSumBF16(buf).Wait(); err != nil || buf[0] != 0x3F80 || buf[1] != 0x7FC1 {
		t.Errorf("Local.StartAllReduceSumBF16: %v, buffer %#04x", err, buf)
	}
}

// TestReducerBF16Compression: with BF16Compression every bucket goes out
// as bfloat16 (and none as float32), and each gradient comes back as the
// mean over the ranks within the bound BF16Compression documents: N
// roundings of relative error 2⁻⁸ of the terms g_r/N, γ_N·Σ|g_r|/N, plus
// the float32 division's 2⁻²⁴ (the widening is exact), with 2⁻²⁴ to spare.
func TestReducerBF16Compression(t *testing.T) {
	sizes := []int{1, 3, 100003, 5, 257, 4096, 1}
	for _, size := range []int{2, 3} {
		noErrors(t, onRanks(size, func(c Comm) error {
			rec := &recorder{Comm: c}
			red, err := NewReducer(rec, sizes, ReducerOptions{BucketBytes: 64 << 10, FirstBucketBytes: 1 << 10, Compression: BF16Compression})
			if err != nil {
				return err
			}
			for step := range 2 {
				grads, err := reduceStep(red, c.Rank(), 200+10*step, sizes, uint64(c.Rank()+10*step))
				if err != nil {
					return err
				}
				u := math.Ldexp(1, -8)
				gamma := float64(size)*u/(1-float64(size)*u) + 2*math.Ldexp(1, -24)
				for i, g := range grads {
					all := make([][]float32, size)
					for r := range all {
						all[r] = rankData(r, 200+10*step+i, len(g))
					}
					for k, v := range g {
						var mean, abs float64
						for _, d := range all {
							x := float64(d[k])
							mean += x / float64(size)
							abs += math.Abs(x) / float64(size)
						}
						if d := math.Abs(float64(v) - mean); d > gamma*abs {
							return fmt.Errorf("step %d, gradient %d, element %d: %g, want %g ± %.3g", step, i, k, v, mean, gamma*abs)
						}
					}
				}
			}
			if nb := len(red.Buckets()); rec.startedBF16 != 2*nb || rec.started != 0 {
				return fmt.Errorf("%d buckets over 2 steps: %d bfloat16 and %d float32 all-reduces, want %d and 0", nb, rec.startedBF16, rec.started, 2*nb)
			}
			return nil
		}))
	}
	if _, err := NewReducer(NewLocal(), []int{3}, ReducerOptions{Compression: 7}); err == nil {
		t.Error("NewReducer with an unknown compression: no error")
	}
	for s, want := range map[string]Compression{"": NoCompression, "none": NoCompression, "bf16": BF16Compression} {
		if got, err := ParseCompression(s); err != nil || got != want || (s != "" && got.String() != s) {
			t.Errorf("ParseCompression(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := ParseCompression("fp16"); err == nil {
		t.Error(`ParseCompression("fp16"): no error`)
	}
}

// TestReducerStartsBucketsEarlyAndInOrder: a bucket's all-reduce starts
// at its last gradient, not at Wait, and not before the buckets ahead of
// it.
func TestReducerStartsBucketsEarlyAndInOrder(t *testing.T) {
	rec := &recorder{Comm: NewLocal()}
	// Buckets (caps 8 and 16 bytes): {3}, {2, 1}, {0}.
	red, err := NewReducer(rec, []int{4, 2, 2, 2}, ReducerOptions{BucketBytes: 16, FirstBucketBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(red.Buckets()); got != "[[3] [2 1] [0]]" {
		t.Fatalf("buckets %s", got)
	}
	g := func(n int) []float32 { return make([]float32, n) }
	steps := []struct {
		param, started int
	}{
		{2, 0}, // bucket 1 waits for parameter 1
		{1, 0}, // bucket 1 complete, but bucket 0 has not started
		{3, 2}, // bucket 0 starts, then bucket 1
		{0, 3},
	}
	sizes := []int{4, 2, 2, 2}
	for _, s := range steps {
		if err := red.MarkReady(s.param, g(sizes[s.param])); err != nil {
			t.Fatal(err)
		}
		if rec.started != s.started {
			t.Errorf("after parameter %d: %d all-reduces started, want %d", s.param, rec.started, s.started)
		}
	}
	if err := red.Wait(); err != nil {
		t.Fatal(err)
	}
	if rec.started != 3 {
		t.Errorf("Wait started %d more all-reduces", rec.started-3)
	}
}

// goroutineComm is a Comm whose all-reduces are driven by a goroutine of
// their own, as MPI's are: each starts one, which records that it ran.
type goroutineComm struct {
	Comm
	ran atomic.Int32
}

func (c *goroutineComm) StartAllReduceSum(buf []float32) Request {
	go c.ran.Add(1)
	return c.Comm.StartAllReduceSum(buf)
}

// TestReducerLetsTheCommRun checks that, with one processor, a bucket
// started during the backward pass gets its goroutine run while the pass
// goes on (within the next MarkReady), not only when the scheduler
// preempts the computation or Wait blocks: the overlap depends on it. One
// yield in 61 goes back to the yielding goroutine (the scheduler's
// fairness check of its global queue), so each bucket is given two.
func TestReducerLetsTheCommRun(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	c := &goroutineComm{Comm: NewLocal()}
	// Buckets (caps 8 and 24 bytes): {4}, {3, 2, 1}, {0}.
	red, err := NewReducer(c, []int{2, 2, 2, 2, 2}, ReducerOptions{BucketBytes: 24, FirstBucketBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(red.Buckets()); got != "[[4] [3 2 1] [0]]" {
		t.Fatalf("buckets %s", got)
	}
	for _, s := range []struct{ param, ran int }{
		{4, -1}, // bucket 0 starts
		{3, 1},  // its goroutine has run
		{2, 1},
		{1, -1}, // bucket 1 starts
		{0, 2},  // bucket 2 starts; bucket 1's goroutine has run
	} {
		if err := red.MarkReady(s.param, make([]float32, 2)); err != nil {
			t.Fatal(err)
		}
		if got := int(c.ran.Load()); s.ran >= 0 && got < s.ran {
			t.Errorf("after parameter %d: the all-reduces' goroutines ran %d times, want at least %d", s.param, got, s.ran)
		}
	}
	if err := red.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestReducerNoSyncAccumulates(t *testing.T) {
	const size = 2
	sizes := []int{3, 5}
	noErrors(t, onRanks(size, func(c Comm) error {
		rec := &recorder{Comm: c}
		red, err := NewReducer(rec, sizes, ReducerOptions{})
		if err != nil {
			return err
		}
		// Two micro-batches accumulate locally; the second step syncs.
		acc := [][]float32{make([]float32, 3), make([]float32, 5)}
		micro := func(k int) error {
			for i := len(sizes) - 1; i >= 0; i-- {
				for j, v := range rankData(c.Rank(), 10*k+i, sizes[i]) {
					acc[i][j] += v
				}
				if err := red.MarkReady(i, acc[i]); err != nil {
					return err
				}
			}
			return red.Wait()
		}
		if err := red.NoSync(func() error { return micro(0) }); err != nil {
			return err
		}
		if rec.started != 0 {
			return fmt.Errorf("%d all-reduces under NoSync", rec.started)
		}
		if err := micro(1); err != nil {
			return err
		}
		for i := range sizes {
			for j := range acc[i] {
				var want float64
				for r := range size {
					want += float64(rankData(r, i, sizes[i])[j]) + float64(rankData(r, 10+i, sizes[i])[j])
				}
				want /= size
				// Each rank's float32 addition, the sum over the ranks
				// and the division: 3 roundings of values of at most
				// Σ|x| ≤ 4, so 3·2⁻²⁴·4 < 1e-6.
				if d := math.Abs(float64(acc[i][j]) - want); d > 1e-6 {
					return fmt.Errorf("parameter %d[%d] = %g, want %g", i, j, acc[i][j], want)
				}
			}
		}
		if err := red.MarkReady(0, acc[0]); err != nil {
			return err
		}
		if err := red.NoSync(func() error { return nil }); err == nil {
			return errors.New("NoSync in the middle of a step: no error")
		}
		if err := red.Wait(); err == nil || !strings.Contains(err.Error(), "parameters [1] got no gradient") {
			return fmt.Errorf("Wait without parameter 1 = %v, want an error naming it", err)
		}
		return nil
	}))
}

func TestReducerMissingGradientDoesNotHang(t *testing.T) {
	sizes := []int{2, 2, 2}
	errs := onRanks(2, func(c Comm) error {
		red, err := NewReducer(c, sizes, ReducerOptions{BucketBytes: 8, FirstBucketBytes: 8})
		if err != nil {
			return err
		}
		g := [][]float32{{1, 1}, {2, 2}, {3, 3}}
		for i := range sizes {
			if c.Rank() == 1 && i == 1 {
				continue // unused on rank 1
			}
			if err := red.MarkReady(i, g[i]); err != nil {
				return err
			}
		}
		err = red.Wait()
		if c.Rank() == 0 {
			if err != nil {
				return err
			}
			if fmt.Sprint(g) != "[[1 1] [1 1] [3 3]]" { // parameter 1: (2+0)/2
				return fmt.Errorf("averaged %v", g)
			}
			return nil
		}
		if err == nil || !strings.Contains(err.Error(), "parameters [1] got no gradient") {
			return fmt.Errorf("Wait without parameter 1 = %v, want an error naming it", err)
		}
		return nil
	})
	noErrors(t, errs)
}

func TestReducerRejectsBadInput(t *testing.T) {
	if _, err := NewReducer(NewLocal(), []int{3, 0}, ReducerOptions{}); err == nil {
		t.Error("NewReducer with an empty gradient: no error")
	}
	red, err := NewReducer(NewLocal(), []int{3}, ReducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		i    int
		g    []float32
		want string
	}{
		{1, make([]float32, 3), "parameter 1 of 1"},
		{0, make([]float32, 2), "has 2 gradient values, the Reducer was built for 3"},
	} {
		if err := red.MarkReady(c.i, c.g); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("MarkReady(%d, %d values) = %v, want %q", c.i, len(c.g), err, c.want)
		}
	}
	if err := red.MarkReady(0, make([]float32, 3)); err != nil {
		t.Fatal(err)
	}
	if err := red.MarkReady(0, make([]float32, 3)); err == nil || !strings.Contains(err.Error(), "marked twice") {
		t.Errorf("second MarkReady = %v, want a marked-twice error", err)
	}
}

// The functions that take a Comm refuse a nil one with an error: NewReducer
// accepted it (and its Reducer panicked at the first bucket), the others
// panicked.
func TestNilComm(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panicked on a nil Comm: %v", r)
		}
	}()
	var typed *Local
	for _, c := range []Comm{nil, typed} {
		_, rerr := NewReducer(c, []int{3}, ReducerOptions{})
		_, serr := BroadcastString(c, "x", 0)
		for name, err := range map[string]error{
			"NewReducer": rerr, "BroadcastString": serr,
			"CheckSame":        CheckSame(c, "model", "resnet20"),
			"BroadcastTensors": BroadcastTensors(c, [][]float32{{1}}, 0),
		} {
			if err == nil || !strings.Contains(err.Error(), "no Comm") {
				t.Errorf("%s(%T nil): error %v, want one saying there is no Comm", name, c, err)
			}
		}
	}
}

func TestCheckSame(t *testing.T) {
	noErrors(t, onRanks(3, func(c Comm) error { return CheckSame(c, "model", "resnet20") }))
	for _, c := range []struct {
		values []string
		want   string
	}{
		{[]string{"resnet20", "resnet20", "resnet32"},
			`the ranks disagree on model: rank 2 differs from rank 0: rank 0 has "resnet20", rank 2 has "resnet32"`},
		{[]string{"lr=0.1\nbatch=64\nseed=1", "lr=0.1\nbatch=32\nseed=2", "lr=0.1\nbatch=32\nseed=1"},
			`the ranks disagree on model: ranks 1, 2 differ from rank 0: rank 0 has "batch=64", "seed=1"; rank 1 has "batch=32", "seed=2"`},
		{[]string{"a\nb", "b\na", "a\nb"}, "rank 1 differs from rank 0: the same lines in another order on rank 1"},
	} {
		errs := onRanks(3, func(cm Comm) error { return CheckSame(cm, "model", c.values[cm.Rank()]) })
		for r, err := range errs {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("values %q, rank %d: %v, want %q", c.values, r, err, c.want)
			}
		}
	}
}

func TestBroadcastTensors(t *testing.T) {
	sizes := []int{5, DefaultBucketBytes/4 + 1, 3, 1, 2}
	noErrors(t, onRanks(2, func(c Comm) error {
		ts := make([][]float32, len(sizes))
		for i, n := range sizes {
			ts[i] = rankData(c.Rank(), i, n)
		}
		if err := BroadcastTensors(c, ts, 0); err != nil {
			return err
		}
		for i, tn := range ts {
			if !slices.Equal(tn, rankData(0, i, sizes[i])) {
				return fmt.Errorf("tensor %d is not rank 0's", i)
			}
		}
		return nil
	}))
	errs := onRanks(2, func(c Comm) error {
		return BroadcastTensors(c, [][]float32{make([]float32, 3+c.Rank())}, 0)
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), `rank 0 has "3", rank 1 has "4"`) {
			t.Errorf("rank %d: %v, want the sizes named", r, err)
		}
	}
}

// TestSamplerMatchesTorch compares the shards with those of PyTorch's
// DistributedSampler (testdata/sampler.json, from gen_sampler.py): Shard
// of torch's epoch order gives torch's indices for every rank, and Len
// torch's len.
func TestSamplerMatchesTorch(t *testing.T) {
	b, err := os.ReadFile("testdata/sampler.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			N, Size, Len int
			Shuffle      bool
			DropLast     bool `json:"drop_last"`
			Seed         uint64
			Epoch        int
			Order        []int
			Ranks        [][]int
		}
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range f.Cases {
		for r := range c.Size {
			s, err := NewSampler(Sampler{N: c.N, Rank: r, Size: c.Size, Shuffle: c.Shuffle, Seed: c.Seed, DropLast: c.DropLast})
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() != c.Len {
				t.Errorf("n=%d size=%d drop_last=%v: Len %d, torch %d", c.N, c.Size, c.DropLast, s.Len(), c.Len)
			}
			if got := s.Shard(c.Order); !slices.Equal(got, c.Ranks[r]) {
				t.Errorf("n=%d size=%d drop_last=%v rank %d: Shard %v, torch %v", c.N, c.Size, c.DropLast, r, got, c.Ranks[r])
			}
			if !c.Shuffle {
				if got := s.Indices(c.Epoch); !slices.Equal(got, c.Ranks[r]) {
					t.Errorf("n=%d size=%d rank %d unshuffled: Indices %v, torch %v", c.N, c.Size, r, got, c.Ranks[r])
				}
			}
		}
	}
}

func TestSamplerEpochs(t *testing.T) {
	const n, size = 1001, 3
	shards := func(epoch int) [][]int {
		out := make([][]int, size)
		for r := range size {
			s, err := NewSampler(Sampler{N: n, Rank: r, Size: size, Shuffle: true, Seed: 42})
			if err != nil {
				t.Fatal(err)
			}
			out[r] = s.Indices(epoch)
		}
		return out
	}
	e0, e1 := shards(0), shards(1)
	if fmt.Sprint(e0) != fmt.Sprint(shards(0)) {
		t.Error("the same epoch gave other shards")
	}
	if fmt.Sprint(e0) == fmt.Sprint(e1) {
		t.Error("epochs 0 and 1 gave the same shards")
	}
	for _, e := range [][][]int{e0, e1} {
		count := make([]int, n)
		for _, sh := range e {
			if len(sh) != 334 {
				t.Errorf("a shard of %d, want ⌈1001/3⌉ = 334", len(sh))
			}
			for _, i := range sh {
				count[i]++
			}
		}
		// 3·334 = 1002: every index once, one twice (the padding).
		twice := 0
		for i, k := range count {
			if k == 0 || k > 2 {
				t.Fatalf("index %d drawn %d times", i, k)
			}
			if k == 2 {
				twice++
			}
		}
		if twice != 1 {
			t.Errorf("%d indices drawn twice, want 1", twice)
		}
	}
	// Size ranks with batch B see, step by step, one process's batch
	// Size·B of the same order.
	one, _ := NewSampler(Sampler{N: n, Size: 1, Shuffle: true, Seed: 42})
	all := one.Indices(1)
	const b = 4
	for step := 0; step*b < 334 && (step+1)*b*size <= n; step++ {
		var got []int
		for r := range size {
			got = append(got, e1[r][step*b:(step+1)*b]...)
		}
		slices.Sort(got)
		want := slices.Clone(all[step*b*size : (step+1)*b*size])
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: the ranks' batches %v are not one process's %v", step, got, want)
		}
	}
	for _, c := range []struct{ n, r, size int }{{-1, 0, 1}, {10, 3, 3}, {10, 0, 0}} {
		// No Sampler with the error: one whose Size is 0 divides by zero.
		if s, err := NewSampler(Sampler{N: c.n, Rank: c.r, Size: c.size}); err == nil || s != nil {
			t.Errorf("NewSampler(n=%d, rank %d of %d) = %v, %v; want nil and an error", c.n, c.r, c.size, s, err)
		}
	}
	if _, err := NewSampler(Sampler{N: 2, Size: 3, DropLast: true}); err == nil {
		t.Error("DropLast with fewer samples than ranks: no error")
	}
	// The fields given, each by its name.
	in := Sampler{N: 7, Rank: 1, Size: 2, Shuffle: true, Seed: 9, DropLast: true}
	if s, err := NewSampler(in); err != nil || *s != in {
		t.Errorf("NewSampler(%+v) = %+v, %v", in, s, err)
	}
}
