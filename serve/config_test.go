package serve

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/tensor"
)

// newServer is New for a test: it fails the test on an error.
func newServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// quietConfig is cfg logging nowhere.
func quietConfig(cfg Config) Config {
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return cfg
}

// runBriefly runs s on a loopback listener until it returns or 2 s pass
// (then it stops it), and returns Run's error.
func runBriefly(t *testing.T, s *Server, drain time.Duration) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln, nil, drain) }()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * time.Second):
		cancel()
		<-done
		return nil
	}
}

// TestConfigRefused: a negative duration or size, or an absurd one, is
// an error naming the field from Validate and New, which returns no
// server, never a panic (a negative PollInterval used to panic in Run's
// watch goroutine, killing the process) nor a value silently replaced by
// its default (MaxBatch -5 served as 8; Timeout -1s refused every request
// with 429). The field comes after residual serve's flag for it, where it
// has one. Zero fields keep meaning the default.
func TestConfigRefused(t *testing.T) {
	dir := t.TempDir()
	open := func(string) (Backend, error) { return newFake(), nil }
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Repository: dir, PollInterval: -time.Second, Open: open}, "--poll (Config.PollInterval) -1s is negative"},
		{Config{MaxBatch: -5}, "--max-batch (Config.MaxBatch) -5 is negative"},
		{Config{MaxBatch: min(1<<40, math.MaxInt)}, "--max-batch (Config.MaxBatch) "},
		{Config{Timeout: -time.Second}, "--timeout (Config.Timeout) -1s"},
		{Config{MaxDelay: -time.Millisecond}, "--max-delay (Config.MaxDelay) -1ms"},
		{Config{MaxQueue: -1}, "--max-queue (Config.MaxQueue) -1"},
		{Config{MaxQueue: min(1<<40, math.MaxInt)}, "--max-queue (Config.MaxQueue) "},
		{Config{Instances: -2}, "--instances (Config.Instances) -2"},
		{Config{Instances: 1 << 30}, "--instances (Config.Instances) 1073741824 is over its limit of 256"},
		{Config{MaxBodyBytes: -1}, "--max-body (Config.MaxBodyBytes) -1"},
		{Config{MaxImagePixels: -1}, "--max-pixels (Config.MaxImagePixels) -1"},
		{Config{ReadHeaderTimeout: -1}, "Config.ReadHeaderTimeout -1ns"},
		{Config{ReadTimeout: -1}, "Config.ReadTimeout -1ns"},
		{Config{WriteTimeout: -1}, "Config.WriteTimeout -1ns"},
		{Config{IdleTimeout: -1}, "Config.IdleTimeout -1ns"},
	} {
		name := fmt.Sprintf("%+v", c.cfg)
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate: %v; want an error naming %s", name, err, c.want)
		}
		if s, err := New(quietConfig(c.cfg)); s != nil || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New: %v, %v; want no server and an error naming %s", name, s, err, c.want)
		}
	}
	s := newServer(t, quietConfig(Config{}))
	if err := runBriefly(t, s, -time.Second); err == nil || !strings.Contains(err.Error(), "drain") {
		t.Errorf("Run with drain -1s: %v; want an error naming the drain", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	// Zero still means the default.
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	if ts.cfg.MaxBatch != 8 || ts.cfg.Timeout != 30*time.Second || ts.cfg.MaxQueue != 256 {
		t.Errorf("defaults: MaxBatch %d, Timeout %v, MaxQueue %d", ts.cfg.MaxBatch, ts.cfg.Timeout, ts.cfg.MaxQueue)
	}
	serving(t, ts, "m")
}

// nilPointer is a backend type whose nil pointer panics in Info.
type nilPointer struct{ info ModelInfo }

func (p *nilPointer) Info() ModelInfo { return p.info }
func (p *nilPointer) Preprocess(img image.Image) (*tensor.Tensor, error) {
	return nil, errors.New("unused")
}
func (p *nilPointer) Forward(context.Context, *tensor.Tensor) (*tensor.Tensor, error) {
	return nil, errors.New("unused")
}

// TestNilBackend: an Opener answering (nil, nil), a nil Backend given to
// Add, a nil pointer whose Info panics and an Opener that panics are
// errors naming the model, not a nil pointer dereference (which, from a
// repository scan, would kill the process).
func TestNilBackend(t *testing.T) {
	var typedNil *nilPointer
	for _, c := range []struct {
		what string
		open Opener
	}{
		{"nil, nil", func(string) (Backend, error) { return nil, nil }},
		{"typed nil", func(string) (Backend, error) { return typedNil, nil }},
		{"panic", func(string) (Backend, error) { panic("opener bug") }},
	} {
		s := newServer(t, quietConfig(Config{Open: c.open}))
		if err := s.Load(context.Background(), "digits", "3", "x.safetensors"); err == nil || !strings.Contains(err.Error(), "model digits version 3") {
			t.Errorf("Opener %s: Load: %v; want an error naming model digits version 3", c.what, err)
		}
		if s.Ready() {
			t.Errorf("Opener %s: ready", c.what)
		}
	}
	s := newServer(t, quietConfig(Config{}))
	for _, b := range []Backend{nil, typedNil} {
		if err := s.Add(context.Background(), "m", "1", b); err == nil || !strings.Contains(err.Error(), "model m version 1") {
			t.Errorf("Add(%#v): %v; want an error naming model m version 1", b, err)
		}
	}
	// From a repository scan: logged, and the scan goes on.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "m", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m", "1", "model.safetensors"), []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = newServer(t, quietConfig(Config{Repository: dir, Open: func(string) (Backend, error) { panic("opener bug") }}))
	if err := s.ScanRepository(context.Background()); err != nil {
		t.Errorf("ScanRepository: %v", err)
	}
}

// wrongOutput is a fake whose outputs disagree with its Info: shape
// returns the output shape for a batch of n.
type wrongOutput struct {
	*fakeBackend
	shape func(n int) []int
}

func (w wrongOutput) Forward(_ context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return tensor.New(w.shape(x.Shape[0])...), nil
}

// TestOutputMismatchesInfo: a model whose warm-up output does not have
// the shape its Info declares ([N, classes] for a classifier, [N, H', W',
// classes] for a segmenter) is refused, naming the mismatch, instead of
// being served (a 2-class model answering 7 logits used to answer
// {"class":6,"label":""}).
func TestOutputMismatchesInfo(t *testing.T) {
	classifier := newFake()
	classifier.classes = 2
	segmenter := newFake()
	segmenter.task = models.Segment
	segmenter.classes = 2
	for _, c := range []struct {
		what string
		b    Backend
		want string
	}{
		{"7 logits for 2 classes", wrongOutput{classifier, func(n int) []int { return []int{n, 7} }}, "[1 7]"},
		{"classifier of rank 4", wrongOutput{classifier, func(n int) []int { return []int{n, 1, 1, 2} }}, "[1 1 1 2]"},
		{"segmenter of rank 2", wrongOutput{segmenter, func(n int) []int { return []int{n, 2} }}, "[1 2]"},
		{"segmenter with 3 classes", wrongOutput{segmenter, func(n int) []int { return []int{n, 2, 2, 3} }}, "[1 2 2 3]"},
		{"empty mask", wrongOutput{segmenter, func(n int) []int { return []int{n, 0, 2, 2} }}, "[1 0 2 2]"},
	} {
		s := newServer(t, quietConfig(Config{}))
		err := s.Add(context.Background(), "m", "1", c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "2 classes") || !strings.Contains(err.Error(), "model m version 1") {
			t.Errorf("%s: %v; want an error naming model m version 1, shape %s and the 2 classes of its Info", c.what, err, c.want)
		}
		if s.Ready() {
			t.Errorf("%s: served", c.what)
		}
	}
	// A model that passes its warm-up and answers a later batch with the
	// wrong shape: 500 naming it, and the server serves on.
	later := wrongOutput{classifier, func(n int) []int {
		if n == 1 {
			return []int{n, 2}
		}
		return []int{n, 7}
	}}
	ts := start(t, Config{}, map[string]Backend{"m": later, "ok": newFake()})
	code, _, b := post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{2, 2, 2, 1}, make([]float32, 8), ""))
	if code != 500 || !strings.Contains(string(b), "output shape [2 7]") || !strings.Contains(string(b), "2 classes") {
		t.Errorf("a later batch of 7 logits for 2 classes: %d %s; want 500 naming the mismatch", code, b)
	}
	serving(t, ts, "ok")
	// Good shapes are served.
	for _, b := range []Backend{classifier, segmenter} {
		s := newServer(t, quietConfig(Config{}))
		if err := s.Add(context.Background(), "m", "1", b); err != nil {
			t.Errorf("%s model: %v", b.Info().Task, err)
		}
		s.Close()
	}
}

