package train

import (
	"context"
	"math"
	"testing"
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
	bf.Precision = "bf16"
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
	bad.Precision = "fp16"
	if _, err := Run(ctx, bad); err == nil {
		t.Error("precision fp16 accepted")
	}
}
