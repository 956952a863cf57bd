package train

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
)

// TestBF16TracksFP32 trains the tiny ResNet for 2 epochs (16 steps) in
// float32 and in bfloat16 autocast from the same seed: the epochs' mean
// training losses must agree within 5% of the float32 loss, and the runs
// must differ (the bfloat16 path ran). Why 5%: every convolution's
// operands are rounded by up to 2⁻⁸ relative (bfloat16's unit roundoff),
// so a step's gradients differ by about 2·2⁻⁸ ≈ 0.8% relative; over 16
// SGD steps with momentum 0.9 (an effective horizon of 10 steps) the
// weights drift apart by at most a few such steps' updates, and the
// loss, smooth in the weights, moves by a few percent at most. PyTorch's
// autocast is held to the same kind of tolerance: its AMP recipes are
// accepted when the loss curve tracks float32's within a few percent.
func TestBF16TracksFP32(t *testing.T) {
	ctx := context.Background()
	fp := tiny(t.TempDir())
	want, err := Run(ctx, fp)
	if err != nil {
		t.Fatal(err)
	}
	bf := tiny(t.TempDir())
	bf.Precision = ag.BF16
	got, err := Run(ctx, bf)
	if err != nil {
		t.Fatal(err)
	}
	same := true
	for i, h := range want.History {
		g := got.History[i]
		t.Logf("epoch %d: train loss fp32 %.5f bf16 %.5f, val acc %.4f %.4f", i+1, h.TrainLoss, g.TrainLoss, h.ValAcc, g.ValAcc)
		if math.Abs(g.TrainLoss-h.TrainLoss) > 0.05*h.TrainLoss || math.IsNaN(g.TrainLoss) {
			t.Errorf("epoch %d: bf16 train loss %g, fp32 %g: more than 5%% apart", i+1, g.TrainLoss, h.TrainLoss)
		}
		same = same && g.TrainLoss == h.TrainLoss
	}
	if same {
		t.Error("bf16 and fp32 losses are identical: the bfloat16 kernels did not run")
	}
	bad := tiny(t.TempDir())
	bad.Precision = ag.Precision(7)
	if _, err := Run(ctx, bad); err == nil || !strings.Contains(err.Error(), "unknown precision ag.Precision(7)") {
		t.Errorf("precision 7: %v", err)
	}
	// The config as recorded in a checkpoint: the precision by its name,
	// none for the default; a name read back.
	for _, c := range []struct {
		p    ag.Precision
		json string
	}{{ag.BF16, `"precision":"bf16"`}, {ag.FP32, ""}} {
		cfg := tiny(t.TempDir())
		cfg.Precision = c.p
		raw, err := json.Marshal(cfg)
		if err != nil || !strings.Contains(string(raw), c.json) || c.p == ag.FP32 && strings.Contains(string(raw), "precision") {
			t.Errorf("%v in JSON: %s, %v", c.p, raw, err)
		}
		var back Config
		if err := json.Unmarshal(raw, &back); err != nil || back.Precision != c.p {
			t.Errorf("%s read back: %v, %v", raw, back.Precision, err)
		}
	}
	var back Config
	if err := json.Unmarshal([]byte(`{"precision":"fp16"}`), &back); err == nil || !strings.Contains(err.Error(), `unknown precision "fp16"`) {
		t.Errorf(`{"precision":"fp16"} read: %v`, err)
	}
}
