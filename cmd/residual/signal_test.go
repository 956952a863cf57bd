//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/residual-nn/residual/internal/atomicfile"
)

// TestWatchSignals: the first signal cancels the context with the signal
// as its cause (and as context.Canceled); the second exits with its status.
func TestWatchSignals(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	exited := make(chan int, 1)
	var stderr bytes.Buffer
	ctx := watchSignals(context.Background(), sigs, &stderr, func(code int) { exited <- code })
	sigs <- syscall.SIGTERM
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not cancel the context")
	}
	cause := context.Cause(ctx)
	if !errors.Is(cause, context.Canceled) || cause.Error() != "stopped by SIGTERM" || interruptStatus(ctx) != 143 {
		t.Errorf("cause %v, status %d; want SIGTERM and 143", cause, interruptStatus(ctx))
	}
	sigs <- os.Interrupt
	select {
	case code := <-exited:
		if code != 130 {
			t.Errorf("second signal (SIGINT): exit %d, want 130", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second signal did not exit")
	}
	if !strings.Contains(stderr.String(), "second SIGINT, exiting at once") {
		t.Errorf("stderr %q", stderr.String())
	}
	// A context cancelled without a signal reports SIGINT's status.
	plain, cancel := context.WithCancel(context.Background())
	cancel()
	if s := interruptStatus(plain); s != 130 {
		t.Errorf("plain cancellation: status %d, want 130", s)
	}
	// One rank of several says which (every rank prints the same line).
	t.Setenv("SLURM_PROCID", "1")
	t.Setenv("SLURM_STEP_NUM_TASKS", "2")
	stderr.Reset()
	watchSignals(context.Background(), sigs, &stderr, func(code int) { exited <- code })
	sigs <- syscall.SIGTERM
	sigs <- syscall.SIGTERM
	<-exited // after both messages
	if !strings.Contains(stderr.String(), "residual (rank 1 of 2): SIGTERM received, stopping") || !strings.Contains(stderr.String(), "residual (rank 1 of 2): second SIGTERM") {
		t.Errorf("a rank's stderr %q", stderr.String())
	}
}

var built struct {
	once sync.Once
	bin  string
	err  error
}

// residualBinary builds cmd/residual once for the tests that need a real
// process (signals, build information).
func residualBinary(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build residual with: %v", err)
	}
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "residual-cli-test")
		if err != nil {
			built.err = err
			return
		}
		built.bin = filepath.Join(dir, "residual")
		out, err := exec.Command(gobin, "build", "-o", built.bin, ".").CombinedOutput()
		if err != nil {
			built.err = errors.New(string(out))
		}
	})
	if built.err != nil {
		t.Fatalf("go build: %v", built.err)
	}
	return built.bin
}

// holdWritesEnv, set in its environment, makes this test binary the
// residual command with its arguments, every write of which stops before
// its renames (see holdWrites).
const holdWritesEnv = "RESIDUAL_TEST_HOLD_WRITES"

// holdWrites makes every atomic write print "staged PATH..." on standard
// output once its temporary files are written, and then wait there for a
// minute, as a write to a slow disk would: for signals to arrive during
// it.
func holdWrites() {
	atomicfile.TestHookStaged = func(paths []string) {
		fmt.Println("staged", strings.Join(paths, " "))
		time.Sleep(time.Minute)
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(holdWritesEnv) != "" {
		holdWrites()
		main()
	}
	code := m.Run()
	if built.bin != "" {
		os.RemoveAll(filepath.Dir(built.bin))
	}
	os.Exit(code)
}

// process is a residual command running in a process of its own.
type process struct {
	cmd    *exec.Cmd
	lines  chan string // standard output, line by line
	stderr syncBuffer
	done   chan struct{}
}

// syncBuffer is a bytes.Buffer that the process's output copier and the
// test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), lines: make(chan string, 1000), done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	go func() {
		defer close(p.done)
		s := bufio.NewScanner(out)
		for s.Scan() {
			p.lines <- s.Text()
		}
		close(p.lines)
	}()
	return p
}

// waitLine returns the first line of standard output that starts with
// prefix, failing after a minute.
func (p *process) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("%v ended without a line starting %q; stderr %s", p.cmd.Args, prefix, p.stderr.String())
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("%v printed no line starting %q within a minute", p.cmd.Args, prefix)
		}
	}
}

