//go:build mpi && cgo && unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/train"
)

// The data-parallel CLI under Open MPI's mpirun: residual built with
// -tags mpi, started as 1, 2 and 3 ranks. Run by
//
//	CGO_ENABLED=1 go test -tags mpi -run MPI ./cmd/residual/

var mpiBuilt struct {
	bin string
	err error
}

// mpiResidual builds residual with -tags mpi once.
func mpiResidual(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not found: install openmpi-bin to run the MPI tests")
	}
	if mpiBuilt.bin == "" && mpiBuilt.err == nil {
		dir, err := os.MkdirTemp("", "residual-mpi-test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {}) // the folder outlives the test: later tests reuse the binary
		mpiBuilt.bin = filepath.Join(dir, "residual")
		cmd := exec.Command("go", "build", "-tags", "mpi", "-o", mpiBuilt.bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			mpiBuilt.err = fmt.Errorf("go build -tags mpi: %v\n%s", err, out)
		}
	}
	if mpiBuilt.err != nil {
		t.Fatal(mpiBuilt.err)
	}
	return mpiBuilt.bin
}

// mpiCmd returns the command that runs residual as np ranks.
func mpiCmd(ctx context.Context, bin string, np int, args ...string) *exec.Cmd {
	a := append([]string{"--oversubscribe", "--allow-run-as-root", "-np", strconv.Itoa(np), bin}, args...)
	cmd := exec.CommandContext(ctx, "mpirun", a...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) } // mpirun passes it on; SIGKILL would orphan the ranks
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// mpiTrain runs residual train as np ranks and returns its output.
func mpiTrain(t *testing.T, np int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := mpiCmd(ctx, mpiResidual(t), np, append([]string{"train", "--distributed", "mpi"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mpirun -np %d residual train %s: %v\n%s", np, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mpiArgs is a small run: ResNet-8 on 384 MNIST images (288 to train, 96
// to validate), shifted and flipped (each image's draws depend on the
// seed, the epoch and its index alone, so one batch and its shards are
// augmented alike), 2 epochs, learning rate 0.01 (see
// TestMPITrainEquivalence for why not more).
func mpiArgs(out string, batch int, extra ...string) []string {
	return append([]string{"--model", "resnet8", "--data", "mnist", "--limit", "384", "--val-split", "0.25", "--augment", "pad=2,flip",
		"--epochs", "2", "--batch", strconv.Itoa(batch), "--lr", "0.01", "--schedule", "constant", "--tensorboard=false", "--out", out}, extra...)
}

// TestMPITrainEquivalence: mpirun -np 2 with batch 64 (and -np 3 with
// 32), with --sync-bn, end with the model (weights and batch-norm running
// statistics) of -np 1 with batch 128 (96), and the same training and
// validation losses every epoch, within 5e-4; without --sync-bn the model
// must differ by more than ten times that (the test can tell).
//
// Tolerance. The runs differ only in the order of float32 additions, as
// in train's TestDataParallelTrainEqualsOneProcess, but this network and
// data are far more sensitive to that order than that test's tiny ResNet,
// for a reason that has nothing to do with the ranks: the first
// convolution's weight gradient is a sum over 128·28·28 ≈ 10⁵ positions
// in which MNIST's constant background (≈ −0.42 after normalisation)
// multiplies the batch norm's backward output, whose sum over each
// channel is zero. The terms cancel, so their float32 rounding is large
// against the result: after one step at learning rate 0.05 conv1's
// gradient differed between 1 and 2 ranks by 3.8e-5 on a size of 0.07
// (5e-4 relative, not the 2e-5 of a sum without cancellation), and the
// training dynamics then amplify a perturbation about fivefold per step.
// The same happens in one process when only its thread count changes:
// at learning rate 0.05 (train's trainer, in-process), one process with 1
// and with 2 threads ended 7.8e-4 apart in the weights, with 1 and 4
// threads 2.8e-3 — as far apart as 1 and 2 ranks (1.8e-3). The 1.6e-2
// this test used to report at that rate was conv1's momentum buffer (the
// weights differed by 8.6e-4, the running variances by 1.9e-3). Hence
// the learning rate 0.01: the linear estimate is 6 steps × η/(1−μ) = 0.1 ×
// (5e-4 × 0.1, the largest gradient) ≈ 3e-5, and the measured spread of
// one process with 1 and 2 threads is 9.2e-5 (2 ranks: 9.1e-5; 3 ranks:
// 3.7e-5; without --sync-bn: 1.8e-2; all unaugmented; augmented, as the
// run is now, 7.2e-5, 2.4e-5 and 1.8e-2, and with each rank drawing its
// augmentation from a seed of its own, as the trainer used to, 2.5e-2
// and 1.3e-2 with --sync-bn). The test allows 5e-4, five times the
// one-process spread and 35 times below unsynchronised statistics. The
// optimizer's momentum buffers are left out of the comparison, as in the
// in-process test: they hold gradients (conv1's is that cancelling sum),
// not damped by η, and differ by 2e-3 between 1 and 2 ranks, 7e-3
// between 1 and 2 threads of one process.
func TestMPITrainEquivalence(t *testing.T) {
	const tol = 5e-4
	for _, np := range []int{2, 3} {
		batch := map[int]int{2: 64, 3: 32}[np]
		one, many := t.TempDir(), t.TempDir()
		mpiTrain(t, 1, mpiArgs(one, np*batch, "--sync-bn")...)
		out := mpiTrain(t, np, mpiArgs(many, batch, "--sync-bn")...)
		if n := strings.Count(out, "epoch 2/2  train loss"); n != 1 {
			t.Errorf("-np %d: %d ranks printed the epoch line, want rank 0 alone:\n%s", np, n, out)
		}
		dw := modelDiff(t, one, many)
		dl := lossDiff(t, one, many)
		t.Logf("-np %d × batch %d against -np 1 × %d: model within %.3g, epoch losses within %.3g", np, batch, np*batch, dw, dl)
		if dw > tol || dl > tol {
			t.Errorf("-np %d: the model differs from one process's by %.3g, the epoch losses by %.3g (tolerance %g)", np, dw, dl, tol)
		}
		if np == 2 { // without SyncBN each rank normalises by its own half-batch's statistics
			plain := t.TempDir()
			mpiTrain(t, np, mpiArgs(plain, batch)...)
			dw := modelDiff(t, one, plain)
			t.Logf("-np 2 without --sync-bn: the model differs by %.3g", dw)
			if dw <= 10*tol {
				t.Errorf("without --sync-bn the model differs by only %.3g, within 10× the tolerance: the test cannot tell synchronised statistics from local ones", dw)
			}
		}
	}
}

// modelDiff returns the largest absolute difference between the models
// (parameters and buffers, not the optimizer state) of two runs' last
// checkpoints.
func modelDiff(t *testing.T, dirA, dirB string) float64 {
	t.Helper()
	a, b := readWeights(t, filepath.Join(dirA, train.LastCheckpoint)), readWeights(t, filepath.Join(dirB, train.LastCheckpoint))
	worst, n := 0.0, 0
	for k, w := range a {
		if strings.HasPrefix(k, "optimizer.") {
			continue
		}
		v, ok := b[k]
		if !ok || len(v) != len(w) {
			t.Fatalf("%s: %d values in %s, %d in %s", k, len(w), dirA, len(v), dirB)
		}
		for i := range w {
			worst = max(worst, math.Abs(float64(w[i]-v[i])))
		}
		n++
	}
	if n == 0 || len(a) != len(b) {
		t.Fatalf("%d and %d tensors in the checkpoints of %s and %s", len(a), len(b), dirA, dirB)
	}
	return worst
}

// lossDiff returns the largest difference of the epochs' training and
// validation losses in two runs' metrics.jsonl.
func lossDiff(t *testing.T, dirA, dirB string) float64 {
	t.Helper()
	a, b := readMetrics(t, dirA), readMetrics(t, dirB)
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d and %d epochs in the metrics of %s and %s", len(a), len(b), dirA, dirB)
	}
	worst := 0.0
	for i := range a {
		if a[i].Step != b[i].Step {
			t.Fatalf("epoch %d ends at step %d and %d", i+1, a[i].Step, b[i].Step)
		}
		worst = max(worst, math.Abs(a[i].TrainLoss-b[i].TrainLoss), math.Abs(a[i].ValLoss-b[i].ValLoss))
	}
	return worst
}

func readMetrics(t *testing.T, dir string) []train.Metrics {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []train.Metrics
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m train.Metrics
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%s/metrics.jsonl: %v", dir, err)
		}
		out = append(out, m)
	}
	return out
}

func readWeights(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for k, v := range f.Tensors {
		out[k] = v.Data
	}
	return out
}

// rankPID returns the pid of rank r among mpirun's children (the rank's
// OMPI_COMM_WORLD_RANK), waiting for it to start.
func rankPID(t *testing.T, mpirun int, r int) int {
	t.Helper()
	want := []byte("OMPI_COMM_WORLD_RANK=" + strconv.Itoa(r) + "\x00")
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue
			}
			// Field 4 of stat, after the parenthesised name, is the parent.
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
			if len(f) < 2 || f[1] != strconv.Itoa(mpirun) {
				continue
			}
			if env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ")); err == nil && bytes.Contains(env, want) {
				return pid
			}
		}
	}
	t.Fatalf("no rank %d among mpirun %d's children", r, mpirun)
	return 0
}

