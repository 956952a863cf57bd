package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/residual-nn/residual/internal/kernels"
)

// runVersion prints what a bug report needs: the module version and the
// VCS revision it was built from (from the build information that go build
// and go install embed), the Go version and platform, and the kernel level
// that this CPU and RESIDUAL_KERNELS select.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	version, revision := "(unknown)", "(unknown)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		var time, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				time = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = ", with uncommitted changes"
				}
			}
		}
		if time != "" {
			revision += " (" + time + modified + ")"
		}
	}
	int8 := kernels.ActiveInt8().String()
	if kernels.AMX() {
		int8 += "+amx"
	}
	fmt.Fprintf(stdout, "residual %s\nrevision %s\ngo       %s %s/%s\nkernels  %s\nint8     %s\nbf16     %s\ncpus     %d\n",
		version, revision, runtime.Version(), runtime.GOOS, runtime.GOARCH, kernels.Active(), int8, kernels.BF16Path(), runtime.NumCPU())
	return nil
}
