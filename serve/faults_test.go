package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"log/slog"
	"math/bits"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/serve/inferencepb"
	"github.com/residual-nn/residual/tensor"
)

// dial opens a raw TCP connection to the test server.
func dial(t testing.TB, ts *testServer) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(ts.url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c within d (reading
// whatever it sends first).
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	// io.Copy returns nil at EOF and a timeout error when the server kept
	// the connection. A server that closes a socket holding bytes it has
	// not read (a trickling client's last ones) makes the kernel send a
	// reset instead of a FIN: that is closed too.
	return err == nil || errors.Is(err, syscall.ECONNRESET)
}

// TestClientDisconnects: a client that leaves mid-request (half a body),
// one that leaves while its request is queued or running, and one that
// leaves mid-response (after the first bytes of a large answer). The
// server answers the next request each time.
func TestClientDisconnects(t *testing.T) {
	slow := newFake()
	slow.delay = 100 * time.Millisecond
	wide := newFake()
	wide.classes = 100_000 // ~2.4 MB of JSON per answer
	ts := start(t, Config{}, map[string]Backend{"m": newFake(), "slow": slow, "wide": wide})
	body := inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, "")

	c := dial(t, ts)
	fmt.Fprintf(c, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
	c.Close()
	serving(t, ts, "m")

	c = dial(t, ts)
	fmt.Fprintf(c, "POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// It leaves once its request is running (a fixed 20 ms sleep stood
	// for that: a server slower to read the request saw the first case
	// again, a client leaving mid-request, and the test passed without
	// this one).
	for deadline := time.Now().Add(10 * time.Second); slow.calls.Load() < 2; time.Sleep(time.Millisecond) { // the warm-up, then this request
		if time.Now().After(deadline) {
			t.Fatal("the request to the slow model did not reach it within 10 s")
		}
	}
	c.Close()
	serving(t, ts, "slow")

	c = dial(t, ts)
	fmt.Fprintf(c, "POST /v2/models/wide/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading the start of the answer: %v", err)
	}
	if !bytes.HasPrefix(buf, []byte("HTTP/1.1 200")) {
		t.Fatalf("answer starts %q", buf[:40])
	}
	c.Close()
	serving(t, ts, "wide")
	serving(t, ts, "m")
}

// TestSlowloris: a client that sends its header a few bytes at a time is
// cut off by ReadHeaderTimeout, and one that sends its body slowly by
// ReadTimeout, while other clients are served.
func TestSlowloris(t *testing.T) {
	ts := start(t, Config{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 400 * time.Millisecond}, map[string]Backend{"m": newFake()})
	header := dial(t, ts)
	fmt.Fprint(header, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n")
	body := dial(t, ts)
	fmt.Fprint(body, "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
	go func() { // keep trickling until the server hangs up
		for i := 0; i < 40; i++ {
			time.Sleep(50 * time.Millisecond)
			if _, err := header.Write([]byte("X")); err != nil {
				return
			}
		}
	}()
	serving(t, ts, "m")
	if !closedWithin(header, 3*time.Second) {
		t.Error("a client trickling its header was not cut off within 3 s (ReadHeaderTimeout 200 ms)")
	}
	// The body's client hears why: 408, not a 400 about an i/o error.
	body.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(body), nil)
	if err != nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a client trickling its body: %v, %v; want a 408", resp, err)
	}
	if !closedWithin(body, 3*time.Second) {
		t.Error("a client trickling its body was not cut off within 3 s (ReadTimeout 400 ms)")
	}
	serving(t, ts, "m")
}

// TestHugeBody: a request that claims 1 GB is refused from its header
// (413) after the client has sent only a few MB; a chunked body without a
// length is cut at the limit. Neither is read to the end.
func TestHugeBody(t *testing.T) {
	ts := start(t, Config{MaxBodyBytes: 1 << 20}, map[string]Backend{"m": newFake()})
	for _, chunked := range []bool{false, true} {
		c := dial(t, ts)
		hdr := "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		if chunked {
			hdr += "Transfer-Encoding: chunked\r\n\r\n"
		} else {
			hdr += "Content-Length: 1073741824\r\n\r\n"
		}
		if _, err := io.WriteString(c, hdr); err != nil {
			t.Fatal(err)
		}
		sent := make(chan int64, 1)
		go func() {
			// Up to 4 MB, stopping when the server stops reading.
			chunk := bytes.Repeat([]byte("1,"), 32<<10)
			var n int64
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			for n < 4<<20 {
				var err error
				if chunked {
					_, err = fmt.Fprintf(c, "%x\r\n%s\r\n", len(chunk), chunk)
				} else {
					_, err = c.Write(chunk)
				}
				if err != nil {
					break
				}
				n += int64(len(chunk))
			}
			sent <- n
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("chunked=%v: %v", chunked, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "limit") {
			t.Errorf("chunked=%v: %d %s, want 413", chunked, resp.StatusCode, b)
		}
		c.Close()
		if n := <-sent; n > 4<<20 {
			t.Errorf("client sent %d bytes", n)
		}
	}
	serving(t, ts, "m")
}

// TestImagePanicFreesDecodeSlot: a panic while an image request holds a
// decoding slot (here in a decoder the program registered, on the image's
// header) is answered 500 and gives the slot back: the slot was kept for
// ever, and once every slot was kept each image request waited out its
// deadline (504).
func TestImagePanicFreesDecodeSlot(t *testing.T) {
	panicking := func(io.Reader) (image.Config, error) { panic("decoder bug") }
	image.RegisterFormat("rspanic", "RSPANIC!", func(io.Reader) (image.Image, error) { panic("decoder bug") }, panicking)
	ts := start(t, Config{Timeout: 2 * time.Second}, map[string]Backend{"m": newFake()})
	for i := range cap(ts.decoding) + 1 {
		code, _, b := post(t, ts.url+"/v1/models/m:classify", "application/octet-stream", []byte("RSPANIC! a header its decoder panics on"))
		if code != http.StatusInternalServerError || !strings.Contains(string(b), "panicked") {
			t.Fatalf("request %d with a panicking decoder: %d %s", i+1, code, b)
		}
	}
	code, _, b := post(t, ts.url+"/v1/models/m:classify", "image/png", pngBytes(t, image.NewGray(image.Rect(0, 0, 2, 2))))
	if code != http.StatusOK {
		t.Errorf("an image after %d decoder panics (the server's %d decoding slots): %d %s", cap(ts.decoding)+1, cap(ts.decoding), code, b)
	}
}

// TestDecompressionBomb: a 25 KB PNG that would decode to 5000×5000
// pixels is refused from its header (413), before decoding, under the
// server's pixel limit.
func TestDecompressionBomb(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	bomb := pngBytes(t, image.NewGray(image.Rect(0, 0, 5000, 5000)))
	if len(bomb) > 100<<10 {
		t.Fatalf("bomb is %d bytes; expected a compressed few tens of KB", len(bomb))
	}
	code, _, b := post(t, ts.url+"/v1/models/m:classify", "image/png", bomb)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "before decoding") {
		t.Errorf("bomb: %d %s", code, b)
	}
	// Over limits.ImageSide, from a header alone (the IDAT is never read).
	code, _, b = post(t, ts.url+"/v1/models/m:classify", "image/png", pngHeader(100_000, 1))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "limits.ImageSide") {
		t.Errorf("huge side: %d %s", code, b)
	}
	serving(t, ts, "m")
}

