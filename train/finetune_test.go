package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/tensor"
)

// writeInit writes a checkpoint of the tiny model with 7 classes (random
// weights from seed 9) and a preprocessing of its own, as an init for
// MNIST runs, and returns its path and tensors.
func writeInit(t *testing.T) (string, map[string][]float32) {
	t.Helper()
	mc, err := tiny("").Model.Clone()
	if err != nil {
		t.Fatal(err)
	}
	mc.SetClasses(7)
	net, err := models.Build(mc, tensor.NewRNG(9))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "init.safetensors")
	meta := checkpoint.Meta{Model: mc, Classes: []string{"a", "b", "c", "d", "e", "f", "g"},
		Preprocess: checkpoint.Preprocess{Height: 28, Width: 28, Channels: 1, Normalisation: transform.Normalisation{Mean: []float64{127.5}, Std: []float64{64}, Scale255: true}}}
	if err := checkpoint.Write(path, net, meta, nil); err != nil {
		t.Fatal(err)
	}
	return path, weights(t, path)
}

// --init from a checkpoint with another class count loads everything but
// the head (and says so); with the backbone frozen, a run leaves every
// backbone tensor (batch norm statistics included) bit-identical to the
// init's and trains the head; the run's checkpoints keep the init's
// preprocessing.
func TestInitFreezeBackbone(t *testing.T) {
	init, want := writeInit(t)
	var log bytes.Buffer
	cfg := tiny(t.TempDir())
	cfg.Epochs, cfg.Init, cfg.Freeze, cfg.Log = 1, init, []string{"backbone"}, &log
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "left freshly initialised") || !strings.Contains(log.String(), "fc.weight") || !strings.Contains(log.String(), "fc.bias") {
		t.Errorf("the log does not report the fresh head:\n%s", log.String())
	}
	last := filepath.Join(cfg.Out, LastCheckpoint)
	got := weights(t, last)
	for k, w := range want {
		if strings.HasPrefix(k, "fc.") || strings.HasSuffix(k, nn.NumBatchesTracked) {
			continue
		}
		g := got[k]
		if len(g) != len(w) {
			t.Fatalf("%s: %d values, init has %d", k, len(g), len(w))
		}
		for i := range w {
			if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
				t.Errorf("frozen %s[%d] changed: %g, init %g", k, i, g[i], w[i])
				break
			}
		}
	}
	if len(got["fc.weight"]) != 10*8 {
		t.Errorf("fc.weight has %d values, want 10 classes × 8", len(got["fc.weight"]))
	}
	c, err := checkpoint.Load(last)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Preprocess; len(p.Mean) != 1 || p.Mean[0] != 127.5 || p.Std[0] != 64 || !p.Scale255 {
		t.Errorf("the run's checkpoint has mean %v std %v Scale255 %v, want the init's 127.5, 64 and true", p.Mean, p.Std, p.Scale255)
	}
}

// A Freeze prefix the network has no parameter under, a Task the model
// and the data do not fit and a Dice loss for a classifier (the model's
// task, known once it is built) are refused by Prepare with ErrConfig (the
// CLI's usage errors), before any step; an init that does not exist is
// refused otherwise.
func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		edit   func(*Config)
		config bool
		want   string
	}{
		{func(c *Config) { c.Freeze = []string{"nonsense"} }, true, `no parameter or buffer is named "nonsense"`},
		{func(c *Config) { c.Task = models.Segment }, true, "segmentation needs a U-Net"},
		{func(c *Config) { c.Loss = Dice }, true, "--loss (Config.Loss) dice is for segmentation: --task segment (Config.Task models.Segment)"},
		{func(c *Config) { c.Batch = 0 }, true, "batch must be ≥ 1"},
		{func(c *Config) { c.Init = filepath.Join(t.TempDir(), "none.safetensors") }, false, "no checkpoint at"},
	} {
		cfg := tiny(t.TempDir())
		c.edit(&cfg)
		_, err := Prepare(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, ErrConfig) != c.config {
			t.Errorf("Prepare: error %v, want one with %q (ErrConfig: %v)", err, c.want, c.config)
		}
	}
}

