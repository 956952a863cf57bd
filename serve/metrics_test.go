package serve

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/tensor"
)

// series returns the value of the counter or gauge name with labels
// model and version, and whether the registry exports it.
func series(t testing.TB, s *Server, name, model, version string) (float64, bool) {
	t.Helper()
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["model"] == model && l["version"] == version {
				if c := m.GetCounter(); c != nil {
					return c.GetValue(), true
				}
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// TestMetricsOfReAddedVersion: a version added again while its
// predecessor drains (Unload waiting for a queued request) keeps its
// series — the predecessor's Unload deleted the new model's, which then
// counted into series no longer exported — and a version whose warm-up
// fails leaves none.
func TestMetricsOfReAddedVersion(t *testing.T) {
	s := newServer(t, Config{})
	defer s.Close()
	gate := make(chan struct{})
	f1 := newFake()
	f1.gate = gate
	go func() { gate <- struct{}{} }() // the warm-up
	if err := s.Add(context.Background(), "m", "2", f1); err != nil {
		t.Fatal(err)
	}
	x := tensor.New(1, 2, 2, 1)
	go s.infer(context.Background(), "http", "m", "2", x) // queued, blocks in Forward
	for f1.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	unloaded := make(chan struct{})
	var unloadErr error
	go func() { unloadErr = s.Unload("m", "2"); close(unloaded) }()
	for s.modelsServed("m", "2") { // Unload has taken it out and drains
		time.Sleep(time.Millisecond)
	}
	if err := s.Add(context.Background(), "m", "2", newFake()); err != nil {
		t.Fatal(err)
	}
	gate <- struct{}{} // the drain ends
	<-unloaded
	if unloadErr != nil {
		t.Fatal(unloadErr)
	}
	for range 3 {
		if _, _, err := s.infer(context.Background(), "http", "m", "2", x); err != nil {
			t.Fatal(err)
		}
	}
	// 3, and the drained request when its answer is counted.
	if v, ok := series(t, s, "nv_inference_count", "m", "2"); !ok || v < 3 {
		t.Errorf("version 2, served again, counted %v (exported %v); want at least 3", v, ok)
	}
	if err := s.Add(context.Background(), "m", "9", badWarmUp{newFake()}); err == nil {
		t.Fatal("a warm-up of the wrong shape was accepted")
	}
	if _, ok := series(t, s, "nv_inference_count", "m", "9"); ok {
		t.Error("a version that failed its warm-up left its series")
	}
}

// modelsServed reports whether name/version is among the served models.
func (s *Server) modelsServed(name, version string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.models[name][version] != nil
}

// badWarmUp answers its warm-up with the wrong shape.
type badWarmUp struct{ *fakeBackend }

func (badWarmUp) Forward(context.Context, *tensor.Tensor) (*tensor.Tensor, error) {
	return tensor.New(1, 7), nil
}

// TestMultipartReadTimeout: a multipart body past the read timeout is a
// 408 as a raw one is (it was a 400 about an i/o error).
func TestMultipartReadTimeout(t *testing.T) {
	ts := start(t, Config{ReadTimeout: 400 * time.Millisecond}, map[string]Backend{"m": newFake()})
	for _, c := range []struct{ name, ct, body string }{
		{"raw", "image/png", "\x89PNG\r\n"},
		{"multipart", "multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n\x89PNG"},
	} {
		conn, err := net.Dial("tcp", ts.url[len("http://"):])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/models/m:classify HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 100000\r\n\r\n%s", c.ct, c.body)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
		} else if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("%s body past the read timeout: %d %s, want 408", c.name, resp.StatusCode, b)
		}
		conn.Close()
	}
}

