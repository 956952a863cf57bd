package onnx

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/tensor"
)

// interopPhotos are the photos of the interop tests (scikit-image's, as
// Debian's python3-skimage installs them).
var interopPhotos = []string{"chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png"}

// TestQDQResNet50ONNXRuntime runs an int8 ResNet-50's QDQ export in ONNX
// Runtime on the interop photos and checks that its top-1 class is
// residual's int8 top-1 on each, at ONNX Runtime's settings of
// TestQDQExportONNXRuntime (without optimizations: QDQ's reference
// semantics; with all: its fused int8 kernels, which saturate on x86
// without VNNI; with all and session.x64quantprecision, which avoids it). It takes minutes on two cores, so it runs only when
// RESIDUAL_QDQ_RESNET50 names the int8 checkpoint (docs/QUANTIZATION.md
// gives the commands that make it from the Keras ResNet-50).
func TestQDQResNet50ONNXRuntime(t *testing.T) {
	ckpt := os.Getenv("RESIDUAL_QDQ_RESNET50")
	if ckpt == "" {
		t.Skip("set RESIDUAL_QDQ_RESNET50 to an int8 ResNet-50 checkpoint (docs/QUANTIZATION.md) to run this long check")
	}
	ortAvailable(t)
	photos := os.Getenv("RESIDUAL_PHOTOS")
	if photos == "" {
		photos = "/usr/lib/python3/dist-packages/skimage/data"
	}
	c, err := checkpoint.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	if c.Int8 == nil {
		t.Fatalf("%s is not an int8 checkpoint", ckpt)
	}
	p := c.Preprocess
	x := tensor.New(len(interopPhotos), p.Height, p.Width, p.Channels)
	for i, name := range interopPhotos {
		img, err := imagefile.Load(filepath.Join(photos, name))
		if err != nil {
			t.Fatal(err)
		}
		xi, err := infer.Input(p, img)
		if err != nil {
			t.Fatal(err)
		}
		copy(x.Data[i*len(xi.Data):], xi.Data)
	}
	want, err := c.Int8.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "r50.int8.onnx")
	if err := ExportInt8File(model, c.Int8, nil); err != nil {
		t.Fatal(err)
	}
	xo := toONNX(x)
	in := filepath.Join(dir, "x.in")
	if err := os.WriteFile(in, floatBytes(xo.Data), 0o644); err != nil {
		t.Fatal(err)
	}
	type job struct {
		Model        string `json:"model"`
		Input        string `json:"input"`
		Dims         []int  `json:"dims"`
		Output       string `json:"output"`
		Optimization string `json:"optimization"`
		Extra        any    `json:"extra,omitempty"`
	}
	levels := []string{"disabled", "all", "all-x64quantprecision"}
	var jobs []job
	for _, l := range levels {
		j := job{model, in, xo.Shape, filepath.Join(dir, l+".out"), l, nil}
		if l == "all-x64quantprecision" {
			j.Optimization, j.Extra = "all", map[string]any{"session": map[string]string{"x64quantprecision": "1"}}
		}
		jobs = append(jobs, j)
	}
	spec, _ := json.Marshal(jobs)
	if err := os.WriteFile(filepath.Join(dir, "jobs.json"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	runORT(t, filepath.Join(dir, "jobs.json"))
	classes := len(c.Classes)
	for _, l := range levels {
		raw, _, _ := ortOutput(t, filepath.Join(dir, l+".out"))
		if len(raw) != 4*want.Len() {
			t.Fatalf("%s: %d bytes of output, want %d logits", l, len(raw), want.Len())
		}
		for i, name := range interopPhotos {
			got := make([]float32, classes)
			for k := range got {
				got[k] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(i*classes+k):]))
			}
			ours := want.Data[i*classes : (i+1)*classes]
			g5, w5 := top5(got), top5(ours)
			overlap := 0
			for _, a := range g5 {
				for _, b := range w5 {
					if a == b {
						overlap++
					}
				}
			}
			t.Logf("%s %s: ONNX Runtime top-1 %s (logit %.3f), residual int8 %s (logit %.3f); top-5 overlap %d/5",
				l, name, c.Classes[g5[0]], got[g5[0]], c.Classes[w5[0]], ours[w5[0]], overlap)
			if g5[0] != w5[0] {
				t.Errorf("%s %s: ONNX Runtime's top-1 is %s, residual's int8 top-1 %s", l, name, c.Classes[g5[0]], c.Classes[w5[0]])
			}
		}
	}
}

// top5 returns the indices of the five largest values, largest first.
func top5(v []float32) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] > v[idx[b]] })
	return idx[:5]
}
