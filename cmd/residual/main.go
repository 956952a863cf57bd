// Command residual builds, trains, analyses and runs residual networks.
//
// Usage:
//
//	residual demo [flags]                  fit a residual MLP to a 1-D function and print the loss falling
//	residual summary [flags] MODEL         a model's layers, shapes, parameters and multiply-adds
//	residual summary [flags] CKPT          the same of a checkpoint's model, at its input size
//	residual train [flags]                 train a model (default: ResNet-20 on the embedded MNIST)
//	residual eval CKPT [--data SPEC] [flags]
//	residual eval --weights CKPT [--data SPEC] [flags]
//	residual predict CKPT [--top K] IMAGE...
//	residual predict --weights CKPT [--top K] IMAGE...
//	residual quantize CKPT [--calibrate SPEC] [--batches N] [--method minmax|percentile|entropy] --out CKPT8
//	residual quantize CKPT --calibrate-images FILE,FILE... --out CKPT8
//	residual segment CKPT --out MASK.png [--overlay OVERLAY.png] [--tile N] [--precision bf16] IMAGE
//	residual segment --weights CKPT --out MASK.png [--overlay OVERLAY.png] [--tile N] [--precision bf16] IMAGE
//	residual import torch FILE.pth|FILE.safetensors --model NAME --out CKPT.safetensors [--classes N]
//	residual import keras-tfjs DIR|model.json --out CKPT.safetensors
//	residual import onnx FILE.onnx [--model NAME] --out CKPT8.safetensors
//	residual export torch --weights CKPT --out FILE.safetensors
//	residual export onnx --weights CKPT --out FILE.onnx [--input HxW]
//	residual export onnx --model NAME --out FILE.onnx [--input HxW]
//	residual serve --model NAME=CKPT [--model NAME=CKPT...] [flags]
//	residual serve --repository DIR [flags]
//	residual bench [flags] [NAME...]       images/s of the standard workloads
//	residual experiment [flags] NAME       the experiments on why residual networks work
//	residual version                       module version, VCS revision, Go version, kernel level, int8 and bf16 paths
//	residual help [COMMAND]                list the commands, or one command's usage and flags
//
// 'residual help COMMAND' and 'residual COMMAND -h' print a command's usage
// and flags on standard output. Errors go to standard error: bad usage (an
// unknown command or flag, a flag value out of range) exits with status 2,
// other failures with 1.
//
// SIGINT (Ctrl-C) and SIGTERM (docker stop, Kubernetes, Slurm) cancel the
// running command: training writes a checkpoint to resume from, and the
// process exits with 128 + the signal number (130 for SIGINT, 143 for
// SIGTERM), as a shell reports a process killed by that signal. A second
// signal exits at once, with its own status, removing the temporary file
// of a write under way (an output keeps its old contents).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/internal/atomicfile"
	"github.com/residual-nn/residual/internal/kernels"
)

// command is one subcommand: it parses its own flags from args.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"version":    {"print the module version, VCS revision, Go version, kernel level and int8 and bf16 paths", runVersion},
	"bench":      {"measure images/s of the standard workloads (see docs/PERFORMANCE.md)", runBench},
	"demo":       {"fit a small residual MLP to sin(3x) and print the loss falling", runDemo},
	"summary":    {"list a model's layers, output shapes, parameters and multiply-adds: a model by name, or a checkpoint's", runSummary},
	"train":      {"train a model on a data set (default: a ResNet-20 on MNIST)", runTrain},
	"eval":       {"accuracy, per-class accuracy and confusion matrix of a classifier; pixel accuracy and IoU per class of a U-Net", runEval},
	"export":     {"export a checkpoint: export torch CKPT --out FILE.safetensors, export onnx CKPT --out FILE.onnx", runExport},
	"import":     {"import weights: import torch FILE.pth --model NAME|--like CKPT --out CKPT, import keras-tfjs DIR --out CKPT, import onnx QDQ.onnx --out CKPT8", runImport},
	"experiment": {"run an experiment on why residual networks work (" + strings.Join(experimentNames, ", ") + ")", runExperiment},
	"predict":    {"top-k classes of image files with a checkpoint", runPredict},
	"quantize":   {"quantize a checkpoint to int8, calibrated on a data set (see docs/QUANTIZATION.md)", runQuantize},
	"serve":      {"serve models over the Open Inference Protocol (REST, gRPC), with a web page and metrics (see docs/SERVING.md)", runServe},
	"segment":    {"segment an image of any size with a U-Net checkpoint (mask and overlay PNGs)", runSegment},
}

