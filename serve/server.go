// Package serve is residual's inference server: classifiers and U-Nets
// behind the Open Inference Protocol (KServe v2, the protocol Triton and
// KServe clients speak) over REST and gRPC, convenience routes that take
// an image and answer labels or a mask, a web page, Prometheus metrics and
// dynamic batching with admission control.
//
// A Server holds models (Backend values, loaded by an Opener from files
// or added directly), each with its own batching queue. Requests of one
// model that wait while it is busy are run together, in batches of at most
// Config.MaxBatch images (what queued while one batch ran forms the next,
// which may wait up to Config.MaxDelay for more, none by default; a request
// that finds the model idle runs at once); a request whose deadline cannot
// be met given the queue and the measured compute time per image is
// refused at once (HTTP
// 429, gRPC RESOURCE_EXHAUSTED) rather than left to time out in the queue.
// Every input is bounded (package limits, Config.MaxBodyBytes) and checked
// before it is decoded; a panic in a model answers its requests with 500
// and the server keeps serving. docs/SERVING.md describes the routes,
// flags and measurements.
//
// In a Go program: New makes a Server, Add serves a Backend (FromInfer
// wraps an infer.Model) or Load opens a file with Config.Open
// (OpenCheckpoint, residual's checkpoints, unless another is given), and
// Run serves HTTP and gRPC on listeners until its context ends; Handler
// and NewGRPC give the two APIs to mount elsewhere.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// Config sets the server's batching, limits and timeouts. Zero fields take
// the defaults documented on each; a negative duration or size, a size
// over its bound (MaxBatch 4096, MaxQueue 1<<20, Instances 256) is
// refused (Validate): New returns the error naming the field.
type Config struct {
	// MaxBatch bounds the images of one model execution (default 8).
	MaxBatch int
	// MaxDelay is how long a batch that forms while the model is busy
	// (requests were already waiting when an instance came free) waits
	// for more requests to fill it (default 0: no waiting, run what is
	// queued). A request that finds an instance idle runs at
	// once, with whatever else is queued by then. On a CPU a batch costs
	// about the sum of its images (ResNet-20 at 28×28: 0.33 ms an image
	// alone, 0.32 in a batch of 128), so waiting only adds latency: with
	// 8 clients and 2 ms, ResNet-20 served 960–1,020 requests/s in
	// batches of 4.1–4.2; without, 1,800–2,070 in batches of 3.1. Set it
	// for a model whose batches cost much less than their images alone.
	MaxDelay time.Duration
	// MaxQueue bounds the requests waiting per model (default 256); more
	// are refused with 429.
	MaxQueue int
	// Instances is the number of goroutines executing batches per model
	// (default 1: one batch at a time, using every core the engine uses).
	Instances int
	// MaxBodyBytes bounds a request body (default 32 MiB); gRPC messages
	// are bounded by it too, up to gRPC's own limit of 2 GiB − 1.
	MaxBodyBytes int64
	// MaxImagePixels bounds width × height of an uploaded image, checked
	// from its header before decoding (default 1<<24, 64 MiB as RGBA;
	// limits.ImagePixels applies too). At most 2 × GOMAXPROCS images are
	// decoded at once, so decoding memory stays bounded under overload.
	MaxImagePixels int
	// Timeout is a request's deadline when it sets none (default 30 s).
	Timeout time.Duration
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// http.Server timeouts (defaults 5 s, 30 s, 60 s, 120 s) that bound
	// slow clients (slowloris) and idle connections.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// Repository, if set, is a folder DIR/NAME/VERSION/model.safetensors
	// polled every PollInterval (default 2 s): new and changed files are
	// loaded (a changed file once its size and time are unchanged for one
	// poll, so half-written files are not read), removed ones unloaded.
	// VERSION is a positive integer without leading zeros, as in Triton's
	// model repositories; other folders are ignored with a warning logged
	// once per folder.
	Repository   string
	PollInterval time.Duration
	// Open loads the model files of Load and Repository (default
	// OpenCheckpoint: residual's checkpoints, in the precision each
	// holds; give another to open other kinds, or residual's in another
	// precision). It takes no context, and must return (see Opener).
	Open Opener
	// Logger receives request logs and events (default slog.Default()).
	Logger *slog.Logger
}