// waitFile waits for path to exist.
func waitFile(t *testing.T, path string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("%s did not appear within %s", path, limit)
}

// TestMPIFaults: a rank killed mid-run (SIGKILL) ends the job non-zero
// within seconds, the checkpoint rank 0 wrote before loads, and --resume
// on the same number of ranks finishes the run; --resume on another
// number is refused; SIGTERM to one rank alone stops both after the same
// step, with a checkpoint, and --resume finishes that run too.
func TestMPIFaults(t *testing.T) {
	bin := mpiResidual(t)
	dir := t.TempDir()
	last := filepath.Join(dir, train.LastCheckpoint)
	args := append([]string{"train", "--distributed", "mpi"}, mpiArgs(dir, 16)...)
	args = append(args[:len(args):len(args)], "--epochs", "4", "--limit", "1024")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := mpiCmd(ctx, bin, 2, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	victim := rankPID(t, cmd.Process.Pid, 1)
	waitFile(t, last, 2*time.Minute) // the end of epoch 1
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	err := cmd.Wait()
	took := time.Since(killed)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("after rank 1 was killed mpirun ended with %v, want a non-zero status:\n%s", err, out.String())
	}
	t.Logf("rank 1 killed: mpirun exited with status %d after %s", ee.ExitCode(), took.Round(time.Millisecond))
	// distributed's TestMPIDyingRankEndsJob measures about 1 s on 2 idle
	// cores; on 2 cores shared with a benchmark this took 9.9 s.
	if took > 20*time.Second {
		t.Errorf("mpirun took %s to end the job after a rank died, want seconds", took)
	}
	c, err := checkpoint.Load(last)
	if err != nil {
		t.Fatalf("the checkpoint written before the kill does not load: %v", err)
	}
	if c.Position == nil || c.Position.Epoch < 1 {
		t.Fatalf("the checkpoint's position %+v, want after epoch 1 or later", c.Position)
	}

	// Another number of ranks is refused, naming both.
	three, err := mpiCmd(ctx, bin, 3, append(args, "--resume")...).CombinedOutput()
	if err == nil || !strings.Contains(string(three), "trained on 2 ranks, this one runs on 3") {
		t.Errorf("--resume on 3 ranks: %v\n%s", err, three)
	}
	resumed := mpiTrain(t, 2, append(args[3:], "--resume")...)
	if !strings.Contains(resumed, "resuming") || !strings.Contains(resumed, "epoch 4/4  train loss") {
		t.Errorf("--resume after the kill:\n%s", resumed)
	}

	// SIGTERM to rank 1 alone: both ranks stop after the same step; rank 0 checkpoints.
	dir2 := t.TempDir()
	args2 := append([]string{"train", "--distributed", "mpi"}, mpiArgs(dir2, 16)...)
	args2 = append(args2[:len(args2):len(args2)], "--epochs", "2", "--limit", "1024")
	cmd = mpiCmd(ctx, bin, 2, args2...)
	var out2 syncBuffer // read while mpirun writes it
	cmd.Stdout, cmd.Stderr = &out2, &out2
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	victim = rankPID(t, cmd.Process.Pid, 1)
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out2.String(), "data-parallel over 2 ranks") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // into the first epoch
	if err := syscall.Kill(victim, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	// The signal lands in the first epoch, or, on a machine that runs its
	// 24 steps within the wait above, after its last batch: rank 0
	// checkpoints either way.
	stopped := strings.Contains(out2.String(), "stopped at epoch") || strings.Contains(out2.String(), "stopped after the last batch of epoch")
	if !errors.As(err, &ee) || !stopped {
		t.Fatalf("SIGTERM to rank 1: %v, want a non-zero exit after rank 0's checkpoint:\n%s", err, out2.String())
	}
	if _, err := checkpoint.Load(filepath.Join(dir2, train.LastCheckpoint)); err != nil {
		t.Fatalf("the checkpoint of the stop: %v", err)
	}
	resumed = mpiTrain(t, 2, append(args2[3:], "--resume")...)
	if !strings.Contains(resumed, "epoch 2/2  train loss") {
		t.Errorf("--resume after SIGTERM:\n%s", resumed)
	}
}

