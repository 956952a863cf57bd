package main

import (
	"context"

	"github.com/residual-nn/residual/internal/atomicfile"
)

// evalBatch is the batch size of eval.
const evalBatch = 256

// stopped returns the cause of ctx's cancellation (the signal, for the
// CLI), or nil while it runs: commands call it between the steps of work
// that cannot be interrupted inside.
func stopped(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// writeUnlessStopped writes b to path atomically (atomicfile.Write) unless
// ctx is cancelled: the last look before a command's output replaces what
// path held, so that a signal during the work before it leaves path as it
// was and the command exits with the signal's status.
func writeUnlessStopped(ctx context.Context, path string, b []byte) error {
	if err := stopped(ctx); err != nil {
		return err
	}
	return atomicfile.Write(path, b)
}
