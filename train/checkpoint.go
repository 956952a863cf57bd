package train

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/tensor"
)

// Checkpoint file names in a run folder.
const (
	LastCheckpoint = "last.safetensors"
	BestCheckpoint = "best.safetensors"
)

// Format identifies residual's checkpoints in their metadata.
const Format = "residual-checkpoint/1"

// optimizerPrefix marks optimizer-state tensors in a checkpoint; the model
// weights carry their torchvision names unprefixed, so PyTorch can load
// them after dropping these keys.
const optimizerPrefix = "optimizer."

// Preprocess is how an image becomes the model's input; it is stored in
// every checkpoint so that predict applies what training did.
type Preprocess struct {
	// Height, Width and Channels of the model input (1 grey or 3 RGB).
	Height, Width, Channels int
	// Mean and Std per channel, for pixels scaled to [0, 1] (or to
	// [0, 255] when Scale255 is set, as Keras's "caffe" mode).
	Mean, Std []float64
	Scale255  bool `json:",omitempty"`
	// BGR reverses the channel order (Keras "caffe").
	BGR bool `json:",omitempty"`
	// ResizeShorter, if set, resizes the shorter side to it and centre
	// crops Height×Width (ImageNet style); otherwise the image is resized
	// to Height×Width.
	ResizeShorter int `json:",omitempty"`
}

func (r *run) preprocess() Preprocess {
	return Preprocess{Height: r.trainSet.H, Width: r.trainSet.W, Channels: r.trainSet.C, Mean: r.mean, Std: r.std}
}