// Bounds on Config's sizes (and residual serve's flags). Beyond them a
// model would not start (a queue of MaxQueue slots and Instances
// goroutines are made for every model) or could not run a batch.
const (
	MaxBatchLimit     = 4096
	MaxQueueLimit     = 1 << 20
	MaxInstancesLimit = 256
)

// Validate reports the first field of c that a server cannot take: a
// negative duration or size (zero means the default, so a negative value
// is a mistake, never replaced by the default), or MaxBatch, MaxQueue
// or Instances over its bound. The error names
// the field after residual serve's flag for it, where there is one
// ("--max-batch (Config.MaxBatch) -5 is negative"). New returns the
// error, with no server.
func (c Config) Validate() error {
	for _, f := range []struct {
		name     string
		v, limit int64
	}{
		{"--max-batch (Config.MaxBatch)", int64(c.MaxBatch), MaxBatchLimit},
		{"--max-queue (Config.MaxQueue)", int64(c.MaxQueue), MaxQueueLimit},
		{"--instances (Config.Instances)", int64(c.Instances), MaxInstancesLimit},
		{"--max-body (Config.MaxBodyBytes)", c.MaxBodyBytes, 0},
		{"--max-pixels (Config.MaxImagePixels)", int64(c.MaxImagePixels), 0},
	} {
		switch {
		case f.v < 0:
			return fmt.Errorf("serve: %s %d is negative (0 means the default)", f.name, f.v)
		case f.limit > 0 && f.v > f.limit:
			return fmt.Errorf("serve: %s %d is over its limit of %d", f.name, f.v, f.limit)
		}
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"--max-delay (Config.MaxDelay)", c.MaxDelay}, {"--timeout (Config.Timeout)", c.Timeout},
		{"Config.ReadHeaderTimeout", c.ReadHeaderTimeout}, {"Config.ReadTimeout", c.ReadTimeout},
		{"Config.WriteTimeout", c.WriteTimeout}, {"Config.IdleTimeout", c.IdleTimeout},
		{"--poll (Config.PollInterval)", c.PollInterval},
	} {
		if f.d < 0 {
			return fmt.Errorf("serve: %s %v is negative (0 means the default)", f.name, f.d)
		}
	}
	return nil
}

// defaults gives c's zero fields their defaults; negative ones are left
// for Validate to refuse.
func (c *Config) defaults() {
	setDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	setInt(&c.MaxBatch, 8)
	setInt(&c.MaxQueue, 256)
	setInt(&c.Instances, 1)
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 32 << 20
	}
	setInt(&c.MaxImagePixels, 1<<24)
	setDur(&c.Timeout, 30*time.Second)
	setDur(&c.ReadHeaderTimeout, 5*time.Second)
	setDur(&c.ReadTimeout, 30*time.Second)
	setDur(&c.WriteTimeout, 60*time.Second)
	setDur(&c.IdleTimeout, 120*time.Second)
	setDur(&c.PollInterval, 2*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Open == nil {
		c.Open = OpenCheckpoint
	}
}

// model is one served version of a named model.
type model struct {
	name, version string
	backend       Backend
	info          ModelInfo
	outShape      []int // one image's output, from the warm-up: [classes] or [H', W', classes]
	bt            *batcher
	metrics       *modelMetrics
	ready         atomic.Bool
}

