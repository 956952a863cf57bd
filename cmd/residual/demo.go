package main

import (
	"context"
	"fmt"
	"io"
	"math"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/models/mlp"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/optim"
	"github.com/residual-nn/residual/tensor"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	steps := fs.Int("steps", 600, "Adam steps")
	depth := fs.Int("depth", 8, "residual blocks")
	width := fs.Int("width", 64, "units per block")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *steps < 1 || *depth < 0 || *width < 1 {
		return fmt.Errorf("%w: steps, depth and width must be positive", errUsage)
	}
	rng := tensor.NewRNG(*seed)
	net, err := mlp.New(mlp.Config{In: 1, Out: 1, Width: *width, Depth: *depth, Skip: true, BranchScale: mlp.InvSqrt2}, rng)
	if err != nil {
		return err
	}
	const n = 256
	x, y := tensor.New(n, 1), tensor.New(n, 1)
	for i := 0; i < n; i++ {
		v := -2 + 4*float64(i)/(n-1)
		x.Data[i], y.Data[i] = float32(v), float32(math.Sin(3*v))
	}
	opt, err := optim.NewAdam([]optim.Group{{Params: nn.Parameters(net)}}, optim.AdamConfig{LR: 3e-3, Schedule: optim.Cosine{Total: *steps, MinFactor: 0.05}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fitting sin(3x) on [-2, 2] with a residual MLP (%d blocks × %d units, %d parameters)\n", *depth, *width, nn.NumParams(net))
	tape := ag.NewTape()
	var first, last float64
	for s := 0; s < *steps; s++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("stopped at step %d: %w", s, err)
		}
		nn.ZeroGrad(net)
		loss := ag.MSE(net.Forward(tape.Constant(x)), y)
		last = float64(loss.Data.Data[0])
		if math.IsNaN(last) {
			return fmt.Errorf("loss is NaN at step %d", s)
		}
		if s == 0 {
			first = last
		}
		tape.Backward(loss)
		opt.Step()
		tape.Reset()
		if s%(max(*steps/6, 1)) == 0 || s == *steps-1 {
			fmt.Fprintf(stdout, "step %4d  mse %.5f\n", s, last)
		}
	}
	fmt.Fprintf(stdout, "mse fell from %.4f to %.5f\n", first, last)
	if !(last < first) {
		return fmt.Errorf("the loss did not fall (%.4f → %.4f)", first, last)
	}
	return nil
}
