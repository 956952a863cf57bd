package train

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/unet"
	"github.com/residual-nn/residual/tensor"
)

// TestIoU checks IoU on hand-made confusion matrices, and FormatIoU.
func TestIoU(t *testing.T) {
	// 3 classes: class 0 all right (TP 5, FP 1 from class 1), class 1 TP 2,
	// FN 2 (1 to class 0, 1 to class 2), class 2 TP 0, FP 1, FN 0; a fourth
	// class never appears.
	conf := [][]int{{5, 0, 0, 0}, {1, 2, 1, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}}
	iou, mean := IoU(conf)
	want := []float64{5.0 / 6, 2.0 / 4, 0}
	for c, w := range want {
		if math.Abs(iou[c]-w) > 1e-12 {
			t.Errorf("class %d: IoU %g, want %g", c, iou[c], w)
		}
	}
	if !math.IsNaN(iou[3]) || math.Abs(mean-(5.0/6+0.5)/3) > 1e-12 {
		t.Errorf("absent class %g, mean %g", iou[3], mean)
	}
	// The commands print the absent class's NaN as n/a, saying why.
	if got := FormatIoU(iou[3]); got != "n/a (in no mask, predicted nowhere)" {
		t.Errorf("FormatIoU(NaN) = %q", got)
	}
	if got := FormatIoU(iou[0]); got != "0.8333" {
		t.Errorf("FormatIoU(5/6) = %q", got)
	}
	// A ragged matrix has no IoU (it used to index past its short row).
	if iou, mean := IoU([][]int{{1, 2}, {3}}); len(iou) != 2 || !math.IsNaN(iou[0]) || !math.IsNaN(mean) {
		t.Errorf("ragged matrix: %v, %v; want NaNs", iou, mean)
	}
}

// TestFitTargets checks that targets are centre-cropped to a valid
// U-Net's smaller output.
func TestFitTargets(t *testing.T) {
	b := data.Batch{X: tensor.New(2, 6, 5, 1), Y: make([]int32, 60), W: make([]float32, 60)}
	for i := range b.Y {
		b.Y[i], b.W[i] = int32(i), float32(i)
	}
	y, w := fitTargets(ag.Constant(tensor.New(2, 2, 3, 4)), b)
	want := []int32{11, 12, 13, 16, 17, 18, 41, 42, 43, 46, 47, 48}
	for i := range want {
		if y[i] != want[i] || w[i] != float32(want[i]) {
			t.Fatalf("cropped targets %v, weights %v, want %v", y, w, want)
		}
	}
}

// TestSegmentationTrains trains a small padded U-Net on 256 MNIST canvases
// for 4 epochs with each loss option: the training loss must fall, the
// background be found (IoU > 0.9) and the mean IoU beat what the
// background alone gives (its IoU / 11). Telling the digits apart takes a
// real run (docs/SEGMENTATION.md); this checks the machinery learns.
func TestSegmentationTrains(t *testing.T) {
	for _, loss := range []Loss{CE, CEDice} {
		c := unet.Config{InChannels: 1, Classes: 11, Depth: 2, Base: 8, BatchNorm: true}
		cfg := Config{Model: models.Config{Name: "unet-tiny", Arch: &models.UNet{Config: c}}, Data: "mnist-canvas:40", Task: models.Segment, Loss: loss,
			BorderWeights: loss == "ce", Epochs: 4, Batch: 16, Optimizer: "adam", LR: 1e-2, Schedule: Schedule{Kind: ScheduleConstant},
			ValSplit: 0.2, Seed: 1, Limit: 320, Out: t.TempDir(), TensorBoard: loss == CE}
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.TensorBoard { // the test mean IoU goes to TensorBoard too
			files, _ := filepath.Glob(filepath.Join(cfg.Out, "events.out.tfevents.*"))
			if len(files) != 1 {
				t.Fatalf("event files %v", files)
			}
			if b, err := os.ReadFile(files[0]); err != nil || !bytes.Contains(b, []byte("test/miou")) {
				t.Errorf("%s has no test/miou event (%v)", files[0], err)
			}
		}
		h := res.History
		if h[len(h)-1].TrainLoss >= h[0].TrainLoss || len(res.TestIoU) != 11 || res.TestIoU[0] < 0.9 || res.TestMeanIoU <= res.TestIoU[0]/11 {
			t.Errorf("%s: train loss %g → %g, test mean IoU %g %v", loss, h[0].TrainLoss, h[len(h)-1].TrainLoss, res.TestMeanIoU, res.TestIoU)
		}
	}
	bad := Config{Model: models.Config{Name: "unet-tiny", Arch: &models.UNet{Config: unet.Config{InChannels: 1, Classes: 10, Depth: 2, Base: 4}}},
		Data: "mnist", Task: models.Segment, Epochs: 1, Batch: 8, LR: 0.1, Out: t.TempDir(), Limit: 16}
	if _, err := Run(context.Background(), bad); err == nil {
		t.Error("segmenting a classification data set was accepted")
	}
}

// pixelClassifier is a segmentation "model" of 3 classes whose logits put
// 4 on the class its input pixel (scaled by 255) names, and on class 0
// where that is no class (an ignored pixel's 255).
type pixelClassifier struct{}

func (pixelClassifier) Forward(x *ag.Value) *ag.Value {
	s := x.Data.Shape
	out := tensor.New(s[0], s[1], s[2], 3)
	for p, v := range x.Data.Data {
		c := int(v*255 + 0.5)
		if c > 2 {
			c = 0
		}
		out.Data[3*p+c] = 4
	}
	return ag.Constant(out)
}

// TestIgnoredPixelsCountNowhere: the pixels of a set's ignored mask value
// (data.Dataset.Ignore) count in neither the loss nor the accuracy nor the
// confusion matrix: a model right on every other pixel scores 100%, with
// the cross-entropy of its logits there (log(1 + 2e⁻⁴)) — where it had
// counted the ignored pixels as wrong.
func TestIgnoredPixelsCountNowhere(t *testing.T) {
	d := &data.Dataset{H: 3, W: 4, C: 1, Classes: []string{"a", "b", "c"}, Ignore: data.Ignore{Set: true, Value: 255}}
	for i := range 5 {
		for p := range 12 {
			m := uint8((p + i) % 3)
			if (p+i)%4 == 0 {
				m = 255
			}
			d.Pixels, d.Masks = append(d.Pixels, m), append(d.Masks, m)
		}
	}
	e, err := Evaluate(context.Background(), pixelClassifier{}, &data.Loader{Data: d, Batch: 2}, 3, ag.FP32)
	if err != nil {
		t.Fatal(err)
	}
	counted := 0
	for _, row := range e.Confusion {
		for _, n := range row {
			counted += n
		}
	}
	want := math.Log(1 + 2*math.Exp(-4))
	if e.Accuracy != 1 || counted != 45 || math.Abs(e.Loss-want) > 1e-6 {
		t.Errorf("accuracy %g over %d pixels (want 1 over the 45 not ignored), loss %g (want %g)", e.Accuracy, counted, e.Loss, want)
	}
}
