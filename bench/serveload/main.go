// Command serveload is the load generator of docs/SERVING.md: it sends
// Open Inference Protocol requests (or images to the :classify route) to a
// server on this machine with github.com/tsenart/vegeta, either at a
// constant arrival rate (open loop, which avoids coordinated omission) or
// from a fixed number of clients (closed loop), and prints throughput,
// latency percentiles, status codes and, for residual serve, the mean
// batch size from its /metrics. It only talks to loopback addresses, and
// every run is bounded in time and in requests.
//
//	go run ./bench/serveload --url http://127.0.0.1:8080 --model resnet50 --rates 20,40,80 --duration 20s
//	go run ./bench/serveload --url http://127.0.0.1:8080 --model resnet50 --concurrency 1,8,64 --duration 20s
//
// With --shape N,H,W,C it needs no metadata route (for the ONNX Runtime
// anchor, bench/ort_serve.js).
//
// --warmup D sends each run's load for D, unmeasured, before the run: the
// load generator itself takes CPU as it starts (on the 2-core VM measured,
// enough to slow the server's first passes twofold for half a second), and
// a measured window that opens with it charges that to the server. The
// warm-up runs in the same process and pacing as the run, on connections of
// its own.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "serveload:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("serveload", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "server base URL (loopback only)")
	model := fs.String("model", "", "model name")
	shapeFlag := fs.String("shape", "", "input shape N,H,W,C (default: from the server's metadata, N=1)")
	image := fs.String("image", "", "send this image file to /v1/models/MODEL:classify instead of a v2 tensor")
	binaryData := fs.Bool("binary", true, "send the v2 tensor with Triton's binary extension (else JSON)")
	rates := fs.String("rates", "", "comma-separated arrival rates (requests/s), one run each")
	conc := fs.String("concurrency", "", "comma-separated client counts (closed loop), one run each")
	duration := fs.Duration("duration", 10*time.Second, "length of each run")
	warmup := fs.Duration("warmup", 0, "send each run's load this long, unmeasured, before the run")
	maxReq := fs.Int("max-requests", 100_000, "stop a run after this many requests")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout")
	asJSON := fs.Bool("json", false, "print one JSON line per run")
	dump := fs.String("dump-body", "", "write the request body to this file and exit (for hey: hey -D FILE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" || *dump == "" && (*rates == "") == (*conc == "") {
		return errors.New("usage: serveload --model NAME (--rates R1,R2,... | --concurrency C1,C2,...) [--url http://127.0.0.1:PORT]")
	}
	u, err := url.Parse(*base)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s is not a loopback address; serveload only loads this machine", u.Host)
	}
	tgt, err := target(*base, *model, *shapeFlag, *image, *binaryData)
	if err != nil {
		return err
	}
	if *dump != "" {
		for k, v := range tgt.Header {
			fmt.Fprintf(out, "header %s: %s\n", k, v[0])
		}
		return os.WriteFile(*dump, tgt.Body, 0o644)
	}
	type run struct {
		label string
		pacer vegeta.Pacer
		opts  []func(*vegeta.Attacker)
	}
	var runs []run
	common := []func(*vegeta.Attacker){vegeta.Timeout(*timeout), vegeta.KeepAlive(true), vegeta.MaxBody(1 << 20)}
	for _, s := range splitList(*rates) {
		r, err := strconv.Atoi(s)
		if err != nil || r <= 0 {
			return fmt.Errorf("--rates: %q is not a positive integer", s)
		}
		runs = append(runs, run{fmt.Sprintf("rate=%d/s", r), vegeta.Rate{Freq: r, Per: time.Second}, common})
	}
	for _, s := range splitList(*conc) {
		c, err := strconv.Atoi(s)
		if err != nil || c <= 0 {
			return fmt.Errorf("--concurrency: %q is not a positive integer", s)
		}
		// Rate 0 with c workers: each sends its next request when its last
		// is answered.
		opts := append([]func(*vegeta.Attacker){vegeta.Workers(uint64(c)), vegeta.MaxWorkers(uint64(c)), vegeta.Connections(c)}, common...)
		runs = append(runs, run{fmt.Sprintf("concurrency=%d", c), vegeta.Rate{}, opts})
	}
	// targeter hands out at most maxReq requests, then ends the attack.
	targeter := func() vegeta.Targeter {
		var sent atomic.Int64
		return func(t *vegeta.Target) error {
			if sent.Add(1) > int64(*maxReq) {
				return vegeta.ErrNoTargets
			}
			*t = tgt
			return nil
		}
	}
	for _, r := range runs {
		if *warmup > 0 {
			for range vegeta.NewAttacker(r.opts...).Attack(targeter(), r.pacer, *warmup, r.label+" warm-up") {
			}
		}
		before := scrapeBatches(*base)
		atk := vegeta.NewAttacker(r.opts...)
		var m vegeta.Metrics
		for res := range atk.Attack(targeter(), r.pacer, *duration, r.label) {
			if res.Error != vegeta.ErrNoTargets.Error() { // not a request
				m.Add(res)
			}
		}
		m.Close()
		after := scrapeBatches(*base)
		meanBatch := math.NaN()
		if d := after[1] - before[1]; d > 0 {
			meanBatch = (after[0] - before[0]) / d
		}
		if *asJSON {
			b, _ := json.Marshal(map[string]any{"run": r.label, "requests": m.Requests, "throughput": m.Throughput, "success": m.Success,
				"p50_ms": ms(m.Latencies.P50), "p90_ms": ms(m.Latencies.P90), "p99_ms": ms(m.Latencies.P99), "max_ms": ms(m.Latencies.Max),
				"status": m.StatusCodes, "mean_batch": jsonNum(meanBatch), "errors": m.Errors})
			fmt.Fprintln(out, string(b))
			continue
		}
		fmt.Fprintf(out, "%-16s %6d req  %8.1f ok/s  success %5.1f%%  p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  max %7.2f ms  mean batch %.2f  status %v\n",
			r.label, m.Requests, m.Throughput, 100*m.Success, ms(m.Latencies.P50), ms(m.Latencies.P90), ms(m.Latencies.P99), ms(m.Latencies.Max), meanBatch, m.StatusCodes)
		for _, e := range m.Errors[:min(len(m.Errors), 3)] {
			fmt.Fprintln(out, "  error:", e)
		}
	}
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func jsonNum(f float64) any {
	if math.IsNaN(f) {
		return nil
	}
	return f
}

