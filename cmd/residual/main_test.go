package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCLIErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"nonsense"}, 2, `unknown command "nonsense"`},
		{[]string{"demo", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"demo", "--steps", "0"}, 2, "must be positive"},
		{[]string{"demo", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"help"}, 0, ""},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, errb.String(), tc.msg)
		}
	}
}

func TestDemoLossFalls(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"demo", "--steps", "60", "--depth", "2", "--width", "16"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "mse fell from") {
		t.Errorf("output: %s", out.String())
	}
}

func TestDemoStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"demo"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "stopped at step 0") {
		t.Errorf("cancelled demo: exit %d, %q", code, errb.String())
	}
}