// A rank that never calls MPI_Init (here the launcher starts sleep in its
// place) holds the others in MPI_Init: rank 0 gives up after
// --dist-timeout with an error saying so, and mpirun ends the job (it
// waited for ever, out of reach of the collectives' timeout).
func TestMPIRankNeverStarts(t *testing.T) {
	bin := mpiResidual(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"--oversubscribe", "--allow-run-as-root", "-np", "1", bin, "train", "--distributed", "mpi", "--dist-timeout", "3s",
		"--model", "resnet8", "--limit", "64", "--epochs", "1", "--out", t.TempDir(), ":", "-np", "1", "sleep", "60"}
	cmd := exec.CommandContext(ctx, "mpirun", args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err == nil || !strings.Contains(string(out), "MPI_Init has waited the --dist-timeout (Options.Timeout) of 3s for the other ranks") || took > 45*time.Second {
		t.Errorf("mpirun with a rank that never starts: %v after %s:\n%s", err, took.Round(time.Millisecond), out)
	}
}

// A process whose environment says it is rank 1 of 2 (srun's variables)
// but whose MPI makes it rank 0 of 1 — a binary started by another MPI's
// launcher — stops with an error naming both, instead of training on its
// own as one of two independent runs.
func TestMPIWorldDisagreesWithLauncher(t *testing.T) {
	bin := mpiResidual(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "train", "--distributed", "mpi", "--model", "resnet8", "--limit", "64", "--epochs", "1", "--out", t.TempDir())
	cmd.Env = append(os.Environ(), "SLURM_PROCID=1", "SLURM_STEP_NUM_TASKS=2")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Slurm srun started this process as rank 1 of 2, but MPI makes it rank 0 of 1") {
		t.Errorf("rank 1 of 2 by the environment, alone by MPI: %v:\n%s", err, out)
	}
}

