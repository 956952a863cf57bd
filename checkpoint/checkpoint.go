// Package checkpoint reads and writes residual's checkpoints: safetensors
// files holding a model's weights under their torchvision names (so that
// PyTorch can load them), optimizer state under the "optimizer." prefix,
// and typed metadata (Meta): the model's config, its class names, how an
// image becomes its input (Preprocess) and, for a training run, the run's
// config and position.
//
// Load checks everything a file says before it builds anything: the model
// config against the bounds of package limits, the classes against the
// classifier, the preprocessing against the input channels, the input
// size against the activations it would need. Write replaces its target
// atomically. Both packages train and infer use it; it knows nothing of
// either.
package checkpoint

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/internal/typednil"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/tensor"
)

// Format identifies residual's checkpoints in their metadata. The second
// format stores the model config as {"name", "kind", "config"} and batch
// norm counters as num_batches_tracked tensors; files in the first
// ({"name", "resnet": {...}}, counters in a JSON map) still load.
const Format = "residual-checkpoint/2"

// formatV1 is the first format, read but no longer written.
const formatV1 = "residual-checkpoint/1"

// OptimizerPrefix marks optimizer-state tensors in a checkpoint; the model
// weights carry their torchvision names unprefixed, so PyTorch can load
// them after dropping these keys.
const OptimizerPrefix = "optimizer."

// Preprocess is how an image becomes the model's input; it is stored in
// every checkpoint so that inference applies what training did.
type Preprocess struct {
	// Height, Width and Channels of the model input (1 grey or 3 RGB).
	Height, Width, Channels int
	// Normalisation is the mean, std, scale and channel order: its
	// fields (Mean, Std, Scale255, BGR) are stored as Preprocess's own.
	transform.Normalisation
	// ResizeShorter, if set, resizes the shorter side to it and centre
	// crops Height×Width (ImageNet style); otherwise the image is resized
	// to Height×Width.
	ResizeShorter int `json:",omitempty"`
}

// Validate returns an error naming the field of a preprocessing record
// that no image could follow: sizes outside [1, limits.ImageSide] or over
// limits.ImagePixels, channels other than 1 or 3, a mean or std whose
// length is not the channel count, a value beyond float32's range or a
// std below its smallest normal number (2^-126).
func (p Preprocess) Validate() error {
	if p.Channels != 1 && p.Channels != 3 {
		return fmt.Errorf("preprocess: Channels %d (1 grey or 3 RGB)", p.Channels)
	}
	if err := limits.CheckImage("preprocess: Width×Height", p.Width, p.Height); err != nil {
		return err
	}
	if p.ResizeShorter < 0 || p.ResizeShorter > limits.ImageSide {
		return fmt.Errorf("preprocess: ResizeShorter %d outside [0, %d] (limits.ImageSide)", p.ResizeShorter, limits.ImageSide)
	}
	if err := p.Normalisation.Check(p.Channels); err != nil {
		return fmt.Errorf("preprocess: %w", err)
	}
	return nil
}

// Position is where a training run stood when it wrote the checkpoint; the
// trainer fills it and reads it back to resume.
type Position struct {
	// Epoch is the number of epochs completed (the index, from 0, of the
	// epoch in progress), Batch the batches done of that epoch (0 at an
	// epoch's end), and Step the optimizer updates made in all.
	Epoch, Batch, Step int
	// BestValAcc is the best validation metric so far.
	BestValAcc float64
	// RNG is the run's random generator state (tensor.RNG.MarshalBinary).
	RNG []byte
	// Partial is the record of the epoch a run stopped in the middle of
	// (Batch > 0), so that, resumed, its metrics cover the whole epoch;
	// nil otherwise, and in checkpoints written before it was recorded.
	Partial *Partial
	// EvalRead holds, per evaluation set kept as files ("validation",
	// "test"), a fingerprint of its files (their names, sizes and
	// modification times, and the options they are decoded with) as they
	// were when the run read every one of them before its first step and
	// none stopped it (with skip-bad, the files left out are left out
	// again): a resumed run whose files give the same fingerprint does
	// not read them again. A set has none in checkpoints written before
	// it was recorded, for sets held in memory, and where the read was
	// cut short or a file was modified in the 2 s before it (train's
	// guard against file systems that keep times to the second).
	EvalRead map[string]string
}

