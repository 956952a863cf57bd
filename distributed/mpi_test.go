//go:build mpi && cgo

package distributed

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/residual-nn/residual/tensor"
)

// The MPI tests re-execute the test binary under mpirun: TestMain runs
// the child program named by $RESIDUAL_MPI_CHILD instead of the tests,
// and the tests start mpirun and read what the ranks report.
const childVar = "RESIDUAL_MPI_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childVar); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// ChildModes holds child programs defined by the external test package
// (package distributed_test registers "equivalence" in its init).
var ChildModes = map[string]func(Comm) error{}

// mpirun runs the test binary as np ranks in child mode, within limit,
// and returns its combined output, its error and how long it ran. Open
// MPI's mpirun also gets the arguments in ompiArgs (MCA settings).
func mpirun(t *testing.T, np int, mode string, limit time.Duration, ompiArgs ...string) (string, error, time.Duration) {
	t.Helper()
	// $RESIDUAL_MPIRUN names the launcher of the MPI the binary links
	// (mpirun.mpich for -tags mpi,mpich where Open MPI's is the default).
	name := cmp.Or(os.Getenv("RESIDUAL_MPIRUN"), "mpirun")
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found: install openmpi-bin (or MPICH) to run the MPI tests", name)
	}
	ver, _ := exec.Command(path, "--version").CombinedOutput()
	args := []string{"-np", strconv.Itoa(np)}
	if bytes.Contains(ver, []byte("Open MPI")) || bytes.Contains(ver, []byte("OpenRTE")) {
		// More ranks than cores (CI machines have 2), and CI runs as root.
		args = append(append([]string{"--oversubscribe", "--allow-run-as-root"}, ompiArgs...), args...)
	} else if len(ompiArgs) > 0 {
		t.Skipf("%s is not Open MPI's: %v are Open MPI's settings", name, ompiArgs)
	}
	args = append(args, os.Args[0])
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	// mpirun passes SIGTERM on to the ranks; SIGKILL would orphan them.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = append(os.Environ(), childVar+"="+mode)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("mpirun -np %d (%s) still running after %s; output:\n%s", np, mode, limit, out.String())
	}
	return out.String(), err, took
}

// TestMPICollectives checks, on 2 and 3 ranks, the collectives, the
// Reducer against the plain sum, CheckSame and BroadcastTensors (the
// checks are in childCollectives); over shared memory, and over TCP on
// the loopback, the transport between machines, whose messages up to 1
// MiB go eagerly (setDefault in mpi.go) and larger ones by rendezvous.
func TestMPICollectives(t *testing.T) {
	tcp := []string{"--mca", "pml", "ob1", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo"}
	for _, c := range []struct {
		np   int
		ompi []string
	}{{2, nil}, {3, nil}, {2, tcp}, {3, tcp}} {
		np := c.np
		name := fmt.Sprintf("np=%d", np)
		if c.ompi != nil {
			name += "/tcp"
		}
		t.Run(name, func(t *testing.T) {
			out, err, took := mpirun(t, np, "collectives", 2*time.Minute, c.ompi...)
			if err != nil {
				t.Fatalf("mpirun: %v; output:\n%s", err, out)
			}
			for r := range np {
				if !strings.Contains(out, fmt.Sprintf("rank %d of %d: ok", r, np)) {
					t.Errorf("rank %d did not report success; output:\n%s", r, out)
				}
			}
			t.Logf("%d ranks in %s:\n%s", np, took.Round(time.Millisecond), out)
		})
	}
}

// TestMPIDataParallelEqualsOneProcess runs the data-parallel equivalence
// check (equivalence_test.go) on 2 and 3 MPI ranks.
func TestMPIDataParallelEqualsOneProcess(t *testing.T) {
	for _, np := range []int{2, 3} {
		out, err, _ := mpirun(t, np, "equivalence", 2*time.Minute)
		if err != nil {
			t.Fatalf("mpirun -np %d: %v; output:\n%s", np, err, out)
		}
		t.Logf("%d ranks:\n%s", np, out)
	}
}

var diedAt = regexp.MustCompile(`rank \d+ dies at (\d+)`)

// TestMPIDyingRankEndsJob kills one of 3 ranks in the middle of a loop of
// all-reduces and checks that mpirun ends the job with a non-zero status
// within seconds instead of leaving the others waiting.
func TestMPIDyingRankEndsJob(t *testing.T) {
	for _, mode := range []string{"die-kill", "die-exit"} {
		t.Run(mode, func(t *testing.T) {
			out, err, took := mpirun(t, 3, mode, 2*time.Minute)
			end := time.Now()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("mpirun ended with %v, want a non-zero exit status; output:\n%s", err, out)
			}
			m := diedAt.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no rank reported its death; output:\n%s", out)
			}
			ns, _ := strconv.ParseInt(m[1], 10, 64)
			after := end.Sub(time.Unix(0, ns))
			// Open MPI notices a rank's exit through its daemon at once
			// and kills the others; 20 s leaves room for a loaded CI
			// machine.
			if after > 20*time.Second {
				t.Errorf("mpirun ended %s after the rank died, want within 20 s", after.Round(time.Millisecond))
			}
			t.Logf("%s: mpirun exited with %v %s after the rank died (%s in all)", mode, ee, after.Round(time.Millisecond), took.Round(time.Millisecond))
		})
	}
}