// Train on no Trainer, a zero one or with no context is an error (the
// first two panicked).
func TestTrainMisuse(t *testing.T) {
	var none *Trainer
	for _, tr := range []*Trainer{none, {}} {
		if _, err := tr.Train(context.Background()); err == nil || !strings.Contains(err.Error(), "no Trainer") {
			t.Errorf("Train on %#v: %v", tr, err)
		}
	}
	cfg := tiny(t.TempDir())
	cfg.Limit = 32
	tr, err := Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var noCtx context.Context
	if _, err := tr.Train(noCtx); err == nil || !strings.Contains(err.Error(), "nil context") {
		t.Errorf("Train(nil context): %v", err)
	}
}

// oneStep is the tiny model trained for exactly one step (32 images, batch
// 32, no validation split, plain SGD without momentum or weight decay),
// returning its config, its initial weights and the last checkpoint's.
func oneStep(t *testing.T, edit func(*Config)) (Config, map[string][]float32, map[string][]float32) {
	t.Helper()
	cfg := tiny(t.TempDir())
	cfg.Epochs, cfg.Limit, cfg.ValSplit, cfg.Momentum, cfg.WeightDecay = 1, 32, 0, 0, 0
	edit(&cfg)
	tr, err := Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string][]float32{}
	for k, v := range nn.TorchState(tr.r.model) {
		before[k] = append([]float32(nil), v.Data...)
	}
	if _, err := tr.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	return cfg, before, weights(t, filepath.Join(cfg.Out, LastCheckpoint))
}