// Partial is the running record of an epoch cut short.
type Partial struct {
	// LossSum and Hits are the summed training loss and the correct
	// predictions of the Seen targets (images, or pixels for
	// segmentation) trained on so far.
	LossSum float64 `json:"loss_sum"`
	Hits    float64 `json:"hits"`
	Seen    int     `json:"seen"`
	// Images counts the images of the steps run, and Seconds their wall
	// time: the epoch's speed.
	Images  int     `json:"images"`
	Seconds float64 `json:"seconds"`
	// Skipped counts the unreadable files left out of the epoch's batches
	// so far (data.Batch.Skipped).
	Skipped int `json:"skipped,omitempty"`
}

// Meta is what a checkpoint holds besides its tensors, stored as strings
// (JSON for the structured fields) in the safetensors header's
// __metadata__: the model's config, the class names, the preprocessing
// and, for a training run's checkpoint, its config and position.
type Meta struct {
	// Model is the network's config; Load builds it (models.Build).
	Model models.Config
	// Classes names the model's outputs, one per class.
	Classes []string
	// Preprocess turns an image into the model's input.
	Preprocess Preprocess
	// Train is the training run's config as the trainer recorded it
	// (JSON); nil for a model not trained here (imported weights).
	Train json.RawMessage
	// Position is nil for a model not trained here.
	Position *Position
}

// DataSpec returns the data set the training config names ("" if none).
func (m Meta) DataSpec() string {
	var tc struct {
		Data string `json:"data"`
	}
	if json.Unmarshal(m.Train, &tc) != nil {
		return ""
	}
	return tc.Data
}

// Props returns the metadata as string properties, the form an ONNX
// model's metadata_props hold (onnx.ExportInt8's props and
// onnx.ExportOptions.Props; residual export onnx writes them for every
// checkpoint, float or int8): the model config, class
// names and preprocessing as JSON under "residual.model",
// "residual.classes" and "residual.preprocess", and the training data
// spec under "residual.data" where the record names one. MetaFromProps
// reads them.
func (m Meta) Props() (map[string]string, error) {
	props := map[string]string{}
	for k, v := range map[string]any{propModel: m.Model, propClasses: m.Classes, propPreprocess: m.Preprocess} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %s: %w", k, err)
		}
		props[k] = string(b)
	}
	if d := m.DataSpec(); d != "" { // so that eval and quantize of a re-import default to it
		props[propData] = d
	}
	return props, nil
}

// The property names of Meta.Props.
const (
	propModel      = "residual.model"
	propClasses    = "residual.classes"
	propPreprocess = "residual.preprocess"
	propData       = "residual.data"
)

// MetaFromProps reads what Meta.Props wrote, validated (Validate); ok is
// false, with no error, where props hold no "residual.model" (a model
// that another program exported).
func MetaFromProps(props map[string]string) (m Meta, ok bool, err error) {
	cfg, ok := props[propModel]
	if !ok {
		return m, false, nil
	}
	if m.Model, err = models.Unmarshal(cfg); err != nil {
		return m, true, fmt.Errorf("checkpoint: metadata %s: %w", propModel, err)
	}
	if err := json.Unmarshal([]byte(props[propClasses]), &m.Classes); err != nil {
		return m, true, fmt.Errorf("checkpoint: metadata %s: %w", propClasses, err)
	}
	if err := json.Unmarshal([]byte(props[propPreprocess]), &m.Preprocess); err != nil {
		return m, true, fmt.Errorf("checkpoint: metadata %s: %w", propPreprocess, err)
	}
	if d, has := props[propData]; has {
		b, err := json.Marshal(map[string]string{"data": d})
		if err != nil {
			return m, true, err
		}
		m.Train = b
	}
	return m, true, m.Validate()
}