// TestSegmentSlotNotHeldWhileSending: clients that ask :segment for large
// overlays and never read them do not hold the decoding slots while their
// answers wait to be sent (they held every slot until the write timeout,
// and :classify starved).
func TestSegmentSlotNotHeldWhileSending(t *testing.T) {
	f := newFake()
	f.task, f.classes = models.Segment, 2
	ts := start(t, Config{}, map[string]Backend{"unet": f, "cls": newFake()})
	img := image.NewRGBA(image.Rect(0, 0, 1536, 1536))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	body := buf.Bytes()
	slow := cap(ts.decoding)
	for range slow {
		c, err := net.Dial("tcp", ts.url[len("http://"):])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(4096)
		fmt.Fprintf(c, "POST /v1/models/unet:segment?overlay=1 HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n", len(body))
		if _, err := c.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	// Every slow request has run the model; its answer, a noisy overlay
	// of 9 MB, more than the sockets buffer, then waits on a client that
	// does not read.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if v, _ := series(t, ts.Server, "nv_inference_request_success", "unet", "1"); v >= float64(slow) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow clients' requests did not run within 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Their masks are built and encoded under a decoding slot (seconds
	// under the race detector); then the slots must come free while the
	// answers wait to be read.
	// (Well before the write timeout, 60 s, which frees them anyway.)
	free := time.Now().Add(30 * time.Second)
	for len(ts.decoding) > 0 {
		if time.Now().After(free) {
			t.Fatalf("%d decoding slots still held while %d clients do not read their :segment answers", len(ts.decoding), slow)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var small bytes.Buffer
	if err := png.Encode(&small, image.NewGray(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	if code, _, b := post(t, ts.url+"/v1/models/cls:classify", "image/png", small.Bytes(), HeaderTimeout, "10s"); code != http.StatusOK {
		t.Errorf(":classify while %d clients do not read their :segment answers: %d %s", slow, code, b)
	}
}

// TestImageRouteNonFiniteCountedOnce: a :classify request whose model
// computes a non-finite output (500) is counted once, as the model ran (a
// success, as the tensor routes count it), not also as a failure.
func TestImageRouteNonFiniteCountedOnce(t *testing.T) {
	inf := newFake()
	inf.scale = float32(math.Inf(1))
	ts := start(t, Config{}, map[string]Backend{"m": inf})
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if code, _, b := post(t, ts.url+"/v1/models/m:classify", "image/png", buf.Bytes()); code != http.StatusInternalServerError {
			t.Fatalf("request %d: %d %s; want 500", i, code, b)
		}
	}
	ok, _ := series(t, ts.Server, "nv_inference_request_success", "m", "1")
	failed, _ := series(t, ts.Server, "nv_inference_request_failure", "m", "1")
	if ok+failed != 2 {
		t.Errorf("two requests counted %v successes and %v failures", ok, failed)
	}
}

// TestQueueGaugeAfterDroppedBatch: when every request of a batch has left
// before it runs, residual_queue_images goes back to what is queued (0),
// where it kept counting them.
func TestQueueGaugeAfterDroppedBatch(t *testing.T) {
	f := newFake()
	ts := start(t, Config{MaxBatch: 1}, map[string]Backend{"m": f})
	gate := make(chan struct{})
	f.gate = gate // after the warm-up
	first := make(chan int, 1)
	go func() {
		code, _, _ := post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, ""))
		first <- code
	}()
	queued := func(want float64) bool { // polls the gauge for up to 5 s
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if v, _ := series(t, ts.Server, "residual_queue_images", "m", "1"); v == want {
				return true
			}
		}
		return false
	}
	if !queued(1) { // the first request holds the model at the gate
		t.Fatal("the first request never queued")
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.url+"/v2/models/m/infer", bytes.NewReader(inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, "")))
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { _, err := client.Do(req); second <- err }()
	if !queued(2) {
		t.Fatal("the second request never queued")
	}
	cancel() // the second client leaves while queued
	<-second
	close(gate)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	if !queued(0) {
		v, _ := series(t, ts.Server, "residual_queue_images", "m", "1")
		t.Errorf("residual_queue_images %v with nothing queued or running", v)
	}
}