// pngHeader returns a PNG signature and IHDR chunk for a w×h grey image.
func pngHeader(w, h uint32) []byte {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1)))
	full := buf.Bytes()
	// Patch width and height in IHDR (bytes 16..23); the CRC no longer
	// matches, which DecodeConfig checks, so recompute it.
	b := append([]byte(nil), full[:33]...)
	putU32 := func(off int, v uint32) {
		b[off], b[off+1], b[off+2], b[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	putU32(16, w)
	putU32(20, h)
	putU32(29, crc32.ChecksumIEEE(b[12:29]))
	return b
}

// TestManyIdleConnections holds thousands of idle connections open and
// checks that a request is still answered promptly. The count is 10,000
// where the descriptor limit allows (client and server ends both count in
// this process), else what fits.
func TestManyIdleConnections(t *testing.T) {
	limit, err := descriptorLimit()
	if err != nil {
		t.Skip("cannot read the descriptor limit:", err)
	}
	n := min(10_000, (limit-500)/2)
	if n < 100 {
		t.Skipf("descriptor limit %d leaves room for only %d connections", limit, n)
	}
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	addr := strings.TrimPrefix(ts.url, "http://")
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	t0 := time.Now()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	opened := time.Since(t0)
	t1 := time.Now()
	serving(t, ts, "m")
	if d := time.Since(t1); d > 2*time.Second {
		t.Errorf("with %d idle connections a request took %v", n, d)
	}
	t.Logf("%d idle connections (descriptor limit %d) opened in %v; request answered in %v", n, limit, opened, time.Since(t1))
}

// TestRepositoryReload serves a repository model, replaces its file while
// requests run, and checks that the new weights are picked up without a
// failed request; a corrupt replacement leaves the old model serving; a
// removed file unloads the model.
func TestRepositoryReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m", "1", "model.safetensors")
	write := func(scale float32) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := safetensors.Write(path, map[string]*tensor.Tensor{"scale": tensor.Full(scale, 1)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	open := func(p string) (Backend, error) {
		f, err := safetensors.Read(p)
		if err != nil {
			return nil, err
		}
		s := f.Tensors["scale"]
		if s == nil {
			return nil, fmt.Errorf("%s: no tensor scale", p)
		}
		b := newFake()
		b.scale = s.Data[0]
		return b, nil
	}
	write(1)
	ts := start(t, Config{Repository: dir, PollInterval: 20 * time.Millisecond, Open: open}, nil)
	if err := ts.ScanRepository(context.Background()); err != nil {
		t.Fatal(err)
	}
	logit := func() (int, float32) {
		code, _, b := post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 1, 1, 1}, ""))
		if code != 200 {
			return code, 0
		}
		return code, decodeInfer(t, b).Outputs[0].Data[0]
	}
	if code, v := logit(); code != 200 || v != 4 {
		t.Fatalf("first model: %d %v", code, v)
	}
	// Requests keep running while the file is replaced.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	failures := make(chan string, 1000)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if code, v := logit(); code != 200 || (v != 4 && v != 8) {
				failures <- fmt.Sprintf("%d %v", code, v)
			}
		}
	}()
	time.Sleep(10 * time.Millisecond) // let the mtime differ on coarse clocks
	write(2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, v := logit(); v == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replaced model not picked up within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("request during the replacement failed: %s", f)
	}

	// A corrupt file: logged, the previous model keeps serving.
	if err := os.WriteFile(path, []byte("not a safetensors file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(ts.logs.String(), "repository model not loaded") {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("corrupt model file not reported within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, v := logit(); code != 200 || v != 8 {
		t.Errorf("after a corrupt replacement: %d %v, want the previous model's 8", code, v)
	}

	// Removed: unloaded.
	os.RemoveAll(filepath.Join(dir, "m"))
	for {
		if code, _ := logit(); code == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("removed model still served after 15 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRepositoryVersionFolders: as in Triton's model repositories, only
// folders named by a positive integer without leading zeros are versions;
// any other folder (a version "notanumber", "01", "0", "v2", a model name
// the server refuses, a version whose model.safetensors is a folder or a
// link loop) is not loaded, and a warning naming it is logged
// once, on the scan that first finds it, and again if it comes back after
// being removed.
func TestRepositoryVersionFolders(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var opened []string
	open := func(p string) (Backend, error) {
		mu.Lock()
		defer mu.Unlock()
		opened = append(opened, p)
		return newFake(), nil
	}
	write := func(parts ...string) string {
		folder := filepath.Join(append([]string{dir}, parts...)...)
		if err := os.MkdirAll(folder, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(folder, "model.safetensors"), []byte("weights"), 0o644); err != nil {
			t.Fatal(err)
		}
		return folder
	}
	write("m", "1")
	write("m", "10")
	ignored := []string{write("m", "notanumber"), write("m", "01"), write("m", "0"), write("m", "v2"), write("m", "-3"), filepath.Dir(write("bad+name", "1"))}
	// Versions whose model.safetensors is a folder or a link to itself
	// (they were skipped without a word); one with no file yet is skipped
	// silently (it is being filled).
	for v, mk := range map[string]func(p string) error{
		"2": func(p string) error { return os.Mkdir(p, 0o755) },
		"3": func(p string) error { return os.Symlink(p, p) },
		"4": func(p string) error { return nil },
	} {
		folder := filepath.Join(dir, "m", v)
		if err := errors.Join(os.MkdirAll(folder, 0o755), mk(filepath.Join(folder, "model.safetensors"))); err != nil {
			t.Fatal(err)
		}
		if v != "4" {
			ignored = append(ignored, folder)
		}
	}
	write(".git", "1")                                                                  // hidden folders: skipped without a word
	write("m", ".cache")                                                                // (the count of warnings below checks it)
	if err := os.WriteFile(filepath.Join(dir, "m", "README"), nil, 0o644); err != nil { // a file beside the versions: not a folder, not logged
		t.Fatal(err)
	}
	ts := start(t, Config{Repository: dir, PollInterval: time.Hour, Open: open}, nil)
	for range 3 {
		if err := ts.ScanRepository(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	code, b := get(t, ts.url+"/v2/models/m")
	var md modelMetadata
	if err := json.Unmarshal(b, &md); code != 200 || err != nil || fmt.Sprint(md.Versions) != "[1 10]" || md.Residual.Version != "10" {
		t.Fatalf("metadata: %d %s; want versions [1 10], newest 10", code, b)
	}
	mu.Lock()
	if len(opened) != 2 {
		t.Errorf("opened %q; want m/1 and m/10 only", opened)
	}
	mu.Unlock()
	for _, path := range []string{"m/versions/notanumber", "m/versions/01", "m/versions/v2", "bad+name"} {
		code, _, b := post(t, ts.url+"/v2/models/"+path+"/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, ""))
		if code != http.StatusNotFound {
			t.Errorf("%s: %d %s; want 404", path, code, b)
		}
	}
	warned := func(folder string) int {
		n := 0
		for _, line := range strings.Split(ts.logs.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "repository folder ignored") && strings.HasSuffix(line, " folder="+folder) {
				n++
			}
		}
		return n
	}
	for _, f := range ignored {
		if n := warned(f); n != 1 {
			t.Errorf("folder %s: warned %d times over three scans; want once", f, n)
		}
	}
	if n := strings.Count(ts.logs.String(), "repository folder ignored"); n != len(ignored) {
		t.Errorf("%d folders warned about; want %d:\n%s", n, len(ignored), ts.logs.String())
	}
	// Removed and made again: warned again, once.
	if err := os.RemoveAll(ignored[0]); err != nil {
		t.Fatal(err)
	}
	ts.ScanRepository(context.Background())
	write("m", "notanumber")
	ts.ScanRepository(context.Background())
	ts.ScanRepository(context.Background())
	if n := warned(ignored[0]); n != 2 {
		t.Errorf("folder %s removed and made again: warned %d times in all; want 2", ignored[0], n)
	}
	serving(t, ts, "m")
}

// TestDrainUnderLoad: REST and gRPC requests in flight when the server is
// told to stop (what SIGTERM does in residual serve) are all answered, Run
// returns nil, and new connections are refused afterwards.
func TestDrainUnderLoad(t *testing.T) {
	f := newFake()
	f.delay = 40 * time.Millisecond
	ts := start(t, Config{MaxBatch: 4, MaxDelay: 5 * time.Millisecond}, map[string]Backend{"m": f})
	const n = 24
	codes := make(chan int, n)
	var sent sync.WaitGroup
	for i := range n {
		sent.Add(1)
		go func() {
			body := inferJSON([]int{1, 2, 2, 1}, []float32{float32(i), 0, 0, 0}, "")
			req, _ := http.NewRequest(http.MethodPost, ts.url+"/v2/models/m/infer", bytes.NewReader(body))
			sent.Done()
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				codes <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	sent.Wait()
	// And four over gRPC.
	const g = 4
	gc := grpcClient(t, ts)
	gerrs := make(chan error, g)
	for range g {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := gc.ModelInfer(ctx, &inferencepb.ModelInferRequest{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
				{Name: "input", Datatype: "FP32", Shape: []int64{1, 2, 2, 1}, Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}}}})
			gerrs <- err
		}()
	}
	// Wait until the server holds every request (answered, or queued or
	// running), then stop it. The answered are counted first: a request
	// leaves the queue's count before its answer is counted, so it is
	// never counted twice. (The model's finished batches, counted with the
	// queue, held a batch's requests twice between the end of its Forward
	// and its answers: the drain could start while a request was still
	// on its way, and the closed listener refused it.)
	bt := ts.models["m"]["1"].bt
	accepted := func() int {
		answered, _ := series(t, ts.Server, "nv_inference_request_success", "m", "1")
		return int(answered) + int(bt.queued.Load())
	}
	for deadline := time.Now().Add(20 * time.Second); accepted() < n+g; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d of the %d requests after 20 s", accepted(), n+g)
		}
	}
	ts.cancel() // the drain starts with requests queued and running
	for range n {
		if c := <-codes; c != 200 {
			t.Errorf("an accepted request got %d during the drain", c)
		}
	}
	for range g {
		if err := <-gerrs; err != nil {
			t.Errorf("an accepted gRPC request failed during the drain: %v", err)
		}
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Run after the drain: %v", err)
		}
		ts.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(ts.url, "http://"), time.Second); err == nil {
		t.Error("server still accepts connections after the drain")
	}
}

// TestDrainIdleConnections: a connection that has sent no request (a
// browser's spare one) or an idle keep-alive one does not hold the drain:
// Run returns nil soon after it starts, where it waited the whole drain
// and reported requests cut off (http.Server.Shutdown waits up to 5 s on
// a connection that has sent nothing).
func TestDrainIdleConnections(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	addr := strings.TrimPrefix(ts.url, "http://")
	idle, err := net.Dial("tcp", addr) // connected, nothing sent
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	code, _, _ := post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, ""))
	if code != 200 { // and a keep-alive connection left idle in the client's pool
		t.Fatalf("infer: %d", code)
	}
	began := time.Now()
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Run after a drain with idle connections: %v", err)
		}
		if d := time.Since(began); d > 3*time.Second {
			t.Errorf("the drain took %v with no request in flight (drainQuiet %v)", d, drainQuiet)
		}
		ts.done <- err // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop")
	}
}