// synopses are the commands' usage lines with their positional arguments,
// one line per form; a command missing here reads "residual NAME [flags]".
var synopses = map[string][]string{
	"bench":      {"residual bench [flags] [NAME...]"},
	"demo":       {"residual demo [flags]"},
	"summary":    {"residual summary [flags] MODEL", "residual summary [flags] CKPT"},
	"train":      {"residual train [flags]"},
	"eval":       {"residual eval CKPT [--data SPEC] [flags]", "residual eval --weights CKPT [--data SPEC] [flags]"},
	"export":     {"residual export torch --weights CKPT --out FILE.safetensors", "residual export onnx --weights CKPT --out FILE.onnx [--input HxW]", "residual export onnx --model NAME --out FILE.onnx [--input HxW]"},
	"import":     {"residual import torch FILE.pth|FILE.safetensors --model NAME --out CKPT.safetensors [--classes N]", "residual import keras-tfjs DIR|model.json --out CKPT.safetensors", "residual import onnx FILE.onnx [--model NAME] --out CKPT8.safetensors"},
	"experiment": {"residual experiment [flags] NAME"},
	"predict":    {"residual predict CKPT [--top K] IMAGE...", "residual predict --weights CKPT [--top K] IMAGE..."},
	"quantize":   {"residual quantize CKPT [--calibrate SPEC] [--batches N] [--method minmax|percentile|entropy] --out CKPT8", "residual quantize CKPT --calibrate-images FILE,FILE... --out CKPT8"},
	"segment":    {"residual segment CKPT --out MASK.png [--overlay OVERLAY.png] [--tile N] [--precision bf16] IMAGE", "residual segment --weights CKPT --out MASK.png [--overlay OVERLAY.png] [--tile N] [--precision bf16] IMAGE"},
	"serve":      {"residual serve --model NAME=CKPT [--model NAME=CKPT...] [flags]", "residual serve --repository DIR [flags]"},
	"version":    {"residual version"},
}

// synopsis returns a command's usage lines.
func synopsis(name string) []string {
	if s, ok := synopses[name]; ok {
		return s
	}
	return []string{"residual " + name + " [flags]"}
}

// usage lists the commands with their usage lines.
func usage(w io.Writer) {
	fmt.Fprintln(w, "residual builds, trains, analyses and runs residual networks.\n\nusage:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, s := range synopsis(n) {
			fmt.Fprintf(w, "  %s\n", s)
		}
		fmt.Fprintf(w, "      %s\n", commands[n].summary)
	}
	fmt.Fprintln(w, "  residual help [COMMAND]\n      list the commands, or print one command's usage and flags")
	fmt.Fprintln(w, "\n'residual help COMMAND' or 'residual COMMAND -h' prints a command's flags.")
}

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx := watchSignals(context.Background(), sigs, os.Stderr, exitAbandoning)
	exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// exiting is held by the exit under way, and never released: a command
// whose write failed because a second signal's exitAbandoning abandoned it
// returns to main, whose exit then waits for that one, so that the process
// ends with the second signal's status, not the command's.
var exiting sync.Mutex

// osExit, abandon and resetSignals are what the exits do, replaced by the
// tests of their order (atomicfile.Abandon cannot be undone in the test
// process, nor os.Exit or signal.Reset wanted there).
var (
	osExit       = os.Exit
	abandon      = atomicfile.Abandon
	resetSignals = func() { signal.Reset(os.Interrupt, syscall.SIGTERM) }
)

// exit is main's exit with the command's status code, unless a second
// signal's exit is under way.
func exit(code int) {
	exiting.Lock()
	osExit(code)
}

