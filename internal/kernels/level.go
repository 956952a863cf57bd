package kernels

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// Level names the kernel implementation in use.
type Level int

// The kernel levels, from the portable reference up.
const (
	Generic Level = iota // the reference kernels of this package, pure Go
	AVX2                 // Go assembly, AVX2 + FMA
	AVX512               // Go assembly, AVX-512
)

// String returns the level's name as RESIDUAL_KERNELS spells it.
func (l Level) String() string { return [...]string{"generic", "avx2", "avx512"}[l] }

// active is the level in use, chosen once from the CPU (see detect) and the
// RESIDUAL_KERNELS environment variable: "generic" forces the pure-Go
// reference kernels, "avx2" caps the level at AVX2.
var active = func() Level {
	l := detect()
	switch os.Getenv("RESIDUAL_KERNELS") {
	case "generic":
		l = Generic
	case "avx2":
		l = min(l, AVX2)
	}
	return l
}()

// winograd is whether stride-1 3×3 convolutions may take the Winograd
// path (AVX2 and AVX-512); RESIDUAL_WINOGRAD=0 keeps them on the direct
// kernels, whose sums round like the reference's.
var winograd = os.Getenv("RESIDUAL_WINOGRAD") != "0"

// winoMinOutputs is the fewest outputs (N·OH·OW) for which a forward
// convolution whose weights do not stay in cache (over maxCachedWeights)
// takes the Winograd path: its transformed weights are 16/9 of the
// direct kernels' (F(2×2, 3×3)), read from memory once a call, which a
// few outputs' saved products do not repay. Inside a ResNet-50 inference
// pass (its weights cold), the 3×3 layers of 256 channels at 14×14 ran
// 1.05 ms on the Winograd path and 0.81 on the direct kernels at batch 1
// (196 outputs), 1.54 against 1.41 at batch 2 (392) and 2.31 against
// 2.73 at batch 4 (784); those of 128 channels at 28×28 (784 outputs at
// batch 1) ran 20% faster on it. (Those of 512 channels take more passes
// than winoMaxPasses allows, so the direct kernels at any batch.) The
// choice depends on the batch, so a network's outputs for an image at
// batch 1 may differ in the last bits from its outputs for the same
// image in a larger batch. Tests set it to 0 to run small shapes on the
// Winograd path.
var winoMinOutputs = 512

// Active returns the kernel level in use.
func Active() Level { return active }

// SetLevel forces a level (capped at what the CPU supports) and returns the
// previous one; for tests and benchmarks that compare the paths.
func SetLevel(l Level) Level {
	prev := active
	active = min(l, detect())
	use = implFor(active)
	return prev
}

// impl is what the active level offers the float32 entry points,
// resolved once from the level (at start and by SetLevel) rather than
// tested by each call: the direct convolution kernels and the vector
// kernels of batch norm, the element-wise ops and max pooling (nil at the
// generic level), and whether the AVX-512 paths run (its Winograd kernels,
// native bf16).
type impl struct {
	k      *kernelSet
	vk     *vecKernels // batch norm's, the element-wise and max pooling's kernels (nil: the reference loops)
	avx512 bool
}

// use is the active level's impl.
var use = implFor(active)

func implFor(l Level) impl { return impl{k: kernelsFor(l), vk: vecKernelsFor(l), avx512: l == AVX512} }

// kernelSet holds the micro-kernels of one level.
type kernelSet struct {
	vec     int             // floats per vector
	conv    [2][]convKernel // by block width: [0] one vector, [1] two
	row3    [2][]convKernel // the row-of-three-taps kernels (none: nil)
	dw      [2][]dwKernel
	maxConv [2]int
	maxRow3 [2]int
	maxDW   [2]int
}

func (k *kernelSet) init() *kernelSet {
	for i := range 2 {
		k.maxConv[i], k.maxRow3[i], k.maxDW[i] = len(k.conv[i]), len(k.row3[i]), len(k.dw[i])
	}
	return k
}

func kernelsFor(l Level) *kernelSet {
	switch l {
	case AVX512:
		return avx512Set
	case AVX2:
		return avx2Set
	}
	return nil
}

// EnvProblems describes each kernel switch of the environment set to a
// value that means nothing (RESIDUAL_KERNELS, RESIDUAL_BF16,
// RESIDUAL_WINOGRAD), which the kernels ignore: a misspelt "emulate" or
// "avx2" would otherwise leave a user measuring the default path unawares.
func EnvProblems() []string {
	var out []string
	for _, v := range []struct {
		name  string
		known []string
	}{
		{"RESIDUAL_KERNELS", []string{"generic", "avx2"}},
		{"RESIDUAL_BF16", []string{"emulate"}},
		{"RESIDUAL_WINOGRAD", []string{"0", "2"}},
		{"RESIDUAL_AMX", []string{"0"}},
	} {
		if s, ok := os.LookupEnv(v.name); ok && s != "" && !slices.Contains(v.known, s) {
			out = append(out, fmt.Sprintf("%s=%q means nothing to the kernels (it takes %s); ignored", v.name, s, strings.Join(v.known, " or ")))
		}
	}
	return out
}