// Validate checks the metadata against the model it describes: a valid
// model config (models.Config.Validate), as many class names as outputs,
// a valid preprocessing record with as many channels as the model's input
// (for models on images), and a position with no negative counts (its partial epoch's included).
func (m Meta) Validate() error {
	if err := m.Model.Validate(); err != nil {
		return err
	}
	if n := m.Model.Classes(); len(m.Classes) != n {
		return fmt.Errorf("classes: %d names for a model with %d outputs", len(m.Classes), n)
	}
	if err := m.Preprocess.Validate(); err != nil {
		return err
	}
	if in := m.Model.InputShape(1, 1); len(in) == 4 && in[3] != m.Preprocess.Channels {
		return fmt.Errorf("preprocess: Channels %d for a model with %d input channels", m.Preprocess.Channels, in[3])
	}
	if len(m.Train) > 0 && !json.Valid(m.Train) {
		return errors.New("train: the training config is not JSON")
	}
	if p := m.Position; p != nil && (p.Epoch < 0 || p.Batch < 0 || p.Step < 0) {
		return fmt.Errorf("position: negative epoch %d, batch %d or step %d", p.Epoch, p.Batch, p.Step)
	}
	if p := m.Position; p != nil && p.Partial != nil {
		if q := p.Partial; q.Seen < 0 || q.Images < 0 || q.Seconds < 0 || q.Hits < 0 || q.Skipped < 0 { // JSON holds no NaN or Inf
			return fmt.Errorf("position: epoch_partial holds a negative count (%+v)", *q)
		}
	}
	return nil
}

// Checkpoint is a loaded checkpoint: its metadata, the model built from it
// with the stored weights and statistics (in training mode, as built), and
// the optimizer state (keys without OptimizerPrefix; empty for imports).
//
// An int8 checkpoint (WriteInt8) loads with Int8 set: the quantized model
// to run. Its Net is then the float model's structure only (built from
// the config, batch norms folded, weights not loaded): it must not be run.
type Checkpoint struct {
	Meta
	// Net is the model, built from Meta.Model with the stored weights.
	Net nn.Layer
	// Optimizer holds the optimizer's state tensors by name.
	Optimizer map[string]*tensor.Tensor
	// Int8 is an int8 checkpoint's quantized model, nil for a float one.
	Int8 *quant.Model
}

// Write writes a checkpoint atomically: net's weights and batch norm
// counters (as int64, torchvision's num_batches_tracked), the optimizer
// state under OptimizerPrefix, and meta, which must be valid. It refuses
// what Load would refuse: non-finite weights, weights that are not the
// network meta.Model describes (fewer than it has, or a network whose
// batch norms are folded into its convolutions: models.ForInference and
// quant.Quantize fold them, and Load builds the unfolded network), an
// input size (meta.Preprocess) the model does not take. That check puts
// net in evaluation mode for a moment and back: net must not run on
// another goroutine meanwhile.
func Write(path string, net nn.Layer, meta Meta, optimizer map[string]*tensor.Tensor) error {
	if err := meta.Validate(); err != nil {
		return fmt.Errorf("checkpoint: writing %s: %w", path, err)
	}
	if err := writable(path, net); err != nil {
		return err
	}
	tensors := nn.TorchState(net)
	if err := checkFinite(tensors); err != nil {
		return fmt.Errorf("checkpoint: not writing %s: %w", path, err)
	}
	if err := checkHeld(meta, tensors, "the network"); err != nil {
		return fmt.Errorf("checkpoint: not writing %s: %w", path, err)
	}
	if err := checkInput(net, meta.Model.InputShape(1, meta.Preprocess.Height), meta.Preprocess); err != nil {
		return fmt.Errorf("checkpoint: not writing %s: %w", path, err)
	}
	for k, t := range optimizer {
		tensors[OptimizerPrefix+k] = t
	}
	md, err := meta.encode()
	if err != nil {
		return fmt.Errorf("checkpoint: writing %s: %w", path, err)
	}
	return safetensors.WriteDtypes(path, tensors, intDtypes(tensors), md)
}