// Server holds the served models, each with its batching queue; its
// methods and handlers are safe for concurrent use. Create it with New,
// serve it with Handler, NewGRPC or Run, and stop it with Close.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu       sync.RWMutex
	models   map[string]map[string]*model // name → version → model
	closed   bool                         // Close has run: Add refuses
	stop     chan struct{}                // closed by Close: Run drains
	loading  atomic.Int32                 // loads in progress
	draining atomic.Bool                  // Run's drain has begun: repository scans load no further model
	pending  map[[2]string]int            // loads in progress of versions not yet served, by (name, version)

	decoding chan struct{} // bounds concurrent image decodes (memory)

	repoMu  sync.Mutex
	files   map[string]fileStat // repository files loaded (or failed), by path
	changed map[string]fileStat // changed files waiting one poll to settle
	ignored map[string]bool     // repository folders skipped (and logged), by path
	scanned bool                // the repository's first scan is done: later files wait to settle
	// scanLoad is the file a repository scan is loading (Load), if any:
	// named by Run when the load outlasts its drain.
	scanLoad atomic.Pointer[string]
}

type fileStat struct {
	size  int64
	mtime time.Time
}

// New returns a server with no models yet (add them with Add, Load or
// ScanRepository); cfg's zero fields take the defaults documented on
// Config's fields. A cfg that Config.Validate refuses is returned as its
// error, with no server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		metrics:  newMetrics(cfg.Logger),
		models:   map[string]map[string]*model{},
		stop:     make(chan struct{}),
		decoding: make(chan struct{}, 2*runtime.GOMAXPROCS(0)),
		files:    map[string]fileStat{},
		changed:  map[string]fileStat{},
		pending:  map[[2]string]int{},
		ignored:  map[string]bool{},
	}, nil
}

// Add serves b as version of name after a warm-up batch, replacing (and
// draining) a model already served under that name and version. The
// warm-up's output must have the shape b's Info declares ([1, classes]
// for a classifier, [1, H', W', classes] for a segmenter); a model that
// answers otherwise is refused. A ctx that ends before the warm-up has
// answered leaves the model unserved, with ctx's error (a warm-up pass
// already running ends first: Backend.Forward is not interrupted).
func (s *Server) Add(ctx context.Context, name, version string, b Backend) error {
	if s.isClosed() {
		return fmt.Errorf("model %s version %s: %w", name, version, ErrClosed)
	}
	if err := loadContext(ctx, name, version); err != nil {
		return err
	}
	defer s.pendingLoad(name, version)()
	if err := checkName("model name", name); err != nil {
		return err
	}
	if err := checkName("model version", version); err != nil {
		return err
	}
	if b == nil {
		return fmt.Errorf("serve: model %s version %s: no Backend (nil)", name, version)
	}
	info, err := backendInfo(b)
	if err == nil {
		err = info.validate()
	}
	if err != nil {
		return fmt.Errorf("serve: model %s version %s: %w", name, version, err)
	}
	if err := limits.CheckElements("serve: model "+name+" input", s.cfg.MaxBatch, info.Height, info.Width, info.Channels); err != nil {
		return err
	}
	mm := s.metrics.forModel(name, version)
	m := &model{name: name, version: version, backend: b, info: info, metrics: mm,
		bt: newBatcher(b, s.cfg.MaxBatch, s.cfg.MaxDelay, s.cfg.MaxQueue, s.cfg.Instances, mm)}
	start := time.Now()
	r, err := m.bt.submit(ctx, tensor.New(1, info.Height, info.Width, info.Channels))
	if err == nil {
		err = info.checkOutput(r.y, 1)
	}
	if err != nil {
		m.bt.close()
		s.metrics.release(name, version)
		return fmt.Errorf("serve: model %s version %s: warm-up batch: %w", name, version, err)
	}
	m.outShape = slices.Clone(r.y.Shape[1:])
	m.ready.Store(true)
	s.mu.Lock()
	if s.closed { // closed during the warm-up
		s.mu.Unlock()
		m.bt.close()
		s.metrics.release(name, version)
		return fmt.Errorf("model %s version %s: %w", name, version, ErrClosed)
	}
	if s.models[name] == nil {
		s.models[name] = map[string]*model{}
	}
	old := s.models[name][version]
	s.models[name][version] = m
	s.mu.Unlock()
	s.log.Info("model ready", "model", name, "version", version, "task", info.Task, "input", fmt.Sprintf("%dx%dx%d", info.Height, info.Width, info.Channels), "classes", len(info.Classes), "warmup", time.Since(start))
	if old != nil {
		old.ready.Store(false)
		old.bt.close()
		s.metrics.release(name, version)
		s.log.Info("model replaced", "model", name, "version", version)
	}
	return nil
}

