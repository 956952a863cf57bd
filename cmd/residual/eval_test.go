package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// TestEvalKerasPreprocess: eval normalises a checkpoint's images as its
// preprocessing record says, Keras's BGR order and 0–255 scale included
// (it used to apply the mean and std alone). Two checkpoints compute the
// same function: A takes RGB in [0, 1] with mean m and std s; B takes BGR
// in [0, 255] with the reversed m·255 and s·255, and its first
// convolution's input channels reversed. Their inputs agree to float32
// rounding and their first convolutions sum the same products in another
// order, so their outputs differ by a few float32 roundings: eval prints
// the same figures (4 decimals) for both.
func TestEvalKerasPreprocess(t *testing.T) {
	dir := t.TempDir()
	colourFolder(t, filepath.Join(dir, "photos"))
	cfg, err := models.Preset("resnet8")
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetInChannels(3)
	cfg.SetClasses(2)
	write := func(name string, pre checkpoint.Preprocess, reverse bool) string {
		net, err := models.Build(cfg, tensor.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		if reverse {
			var w *tensor.Tensor
			for _, e := range nn.StateDict(net) {
				if e.Name == "conv1.weight" {
					w = e.Tensor
				}
			}
			// Internally HWIO: [KH][KW][C][OC].
			if w == nil || len(w.Shape) != 4 || w.Shape[2] != 3 {
				t.Fatalf("conv1.weight: %v", w)
			}
			oc := w.Shape[3]
			for tap := 0; tap < w.Shape[0]*w.Shape[1]; tap++ {
				r0, r2 := w.Data[(tap*3+0)*oc:][:oc], w.Data[(tap*3+2)*oc:][:oc]
				for j := range oc {
					r0[j], r2[j] = r2[j], r0[j]
				}
			}
		}
		p := filepath.Join(dir, name, "m.safetensors")
		meta := checkpoint.Meta{Model: cfg, Classes: []string{"a", "b"}, Preprocess: pre}
		if err := checkpoint.Write(p, net, meta, nil); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("rgb", checkpoint.Preprocess{Height: 16, Width: 16, Channels: 3, Normalisation: transform.Normalisation{Mean: []float64{0.4, 0.5, 0.6}, Std: []float64{0.2, 0.25, 0.3}}}, false)
	b := write("bgr", checkpoint.Preprocess{Height: 16, Width: 16, Channels: 3, Normalisation: transform.Normalisation{Mean: []float64{0.6 * 255, 0.5 * 255, 0.4 * 255},
		Std: []float64{0.3 * 255, 0.25 * 255, 0.2 * 255}, BGR: true, Scale255: true}}, true)
	eval := func(ck string) string {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"eval", "--weights", ck, "--data", "folder:" + filepath.Join(dir, "photos")}, &out, &errb); code != 0 {
			t.Fatalf("eval %s: exit %d: %s", ck, code, errb.String())
		}
		return strings.ReplaceAll(out.String(), filepath.Dir(ck), "DIR")
	}
	if ra, rb := eval(a), eval(b); ra != rb {
		t.Errorf("the same function under RGB and Keras's BGR preprocessing evaluates differently:\nRGB:\n%s\nBGR:\n%s", ra, rb)
	}
}

