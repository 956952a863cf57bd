package main

import (
	"bytes"
	"context"
	"go/parser"
	"go/token"
	"runtime"
	"strings"
	"testing"

	"github.com/residual-nn/residual/internal/kernels"
)

// TestHelp: help (also 'help help' and 'help --help') goes to standard
// output with status 0 and shows each command's positional arguments;
// 'help CMD', 'CMD -h' and 'CMD --help' print the same usage and flags;
// mistakes go to standard error with status 2.
func TestHelp(t *testing.T) {
	call := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"help", "help"}, {"help", "-h"}, {"help", "--help"}, {"help", "-help"}} {
		code, out, errs := call(args...)
		if code != 0 || errs != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
		for _, want := range []string{"residual predict --weights CKPT [--top K] IMAGE...", "residual summary [flags] MODEL", "residual summary [flags] CKPT",
			"residual export torch --weights CKPT --out FILE.safetensors", "residual version", "residual help [COMMAND]"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: standard output lacks %q:\n%s", args, want, out)
			}
		}
	}
	for name := range commands {
		code, help, errs := call("help", name)
		if code != 0 || errs != "" || !strings.HasPrefix(help, "usage: residual "+name) {
			t.Errorf("help %s: exit %d, stdout %q, stderr %q", name, code, help, errs)
		}
		for _, flag := range []string{"-h", "--help"} {
			if code, out, errs := call(name, flag); code != 0 || errs != "" || out != help {
				t.Errorf("%s %s: exit %d, stderr %q, stdout differs from help %s:\n%s", name, flag, code, errs, name, out)
			}
		}
	}
	if _, out, _ := call("help", "train"); !strings.Contains(out, "-momentum float") || !strings.Contains(out, "flags:") {
		t.Errorf("help train shows no flags:\n%s", out)
	}
	if _, out, _ := call("help", "experiment"); !strings.Contains(out, "experiments: shatter, variance") {
		t.Errorf("help experiment does not list the experiments:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"help", "nonsense"}, `unknown command "nonsense"`},
		{[]string{"help", "train", "eval"}, "want one command"},
		{[]string{"train", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"train", "--epochs", "x"}, `invalid value "x" for flag -epochs`},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"experiment", "shatter", "--resume"}, "shatter trains nothing"},
	} {
		code, out, errs := call(tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) || strings.Contains(out, "usage") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q on standard error", tc.args, code, out, errs, tc.want)
		}
	}
}

// TestVersion: the Go version and platform, the kernel level and the int8
// and bf16 paths (kernels.ActiveInt8, kernels.BF16Path); the module
// version and revision read "(unknown)" in a test binary, which carries no
// build information of the main module (TestSignals checks a built binary).
// --version and -version print the same.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version", "-version"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{arg}, &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d: %s", arg, code, stderr.String())
		}
		for _, want := range []string{"residual ", "revision ", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH, "kernels  ",
			"int8     " + kernels.ActiveInt8().String(), "bf16     " + kernels.BF16Path() + "\n"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%s lacks %q:\n%s", arg, want, stdout.String())
			}
		}
	}
}

// TestPackageDocShowsEveryForm checks that the usage in this command's
// package doc (what go doc and pkg.go.dev show) has every form of every
// command that 'residual help' prints, so the two cannot drift apart.
func TestPackageDocShowsEveryForm(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Doc.Text()
	for name := range commands {
		for _, form := range synopsis(name) {
			if !strings.Contains(doc, "\t"+form+"\n") && !strings.Contains(doc, "\t"+form+"  ") {
				t.Errorf("main.go's package doc lacks the usage line %q", form)
			}
		}
	}
}