// Load opens path with Config.Open and serves it (see Add). An Opener
// that panics, or returns neither a Backend nor an error, is an error
// naming the model. ctx is checked before and after Config.Open (which
// takes none) and then holds for the warm-up as in Add.
func (s *Server) Load(ctx context.Context, name, version, path string) error {
	if s.isClosed() { // before opening the file for nothing
		return fmt.Errorf("model %s version %s: %w", name, version, ErrClosed)
	}
	if err := loadContext(ctx, name, version); err != nil {
		return err
	}
	defer s.pendingLoad(name, version)()
	b, err := s.open(path)
	if err == nil && b == nil {
		err = fmt.Errorf("Config.Open returned neither a Backend nor an error for %s", path)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("serve: model %s version %s: %w", name, version, err)
	}
	return s.Add(ctx, name, version, b)
}

// loadContext returns Add's and Load's error for a ctx that is nil or has
// ended.
func loadContext(ctx context.Context, name, version string) error {
	if ctx == nil {
		return fmt.Errorf("serve: model %s version %s: nil context", name, version)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("serve: model %s version %s: %w", name, version, err)
	}
	return nil
}

// open calls Config.Open, turning a panic into an error: from a
// repository scan in Run's goroutine, it would end the process.
func (s *Server) open(path string) (b Backend, err error) {
	defer func() {
		if p := recover(); p != nil {
			b, err = nil, fmt.Errorf("Config.Open panicked opening %s: %v", path, p)
		}
	}()
	return s.cfg.Open(path)
}

// backendInfo calls b.Info, turning a panic (a nil pointer in a Backend
// interface, say) into an error.
func backendInfo(b Backend) (info ModelInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Backend.Info panicked: %v", p)
		}
	}()
	return b.Info(), nil
}

// pendingLoad marks the server not ready while a model version that is
// not yet served loads (a replacement keeps the server ready: the previous
// version answers meanwhile); it returns the function that ends the mark.
// Until then a request for it is answered "not ready" (503; the ready
// endpoints' false), not "unknown model".
func (s *Server) pendingLoad(name, version string) func() {
	key := [2]string{name, version}
	s.mu.Lock()
	if s.models[name][version] != nil {
		s.mu.Unlock()
		return func() {}
	}
	s.pending[key]++
	s.mu.Unlock()
	s.loading.Add(1)
	return func() {
		s.mu.Lock()
		if s.pending[key]--; s.pending[key] == 0 {
			delete(s.pending, key)
		}
		s.mu.Unlock()
		s.loading.Add(-1)
	}
}

// loadingVersion reports whether a version of name (any, for version "")
// not yet served is loading; the caller holds s.mu.
func (s *Server) loadingVersion(name, version string) bool {
	for k := range s.pending {
		if k[0] == name && (version == "" || k[1] == version) {
			return true
		}
	}
	return false
}

// Unload stops serving a model version after answering its queued
// requests. A version the server does not serve (never added, unloaded
// already, or still loading) is an error naming it, wrapping ErrNotServed.
func (s *Server) Unload(name, version string) error {
	s.mu.Lock()
	m := s.models[name][version]
	if m == nil {
		var why string
		switch vs := s.models[name]; {
		case s.loadingVersion(name, version):
			why = " (it is loading)"
		case len(vs) > 0:
			why = fmt.Sprintf(" (versions served: %s)", strings.Join(versions(vs), ", "))
		}
		s.mu.Unlock()
		return fmt.Errorf("model %s version %s: %w%s", name, version, ErrNotServed, why)
	}
	delete(s.models[name], version)
	if len(s.models[name]) == 0 {
		delete(s.models, name)
	}
	s.mu.Unlock()
	m.ready.Store(false)
	m.bt.close()
	s.metrics.release(name, version)
	s.log.Info("model unloaded", "model", name, "version", version)
	return nil
}