// TestRunStops: Run with a nil context is an error (it panicked after it
// had started serving, which then nothing could stop), and Close ends a
// Run in progress, which drains and returns nil (it served on).
func TestRunStops(t *testing.T) {
	s := newServer(t, quietConfig(Config{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var none context.Context
	if err := s.Run(none, ln, nil, time.Second); err == nil || !strings.Contains(err.Error(), "nil context") {
		t.Errorf("Run(nil context): %v", err)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after Run(nil context)")
	}
	if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), ln, nil, time.Second) }()
	for { // serving
		resp, err := client.Get("http://" + ln.Addr().String() + "/v2/health/live")
		if err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after Close")
	}
}

// badShape is a model that answers the wrong number of rows.
type badShape struct{ *fakeBackend }

func (b badShape) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	if x.Data[0] == 7 {
		return tensor.New(x.Shape[0]+1, 3), nil
	}
	if x.Data[0] == 8 {
		return &tensor.Tensor{Shape: []int{x.Shape[0], 3}, Data: make([]float32, 1)}, nil
	}
	if x.Data[0] == 9 { // a negative dimension
		return &tensor.Tensor{Shape: []int{x.Shape[0], -3}, Data: make([]float32, 3)}, nil
	}
	if x.Data[0] == 10 { // (2^62+1)·4 wraps to 4 (on 32 bits, (2^30+1)·4), as many values as it holds
		return &tensor.Tensor{Shape: []int{x.Shape[0], 1<<(bits.UintSize-2) + 1, 4}, Data: make([]float32, 4)}, nil
	}
	return b.fakeBackend.Forward(ctx, x)
}

