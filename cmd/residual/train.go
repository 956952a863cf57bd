package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/train"
)

// errInterrupted makes the CLI exit with status 130 after a clean stop.
var errInterrupted = train.ErrInterrupted

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", stderr)
	model := fs.String("model", "resnet20", "model name (see residual summary)")
	spec := fs.String("data", "mnist", "data: mnist, fashion-mnist[:DIR], idx:DIR, cifar10:DIR, cifar100:DIR, folder:DIR (images of any size, see --image-size); for segmentation mnist-canvas[:SIDE], fashion-canvas[:SIDE], segfolder[,ignore=V]:DIR (mask value V ignored: 255 for VOC)")
	task := fs.String("task", "auto", "classify or segment (auto: segment for U-Nets)")
	lossName := fs.String("loss", "ce", "ce, dice or ce+dice (Dice: segmentation)")
	border := fs.Bool("border-weights", false, "segmentation: weight the cross-entropy with the U-Net paper's map (class balance, w0=10, sigma=5 px)")
	classW := fs.Bool("class-weights", false, "segmentation: weight the cross-entropy by inverse class frequency")
	base := fs.Int("base", 0, "U-Net: channels of the first level (default: the model's)")
	epochs := fs.Int("epochs", 2, "epochs")
	batch := fs.Int("batch", 128, "batch size")
	opt := fs.String("optimizer", "sgd", "sgd, adam or adamw")
	lr := fs.Float64("lr", 0.1, "learning rate")
	mom := fs.Float64("momentum", 0.9, "SGD momentum (sgd only)")
	nesterov := fs.Bool("nesterov", false, "Nesterov momentum (sgd only, with --momentum > 0)")
	wd := fs.Float64("weight-decay", 1e-4, "weight decay (not on BN parameters and biases)")
	sched := fs.String("schedule", "cosine", `learning-rate schedule: cosine, he (÷10 at 50% and 75%), constant, multistep:S1,S2[:gamma], cosine:STEPS, warmup:N+... (S, STEPS, N in steps)`)
	warmup := fs.Float64("warmup-epochs", 0, "epochs (fractions allowed) of linear learning-rate warm-up from 0 at the start of the run: a cosine spans the rest, he's and multistep's epochs stay where they are, a schedule in steps starts after it (and may not have a warmup: of its own)")
	aug := fs.String("augment", "auto", "augmentation: none, pad=N, flip, resized-crop (torchvision's RandomResizedCrop), combined with commas; auto: resized-crop,flip for folder:DIR, pad=2 for grey images, pad=4,flip for colour")
	imageSize := fs.Int("image-size", 0, "folder:DIR: side of the square images made from the files (0: the --init checkpoint's input size, else 224)")
	skipBad := fs.Bool("skip-bad-images", false, "folder:DIR: skip unreadable image files with a warning instead of failing (=false turns off a skip-bad in --data's spec or in the run --resume continues)")
	val := fs.Float64("val-split", 0.1, "fraction of the training set held out for validation (0: validate on the test set)")
	seed := fs.Uint64("seed", 1, "random seed")
	threads := fs.Int("threads", 0, "threads (0: all cores)")
	out := fs.String("out", "", "run folder (default runs/MODEL-DATA; with --init and no --model, runs/CHECKPOINT-DATA after the checkpoint's file name)")
	resume := fs.Bool("resume", false, "continue the run in --out from its last checkpoint, with the settings it recorded there; flags given with --resume replace them (e.g. --epochs), except the model, data, batch, seed, limit, validation split, augmentation and task, which the saved position depends on, and the optimizer (sgd against adam or adamw), a momentum from 0 and a --freeze that lets a module the run froze train, which the saved optimizer state depends on")
	overwrite := fs.Bool("overwrite", false, "start over in a run folder that holds a run (its checkpoints, records and curves are set aside in --out/.replaced, deleted when the new run completes its first epoch, put back if it ends before that: at once if it fails or is interrupted, at the next train start if it is killed)")
	limit := fs.Int("limit", 0, "use only N training (and test) images (0: all): the first N, or for folder:DIR N spread over the classes")
	initCkpt := fs.String("init", "", "start from this checkpoint's weights (ours or imported): tensors whose name and shape match are loaded, the rest (the head, for another class count) is left fresh; its normalisation (mean, std, channel order and scale) is kept, and a folder is read at its input size unless --image-size says otherwise; not with --resume, which continues from the run's own checkpoint")
	freeze := fs.String("freeze", "none", "none, backbone (all but the classifier head) or module prefixes separated by commas (e.g. conv1,bn1,layer1)")
	headLR := fs.Float64("head-lr-mult", 1, "multiply the classifier head's learning rate by this (> 0; to leave the head as it is, --freeze it)")
	smooth := fs.Float64("label-smoothing", 0, "label smoothing of the cross-entropy, in [0, 1)")
	ema := fs.Float64("ema", 0, "keep a moving average of the weights with this decay in (0, 1), validated each epoch and saved as ema.safetensors (0: none)")
	clip := fs.Float64("clip-grad", 0, "clip the gradients' joint L2 norm to this before each step (0: none)")
	patience := fs.Int("patience", 0, "stop when the validation metric has not improved for N epochs (0: never)")
	precision := precisionFlag(fs)
	progress := fs.String("progress", "auto", "auto (redraw one line on a terminal, else five lines an epoch), lines or live; not recorded. Under mpirun each rank writes to a terminal even where mpirun's output goes to a file: give lines there")
	tb := fs.Bool("tensorboard", true, "write TensorBoard event files into the run folder (tensorboard --logdir RUNS); not recorded: --resume writes them unless given --tensorboard=false again")
	dist := fs.String("distributed", distributed.KindAuto, "data-parallel training: none (this process alone), mpi (one rank of an mpirun/srun/MPIJob job; a binary built with -tags mpi) or auto (mpi when a launcher started several processes); --batch is per rank, see docs/DISTRIBUTED.md")
	syncBN := fs.Bool("sync-bn", false, "with --distributed: batch norms use the statistics of the global batch over all ranks (SyncBatchNorm)")
	gradComp := fs.String("grad-compression", "none", "with --distributed: all-reduce the gradients as none (float32) or bf16 (half the bytes, for slow links; see docs/DISTRIBUTED.md)")
	distTimeout := fs.Duration("dist-timeout", distributed.DefaultTimeout, "with --distributed: abort the job when a collective waits longer than this for the other ranks (a hung rank)")
	if err := parse(fs, args); err != nil {
		return err
	}
	live, err := progressLive(*progress, stdout)
	if err != nil {
		return err
	}
	pr, err := parsePrecision(*precision)
	if err != nil {
		return err
	}
	comp, err := distributed.ParseCompression(*gradComp)
	if err != nil {
		return fmt.Errorf("%w: --grad-compression: %v", errUsage, err)
	}
	gradCompression := "" // as the library's default, so that checkpoints record one form
	if comp != distributed.NoCompression {
		gradCompression = comp.String()
	}
	if *threads > 0 {
		runtime.GOMAXPROCS(*threads)
	}
	comm, err := distributed.InitWithOptions(*dist, distributed.Options{Timeout: *distTimeout})
	if err != nil {
		return err
	}
	if _, local := comm.(*distributed.Local); local {
		comm = nil // one process: train as without package distributed
		if *syncBN {
			return fmt.Errorf("%w: --sync-bn needs data-parallel training on two ranks or more (this process trains alone: run it under mpirun -np N, N ≥ 2, with --distributed mpi or auto)", errUsage)
		}
		if comp != distributed.NoCompression {
			return fmt.Errorf("%w: --grad-compression needs data-parallel training on two ranks or more (this process trains alone: run it under mpirun -np N, N ≥ 2, with --distributed mpi or auto)", errUsage)
		}
		if l, ok, _ := distributed.DetectLauncher(os.Getenv); ok && l.Size > 1 && *dist == distributed.KindNone {
			fmt.Fprintf(stderr, "warning: %s started this process as rank %d of %d, but --distributed none: every process trains alone, on all the data (--distributed auto or mpi trains them together)\n", l.Name, l.Rank, l.Size)
		}
	}
	if comm != nil && comm.Rank() != 0 {
		stdout = io.Discard // rank 0 reports for all
	}
	var mc models.Config // with --init and no --model: the checkpoint's network (train.Prepare reads it)
	if *initCkpt == "" || flagSet(fs, "model") {
		var err error
		if mc, err = modelFlag(*model); err != nil {
			return err
		}
	}
	if !*resume || flagSet(fs, "data") { // else they apply to the run's data set (resumeConfig)
		if *spec, err = data.FolderSpec(*spec, *imageSize, false); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		// Given, it wins over the spec's skip-bad, as --image-size over its size=.
		if *spec, err = withSkipBad(fs, *spec, *skipBad); err != nil {
			return err
		}
	}
	if *base > 0 {
		u, ok := mc.Arch.(*models.UNet) // with a U-Net from --init: refused, as its widths are the checkpoint's
		if !ok {
			return fmt.Errorf("%w: --base is for U-Nets", errUsage)
		}
		u.Base = *base
	}
	if *task == "auto" {
		*task = "" // the model's: segment for U-Nets
	}
	a, err := parseAugment(*aug)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	schedule, err := train.ParseSchedule(*sched)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	schedule.WarmupEpochs = *warmup
	cfg := train.Config{Model: mc, Data: *spec, Task: models.Task(*task), Loss: train.Loss(*lossName), BorderWeights: *border, ClassWeights: *classW, Epochs: *epochs, Batch: *batch,
		Optimizer: train.Optimizer(*opt), LR: *lr, Momentum: *mom, Nesterov: *nesterov, WeightDecay: *wd, Schedule: schedule, Augment: a, ValSplit: *val, Seed: *seed, Limit: *limit,
		Out: *out, Resume: *resume, Overwrite: *overwrite, TensorBoard: *tb, Log: stdout, Live: live,
		Init: *initCkpt, Freeze: freezeList(*freeze), HeadLRMult: *headLR, LabelSmoothing: *smooth, EMA: *ema, ClipGrad: *clip, Patience: *patience, Precision: pr,
		SyncBN: *syncBN, GradCompression: gradCompression}
	dropSGDDefaults(fs, &cfg)
	if comm != nil {
		cfg.Comm = comm
		// The ranks that resume share rank 0's record (a broadcast the
		// others would not join): all must resume, or none.
		if err := resumeOnEveryRank(comm, *resume); err != nil {
			return err
		}
	}
	if *resume {
		if cfg, err = resumeConfig(fs, cfg, stdout); err != nil {
			return err
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	res, err := trainRun(ctx, cfg, cfg.Data, stdout)
	if comm != nil && (err == nil || errors.Is(err, errInterrupted)) {
		// Every rank got here together (a failure on one rank that the
		// others did not share ends the process without MPI_Finalize,
		// which makes mpirun end the job).
		if ferr := comm.Finalize(); err == nil && ferr != nil {
			return ferr
		}
	}
	if err != nil {
		if comm != nil {
			if errors.Is(err, train.ErrOtherRank) {
				// The rank that failed prints why; this one's exit would
				// make mpirun end the job, maybe before it has.
				time.Sleep(time.Second)
			}
			err = fmt.Errorf("rank %d of %d: %w", comm.Rank(), comm.Size(), err)
		}
		if errors.Is(err, train.ErrConfig) { // a flag the network or the data refuse
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		return err
	}
	score := fmt.Sprintf("test accuracy %.2f%%", 100*res.TestAccuracy)
	if res.TestIoU != nil { // segmentation
		score = fmt.Sprintf("test mean IoU %.4f, pixel accuracy %.2f%%", res.TestMeanIoU, 100*res.TestAccuracy)
	}
	fmt.Fprintf(stdout, "done in %.0fs: %s; checkpoints %s and %s\n", res.Seconds, score,
		filepath.Join(*out, train.LastCheckpoint), filepath.Join(*out, train.BestCheckpoint))
	return nil
}

// resumeFields maps each train flag whose setting a run records to the
// fields of train.Config it sets: on --resume, the run's recorded config
// (train.ResumeConfig) supplies every setting whose flag was not given.
var resumeFields = map[string]func(dst *train.Config, src train.Config){
	"model":           func(d *train.Config, s train.Config) { d.Model = s.Model },
	"base":            func(d *train.Config, s train.Config) { d.Model = s.Model },
	"data":            func(d *train.Config, s train.Config) { d.Data = s.Data },
	"image-size":      func(d *train.Config, s train.Config) { d.Data = s.Data },
	"skip-bad-images": func(d *train.Config, s train.Config) { d.Data = s.Data },
	"task":            func(d *train.Config, s train.Config) { d.Task = s.Task },
	"loss":            func(d *train.Config, s train.Config) { d.Loss = s.Loss },
	"border-weights":  func(d *train.Config, s train.Config) { d.BorderWeights = s.BorderWeights },
	"class-weights":   func(d *train.Config, s train.Config) { d.ClassWeights = s.ClassWeights },
	"epochs":          func(d *train.Config, s train.Config) { d.Epochs = s.Epochs },
	"batch":           func(d *train.Config, s train.Config) { d.Batch = s.Batch },
	"optimizer":       func(d *train.Config, s train.Config) { d.Optimizer = s.Optimizer },
	"lr":              func(d *train.Config, s train.Config) { d.LR = s.LR },
	"momentum":        func(d *train.Config, s train.Config) { d.Momentum = s.Momentum },
	"nesterov":        func(d *train.Config, s train.Config) { d.Nesterov = s.Nesterov },
	"weight-decay":    func(d *train.Config, s train.Config) { d.WeightDecay = s.WeightDecay },
	"schedule": func(d *train.Config, s train.Config) {
		w := d.Schedule.WarmupEpochs
		d.Schedule = s.Schedule
		d.Schedule.WarmupEpochs = w
	},
	"warmup-epochs":    func(d *train.Config, s train.Config) { d.Schedule.WarmupEpochs = s.Schedule.WarmupEpochs },
	"augment":          func(d *train.Config, s train.Config) { d.Augment = s.Augment },
	"val-split":        func(d *train.Config, s train.Config) { d.ValSplit = s.ValSplit },
	"seed":             func(d *train.Config, s train.Config) { d.Seed = s.Seed },
	"limit":            func(d *train.Config, s train.Config) { d.Limit = s.Limit },
	"init":             func(d *train.Config, s train.Config) { d.Init = s.Init },
	"freeze":           func(d *train.Config, s train.Config) { d.Freeze = s.Freeze },
	"head-lr-mult":     func(d *train.Config, s train.Config) { d.HeadLRMult = s.HeadLRMult },
	"label-smoothing":  func(d *train.Config, s train.Config) { d.LabelSmoothing = s.LabelSmoothing },
	"ema":              func(d *train.Config, s train.Config) { d.EMA = s.EMA },
	"clip-grad":        func(d *train.Config, s train.Config) { d.ClipGrad = s.ClipGrad },
	"patience":         func(d *train.Config, s train.Config) { d.Patience = s.Patience },
	"precision":        func(d *train.Config, s train.Config) { d.Precision = s.Precision },
	"sync-bn":          func(d *train.Config, s train.Config) { d.SyncBN = s.SyncBN },
	"grad-compression": func(d *train.Config, s train.Config) { d.GradCompression = s.GradCompression },
}

// unrecordedTrainFlags are the train flags a run does not record: they
// take their value from the command line on --resume as on any run.
var unrecordedTrainFlags = []string{"out", "resume", "overwrite", "tensorboard", "progress", "threads", "distributed", "dist-timeout"}

// resumeConfig is the config of a --resume: the run's recorded settings
// (train.ResumeConfig), with those whose flags were given taken from
// flags instead; what a run does not record comes from flags. It names
// on out the settings given anew.
//
// The ranks of a distributed run take rank 0's record
// (train.ResumeConfigGroup): only rank 0 writes the run folder.
func resumeConfig(fs *flag.FlagSet, flags train.Config, out io.Writer) (train.Config, error) {
	var cfg train.Config
	var err error
	if flags.Comm != nil {
		cfg, err = train.ResumeConfigGroup(flags.Comm, flags.Out)
	} else {
		cfg, err = train.ResumeConfig(flags.Out)
	}
	if err != nil && flags.Out == defaultRunFolder(stringFlag(fs, "model"), stringFlag(fs, "data")) && errors.Is(err, os.ErrNotExist) { // --out not given
		return cfg, fmt.Errorf("%w (the run folder of --model %s --data %s, as --out was not given: give --out the folder of the run to resume)", err, stringFlag(fs, "model"), stringFlag(fs, "data"))
	}
	if err != nil {
		return cfg, err
	}
	cfg.Out, cfg.Resume, cfg.Overwrite = flags.Out, true, flags.Overwrite
	cfg.TensorBoard, cfg.Log, cfg.Live, cfg.Comm = flags.TensorBoard, flags.Log, flags.Live, flags.Comm
	recorded := cfg.Data
	var given []string
	fs.Visit(func(f *flag.Flag) {
		if set, ok := resumeFields[f.Name]; ok {
			set(&cfg, flags)
			given = append(given, "--"+f.Name)
		}
	})
	if !flagSet(fs, "data") {
		if cfg.Data, err = resumeFolderSpec(fs, recorded); err != nil {
			return cfg, err
		}
	}
	dropSGDDefaults(fs, &cfg)
	if err := checkSGDFlags(fs, string(cfg.Optimizer), cfg.Momentum, cfg.Nesterov); err != nil {
		return cfg, err
	}
	note := "the run's settings"
	if len(given) > 0 {
		note += ", with " + strings.Join(given, " ") + " as given"
	}
	fmt.Fprintf(out, "resuming %s with %s\n", cfg.Out, note)
	return cfg, nil
}

// resumeFolderSpec is the run's data set (recorded, its spec) with the
// --image-size and --skip-bad-images given with --resume and without
// --data, which apply to it: refused unless it is an image folder read
// with that size and skipping already (the saved position depends on the
// images). --skip-bad-images=false turns a run's skipping off: the folder
// then reads the run's images, or stops naming an unreadable one.
func resumeFolderSpec(fs *flag.FlagSet, recorded string) (string, error) {
	var given []string
	size, _ := flagValue(fs, "image-size").(int)
	skip, _ := flagValue(fs, "skip-bad-images").(bool)
	if flagSet(fs, "image-size") {
		given = append(given, fmt.Sprintf("--image-size %d", size))
	}
	if flagSet(fs, "skip-bad-images") {
		given = append(given, fmt.Sprintf("--skip-bad-images=%v", skip))
		if !skip {
			recorded = data.WithoutSkipBad(recorded)
		}
	}
	if len(given) == 0 {
		return recorded, nil
	}
	spec, err := data.FolderSpec(recorded, size, skip)
	if err != nil {
		return recorded, fmt.Errorf("%w: %s with --resume: %v (the run's data set)", errUsage, strings.Join(given, " "), err)
	}
	// A size restated that the run had by default reads the same images.
	norm := func(s string) string {
		n, _ := data.FolderSpec(s, cmp.Or(data.FolderSize(s), data.DefaultImageSize), false)
		return n
	}
	if norm(spec) != norm(recorded) {
		return recorded, fmt.Errorf("%w: %s with --resume: the run read %s, and %s would be other images, on which the saved position does not hold — resume without it, or start over with --overwrite",
			errUsage, strings.Join(given, " "), recorded, spec)
	}
	return recorded, nil
}

// resumeOnEveryRank returns a usage error, on every rank, unless all ranks
// resume or none does (distributed.CheckSame, one exchange every rank must
// make).
func resumeOnEveryRank(comm distributed.Comm, resume bool) error {
	if err := distributed.CheckSame(comm, "--resume", strconv.FormatBool(resume)); err != nil {
		return fmt.Errorf("%w: %v: give it to every rank or to none", errUsage, err)
	}
	return nil
}

// trainRun prepares and runs the training of cfg.
func trainRun(ctx context.Context, cfg train.Config, spec string, stdout io.Writer) (*train.Result, error) {
	t, err := train.Prepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	trainSet, _, _ := t.Data()
	fmt.Fprintf(stdout, "training %s on %s (%d images of %dx%dx%d, %d classes) for %s%s, %s, run folder %s\n",
		t.Config().Model.Name, spec, trainSet.Len(), trainSet.H, trainSet.W, trainSet.C, len(trainSet.Classes), counted(cfg.Epochs, "epoch"), inPrecision(t.Config().Precision), threadsAndRanks(runtime.GOMAXPROCS(0), cfg.Comm), cfg.Out)
	return t.Train(ctx)
}

// inPrecision says, for the start line, in what a run other than float32
// computes, and on which of the machine's paths: " in bf16 (avx512bf16+amx)".
// Float32, the default, goes unsaid.
func inPrecision(p ag.Precision) string {
	if p == ag.FP32 {
		return ""
	}
	return fmt.Sprintf(" in %s (%s)", p, kernels.BF16Path())
}

// threadsAndRanks describes what a training runs on for its start line:
// "4 threads", or with a communicator "1 thread × 2 ranks".
func threadsAndRanks(threads int, comm distributed.Comm) string {
	s := counted(threads, "thread")
	if comm != nil {
		s += " × " + counted(comm.Size(), "rank")
	}
	return s
}

// freezeList reads --freeze: nil for none.
func freezeList(s string) []string {
	if s == "none" || s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// parseAugment reads --augment; nil for auto (train.DefaultAugment).
func parseAugment(s string) (*data.Augment, error) {
	a := &data.Augment{}
	switch s {
	case "auto":
		return nil, nil
	case "none", "":
		return a, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		name, _, _ := strings.Cut(part, "=")
		if seen[name] {
			return a, fmt.Errorf("augmentation %q given twice in %q", name, s)
		}
		seen[name] = true
		switch {
		case part == "flip":
			a.Flip = true
		case part == "resized-crop":
			a.ResizedCrop = true
		case strings.HasPrefix(part, "pad="):
			n, err := strconv.Atoi(strings.TrimPrefix(part, "pad="))
			if err != nil || n < 0 {
				return a, fmt.Errorf("bad augmentation %q", part)
			}
			a.Pad = n
		default:
			return a, fmt.Errorf("unknown augmentation %q (none, pad=N, flip, resized-crop)", part)
		}
	}
	return a, nil
}

// precisionFlag defines --precision: the arithmetic of the convolutions
// and matrix products (autograd.Precision).
func precisionFlag(fs *flag.FlagSet) *string {
	where := "float32 weights, batch norm and softmax"
	if fs.Name() == "residual train" {
		where = "in training forward and backward, with float32 weights, batch norm, losses and optimizer state"
	}
	return fs.String("precision", "fp32", "fp32, or bf16: convolutions and linear layers on bfloat16 operands with float32 sums (PyTorch's CPU autocast; "+where+"); VDPBF16PS where the CPU has AVX512-BF16, emulated in float32 otherwise")
}

// parsePrecision reads --precision's value (precisionFlag): a name
// autograd does not know is a usage error naming the flag.
func parsePrecision(s string) (ag.Precision, error) {
	pr, err := ag.ParsePrecision(s)
	if err != nil {
		return pr, fmt.Errorf("%w: --precision: %v", errUsage, err)
	}
	return pr, nil
}

// modelFlag returns the zoo model --model names (models.Preset). A name
// Preset does not know or refuses (a resnetN too deep), or one whose
// config is beyond package limits (resnet98306's weights), is a usage
// error naming the flag; models' message names the model, and for an
// unknown one lists the known names.
func modelFlag(name string) (models.Config, error) {
	mc, err := models.Preset(name)
	if err == nil {
		err = mc.Validate()
	}
	if err != nil {
		return mc, fmt.Errorf("%w: --model: %v", errUsage, err)
	}
	return mc, nil
}

// progressLive reads --progress: whether training redraws one progress
// line (train.Config.Live) on stdout.
func progressLive(progress string, stdout io.Writer) (bool, error) {
	switch progress {
	case "auto":
		return isTerminal(stdout), nil
	case "lines":
		return false, nil
	case "live":
		return true, nil
	}
	return false, fmt.Errorf("%w: --progress %q: auto, lines or live", errUsage, progress)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", stderr)
	weights := fs.String("weights", "", "checkpoint (.safetensors), if not given as the first argument")
	spec := fs.String("data", "", "data set (default: the one the checkpoint was trained on); folder,all:DIR evaluates every image of DIR/CLASS/… (folder:DIR, its held-out share or its test/)")
	png := fs.String("confusion", "", "write the confusion matrix PNG here (default: next to the checkpoint)")
	skipBad := skipBadFlag(fs)
	precision := precisionFlag(fs)
	pos, err := parseCheckpointFirst(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected argument %q (eval reads one checkpoint; --data names the images)", errUsage, pos[0])
	}
	pr, err := parsePrecision(*precision)
	if err != nil {
		return err
	}
	if *weights == "" {
		return fmt.Errorf("%w: no checkpoint: residual eval CKPT (or --weights CKPT)", errUsage)
	}
	c, err := checkpoint.Load(*weights)
	if err != nil {
		return err
	}
	if c.Int8 != nil && pr != ag.FP32 {
		return fmt.Errorf("%w: --precision %s: %s is an int8 checkpoint, which computes in int8 (precision applies to float checkpoints)", errUsage, pr, *weights)
	}
	if *spec == "" {
		if *spec = c.DataSpec(); *spec == "" {
			return fmt.Errorf("%w: the checkpoint does not name its data set; pass --data", errUsage)
		}
	}
	// A set of the other task is refused before it is read: a classifier
	// on canvases, or a U-Net on MNIST, failed only on the images' size,
	// or on relabelling masks as classes.
	switch seg := segmentationSpec(*spec); {
	case seg && !c.Model.Dense():
		return badFlag("data", *spec, "%s holds %s, a classifier, and the set holds segmentation masks; evaluate it on a set labelled by image", *weights, c.Model.Name)
	case !seg && c.Model.Dense():
		return badFlag("data", *spec, "%s holds %s, a segmentation model, and the set is labelled by image; evaluate it on a set with masks (mnist-canvas, fashion-canvas, segfolder:DIR)", *weights, c.Model.Name)
	}
	if *spec, err = withSkipBad(fs, *spec, *skipBad); err != nil {
		return err
	}
	if *spec, err = folderAtModelSize(*spec, c.Preprocess); err != nil {
		return err
	}
	if !c.Model.Dense() && *png == "" {
		// A classifier's confusion image, written after the evaluation,
		// goes by default next to the checkpoint: checked now, as checkEval
		// checked a --confusion given.
		*png = filepath.Join(filepath.Dir(*weights), "confusion.png")
		if err := checkConfusion(*png, *weights, *spec); err != nil {
			return fmt.Errorf("%w (the default, next to the checkpoint; pass --confusion to write it elsewhere)", err)
		}
	}
	_, test, err := data.Open(ctx, *spec, c.Preprocess.Channels)
	if err != nil {
		return err
	}
	l, err := train.Loader(c.Preprocess, test, evalBatch)
	if err != nil {
		return fmt.Errorf("%s: %w", *spec, err)
	}
	// A classifier's test images score against its outputs by class name:
	// a folder may hold some of its classes, and must name none it lacks.
	// A model that knows no names (an import's 0…N−1) scores by position.
	if !c.Model.Dense() {
		if unnamed(c.Classes) && !slices.Equal(c.Classes, test.Classes) && len(test.Classes) == len(c.Classes) {
			fmt.Fprintf(stderr, "note: %s names its classes 0…%d only: %s's classes are scored by position (%s is output 0)\n", *weights, len(c.Classes)-1, *spec, test.Classes[0])
		} else if err := test.Relabel(c.Classes); err != nil {
			return fmt.Errorf("%s: %w", *spec, err)
		}
	}
	if len(test.Classes) != len(c.Classes) {
		return fmt.Errorf("%s holds %d classes; the model takes %d", *spec, len(test.Classes), len(c.Classes))
	}
	net := c.Net
	if c.Int8 != nil {
		net = c.Int8.Layer() // an int8 checkpoint runs its quantized model
	} else if err := models.ForInference(c.Model, c.Net); err != nil {
		return err
	}
	e, err := train.Evaluate(ctx, net, l, len(c.Classes), pr)
	switch {
	case err != nil && ctx.Err() != nil:
		return err // the signal's own words
	case err != nil: // about the model or the set, which train leaves its caller to name
		return fmt.Errorf("%s: %w", *spec, err)
	}
	loss, acc, top5, conf := e.Loss, e.Accuracy, e.Top5, e.Confusion
	images := fmt.Sprintf("%d test images", test.Len())
	if e.Skipped > 0 {
		images = fmt.Sprintf("%d of %d test images; %d left out as unreadable", test.Len()-e.Skipped, test.Len(), e.Skipped)
	}
	if c.Model.Dense() {
		iou, mean := train.IoU(conf)
		fmt.Fprintf(stdout, "%s on %s (%s): pixel accuracy %.2f%%, mean IoU %.4f, loss %.4f\n\nIoU per class:\n", *weights, *spec, images, 100*acc, mean, loss)
		for i, v := range iou {
			fmt.Fprintf(stdout, "  %-12s %s\n", c.Classes[i], train.FormatIoU(v))
		}
		return nil
	}
	top := ""
	if len(c.Classes) >= 5 {
		top = fmt.Sprintf(", top-5 %.2f%%", 100*top5)
	}
	fmt.Fprintf(stdout, "%s on %s (%s): accuracy %.2f%%%s, loss %.4f\n", *weights, *spec, images, 100*acc, top, loss)
	// A set that holds a few of a model's many classes (a folder of
	// photos against ImageNet's 1,000) is shown on the classes its images
	// have or were predicted as, not on a 1,000 × 1,000 matrix of zeros.
	conf, names := usedClasses(conf, c.Classes)
	if len(names) < len(c.Classes) {
		fmt.Fprintf(stdout, "(shown: the %d of the model's %d classes that the images have or were predicted as)\n", len(names), len(c.Classes))
	}
	fmt.Fprintf(stdout, "\nper class:\n")
	for i, row := range conf {
		t := 0
		for _, v := range row {
			t += v
		}
		if t == 0 { // a class without test images: no accuracy to give
			fmt.Fprintf(stdout, "  %-12s %7s  (0 images)\n", names[i], "n/a")
			continue
		}
		fmt.Fprintf(stdout, "  %-12s %6.2f%%  (%s)\n", names[i], 100*float64(row[i])/float64(t), counted(t, "image"))
	}
	fmt.Fprintf(stdout, "\nconfusion matrix (rows: true class, columns: predicted):\n")
	for i, row := range conf {
		fmt.Fprintf(stdout, "  %-12s", names[i])
		for _, v := range row {
			fmt.Fprintf(stdout, " %5d", v)
		}
		fmt.Fprintln(stdout)
	}
	if err := stopped(ctx); err != nil { // a signal since the evaluation: not drawn
		return err
	}
	img, err := train.ConfusionImage(conf, names, *png)
	if err != nil {
		return err
	}
	testHookConfusionDrawn()
	if err := writeUnlessStopped(ctx, *png, img); err != nil { // a signal while it was drawn: not written
		return err
	}
	fmt.Fprintf(stdout, "\nconfusion matrix image: %s\n", *png)
	return nil
}

// testHookConfusionDrawn, set by tests, runs between eval's drawing of
// its confusion image and its writing it.
var testHookConfusionDrawn = func() {}

// usedClasses returns the confusion matrix and class names restricted to
// the classes that some image has (a row with a count) or was predicted as
// (a column with one), in the model's order; all of them when every class
// is used, or when there are at most 20.
func usedClasses(conf [][]int, classes []string) ([][]int, []string) {
	var used []int
	for i := range conf {
		n := 0
		for j := range conf {
			n += conf[i][j] + conf[j][i]
		}
		if n > 0 {
			used = append(used, i)
		}
	}
	if len(conf) <= 20 || len(used) == len(conf) || len(used) == 0 {
		return conf, classes
	}
	sub, names := make([][]int, len(used)), make([]string, len(used))
	for a, i := range used {
		names[a] = classes[i]
		sub[a] = make([]int, len(used))
		for b, j := range used {
			sub[a][b] = conf[i][j]
		}
	}
	return sub, names
}

func runPredict(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("predict", stderr)
	weights := fs.String("weights", "", "checkpoint (.safetensors), if not given as the first argument")
	top := fs.Int("top", 5, "how many classes to print")
	precision := precisionFlag(fs)
	images, err := parseCheckpointFirst(fs, args)
	if err != nil {
		return err
	}
	pr, err := parsePrecision(*precision)
	if err != nil {
		return err
	}
	switch {
	case *weights == "" && len(images) > 0:
		return fmt.Errorf("%w: no checkpoint: residual predict CKPT IMAGE [IMAGE ...] (or --weights CKPT); %s is an image", errUsage, images[0])
	case *weights == "":
		return fmt.Errorf("%w: no checkpoint: residual predict CKPT IMAGE [IMAGE ...] (or --weights CKPT)", errUsage)
	case len(images) == 0:
		return fmt.Errorf("%w: no image given: residual predict CKPT IMAGE [IMAGE ...]", errUsage)
	}
	m, err := openForTask(*weights, models.Classify, pr)
	if err != nil {
		return err
	}
	// An unreadable image, or one the model cannot take, is reported and
	// skipped; the others are still classified, and the command then fails
	// naming how many were not. The images are read and classified
	// infer.ClassifyBatch at a time, each batch's guesses printed before the next
	// is read: a long list holds one batch in memory, and a signal keeps
	// what was printed.
	var bad []string
	done := 0
	for lo := 0; lo < len(images); lo += infer.ClassifyBatch {
		var decoded []image.Image
		var readable []string
		for _, path := range images[lo:min(lo+infer.ClassifyBatch, len(images))] {
			if err := stopped(ctx); err != nil {
				return stoppedAfter(err, done, len(images))
			}
			img, err := imagefile.Load(path)
			if err != nil {
				fmt.Fprintln(stderr, err)
				bad = append(bad, path)
				continue
			}
			decoded, readable = append(decoded, img), append(readable, path)
		}
		err = classifyEach(decoded, func(imgs []image.Image) ([][]infer.Guess, error) { return m.Classify(ctx, imgs, *top) },
			func(i int, gs []infer.Guess) {
				fmt.Fprintln(stdout, readable[i])
				for _, g := range gs {
					fmt.Fprintf(stdout, "  %6.2f%%  %s (class %d)\n", 100*g.Probability, g.Label, g.Class)
				}
				done++
			},
			func(i int, err error) {
				// Decoded but not classifiable (a side past limits.ImageSide,
				// say): named and left out like an unreadable file.
				fmt.Fprintf(stderr, "%s: %v\n", readable[i], err)
				bad = append(bad, readable[i])
			})
		if err != nil {
			if cause := stopped(ctx); cause != nil {
				return stoppedAfter(cause, done, len(images)) // the signal, for the exit status
			}
			return err
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d images could not be read or classified: %s", len(bad), len(images), strings.Join(bad, ", "))
	}
	return nil
}

// openForTask opens the checkpoint weights (--weights) with package infer
// for a command of task (predict: models.Classify, segment:
// models.Segment) in precision pr (--precision). A model of the other
// task is a usage error naming the command that runs it; so is a
// precision other than fp32 for an int8 checkpoint, which computes in
// int8, naming --precision.
func openForTask(weights string, task models.Task, pr ag.Precision) (*infer.Model, error) {
	m, err := infer.Open(weights)
	if err != nil {
		return nil, err
	}
	switch info := m.Info(); {
	case task == models.Classify && info.Task == models.Segment:
		return nil, fmt.Errorf("%w: %s holds %s, a segmentation model; residual segment --weights %s --out MASK.png IMAGE segments an image", errUsage, weights, info.Name, weights)
	case task == models.Segment && info.Task != models.Segment:
		return nil, fmt.Errorf("%w: %s holds %s, which classifies whole images; residual predict --weights %s IMAGE classifies one", errUsage, weights, info.Name, weights)
	}
	if err := m.SetPrecision(pr); err != nil {
		return nil, fmt.Errorf("%w: --precision: %v", errUsage, err) // infer's message names pr
	}
	return m, nil
}

// stoppedAfter is predict's error when a signal (cause) stops it: how many
// of the images it classified and printed.
func stoppedAfter(cause error, done, n int) error {
	return fmt.Errorf("%w after classifying %d of %s", cause, done, counted(n, "image"))
}

// skipBadFlag is eval's and quantize's --skip-bad-images, train's
// without its resume rules.
func skipBadFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("skip-bad-images", false, "folder:DIR: skip unreadable image files with a warning instead of failing (=false turns off a skip-bad in the spec or the checkpoint's data set)")
}

// withSkipBad applies an explicit --skip-bad-images to a data spec: true
// adds skip-bad to a folder spec (refused for another), false removes it;
// a flag not given leaves the spec as it is.
func withSkipBad(fs *flag.FlagSet, spec string, skip bool) (string, error) {
	switch {
	case !flagSet(fs, "skip-bad-images"):
		return spec, nil
	case !skip:
		return data.WithoutSkipBad(spec), nil
	}
	s, err := data.FolderSpec(spec, 0, true)
	if err != nil {
		return "", fmt.Errorf("%w: --skip-bad-images: %v", errUsage, err)
	}
	return s, nil
}

// classifyEach classifies imgs with classify (infer.Model.Classify), in
// order: each gets the guesses of every image it takes, skip the index
// and error of one it cannot take (an *infer.ImageError), and the others
// are classified on. Classify stops at such an image, having taken the
// ones before it: those are classified again without it, and the rest
// after it, so that each image is classified about twice at most, not
// the whole list again for every image left out.
func classifyEach(imgs []image.Image, classify func([]image.Image) ([][]infer.Guess, error), each func(int, []infer.Guess), skip func(int, error)) error {
	return classifyFrom(0, imgs, classify, each, skip)
}

// classifyFrom is classifyEach of imgs, the first of which is image
// offset of the list.
func classifyFrom(offset int, imgs []image.Image, classify func([]image.Image) ([][]infer.Guess, error), each func(int, []infer.Guess), skip func(int, error)) error {
	for lo := 0; lo < len(imgs); {
		guesses, err := classify(imgs[lo:])
		var ie *infer.ImageError
		if errors.As(err, &ie) && ie.Index >= 0 && lo+ie.Index < len(imgs) {
			// The ones before it (all taken, unless Classify looked at
			// every image first: a nil one, then, is left out in turn).
			if err := classifyFrom(offset+lo, imgs[lo:lo+ie.Index], classify, each, skip); err != nil {
				return err
			}
			skip(offset+lo+ie.Index, ie.Err)
			lo += ie.Index + 1
			continue
		}
		if err != nil {
			return err
		}
		for i, gs := range guesses {
			each(offset+lo+i, gs)
		}
		return nil
	}
	return nil
}

// folderAtModelSize reads an image folder (folder:DIR, without a size=
// option) at the square size a checkpoint's model takes, so that eval and
// quantize on a folder of any photos need no flag; other specs, an
// explicit size, and a model with a non-square input are left as they are
// (the size check then names the mismatch).
func folderAtModelSize(spec string, p checkpoint.Preprocess) (string, error) {
	if !data.IsFolderSpec(spec) || p.Height != p.Width || data.FolderSize(spec) != 0 {
		return spec, nil
	}
	return data.FolderSpec(spec, p.Height, false)
}

// unnamed reports whether class names are the numbers 0…N−1, what an
// import that knows no names gives them.
func unnamed(classes []string) bool {
	for i, c := range classes {
		if c != strconv.Itoa(i) {
			return false
		}
	}
	return len(classes) > 0
}
