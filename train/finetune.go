package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensor"
)

// EMACheckpoint is the run folder's checkpoint of the moving average of
// the weights (Config.EMA), written every epoch.
const EMACheckpoint = "ema.safetensors"

// under says whether the tensor or module name lies under the module
// prefix ("layer1" covers "layer1.0.conv1.weight", not "layer10").
func under(name, prefix string) bool {
	return name == prefix || strings.HasPrefix(name, prefix+".")
}

// headName returns the module name of the classifier head of a model of
// the config's family: resnet's fc, unet's and mlp's head.
func headName(mc models.Config, m nn.Layer) (string, error) {
	var head string
	switch mc.Kind() {
	case "resnet":
		head = "fc"
	case "unet", "mlp":
		head = "head"
	default:
		return "", fmt.Errorf("train: no known classifier head for a %s model", mc.Kind())
	}
	for _, e := range nn.StateDict(m) {
		if under(e.Name, head) {
			return head, nil
		}
	}
	return "", fmt.Errorf("train: the %s model has no %q module (its classifier head)", mc.Kind(), head)
}

// modelFromInit gives a run with an init checkpoint the checkpoint's
// network when Config.Model names none (Arch nil), and warns when the model
// asked for is built differently from the checkpoint's (say torchvision's
// ResNet-50 v1.5 for Keras's v1, whose stride sits in the first 1×1
// convolution and whose batch norms use eps 1e-3): the tensors would load
// by name and shape into a network that computes something else.
func modelFromInit(cfg *Config, init *checkpoint.Checkpoint) error {
	if cfg.Model.Arch == nil {
		m, err := init.Model.Clone()
		if err != nil {
			return fmt.Errorf("train: --init (Config.Init) %s: model config: %w", cfg.Init, err)
		}
		cfg.Model = m
		return nil
	}
	want, err := cfg.Model.Clone()
	if err != nil {
		return fmt.Errorf("train: model config: %w", err)
	}
	have, err := init.Model.Clone()
	if err != nil || have.Kind() != want.Kind() {
		return nil // another family: loading by name and shape says what fits
	}
	have.SetClasses(want.Classes())
	have.SetInChannels(want.InChannels())
	if a, b := jsonText(have.Arch), jsonText(want.Arch); a != b && cfg.Log != nil {
		fmt.Fprintf(cfg.Log, "init: warning: --model %s is not built like the checkpoint's %s (%s against %s); leave out --model to fine-tune the checkpoint's own network\n",
			cfg.Model.Name, init.Model.Name, b, a)
	}
	return nil
}

// jsonText returns v as JSON (empty if it cannot be written).
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// loadInit reads Config.Init's checkpoint.
func loadInit(path string) (*checkpoint.Checkpoint, error) {
	c, err := checkpoint.Load(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("train: --init (Config.Init): no checkpoint at %s", path)
		}
		return nil, fmt.Errorf("train: --init (Config.Init): %w", err)
	}
	if c.Int8 != nil {
		return nil, fmt.Errorf("train: --init (Config.Init): %s is an int8 checkpoint (residual quantize's output), which holds no float weights to start from; give the float checkpoint it was quantized from", path)
	}
	return c, nil
}

// loadInit copies every tensor of the init checkpoint whose name and shape
// match into the model, and reports what it left freshly initialised.
func (r *run) loadInit(c *checkpoint.Checkpoint) error {
	src, dst := nn.TorchState(c.Net), nn.TorchState(r.model)
	keep := map[string]*tensor.Tensor{}
	var fresh []string
	for k, t := range dst {
		if s, ok := src[k]; ok && tensor.SameShape(s.Shape, t.Shape) {
			keep[k] = s
		} else if !strings.HasSuffix(k, "."+nn.NumBatchesTracked) {
			fresh = append(fresh, k)
		}
	}
	if len(keep) == 0 {
		return fmt.Errorf("train: --init (Config.Init) %s: none of its tensors fits the %s model by name and shape", r.cfg.Init, r.cfg.Model.Name)
	}
	if err := nn.LoadTorchState(r.model, keep, false); err != nil {
		return fmt.Errorf("train: --init (Config.Init) %s: %w", r.cfg.Init, err)
	}
	slices.Sort(fresh)
	fmt.Fprintf(r.cfg.Log, "init: loaded %d tensors from %s (%d classes; the data has %d)\n", len(keep), r.cfg.Init, len(c.Classes), len(r.trainSet.Classes))
	if len(fresh) > 0 {
		fmt.Fprintf(r.cfg.Log, "init: left freshly initialised (no tensor of that name and shape in the checkpoint): %s\n", strings.Join(fresh, ", "))
	}
	return nil
}

