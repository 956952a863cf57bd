package main

import "context"

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
