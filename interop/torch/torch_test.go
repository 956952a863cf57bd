package torch

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

const dir = "../../testdata/torch/interop"

// small is the configuration of testdata/torch/gen_interop.py's model:
// torchvision's ResNet layout with one basic block in each of two stages.
func small(t *testing.T) *resnet.Net {
	m, err := resnet.New(resnet.Config{Block: "basic", Layers: []int{1, 1}, Widths: []int{8, 16}, Stem: "imagenet", StemWidth: 8,
		Ordering: resnet.PostActivation, Shortcut: resnet.ShortcutB, Classes: 5, InChannels: 3}, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Both files load strictly into the residual model and give PyTorch's
// logits (evaluation mode) at |got − want| ≤ 1e-5·(|want| + max|want|).
func TestLoadsTorchvisionStateDicts(t *testing.T) {
	var ref struct {
		Input  []int          `json:"input"`
		Logits fixture.Tensor `json:"logits"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "small.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	x := tensor.NCHWToNHWC(fixture.Fill("input", ref.Input...))
	for _, f := range []string{"small.pth", "small.safetensors"} {
		st, err := LoadStateDict(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, ok := st["layer2.0.downsample.1.num_batches_tracked"]; !ok {
			t.Errorf("%s: num_batches_tracked missing (integer tensors must load too)", f)
		}
		m := small(t)
		if err := nn.LoadTorchState(m, st, true); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		nn.SetTraining(m, false)
		got := m.Forward(ag.Constant(x)).Data
		if err := fixture.Compare(got, ref.Logits.Float32(), 1e-5); err != nil {
			t.Errorf("%s: logits: %v", f, err)
		}
	}
}

func TestRefusesWhatIsNotAStateDict(t *testing.T) {
	_, err := LoadStateDict(filepath.Join(dir, "evil.pth"))
	if err == nil || !strings.Contains(err.Error(), "collections.Counter") || strings.Contains(err.Error(), "whole model") {
		t.Errorf("a pickle naming collections.Counter: %v", err)
	}
	// torch.save(model) instead of its state dict: the error names the
	// module's class and says what to save instead.
	_, err = LoadStateDict(filepath.Join(dir, "whole.pth"))
	if err == nil || !strings.Contains(err.Error(), "torchvision.models.resnet.BasicBlock") || !strings.Contains(err.Error(), "save model.state_dict() instead") {
		t.Errorf("a whole module saved: %v", err)
	}
	// A training checkpoint wrapping the state dict, as PyTorch's
	// tutorials save one ({"epoch", "model_state_dict",
	// "optimizer_state_dict", "loss"}): the error names the state dict
	// among the entries and says to save it alone (it said "epoch" is a
	// *big.Int, or named whichever dict came first).
	_, err = LoadStateDict(filepath.Join(dir, "wrapped.pth"))
	if err == nil || !strings.Contains(err.Error(), `wraps a state dict (in ["model_state_dict"])`) || !strings.Contains(err.Error(), `torch.save(ckpt["model_state_dict"]`) {
		t.Errorf("a checkpoint wrapping a state dict: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "small.pth"))
	tmp := t.TempDir()
	for name, data := range map[string][]byte{
		"truncated.pth":   b[:len(b)/2],
		"empty.pth":       nil,
		"garbage.pt":      []byte("not a pickle at all, not a zip either"),
		"bad.safetensors": []byte{1, 2, 3},
	} {
		p := filepath.Join(tmp, name)
		os.WriteFile(p, data, 0o644)
		if _, err := LoadStateDict(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A state dict for another architecture: the keys that do not fit are
	// named.
	st, err := LoadStateDict(filepath.Join(dir, "small.pth"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := resnet.New(resnet.Config{Block: "basic", Layers: []int{1, 1}, Widths: []int{8, 32}, Stem: "imagenet", StemWidth: 8,
		Ordering: resnet.PostActivation, Shortcut: resnet.ShortcutB, Classes: 5, InChannels: 3}, tensor.NewRNG(1))
	if err := nn.LoadTorchState(m, st, true); err == nil || !strings.Contains(err.Error(), "layer2.0.conv1.weight") {
		t.Errorf("mis-shaped keys: %v", err)
	}
}

func FuzzStateDict(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join(dir, "small.pth"))
	f.Add(b)
	f.Add(b[:200])
	// Hand-made files (hostile_test.go): a strided view, a deflated archive,
	// the legacy format.
	pkl := statePickle(spec{"w", "FloatStorage", "0", 6, 0, []int64{2, 3}, []int64{3, 1}},
		spec{"wt", "FloatStorage", "0", 6, 1, []int64{2, 2}, []int64{1, 3}}, spec{"h", "HalfStorage", "1", 1, 0, nil, nil})
	f.Add(pthBytes(pkl, map[string][]byte{"0": floats(1, 2, 3, 4, 5, 6), "1": {0, 0x3c}}, 0))
	f.Add(pthBytes(pkl, map[string][]byte{"0": floats(1, 2, 3, 4, 5, 6), "1": {0, 0x3c}}, 8))
	f.Add(legacy(legacyStateDict(3), []string{"k"}, [][]byte{floats(1, 2, 3)}, []uint64{3}))
	// Offsets past the storage: of an empty tensor, and one of MaxInt64
	// (both panicked).
	for _, v := range [][2]int64{{100, 0}, {math.MaxInt64, 2}} {
		pkl := statePickle(spec{"w", "FloatStorage", "0", 2, v[0], []int64{v[1]}, []int64{1}})
		f.Add(pthBytes(pkl, map[string][]byte{"0": floats(1, 2)}, 0))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// decode is LoadStateDict after it has opened the file and checked
		// its size.
		st, err := decode(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for k, v := range st {
			if tensor.NumElements(v.Shape) != len(v.Data) {
				t.Fatalf("%s: %d values for %v", k, len(v.Data), v.Shape)
			}
		}
	})
}

// A weight tied under three names, as torch.save writes a model whose
// modules share it (testdata/torch/gen_tied.py: three tensors viewing one
// 6 MB storage) loads, the names sharing one tensor of the weight's
// values: it was refused as more views of the same values than a state
// dict has (three times the storage's values, over twice them plus 4 MB).
func TestTiedWeight(t *testing.T) {
	st, err := loadBoundedState(t, filepath.Join(dir, "tied.pth"), 48<<20)
	if err != nil {
		t.Fatal(err)
	}
	w := st["a.weight"]
	if len(st) != 3 || w == nil || !tensor.SameShape(w.Shape, []int{1024, 1536}) {
		t.Fatalf("%d tensors, a.weight %v; want 3 names of a 1024×1536 weight", len(st), w)
	}
	for i, v := range w.Data {
		if v != float32(i%251) {
			t.Fatalf("a.weight[%d] = %v, want %d", i, v, i%251)
		}
	}
	if st["b.weight"] != w || st["c.weight"] != w {
		t.Errorf("b.weight and c.weight are not a.weight's tensor: the tied weight was decoded more than once")
	}
}
