package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/distributed"
	"github.com/residual-nn/residual/experiments"
	"github.com/residual-nn/residual/internal/atomicfile"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/serve"
	"github.com/residual-nn/residual/train"
)

// Bounds of flags that no file or package limit covers. Values beyond them
// are refused before any work, with a message naming the flag and value.
const (
	// maxEpochs bounds --epochs: a thousand times the longest recipe
	// residual documents (CIFAR ResNets: 160 epochs) would still pass.
	maxEpochs = 1_000_000
	// maxBatch bounds --batch: one batch of 65,536 MNIST images already
	// holds 51 M input values and gigabytes of activations.
	maxBatch = 1 << 16
	// maxRuns bounds bench's --runs and --warmup.
	maxRuns = 10_000
	// maxSteps bounds demo's --steps.
	maxSteps = 10_000_000
	// maxSeeds bounds experiment's --seeds.
	maxSeeds = 10_000
	// maxBlocks bounds experiment variance's --blocks: the measurement
	// keeps every block's activations for the backward pass (about 12 MB
	// a block for the convolutional network, 1.2 GB at 100 blocks), and
	// 100 doublings of the unnormalised residual network's variance
	// already span 30 decades.
	maxBlocks = 100
)

// flagChecks checks a command's flag values (and its positional arguments,
// where a flag's meaning depends on them) after parsing and before the
// command does any work; parse and parseInterleaved call them. A check may
// also settle a flag: train's --threads is clamped to the CPUs (with a
// note on standard error) and its --out gets its default, so that the
// folder can be tested for writing before the data set is read.
var flagChecks = map[string]func(fs *flag.FlagSet, pos []string) error{
	"train":      checkTrain,
	"eval":       checkEval,
	"predict":    checkPredict,
	"quantize":   checkQuantize,
	"segment":    checkSegment,
	"import":     checkImport,
	"export":     checkExport,
	"summary":    checkSummary,
	"demo":       checkDemo,
	"bench":      checkBench,
	"experiment": checkExperiment,
	"serve":      checkServe,
}

// checkFlags runs the command's checks, if it has any.
func checkFlags(fs *flag.FlagSet, pos []string) error {
	if check, ok := flagChecks[strings.TrimPrefix(fs.Name(), "residual ")]; ok {
		return check(fs, pos)
	}
	return nil
}

// badFlag is a usage error naming the flag and its value.
func badFlag(name string, value any, format string, args ...any) error {
	return fmt.Errorf("%w: --%s %v: %s", errUsage, name, value, fmt.Sprintf(format, args...))
}

// flagValue returns the value of a defined flag (nil if fs has none or
// its type cannot say).
func flagValue(fs *flag.FlagSet, name string) any {
	if f := fs.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			return g.Get()
		}
	}
	return nil
}

// The typed values of flags: zero for a flag the set lacks, so a check
// stays quiet about a flag that a command no longer has.
func intFlag(fs *flag.FlagSet, name string) int { v, _ := flagValue(fs, name).(int); return v }
func floatFlag(fs *flag.FlagSet, name string) float64 {
	v, _ := flagValue(fs, name).(float64)
	return v
}
func stringFlag(fs *flag.FlagSet, name string) string { v, _ := flagValue(fs, name).(string); return v }

// intIn refuses an integer flag outside [lo, hi]; a flag the set lacks
// passes.
func intIn(fs *flag.FlagSet, name string, lo, hi int) error {
	v, ok := flagValue(fs, name).(int)
	if ok && (v < lo || v > hi) {
		if hi == math.MaxInt {
			return badFlag(name, v, "must be ≥ %d", lo)
		}
		return badFlag(name, v, "must be in [%d, %d]", lo, hi)
	}
	return nil
}