// ExportWeights writes only a model's weights and batch norm counters,
// under their torchvision names, for PyTorch's load_state_dict. It
// refuses no network, a folded one (another network than the one those
// names load into) and non-finite weights, as Write does.
func ExportWeights(path string, net nn.Layer) error {
	if err := writable(path, net); err != nil {
		return err
	}
	tensors := nn.TorchState(net)
	if err := checkFinite(tensors); err != nil {
		return fmt.Errorf("checkpoint: not writing %s: %w", path, err)
	}
	return safetensors.WriteDtypes(path, tensors, intDtypes(tensors), nil)
}

// writable refuses to write a missing network or one whose batch norms
// are folded (nn.Folded) to path.
func writable(path string, net nn.Layer) error {
	switch {
	case typednil.Is(net):
		return fmt.Errorf("checkpoint: writing %s: no network", path)
	case nn.Folded(net):
		return fmt.Errorf("checkpoint: not writing %s: the network's batch norms are folded into its convolutions (models.ForInference, quant.Quantize), and a checkpoint holds the network its config builds; write it before folding", path)
	}
	return nil
}

// intDtypes stores the batch norm counters as int64, as PyTorch does.
func intDtypes(tensors map[string]*tensor.Tensor) map[string]string {
	d := map[string]string{}
	for k := range tensors {
		if strings.HasSuffix(k, "."+nn.NumBatchesTracked) {
			d[k] = "I64"
		}
	}
	return d
}

func (m Meta) encode() (map[string]string, error) {
	model, err := json.Marshal(m.Model)
	if err != nil {
		return nil, err
	}
	classes, err := json.Marshal(m.Classes)
	if err != nil {
		return nil, err
	}
	pre, err := json.Marshal(m.Preprocess)
	if err != nil {
		return nil, err
	}
	md := map[string]string{"format": Format, "model": string(model), "classes": string(classes), "preprocess": string(pre)}
	if m.Train != nil {
		md["train"] = string(m.Train)
	}
	if p := m.Position; p != nil {
		md["epoch"] = strconv.Itoa(p.Epoch)
		md["batch"] = strconv.Itoa(p.Batch)
		md["step"] = strconv.Itoa(p.Step)
		md["best_val_acc"] = strconv.FormatFloat(p.BestValAcc, 'g', -1, 64)
		md["rng"] = base64.StdEncoding.EncodeToString(p.RNG)
		if p.Partial != nil {
			b, err := json.Marshal(p.Partial)
			if err != nil {
				return nil, fmt.Errorf("checkpoint: the epoch's partial record: %w", err)
			}
			md["epoch_partial"] = string(b)
		}
		if len(p.EvalRead) > 0 {
			b, err := json.Marshal(p.EvalRead)
			if err != nil {
				return nil, fmt.Errorf("checkpoint: the evaluation sets' fingerprints: %w", err)
			}
			md["eval_read"] = string(b)
		}
	}
	return md, nil
}