// ErrClosed is Add's and Load's error on a server that Close has closed.
var ErrClosed = errors.New("serve: server closed")

// ErrNotServed is in Unload's error for a model version the server does
// not serve.
var ErrNotServed = errors.New("serve: not served")

// Close unloads every model, answering queued requests first; the server
// serves nothing afterwards (Add and Load return ErrClosed), and a Run in
// progress drains and returns (a request it reads meanwhile, before its
// model's queue, is answered 503: cancelling Run's context instead drains
// with the models served).
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		close(s.stop)
	}
	s.closed = true
	var all [][2]string
	for n, vs := range s.models {
		for v := range vs {
			all = append(all, [2]string{n, v})
		}
	}
	s.mu.Unlock()
	for _, nv := range all {
		_ = s.Unload(nv[0], nv[1]) // ErrNotServed: a concurrent Unload took it first
	}
}

// Ready reports whether the server has at least one model, no load in
// progress, and every model has run its warm-up batch.
func (s *Server) Ready() bool {
	if s.loading.Load() > 0 {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.models) == 0 {
		return false
	}
	for _, vs := range s.models {
		for _, m := range vs {
			if !m.ready.Load() {
				return false
			}
		}
	}
	return true
}

// CheckName returns an error unless s can name a model or a version: 1
// to 128 letters, digits, '-', '_' or '.' (not "." or ".."), what is safe
// in URLs, metric labels and file names. Add and Load refuse other names.
func CheckName(s string) error { return checkName("model name", s) }

// checkName keeps names and versions to what is safe in URLs, metric
// labels and file names.
func checkName(what, s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("serve: %s %q must have 1 to 128 characters", what, s)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("serve: %s %q names a folder, not a model", what, s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("serve: %s %q may only hold letters, digits, '-', '_' and '.'", what, s)
		}
	}
	return nil
}

// lookup returns a ready model; version "" means the newest (versions
// compare as numbers when both are, else as strings).
func (s *Server) lookup(name, version string) (*model, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, unavailable("the server is shutting down")
	}
	vs := s.models[name]
	if len(vs) == 0 {
		switch {
		case s.loadingVersion(name, version):
			return nil, unavailable("model %q is loading; not ready yet", clip(name))
		case s.loadingVersion(name, ""):
			return nil, notFound("model %q has no version %q (another is loading)", clip(name), clip(version))
		}
		return nil, notFound("unknown model %q", clip(name))
	}
	if version == "" {
		version = newest(vs)
	}
	m := vs[version]
	if m == nil {
		if s.loadingVersion(name, version) {
			return nil, unavailable("model %q version %q is loading; not ready yet", clip(name), clip(version))
		}
		return nil, notFound("model %q has no version %q (versions: %v)", clip(name), clip(version), versions(vs))
	}
	if !m.ready.Load() {
		return nil, unavailable("model %q version %q is not ready", clip(name), clip(version))
	}
	return m, nil
}

func versions(vs map[string]*model) []string {
	out := make([]string, 0, len(vs))
	for v := range vs {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return versionLess(out[i], out[j]) })
	return out
}

func newest(vs map[string]*model) string {
	v := versions(vs)
	return v[len(v)-1]
}

func versionLess(a, b string) bool {
	x, ex := strconv.ParseUint(a, 10, 64)
	y, ey := strconv.ParseUint(b, 10, 64)
	switch {
	case ex == nil && ey == nil && x != y:
		return x < y
	case (ex == nil) != (ey == nil): // numbers before other names, so that the order is total
		return ex == nil
	}
	return a < b // two names, or one number written two ways ("1", "01")
}

// modelList returns every model's name and versions, sorted.
func (s *Server) modelList() []*model {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*model
	for _, vs := range s.models {
		for _, m := range vs {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].name != out[j].name {
			return out[i].name < out[j].name
		}
		return versionLess(out[i].version, out[j].version)
	})
	return out
}

// withTimeout gives ctx the server's default deadline if it has none and
// shortens it to d if d > 0 is sooner.
func (s *Server) withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		if _, ok := ctx.Deadline(); ok {
			return ctx, func() {}
		}
		d = s.cfg.Timeout
	}
	return context.WithTimeout(ctx, d)
}