// TestMPIHungRankAborts makes one of 2 ranks stop calling collectives
// without dying: the other's collective timeout (2 s here) aborts the job.
func TestMPIHungRankAborts(t *testing.T) {
	out, err, took := mpirun(t, 2, "hang", 2*time.Minute)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("mpirun ended with %v, want a non-zero exit status; output:\n%s", err, out)
	}
	if !strings.Contains(out, "has waited") {
		t.Errorf("no timeout message; output:\n%s", out)
	}
	if took > 30*time.Second {
		t.Errorf("the job took %s to end with a 2 s timeout", took)
	}
	t.Logf("hung rank: mpirun exited with %v after %s", ee, took.Round(time.Millisecond))
}

// runChild is one rank's program; it returns the exit status.
func runChild(mode string) int {
	o := Options{}
	if mode == "hang" {
		o.Timeout = 2 * time.Second
	}
	c, err := InitWithOptions(KindMPI, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "init:", err)
		return 1
	}
	switch mode {
	case "collectives":
		err = childCollectives(c)
	case "die-kill", "die-exit":
		err = childDie(c, mode)
	case "hang":
		err = childHang(c)
	default:
		f := ChildModes[mode]
		if f == nil {
			err = fmt.Errorf("unknown child mode %q", mode)
			break
		}
		err = f(c)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rank %d of %d: FAIL: %v\n", c.Rank(), c.Size(), err)
		return 1
	}
	if err := c.Finalize(); err != nil {
		fmt.Fprintf(os.Stderr, "rank %d: Finalize: %v\n", c.Rank(), err)
		return 1
	}
	if err := c.Barrier(); !errors.Is(err, ErrFinalized) {
		fmt.Fprintf(os.Stderr, "rank %d: Barrier after Finalize returned %v, want ErrFinalized\n", c.Rank(), err)
		return 1
	}
	fmt.Printf("rank %d of %d: ok\n", c.Rank(), c.Size())
	return 0
}

// sameOnAll checks that every rank holds bitwise the same values.
func sameOnAll(c Comm, what string, v []float32) error {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return CheckSame(c, what, fmt.Sprintf("%x", sha256.Sum256(b)))
}