// save writes a checkpoint atomically into the run folder.
func (r *run) save(name string) error {
	tensors := nn.TorchState(r.model)
	for k, t := range r.opt.State() {
		tensors[optimizerPrefix+k] = t
	}
	rng, err := r.rng.MarshalBinary()
	if err != nil {
		return err
	}
	tracked := map[string]int64{}
	for _, l := range nn.Layers(r.model) {
		if b, ok := l.Layer.(*nn.BatchNorm); ok {
			tracked[l.Name] = b.NumBatchesTracked
		}
	}
	meta := map[string]string{
		"format":              Format,
		"model":               r.cfg.Model.Marshal(),
		"train":               mustJSON(r.cfg),
		"epoch":               strconv.Itoa(r.epoch),
		"batch":               strconv.Itoa(r.batch),
		"step":                strconv.Itoa(r.opt.Steps()),
		"best_val_acc":        strconv.FormatFloat(r.best, 'g', -1, 64),
		"rng":                 base64.StdEncoding.EncodeToString(rng),
		"classes":             mustJSON(r.trainSet.Classes),
		"preprocess":          mustJSON(r.preprocess()),
		"num_batches_tracked": mustJSON(tracked),
	}
	return safetensors.Write(filepath.Join(r.cfg.Out, name), tensors, meta)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Checkpoint is a loaded checkpoint.
type Checkpoint struct {
	Model      models.Config
	Net        nn.Layer
	Classes    []string
	Preprocess Preprocess
	Metadata   map[string]string
	Tensors    map[string]*tensor.Tensor
}

// Load reads a checkpoint and rebuilds its model with the stored weights.
func Load(path string) (*Checkpoint, error) {
	f, err := safetensors.Read(path)
	if err != nil {
		return nil, err
	}
	meta := f.Metadata
	if meta["format"] != Format {
		return nil, fmt.Errorf("train: %s is not a residual checkpoint (format %q)", path, meta["format"])
	}
	mc, err := models.Unmarshal(meta["model"])
	if err != nil {
		return nil, fmt.Errorf("train: %s: %w", path, err)
	}
	net, err := models.Build(mc, tensor.NewRNG(0))
	if err != nil {
		return nil, fmt.Errorf("train: %s: %w", path, err)
	}
	weights := map[string]*tensor.Tensor{}
	for k, t := range f.Tensors {
		if !strings.HasPrefix(k, optimizerPrefix) {
			weights[k] = t
		}
	}
	if err := nn.LoadTorchState(net, weights, true); err != nil {
		return nil, fmt.Errorf("train: %s: %w", path, err)
	}
	c := &Checkpoint{Model: mc, Net: net, Metadata: meta, Tensors: f.Tensors}
	if err := json.Unmarshal([]byte(meta["classes"]), &c.Classes); err != nil {
		return nil, fmt.Errorf("train: %s: bad class list: %w", path, err)
	}
	if err := json.Unmarshal([]byte(meta["preprocess"]), &c.Preprocess); err != nil {
		return nil, fmt.Errorf("train: %s: bad preprocessing record: %w", path, err)
	}
	var tracked map[string]int64
	if json.Unmarshal([]byte(meta["num_batches_tracked"]), &tracked) == nil {
		for _, l := range nn.Layers(net) {
			if b, ok := l.Layer.(*nn.BatchNorm); ok {
				b.NumBatchesTracked = tracked[l.Name]
			}
		}
	}
	return c, nil
}

// restore continues a run from a checkpoint of the same model.
func (r *run) restore(path string) error {
	c, err := Load(path)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("train: --resume: no checkpoint at %s", path)
		}
		return err
	}
	if c.Model.Marshal() != r.cfg.Model.Marshal() {
		return fmt.Errorf("train: %s holds a %s (%s), this run builds a %s; resume with the same model",
			path, c.Model.Name, c.Model.Marshal(), r.cfg.Model.Name)
	}
	r.model = c.Net // the same architecture, with the stored weights and statistics
	if r.opt, err = newOptimizer(r.cfg, r.model, r.stepsPerEpoch*r.cfg.Epochs); err != nil {
		return err
	}
	st := r.opt.State()
	for k, t := range st {
		src, ok := c.Tensors[optimizerPrefix+k]
		if !ok || src.Len() != t.Len() {
			return fmt.Errorf("train: %s: optimizer state %q missing or mis-shaped (was it trained with another optimizer?)", path, k)
		}
		copy(t.Data, src.Data)
	}
	atoi := func(k string) (int, error) {
		v, err := strconv.Atoi(c.Metadata[k])
		if err != nil {
			return 0, fmt.Errorf("train: %s: bad %s %q", path, k, c.Metadata[k])
		}
		return v, nil
	}
	steps, err := atoi("step")
	if err != nil {
		return err
	}
	if r.epoch, err = atoi("epoch"); err != nil {
		return err
	}
	if r.batch, err = atoi("batch"); err != nil {
		return err
	}
	r.opt.SetSteps(steps)
	r.best, _ = strconv.ParseFloat(c.Metadata["best_val_acc"], 64)
	rng, err := base64.StdEncoding.DecodeString(c.Metadata["rng"])
	if err != nil || r.rng.UnmarshalBinary(rng) != nil {
		return fmt.Errorf("train: %s: bad RNG state", path)
	}
	r.history = readMetrics(filepath.Join(r.cfg.Out, "metrics.jsonl"), r.epoch)
	fmt.Fprintf(r.cfg.Log, "resuming %s at epoch %d, batch %d (step %d)\n", path, r.epoch+1, r.batch, steps)
	return nil
}

// readMetrics returns the recorded epochs up to upTo.
func readMetrics(path string, upTo int) []Metrics {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Metrics
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m Metrics
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Epoch <= upTo {
			out = append(out, m)
		}
	}
	return out
}

// SaveModel writes a checkpoint of a model that was not trained here
// (imported weights): its config, weights, classes and preprocessing, so
// that predict and eval can use it.
func SaveModel(path string, mc models.Config, net nn.Layer, classes []string, p Preprocess) error {
	meta := map[string]string{
		"format":     Format,
		"model":      mc.Marshal(),
		"epoch":      "0",
		"batch":      "0",
		"step":       "0",
		"classes":    mustJSON(classes),
		"preprocess": mustJSON(p),
	}
	return safetensors.Write(path, nn.TorchState(net), meta)
}

// ExportWeights writes only the weights of a checkpoint, under their
// torchvision names, for PyTorch's load_state_dict.
func ExportWeights(c *Checkpoint, path string) error {
	return safetensors.Write(path, nn.TorchState(c.Net), nil)
}