// target builds the one request every run repeats.
func target(base, model, shapeFlag, image string, bin bool) (vegeta.Target, error) {
	if image != "" {
		b, err := os.ReadFile(image)
		if err != nil {
			return vegeta.Target{}, err
		}
		return vegeta.Target{Method: "POST", URL: base + "/v1/models/" + model + ":classify", Body: b,
			Header: http.Header{"Content-Type": {http.DetectContentType(b)}}}, nil
	}
	shape, err := inputShape(base, model, shapeFlag)
	if err != nil {
		return vegeta.Target{}, err
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(math.Sin(float64(i)))
	}
	u := base + "/v2/models/" + model + "/infer"
	if !bin {
		body, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": shape, "datatype": "FP32", "data": data}},
			"outputs": []any{map[string]any{"name": "logits"}}})
		return vegeta.Target{Method: "POST", URL: u, Body: body, Header: http.Header{"Content-Type": {"application/json"}}}, nil
	}
	hdr, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": shape, "datatype": "FP32", "parameters": map[string]any{"binary_data_size": 4 * n}}},
		"outputs": []any{map[string]any{"name": "logits"}}})
	body := append([]byte(nil), hdr...)
	for _, v := range data {
		body = binary.LittleEndian.AppendUint32(body, math.Float32bits(v))
	}
	return vegeta.Target{Method: "POST", URL: u, Body: body, Header: http.Header{
		"Content-Type": {"application/octet-stream"}, "Inference-Header-Content-Length": {strconv.Itoa(len(hdr))}}}, nil
}

// inputShape parses --shape or reads [1,H,W,C] from the v2 metadata.
func inputShape(base, model, s string) ([]int, error) {
	if s != "" {
		var shape []int
		for _, f := range strings.Split(s, ",") {
			d, err := strconv.Atoi(f)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("--shape %q: want N,H,W,C", s)
			}
			shape = append(shape, d)
		}
		return shape, nil
	}
	resp, err := http.Get(base + "/v2/models/" + model)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var md struct {
		Inputs []struct {
			Shape []int `json:"shape"`
		} `json:"inputs"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md); err != nil || resp.StatusCode != 200 || len(md.Inputs) != 1 {
		return nil, fmt.Errorf("metadata of %s: status %d, %v; give --shape", model, resp.StatusCode, err)
	}
	shape := md.Inputs[0].Shape
	if len(shape) > 0 && shape[0] < 0 {
		shape[0] = 1
	}
	return shape, nil
}

// scrapeBatches returns residual_batch_size's sum and count summed over
// models, or zeros when the server has no such metric.
func scrapeBatches(base string) [2]float64 {
	var out [2]float64
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	for sc.Scan() {
		line := sc.Text()
		for i, name := range []string{"residual_batch_size_sum", "residual_batch_size_count"} {
			if strings.HasPrefix(line, name) {
				f := strings.Fields(line)
				if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
					out[i] += v
				}
			}
		}
	}
	return out
}
