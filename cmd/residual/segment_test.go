package main

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/infer"
)

// TestSegmentPrecision: segment --precision computes the mask in the
// precision it names, as infer.Model.SetPrecision does: its masks in fp32
// (the default) and bf16 equal package infer's, and on this image they
// differ from each other (7 of its 3,072 pixels), so the flag reached the
// model. A precision autograd does not know is a usage error naming the
// flag, and a classifier is refused as one.
func TestSegmentPrecision(t *testing.T) {
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	s := uint32(1)
	for y := range 48 {
		for x := range 64 {
			s = s*1664525 + 1013904223
			img.Set(x, y, color.RGBA{uint8(s >> 24), uint8(s >> 16), uint8(s >> 8), 255})
		}
	}
	in := filepath.Join(dir, "in.png")
	writePNG(t, in, img)
	masks := map[string][]uint8{}
	for _, tc := range []struct {
		name string
		flag []string
		pr   ag.Precision
	}{
		{"default", nil, ag.FP32},
		{"fp32", []string{"--precision", "fp32"}, ag.FP32},
		{"bf16", []string{"--precision", "bf16"}, ag.BF16},
	} {
		out := filepath.Join(dir, tc.name+".png")
		args := append([]string{"segment", "--weights", unetCkpt, in, "--out", out}, tc.flag...)
		if code, _, errs := runCLI(args...); code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, errs)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		g, ok := got.(*image.Gray)
		if !ok || g.Bounds() != img.Bounds() {
			t.Fatalf("%s: a %T of %v, want a grey mask of %v", out, got, got.Bounds(), img.Bounds())
		}
		m, err := infer.Open(unetCkpt)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetPrecision(tc.pr); err != nil {
			t.Fatal(err)
		}
		want, err := m.Segment(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		diff := 0
		for i, k := range want.Class {
			if g.Pix[i] != uint8(k) {
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("%s: %d of %d mask pixels differ from infer's in %s", tc.name, diff, len(want.Class), tc.pr)
		}
		masks[tc.name] = g.Pix
	}
	if string(masks["default"]) != string(masks["fp32"]) {
		t.Error("the default mask differs from --precision fp32's")
	}
	if string(masks["bf16"]) == string(masks["fp32"]) {
		t.Error("--precision bf16 gave fp32's mask bit for bit: it did not reach the model")
	}
	code, _, errs := runCLI("segment", "--weights", unetCkpt, in, "--out", filepath.Join(dir, "x.png"), "--precision", "fp16")
	if code != 2 || !strings.Contains(errs, `--precision: unknown precision "fp16"`) {
		t.Errorf("segment --precision fp16: exit %d, stderr %q; want 2 naming --precision", code, errs)
	}
	// A classifier is refused for what it is before its precision is
	// looked at: an int8 one, which refuses bf16, is refused as a
	// classifier.
	code, _, errs = runCLI("segment", "--weights", tinyInt8(t, dir), in, "--out", filepath.Join(dir, "x.png"), "--precision", "bf16")
	if code != 2 || !strings.Contains(errs, "classifies whole images") || strings.Contains(errs, "--precision") {
		t.Errorf("segment --precision bf16 of an int8 classifier: exit %d, stderr %q; want 2 saying it classifies, not naming --precision", code, errs)
	}
}