// TestMalformedModelOutput: a model answering the wrong shape, or a shape
// its data does not fill (a negative or overflowing one among them, which
// panicked outside the model's recovery and ended the process), gets 500
// naming it, and the server serves on.
func TestMalformedModelOutput(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": badShape{newFake()}})
	for _, v := range []float32{7, 8, 9, 10} {
		code, _, b := post(t, ts.url+"/v2/models/m/infer", "application/json", inferJSON([]int{1, 2, 2, 1}, []float32{v, 0, 0, 0}, ""))
		if code != 500 || !strings.Contains(string(b), "model returned shape") {
			t.Errorf("input %v: %d %s", v, code, b)
		}
	}
	serving(t, ts, "m")
}

// TestDrainCutOff: a request still running when the drain runs out is cut
// off, and Run says so (it returned a bare "context deadline exceeded").
func TestDrainCutOff(t *testing.T) {
	f := newFake()
	s := newServer(t, quietConfig(Config{}))
	if err := s.Add(context.Background(), "m", "1", f); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	f.gate = gate // from now on a batch waits for the gate
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln, nil, 100*time.Millisecond) }()
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		resp, err := client.Post("http://"+ln.Addr().String()+"/v2/models/m/infer", "application/json", bytes.NewReader(inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, "")))
		if err == nil {
			resp.Body.Close()
		}
	}()
	for f.calls.Load() < 2 { // the warm-up, then the request's batch
		time.Sleep(time.Millisecond)
	}
	cancel()
	// The batch ends after the drain ran out (Close then waits for it):
	// the gate opens once the drain has cut the request's connection off,
	// which ends the client's call. (It opened 500 ms after the cancel,
	// which a loaded machine could reach before the drain's 100 ms had
	// run out: the request was then answered and Run returned nil.) A
	// drain that never cuts it off has 10 s before the gate opens anyway.
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
	}
	close(gate)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "still in flight after 100ms were cut off") || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run after a drain that ran out: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

