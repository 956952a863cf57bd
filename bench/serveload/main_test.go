package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/serve"
	"github.com/residual-nn/residual/tensor"
)

// sum is a one-class model of a 2×2 grey input: its logit is the sum.
type sum struct{}

func (sum) Info() serve.ModelInfo {
	return serve.ModelInfo{Task: models.Classify, Classes: []string{"s"}, Height: 2, Width: 2, Channels: 1}
}
func (sum) Preprocess(image.Image) (*tensor.Tensor, error) { return tensor.New(1, 2, 2, 1), nil }
func (sum) Forward(_ context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	y := tensor.New(x.Shape[0], 1)
	for i, v := range x.Data {
		y.Data[i/4] += v
	}
	return y, nil
}

// TestRuns checks that both run kinds, bounded to five requests, reach a
// server and report every request answered, a warmed-up run counting only
// its own requests (a functional check of the generator, not a
// measurement).
func TestRuns(t *testing.T) {
	s, err := serve.New(serve.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Add(context.Background(), "sum", "1", sum{}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for _, args := range [][]string{
		{"--rates", "50", "--duration", "200ms", "--max-requests", "5"},
		{"--concurrency", "2", "--duration", "200ms", "--max-requests", "5", "--binary=false"},
		{"--rates", "50", "--duration", "200ms", "--max-requests", "5", "--warmup", "100ms"},
	} {
		var out bytes.Buffer
		if err := run(append([]string{"--url", ts.URL, "--model", "sum", "--json"}, args...), &out); err != nil {
			t.Fatal(err)
		}
		var r struct {
			Requests  int
			Success   float64
			MeanBatch *float64 `json:"mean_batch"`
		}
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", out.String(), err)
		}
		if r.Requests < 1 || r.Requests > 5 || r.Success != 1 || r.MeanBatch == nil || *r.MeanBatch < 1 {
			t.Errorf("%v: %s", args, out.String())
		}
	}
	if err := run([]string{"--url", "http://192.0.2.1:80", "--model", "sum", "--rates", "1"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("a non-loopback URL: %v", err)
	}
}