// TestAddAfterClose: a closed server refuses new models with ErrClosed
// (Add returned nil and the model was never served: 404s).
func TestAddAfterClose(t *testing.T) {
	s := newServer(t, quietConfig(Config{}))
	if err := s.Add(context.Background(), "m", "1", newFake()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Add(context.Background(), "d", "1", newFake()); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v; want ErrClosed", err)
	}
	opened := false
	s2 := newServer(t, quietConfig(Config{Open: func(string) (Backend, error) { opened = true; return newFake(), nil }}))
	s2.Close()
	if err := s2.Load(context.Background(), "d", "1", "x"); !errors.Is(err, ErrClosed) || opened {
		t.Errorf("Load after Close: %v (file opened: %v); want ErrClosed before opening", err, opened)
	}
	if s.Ready() {
		t.Error("a closed server is ready")
	}
	// Requests to a closed server are answered 503 "shutting down", not
	// 404 "unknown model"; Run on it returns ErrClosed (it served).
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v2/models/m/infer", strings.NewReader(`{"inputs":[]}`)))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "shutting down") {
		t.Errorf("a request to a closed server: %d %s; want 503 shutting down", rec.Code, rec.Body.String())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background(), ln, nil, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Run on a closed server: %v; want ErrClosed", err)
	}
}