// After one step the EMA checkpoint holds decay·w₀ + (1−decay)·w₁ for
// every tensor (computed as optim.EMA does, so bit for bit), differs from
// the last checkpoint, and the metrics record its validation accuracy and
// the top-5 accuracy.
func TestEMACheckpoint(t *testing.T) {
	decay := 0.9 // a variable: 1−decay rounded in float64, as optim.EMA computes it (the constant 1−0.9 is exactly 0.1)
	cfg, w0, w1 := oneStep(t, func(c *Config) { c.EMA = decay })
	ema := weights(t, filepath.Join(cfg.Out, EMACheckpoint))
	differs := false
	for k, a := range w0 {
		if strings.HasSuffix(k, nn.NumBatchesTracked) {
			continue
		}
		for i := range a {
			want := float32(decay*float64(a[i]) + (1-decay)*float64(w1[k][i]))
			if ema[k][i] != want {
				t.Fatalf("%s[%d]: EMA %g, want %g·%g + %g·%g = %g", k, i, ema[k][i], decay, a[i], 1-decay, w1[k][i], want)
			}
			differs = differs || ema[k][i] != w1[k][i]
		}
	}
	if !differs {
		t.Error("the EMA checkpoint equals the last one")
	}
	f, err := os.Open(filepath.Join(cfg.Out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	var m map[string]float64
	if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["val_acc_ema"]; !ok || m["val_top5"] < m["val_acc"] || m["val_top5"] == 0 {
		t.Errorf("metrics.jsonl line %s: want val_acc_ema and val_top5 ≥ val_acc > 0", sc.Text())
	}
}

// Clipping the gradients' norm to 1e-8 bounds one SGD step's change of
// any weight by lr·1e-8; a head learning rate ×1e-12 leaves the head's
// weights as they were while the rest moves.
func TestClipAndHeadLR(t *testing.T) {
	cfg, w0, w1 := oneStep(t, func(c *Config) { c.ClipGrad = 1e-8; c.LabelSmoothing = 0.1 })
	for k, a := range w0 {
		if strings.Contains(k, "running_") || strings.HasSuffix(k, nn.NumBatchesTracked) {
			continue // statistics, not gradient steps
		}
		for i := range a {
			// lr·1e-8 plus a float32 rounding of the weight (2⁻²³|w|).
			if d := math.Abs(float64(w1[k][i] - a[i])); d > cfg.LR*1e-8+math.Abs(float64(a[i]))*0x1p-23 {
				t.Fatalf("%s[%d] moved %g with the gradient norm clipped to 1e-8 at lr %g", k, i, d, cfg.LR)
			}
		}
	}
	_, w0, w1 = oneStep(t, func(c *Config) { c.HeadLRMult = 1e-12 })
	moved := func(k string) bool {
		for i := range w0[k] {
			if w0[k][i] != w1[k][i] {
				return true
			}
		}
		return false
	}
	if moved("fc.weight") {
		t.Error("fc.weight moved at a head learning rate of lr×1e-12")
	}
	if !moved("conv1.weight") {
		t.Error("conv1.weight did not move")
	}
}

// With nothing able to change the predictions (backbone frozen, the head's
// steps below float32's resolution), patience 2 stops a 6-epoch run after
// epoch 3 and says so.
func TestPatienceStops(t *testing.T) {
	var log bytes.Buffer
	cfg := tiny(t.TempDir())
	cfg.Epochs, cfg.Patience, cfg.Freeze, cfg.LR, cfg.Log = 6, 2, []string{"backbone"}, 1e-20, &log
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.StoppedEarly || res.Epochs != 3 || len(res.History) != 3 {
		t.Errorf("stopped early %v after %d epochs (%d recorded); want after 3", res.StoppedEarly, res.Epochs, len(res.History))
	}
	if !strings.Contains(log.String(), "stopping early after epoch 3 of 6") {
		t.Errorf("the log does not say it stopped:\n%s", log.String())
	}
}

// The moving average resumes exactly: 2 epochs equal 1 epoch + resume,
// and equal being interrupted after the first step + resume, for the EMA
// checkpoint as for the weights.
func TestEMAResumes(t *testing.T) {
	ctx := context.Background()
	full := tiny(t.TempDir())
	full.EMA = 0.9
	if _, err := Run(ctx, full); err != nil {
		t.Fatal(err)
	}
	want := weights(t, filepath.Join(full.Out, EMACheckpoint))
	split := full
	split.Out, split.Epochs = t.TempDir(), 1
	if _, err := Run(ctx, split); err != nil {
		t.Fatal(err)
	}
	epoch1 := must(os.ReadFile(filepath.Join(split.Out, EMACheckpoint)))
	split.Epochs, split.Resume = 2, true
	if _, err := Run(ctx, split); err != nil {
		t.Fatal(err)
	}
	// An average one epoch behind the last checkpoint (a run killed
	// between the two writes) is not resumed from: it restarts, saying so.
	stale := split
	stale.Out, stale.Epochs = t.TempDir(), 3
	for name, b := range map[string][]byte{LastCheckpoint: must(os.ReadFile(filepath.Join(split.Out, LastCheckpoint))), EMACheckpoint: epoch1} {
		if err := os.WriteFile(filepath.Join(stale.Out, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	stale.Log = &log
	if _, err := Run(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "holds the moving average at step 6, the run resumes at step 12") {
		t.Errorf("a stale moving average was resumed from without a word:\n%s", log.String())
	}
	stopped := full
	stopped.Out = t.TempDir()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Run(cctx, stopped); err == nil {
		t.Fatal("the cancelled run finished")
	}
	stopped.Resume = true
	if _, err := Run(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"stopped at an epoch": split.Out, "interrupted mid-epoch": stopped.Out} {
		got := weights(t, filepath.Join(dir, EMACheckpoint))
		for k, w := range want {
			for i := range w {
				if math.Float32bits(got[k][i]) != math.Float32bits(w[i]) {
					t.Errorf("%s: %s[%d] = %g, the uninterrupted run's EMA %g", name, k, i, got[k][i], w[i])
					break
				}
			}
		}
	}
}

// Without a model, --init fine-tunes the checkpoint's own network; a model
// built differently (here with another stem width) is used as asked, with a
// warning in the log.
func TestInitModelFromCheckpoint(t *testing.T) {
	init, _ := writeInit(t)
	cfg := tiny(t.TempDir())
	cfg.Epochs, cfg.Init, cfg.Model, cfg.Limit = 1, init, models.Config{}, 64
	tr, err := Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Config().Model; got.Name != "tiny" || got.Classes() != 10 || tr.Config().Task != models.Classify {
		t.Errorf("model %q with %d classes, task %q: want the checkpoint's tiny with the data's 10 classes, classify", got.Name, got.Classes(), tr.Config().Task)
	}
	var log bytes.Buffer
	cfg = tiny(t.TempDir())
	cfg.Init, cfg.Log = init, &log
	cfg.Model.Arch.(*models.ResNet).StemWidth = 8
	if _, err := Prepare(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "is not built like the checkpoint's tiny") {
		t.Errorf("no warning about the differing model:\n%s", log.String())
	}
}

// An int8 checkpoint holds no float weights (its float network is only
// the architecture): --init from one is refused, naming it, instead of
// training from random weights.
func TestInitRefusesInt8(t *testing.T) {
	path, _ := writeInit(t)
	c, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	calibrated := false
	q, err := quant.Quantize(context.Background(), c.Net, []int{1, 28, 28, 1}, func() (*tensor.Tensor, error) {
		if calibrated {
			return nil, nil
		}
		calibrated = true
		return tensor.NewRNG(1).Randn(2, 28, 28, 1), nil
	}, quant.Options{Method: quant.MinMax})
	if err != nil {
		t.Fatal(err)
	}
	int8Path := filepath.Join(t.TempDir(), "init8.safetensors")
	if err := checkpoint.WriteInt8(int8Path, q, c.Meta); err != nil {
		t.Fatal(err)
	}
	cfg := tiny(t.TempDir())
	cfg.Init = int8Path
	if _, err := Prepare(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "int8 checkpoint") || !strings.Contains(err.Error(), int8Path) {
		t.Errorf("--init from an int8 checkpoint: %v; want a refusal naming it", err)
	}
}

// --init on a folder read at no size of its own reads it at the initial
// model's size (28 here), not the folder default of 224; a size given
// stays.
func TestInitFolderSize(t *testing.T) {
	init, _ := writeInit(t)
	dir := t.TempDir()
	for _, class := range []string{"p", "q"} {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			img := image.NewGray(image.Rect(0, 0, 40, 40))
			for j := range img.Pix {
				img.Pix[j] = uint8(i*40 + j)
			}
			var b bytes.Buffer
			if err := png.Encode(&b, img); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, class, fmt.Sprintf("%d.png", i)), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for spec, want := range map[string]string{"folder:" + dir: "folder,size=28:" + dir, "folder,size=20:" + dir: "folder,size=20:" + dir} {
		cfg := tiny(t.TempDir())
		cfg.Epochs, cfg.Init, cfg.Model, cfg.Data, cfg.Limit, cfg.ValSplit, cfg.Log = 1, init, models.Config{}, spec, 0, 0, io.Discard
		tr, err := Prepare(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.Config().Data; got != want {
			t.Errorf("--init at 28 pixels, data %s: read as %s, want %s", spec, got, want)
		}
	}
}

// A fine-tuned run resumes from its record after its init checkpoint has
// gone (moved, deleted, or recorded as a path relative to another folder):
// the run's checkpoint holds what it took from the init, and the resumed
// run keeps the init's normalisation.
func TestResumeWithoutTheInitFile(t *testing.T) {
	init, _ := writeInit(t)
	cfg := tiny(t.TempDir())
	cfg.Epochs, cfg.Init, cfg.Model = 1, init, models.Config{}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(init); err != nil {
		t.Fatal(err)
	}
	rc, err := ResumeConfig(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	rc.Epochs = 2
	if _, err := Run(context.Background(), rc); err != nil {
		t.Fatalf("resuming after the init file was removed: %v", err)
	}
	c, err := checkpoint.Load(filepath.Join(cfg.Out, LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Preprocess; !p.Scale255 || len(p.Mean) != 1 || p.Mean[0] != 127.5 || p.Std[0] != 64 || c.Position.Epoch != 2 {
		t.Errorf("the resumed run's checkpoint: preprocessing %+v, epoch %d; want the init's and 2", p, c.Position.Epoch)
	}
}

// A folder read at a size whose step the memory cannot hold is refused
// from shapes alone, before its images are read at that size to estimate
// their mean and deviation (Stats: 74 s and 11 GB for a folder at 4096
// pixels, before the refusal).
func TestMemoryCheckedBeforeStats(t *testing.T) {
	dir := t.TempDir()
	for _, class := range []string{"p", "q"} {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			var b bytes.Buffer
			if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, class, fmt.Sprintf("%d.png", i)), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	mc, err := models.Preset("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Model: mc, Data: "folder,size=2048:" + dir, Epochs: 1, Batch: 4, Optimizer: "sgd", LR: 0.01, Seed: 1, ValSplit: 0.25, Out: t.TempDir(), Log: io.Discard}
	defer func(m int64) { limits.Memory = m }(limits.Memory)
	limits.Memory = 1 << 30
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = Prepare(context.Background(), cfg)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "needs at least") {
		t.Fatalf("a step of 4 images of 2048² under 1 GB: %v; want the memory refusal", err)
	}
	// Each image read at 2048² is 4 MB of pixels and 16 MB of floats.
	if d := after.TotalAlloc - before.TotalAlloc; d > 48<<20 {
		t.Errorf("allocated %d MB before refusing", d>>20)
	}
}