// infer runs x ([n,H,W,C]) on a model through its batcher, checking the
// input first, and records the request's metrics.
func (s *Server) infer(ctx context.Context, protocol, name, version string, x *tensor.Tensor) (*tensor.Tensor, *model, error) {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		m, err := s.lookup(name, version)
		if err != nil {
			return nil, nil, err
		}
		if err := m.checkInput(x); err != nil {
			m.metrics.observeRequest(protocol, 0, 0, result{}, err)
			return nil, m, counted{err}
		}
		r, err := m.bt.submit(ctx, x)
		if errors.Is(err, errBatcherClosed) && attempt < 2 {
			continue // replaced between lookup and submit
		}
		if err == nil {
			if oerr := m.info.checkOutput(r.y, x.Shape[0]); oerr != nil {
				err = internal("model %q version %q: %v", name, m.version, oerr)
			}
		}
		m.metrics.observeRequest(protocol, x.Shape[0], time.Since(start), r, err)
		if err != nil {
			return nil, m, counted{err}
		}
		return r.y, m, nil
	}
}

// checkInput checks an input batch against the model: rank, image shape,
// at least one image, finite values.
func (m *model) checkInput(x *tensor.Tensor) error {
	if err := m.checkShape(x.Shape); err != nil {
		return err
	}
	if i := finite(x.Data); i >= 0 {
		return badRequest("input value %d is %v; inputs must be finite", i, x.Data[i])
	}
	return nil
}

// checkShape checks an input's shape against the model: rank, image
// shape, at least one image.
func (m *model) checkShape(shape []int) error {
	want := []int{m.info.Height, m.info.Width, m.info.Channels}
	if len(shape) != 4 || !tensor.SameShape(shape[1:], want) {
		return badRequest("input shape %v does not match the model's [-1 %d %d %d] (NHWC)", shape, want[0], want[1], want[2])
	}
	if shape[0] < 1 {
		return badRequest("input batch is empty")
	}
	return nil
}

// isDir reports whether a folder's entry is a folder, or a symbolic link
// to one (a model mounted elsewhere, as Kubernetes and model meshes lay
// repositories out; Triton follows them too).
func isDir(dir string, e fs.DirEntry) bool {
	if e.Type()&fs.ModeSymlink == 0 {
		return e.IsDir()
	}
	fi, err := os.Stat(filepath.Join(dir, e.Name()))
	return err == nil && fi.IsDir()
}