// floatIn refuses a float flag that is not finite or lies outside the
// interval from lo to hi, each end included as the flags say; the message
// shows the interval in the usual notation.
func floatIn(fs *flag.FlagSet, name string, lo float64, loIn bool, hi float64, hiIn bool) error {
	v, ok := flagValue(fs, name).(float64)
	if !ok {
		return nil
	}
	bad := math.IsNaN(v) || math.IsInf(v, 0) || v < lo || v > hi || (!loIn && v == lo) || (!hiIn && v == hi)
	if !bad {
		return nil
	}
	l, r := "(", ")"
	if loIn {
		l = "["
	}
	if hiIn {
		r = "]"
	}
	if math.IsInf(hi, 1) {
		if loIn {
			return badFlag(name, v, "must be a finite number ≥ %g", lo)
		}
		return badFlag(name, v, "must be a finite number > %g", lo)
	}
	return badFlag(name, v, "must be in %s%g, %g%s", l, lo, hi, r)
}

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func checkTrain(fs *flag.FlagSet, _ []string) error {
	inf := math.Inf(1)
	err := firstError(
		intIn(fs, "epochs", 1, maxEpochs),
		intIn(fs, "batch", 1, maxBatch),
		floatIn(fs, "lr", 0, false, inf, false),
		floatIn(fs, "momentum", 0, true, 1, false),
		floatIn(fs, "weight-decay", 0, true, inf, false),
		floatIn(fs, "val-split", 0, true, 1, false),
		intIn(fs, "limit", 0, math.MaxInt),
		intIn(fs, "base", 0, limits.Channels),
		intIn(fs, "threads", 0, math.MaxInt),
		floatIn(fs, "warmup-epochs", 0, true, inf, false),
		floatIn(fs, "head-lr-mult", 0, false, inf, false), // the library reads 0 as 1
		floatIn(fs, "label-smoothing", 0, true, 1, false),
		floatIn(fs, "ema", 0, true, 1, false),
		floatIn(fs, "clip-grad", 0, true, inf, false),
		intIn(fs, "patience", 0, math.MaxInt),
		checkFreeze(stringFlag(fs, "freeze")),
		checkInit(stringFlag(fs, "init")),
		checkDataSpec("data", stringFlag(fs, "data")),
	)
	if err != nil {
		return err
	}
	if resume, _ := flagValue(fs, "resume").(bool); resume {
		if overwrite, _ := flagValue(fs, "overwrite").(bool); overwrite {
			return fmt.Errorf("%w: --resume continues the run in --out and --overwrite replaces it; give one", errUsage)
		}
		if init := stringFlag(fs, "init"); flagSet(fs, "init") {
			return badFlag("init", init, "starts a new run from a checkpoint's weights, and --resume continues the run in --out from its own; give one (a new run needs another --out, or --overwrite)")
		}
	}
	if resume, _ := flagValue(fs, "resume").(bool); !resume { // else the run's optimizer: resumeConfig checks
		nesterov, _ := flagValue(fs, "nesterov").(bool)
		if err := checkSGDFlags(fs, stringFlag(fs, "optimizer"), floatFlag(fs, "momentum"), nesterov); err != nil {
			return err
		}
	}
	if fs.Lookup("data") != nil && stringFlag(fs, "data") == "" {
		return badFlag("data", `""`, "names no data set; want %s", dataSpecs)
	}
	if kind, _, _ := strings.Cut(stringFlag(fs, "data"), ":"); slices.Contains(strings.Split(kind, ",")[1:], "all") {
		return badFlag("data", stringFlag(fs, "data"), "reads every image as the test set, which training would train on; folder,all: is for eval and quantize --calibrate")
	}
	resume, _ := flagValue(fs, "resume").(bool) // then --epochs, unless given, is the run's: the config's check
	if w, e := floatFlag(fs, "warmup-epochs"), intFlag(fs, "epochs"); fs.Lookup("warmup-epochs") != nil && w >= float64(e) && (!resume || flagSet(fs, "epochs")) {
		return badFlag("warmup-epochs", w, "must be less than --epochs %d", e)
	}
	if s := stringFlag(fs, "schedule"); fs.Lookup("schedule") != nil {
		if _, err := train.ParseSchedule(s); err != nil {
			return badFlag("schedule", s, "%v", err)
		}
	}
	// The names of the augmentations are parseAugment's to check; the
	// shift is bounded here.
	aug := stringFlag(fs, "augment")
	for _, part := range strings.Split(aug, ",") {
		if p, ok := strings.CutPrefix(part, "pad="); ok {
			if n, err := strconv.Atoi(p); err != nil || n < 0 || n > data.MaxPad {
				return badFlag("augment", aug, "want pad=N for N in [0, %d]", data.MaxPad)
			}
		}
	}
	clampThreads(fs)
	switch d := stringFlag(fs, "distributed"); d {
	case distributed.KindNone, distributed.KindLocal, distributed.KindMPI, distributed.KindAuto:
	default:
		return badFlag("distributed", d, "want none, mpi or auto")
	}
	if f := fs.Lookup("dist-timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d <= 0 {
			return badFlag("dist-timeout", d, "must be > 0")
		}
	}
	out := stringFlag(fs, "out")
	if out == "" {
		model := stringFlag(fs, "model")
		if init := stringFlag(fs, "init"); init != "" && !flagSet(fs, "model") { // the checkpoint's network
			model = strings.TrimSuffix(filepath.Base(init), filepath.Ext(init))
		}
		out = defaultRunFolder(model, stringFlag(fs, "data"))
		fs.Set("out", out)
	}
	if dir, ok := imageFolder(stringFlag(fs, "data")); ok && within(out, dir) {
		return badFlag("out", out, "is inside the image folder %s: the run's plots would become training images; put the run elsewhere", dir)
	}
	if l, ok, _ := distributed.DetectLauncher(os.Getenv); ok && l.Rank != 0 && stringFlag(fs, "distributed") != distributed.KindNone {
		return nil // only rank 0 writes the run folder, which need not exist on this machine
	}
	return checkWritableDir("out", out)
}

