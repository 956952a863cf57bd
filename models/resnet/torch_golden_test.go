package resnet

import (
	"fmt"
	"testing"

	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/tensor"
)

// Every block type — five orderings, bottlenecks v1 and v1.5 post- and
// pre-activated, shortcut options A, B and C, plain counterparts, a scaled
// branch — against PyTorch in training and evaluation mode: output,
// gradients of the input and every parameter, running statistics, at
// |got − want| ≤ 1e-5·(|want| + max|want|).
func TestTorchGoldenBlocks(t *testing.T) {
	f, err := fixture.Load("../../testdata/torch/models.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	seen := map[Ordering]bool{}
	for _, c := range f.Cases {
		if c.Op != "block" {
			continue
		}
		n++
		a := c.Attrs
		cfg := Config{Block: a["kind"].(string), Ordering: Ordering(a["ordering"].(string)), Shortcut: Shortcut(a["shortcut"].(string)),
			Plain: a["plain"].(bool), BranchScale: float32(a["scale"].(float64)), StrideOn1x1: a["v1"].(bool)}
		seen[cfg.Ordering] = true
		b := NewBlock(tensor.NewRNG(1), cfg, c.Int("cin"), c.Int("width"), c.Int("stride"))
		name := fmt.Sprintf("%s/%s/%s/plain=%v/v1=%v/stride%d/scale%.3g/train=%v", cfg.Block, cfg.Ordering, cfg.Shortcut, cfg.Plain, cfg.StrideOn1x1, c.Int("stride"), cfg.BranchScale, c.Bool("training"))
		for _, err := range fixture.CheckModel(c, b, 1e-5) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n < 40 || len(seen) != 5 {
		t.Errorf("fixture has %d block cases over %d orderings", n, len(seen))
	}
}