func childCollectives(c Comm) error {
	rank, size := c.Rank(), c.Size()
	if l, ok, err := DetectLauncher(os.Getenv); err != nil || !ok || l.Rank != rank || l.Size != size {
		return fmt.Errorf("DetectLauncher = %v, %v, %v; MPI says rank %d of %d", l, ok, err, rank, size)
	}
	// All-reduce of odd sizes, blocking and several in flight at once.
	sizes := []int{0, 1, 3, 200003, 1000003}
	reqs := make([]Request, len(sizes))
	bufs := make([][]float32, len(sizes))
	for k, n := range sizes {
		bufs[k] = rankData(rank, k, n)
		reqs[k] = c.StartAllReduceSum(bufs[k])
	}
	for k, n := range sizes {
		if err := reqs[k].Wait(); err != nil {
			return fmt.Errorf("StartAllReduceSum(%d values): %w", n, err)
		}
		if err := checkSum(fmt.Sprintf("StartAllReduceSum(%d values)", n), bufs[k], size, k, 1); err != nil {
			return err
		}
		b := rankData(rank, k, n)
		if err := c.AllReduceSum(b); err != nil {
			return fmt.Errorf("AllReduceSum(%d values): %w", n, err)
		}
		if err := checkSum(fmt.Sprintf("AllReduceSum(%d values)", n), b, size, k, 1); err != nil {
			return err
		}
		if err := sameOnAll(c, fmt.Sprintf("the sum of %d values", n), b); err != nil {
			return err
		}
	}
	// An all-reduce completes while its caller computes, without a call
	// into MPI from it: the MPI goroutine drives the progress that makes
	// the overlap with the backward pass (the caller here only watches
	// the request's channel, which calls nothing).
	big := rankData(rank, 50, 1<<20)
	op := c.StartAllReduceSum(big).(*mpiOp)
	deadline := time.Now().Add(20 * time.Second)
	for waiting := true; waiting; {
		select {
		case <-op.done:
			waiting = false
		default:
			if time.Now().After(deadline) {
				return errors.New("a 4 MiB all-reduce made no progress in 20 s without Wait")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := op.Wait(); err != nil {
		return err
	}
	if err := checkSum("the background all-reduce", big, size, 50, 1); err != nil {
		return err
	}

	// Integers sum exactly in float32.
	ints := []float32{float32(rank), 1, float32(rank * rank)}
	if err := c.AllReduceSum(ints); err != nil {
		return err
	}
	if want := []float32{float32(size * (size - 1) / 2), float32(size), float32((size - 1) * size * (2*size - 1) / 6)}; fmt.Sprint(ints) != fmt.Sprint(want) {
		return fmt.Errorf("AllReduceSum of integers = %v, want %v", ints, want)
	}

	// float64 sums keep what float32 would round away.
	d := []float64{1e15 + float64(rank), 0.5}
	if err := c.AllReduceSumFloat64(d); err != nil {
		return err
	}
	if want := []float64{float64(size)*1e15 + float64(size*(size-1)/2), float64(size) / 2}; d[0] != want[0] || d[1] != want[1] {
		return fmt.Errorf("AllReduceSumFloat64 = %v, want %v", d, want)
	}

	// bfloat16 sums through the user operation (rs_bf16_sum).
	if err := checkBF16(c); err != nil {
		return err
	}

	// Broadcast from the last rank, floats and bytes.
	root := size - 1
	f := rankData(rank, 7, 1001)
	if err := c.Broadcast(f, root); err != nil {
		return err
	}
	if want := rankData(root, 7, 1001); fmt.Sprint(f) != fmt.Sprint(want) {
		return fmt.Errorf("Broadcast from rank %d: got another rank's values", root)
	}
	b := []byte(fmt.Sprintf("rank %d", rank))
	if err := c.BroadcastBytes(b, root); err != nil {
		return err
	}
	if want := fmt.Sprintf("rank %d", root); string(b) != want {
		return fmt.Errorf("BroadcastBytes from rank %d = %q, want %q", root, b, want)
	}
	if err := c.Broadcast(f, size); err == nil {
		return fmt.Errorf("Broadcast from rank %d of %d: no error", size, size)
	}

	// Barrier: rank 0 arrives 300 ms late; nobody may leave before. The
	// ranks compare the wall clock, which they share (one machine), with
	// the time rank 0 arrived: each rank timing itself from before the
	// barrier (held to 250 ms) started its stopwatch when it left the
	// previous collective, and a rank that a loaded machine let go 50 ms
	// after rank 0 read less with the barrier correct.
	var arrived int64
	if rank == 0 {
		time.Sleep(300 * time.Millisecond)
		arrived = time.Now().UnixNano()
	}
	if err := c.Barrier(); err != nil {
		return err
	}
	left := time.Now().UnixNano()
	at := binary.LittleEndian.AppendUint64(nil, uint64(arrived))
	if err := c.BroadcastBytes(at, 0); err != nil {
		return err
	}
	if arrived = int64(binary.LittleEndian.Uint64(at)); left < arrived {
		return fmt.Errorf("Barrier returned %s before rank 0 (300 ms late) arrived", time.Duration(arrived-left))
	}

	// The Reducer against the plain sum: odd sizes, small buckets so
	// that there are several, gradients marked in a rank-dependent order.
	gsizes := []int{1, 3, 1000003, 5, 257, 4096, 1}
	red, err := NewReducer(c, gsizes, ReducerOptions{BucketBytes: 64 << 10, FirstBucketBytes: 1 << 10})
	if err != nil {
		return err
	}
	for step := range 2 {
		grads := make([][]float32, len(gsizes))
		for i, n := range gsizes {
			grads[i] = rankData(rank, 100+10*step+i, n)
		}
		order := tensor.NewRNG(uint64(rank + 10*step)).Perm(len(gsizes))
		for _, i := range order {
			if err := red.MarkReady(i, grads[i]); err != nil {
				return err
			}
		}
		if err := red.Wait(); err != nil {
			return err
		}
		for i, g := range grads {
			if err := checkSum(fmt.Sprintf("step %d, Reducer gradient %d", step, i), g, size, 100+10*step+i, float64(size)); err != nil {
				return err
			}
			if err := sameOnAll(c, fmt.Sprintf("step %d, averaged gradient %d", step, i), g); err != nil {
				return err
			}
		}
	}

	// CheckSame: equal values pass; a differing rank is named on all.
	if err := CheckSame(c, "flags", "lr=0.1\nbatch=64"); err != nil {
		return err
	}
	v := "lr=0.1\nbatch=64"
	if rank == 1 {
		v = "lr=0.2\nbatch=64"
	}
	err = CheckSame(c, "flags", v)
	if err == nil || !strings.Contains(err.Error(), `rank 1 differs from rank 0: rank 0 has "lr=0.1"; rank 1 has "lr=0.2"`) {
		return fmt.Errorf("CheckSame with rank 1 different: %v", err)
	}

	// BroadcastTensors: rank 0's parameters everywhere.
	ts := [][]float32{rankData(rank, 200, 10), rankData(rank, 201, 1), rankData(rank, 202, 70000)}
	if err := BroadcastTensors(c, ts, 0); err != nil {
		return err
	}
	for i, t := range ts {
		if fmt.Sprint(t) != fmt.Sprint(rankData(0, 200+i, len(t))) {
			return fmt.Errorf("BroadcastTensors: tensor %d is not rank 0's", i)
		}
	}

	// Go's own signal handling survives MPI_Init: a nil dereference is
	// still a panic that recover catches (a handler installed by the MPI
	// library over Go's would crash the process here).
	if err := nilPanicRecovers(); err != nil {
		return err
	}
	return nil
}

func nilPanicRecovers() (err error) {
	defer func() {
		if recover() == nil {
			err = errors.New("no panic from a nil dereference")
		}
	}()
	var p *[4]int
	p[1]++
	return nil
}

// childDie loops over all-reduces; the last rank dies at step 20, by
// SIGKILL (die-kill) or by exiting without MPI_Finalize (die-exit).
func childDie(c Comm, mode string) error {
	buf := make([]float32, 1000)
	for step := 0; step < 100000; step++ {
		if step == 20 && c.Rank() == c.Size()-1 {
			fmt.Fprintf(os.Stderr, "rank %d dies at %d\n", c.Rank(), time.Now().UnixNano())
			if mode == "die-kill" {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
			os.Exit(7)
		}
		if err := c.AllReduceSum(buf); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("the job survived a dead rank for 100000 steps")
}

// childHang: rank 1 stops calling collectives after one all-reduce and
// sleeps; rank 0 waits in the next one until its timeout aborts the job.
func childHang(c Comm) error {
	buf := make([]float32, 10)
	if err := c.AllReduceSum(buf); err != nil {
		return err
	}
	if c.Rank() == 1 {
		time.Sleep(time.Minute)
		return errors.New("rank 1 was not ended by the other's timeout")
	}
	if err := c.AllReduceSum(buf); err != nil {
		return err
	}
	return errors.New("an all-reduce completed without rank 1")
}
