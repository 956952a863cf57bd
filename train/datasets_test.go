package train

import (
	"context"
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