// ScanRepository loads new and changed models of Config.Repository and
// unloads removed ones (see Config.Repository). The first scan loads every
// model at once; later ones wait for a changed file to settle. Errors
// loading one model are logged and leave the other models (and the
// model's previous version) serving.
//
// Once Run's drain has begun or ctx has ended, a scan loads no further
// model: the one it is loading finishes (its warm-up stopped by ctx, see
// Add), and the others and the removals are left to a later scan (none
// after a drain), with ctx's error (nil for the drain).
func (s *Server) ScanRepository(ctx context.Context) error {
	if ctx == nil {
		return errors.New("serve: ScanRepository: nil context")
	}
	dir := s.cfg.Repository
	if dir == "" {
		return nil
	}
	s.repoMu.Lock()
	defer s.repoMu.Unlock()
	first := !s.scanned // the files there at the start are read at once
	names, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("serve: repository: %w", err)
	}
	s.scanned = true
	seen := map[string]bool{}
	ignored := map[string]bool{}
	// ignore skips a folder, logging it on the first scan that finds it.
	ignore := func(path, why string) {
		ignored[path] = true
		if !s.ignored[path] {
			s.ignored[path] = true
			s.log.Warn("repository folder ignored: "+why, "folder", path)
		}
	}
	for _, n := range names {
		if !isDir(dir, n) || strings.HasPrefix(n.Name(), ".") { // hidden folders (.git) are no models
			continue
		}
		if err := checkName("model name", n.Name()); err != nil {
			ignore(filepath.Join(dir, n.Name()), "a model name may only hold letters, digits, '-', '_' and '.'")
			continue
		}
		if s.servedOutside(dir, n.Name()) {
			ignore(filepath.Join(dir, n.Name()), "a model of this name is served from outside the repository (--model, Server.Add or Load); the repository's versions would replace it")
			continue
		}
		vers, err := os.ReadDir(filepath.Join(dir, n.Name()))
		if err != nil {
			continue
		}
		for _, v := range vers {
			if !isDir(filepath.Join(dir, n.Name()), v) || strings.HasPrefix(v.Name(), ".") {
				continue
			}
			if !repositoryVersion(v.Name()) {
				ignore(filepath.Join(dir, n.Name(), v.Name()), "a version folder's name must be a positive integer without leading zeros (as in Triton's model repositories)")
				continue
			}
			path := filepath.Join(dir, n.Name(), v.Name(), "model.safetensors")
			fi, err := os.Stat(path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				continue // a version folder still being filled
			case err != nil:
				ignore(filepath.Join(dir, n.Name(), v.Name()), "its model.safetensors cannot be read: "+err.Error())
				continue
			case !fi.Mode().IsRegular():
				ignore(filepath.Join(dir, n.Name(), v.Name()), "its model.safetensors is not a regular file")
				continue
			}
			seen[path] = true
			st := fileStat{fi.Size(), fi.ModTime()}
			if old, ok := s.files[path]; ok && old == st {
				delete(s.changed, path)
				continue
			}
			if p, ok := s.changed[path]; !first && (!ok || p != st) {
				s.changed[path] = st // wait one poll for the file to settle
				continue
			}
			if s.draining.Load() {
				return nil // before the removals below, which count on every model folder seen
			}
			if err := ctx.Err(); err != nil {
				return err // as for the drain
			}
			delete(s.changed, path)
			prev, had := s.files[path]
			s.files[path] = st
			s.scanLoad.Store(&path)
			err = s.Load(ctx, n.Name(), v.Name(), path)
			s.scanLoad.Store(nil)
			if err != nil {
				if cerr := ctx.Err(); cerr != nil { // not the file's fault: a later scan loads it
					if delete(s.files, path); had {
						s.files[path] = prev
					}
					return cerr
				}
				s.log.Error("repository model not loaded", "path", path, "err", err)
			}
		}
	}
	for path := range s.ignored {
		if !ignored[path] {
			delete(s.ignored, path) // gone: logged again if it comes back
		}
	}
	for path := range s.files {
		if !seen[path] {
			delete(s.files, path)
			delete(s.changed, path)
			ver := filepath.Dir(path)
			// ErrNotServed where its load failed (logged then) or a call
			// to Unload took it already: nothing is left to do.
			_ = s.Unload(filepath.Base(filepath.Dir(ver)), filepath.Base(ver))
		}
	}
	return nil
}

// servedOutside reports whether a model name is served and none of its
// versions came from the repository in dir (so Add or Load served it):
// ScanRepository leaves such a name alone. The caller holds s.repoMu.
func (s *Server) servedOutside(dir, name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for v := range s.models[name] {
		if _, ok := s.files[filepath.Join(dir, name, v, "model.safetensors")]; ok {
			return false
		}
	}
	return len(s.models[name]) > 0
}

// repositoryVersion reports whether a repository folder name is a
// version: a positive integer (int64) without leading zeros, as Triton's
// model repositories require; Triton ignores other folders, and so does
// ScanRepository, logging each once.
func repositoryVersion(name string) bool {
	if name == "" || name[0] < '1' || name[0] > '9' {
		return false
	}
	for _, c := range name {
		if c < '0' || c > '9' {
			return false
		}
	}
	_, err := strconv.ParseInt(name, 10, 64)
	return err == nil
}

// watch scans the repository every PollInterval until ctx ends.
func (s *Server) watch(ctx context.Context) {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.ScanRepository(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("repository scan", "err", err)
			}
		}
	}
}

// isClosed reports whether Close has run.
func (s *Server) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}
