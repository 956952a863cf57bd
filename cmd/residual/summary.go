package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

func runSummary(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("summary", stderr)
	input := fs.String("input", "", "input image size HxW (default: the model's published size; a checkpoint's: the size its preprocessing records)")
	classes := fs.Int("classes", 0, "number of classes (default: the model's; a checkpoint has its own)")
	inCh := fs.Int("in-channels", 0, "input channels (default: the model's; a checkpoint has its own)")
	base := fs.Int("base", 0, "U-Nets: channels of the first level (default: the model's; a checkpoint has its own), as train --base")
	asJSON := fs.Bool("json", false, "print one JSON object")
	fs.Usage = func() {
		printUsage(fs, fmt.Sprintf("models: %s (and %s)\n\n"+
			"CKPT: a checkpoint (.safetensors: trained, fine-tuned, imported or int8): its model as its\n"+
			"metadata records it, at the input size its preprocessing records; --classes, --in-channels\n"+
			"and --base must agree with it", strings.Join(models.Names(), ", "), models.NameRules))
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want one model name or checkpoint, got %d arguments", errUsage, len(pos))
	}
	cfg, err := models.Preset(pos[0])
	if _, serr := os.Stat(pos[0]); looksLikePath(pos[0]) || err != nil && serr == nil {
		return summarizeCheckpoint(ctx, pos[0], *input, *classes, *inCh, *base, *asJSON, stdout)
	}
	if err != nil { // neither a model nor a file
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *classes > 0 {
		cfg.SetClasses(*classes)
	}
	if *inCh > 0 {
		cfg.SetInChannels(*inCh)
	}
	if *base > 0 {
		u, ok := cfg.Arch.(*models.UNet)
		if !ok {
			return fmt.Errorf("%w: --base is for U-Nets", errUsage)
		}
		u.Base = *base
	}
	if err := cfg.Validate(); err != nil { // a config past the limits: resnet98306's weights, a U-Net's --base
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	shape, err := withSize(cfg.InputShape(1, cfg.DefaultSide()), *input, cfg, pos[0])
	if err != nil {
		return err
	}
	if err := stopped(ctx); err != nil {
		return err
	}
	m, err := models.Build(cfg, tensor.NewRNG(0))
	if err != nil {
		return err
	}
	if err := stopped(ctx); err != nil {
		return err
	}
	nn.SetTraining(m, false) // shapes as inference sees them: a batch norm over a 1x1 map is no error there
	s, err := nn.Summarize(m, shape)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(summaryJSON{Model: pos[0], Summary: s})
	}
	fmt.Fprintf(stdout, "%s\n", pos[0])
	s.Print(stdout)
	return nil
}

// summaryJSON is what summary --json prints: the model's name, for a
// checkpoint its path (and "int8" for an int8 one), and the summary.
type summaryJSON struct {
	Model      string `json:"model"`
	Checkpoint string `json:"checkpoint,omitempty"`
	Precision  string `json:"precision,omitempty"`
	*nn.Summary
}

// looksLikePath reports whether summary's argument names a file rather
// than a model: no model name has a slash or a file's extension.
func looksLikePath(arg string) bool {
	if strings.ContainsRune(arg, '/') || strings.ContainsRune(arg, filepath.Separator) {
		return true
	}
	switch strings.ToLower(filepath.Ext(arg)) {
	case ".safetensors", ".pth", ".pt", ".onnx":
		return true
	}
	return false
}

// summarizeCheckpoint prints the summary of the checkpoint at path: its
// model as its metadata records it, at the input size its preprocessing
// records (or input, HxW). The flags that set a model name's classes,
// input channels and U-Net base must agree with the checkpoint's. An
// int8 checkpoint is summarised as the float model its graph was traced
// from, batch norms folded into the layers before them, at its one input
// size, with the int8 model's parameters.
func summarizeCheckpoint(ctx context.Context, path, input string, classes, inCh, base int, asJSON bool, stdout io.Writer) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s does not exist (summary takes a model name, such as resnet50, or a checkpoint file)", path)
	case err == nil && st.IsDir():
		return checkCheckpoint("", path)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".pth", ".pt":
		return fmt.Errorf("%w: %s is a PyTorch file, and summary reads residual checkpoints: import it (residual import torch %s --model NAME --out CKPT.safetensors), or summarise the model by name", errUsage, path, path)
	case ".onnx":
		return fmt.Errorf("%w: %s is an ONNX model, and summary reads residual checkpoints: import it (residual import onnx %s --out CKPT8.safetensors, for a QDQ int8 model), or summarise the model by name", errUsage, path, path)
	}
	c, err := checkpoint.Load(path)
	if err != nil {
		return err
	}
	if err := stopped(ctx); err != nil {
		return err
	}
	m := c.Model
	switch u, unet := m.Arch.(*models.UNet); {
	case classes > 0 && classes != m.Classes():
		n := fmt.Sprintf("%d classes", m.Classes())
		if m.Classes() == 1 {
			n = "1 class"
		}
		return badFlag("classes", classes, "%s holds %s with %s, which its weights fix (--classes sets a model name's)", path, m.Name, n)
	case inCh > 0 && inCh != m.InChannels():
		return badFlag("in-channels", inCh, "%s holds %s with %s, which its weights fix (--in-channels sets a model name's)", path, m.Name, counted(m.InChannels(), "input channel"))
	case base > 0 && !unet:
		return fmt.Errorf("%w: --base is for U-Nets", errUsage)
	case base > 0 && base != u.Base:
		return badFlag("base", base, "%s holds %s with base %d, which its weights fix (--base sets a model name's)", path, m.Name, u.Base)
	}
	if c.Int8 != nil {
		if err := checkInt8Size(c, input); err != nil {
			return err
		}
	}
	shape, err := withSize(checkpointInput(c), input, m, m.Name)
	if err != nil {
		return err
	}
	nn.SetTraining(c.Net, false)
	s, err := nn.Summarize(c.Net, shape)
	if err != nil {
		return err
	}
	out := summaryJSON{Model: m.Name, Checkpoint: path, Summary: s}
	head := fmt.Sprintf("%s (%s)", m.Name, path)
	if c.Int8 != nil {
		// The layers hold what the int8 model holds: the folded batch
		// norms' γ and β, left in the float structure, are not in it,
		// and nothing of it trains.
		s.TotalParams, s.TrainableParams = 0, 0
		for _, l := range c.Int8.Layers() {
			s.TotalParams += len(l.W) + len(l.Bias)
		}
		out.Precision = "int8"
		in := fmt.Sprint(c.Int8.InputShape()) // an MLP's [N,inputs]
		if s := c.Int8.InputShape(); len(s) == 4 {
			in = fmt.Sprintf("%dx%d", s[1], s[2])
		}
		head = fmt.Sprintf("%s in int8 (%s): batch norms folded into the layers before them, int8 weights and int32 biases, input %s only", m.Name, path, in)
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintln(stdout, head)
	s.Print(stdout)
	return nil
}

// withSize returns shape (NHWC) with the image size of an --input flag
// ("HxW"; empty keeps shape) for the model m (named model), refusing a
// size it cannot take: a U-Net's every level must halve evenly.
func withSize(shape []int, size string, m models.Config, model string) ([]int, error) {
	if size == "" {
		return shape, nil
	}
	h, w, err := parseSize(size)
	if err != nil {
		return nil, err
	}
	if err := limits.CheckImage("--input "+size, w, h); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(shape) != 4 {
		return nil, fmt.Errorf("%w: %s takes no image size", errUsage, model)
	}
	if u, ok := m.Arch.(*models.UNet); ok {
		for _, side := range []int{h, w} {
			if _, err := u.Config.OutputSize(side); err != nil {
				return nil, badFlag("input", size, "%s cannot take it: %v", model, err)
			}
		}
	}
	shape[1], shape[2] = h, w
	return shape, nil
}
