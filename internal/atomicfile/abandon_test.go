package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// unabandon lets the writes of the tests after t go on: Abandon is for a
// process about to exit, and nothing else undoes it.
func unabandon(t *testing.T) {
	t.Cleanup(func() {
		TestHookStaged = nil
		inFlight.mu.Lock()
		inFlight.abandoned = false
		inFlight.writes = nil
		inFlight.mu.Unlock()
	})
}

// tree lists dir's entries, recursively, as paths relative to dir.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// registered is how many writes inFlight holds.
func registered() int {
	inFlight.mu.Lock()
	defer inFlight.mu.Unlock()
	return len(inFlight.writes)
}

// TestAbandonInFlight: Abandon during a WriteAll whose temporary files are
// written (held there by TestHookStaged) removes them and the folders the
// write created; the write then fails naming its path and renames
// nothing, and every write after it fails without creating anything.
func TestAbandonInFlight(t *testing.T) {
	unabandon(t)
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "fresh", "a", "f")
	held, release := make(chan []string), make(chan struct{})
	TestHookStaged = func(paths []string) {
		held <- paths
		<-release
	}
	done := make(chan error)
	go func() { done <- WriteAll([]string{keep, fresh}, [][]byte{[]byte("new"), []byte("new")}) }()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("WriteAll did not reach its renames")
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, ".keep.*.tmp"))
	tmps2, _ := filepath.Glob(filepath.Join(dir, "fresh", "a", ".f.*.tmp"))
	if len(tmps) != 1 || len(tmps2) != 1 || registered() != 2 {
		t.Fatalf("in flight: temporary files %v %v, %d registered; want one each, 2", tmps, tmps2, registered())
	}
	Abandon()
	if got := tree(t, dir); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("after Abandon: %v, want [keep]", got)
	}
	close(release)
	err := <-done
	if !errors.Is(err, errAbandoned) || err.Error() != "writing "+keep+": abandoned, the process is exiting" {
		t.Errorf("the abandoned WriteAll: %v", err)
	}
	if b, _ := os.ReadFile(keep); string(b) != "old" {
		t.Errorf("%s: %q after an abandoned write, want old", keep, b)
	}
	if got := tree(t, dir); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("after the abandoned write: %v, want [keep]", got)
	}
	// Later writes create nothing, not even their folders: the process
	// may exit before they would remove them.
	TestHookStaged = func(paths []string) {
		t.Errorf("a write after Abandon staged %v: %v", paths, tree(t, dir))
	}
	later := filepath.Join(dir, "later", "x")
	if err := Write(later, []byte("x")); !errors.Is(err, errAbandoned) || !strings.Contains(err.Error(), "writing "+later) {
		t.Errorf("a write after Abandon: %v", err)
	}
	if got := tree(t, dir); !slices.Equal(got, []string{"keep"}) || registered() != 0 {
		t.Errorf("after a later write: %v, %d registered; want [keep], 0", got, registered())
	}
	// A WriteAll of no paths writes nothing, before Abandon as after: it
	// indexed its first path to name it in the abandoned error, and
	// panicked.
	if err := WriteAll(nil, nil); err != nil {
		t.Errorf("WriteAll of no paths after Abandon: %v", err)
	}
}

// TestAbandonRegistry: writes that succeed or fail leave nothing in the
// registry, and Abandon with writes racing it (run with -race) leaves no
// temporary file: every path holds all of one write or none.
func TestAbandonRegistry(t *testing.T) {
	unabandon(t)
	dir := t.TempDir()
	if err := Write(filepath.Join(dir, "ok"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := WriteAll([]string{filepath.Join(dir, "n", "a"), dir}, [][]byte{nil, nil}); err == nil {
		t.Fatal("WriteAll to a folder succeeded")
	}
	if n := registered(); n != 0 {
		t.Fatalf("%d writes registered after they ended", n)
	}

	content := strings.Repeat("all of it\n", 10000)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				p := filepath.Join(dir, fmt.Sprint("g", g), fmt.Sprint("sub", i%3), fmt.Sprint("f", i))
				if err := Write(p, []byte(content)); err != nil {
					if !errors.Is(err, errAbandoned) {
						t.Errorf("%s: %v", p, err)
					}
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	Abandon()
	wg.Wait()
	for _, n := range tree(t, dir) {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			continue
		}
		if strings.HasSuffix(n, ".tmp") {
			t.Errorf("left behind: %s", n)
		} else if b, _ := os.ReadFile(p); n != "ok" && string(b) != content {
			t.Errorf("%s holds %d bytes, want %d", n, len(b), len(content))
		}
	}
	if n := registered(); n != 0 {
		t.Errorf("%d writes registered after Abandon", n)
	}
}

// TestProbe: a probe leaves its folder as it was and names no file in
// its error; Abandon waits for a probe under way, so that a folder
// probed over and over is empty the moment Abandon returns, and probes
// after it fail.
func TestProbe(t *testing.T) {
	unabandon(t)
	dir := t.TempDir()
	if err := Probe(dir); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Errorf("a probe left %v", got)
	}
	missing := filepath.Join(dir, "missing")
	if err := Probe(missing); !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "residual-write-test") {
		t.Errorf("a missing folder: %v", err)
	}
	for range 100 {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				Probe(dir)
			}
		}()
		time.Sleep(time.Millisecond)
		Abandon()
		if got := tree(t, dir); len(got) != 0 {
			t.Fatalf("when Abandon returned: %v", got)
		}
		if err := Probe(dir); !errors.Is(err, errAbandoned) {
			t.Fatalf("a probe after Abandon: %v", err)
		}
		close(stop)
		<-done
		inFlight.mu.Lock()
		inFlight.abandoned = false
		inFlight.mu.Unlock()
	}
}
