package residual

import (
	"os/exec"
	"strings"
	"testing"
)

// layer ranks the packages from the bottom (−1, the slice pools the
// kernels and the server share) to the command line: a package may import
// only packages of lower rank. It is the drawing of the imports as a check
// (cmd → serve/train/experiments/bench → infer/interop → checkpoint/data →
// models → quant → nn/optim → autograd → tensor/kernels → slicepool).
var layer = map[string]int{
	"internal/slicepool": -1, "internal/typednil": -1, "internal/fifotest": -1, "internal/pnm": -1, "internal/bmp": -1, "internal/pngheader": -1, "internal/atomicfile": -1, "internal/protosize": -1,
	"tensor": 0, "limits": 0, "internal/kernels": 0, "internal/kernels/kernelstest": 0, "internal/kernels/gen": 0,
	"internal/onnxpb": 0, "safetensors": 1, "data/transform": 1, "tensorboard": 1, "distributed": 1,
	"autograd": 2, "data/imagefile": 2,
	"nn": 3, "optim": 3,
	"models/resnet": 4, "models/unet": 4, "models/mlp": 4, "quant": 4,
	"models":     5,
	"checkpoint": 6, "data": 6, "internal/fixture": 6,
	"interop/onnx": 7, "interop/torch": 7, "interop/keras": 7, "infer": 7,
	"train": 8, "bench": 8, "serve": 8, "serve/inferencepb": 0, "bench/serveload": 0, "bench/fashionfolder": 8, "bench/ddp/ddpbench": 8, "bench/ddp/linkemu": 8,
	"experiments":  9,
	"cmd/residual": 10,
	"":             11, // this package: docs and repository-wide tests
}

func TestImportsPointDown(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the imports with:", err)
	}
	out, err := exec.Command(gobin, "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	const mod = "github.com/residual-nn/residual"
	rel := func(p string) (string, bool) {
		if p == mod {
			return "", true
		}
		r, ok := strings.CutPrefix(p, mod+"/")
		return r, ok
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, _ := rel(f[0])
		from, ok := layer[pkg]
		if !ok {
			t.Errorf("package %q has no layer in layers_test.go: give it one", pkg)
			continue
		}
		for _, imp := range f[1:] {
			dep, ours := rel(imp)
			if !ours {
				continue
			}
			if to, ok := layer[dep]; ok && to >= from {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports point down", pkg, from, dep, to)
			}
		}
	}
}
