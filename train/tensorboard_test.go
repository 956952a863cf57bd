package train

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/residual-nn/residual/tensorboard"
)

// A run with TensorBoard on leaves one event file in the run folder
// holding every step's loss and learning rate, the per-epoch metrics, the
// test results and the curves' images (their tags appear in the records;
// package tensorboard's own tests decode the records against an
// independent reader).
func TestTensorBoardEvents(t *testing.T) {
	cfg := tiny(t.TempDir())
	cfg.Epochs, cfg.TensorBoard = 1, true
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(cfg.Out, "events.out.tfevents.*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("event files in the run folder: %v (%v); want one", files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{tensorboard.TagLoss, tensorboard.TagLR, tensorboard.EpochPrefix + "val_acc", "test/acc", tensorboard.CurvesPrefix + "loss", tensorboard.CurvesPrefix + "step_loss"} {
		if !bytes.Contains(b, []byte(tag)) {
			t.Errorf("%s has no %q events", files[0], tag)
		}
	}
	// 192 training images (256 less the 25% validation split) in batches
	// of 32: 6 steps, each an event naming train/loss.
	if n := bytes.Count(b, []byte(tensorboard.TagLoss)); n != 6 {
		t.Errorf("%d train/loss events, want 6 (one per step)", n)
	}
}