// abandonWait is how long the exit of a second signal waits for
// atomicfile.Abandon, which waits for a write's folder creation or renames
// under way (a moment, unless the file system hangs).
const abandonWait = 2 * time.Second

// exitAbandoning is the exit of a second signal: it removes the temporary
// files of the writes under way (atomicfile.Abandon), which the exit would
// otherwise leave beside their outputs as hidden .NAME.*.tmp files, waiting
// at most abandonWait for that, and exits with code. A third signal
// meanwhile kills the process at once (the signals' default action is
// restored first).
func exitAbandoning(code int) {
	exiting.Lock()
	resetSignals()
	done := make(chan struct{})
	go func() {
		abandon()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(abandonWait):
	}
	osExit(code)
}

// signalCause is the cancellation cause of the context that main passes to
// the commands: the signal that arrived. It counts as context.Canceled for
// errors.Is.
type signalCause struct{ sig os.Signal }

func (s signalCause) Error() string        { return "stopped by " + signalName(s.sig) }
func (s signalCause) Is(target error) bool { return target == context.Canceled }

// signalName spells the two signals residual handles as kill(1) does.
func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// signalStatus is the exit status of a process stopped by sig: 128 + the
// signal number, as shells report it (130 for SIGINT, 143 for SIGTERM).
func signalStatus(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 128 + int(syscall.SIGINT)
}

// watchSignals returns a context that the first signal from sigs cancels,
// with a signalCause naming it; a second signal calls exit with its status
// at once, for a command that does not stop soon enough. Closing sigs ends
// the watch.
func watchSignals(parent context.Context, sigs <-chan os.Signal, stderr io.Writer, exit func(int)) context.Context {
	ctx, cancel := context.WithCancelCause(parent)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		cancel(signalCause{s})
		who := "residual"
		if l, ok, _ := distributed.DetectLauncher(os.Getenv); ok && l.Size > 1 { // one rank of several says which
			who = fmt.Sprintf("residual (rank %d of %d)", l.Rank, l.Size)
		}
		if !quietSignals.Load() {
			fmt.Fprintf(stderr, "\n%s: %s received, stopping (send it again to exit at once)\n", who, signalName(s))
		}
		if s, ok = <-sigs; ok {
			fmt.Fprintf(stderr, "%s: second %s, exiting at once\n", who, signalName(s))
			exit(signalStatus(s))
		}
	}()
	return ctx
}

// quietSignals, set by a command that reports the first signal in its
// own log (serve --log-json, whose every line is JSON), keeps watchSignals
// from writing its notice.
var quietSignals atomic.Bool

// interruptStatus is the exit status of a command stopped because ctx was
// cancelled: the signal's (see signalStatus), or 130 when the context was
// cancelled by other means.
func interruptStatus(ctx context.Context) int {
	var sc signalCause
	if errors.As(context.Cause(ctx), &sc) {
		return signalStatus(sc.sig)
	}
	return signalStatus(os.Interrupt)
}

// run executes the command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "residual: no command given")
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "-version", "--version":
		args = append([]string{"version"}, args[1:]...)
	case "help":
		switch {
		case len(args) == 1 || args[1] == "help" || args[1] == "-h" || args[1] == "-help" || args[1] == "--help":
			usage(stdout)
			return 0
		case len(args) > 2:
			fmt.Fprintf(stderr, "residual help: want one command, got %q\n", args[1:])
			return 2
		}
		if _, ok := commands[args[1]]; !ok {
			fmt.Fprintf(stderr, "residual help: unknown command %q; 'residual help' lists them\n", args[1])
			return 2
		}
		return run(ctx, []string{args[1], "-h"}, stdout, stderr)
	}
	name := args[0]
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "residual: unknown command %q\n", name)
		usage(stderr)
		return 2
	}
	if name != "serve" { // serve logs them (its log may be JSON only)
		for _, p := range kernels.EnvProblems() {
			fmt.Fprintf(stderr, "residual: warning: %s\n", p)
		}
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	var help *helpRequest
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		help.fs.SetOutput(stdout)
		help.fs.Usage()
		return 0
	case errors.Is(err, flag.ErrHelp): // a command that parsed without parse()
		return 0
	}
	var logged *loggedError
	switch cause := context.Cause(ctx); {
	case errors.As(err, &logged): // the command's own log has said it
	case cause != nil && !strings.Contains(err.Error(), cause.Error()):
		fmt.Fprintf(stderr, "residual %s: %v (%v)\n", name, err, cause)
	default:
		fmt.Fprintf(stderr, "residual %s: %v\n", name, err)
	}
	switch {
	case ctx.Err() != nil: // stopped by a signal, however the command reported it
		return interruptStatus(ctx)
	case errors.Is(err, errInterrupted):
		return signalStatus(os.Interrupt)
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "'residual help %s' prints its usage and flags\n", name)
		return 2
	}
	return 1
}