// wait returns the exit status, failing if the process runs on for more
// than a minute.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	go func() {
		for range p.lines { // drain, so the process never blocks on its output
		}
	}()
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("%v did not exit within a minute of the signal", p.cmd.Args)
	}
	p.cmd.Wait()
	return p.cmd.ProcessState.ExitCode()
}

// TestSignals trains in a real process and stops it as a scheduler would:
// SIGTERM checkpoints and exits with 143, the run resumes from that
// checkpoint, SIGINT exits with 130, and a second signal exits at once.
// About ten seconds of training on two cores, plus the build.
func TestSignals(t *testing.T) {
	bin := residualBinary(t)
	dir := t.TempDir()
	args := []string{"train", "--model", "resnet8", "--limit", "128", "--epochs", "50", "--batch", "32", "--val-split", "0", "--out", dir}

	p := start(t, bin, args...)
	p.waitLine(t, "epoch 1/50  train loss") // the end of the first epoch
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 143 {
		t.Fatalf("SIGTERM: exit %d, want 143; stderr %s", code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "SIGTERM received, stopping") || !strings.Contains(p.stderr.String(), "resume with --resume") {
		t.Errorf("SIGTERM: stderr %q", p.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "last.safetensors")); err != nil {
		t.Fatalf("no checkpoint after SIGTERM: %v", err)
	}

	// The resumed run goes on after the first epoch, and SIGINT stops it.
	p = start(t, bin, append(args, "--resume")...)
	if l := p.waitLine(t, "epoch "); strings.HasPrefix(l, "epoch 1/") {
		t.Errorf("the resumed run started again at epoch 1: %q", l)
	}
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t); code != 130 {
		t.Fatalf("SIGINT: exit %d, want 130; stderr %s", code, p.stderr.String())
	}

	// Two signals at once: the second exits without waiting for the step
	// to end. They are two different signals because the kernel merges a
	// signal sent while the same one is still pending (TestWatchSignals
	// sends the same one twice); either may be delivered first.
	p = start(t, bin, append(args, "--resume")...)
	p.waitLine(t, "epoch ")
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Process.Signal(syscall.SIGTERM)
	code := p.wait(t)
	switch stderr := p.stderr.String(); {
	case code == 143 && strings.Contains(stderr, "second SIGTERM, exiting at once"):
	case code == 130 && strings.Contains(stderr, "second SIGINT, exiting at once"):
	default:
		t.Errorf("SIGINT and SIGTERM: exit %d, stderr %q; want an immediate exit with the second one's status", code, stderr)
	}
	if strings.Contains(p.stderr.String(), "resume with --resume") {
		t.Errorf("the second signal waited for the checkpoint: %q", p.stderr.String())
	}

	// A built binary carries its module version.
	out, err := exec.Command(bin, "version").Output()
	if err != nil || strings.HasPrefix(string(out), "residual (unknown)") {
		t.Errorf("version: %v\n%s", err, out)
	}
}

// TestSecondSignalMidWrite runs commands whose output write is held after
// its temporary files are written (holdWrites) and signals them twice: the
// first signal waits for the write, the second exits at once with its
// own status and leaves the output folder as it was: no hidden
// .NAME.*.tmp file, no folder the write created, an existing output with
// its old contents. The exit left the temporary files behind (only train
// removes them, on its next start). Signals of each kind, and a segment
// with its two outputs.
func TestSecondSignalMidWrite(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(holdWritesEnv, "1")
	for _, c := range []struct {
		name   string
		args   []string // OUT stands for the test's folder
		old    string   // a file of OUT that holds "old" before and after, or ""
		first  syscall.Signal
		second syscall.Signal
	}{
		{"export onnx", []string{"export", "onnx", "--model", "resnet8", "--out", "OUT/new/m.onnx"}, "", syscall.SIGINT, syscall.SIGINT},
		{"segment", []string{"segment", unetCkpt, "--out", "OUT/seg/mask.png", "--overlay", "OUT/seg/overlay.png", colorPNG}, "", syscall.SIGTERM, syscall.SIGTERM},
		{"quantize over a file", []string{"quantize", tinyCkpt, "--calibrate-images", digit0PNG, "--out", "OUT/q.safetensors"}, "q.safetensors", syscall.SIGINT, syscall.SIGTERM},
		{"export torch", []string{"export", "torch", "--weights", tinyCkpt, "--out", "OUT/t/w.safetensors"}, "", syscall.SIGTERM, syscall.SIGINT},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.old != "" {
				if err := os.WriteFile(filepath.Join(dir, c.old), []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var args []string
			for _, a := range c.args {
				args = append(args, strings.Replace(a, "OUT", dir, 1))
			}
			p := start(t, exe, args...)
			p.waitLine(t, "staged ")
			held := tree(t, dir)
			if !slices.ContainsFunc(held, func(p string) bool { return strings.HasPrefix(filepath.Base(p), ".") && strings.HasSuffix(p, ".tmp") }) {
				t.Fatalf("no temporary file while the write is held: %q", held)
			}
			p.cmd.Process.Signal(c.first)
			for deadline := time.Now().Add(time.Minute); !strings.Contains(p.stderr.String(), "received, stopping"); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no notice of the first signal within a minute: %s", p.stderr.String())
				}
			}
			p.cmd.Process.Signal(c.second)
			if code := p.wait(t); code != 128+int(c.second) || !strings.Contains(p.stderr.String(), "second "+signalName(c.second)+", exiting at once") {
				t.Errorf("exit %d, stderr %q; want %d and the second signal's notice", code, p.stderr.String(), 128+int(c.second))
			}
			var want []string
			if c.old != "" {
				want = []string{c.old}
			}
			if left := tree(t, dir); !slices.Equal(left, want) {
				t.Errorf("left in the output folder: %q, want %q", left, want)
			}
			if c.old != "" {
				if b, _ := os.ReadFile(filepath.Join(dir, c.old)); string(b) != "old" {
					t.Errorf("%s holds %q, want its old contents", c.old, b)
				}
			}
		})
	}
}

