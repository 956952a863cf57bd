package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/tensor"
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
// ports): it becomes ready, classifies an image, and on cancellation (what
// SIGTERM does) drains and exits 0. Usage errors exit 2.
func TestServe(t *testing.T) {
	for _, args := range [][]string{{"serve"}, {"serve", "--model", "noequals"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}

	cfg, err := models.Preset("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetInChannels(1)
	cfg.SetClasses(3)
	net, err := models.Build(cfg, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(t.TempDir(), "m.safetensors")
	meta := checkpoint.Meta{Model: cfg, Classes: []string{"a", "b", "c"},
		Preprocess: checkpoint.Preprocess{Height: 16, Width: 16, Channels: 1, Mean: []float64{0.5}, Std: []float64{0.25}}}
	if err := checkpoint.Write(ckpt, net, meta, nil); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errb := &lockedBuffer{}, &lockedBuffer{}
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"serve", "--model", "m=" + ckpt, "--addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"}, out, errb)
	}()
	addr := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)`)
	var base string
	client := &http.Client{Timeout: 10 * time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 20 s; stdout %q, stderr %q", out.String(), errb.String())
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
	var img bytes.Buffer
	png.Encode(&img, image.NewGray(image.Rect(0, 0, 20, 24)))
	resp, err := client.Post(base+"/v1/models/m:classify?top=2", "image/png", &img)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var r struct {
		Predictions []struct{ Label string }
	}
	if err := json.Unmarshal(b, &r); resp.StatusCode != 200 || err != nil || len(r.Predictions) != 2 {
		t.Fatalf("classify: %d %s", resp.StatusCode, b)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d after the drain, want 0; stderr %s", code, errb.String())
		}
	case <-time.After(35 * time.Second):
		t.Fatal("serve did not stop within 35 s of the cancellation")
	}
	if !strings.Contains(errb.String(), "msg=stopped") {
		t.Errorf("no drain in the log: %s", errb.String())
	}
}