// TestAmplifiedRequests: requests within the body limit whose decoding
// would take a hundred times their size — a JSON request of 8 MB of empty
// inputs, outputs, shape dimensions or parameter values, a gRPC request of
// a million empty input tensors — are refused (400 naming the bound;
// gRPC's RESOURCE_EXHAUSTED naming it, where it was grpc-go's INTERNAL) while the
// process (client and server: runtime.MemStats.TotalAlloc) allocates at
// most 8 times the body: the body read once, and the JSON decoder's copy
// of it in a buffer grown by doubling (up to 4 times the body in all);
// 5–6.5 times measured. The gRPC messages are decoded by neither side:
// a million empty input tensors, and one tensor whose contents come in
// 20,000 packed chunks (protobuf-go reallocates the list at each).
// Decoded, {"inputs":[{},{},…]} took about 150 bytes for each 3 (1.5 GB
// for 10 MB). The server answers the next request.
func TestAmplifiedRequests(t *testing.T) {
	ts := start(t, Config{}, map[string]Backend{"m": newFake()})
	const size = 8 << 20
	for _, c := range []struct{ name, pre, elem, post, want string }{
		{"empty inputs", `{"inputs":[`, `{},`, `{}]}`, "more than 64"},
		{"empty outputs", `{"inputs":[{"name":"input","shape":[1,2,2,1],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[`, `{},`, `{}]}`, "more than 64"},
		{"a long shape", `{"inputs":[{"name":"input","datatype":"FP32","shape":[`, `1,`, `1]}]}`, "more than 64"},
		{"nested parameters", `{"parameters":{"p":[`, `[],`, `[]]},"inputs":[]}`, "more than 256"},
		{"input parameters", `{"inputs":[{"name":"input","parameters":{"p":[`, `{},`, `{}]}}]}`, "more than 256"},
		{"parameters given again and again", `{"inputs":[],`, `"parameters":{"a":1,"b":2},`, `"parameters":{}}`, "given twice"},
	} {
		body := []byte(c.pre + strings.Repeat(c.elem, size/len(c.elem)) + c.post)
		var code int
		var b []byte
		a := allocatedBy(func() { code, _, b = post(t, ts.url+"/v2/models/m/infer", "application/json", body) })
		if code != http.StatusBadRequest || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %.200s; want 400 naming %q", c.name, code, b, c.want)
		}
		if a > 8*size {
			t.Errorf("%s: %d MB allocated for a %d MB body", c.name, a>>20, size>>20)
		}
	}
	serving(t, ts, "m")

	conn, err := grpc.NewClient(ts.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var msg []byte // ModelInferRequest: model_name (1), then a million empty inputs (5)
	msg = protowire.AppendBytes(protowire.AppendTag(msg, 1, protowire.BytesType), []byte("m"))
	for range 1 << 20 {
		msg = protowire.AppendBytes(protowire.AppendTag(msg, 5, protowire.BytesType), nil)
	}
	var out []byte
	a := allocatedBy(func() {
		err = conn.Invoke(ctx, "/inference.GRPCInferenceService/ModelInfer", msg, &out, grpc.ForceCodec(rawCodec{}))
	})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "would take") {
		t.Errorf("a million empty input tensors: %v; want RESOURCE_EXHAUSTED naming the decoded size", err)
	}
	if a > 8*int64(len(msg)) {
		t.Errorf("a million empty input tensors: %d MB allocated for a %d MB message", a>>20, len(msg)>>20)
	}
	// One input tensor whose fp32_contents come in 20,000 packed chunks of
	// one float (120 kB): protobuf-go reallocates the list at each chunk,
	// 857 MB in all.
	var contents []byte
	for range 20000 {
		contents = protowire.AppendBytes(protowire.AppendTag(contents, 6, protowire.BytesType), []byte{0, 0, 128, 63}) // fp32_contents: 1
	}
	in := protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), contents) // InferInputTensor.contents
	msg = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("m"))
	msg = protowire.AppendBytes(protowire.AppendTag(msg, 5, protowire.BytesType), in)
	a = allocatedBy(func() {
		err = conn.Invoke(ctx, "/inference.GRPCInferenceService/ModelInfer", msg, &out, grpc.ForceCodec(rawCodec{}))
	})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "would take") {
		t.Errorf("20,000 chunks of one float: %v; want RESOURCE_EXHAUSTED naming the decoded size", err)
	}
	if a > 8*int64(len(msg))+1<<20 {
		t.Errorf("20,000 chunks of one float: %d MB allocated for a %d kB message", a>>20, len(msg)>>10)
	}
	if _, err := grpcClient(t, ts).ServerLive(ctx, &inferencepb.ServerLiveRequest{}); err != nil {
		t.Error(err)
	}
}