// checkSGDFlags refuses SGD's --momentum (given) and --nesterov with
// another optimizer, which has no use for them, and --nesterov without
// momentum, which SGD refuses; opt, momentum and nesterov are the run's.
func checkSGDFlags(fs *flag.FlagSet, opt string, momentum float64, nesterov bool) error {
	if opt != "" && opt != string(train.SGD) {
		if flagSet(fs, "momentum") {
			return badFlag("momentum", momentum, "is SGD's; --optimizer %s takes none (its betas are PyTorch's defaults, 0.9 and 0.999)", opt)
		}
		if nesterov {
			return badFlag("nesterov", nesterov, "is SGD's; --optimizer %s takes none", opt)
		}
		return nil
	}
	if nesterov && momentum == 0 {
		return badFlag("nesterov", nesterov, "needs momentum, and --momentum is 0")
	}
	return nil
}

// dropSGDDefaults clears the momentum and Nesterov flag cfg holds but
// was not given on the command line (--momentum's default, 0.9, or an
// SGD run's record on --resume) when its optimizer is Adam or AdamW,
// which take neither: train.Config.Validate refuses them there. Given
// ones stay, for checkSGDFlags to name.
func dropSGDDefaults(fs *flag.FlagSet, cfg *train.Config) {
	if cfg.Optimizer != train.Adam && cfg.Optimizer != train.AdamW {
		return
	}
	if !flagSet(fs, "momentum") {
		cfg.Momentum = 0
	}
	if !flagSet(fs, "nesterov") {
		cfg.Nesterov = false
	}
}

// imageFolder returns the folder of an image-folder data spec
// (folder[,…]:DIR or segfolder[,…]:DIR).
func imageFolder(spec string) (string, bool) {
	kind, dir, ok := strings.Cut(spec, ":")
	k, _, _ := strings.Cut(kind, ",")
	return dir, ok && dir != "" && (k == "folder" || k == "segfolder")
}

// dataKinds are the data sets data.Open reads: a spec's part before the
// options and the folder (TestDataKinds keeps the list in step with
// data.Open's).
var dataKinds = []string{"mnist", "fashion-mnist", "idx", "cifar10", "cifar100", "folder", "mnist-canvas", "fashion-canvas", "segfolder"}