// TestOpenCheckpoint: OpenCheckpoint serves a residual checkpoint through
// infer as `residual serve` does, its metadata's preprocessing an object
// of SERVING.md's keys; FromInfer refuses a nil model. It is the Opener
// of a Config without one, for Load and a repository alike (which were
// refused: Config.Open is nil), as a nil Handler is http.DefaultServeMux.
func TestOpenCheckpoint(t *testing.T) {
	b, err := OpenCheckpoint("../testdata/checkpoint/mnist-tiny.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	info := b.Info()
	pre, ok := info.Preprocessing.(map[string]any)
	if info.Task != models.Classify || len(info.Classes) != 10 || info.Height != 28 || !ok || pre["channel_order"] != "grey" || pre["layout"] != "NHWC" {
		t.Errorf("info %+v", info)
	}
	s := newServer(t, quietConfig(Config{}))
	defer s.Close()
	if err := s.Load(context.Background(), "digits", "1", "../testdata/checkpoint/mnist-tiny.safetensors"); err != nil || !s.Ready() {
		t.Errorf("Load with no Config.Open: %v (ready %v)", err, s.Ready())
	}
	// A repository, the same.
	ckpt, err := os.ReadFile("../testdata/checkpoint/mnist-tiny.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := repositoryModel(t, dir, "digits")
	if err := os.WriteFile(path, ckpt, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Repository: dir}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate of a Repository with no Config.Open: %v", err)
	}
	r := newServer(t, quietConfig(cfg))
	defer r.Close()
	if err := r.ScanRepository(context.Background()); err != nil || !r.modelsServed("digits", "1") {
		t.Errorf("ScanRepository with no Config.Open: %v (served %v)", err, r.modelsServed("digits", "1"))
	}
	if _, err := FromInfer(nil); err == nil {
		t.Error("FromInfer(nil): no error")
	}
}

// withInfo is a backend publishing another Info.
type withInfo struct {
	*fakeBackend
	info ModelInfo
}

func (w withInfo) Info() ModelInfo { return w.info }

// TestAddRefusesUnencodableInfo: a Preprocessing value that JSON cannot
// encode is refused by Add (it would fail every metadata request).
func TestAddRefusesUnencodableInfo(t *testing.T) {
	s := newServer(t, quietConfig(Config{}))
	defer s.Close()
	b := newFake()
	info := b.Info()
	info.Preprocessing = make(chan int)
	if err := s.Add(context.Background(), "m", "1", withInfo{b, info}); err == nil || !strings.Contains(err.Error(), "does not encode to JSON") {
		t.Errorf("Add with a channel as preprocessing: %v", err)
	}
}

// TestRepositoryLeavesOutsideModels: a repository folder named like a
// model served by Add (the CLI's --model) is ignored with a warning; the
// repository's own models load beside it (its version 1 replaced the
// added model without a word).
func TestRepositoryLeavesOutsideModels(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"m", "other"} {
		if err := os.MkdirAll(filepath.Join(dir, name, "1"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "1", "model.safetensors"), []byte("weights"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncBuffer
	opened := 0
	s := newServer(t, Config{Repository: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Open: func(string) (Backend, error) {
		opened++
		b := newFake()
		b.classes = 5 // the repository's models have 5 classes, the added one 3
		return b, nil
	}})
	defer s.Close()
	if err := s.Add(context.Background(), "m", "1", newFake()); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the warning is logged once
		if err := s.ScanRepository(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := s.lookup("m", "1"); err != nil || len(m.info.Classes) != 3 {
		t.Errorf("model m after the scan: %v, %v; want the added one (3 classes)", m, err)
	}
	if m, err := s.lookup("other", ""); err != nil || len(m.info.Classes) != 5 {
		t.Errorf("the repository's model: %v, %v", m, err)
	}
	if opened != 1 || strings.Count(logs.String(), "served from outside the repository") != 1 || !strings.Contains(logs.String(), filepath.Join(dir, "m")) {
		t.Errorf("opened %d repository models, want 1; log:\n%s", opened, logs.String())
	}
}

// TestVersionOrder: versions sort in one total order — numbers by value
// before other names, names as strings, "1" and "01" by their spelling —
// so that a request without a version always reaches the same newest one
// (numbers and names were compared pairwise: 9 < 10 < 1a < 9, and the
// newest of the three was whichever the map iteration met last).
func TestVersionOrder(t *testing.T) {
	vs := []string{"1a", "10", "9", "b", "01", "1", "2"}
	want := []string{"01", "1", "2", "9", "10", "1a", "b"}
	for range 20 {
		rand.Shuffle(len(vs), func(i, j int) { vs[i], vs[j] = vs[j], vs[i] })
		got := slices.Clone(vs)
		sort.Slice(got, func(i, j int) bool { return versionLess(got[i], got[j]) })
		if !slices.Equal(got, want) {
			t.Fatalf("sorted %v; want %v", got, want)
		}
	}
	models := map[string]*model{}
	for _, v := range vs {
		models[v] = nil
	}
	if n := newest(models); n != "b" {
		t.Errorf("newest of %v: %s, want b", vs, n)
	}
}

// CheckName takes what is safe in a URL, a metric label and a file name,
// and says why it refuses the rest: "." and ".." were refused as holding
// characters other than letters, digits, '-', '_' and '.'.
func TestCheckName(t *testing.T) {
	for _, ok := range []string{"resnet20", "a", "v1.2_b-3", strings.Repeat("x", 128), "..."} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for s, want := range map[string]string{
		"":                       "1 to 128 characters",
		strings.Repeat("x", 129): "1 to 128 characters",
		".":                      "names a folder",
		"..":                     "names a folder",
		"a/b":                    "may only hold",
		"é":                      "may only hold",
	} {
		if err := CheckName(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckName(%q): %v, want an error containing %q", s, err, want)
		}
	}
}

// TestLoadContext: Add, Load and ScanRepository stop with their context's
// error: an ended ctx opens and warms up nothing, one that ends during the
// warm-up leaves the model unserved, one that ends while Config.Open
// runs serves nothing and leaves the file for a later scan; a nil ctx is
// an error, not a panic.
func TestLoadContext(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	opened := 0
	s := newServer(t, quietConfig(Config{Open: func(string) (Backend, error) { opened++; return newFake(), nil }}))
	f := newFake()
	if err := s.Add(ended, "m", "1", f); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "model m version 1") {
		t.Errorf("Add with an ended ctx: %v", err)
	}
	if err := s.Load(ended, "m", "1", "x.safetensors"); !errors.Is(err, context.Canceled) || opened != 0 {
		t.Errorf("Load with an ended ctx: %v, Config.Open called %d times", err, opened)
	}
	var none context.Context
	if err := s.Add(none, "m", "1", f); err == nil || !strings.Contains(err.Error(), "nil context") {
		t.Errorf("Add with a nil ctx: %v", err)
	}
	if err := s.Load(none, "m", "1", "x.safetensors"); err == nil || !strings.Contains(err.Error(), "nil context") || opened != 0 {
		t.Errorf("Load with a nil ctx: %v", err)
	}
	if err := s.ScanRepository(none); err == nil || !strings.Contains(err.Error(), "nil context") {
		t.Errorf("ScanRepository with a nil ctx: %v", err)
	}
	if f.calls.Load() != 0 {
		t.Errorf("%d warm-ups for an ended ctx", f.calls.Load())
	}

	// Ended during the warm-up, which the backend holds until released.
	f.gate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	added := make(chan error, 1)
	go func() { added <- s.Add(ctx, "m", "1", f) }()
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	f.gate <- struct{}{} // the warm-up pass ends: Forward is not interrupted
	if err := <-added; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "warm-up") {
		t.Errorf("Add whose ctx ended during the warm-up: %v", err)
	}
	if s.modelsServed("m", "1") {
		t.Error("a model whose Add was cancelled is served")
	}

	// Ended while a repository scan's Config.Open runs.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "r", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "r", "1", "model.safetensors"), []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	s = newServer(t, quietConfig(Config{Repository: dir, Open: func(string) (Backend, error) { cancel(); return newFake(), nil }}))
	if err := s.ScanRepository(ctx); !errors.Is(err, context.Canceled) || s.modelsServed("r", "1") {
		t.Errorf("ScanRepository whose ctx ended in Config.Open: %v, served %v", err, s.modelsServed("r", "1"))
	}
	for range 2 { // the file settles for a poll, then loads
		if err := s.ScanRepository(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if !s.modelsServed("r", "1") {
		t.Error("the file a cancelled scan was loading is not loaded by a later scan")
	}
}
