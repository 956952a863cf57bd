// Command residual builds, trains, analyses and runs residual networks.
//
// Usage:
//
//	residual demo [flags]      fit a residual MLP to a 1-D function and print the loss falling
//	residual summary MODEL     a model's layers, shapes, parameters and multiply-adds
//	residual train [flags]     train a model (default: ResNet-20 on the embedded MNIST)
//	residual eval --weights CKPT [--data SPEC]
//	residual predict --weights CKPT IMAGE...
//	residual bench [NAME...]   images/s of the standard workloads
//	residual experiment NAME   shatter, variance, degradation, ensemble, order, bottleneck
//	residual help              list the commands
//
// Every command takes -h for its flags. Errors go to standard error with a
// non-zero exit status.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
)

// command is one subcommand: it parses its own flags from args.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"bench":      {"measure images/s of the standard workloads (see docs/PERFORMANCE.md)", runBench},
	"demo":       {"fit a small residual MLP to sin(3x) and print the loss falling", runDemo},
	"summary":    {"list a model's layers, output shapes, parameters and multiply-adds", runSummary},
	"train":      {"train a model on a data set (default: a ResNet-20 on MNIST)", runTrain},
	"eval":       {"accuracy, per-class accuracy and confusion matrix of a checkpoint", runEval},
	"export":     {"export a checkpoint: export torch CKPT --out FILE.safetensors, export onnx CKPT --out FILE.onnx", runExport},
	"import":     {"import weights: import torch FILE.pth --model NAME --out CKPT, import keras-tfjs DIR --out CKPT", runImport},
	"experiment": {"run an experiment on why residual networks work (shatter, variance, degradation, ensemble, order, bottleneck)", runExperiment},
	"predict":    {"top-k classes of image files with a checkpoint", runPredict},
	"serve":      {"serve models over the Open Inference Protocol (REST, gRPC), with a web page and metrics (see docs/SERVING.md)", runServe},
	"segment":    {"segment an image of any size with a U-Net checkpoint (mask and overlay PNGs)", runSegment},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: residual COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'residual COMMAND -h' for a command's flags")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "residual: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "residual %s: %v\n", args[0], err)
		switch {
		case errors.Is(err, errUsage):
			return 2
		case errors.Is(err, errInterrupted):
			return 130
		}
		return 1
	}
	return 0
}

// errUsage marks errors in the command line itself (exit status 2).
var errUsage = errors.New("bad usage")

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("residual "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses flags, wrapping failures as usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// parseInterleaved parses flags that may come before or after positional
// arguments ("summary resnet50 --json") and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
