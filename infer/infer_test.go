package infer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/checkpoint"
	"github.com/residual-nn/residual/data/imagefile"
	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/infer"
	"github.com/residual-nn/residual/tensor"
)

const dir = "../testdata/checkpoint"

func open(t testing.TB, name string) *infer.Model {
	t.Helper()
	m, err := infer.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func load(t testing.TB, name string) image.Image {
	t.Helper()
	img, err := imagefile.Load(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// A program that only infers does not link the trainer, the plotting stack
// or package data (which embeds MNIST); it uses data/transform, the image
// transforms alone.
func TestImportsStaySmall(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the imports with:", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/residual-nn/residual/checkpoint") {
		t.Fatalf("go list -deps printed no checkpoint package: %q", out)
	}
	for _, d := range deps {
		for _, bad := range []string{"github.com/residual-nn/residual/train", "github.com/residual-nn/residual/data", "gonum.org/v1/plot", "github.com/residual-nn/residual/experiments"} {
			if d == bad || strings.HasPrefix(d, bad+"/") && d != "github.com/residual-nn/residual/data/transform" {
				t.Errorf("infer depends on %s", d)
			}
		}
	}
}

type v1Guess struct {
	Class       int
	Name        string
	Probability float64
}

// The first format's checkpoints give what that format's code gave
// (testdata/checkpoint/v1-outputs.json, written by train.Checkpoint's
// Predict and Segment before they moved here), one image at a time as that
// code ran them: the same most probable class, every class's probability
// within a relative 1e-5, and the same mask. The tolerance: that code ran
// the batch norms after the convolutions, Open folds them into the
// weights (models.ForInference), which rounds each of the network's six
// layers differently by a few float32 ulps (ε = 1.2e-7); a logit of size
// ≤ 3 moves by ≲ 6 layers · 2ε · 3 ≈ 5e-6 and a softmax probability by a
// relative ≲ 2·5e-6. (Without folding the two agreed bit for bit.)
func TestMatchesFirstFormat(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(dir, "v1-outputs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	m := open(t, "resnet-v1.safetensors")
	for _, name := range []string{"digit0.png", "digit1.png", "digit2.png"} {
		var w []v1Guess
		if err := json.Unmarshal(want[name], &w); err != nil {
			t.Fatal(err)
		}
		got, err := m.Classify(context.Background(), []image.Image{load(t, name)}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got[0]) != len(w) || got[0][0].Class != w[0].Class {
			t.Fatalf("%s: %+v, the first format's code gave %+v", name, got[0], w)
		}
		byClass := map[int]float64{}
		for _, g := range got[0] {
			byClass[g.Class] = g.Probability
		}
		for _, g := range w {
			if p, ok := byClass[g.Class]; !ok || math.Abs(p-g.Probability) > 1e-5*g.Probability {
				t.Errorf("%s: class %d has probability %v, the first format's code gave %v", name, g.Class, p, g.Probability)
			}
		}
	}
	var mask []byte
	if err := json.Unmarshal(want["color.png"], &mask); err != nil {
		t.Fatal(err)
	}
	u := open(t, "unet-v1.safetensors")
	if i := u.Info(); i.Task != "segment" || i.Kind != "unet" || len(i.Classes) != 3 {
		t.Errorf("U-Net info %+v", i)
	}
	// That code cut the image, mirrored at the bottom and right to 24×16,
	// into 8×8 tiles and ran each alone (Segment now gives the whole
	// image's result, tiles or not): so do the same here, a tile at a time.
	img := load(t, "color.png")
	ext := image.NewNRGBA(image.Rect(0, 0, 24, 16))
	reflect := func(i, n int) int {
		if i >= n {
			return 2*(n-1) - i
		}
		return i
	}
	for y := range 16 {
		for x := range 24 {
			ext.Set(x, y, img.At(reflect(x, 21), reflect(y, 13)))
		}
	}
	got := make([]int32, 21*13)
	for ty := 0; ty < 16; ty += 8 {
		for tx := 0; tx < 24; tx += 8 {
			seg, err := u.SegmentTiles(context.Background(), ext.SubImage(image.Rect(tx, ty, tx+8, ty+8)), 0)
			if err != nil {
				t.Fatal(err)
			}
			for y := ty; y < min(ty+8, 13); y++ {
				for x := tx; x < min(tx+8, 21); x++ {
					got[y*21+x] = seg.Class[(y-ty)*8+x-tx]
				}
			}
		}
	}
	if len(got) != len(mask) {
		t.Fatalf("mask of %d pixels, the first format's %d", len(got), len(mask))
	}
	for i, k := range got {
		if byte(k) != mask[i] {
			t.Fatalf("pixel %d: class %d, the first format's code gave %d", i, k, mask[i])
		}
	}
	seg, err := u.Segment(context.Background(), img)
	if err != nil || seg.Width != 21 || seg.Height != 13 || len(seg.Class) != 21*13 {
		t.Fatalf("the whole image: %v", err)
	}
}

// images returns n test images of varied sizes and colour models: the
// committed digits, and digits scaled, inverted and put on RGBA and
// paletted canvases, so that preprocessing converts and resizes.
func images(t *testing.T, n int) []image.Image {
	base := []image.Image{load(t, "digit0.png"), load(t, "digit1.png"), load(t, "digit2.png")}
	var out []image.Image
	for i := 0; len(out) < n; i++ {
		src := base[i%3]
		side := 20 + 7*i
		var img interface {
			image.Image
			Set(x, y int, c color.Color)
		}
		switch i % 3 {
		case 0:
			img = image.NewGray(image.Rect(0, 0, side, side+i%5))
		case 1:
			img = image.NewRGBA(image.Rect(0, 0, side+3, side))
		default:
			img = image.NewPaletted(image.Rect(0, 0, side, side), color.Palette{color.Black, color.White, color.Gray{128}})
		}
		b := img.Bounds()
		for y := 0; y < b.Dy(); y++ {
			for x := 0; x < b.Dx(); x++ {
				img.Set(x, y, src.At(x*28/b.Dx(), y*28/b.Dy()))
			}
		}
		out = append(out, img)
	}
	return out
}

// Eight goroutines classifying at once (run under -race in CI) get what
// one goroutine gets, bit for bit, and a U-Net segments concurrently too.
func TestConcurrentUse(t *testing.T) {
	m := open(t, "mnist-tiny.safetensors")
	imgs := images(t, 20) // two batches of 16 and 4
	ctx := context.Background()
	want, err := m.Classify(ctx, imgs, 3)
	if err != nil {
		t.Fatal(err)
	}
	u := open(t, "unet-v1.safetensors")
	color := load(t, "color.png")
	wantMask, err := u.SegmentTiles(ctx, color, 8)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 2; r++ {
				got, err := m.Classify(ctx, imgs, 3)
				if err != nil {
					errs <- err
					return
				}
				if !equalGuesses(got, want) {
					errs <- fmt.Errorf("goroutine %d: %v, serially %v", g, got, want)
					return
				}
			}
			if g%2 == 0 {
				mask, err := u.SegmentTiles(ctx, color, 8)
				if err != nil || !slices.Equal(mask.Class, wantMask.Class) {
					errs <- fmt.Errorf("goroutine %d: concurrent mask differs (%v)", g, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func equalGuesses(a, b [][]infer.Guess) bool {
	return slices.EqualFunc(a, b, func(x, y []infer.Guess) bool { return slices.Equal(x, y) })
}

// Input is the evaluation transform training's code composes:
// transform.Pixels, then transform.Resize to the model's size, then the
// checkpoint's Normalisation, for images of every colour model and sizes
// that are and are not the model's. (The normalisation itself is
// compared with torchvision in data/transform.)
func TestInputMatchesData(t *testing.T) {
	p := checkpoint.Preprocess{Height: 28, Width: 28, Channels: 1, Normalisation: transform.Normalisation{Mean: []float64{0.13}, Std: []float64{0.31}}}
	// Images with transparency too: infer converted them through
	// premultiplied colours (translucent pixels darkened by up to 208
	// levels), package data as PIL does (alpha dropped).
	all := images(t, 9)
	for _, name := range []string{"rgba", "la", "palette"} {
		img, err := imagefile.Load(filepath.Join("..", "testdata", "pil", "alpha", name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, img)
	}
	for i, img := range all {
		for _, ch := range []int{1, 3} {
			p.Channels, p.Mean, p.Std = ch, slices.Repeat([]float64{0.13}, ch), slices.Repeat([]float64{0.31}, ch)
			got, err := infer.Input(p, img)
			if err != nil {
				t.Fatal(err)
			}
			b := img.Bounds()
			pix, err := transform.Resize(transform.Pixels(img, ch), b.Dy(), b.Dx(), ch, 28, 28)
			if err != nil {
				t.Fatal(err)
			}
			want, err := p.Normalisation.Tensor(pix, 28, 28, ch)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Data, want.Data) || !slices.Equal(got.Shape, []int{1, 28, 28, ch}) {
				t.Errorf("image %d (%T %v), %d channels: differs from package data's transform", i, img, b, ch)
			}
		}
	}
	// Empty mean and std, which Preprocess.Validate takes for none as it
	// does nil, normalise nothing (they indexed past the end: a panic).
	img := images(t, 1)[0]
	b := img.Bounds()
	pix, err := transform.Resize(transform.Pixels(img, 1), b.Dy(), b.Dx(), 1, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	want, err := transform.Normalisation{}.Tensor(pix, 28, 28, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, none := range [][]float64{nil, {}} {
		p.Channels, p.Mean, p.Std = 1, none, none
		got, err := infer.Input(p, img)
		if err != nil || !slices.Equal(got.Data, want.Data) {
			t.Errorf("mean and std %#v: not the unnormalised pixels", none)
		}
	}
}

// Inputs a model cannot take are errors naming the problem, never panics;
// a cancelled context stops the work.
func TestErrors(t *testing.T) {
	m := open(t, "mnist-tiny.safetensors")
	u := open(t, "unet-v1.safetensors")
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	img := load(t, "digit0.png")
	for _, tc := range []struct {
		name string
		err  func() error
		want string
	}{
		{"wrong channels", func() error { _, err := m.Forward(ctx, tensor.New(1, 28, 28, 3)); return err }, "[N,H,W,1]"},
		{"no model: Forward", func() error { _, err := (*infer.Model)(nil).Forward(ctx, tensor.New(1, 28, 28, 1)); return err }, "no model (nil"},
		{"no model: Classify", func() error { _, err := (*infer.Model)(nil).Classify(ctx, []image.Image{img}, 1); return err }, "no model (nil"},
		{"no model: Segment", func() error { _, err := (*infer.Model)(nil).Segment(ctx, img); return err }, "no model (nil"},
		{"no model: Preprocess", func() error { _, err := (*infer.Model)(nil).Preprocess(img); return err }, "no model (nil"},
		{"no model: SetPrecision", func() error { return (*infer.Model)(nil).SetPrecision(ag.BF16) }, "no model (nil"},
		{"nil input", func() error { _, err := m.Forward(ctx, nil); return err }, "input of shape []"},
		{"empty batch", func() error { _, err := m.Forward(ctx, tensor.New(0, 28, 28, 1)); return err }, "N ≥ 1"},
		{"huge input", func() error {
			_, err := m.Forward(ctx, &tensor.Tensor{Shape: []int{1 << 20, 1 << 10, 1 << 10, 1}})
			return err
		}, "limits.TensorElements"},
		{"U-Net size", func() error { _, err := u.Forward(ctx, tensor.New(1, 15, 15, 3)); return err }, "cannot take input [1 15 15 3]"},
		{"cancelled forward", func() error { _, err := m.Forward(cancelled, tensor.New(1, 28, 28, 1)); return err }, "context canceled"},
		{"cancelled classify", func() error { _, err := m.Classify(cancelled, []image.Image{img}, 1); return err }, "context canceled"},
		{"cancelled segment", func() error { _, err := u.Segment(cancelled, img); return err }, "context canceled"},
		{"k = 0", func() error { _, err := m.Classify(ctx, []image.Image{img}, 0); return err }, "k ≥ 1"},
		{"classify with a U-Net", func() error { _, err := u.Classify(ctx, []image.Image{img}, 1); return err }, "use Segment"},
		{"segment with a ResNet", func() error { _, err := m.Segment(ctx, img); return err }, "not a segmentation model"},
		{"empty image", func() error {
			_, err := m.Classify(ctx, []image.Image{image.NewGray(image.Rect(0, 0, 0, 5))}, 1)
			return err
		}, "image 0"},
		{"bomb", func() error { _, err := m.Preprocess(image.NewGray(image.Rect(0, 0, 100000, 1))); return err }, "limits.ImageSide"},
		{"negative tile", func() error { _, err := u.SegmentTiles(ctx, img, -1); return err }, "tile"},
		{"nil image", func() error { _, err := m.Classify(ctx, []image.Image{img, nil}, 3); return err }, "image 1: no image (nil)"},
		{"typed nil image", func() error { _, err := m.Classify(ctx, []image.Image{(*image.Gray)(nil)}, 3); return err }, "image 0: no image (nil)"},
		{"preprocess nil", func() error { _, err := m.Preprocess(nil); return err }, "image is nil"},
		{"preprocess typed nil", func() error { _, err := m.Preprocess((*image.RGBA)(nil)); return err }, "image is nil"},
		{"segment nil", func() error { _, err := u.Segment(ctx, nil); return err }, "image is nil"},
		{"segment typed nil", func() error { _, err := u.Segment(ctx, (*image.Gray)(nil)); return err }, "image is nil"},
		{"image short of pixels", func() error {
			_, err := m.Classify(ctx, []image.Image{&image.Gray{Rect: image.Rect(0, 0, 28, 28), Stride: 28}}, 1)
			return err
		}, "image 0: infer: reading the image (*image.Gray)"},
		{"segment image short of pixels", func() error {
			_, err := u.Segment(ctx, &image.RGBA{Rect: image.Rect(0, 0, 20, 20), Stride: 80, Pix: make([]uint8, 10)})
			return err
		}, "reading the image (*image.RGBA)"},
		{"nil context", func() error {
			var none context.Context
			_, err := m.Classify(none, []image.Image{img}, 1)
			return err
		}, "nil context"},
	} {
		err := tc.err()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
		if strings.HasPrefix(tc.name, "cancelled") && !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v is not context.Canceled", tc.name, err)
		}
	}
	// A tile far larger than the image is cut to it (issue #21: --tile
	// 100000 on a 1-pixel image ran out of memory).
	if _, err := u.SegmentTiles(ctx, image.NewRGBA(image.Rect(0, 0, 1, 1)), 100000); err != nil {
		t.Errorf("a 1-pixel image with tile 100000: %v", err)
	}
	if got, err := m.Classify(ctx, nil, 3); err != nil || len(got) != 0 {
		t.Errorf("no images: %v, %v", got, err)
	}
}

// New refuses what is not a checkpoint it can run, with an error naming
// the problem, and SetPrecision refuses precisions autograd does not know.
func TestNewAndPrecisionErrors(t *testing.T) {
	c, err := checkpoint.Load(filepath.Join(dir, "mnist-tiny.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	noNet := *c
	noNet.Net = nil
	badPre := *c
	badPre.Preprocess.Height = -1
	for _, tc := range []struct {
		name string
		c    *checkpoint.Checkpoint
		want string
	}{
		{"nil", nil, "no checkpoint"},
		{"empty", &checkpoint.Checkpoint{}, "the checkpoint has no model"},
		{"no network", &noNet, "has no network"},
		{"bad preprocessing", &badPre, "preprocess"},
	} {
		m, err := infer.New(tc.c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, %v; want an error with %q", tc.name, m, err, tc.want)
		}
	}
	m := open(t, "mnist-tiny.safetensors")
	for _, p := range []ag.Precision{-1, 2, 99} {
		if err := m.SetPrecision(p); err == nil || !strings.Contains(err.Error(), "unknown precision") {
			t.Errorf("SetPrecision(%d): %v", int(p), err)
		}
	}
	x := tensor.NewRNG(1).Randn(1, 28, 28, 1)
	want, err := m.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPrecision(ag.BF16); err != nil {
		t.Fatal(err)
	}
	bf, err := m.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(bf.Data, want.Data) {
		t.Error("SetPrecision(BF16) left the logits as FP32 computes them")
	}
	if got := m.Info().Precision; got != "bf16" {
		t.Errorf("Info().Precision after SetPrecision(BF16): %q, want bf16", got)
	}
	if err := m.SetPrecision(ag.FP32); err != nil {
		t.Fatal(err)
	}
	if got := m.Info().Precision; got != "fp32" {
		t.Errorf("Info().Precision after SetPrecision(FP32): %q, want fp32", got)
	}
	if got, err := m.Forward(context.Background(), x); err != nil || !slices.Equal(got.Data, want.Data) {
		t.Errorf("back to FP32: %v, logits differ from the first FP32 pass: %v", err, !slices.Equal(got.Data, want.Data))
	}
}

// A model's tapes learn each pass's memory plan on their first passes and
// release buffers on later ones (autograd.Tape.PlanMemory): every pass,
// at batch sizes that alternate, gives the logits of the first pass of its
// size bit for bit. The U-Net's concatenated skips keep buffers alive
// across most of the pass (models/unet's TestOverlapTile runs a valid
// U-Net's crops on a planned tape).
func TestRepeatedForwardIsExact(t *testing.T) {
	for _, c := range []struct {
		name string
		side int
	}{{"mnist-tiny.safetensors", 0}, {"unet-v1.safetensors", 124}} {
		m := open(t, c.name)
		i := m.Info()
		h, w := i.Height, i.Width
		if c.side > 0 {
			h, w = c.side, c.side
		}
		first := map[int][]float32{}
		for pass, n := range []int{1, 3, 1, 3, 3, 1, 1, 3} {
			x := tensor.NewRNG(uint64(n)).Randn(n, h, w, i.Channels)
			y, err := m.Forward(context.Background(), x)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if len(y.Data) != tensor.NumElements(y.Shape) {
				t.Fatalf("%s: output of shape %v holds %d values", c.name, y.Shape, len(y.Data))
			}
			if want, ok := first[n]; !ok {
				first[n] = y.Data
			} else if !slices.Equal(y.Data, want) {
				t.Fatalf("%s: pass %d (batch %d) differs from the first pass of its size", c.name, pass, n)
			}
		}
	}
}

// An image Classify cannot take is an *ImageError holding its index among
// the images given, so that a caller (residual predict) names its file and
// classifies the others.
func TestClassifyImageError(t *testing.T) {
	m := open(t, "mnist-tiny.safetensors")
	ok := image.NewGray(image.Rect(0, 0, 28, 28))
	wide := image.NewGray(image.Rect(0, 0, 100000, 1)) // past limits.ImageSide
	for _, c := range []struct {
		imgs  []image.Image
		index int
	}{
		{[]image.Image{ok, wide, ok}, 1},
		{[]image.Image{ok, ok, nil}, 2},
	} {
		_, err := m.Classify(context.Background(), c.imgs, 1)
		var ie *infer.ImageError
		if !errors.As(err, &ie) || ie.Index != c.index {
			t.Errorf("%v: want an *ImageError of index %d", err, c.index)
		}
	}
}
