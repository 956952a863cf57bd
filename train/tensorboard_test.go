package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

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
	for _, tag := range []string{tensorboard.TagLoss, tensorboard.TagLR, tensorboard.EpochPrefix + "val_acc", "test/acc", "test/top5", tensorboard.CurvesPrefix + "loss", tensorboard.CurvesPrefix + "step_loss"} {
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

// sessionStarts returns the steps of the session-start records of a
// TensorBoard event file (TFRecord framing; Event.step is field 2,
// Event.session_log field 7).
func sessionStarts(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var starts []int64
	for len(b) >= 12 {
		n := int(binary.LittleEndian.Uint64(b))
		if len(b) < 16+n {
			t.Fatalf("%s: a truncated record", path)
		}
		ev := b[12 : 12+n]
		b = b[16+n:]
		var step int64
		session := false
		for len(ev) > 0 {
			num, typ, k := protowire.ConsumeTag(ev)
			if k < 0 {
				t.Fatalf("%s: %v", path, protowire.ParseError(k))
			}
			ev = ev[k:]
			if num == 2 && typ == protowire.VarintType {
				v, _ := protowire.ConsumeVarint(ev)
				step = int64(v)
			}
			session = session || num == 7
			k = protowire.ConsumeFieldValue(num, typ, ev)
			if k < 0 {
				t.Fatalf("%s: %v", path, protowire.ParseError(k))
			}
			ev = ev[k:]
		}
		if session {
			starts = append(starts, step)
		}
	}
	return starts
}

// A run starts its session at step 1, and a resumed one at the step after
// its checkpoint's: TensorBoard drops the points of earlier files at steps
// from the session start on, and a start at the checkpoint's own step
// dropped that step's loss and, when a finished run was resumed to train
// on, the whole last epoch's metrics.
func TestTensorBoardSessionStart(t *testing.T) {
	cfg := tiny(t.TempDir())
	cfg.Epochs, cfg.TensorBoard = 1, true
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Epochs, cfg.Resume = 2, true
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(cfg.Out, "events.out.tfevents.*"))
	if err != nil || len(files) != 2 {
		t.Fatalf("event files in the run folder: %v (%v); want two", files, err)
	}
	// 6 steps an epoch (TestTensorBoardEvents).
	for i, want := range []int64{1, 7} {
		if got := sessionStarts(t, files[i]); !slices.Equal(got, []int64{want}) {
			t.Errorf("%s: session starts at steps %v, want [%d]", files[i], got, want)
		}
	}
}