// loggedError is an error a command has written to its own log (serve
// --log-json, whose every line is JSON): run exits with its status
// without printing it again.
type loggedError struct{ err error }

func (e *loggedError) Error() string { return e.err.Error() }
func (e *loggedError) Unwrap() error { return e.err }

// errUsage marks errors in the command line itself (exit status 2).
var errUsage = errors.New("bad usage")

// helpRequest is what parsing returns for -h, -help and --help: run prints
// the flag set's usage on standard output and exits with status 0.
type helpRequest struct{ fs *flag.FlagSet }

func (h *helpRequest) Error() string { return "help requested" }
func (h *helpRequest) Unwrap() error { return flag.ErrHelp }

// newFlags returns a flag set that reports errors instead of exiting. Its
// usage prints the command's usage lines and flags on the set's output
// (standard output when help is asked for); stderr receives the notes
// that flag checks print (see checks.go).
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("residual "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(fs, "") }
	return fs
}

// printUsage prints a flag set's usage lines, an optional note (the
// command's choices of names) and its flags on the set's output.
func printUsage(fs *flag.FlagSet, note string) {
	w := fs.Output()
	name := strings.TrimPrefix(fs.Name(), "residual ")
	fmt.Fprintf(w, "usage: %s\n", strings.Join(synopsis(name), "\n       "))
	if s := commandSummary(name); s != "" {
		fmt.Fprintf(w, "\n%s\n", s)
	}
	if note != "" {
		fmt.Fprintf(w, "\n%s\n", note)
	}
	if hasFlags(fs) {
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
	}
}

// commandSummary returns a command's summary line. It is set in init: the
// commands refer to printUsage, which would otherwise refer back to them
// while they are initialised.
var commandSummary func(name string) string

func init() { commandSummary = func(name string) string { return commands[name].summary } }

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args with the flag package's own messages silenced:
// run prints the error (a usage error) or the help (a helpRequest).
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return &helpRequest{fs}
	case err != nil:
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// parse parses flags, wrapping failures as usage errors, and checks the
// flags' values (checks.go) before the command does any work.
func parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return checkFlags(fs, nil)
}

// parseInterleaved parses flags that may come before or after positional
// arguments ("summary resnet50 --json"), checks them as parse does, and
// returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parsePositionals(fs, args)
	if err != nil {
		return nil, err
	}
	return pos, checkFlags(fs, pos)
}

// parseCheckpointFirst is parseInterleaved for a command that reads a
// checkpoint: it takes the checkpoint as --weights CKPT or, as export and
// quantize do, as the first argument. Without --weights, a first argument
// that is not an image file (imagefile.HasExtension) becomes --weights's
// value and leaves the positionals; an image there stays an image, and
// the command says the checkpoint is missing.
func parseCheckpointFirst(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parsePositionals(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 && stringFlag(fs, "weights") == "" && !imagefile.HasExtension(pos[0]) {
		// Checked here first, so that a refusal names the argument as
		// given rather than as --weights.
		if err := checkCheckpoint("", pos[0]); err != nil {
			return nil, err
		}
		if err := fs.Set("weights", pos[0]); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		pos = pos[1:]
	}
	return pos, checkFlags(fs, pos)
}

// parsePositionals parses flags that may come before or after positional
// arguments and returns the positionals.
func parsePositionals(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// counted returns n with the noun, in the plural unless n is 1: "1 thread",
// "2 threads" (for nouns whose plural adds an s).
func counted(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
