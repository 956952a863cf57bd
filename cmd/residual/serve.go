package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/serve"
)

// modelFlags collects repeated --model NAME=CKPT flags.
type modelFlags []string

func (m *modelFlags) String() string     { return strings.Join(*m, ",") }
func (m *modelFlags) Set(s string) error { *m = append(*m, s); return nil }

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	var models modelFlags
	fs.Var(&models, "model", "a model to serve as `NAME=CKPT` (repeatable); served as version 1")
	repo := fs.String("repository", "", "model repository DIR/NAME/VERSION/model.safetensors, polled for changes")
	addr := fs.String("addr", "127.0.0.1:8080", "HTTP address (REST, web page, /metrics)")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:8081", "gRPC address (empty: no gRPC)")
	var cfg serve.Config
	fs.IntVar(&cfg.MaxBatch, "max-batch", 8, "images per batch at most")
	fs.DurationVar(&cfg.MaxDelay, "max-delay", 0, "how long a batch that forms while the model is busy waits for more requests (0: never, run what is queued); a request that finds the model idle runs at once")
	fs.IntVar(&cfg.MaxQueue, "max-queue", 256, "requests waiting per model at most (more get 429)")
	fs.IntVar(&cfg.Instances, "instances", 1, "batches run at once per model")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body", 32<<20, "request body bytes at most")
	fs.IntVar(&cfg.MaxImagePixels, "max-pixels", 1<<24, "uploaded image pixels (width × height) at most")
	fs.DurationVar(&cfg.Timeout, "timeout", 30e9, "deadline of requests that set none (Request-Timeout header, grpc-timeout)")
	fs.DurationVar(&cfg.PollInterval, "poll", 2e9, "how often the --repository is scanned")
	drain := fs.Duration("drain", 30e9, "on SIGTERM or interrupt, how long in-flight requests may take (> 0); those still running then are cut off and the exit status is the signal's (143, 130) instead of 0")
	logJSON := fs.Bool("log-json", false, "log as JSON lines instead of text (durations as strings such as \"1.5s\"); nothing else is written to standard output or error, bar a second signal's notice")
	threads := fs.Int("threads", 0, "threads for the models and the server (0: all cores); 1 suits a model whose batch takes well under a millisecond and one client at a time (docs/SERVING.md)")
	modelThreads := fs.Int("model-threads", 0, "threads a batch's computation runs on (0: as --threads); the server's requests keep every core, so that they queue up into batches while the model computes: 1 suits a small model under load (docs/SERVING.md)")
	precision := precisionFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	pr, err := parsePrecision(*precision)
	if err != nil {
		return err
	}
	if *threads > 0 {
		runtime.GOMAXPROCS(*threads)
	}
	if *modelThreads > 0 {
		defer kernels.SetThreads(kernels.SetThreads(*modelThreads))
	}
	if len(models) == 0 && *repo == "" {
		return fmt.Errorf("%w: no model to serve (give --model NAME=CKPT or --repository DIR): residual serve --model NAME=CKPT [--model ...] | --repository DIR [--addr HOST:PORT]", errUsage)
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if *logJSON {
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{ReplaceAttr: durationStrings})
		quietSignals.Store(true) // serve logs the signal as it drains
		defer quietSignals.Store(false)
	}
	cfg.Logger = slog.New(h)
	for _, p := range kernels.EnvProblems() {
		cfg.Logger.Warn(p)
	}
	cfg.Repository = *repo
	cfg.Open = func(path string) (serve.Backend, error) { return openCheckpoint(path, pr) }
	s, err := serve.New(cfg)
	if err != nil {
		return err
	}

	// ctx is main's: SIGTERM and SIGINT cancel it, naming the signal
	// (the drain record's cause, the exit status when --drain runs out).
	hl, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	var gl net.Listener
	if *grpcAddr != "" {
		if gl, err = net.Listen("tcp", *grpcAddr); err != nil {
			hl.Close()
			return err
		}
	}
	if !*logJSON { // the log says it too ("serving HTTP")
		fmt.Fprintf(stdout, "serving on http://%s", hl.Addr())
		if gl != nil {
			fmt.Fprintf(stdout, " and grpc://%s", gl.Addr())
		}
		fmt.Fprintln(stdout)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx, hl, gl, *drain) }()
	// Models load while the server is live but not ready.
	var loadErr error
	for _, m := range models {
		name, path, _ := strings.Cut(m, "=") // checked by checkServe
		if loadErr = s.Load(ctx, name, "1", path); loadErr != nil {
			break
		}
	}
	if loadErr == nil {
		loadErr = s.ScanRepository(ctx)
	}
	if loadErr != nil && ctx.Err() != nil {
		// A signal during the loads: a stop, not a failure (Kubernetes
		// stops pods that are still starting).
		return <-done
	}
	if loadErr != nil {
		cfg.Logger.Error("model not loaded; stopping", "err", loadErr)
		cancel()
		<-done
		return logged(loadErr, *logJSON)
	}
	if err := <-done; err != nil {
		return logged(err, *logJSON) // Run's "stopped" record holds it
	}
	return nil
}

// logged marks err as written to the log when the log is JSON, so that
// the CLI does not add a text line to it.
func logged(err error, json bool) error {
	if json {
		return &loggedError{err}
	}
	return err
}

// durationStrings writes durations in JSON logs as Go writes them
// ("1.5s"); slog's JSON handler writes integer nanoseconds.
func durationStrings(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// openCheckpoint opens a checkpoint (any residual reads) for serving
// through package infer, whose models are safe for concurrent use, in
// precision pr (an int8 checkpoint refuses bf16).
func openCheckpoint(path string, pr ag.Precision) (serve.Backend, error) {
	m, err := infer.Open(path)
	if err != nil {
		return nil, err
	}
	if err := m.SetPrecision(pr); err != nil {
		return nil, fmt.Errorf("--precision %s: %w", pr, err)
	}
	return serve.FromInfer(m)
}