// tree lists the files and folders below dir, as paths relative to it.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err == nil && path != dir {
			rel, _ := filepath.Rel(dir, path)
			paths = append(paths, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// TestServeSIGTERMCause stops real serve processes with SIGTERM: each
// drains, exits 0 and logs the drain's cause as "stopped by SIGTERM", as
// the commands name the signal. serve used to watch SIGTERM itself too,
// and the two watchers raced: about one stop in five logged Go's
// "terminated signal received" instead. Twelve stops, so that the race
// would show.
func TestServeSIGTERMCause(t *testing.T) {
	bin := residualBinary(t)
	ckpt := filepath.Join("..", "..", "testdata", "checkpoint", "mnist-tiny.safetensors")
	for i := range 12 {
		p := start(t, bin, "serve", "--model", "m="+ckpt, "--addr", "127.0.0.1:0", "--grpc-addr", "")
		p.waitLine(t, "serving on ")
		for deadline := time.Now().Add(time.Minute); !strings.Contains(p.stderr.String(), `msg="model ready"`); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("stop %d: not ready within a minute: %s", i, p.stderr.String())
			}
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t); code != 0 {
			t.Fatalf("stop %d: exit %d after SIGTERM, want 0; stderr %s", i, code, p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), `msg=draining timeout=30s cause="stopped by SIGTERM"`) {
			t.Fatalf("stop %d: the drain does not name SIGTERM as the commands do:\n%s", i, p.stderr.String())
		}
	}
}

// TestExitOrder: a second signal's exit restores the signals' default
// action before it abandons the writes under way (so a third kills at
// once), and main's exit with the command's status — which a write the
// abandon failed brings about — waits for it: the process ends with the
// signal's status.
func TestExitOrder(t *testing.T) {
	var mu sync.Mutex
	var events []string
	note := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	abandoning, release := make(chan struct{}), make(chan struct{})
	exited := make(chan int, 2)
	defer func(e func(int), a, r func()) { osExit, abandon, resetSignals = e, a, r }(osExit, abandon, resetSignals)
	osExit = func(code int) { note(fmt.Sprint("exit ", code)); exited <- code }
	resetSignals = func() { note("reset") }
	abandon = func() {
		note("abandon")
		close(abandoning)
		<-release
	}
	go exitAbandoning(143)
	<-abandoning
	go exit(1) // the command, its write refused, returns to main (this goroutine waits on exiting for good, as the process would end)
	select {
	case code := <-exited:
		t.Fatalf("exit %d while the second signal's exit was abandoning the writes", code)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case code := <-exited:
		if code != 143 {
			t.Errorf("exit %d, want the second signal's 143", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after the abandon")
	}
	select {
	case code := <-exited:
		t.Errorf("a second exit, %d, after the signal's", code)
	case <-time.After(200 * time.Millisecond):
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"reset", "abandon", "exit 143"}; !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}
}