// Load reads a checkpoint and rebuilds its model with the stored weights.
// Errors name the file and the field or tensor at fault.
func Load(path string) (*Checkpoint, error) {
	f, err := safetensors.Read(path)
	if err != nil {
		if st, serr := os.Stat(filepath.Join(path, "best.safetensors")); serr == nil && st.Mode().IsRegular() {
			return nil, fmt.Errorf("checkpoint: %w (a run folder: its checkpoints are %s and last.safetensors)", err, filepath.Join(path, "best.safetensors"))
		}
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	c, err := FromFile(f)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return c, nil
}

// FromFile rebuilds a checkpoint from a decoded safetensors file (Load
// without the reading). A nil file is an error.
func FromFile(f *safetensors.File) (*Checkpoint, error) {
	if f == nil {
		return nil, errors.New("checkpoint: no file (nil)")
	}
	meta, err := decodeMeta(f.Metadata)
	if err != nil {
		return nil, err
	}
	// A small file must not make the loader build a large model: the
	// weights it holds bound the model's size before anything is built
	// (the estimate is within 2% of the true count; a file holding the
	// whole state always passes).
	if err := checkHeld(meta, f.Tensors, "the file"); err != nil {
		return nil, err
	}
	net, err := models.Build(meta.Model, tensor.NewRNG(0))
	if err != nil {
		return nil, err
	}
	if err := checkInput(net, meta.Model.InputShape(1, meta.Preprocess.Height), meta.Preprocess); err != nil {
		return nil, err
	}
	c := &Checkpoint{Meta: meta, Net: net, Optimizer: map[string]*tensor.Tensor{}}
	switch pr, ok := f.Metadata[precisionKey]; {
	case ok && pr != "int8":
		return nil, fmt.Errorf("checkpoint: precision %q (this build reads int8 checkpoints and float32 ones, which say no precision)", pr)
	case !ok && f.Metadata["quant"] != "":
		return nil, fmt.Errorf(`checkpoint: quantization parameters but no "precision" metadata (an int8 checkpoint says "precision": "int8")`)
	}
	if IsInt8(f) {
		if err := fromInt8(f, meta, c); err != nil {
			return nil, err
		}
		return c, nil
	}
	weights := map[string]*tensor.Tensor{}
	for k, t := range f.Tensors {
		if o, ok := strings.CutPrefix(k, OptimizerPrefix); ok {
			c.Optimizer[o] = t
		} else {
			weights[k] = t
		}
	}
	if err := checkFinite(weights); err != nil {
		return nil, err
	}
	if err := nn.LoadTorchState(net, weights, true); err != nil {
		return nil, err
	}
	if err := loadCountersV1(net, f.Metadata, weights); err != nil {
		return nil, err
	}
	return c, nil
}

// checkHeld refuses a model config that describes more parameters than
// the tensors hold: on load, so that a small file cannot make the loader
// build a large model (the estimate is within 2% of the true count; a
// file holding the whole state always passes); on write, so that a
// network is not saved under another model's config (Load would refuse
// the file).
func checkHeld(meta Meta, tensors map[string]*tensor.Tensor, holder string) error {
	held := 0
	for k, t := range tensors {
		if !strings.HasPrefix(k, OptimizerPrefix) && !strings.HasSuffix(k, "."+nn.NumBatchesTracked) {
			held += len(t.Data)
		}
	}
	if est := meta.Model.Arch.ParamEstimate(); est > 1.05*float64(held)+1024 {
		return fmt.Errorf("model: the config describes about %.0f parameters, %s holds %d weight values", est, holder, held)
	}
	return nil
}

// checkFinite refuses weights holding a NaN or an infinity, naming the
// first such tensor (in name order) and how many of its values are bad: a
// model with them computes nothing usable, and a checkpoint that holds them
// is corrupt or comes from a diverged run.
func checkFinite(tensors map[string]*tensor.Tensor) error {
	var bad []string
	for k, t := range tensors {
		if t.HasNaNOrInf() {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return checkVariances(tensors)
	}
	k := slices.Min(bad)
	n, first := 0, -1
	for i, v := range tensors[k].Data {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			if n++; first < 0 {
				first = i
			}
		}
	}
	return fmt.Errorf("model: tensor %q holds %d non-finite values of %d (the first, at %d, is %v)", k, n, tensors[k].Len(), first, tensors[k].Data[first])
}

// checkVariances refuses a batch norm's negative running variance: the
// square root of var + eps would be NaN, or a huge scale for one just
// above -eps, in every output. (Other finite values can make a network
// compute garbage too; a variance has a sign it must have.)
func checkVariances(tensors map[string]*tensor.Tensor) error {
	var names []string
	for k := range tensors {
		if strings.HasSuffix(k, "running_var") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		for i, v := range tensors[k].Data {
			if v < 0 {
				return fmt.Errorf("model: batch norm variance %q holds %v at %d; a variance is ≥ 0", k, v, i)
			}
		}
	}
	return nil
}

// checkInput returns an error if the model, run in evaluation mode on one
// input of the preprocessing's size, would fail or make an activation of
// more than limits.TensorElements values. It runs on a shape tape: nothing
// is computed or allocated but shapes, and the model's modes are left as
// they were.
func checkInput(net nn.Layer, shape []int, p Preprocess) error {
	if len(shape) == 4 {
		shape = []int{1, p.Height, p.Width, shape[3]}
	}
	// In evaluation mode, as the checkpoint is used for one image: in
	// training mode a batch norm refuses one value per channel, and a
	// ResNet-18 at 32×32 (a 1×1 last map) could be neither written nor
	// read.
	defer nn.SaveModes(net)()
	nn.SetTraining(net, false)
	s, err := nn.Summarize(net, shape)
	if err != nil {
		return fmt.Errorf("preprocess: the model does not take %dx%d inputs: %w", p.Height, p.Width, err)
	}
	for _, l := range s.Layers {
		if err := limits.CheckElements("preprocess: activation of "+l.Name, l.OutputShape...); err != nil {
			return fmt.Errorf("%w at a %dx%d input", err, p.Height, p.Width)
		}
	}
	return nil
}

// decodeMeta reads and validates the metadata of either format.
func decodeMeta(md map[string]string) (Meta, error) {
	var m Meta
	switch md["format"] {
	case Format, formatV1:
	default:
		if md["format"] == "" {
			return m, errors.New("not a residual checkpoint (its metadata names no format): a PyTorch state dict, such as `residual export torch` writes, becomes one with `residual import torch`")
		}
		return m, fmt.Errorf("not a residual checkpoint (format %q)", md["format"])
	}
	var err error
	if m.Model, err = models.Unmarshal(md["model"]); err != nil {
		return m, fmt.Errorf("model: %w", err)
	}
	if err := json.Unmarshal([]byte(md["classes"]), &m.Classes); err != nil {
		return m, fmt.Errorf("classes: %w", err)
	}
	if err := json.Unmarshal([]byte(md["preprocess"]), &m.Preprocess); err != nil {
		return m, fmt.Errorf("preprocess: %w", err)
	}
	if t, ok := md["train"]; ok {
		if !json.Valid([]byte(t)) {
			return m, errors.New("train: not JSON")
		}
		m.Train = json.RawMessage(t)
	}
	if _, ok := md["rng"]; ok { // a training run's checkpoint
		p := &Position{}
		for _, f := range []struct {
			key string
			v   *int
		}{{"epoch", &p.Epoch}, {"batch", &p.Batch}, {"step", &p.Step}} {
			if *f.v, err = strconv.Atoi(md[f.key]); err != nil {
				return m, fmt.Errorf("%s: %q is not a count", f.key, md[f.key])
			}
		}
		if p.BestValAcc, err = strconv.ParseFloat(md["best_val_acc"], 64); err != nil {
			return m, fmt.Errorf("best_val_acc: %q is not a number", md["best_val_acc"])
		}
		if p.RNG, err = base64.StdEncoding.DecodeString(md["rng"]); err != nil {
			return m, fmt.Errorf("rng: %w", err)
		}
		if t, ok := md["epoch_partial"]; ok {
			p.Partial = &Partial{}
			if err := json.Unmarshal([]byte(t), p.Partial); err != nil {
				return m, fmt.Errorf("epoch_partial: %w", err)
			}
		}
		if t, ok := md["eval_read"]; ok {
			if err := json.Unmarshal([]byte(t), &p.EvalRead); err != nil {
				return m, fmt.Errorf("eval_read: %w", err)
			}
		}
		m.Position = p
	}
	return m, m.Validate()
}

// loadCountersV1 sets the batch norm counters of a first-format checkpoint,
// stored as a JSON map from layer name to count, unless the file has
// num_batches_tracked tensors.
func loadCountersV1(net nn.Layer, md map[string]string, weights map[string]*tensor.Tensor) error {
	raw, ok := md["num_batches_tracked"]
	if !ok {
		return nil
	}
	var tracked map[string]int64
	if err := json.Unmarshal([]byte(raw), &tracked); err != nil {
		return fmt.Errorf("num_batches_tracked: %w", err)
	}
	for _, l := range nn.Layers(net) {
		b, ok := l.Layer.(*nn.BatchNorm)
		if !ok {
			continue
		}
		if _, ok := weights[l.Name+"."+nn.NumBatchesTracked]; ok {
			continue
		}
		n, ok := tracked[l.Name]
		if !ok {
			continue
		}
		if n < 0 {
			return fmt.Errorf("num_batches_tracked: %s has %d", l.Name, n)
		}
		b.NumBatchesTracked = n
	}
	return nil
}