// colourFolder writes train/ and test/ folders of classes a and b, four
// 16×16 PNGs of random colours each, under dir.
func colourFolder(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, split := range []string{"train", "test"} {
		for _, class := range []string{"a", "b"} {
			d := filepath.Join(dir, split, class)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				img := image.NewRGBA(image.Rect(0, 0, 16, 16))
				for p := 0; p < 16*16; p++ {
					img.Set(p%16, p/16, color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255})
				}
				var b bytes.Buffer
				if err := png.Encode(&b, img); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("%d.png", i)), b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// colourCheckpoint writes at path a ResNet-8 (random weights, seed 1) of
// colourFolder's 16×16 RGB images into the named classes, unnormalised.
func colourCheckpoint(t *testing.T, path string, classes []string) {
	t.Helper()
	writeCheckpoint(t, path, "resnet8", checkpoint.Preprocess{Height: 16, Width: 16, Channels: 3}, classes)
}

// writeCheckpoint writes at path the preset network (random weights, seed
// 1) for pre's images (its input channels) into the named classes.
func writeCheckpoint(t *testing.T, path, preset string, pre checkpoint.Preprocess, classes []string) {
	t.Helper()
	cfg, err := models.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	writeConfigCheckpoint(t, path, cfg, pre, classes)
}

// writeConfigCheckpoint writes at path the network of cfg (random
// weights, seed 1) for pre's images (its input channels) into the named
// classes.
func writeConfigCheckpoint(t *testing.T, path string, cfg models.Config, pre checkpoint.Preprocess, classes []string) {
	t.Helper()
	cfg.SetInChannels(pre.Channels)
	cfg.SetClasses(len(classes))
	net, err := models.Build(cfg, tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.Write(path, net, checkpoint.Meta{Model: cfg, Classes: classes, Preprocess: pre}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestEvalClassNames: eval scores a folder's images by class name — a
// folder of some of the model's classes, in another order, evaluates (the
// classes it lacks counted with no images), and one with a class the
// model does not know is refused, naming it (it used to be scored by
// position: folder a's images against the model's first class).
func TestEvalClassNames(t *testing.T) {
	dir := t.TempDir()
	colourFolder(t, filepath.Join(dir, "photos"))
	for _, tc := range []struct {
		classes []string
		code    int
		want    string
	}{
		{[]string{"x", "b", "a"}, 0, "  x                n/a  (0 images)\n  b            "},
		{[]string{"circle", "square", "a"}, 1, `class "b" is not among the 3 classes to score against (circle, square, a)`},
	} {
		ck := filepath.Join(dir, tc.classes[0], "m.safetensors")
		var out, errb bytes.Buffer
		colourCheckpoint(t, ck, tc.classes)
		code := run(context.Background(), []string{"eval", "--weights", ck, "--data", "folder:" + filepath.Join(dir, "photos")}, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("classes %v: exit %d, stdout %q, stderr %q; want %d and %q", tc.classes, code, out.String(), errb.String(), tc.code, tc.want)
		}
	}
}

// TestEvalAllImages: folder,all:DIR evaluates every image of DIR/CLASS/…
// (here a lone test/, which folder:DIR refuses for want of a train/).
func TestEvalAllImages(t *testing.T) {
	dir := t.TempDir()
	colourFolder(t, dir)
	ck := filepath.Join(t.TempDir(), "m.safetensors")
	colourCheckpoint(t, ck, []string{"a", "b"})
	if err := os.RemoveAll(filepath.Join(dir, "train")); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"eval", "--weights", ck, "--data", "folder:" + dir}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "folder,all:"+filepath.Join(dir, "test")) {
		t.Errorf("a lone test/: exit %d, stderr %q; want 1 and the spec to use", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"eval", "--weights", ck, "--data", "folder,all:" + filepath.Join(dir, "test")}, &out, &errb); code != 0 || !strings.Contains(out.String(), "(8 test images)") {
		t.Errorf("folder,all: exit %d, stdout %q, stderr %q; want the 8 images", code, out.String(), errb.String())
	}
	// Another size: the message gives the images' size, not the channels
	// the model's reading gave them (it said "28x28x3" of MNIST), as the
	// command's own: it said "train:", from the package that checks it.
	for _, args := range [][]string{{"eval", "--weights", ck, "--data", "mnist"}, {"quantize", ck, "--calibrate", "mnist", "--out", filepath.Join(t.TempDir(), "q.safetensors")}} {
		out.Reset()
		errb.Reset()
		want := "residual " + args[0] + ": mnist: the data set's images are 28x28 pixels (height×width); the model takes 16x16\n"
		if code := run(context.Background(), args, &out, &errb); code != 1 || !strings.Contains(errb.String(), want) {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
	}
}

// TestEvalUnnamedClasses: a model whose classes are only numbered (an
// import without names) scores a named set by position, saying so.
func TestEvalUnnamedClasses(t *testing.T) {
	dir := t.TempDir()
	colourFolder(t, filepath.Join(dir, "photos"))
	ck := filepath.Join(t.TempDir(), "m.safetensors")
	colourCheckpoint(t, ck, []string{"0", "1"})
	code, out, errs := runCLI("eval", "--weights", ck, "--data", "folder:"+filepath.Join(dir, "photos"))
	if code != 0 || !strings.Contains(errs, "are scored by position (a is output 0)") || !strings.Contains(out, "(8 test images)") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestEvalNamesTheSetItCannotEvaluate: an evaluation that fails on the
// set (every test image unreadable and skipped) names the set, by the
// spec eval reads (the checkpoint's size in it), as a set of another
// image size does; since train's errors about the data carry
// no prefix for their caller to name it, eval said only "nothing to
// evaluate: no file of the set could be read".
func TestEvalNamesTheSetItCannotEvaluate(t *testing.T) {
	dir := t.TempDir()
	colourFolder(t, dir)
	for _, class := range []string{"a", "b"} {
		for i := range 4 {
			f := filepath.Join(dir, "test", class, fmt.Sprintf("%d.png", i))
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, b[:60], 0o644); err != nil { // the header, not the pixels
				t.Fatal(err)
			}
		}
	}
	ck := filepath.Join(t.TempDir(), "m.safetensors")
	colourCheckpoint(t, ck, []string{"a", "b"})
	code, _, errs := runCLI("eval", ck, "--data", "folder:"+dir, "--skip-bad-images")
	if want := "residual eval: folder,size=16,skip-bad:" + dir + ": nothing to evaluate: no file of the set could be read (8 left out as unreadable)\n"; code != 1 || !strings.Contains(errs, want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, errs, want)
	}
}

// TestUsedClasses: a confusion matrix over many classes of which the
// images use few is cut to those with an image or a prediction, in the
// model's order; a small or fully used one is kept whole.
func TestUsedClasses(t *testing.T) {
	names := make([]string, 30)
	conf := make([][]int, 30)
	for i := range conf {
		names[i] = fmt.Sprint("c", i)
		conf[i] = make([]int, 30)
	}
	conf[7][7], conf[7][21], conf[3][3] = 2, 1, 4 // c21 only predicted
	sub, got := usedClasses(conf, names)
	if !reflect.DeepEqual(got, []string{"c3", "c7", "c21"}) || !reflect.DeepEqual(sub, [][]int{{4, 0, 0}, {0, 2, 1}, {0, 0, 0}}) {
		t.Errorf("classes %v, matrix %v", got, sub)
	}
	small := [][]int{{1, 0}, {0, 0}}
	if sub, got := usedClasses(small, []string{"a", "b"}); len(got) != 2 || len(sub) != 2 {
		t.Errorf("a 2-class matrix was cut to %v", got)
	}
}
