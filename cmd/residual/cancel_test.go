package main

import (
	"bytes"
	"context"
	"strings"
	"syscall"
	"testing"
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
