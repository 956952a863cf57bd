package train

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/residual-nn/residual/data"
)

// Data sets in memory train like the named set they were cut from: the
// same run on MNIST's first 256 images, opened by name or given as
// TrainSet and TestSet, gives the same step losses, one per step; and one
// set without the other is refused.
func TestInMemoryDataSets(t *testing.T) {
	ctx := context.Background()
	named := tiny(t.TempDir())
	named.Epochs, named.ValSplit = 1, 0
	a, err := Run(ctx, named)
	if err != nil {
		t.Fatal(err)
	}
	tr, te, err := data.MNIST()
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, 256)
	for i := range idx {
		idx[i] = i
	}
	mem := named
	mem.Out, mem.Data, mem.Limit = t.TempDir(), "mnist's first 256 (in memory)", 0
	mem.TrainSet, mem.TestSet = tr.Subset(idx), te.Subset(idx)
	b, err := Run(ctx, mem)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.StepLoss) != 8 || len(b.StepLoss) != 8 { // 256 images, batch 32
		t.Fatalf("%d and %d step losses, want 8", len(a.StepLoss), len(b.StepLoss))
	}
	for i := range a.StepLoss {
		if a.StepLoss[i] != b.StepLoss[i] {
			t.Fatalf("step %d: loss %g by name, %g in memory", i+1, a.StepLoss[i], b.StepLoss[i])
		}
	}
	half := mem
	half.TestSet = nil
	if _, err := Run(ctx, half); err == nil || !strings.Contains(err.Error(), "TrainSet and TestSet") {
		t.Errorf("a training set without a test set: %v", err)
	}
}

// Data sets given in memory are checked before training: each valid, not
// empty, and the two agreeing in channels, size and classes. A mismatch
// once crashed the loader's goroutine (channels, short pixels) or the
// evaluation (more test classes).
func TestInMemoryDataSetsChecked(t *testing.T) {
	set := func(n, h, c int, classes ...string) *data.Dataset {
		return &data.Dataset{H: h, W: h, C: c, Pixels: make([]uint8, n*h*h*c), Labels: make([]int32, n), Classes: classes}
	}
	short := set(8, 8, 1, "a", "b")
	short.Pixels = short.Pixels[:10]
	same := set(8, 8, 1, "a", "b")
	for _, tc := range []struct {
		train, test *data.Dataset
		want        string
	}{
		{set(8, 8, 1, "a", "b"), set(4, 8, 3, "a", "b"), "1 channels, the test images 3"},
		{short, set(4, 8, 1, "a", "b"), "the training set: data: 10 pixel values for 8 images"},
		{set(8, 8, 1, "a", "b"), set(4, 8, 1, "a", "b", "c"), `classes ["a" "b"] differ from the test set's ["a" "b" "c"]`},
		{set(8, 8, 1, "a", "b"), set(0, 8, 1, "a", "b"), "the test set is empty"},
		{same, same, "Config.TrainSet and TestSet are the same data set"},
		{set(8, 8, 2, "a", "b"), set(4, 8, 2, "a", "b"), "2 channels; residual trains on 1 (grey) or 3 (RGB)"},
	} {
		cfg := tiny(t.TempDir())
		cfg.TrainSet, cfg.TestSet, cfg.Data, cfg.ValSplit, cfg.Limit = tc.train, tc.test, "in memory", 0, 0
		if _, err := Prepare(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error with %q, got %v", tc.want, err)
		}
	}
}

// Config.Validate refuses values that would train nonsense or fail late:
// an infinite learning rate, a NaN or out-of-range momentum, weight decay
// or validation split, a negative limit.
func TestConfigValidateRanges(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.LR = inf }, "learning rate"},
		{func(c *Config) { c.Momentum = nan }, "momentum"},
		{func(c *Config) { c.Momentum = -1 }, "momentum"},
		{func(c *Config) { c.Momentum = 5 }, "momentum"},
		{func(c *Config) { c.WeightDecay = nan }, "weight decay"},
		{func(c *Config) { c.WeightDecay = -1 }, "weight decay"},
		{func(c *Config) { c.ValSplit = nan }, "validation split"},
		{func(c *Config) { c.Limit = -5 }, "limit"},
	} {
		cfg := tiny(t.TempDir())
		tc.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error about %s, got %v", tc.want, err)
		}
	}
	cfg := tiny(t.TempDir())
	if err := cfg.Validate(); err != nil {
		t.Errorf("the tiny config: %v", err)
	}
}