// allocatedBy is the bytes this process allocates while f runs.
func allocatedBy(f func()) int64 {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return int64(m1.TotalAlloc - m0.TotalAlloc)
}

// TestRepositoryStartedEmpty: in a repository that held nothing at the
// first scan, a file that appears waits one scan to settle like any other
// (it was read on the scan that first saw it, half written); and a model
// folder that is a symbolic link to a folder elsewhere (a mounted model)
// is served (it was skipped without a word).
func TestRepositoryStartedEmpty(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	var mu sync.Mutex
	var opened []string
	open := func(p string) (Backend, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		opened = append(opened, fmt.Sprintf("%s (%d bytes)", p, len(b)))
		mu.Unlock()
		return newFake(), nil
	}
	opens := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(opened) }
	s := newServer(t, Config{Repository: dir, PollInterval: time.Hour, Open: open})
	if err := s.ScanRepository(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "m", "1", "model.safetensors")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("half"), 0o644); err != nil { // its writer is not done
		t.Fatal(err)
	}
	if err := s.ScanRepository(context.Background()); err != nil {
		t.Fatal(err)
	}
	if o := opens(); len(o) != 0 {
		t.Errorf("a file new to an empty repository was opened on the scan that first saw it: %v", o)
	}
	if err := os.WriteFile(path, []byte("whole file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // changed: waits one more scan, then is read
		if err := s.ScanRepository(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if o := opens(); len(o) != 1 || !strings.Contains(o[0], "(10 bytes)") {
		t.Errorf("opened %v; want the whole file once", o)
	}

	if err := os.MkdirAll(filepath.Join(elsewhere, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(elsewhere, "1", "model.safetensors"), []byte("mounted"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.ScanRepository(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if !s.modelsServed("linked", "1") {
		t.Errorf("a model folder linked to %s is not served; opened %v", elsewhere, opens())
	}
}

// heldBackend is a fake model whose Forward, on an input whose first value
// is 5, closes entered and waits for release.
type heldBackend struct {
	*fakeBackend
	entered, release chan struct{}
}

func (h heldBackend) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	if x.Data[0] == 5 {
		close(h.entered)
		<-h.release
	}
	return h.fakeBackend.Forward(ctx, x)
}

// TestRunStopsRepositoryScan: a repository scan in progress when Run's
// drain starts loads no further model (it went on loading every model of
// the repository into the draining server, while a request held the drain
// open), whether Run's own polling started it or a caller (residual
// serve's first scan); Run's polling gives up the model it was loading
// (a caller's scan, under its own ctx, serves it), and Run returns only
// once that model is done with (it returned with the scan still inside
// Config.Open).
func TestRunStopsRepositoryScan(t *testing.T) {
	for _, tc := range []struct {
		name   string
		held   bool // a request in flight holds the drain open
		caller bool // the scan is the caller's ScanRepository, not Run's polling
	}{
		{"polling", false, false},
		{"polling_request_in_flight", true, false},
		{"caller_request_in_flight", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range []string{"a", "b"} { // scanned in this order
				repositoryModel(t, dir, name)
			}
			opening, releaseOpen := make(chan struct{}), make(chan struct{})
			var mu sync.Mutex
			var opened []string
			var inOpen atomic.Int32
			open := func(path string) (Backend, error) {
				inOpen.Add(1)
				defer inOpen.Add(-1)
				name := filepath.Base(filepath.Dir(filepath.Dir(path)))
				mu.Lock()
				opened = append(opened, name)
				mu.Unlock()
				if name == "a" {
					close(opening)
					<-releaseOpen
				}
				return newFake(), nil
			}
			logs := &syncBuffer{}
			poll := 10 * time.Millisecond
			if tc.caller {
				poll = time.Hour
			}
			s := newServer(t, Config{Repository: dir, PollInterval: poll, Open: open, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			h := heldBackend{newFake(), make(chan struct{}), make(chan struct{})}
			if err := s.Add(context.Background(), "held", "1", h); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx, ln, nil, 10*time.Second) }()
			scanned := make(chan error, 1)
			if tc.caller {
				go func() { scanned <- s.ScanRepository(context.Background()) }()
			}
			waitFor := func(c <-chan struct{}, what string) {
				t.Helper()
				select {
				case <-c:
				case <-time.After(10 * time.Second):
					t.Fatalf("%s within 10 s", what)
				}
			}
			waitFor(opening, "the repository's first scan did not open model a")
			answered := make(chan int, 1)
			if tc.held {
				go func() {
					resp, err := client.Post("http://"+ln.Addr().String()+"/v2/models/held/infer", "application/json",
						bytes.NewReader(inferJSON([]int{1, 2, 2, 1}, []float32{5, 0, 0, 0}, "")))
					if err != nil {
						answered <- 0
						return
					}
					resp.Body.Close()
					answered <- resp.StatusCode
				}()
				waitFor(h.entered, "the held request did not reach the model")
			}
			cancel()
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "draining"); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("Run did not start draining within 10 s")
				}
			}
			if tc.held {
				close(releaseOpen)
				if tc.caller {
					// Model a, whose load had begun under the caller's
					// ctx, is served by the draining server; b's load
					// would follow at once.
					for deadline := time.Now().Add(10 * time.Second); !s.modelsServed("a", "1"); time.Sleep(time.Millisecond) {
						if time.Now().After(deadline) {
							t.Fatal("model a was not served within 10 s of its Open returning")
						}
					}
					if err := <-scanned; err != nil {
						t.Errorf("ScanRepository during the drain: %v", err)
					}
				} else {
					// Run's polling scan, whose ctx the drain ended, gives
					// model a up once its Open returns; b's load would
					// follow at once.
					time.Sleep(200 * time.Millisecond)
					if s.modelsServed("a", "1") {
						t.Error("the polling scan served model a in the draining server")
					}
				}
				close(h.release)
				if code := <-answered; code != 200 {
					t.Errorf("the request in flight during the drain got %d", code)
				}
			} else {
				time.AfterFunc(300*time.Millisecond, func() { close(releaseOpen) })
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10 s")
			}
			if n := inOpen.Load(); n != 0 && !tc.caller {
				t.Errorf("Run returned with its repository scan still in Config.Open")
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(opened, []string{"a"}) {
				t.Errorf("models opened: %v; want a alone (the scan's load when the drain began)", opened)
			}
			if s.modelsServed("a", "1") {
				t.Error("model a is still served after Run returned")
			}
		})
	}
}

// repositoryModel writes version 1 of model name into the repository dir
// (a file the tests' Openers do not read) and returns its path.
func repositoryModel(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name, "1", "model.safetensors")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("model"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunOutlastedByOpen: an Opener takes no context, and one that does
// not return holds a repository scan; Run, its ctx cancelled, returns
// once the drain's time is up, with an error naming the file the scan was
// loading (it waited for the scan for ever). The model, opened at last,
// is refused by the closed server.
func TestRunOutlastedByOpen(t *testing.T) {
	dir := t.TempDir()
	path := repositoryModel(t, dir, "m")
	opening, release := make(chan struct{}), make(chan struct{})
	opened := make(chan struct{})
	open := func(string) (Backend, error) {
		defer close(opened)
		close(opening)
		<-release
		return newFake(), nil
	}
	s := newServer(t, quietConfig(Config{Repository: dir, PollInterval: 10 * time.Millisecond, Open: open}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	// No listener: the repository's watch alone.
	go func() { done <- s.Run(ctx, nil, nil, 200*time.Millisecond) }()
	// The Opener returns at last, and its scan ends: the model is not
	// served. The scan holds repoMu until its Load is done with the model
	// (opened only says that Config.Open has returned, before Load goes
	// on). Nothing to wait for if the scan never opened it.
	defer func() {
		close(release)
		select {
		case <-opening:
		default:
			return
		}
		<-opened
		s.repoMu.Lock()
		served := s.modelsServed("m", "1")
		s.repoMu.Unlock()
		if served {
			t.Error("the model opened after Run returned is served")
		}
	}()
	select {
	case <-opening:
	case <-time.After(10 * time.Second):
		t.Fatal("the repository scan did not open the model within 10 s")
	}
	cancel()
	select {
	case err := <-done:
		want := "a repository scan was still opening " + path + " (Config.Open) or warming it up after 200ms"
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run: %v; want an error saying %q", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its ctx ending, a drain of 200 ms, while Config.Open held its scan")
	}
}

// TestRunLeavesNoGoroutines: once Run has returned, no goroutine of the
// server is left (the HTTP and gRPC servers', the repository's watch, the
// models' batching instances), after requests over both protocols and a
// repository model loaded by the watch.
func TestRunLeavesNoGoroutines(t *testing.T) {
	dir := t.TempDir()
	repositoryModel(t, dir, "r")
	before := runtime.NumGoroutine()
	ts := start(t, Config{Repository: dir, PollInterval: 5 * time.Millisecond, Instances: 2,
		Open: func(string) (Backend, error) { return newFake(), nil }}, map[string]Backend{"m": newFake()})
	tr := &http.Transport{}
	hc := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	for deadline := time.Now().Add(10 * time.Second); !ts.modelsServed("r", "1"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the repository's model was not served within 10 s")
		}
	}
	for _, model := range []string{"m", "r"} {
		resp, err := hc.Post(ts.url+"/v2/models/"+model+"/infer", "application/json",
			bytes.NewReader(inferJSON([]int{1, 2, 2, 1}, []float32{1, 2, 3, 4}, "")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("model %s: %d", model, resp.StatusCode)
		}
	}
	conn, err := grpc.NewClient(ts.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inferencepb.NewGRPCInferenceServiceClient(conn).ServerLive(context.Background(), &inferencepb.ServerLiveRequest{}); err != nil {
		t.Fatal(err)
	}
	ts.cancel()
	select {
	case err := <-ts.done:
		ts.done <- err // for start's cleanup
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15 s")
	}
	conn.Close() // the clients' own goroutines
	tr.CloseIdleConnections()
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before the server, %d 5 s after Run returned:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
	}
}