// dataSpecs lists the forms of the data specs, for messages.
const dataSpecs = "mnist, fashion-mnist[:DIR], idx:DIR, cifar10:DIR, cifar100:DIR, folder:DIR, mnist-canvas[:SIDE], fashion-canvas[:SIDE] or segfolder[,ignore=V]:DIR"

// checkDataSpec refuses a data spec (flag name) of a kind data.Open does
// not know, before the command loads a model or prepares a run for it.
// A kind that reads a folder (data.Open's idx, cifar10, cifar100, folder
// and segfolder) is refused without one (idx without one read the working
// folder: idx:. says so).
func checkDataSpec(name, spec string) error {
	kind, dir, _ := strings.Cut(spec, ":")
	kind, _, _ = strings.Cut(kind, ",")
	switch {
	case spec == "": // the command's default (train's flag has one of its own, checked in checkTrain)
		return nil
	case !slices.Contains(dataKinds, kind):
		return badFlag(name, spec, "unknown data set %q; want %s", kind, dataSpecs)
	case dir == "" && slices.Contains(folderKinds, kind):
		return badFlag(name, spec, "names no folder: want %s:DIR", strings.TrimSuffix(spec, ":"))
	}
	return nil
}

// folderKinds are the data kinds that read a folder named after the colon.
var folderKinds = []string{"idx", "cifar10", "cifar100", "folder", "segfolder"}

// segmentationSpec reports whether a data spec names a segmentation set
// (images with masks), which data.Open reads for mnist-canvas,
// fashion-canvas and segfolder alone.
func segmentationSpec(spec string) bool {
	kind, _, _ := strings.Cut(spec, ":")
	kind, _, _ = strings.Cut(kind, ",")
	return kind == "mnist-canvas" || kind == "fashion-canvas" || kind == "segfolder"
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	ap, err1 := filepath.Abs(path)
	ad, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// checkFreeze refuses an empty prefix in --freeze's list.
func checkFreeze(s string) error {
	if s == "none" || s == "" {
		return nil
	}
	for _, p := range strings.Split(s, ",") {
		if p == "" || p == "none" {
			return badFlag("freeze", s, "want none, backbone or module prefixes separated by commas")
		}
	}
	return nil
}

// checkInit refuses an --init that is not a readable file.
func checkInit(path string) error {
	if path == "" {
		return nil
	}
	if st, err := os.Stat(path); err != nil || st.IsDir() {
		return badFlag("init", path, "not a checkpoint file")
	}
	return nil
}

// flagSet says whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// defaultRunFolder is train's run folder when --out is not given.
func defaultRunFolder(model, spec string) string {
	return filepath.Join("runs", model+"-"+strings.NewReplacer(":", "-", "/", "-").Replace(spec))
}

// checkWritableDir proves that files can be created in dir by creating
// and removing one (atomicfile.Probe), so that a folder that cannot be written is reported
// before the work whose results would go there. Folders it had to create
// for that are removed again (the command creates them when it writes:
// atomicfile.Write, which every command's writes go through,
// creates the missing folders of its path). Its failure is not a usage
// error (exit status 1) but names the flag.
func checkWritableDir(name, dir string) error {
	return checkWritable(name, dir, dir)
}

// checkWritable is checkWritableDir for the flag whose value (a folder or
// a file) is written into dir; its errors name the flag and the value,
// and dir where that is not the value itself.
func checkWritable(name, value, dir string) (err error) {
	dir = filepath.Clean(dir)
	folder := "the folder"
	if filepath.Clean(value) != dir {
		folder += " " + dir
	}
	missing := "" // the outermost folder of dir that does not exist yet
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !os.IsNotExist(err) {
			break
		}
		missing = d
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--%s %s: cannot create %s: %w", name, value, folder, err)
	}
	if missing != "" {
		defer func() {
			for d := dir; ; d = filepath.Dir(d) {
				os.Remove(d) // only ever an empty folder made above
				if d == missing || filepath.Dir(d) == d {
					break
				}
			}
		}()
	}
	// atomicfile's probe, so that a second signal's exit leaves no probe
	// file behind either.
	if err := atomicfile.Probe(dir); err != nil {
		return fmt.Errorf("--%s %s: cannot write in %s: %w", name, value, folder, err)
	}
	return nil
}