// freeze applies Config.Freeze.
func (r *run) freeze() error {
	if len(r.cfg.Freeze) == 0 {
		return nil
	}
	prefixes, err := r.freezePrefixes(r.cfg.Freeze)
	if err != nil {
		return err
	}
	n, err := nn.Freeze(r.model, prefixes...)
	if err != nil {
		return configError{fmt.Errorf("train: --freeze (Config.Freeze) %s: %w", strings.Join(r.cfg.Freeze, ","), err)}
	}
	fmt.Fprintf(r.cfg.Log, "froze %d parameter tensors (%s)\n", n, strings.Join(prefixes, ", "))
	return nil
}

// freezePrefixes resolves Config.Freeze's names to module prefixes:
// "backbone" is every top-level module but the head.
func (r *run) freezePrefixes(freeze []string) ([]string, error) {
	var prefixes []string
	for _, p := range freeze {
		if p != "backbone" {
			prefixes = append(prefixes, p)
			continue
		}
		if r.head == "" {
			_, err := headName(r.cfg.Model, r.model)
			return nil, err
		}
		for _, e := range nn.StateDict(r.model) { // the top-level modules but the head
			top, _, _ := strings.Cut(e.Name, ".")
			if top != r.head && !slices.Contains(prefixes, top) {
				prefixes = append(prefixes, top)
			}
		}
	}
	return prefixes, nil
}

// underPrefix reports whether a state-dict name is a module prefix's (as
// nn.Freeze reads them: "layer1" covers "layer1.0.conv1.weight", not
// "layer10"; "" covers everything).
func underPrefix(name, prefix string) bool {
	return prefix == "" || name == prefix || strings.HasPrefix(name, prefix+".")
}

// startEMA begins the moving average of the model's tensors, from the run
// folder's EMA checkpoint when resuming.
func (r *run) startEMA() error {
	var err error
	if r.emaModel, err = models.Build(r.cfg.Model, tensor.NewRNG(0)); err != nil {
		return err
	}
	var ts []*tensor.Tensor
	for _, e := range nn.StateDict(r.model) {
		ts = append(ts, e.Tensor)
	}
	if r.ema, err = optim.NewEMA(ts, r.cfg.EMA); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if !r.cfg.Resume {
		return nil
	}
	path := filepath.Join(r.cfg.Out, EMACheckpoint)
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(r.cfg.Log, "no %s to resume the moving average from; it restarts from the current weights\n", path)
		return nil
	}
	c, err := checkpoint.Load(path)
	if err != nil {
		return fmt.Errorf("train: resuming the moving average: %w", err)
	}
	if c.Position != nil && c.Position.Step != r.opt.Steps() { // killed between writing it and the last checkpoint
		fmt.Fprintf(r.cfg.Log, "%s holds the moving average at step %d, the run resumes at step %d; it restarts from the current weights\n", path, c.Position.Step, r.opt.Steps())
		return nil
	}
	if err := nn.LoadTorchState(r.emaModel, nn.TorchState(c.Net), true); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	for i, e := range nn.StateDict(r.emaModel) {
		copy(r.ema.Averages()[i].Data, e.Tensor.Data)
	}
	return nil
}

// emaWeights returns the EMA model holding the current averages.
func (r *run) emaWeights() nn.Layer {
	for i, e := range nn.StateDict(r.emaModel) {
		copy(e.Tensor.Data, r.ema.Averages()[i].Data)
	}
	return r.emaModel
}

// evaluateEMA validates the moving average of the weights.
func (r *run) evaluateEMA(ctx context.Context) (evaluation, error) {
	return r.evaluateOn(ctx, r.emaWeights(), false)
}

// score is the validation metric that picks the best checkpoint.
func (r *run) score(m Metrics) float64 {
	if r.cfg.Task == models.Segment {
		return m.ValMeanIoU
	}
	return m.ValAcc
}

func (r *run) scoreName() string {
	if r.cfg.Task == models.Segment {
		return "mean IoU"
	}
	return "accuracy"
}

// staleEpochs counts the epochs since the validation metric last improved
// (from the history, so that it survives resumption).
func (r *run) staleEpochs() int {
	best, at := 0.0, -1
	for i, m := range r.history {
		if s := r.score(m); at < 0 || s > best {
			best, at = s, i
		}
	}
	return len(r.history) - 1 - at
}
