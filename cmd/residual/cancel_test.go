package main

import (
	"bytes"
	"context"
	"math"
	"reflect"
	"strings"
	"syscall"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/tensor"
	"github.com/residual-nn/residual/train"
)

// cancelledBy returns a context cancelled as main's is by sig.
func cancelledBy(sig syscall.Signal) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(signalCause{sig})
	return ctx
}

// stopsAt runs args with a context that SIGTERM has cancelled and checks
// that the command stops with status 143, saying why, and prints no result.
func stopsAt(t *testing.T, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(cancelledBy(syscall.SIGTERM), args, &stdout, &stderr)
	if code != 143 || !strings.Contains(stderr.String(), "stopped by SIGTERM") {
		t.Errorf("%q after SIGTERM: exit %d, stderr %q; want 143 and the signal named", args, code, stderr.String())
	}
	if stdout.Len() > 0 && args[0] != "experiment" && args[0] != "demo" { // these print what they start first
		t.Errorf("%q after SIGTERM printed %q", args, stdout.String())
	}
}

// TestCommandsStopWhenCancelled covers the commands that need no
// checkpoint; TestTrainEvalPredict, TestImportExport and
// TestTrainAndSegment cover the others.
func TestCommandsStopWhenCancelled(t *testing.T) {
	dir := t.TempDir()
	stopsAt(t, "summary", "resnet50")
	stopsAt(t, "demo")
	stopsAt(t, "bench", "cifar20-train")
	stopsAt(t, "export", "onnx", "--model", "resnet8", "--out", dir+"/x.onnx")
	for _, name := range []string{"bottleneck", "variance", "shatter"} {
		stopsAt(t, "experiment", name, "--out", dir+"/"+name)
	}
}

// TestEvaluateInBatches: eval's batch-by-batch evaluation (which checks the
// context between batches) gives train.Evaluate's confusion matrix and
// accuracy exactly, and its loss to 1e-12 relative: the per-batch sums are
// the same float32 sums, and regrouping them as mean × count adds two
// float64 roundings (2^-53 each) per batch.
func TestEvaluateInBatches(t *testing.T) {
	_, test, err := data.MNIST()
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, 600) // two full batches and a partial one
	for i := range idx {
		idx[i] = i
	}
	test = test.Subset(idx)
	mc, err := models.Preset("resnet8")
	if err != nil {
		t.Fatal(err)
	}
	mc.SetInChannels(1)
	net, err := models.Build(mc, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	mean, std := []float64{0.1307}, []float64{0.3081}
	whole := train.EvaluateAll(net, &data.Loader{Data: test, Batch: evalBatch, Mean: mean, Std: std}, 10)
	wantLoss, wantAcc, wantConf := whole.Loss, whole.Accuracy, whole.Confusion
	loss, acc, top5, conf, err := evaluate(context.Background(), net, test, mean, std, 10, ag.FP32)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(conf, wantConf) || acc != wantAcc || math.Abs(loss-wantLoss) > 1e-12*wantLoss {
		t.Errorf("in batches: loss %v acc %v; in one pass: loss %v acc %v (confusion equal: %v)", loss, acc, wantLoss, wantAcc, reflect.DeepEqual(conf, wantConf))
	}
	// Per-batch fractions weighted back into counts: equal up to float64
	// rounding of a few operations.
	if math.Abs(top5-whole.Top5) > 1e-12 || top5 < acc {
		t.Errorf("top-5 in batches %v, in one pass %v (accuracy %v)", top5, whole.Top5, acc)
	}
	if _, _, _, _, err := evaluate(cancelledBy(syscall.SIGINT), net, test, mean, std, 10, ag.FP32); err == nil || err.Error() != "stopped by SIGINT" {
		t.Errorf("cancelled: %v", err)
	}
}