// TestMPISignalToMpirun: SIGINT to mpirun itself (Ctrl-C where the job
// was started) ends every rank within seconds — mpirun passes SIGTERM on
// to the ranks and kills those still running a moment later — leaves no
// rank running, and no partial checkpoint in the run folder: one there
// loads. The kill may cut a checkpoint write short and leave its
// temporary file, which the next train in the folder removes: logged,
// not an error.
func TestMPISignalToMpirun(t *testing.T) {
	bin := mpiResidual(t)
	dir := t.TempDir()
	args := append([]string{"train", "--distributed", "mpi"}, mpiArgs(dir, 16)...)
	args = append(args[:len(args):len(args)], "--epochs", "50", "--limit", "1024")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := mpiCmd(ctx, bin, 2, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ranks := []int{rankPID(t, cmd.Process.Pid, 0), rankPID(t, cmd.Process.Pid, 1)}
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out.String(), "data-parallel over 2 ranks"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the ranks did not start training within 2 minutes:\n%s", out.String())
		}
	}
	time.Sleep(200 * time.Millisecond) // into the first epoch
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	err := cmd.Wait()
	took := time.Since(signalled)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("SIGINT to mpirun: it ended with %v, want a non-zero status:\n%s", err, out.String())
	}
	if took > 20*time.Second {
		t.Errorf("SIGINT to mpirun: it took %s to end the job, want seconds", took)
	}
	// A rank, once mpirun is gone, is reparented and reaped: give that a
	// moment before calling one that still answers a running orphan.
	for _, pid := range ranks {
		for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("SIGINT to mpirun: rank process %d is still running 10 s after mpirun exited", pid)
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
		}
	}
	// mpirun's SIGKILL a second after its SIGTERM may land in rank 0's
	// checkpoint write and leave its temporary file (the next train in
	// the folder removes it, DISTRIBUTED.md): what is asserted is that the
	// checkpoint itself, if there, is whole.
	if tmps, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(tmps) > 0 {
		t.Logf("SIGINT to mpirun left %q (a write cut short by SIGKILL)", tmps)
	}
	if _, err := os.Stat(filepath.Join(dir, train.LastCheckpoint)); err == nil {
		if _, err := checkpoint.Load(filepath.Join(dir, train.LastCheckpoint)); err != nil {
			t.Errorf("the checkpoint after SIGINT to mpirun: %v", err)
		}
	}
	t.Logf("SIGINT to mpirun: exit %v after %s", err, took.Round(time.Millisecond))
}