// checkOutFile refuses an output file that names a folder, or whose
// folder cannot be written (checkWritableDir), before the work whose
// result it would hold.
func checkOutFile(name, path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return badFlag(name, path, "is a folder; name the file to write")
	}
	return checkWritable(name, path, filepath.Dir(path))
}

// checkCheckpoint refuses a checkpoint to read that is a folder (flag
// names its flag; "" for a positional argument); a missing file is left to
// the loader, whose message names it.
func checkCheckpoint(name, path string) error {
	st, err := os.Stat(path)
	if path == "" || err != nil || !st.IsDir() {
		return nil
	}
	if name == "" {
		return fmt.Errorf("%w: %s is a folder; name the checkpoint file (.safetensors)", errUsage, path)
	}
	return badFlag(name, path, "is a folder; name the checkpoint file (.safetensors)")
}

func checkEval(fs *flag.FlagSet, _ []string) error {
	err := firstError(
		checkOutName(fs, "confusion", "PNG", ".png"),
		checkCheckpoint("weights", stringFlag(fs, "weights")),
		checkDataSpec("data", stringFlag(fs, "data")),
	)
	if err != nil {
		return err
	}
	out := stringFlag(fs, "confusion")
	if out == "" {
		// The default goes next to the checkpoint: runEval checks it once
		// the checkpoint says whether it has a confusion matrix.
		return nil
	}
	return checkConfusion(out, stringFlag(fs, "weights"), stringFlag(fs, "data"))
}

// checkConfusion refuses eval's confusion image path when it is the
// checkpoint or lies inside the data set's folder (spec), both of which
// eval reads, or when it is a folder or its folder cannot be written.
func checkConfusion(path, weights, spec string) error {
	if weights != "" && samePath(path, weights) {
		return badFlag("confusion", path, "is the checkpoint being evaluated; eval would overwrite it")
	}
	if dir, ok := imageFolder(spec); ok && within(path, dir) { // a PNG there would be read as an image
		return badFlag("confusion", path, "is inside the data folder %s, which eval reads; put the image elsewhere", dir)
	}
	return checkOutFile("confusion", path)
}

func checkPredict(fs *flag.FlagSet, _ []string) error {
	return firstError(intIn(fs, "top", 1, limits.Classes), checkCheckpoint("weights", stringFlag(fs, "weights")))
}

func checkSegment(fs *flag.FlagSet, pos []string) error {
	if tile := intFlag(fs, "tile"); tile != 0 {
		if tile < 0 {
			return badFlag("tile", tile, "must be ≥ 1 (or 0 for the network's default)")
		}
		if err := limits.CheckImage("tile", tile, tile); err != nil {
			return badFlag("tile", tile, "a tile is an image the network sees whole, and %v", err)
		}
	}
	if err := checkCheckpoint("weights", stringFlag(fs, "weights")); err != nil {
		return err
	}
	out := stringFlag(fs, "out")
	if out == "" {
		return nil // the command reports the missing flag with its usage
	}
	overlay := overlayPath(out, stringFlag(fs, "overlay"))
	if err := firstError(checkOutName(fs, "out", "PNG", ".png"), checkOutName(fs, "overlay", "PNG", ".png")); err != nil {
		return err
	}
	if samePath(out, overlay) {
		return badFlag("overlay", overlay, "is the mask (--out) too; name another file")
	}
	inputs := append([]string{stringFlag(fs, "weights")}, pos...)
	for _, in := range inputs {
		for _, o := range [][2]string{{"out", out}, {"overlay", overlay}} {
			if samePath(o[1], in) {
				return badFlag(o[0], o[1], "is the input %s; segment would overwrite it", in)
			}
		}
	}
	// Both files are written only after the segmentation, and only if
	// both can be.
	if err := checkOutFile("out", out); err != nil {
		return err
	}
	if err := checkOutFile("overlay", overlay); err != nil {
		if !flagSet(fs, "overlay") {
			return fmt.Errorf("%w (the default overlay, named after --out; pass --overlay to write it elsewhere)", err)
		}
		return err
	}
	return nil
}

