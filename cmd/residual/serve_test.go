package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/internal/kernels"
)

// lockedBuffer is a writer the server goroutine and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServe runs `residual serve` on a saved checkpoint (loopback, free
// ports), in float32 and with --precision bf16: it becomes ready,
// classifies an image, and on cancellation (what SIGTERM does) drains and
// exits 0. Usage errors, an unknown precision among them, exit 2. The bf16
// server's probabilities differ from float32's (the precision took
// effect) by less than 0.05 — a sanity bound on a 3-class ResNet-20, not a
// numeric check (internal/kernels holds the bf16 kernels to derived
// bounds).
func TestServe(t *testing.T) {
	for _, args := range [][]string{{"serve"}, {"serve", "--model", "noequals"}, {"serve", "--model", "m=x", "--precision", "fp16"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}

	ckpt := serveCheckpoint(t)
	p32 := serveClassify(t, ckpt, "fp32")
	p16 := serveClassify(t, ckpt, "bf16")
	same := true
	for label, p := range p32 {
		q, ok := p16[label]
		if !ok || math.Abs(p-q) > 0.05 {
			t.Errorf("bf16 probabilities %v, float32 %v", p16, p32)
		}
		same = same && p == q
	}
	if same {
		t.Errorf("bf16 probabilities %v equal float32's bit for bit: --precision bf16 did not take effect", p16)
	}
}

// serveClassify runs `residual serve --precision pr` on ckpt until it
// has classified a test image, stops it as SIGTERM does, checks that it
// drained and exited 0, and returns the probabilities of the three labels.
func serveClassify(t *testing.T, ckpt, pr string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errb := &lockedBuffer{}, &lockedBuffer{}
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"serve", "--model", "m=" + ckpt, "--addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--precision", pr}, out, errb)
	}()
	addr := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)`)
	var base string
	client := &http.Client{Timeout: 10 * time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready within 20 s; stdout %q, stderr %q", pr, out.String(), errb.String())
		}
		if base == "" {
			if m := addr.FindStringSubmatch(out.String()); m != nil {
				base = "http://" + m[1]
			}
			continue
		}
		if resp, err := client.Get(base + "/v2/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
	}
	// The metadata's preprocessing is an object of SERVING.md's keys,
	// the checkpoint's record (16×16 grey, mean 0.5, std 0.25).
	mresp, err := client.Get(base + "/v2/models/m")
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Residual struct {
			Info struct {
				Preprocessing map[string]any `json:"preprocessing"`
			} `json:"info"`
		} `json:"residual"`
	}
	err = json.NewDecoder(mresp.Body).Decode(&md)
	mresp.Body.Close()
	want := map[string]any{"height": 16.0, "width": 16.0, "channels": 1.0, "resize_shorter": 0.0, "pixel_range": "0-1",
		"channel_order": "grey", "mean": []any{0.5}, "std": []any{0.25}, "layout": "NHWC"}
	if err != nil || !reflect.DeepEqual(md.Residual.Info.Preprocessing, want) {
		t.Errorf("%s: metadata preprocessing %v (%v), want %v", pr, md.Residual.Info.Preprocessing, err, want)
	}
	var img bytes.Buffer
	g := image.NewGray(image.Rect(0, 0, 20, 24))
	for i := range g.Pix {
		g.Pix[i] = uint8(i * 37)
	}
	png.Encode(&img, g)
	resp, err := client.Post(base+"/v1/models/m:classify?top=3", "image/png", &img)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var r struct {
		Predictions []struct {
			Label       string
			Probability float64
		}
	}
	if err := json.Unmarshal(b, &r); resp.StatusCode != 200 || err != nil || len(r.Predictions) != 3 {
		t.Fatalf("%s: classify: %d %s", pr, resp.StatusCode, b)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("%s: exit %d after the drain, want 0; stderr %s", pr, code, errb.String())
		}
	case <-time.After(35 * time.Second):
		t.Fatalf("%s: serve did not stop within 35 s of the cancellation", pr)
	}
	if !strings.Contains(errb.String(), "msg=stopped") {
		t.Errorf("%s: no drain in the log: %s", pr, errb.String())
	}
	probs := map[string]float64{}
	for _, p := range r.Predictions {
		probs[p.Label] = p.Probability
	}
	return probs
}

// serveCheckpoint writes a 3-class ResNet-20 for 16×16 grey images.
func serveCheckpoint(t *testing.T) string {
	t.Helper()
	ckpt := filepath.Join(t.TempDir(), "m.safetensors")
	writeCheckpoint(t, ckpt, "resnet20", checkpoint.Preprocess{Height: 16, Width: 16, Channels: 1, Normalisation: transform.Normalisation{Mean: []float64{0.5}, Std: []float64{0.25}}}, []string{"a", "b", "c"})
	return ckpt
}

// TestServeStops: with --log-json every line serve writes is JSON (the
// drain names its cause, durations read "30s") and nothing goes to
// standard output; a signal while the models load is a clean stop (exit
// 0; it exited 143 with the load's "server closed"); a model that cannot
// load is logged as an error before the stop (exit 1).
func TestServeStops(t *testing.T) {
	ckpt := serveCheckpoint(t)
	args := []string{"serve", "--model", "m=" + ckpt, "--addr", "127.0.0.1:0", "--grpc-addr", ""}

	ctx, cancel := context.WithCancelCause(context.Background())
	out, errb := &lockedBuffer{}, &lockedBuffer{}
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, append(args, "--log-json"), out, errb) }()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(errb.String(), `"msg":"model ready"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 20 s: %s", errb.String())
		}
	}
	cancel(signalCause{syscall.SIGTERM})
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("--log-json: exit %d after the drain, want 0", code)
		}
	case <-time.After(35 * time.Second):
		t.Fatal("serve did not stop within 35 s of the signal")
	}
	if out.String() != "" {
		t.Errorf("--log-json wrote to standard output: %q", out.String())
	}
	drained := false
	for _, line := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("--log-json wrote a line that is not JSON: %q", line)
			continue
		}
		if rec["msg"] == "draining" {
			drained = rec["cause"] == "stopped by SIGTERM" && rec["timeout"] == "30s"
		}
	}
	if !drained {
		t.Errorf("no drain record naming the signal and a 30s timeout:\n%s", errb.String())
	}

	// Stopped before the models could load.
	ctx, cancel = context.WithCancelCause(context.Background())
	cancel(signalCause{syscall.SIGTERM})
	out, errb = &lockedBuffer{}, &lockedBuffer{}
	if code := run(ctx, args, out, errb); code != 0 {
		t.Errorf("a signal during the load: exit %d, want 0; stderr %s", code, errb.String())
	}

	// A model that cannot load: an error record before the stop, exit 1;
	// with --log-json, JSON to the last line (the CLI printed the error
	// again as text).
	missing := filepath.Join(t.TempDir(), "missing.safetensors")
	for _, json := range []bool{false, true} {
		out, errb = &lockedBuffer{}, &lockedBuffer{}
		args := []string{"serve", "--model", "m=" + missing, "--addr", "127.0.0.1:0", "--grpc-addr", ""}
		if json {
			args = append(args, "--log-json")
		}
		code := run(context.Background(), args, out, errb)
		want := `level=ERROR msg="model not loaded; stopping"`
		if json {
			want = `"level":"ERROR","msg":"model not loaded; stopping"`
		}
		if code != 1 || !strings.Contains(errb.String(), want) || !strings.Contains(errb.String(), missing) {
			t.Errorf("a missing checkpoint, --log-json %v: exit %d, stderr %s", json, code, errb.String())
		}
		if json {
			for _, line := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
				if !strings.HasPrefix(line, "{") {
					t.Errorf("--log-json wrote a line that is not JSON: %q", line)
				}
			}
		}
	}
}

