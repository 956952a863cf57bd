package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

func runSummary(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("summary", stderr)
	input := fs.String("input", "", "input image size HxW (default: the model's published size)")
	classes := fs.Int("classes", 0, "number of classes (default: the model's)")
	inCh := fs.Int("in-channels", 0, "input channels (default: the model's)")
	base := fs.Int("base", 0, "U-Nets: channels of the first level (default: the model's), as train --base")
	asJSON := fs.Bool("json", false, "print one JSON object")
	fs.Usage = func() {
		printUsage(fs, fmt.Sprintf("models: %s (and %s)", strings.Join(models.Names(), ", "), models.NameRules))
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want one model name, got %d arguments", errUsage, len(pos))
	}
	cfg, err := models.Preset(pos[0])
	if err != nil {
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
	if err := cfg.Validate(); err != nil { // a name Preset reads but beyond the limits (resnet999999999999999992)
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
		return json.NewEncoder(stdout).Encode(struct {
			Model string `json:"model"`
			*nn.Summary
		}{pos[0], s})
	}
	fmt.Fprintf(stdout, "%s\n", pos[0])
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