// overlayPath is segment's overlay file: the one given, or the mask's name
// with -overlay.
func overlayPath(mask, overlay string) string {
	if overlay != "" {
		return overlay
	}
	return strings.TrimSuffix(mask, ".png") + "-overlay.png"
}

func checkImport(fs *flag.FlagSet, pos []string) error {
	if err := firstError(intIn(fs, "classes", 0, limits.Classes), checkOutName(fs, "out", "a safetensors checkpoint", ".safetensors")); err != nil {
		return err
	}
	if len(pos) > 0 && pos[0] == "keras-tfjs" {
		if m := stringFlag(fs, "model"); m != "" {
			return badFlag("model", m, "does not apply to keras-tfjs, whose model.json says the architecture")
		}
		if c := intFlag(fs, "classes"); c != 0 {
			return badFlag("classes", c, "does not apply to keras-tfjs, whose model.json says the classes")
		}
	}
	if len(pos) > 0 && pos[0] != "torch" {
		for _, name := range []string{"like", "input", "mean", "std"} {
			if v := stringFlag(fs, name); v != "" {
				return badFlag(name, v, "applies to import torch (a %s file says its preprocessing)", pos[0])
			}
		}
	}
	if input := stringFlag(fs, "input"); input != "" {
		if _, _, err := parseSize(input); err != nil {
			return err // before the file is read
		}
	}
	if len(pos) > 0 && pos[0] == "onnx" && stringFlag(fs, "model") == "" && intFlag(fs, "classes") != 0 {
		return badFlag("classes", intFlag(fs, "classes"), "applies to import onnx only with --model (residual's own exports say their classes)")
	}
	out := stringFlag(fs, "out")
	if len(pos) == 2 && out != "" && samePath(out, pos[1]) {
		return badFlag("out", out, "is the file being imported; import would overwrite it")
	}
	if out == "" {
		return nil
	}
	return checkOutFile("out", out)
}

func checkExport(fs *flag.FlagSet, pos []string) error {
	out := stringFlag(fs, "out")
	if len(pos) == 0 || out == "" {
		return nil // the command reports the missing arguments with its usage
	}
	switch pos[0] {
	case "torch":
		if err := checkOutName(fs, "out", "safetensors (PyTorch reads it with safetensors.torch.load_file)", ".safetensors"); err != nil {
			return err
		}
		for _, f := range []string{"input", "model"} {
			if v := stringFlag(fs, f); v != "" {
				return badFlag(f, v, "applies to export onnx only; export torch writes the checkpoint's weights as they are")
			}
		}
	case "onnx":
		if err := checkOutName(fs, "out", "an ONNX model", ".onnx"); err != nil {
			return err
		}
	}
	if input := stringFlag(fs, "input"); input != "" {
		if _, _, err := parseSize(input); err != nil {
			return err
		}
	}
	weights := stringFlag(fs, "weights")
	if model := stringFlag(fs, "model"); model != "" && (weights != "" || len(pos) == 2) {
		return badFlag("model", model, "exports random weights; give it or a checkpoint, not both")
	}
	if len(pos) == 2 {
		if weights != "" && weights != pos[1] {
			return badFlag("weights", weights, "and the checkpoint argument %s differ; give one", pos[1])
		}
		weights = pos[1]
	}
	name := "weights"
	if stringFlag(fs, "weights") == "" {
		name = "" // the checkpoint argument
	}
	if err := checkCheckpoint(name, weights); err != nil {
		return err
	}
	if weights != "" && samePath(out, weights) {
		return badFlag("out", out, "is the checkpoint being exported; export would overwrite it")
	}
	return checkOutFile("out", out)
}

