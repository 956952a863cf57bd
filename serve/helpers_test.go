package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// resnetBackend is a real model: ResNet-20 for 28×28 grey images and ten
// classes with random weights, run like package infer runs a checkpoint
// (eval mode, no-grad forward).
type resnetBackend struct {
	mu  sync.Mutex
	net nn.Layer
}

func newResNet(t testing.TB) *resnetBackend {
	t.Helper()
	cfg, err := models.Preset("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetInChannels(1)
	cfg.SetClasses(10)
	net, err := models.Build(cfg, tensor.NewRNG(7))
	if err != nil {
		t.Fatal(err)
	}
	nn.SetTraining(net, false)
	return &resnetBackend{net: net}
}

func (b *resnetBackend) Info() ModelInfo {
	return ModelInfo{Task: models.Classify, Classes: []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"},
		Height: 28, Width: 28, Channels: 1, Architecture: "resnet20", Preprocessing: "grey, resized to 28×28, scaled to [0,1]"}
}

func (b *resnetBackend) Preprocess(img image.Image) (*tensor.Tensor, error) {
	bd := img.Bounds()
	pix, err := transform.Resize(transform.Pixels(img, 1), bd.Dy(), bd.Dx(), 1, 28, 28)
	if err != nil {
		return nil, err
	}
	return transform.Normalisation{}.Tensor(pix, 28, 28, 1)
}

func (b *resnetBackend) Forward(_ context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.net.Forward(ag.Constant(x)).Data.Clone(), nil
}

// fakeBackend is a tiny model for fault injection: logits[i][k] =
// (k+1)·scale·Σx_i over a 2×2×1 input; it sleeps delay per batch, panics
// on an input holding 666, blocks while gate is non-nil and open, and
// records the batch sizes it saw.
type fakeBackend struct {
	task    models.Task
	classes int
	delay   time.Duration
	scale   float32
	gate    chan struct{}
	calls   atomic.Int64
	mu      sync.Mutex
	batches []int
}

func newFake() *fakeBackend { return &fakeBackend{task: models.Classify, classes: 3, scale: 1} }

func (f *fakeBackend) Info() ModelInfo {
	cl := make([]string, f.classes)
	for i := range cl {
		cl[i] = fmt.Sprintf("c%d", i)
	}
	return ModelInfo{Task: f.task, Classes: cl, Height: 2, Width: 2, Channels: 1}
}

func (f *fakeBackend) Preprocess(img image.Image) (*tensor.Tensor, error) {
	bd := img.Bounds()
	pix, err := transform.Resize(transform.Pixels(img, 1), bd.Dy(), bd.Dx(), 1, 2, 2)
	if err != nil {
		return nil, err
	}
	return transform.Normalisation{}.Tensor(pix, 2, 2, 1)
}

func (f *fakeBackend) Forward(_ context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	time.Sleep(f.delay)
	n := x.Shape[0]
	f.mu.Lock()
	f.batches = append(f.batches, n)
	f.mu.Unlock()
	per := len(x.Data) / n
	if f.task == models.Segment {
		// Per pixel: class 1 where the input is over 0.5, else class 0.
		y := tensor.New(n, 2, 2, 2)
		for i, v := range x.Data {
			if v > 0.5 {
				y.Data[2*i+1] = 1
			} else {
				y.Data[2*i] = 1
			}
		}
		return y, nil
	}
	y := tensor.New(n, f.classes)
	for i := range n {
		var s float32
		for _, v := range x.Data[i*per : (i+1)*per] {
			if v == 666 {
				panic("fake model: poisoned input")
			}
			s += v
		}
		for k := range f.classes {
			y.Data[i*f.classes+k] = float32(k+1) * f.scale * s
		}
	}
	return y, nil
}

func (f *fakeBackend) maxBatch() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := 0
	for _, b := range f.batches {
		m = max(m, b)
	}
	return m
}

// testServer is a running server on loopback.
type testServer struct {
	*Server
	url      string // http://127.0.0.1:PORT
	grpcAddr string
	logs     *syncBuffer
	cancel   context.CancelFunc
	done     chan error
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logged reports whether every one of want appears in the server's log
// within d. Some lines are written after the client has its answer: grpc-go
// sends a malformed message's status from inside RecvMsg, before the
// handler that logs the call has it back.
func (ts *testServer) logged(d time.Duration, want ...string) bool {
	deadline := time.Now().Add(d)
	for {
		logs, all := ts.logs.String(), true
		for _, w := range want {
			all = all && strings.Contains(logs, w)
		}
		if all {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// start runs a server with the given models (name → backend, version 1)
// on 127.0.0.1 and stops it when the test ends.
func start(t testing.TB, cfg Config, backends map[string]Backend) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s := newServer(t, cfg)
	for name, b := range backends {
		if err := s.Add(context.Background(), name, "1", b); err != nil {
			t.Fatal(err)
		}
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, url: "http://" + hl.Addr().String(), grpcAddr: gl.Addr().String(), logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- s.Run(ctx, hl, gl, 10*time.Second) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.done:
		case <-time.After(15 * time.Second):
			t.Error("server did not stop within 15 s")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return ts
}

// client is an HTTP client with a bound on every request.
var client = &http.Client{Timeout: 20 * time.Second}

// post sends a request and returns status, headers and body.
func post(t testing.TB, url, contentType string, body []byte, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func get(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// inferJSON builds a v2 JSON request for one input tensor.
func inferJSON(shape []int, data []float32, extra string) []byte {
	d, _ := json.Marshal(data)
	s, _ := json.Marshal(shape)
	return []byte(fmt.Sprintf(`{"id":"r1","inputs":[{"name":"input","shape":%s,"datatype":"FP32","data":%s}]%s}`, s, d, extra))
}

// decodeInfer parses a v2 JSON response.
func decodeInfer(t testing.TB, b []byte) InferenceResponse {
	t.Helper()
	var r InferenceResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("response %q: %v", b, err)
	}
	return r
}

// serving checks that the server still answers a good request.
func serving(t testing.TB, ts *testServer, model string) {
	t.Helper()
	code, _, b := post(t, ts.url+"/v2/models/"+model+"/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, ""))
	if code != http.StatusOK {
		t.Fatalf("server no longer serving: %d %s", code, b)
	}
}
