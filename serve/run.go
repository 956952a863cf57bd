package serve

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// HTTPServer returns an http.Server for Handler with the configured
// timeouts: ReadHeaderTimeout and ReadTimeout end slowloris clients,
// IdleTimeout idle keep-alive connections. A program that serves it
// itself stops it with its Shutdown, which answers the requests in flight
// until a context ends, and then calls Close to unload the models; Run
// does both, bounded by a duration.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Run serves HTTP on httpLn and gRPC on grpcLn (either may be nil) and
// polls the repository, until ctx ends, Close is called or a listener
// fails. It then drains: the listeners close, every accepted request is
// answered (for at most drain; 0 means 30 s), queued batches run, and the
// models are unloaded. Connections that carry no request (a browser's
// spare one, an idle keep-alive) are closed once no request has been in
// flight for 250 ms, rather than waited on. A repository scan in
// progress loads no further model once the drain starts (the one it is
// loading is given up once Config.Open returns, or during its warm-up),
// and Run returns only when the model it was loading is done with, so
// that no goroutine of Run's is left in Config.Open; one still loading
// when the drain's time is up (an Opener that does not return) is left,
// and Run returns an error naming its file. It returns nil after a clean
// drain. A nil ctx, a negative drain, or a server already closed, is
// returned at once, with the listeners closed.
func (s *Server) Run(ctx context.Context, httpLn, grpcLn net.Listener, drain time.Duration) error {
	var err error
	switch {
	case ctx == nil:
		err = errors.New("serve: Run: nil context")
	case drain < 0:
		err = fmt.Errorf("serve: Run: drain %v is negative (0 means 30 s)", drain)
	}
	if err == nil && s.isClosed() {
		err = fmt.Errorf("serve: Run: %w", ErrClosed)
	}
	if err != nil {
		for _, ln := range []net.Listener{httpLn, grpcLn} {
			if ln != nil {
				ln.Close()
			}
		}
		return err
	}
	if drain == 0 {
		drain = 30 * time.Second
	}
	errc := make(chan error, 2)
	hs := s.HTTPServer()
	var inflight atomic.Int64 // HTTP requests being answered
	h := hs.Handler
	hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Add(-1)
		h.ServeHTTP(w, r)
	})
	if httpLn != nil {
		go func() { errc <- hs.Serve(httpLn) }()
		s.log.Info("serving HTTP", "addr", httpLn.Addr().String())
	}
	gs := s.NewGRPC()
	if grpcLn != nil {
		go func() { errc <- gs.Serve(grpcLn) }()
		s.log.Info("serving gRPC", "addr", grpcLn.Addr().String())
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watched := make(chan struct{}) // closed when the repository's watch has returned
	if s.cfg.Repository != "" {
		go func() {
			defer close(watched)
			s.watch(wctx)
		}()
	} else {
		close(watched)
	}
	closed := false
	select {
	case <-ctx.Done():
	case err = <-errc:
	case <-s.stop:
		closed = true
	}
	s.draining.Store(true) // no repository model loads into a draining server,
	stopWatch()            // and no scan starts
	cause := "stopped"
	switch {
	case ctx.Err() != nil:
		cause = context.Cause(ctx).Error() // a signal, for the CLI
	case err != nil:
		cause = err.Error() // a listener's failure
	case closed:
		cause = "closed"
	}
	s.log.Info("draining", "timeout", drain, "cause", cause)
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	grpcDone := make(chan struct{})
	go func() { gs.GracefulStop(); close(grpcDone) }()
	serr := shutdownHTTP(dctx, hs, &inflight) // dctx's error when HTTP requests outlasted the drain
	cut := errors.Is(serr, context.DeadlineExceeded)
	if serr != nil && !cut && err == nil {
		err = serr
	}
	select {
	case <-grpcDone:
	case <-dctx.Done():
		gs.Stop()
		cut = true
	}
	if cut && err == nil {
		err = fmt.Errorf("serve: drain: requests still in flight after %v were cut off: %w", drain, context.DeadlineExceeded)
	}
	s.Close()
	// A scan stopped by stopWatch may still be loading one model (Add
	// refuses it now): Run returns with no goroutine of its own left, none
	// still in Config.Open, unless that load outlasts the drain (an Opener
	// takes no context: nothing can stop it). A scan already done wins
	// over a drain also spent (one select would pick between them).
	select {
	case <-watched:
	default:
		select {
		case <-watched:
		case <-dctx.Done():
			what := "a model"
			if p := s.scanLoad.Load(); p != nil {
				what = *p
			}
			stuck := fmt.Errorf("serve: drain: a repository scan was still opening %s (Config.Open) or warming it up after %v; Run returns without it: %w", what, drain, context.DeadlineExceeded)
			s.log.Error("repository load outlasted the drain", "err", stuck)
			if err == nil {
				err = stuck
			}
		}
	}
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	s.log.Info("stopped", "err", err)
	return err
}

// drainQuiet is how long a drain goes without an HTTP request in flight
// before it closes the connections left: http.Server.Shutdown waits up to
// 5 s on a connection that has sent no request yet (a browser opens a
// spare one; a client's pool keeps some), so a drain with one of them
// open ran to its end and reported requests cut off that never came.
const drainQuiet = 250 * time.Millisecond

// shutdownHTTP is hs.Shutdown(ctx), which stops hs's listeners and waits
// for its requests, ended early by hs.Close once inflight has read 0 for
// drainQuiet.
func shutdownHTTP(ctx context.Context, hs *http.Server, inflight *atomic.Int64) error {
	done := make(chan error, 1)
	go func() { done <- hs.Shutdown(ctx) }()
	tick := time.NewTicker(drainQuiet / 10)
	defer tick.Stop()
	var quiet time.Time // since when no request has been in flight
	for {
		select {
		case err := <-done:
			if errors.Is(err, context.DeadlineExceeded) {
				running := inflight.Load() // before Close ends their requests
				hs.Close()                 // the connections left, with or without a request
				if running == 0 {
					return nil // what outlasted the drain carried no request
				}
			}
			return err
		case now := <-tick.C:
			switch {
			case inflight.Load() > 0:
				quiet = time.Time{}
			case quiet.IsZero():
				quiet = now
			case now.Sub(quiet) >= drainQuiet:
				hs.Close() // Shutdown returns at its next poll, into done's buffer
				return nil
			}
		}
	}
}

//go:embed web
var web embed.FS

// serveIndex answers the web page: one HTML file with its script and
// style inline, no external resources.
func serveIndex(w http.ResponseWriter, r *http.Request) {
	b, err := web.ReadFile("web/index.html")
	if err != nil {
		writeError(w, internal("web page missing: %v", err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	w.Write(b)
}