func checkSummary(fs *flag.FlagSet, _ []string) error {
	if err := firstError(intIn(fs, "classes", 0, limits.Classes), intIn(fs, "in-channels", 0, limits.Channels), intIn(fs, "base", 0, limits.Channels)); err != nil {
		return err
	}
	if input := stringFlag(fs, "input"); input != "" {
		if _, _, err := parseSize(input); err != nil {
			return err
		}
	}
	return nil
}

// parseSize reads an --input image size, HxW: two positive integers and
// nothing else.
func parseSize(size string) (h, w int, err error) {
	hs, ws, ok := strings.Cut(size, "x")
	h, err1 := strconv.Atoi(hs)
	w, err2 := strconv.Atoi(ws)
	if !ok || err1 != nil || err2 != nil || h < 1 || w < 1 || strings.HasPrefix(hs, "+") || strings.HasPrefix(ws, "+") {
		return 0, 0, badFlag("input", size, "want HxW, two positive integers (e.g. 224x224)")
	}
	return h, w, nil
}

func checkDemo(fs *flag.FlagSet, _ []string) error {
	return firstError(intIn(fs, "steps", 1, maxSteps), intIn(fs, "depth", 0, limits.Layers), intIn(fs, "width", 1, limits.Channels))
}

func checkBench(fs *flag.FlagSet, _ []string) error {
	return firstError(intIn(fs, "runs", 1, maxRuns), intIn(fs, "warmup", 0, maxRuns))
}

func checkExperiment(fs *flag.FlagSet, pos []string) error {
	err := firstError(
		intIn(fs, "seeds", 0, maxSeeds),   // 0: the experiment's default
		intIn(fs, "blocks", 0, maxBlocks), // 0: the default
		intIn(fs, "epochs", 0, maxEpochs),
		intIn(fs, "limit", 0, math.MaxInt),
	)
	if err != nil {
		return err
	}
	// Depths are 6n+2: three stages of n two-layer blocks and two more
	// layers; 3n blocks stay within limits.Layers.
	if d := intFlag(fs, "depth"); fs.Lookup("depth") != nil && d < 8 || (d-2)%6 != 0 || (d-2)/2 > limits.Layers {
		return badFlag("depth", d, "must be 6n+2 for n in [1, %d] (20, 32, 44, 56, 110, …)", limits.Layers/3)
	}
	if err := checkDataSpec("data", stringFlag(fs, "data")); err != nil {
		return err
	}
	// The fewest seeds the measurements take (0: the default).
	if n := intFlag(fs, "seeds"); n > 0 && len(pos) == 1 {
		switch {
		case pos[0] == "shatter" && n < experiments.MinShatterInits:
			return badFlag("seeds", n, "shatter needs at least %d initialisations", experiments.MinShatterInits)
		case pos[0] == "variance" && n < experiments.MinVarianceSeeds:
			return badFlag("seeds", n, "variance needs at least %d seeds: its figure draws their spread", experiments.MinVarianceSeeds)
		}
	}
	return floatIn(fs, "warmup", 0, true, 1, false) // a warm-up over every step leaves no schedule
}

// clampThreads lowers --threads to the machine's CPUs, saying so: more
// threads than CPUs only adds switching.
func clampThreads(fs *flag.FlagSet) {
	if n := intFlag(fs, "threads"); n > runtime.NumCPU() {
		fmt.Fprintf(fs.Output(), "%s: --threads %d: this machine has %s; using %d\n", fs.Name(), n, counted(runtime.NumCPU(), "CPU"), runtime.NumCPU())
		fs.Set("threads", fmt.Sprint(runtime.NumCPU()))
	}
}