// TestServeModelThreads: --model-threads caps the kernels' threads while
// the server runs (GOMAXPROCS, which the requests use, left as it was)
// and gives the cap back when it stops.
func TestServeModelThreads(t *testing.T) {
	ckpt := serveCheckpoint(t)
	procs := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithCancelCause(context.Background())
	out, errb := &lockedBuffer{}, &lockedBuffer{}
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"serve", "--model", "m=" + ckpt, "--addr", "127.0.0.1:0", "--grpc-addr", "", "--log-json", "--model-threads", "1"}, out, errb)
	}()
	stopped := false
	t.Cleanup(func() { // a failure before the stop below leaves no server and no cap behind
		if !stopped {
			cancel(signalCause{syscall.SIGTERM})
			select {
			case <-exit:
			case <-time.After(35 * time.Second):
			}
		}
		kernels.SetThreads(0)
	})
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(errb.String(), `"msg":"model ready"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 20 s: %s", errb.String())
		}
	}
	capped := kernels.SetThreads(1) // what the server set, put back as it was
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("--model-threads 1: GOMAXPROCS %d while serving, want it left at %d", got, procs)
	}
	cancel(signalCause{syscall.SIGTERM})
	select {
	case code := <-exit:
		stopped = true
		if code != 0 {
			t.Errorf("exit %d after the drain, want 0; stderr %s", code, errb.String())
		}
	case <-time.After(35 * time.Second):
		t.Fatal("serve did not stop within 35 s of the signal")
	}
	if capped != 1 {
		t.Errorf("--model-threads 1: the kernels' cap while serving was %d, want 1", capped)
	}
	if after := kernels.SetThreads(0); after != 0 {
		t.Errorf("after the server stopped the kernels' cap is %d, want 0 (none)", after)
	}
}