// checkServe refuses serve's numeric flags out of range (a zero or
// negative value would otherwise fall back to the default unsaid), and a
// --model that is not NAME=CKPT or names a model twice.
func checkServe(fs *flag.FlagSet, _ []string) error {
	err := firstError(
		intIn(fs, "max-batch", 1, serve.MaxBatchLimit),
		intIn(fs, "max-queue", 1, serve.MaxQueueLimit),
		intIn(fs, "instances", 1, serve.MaxInstancesLimit),
		intIn(fs, "max-pixels", 1, limits.ImagePixels),
		intIn(fs, "threads", 0, math.MaxInt),
		intIn(fs, "model-threads", 0, math.MaxInt32),
	)
	if err != nil {
		return err
	}
	clampThreads(fs)
	if v, _ := flagValue(fs, "max-body").(int64); v < 1 {
		return badFlag("max-body", v, "must be ≥ 1 byte")
	}
	for _, d := range []struct {
		name string
		zero bool // whether 0 is a meaningful value
	}{{"max-delay", true}, {"drain", false}, {"timeout", false}, {"poll", false}} {
		v, _ := flagValue(fs, d.name).(time.Duration)
		if v < 0 || v == 0 && !d.zero {
			return badFlag(d.name, v, "must be %s", map[bool]string{true: "≥ 0", false: "> 0"}[d.zero])
		}
	}
	if flagSet(fs, "poll") && stringFlag(fs, "repository") == "" {
		return badFlag("poll", flagValue(fs, "poll"), "is how often --repository is scanned, and no repository is given (the --model checkpoints are read once)")
	}
	seen := map[string]string{}
	for _, m := range *fs.Lookup("model").Value.(*modelFlags) {
		name, path, ok := strings.Cut(m, "=")
		if !ok || name == "" || path == "" {
			return badFlag("model", m, "want NAME=CKPT")
		}
		if err := serve.CheckName(name); err != nil {
			return badFlag("model", m, "%v", err)
		}
		if prev, dup := seen[name]; dup {
			return badFlag("model", m, "names %q again (already %s); give each model its own name", name, prev)
		}
		seen[name] = path
		if repo := stringFlag(fs, "repository"); repo != "" {
			if fi, err := os.Stat(filepath.Join(repo, name)); err == nil && fi.IsDir() {
				return badFlag("model", m, "names model %q, which the repository also holds (%s); serve it from one of them", name, filepath.Join(repo, name))
			}
		}
	}
	return nil
}

// formats names the file formats that common file name extensions
// announce, for checkOutName.
var formats = map[string]string{
	".safetensors": "safetensors",
	".pth":         "a torch.save pickle",
	".pt":          "a torch.save pickle",
	".bin":         "a torch.save pickle",
	".pkl":         "a pickle",
	".ckpt":        "a framework checkpoint",
	".onnx":        "an ONNX model",
	".h5":          "a Keras HDF5 file",
	".keras":       "a Keras archive",
	".json":        "JSON",
	".png":         "PNG",
	".jpg":         "JPEG",
	".jpeg":        "JPEG",
	".gif":         "GIF",
	".bmp":         "BMP",
	".webp":        "WebP",
	".tif":         "TIFF",
	".tiff":        "TIFF",
	".ppm":         "PPM",
	".pgm":         "PGM",
}

// checkOutName refuses an output file named by flag whose extension
// announces another format than the command writes (format, whose own
// extension is ext): bytes of one format under another's name mislead
// every program that opens the file. Other names, and no extension, pass.
func checkOutName(fs *flag.FlagSet, name, format, ext string) error {
	path := stringFlag(fs, name)
	e := strings.ToLower(filepath.Ext(path))
	f, known := formats[e]
	if !known || e == ext || f == formats[ext] {
		return nil
	}
	return badFlag(name, path, "has the extension of %s, but %s writes %s; name it %s", f, strings.TrimPrefix(fs.Name(), "residual "), format, strings.TrimSuffix(path, filepath.Ext(path))+ext)
}

// samePath reports whether a and b name one file: the same absolute path,
// or one existing file reached through links (os.SameFile). An output that
// does not exist yet under another path cannot be an input.
func samePath(a, b string) bool {
	if aa, err := filepath.Abs(a); err == nil {
		if ab, err := filepath.Abs(b); err == nil && aa == ab {
			return true
		}
	}
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
