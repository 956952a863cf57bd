package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/residual-nn/residual/internal/fixture"
	"github.com/residual-nn/residual/train"
)

// TestTrainOnImageFolder trains for one epoch on a folder of PNGs of mixed
// sizes through the CLI with --image-size and --skip-bad-images: the run
// reports the image size asked for and skips a corrupt file (the warning
// goes to the process's standard error; package data's tests read it);
// without --skip-bad-images the file stops the command, named, whether
// its header (at open) or only its pixel data (in the epoch) is broken.
func TestTrainOnImageFolder(t *testing.T) {
	dir := t.TempDir()
	for i := range 24 {
		class := []string{"dark", "light"}[i%2]
		img := image.NewRGBA(image.Rect(0, 0, 20+3*i, 40-i))
		for p := range img.Pix {
			img.Pix[p] = uint8(40 + 150*(i%2) + p%13)
		}
		img.Set(0, 0, color.Black)
		var buf bytes.Buffer
		png.Encode(&buf, img)
		os.MkdirAll(filepath.Join(dir, class), 0o755)
		os.WriteFile(filepath.Join(dir, class, fmt.Sprintf("%02d.png", i)), buf.Bytes(), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "dark", "broken.png"), []byte("not a png"), 0o644)
	run1 := func(extra ...string) (int, string, string) {
		var out, errb bytes.Buffer
		args := append([]string{"train", "--model", "resnet8", "--data", "folder:" + dir, "--image-size", "16", "--epochs", "1", "--batch", "8",
			"--val-split", "0", "--out", filepath.Join(t.TempDir(), "run")}, extra...)
		code := run(context.Background(), args, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, errs := run1(); code == 0 || !strings.Contains(errs, "broken.png") {
		t.Errorf("a corrupt file without --skip-bad-images: exit %d, %s", code, errs)
	}
	// A file whose header is good but whose pixel data is cut stops the
	// run in the epoch, named.
	os.WriteFile(filepath.Join(dir, "light", "cut.png"), fixture.CutPNG(), 0o644)
	os.Rename(filepath.Join(dir, "dark", "broken.png"), filepath.Join(dir, "broken.txt"))
	if code, _, errs := run1(); code == 0 || !strings.Contains(errs, "cut.png") {
		t.Errorf("a truncated file without --skip-bad-images: exit %d, %s", code, errs)
	}
	os.Rename(filepath.Join(dir, "broken.txt"), filepath.Join(dir, "dark", "broken.png"))
	runDir := filepath.Join(t.TempDir(), "run")
	code, out, errs := run1("--skip-bad-images", "--out", runDir)
	if code != 0 || !strings.Contains(out, "21 images of 16x16x3") || !strings.Contains(out, "test accuracy") {
		t.Errorf("exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	// eval counts the file it left out in the epoch (the one refused at
	// open is not among the set's images).
	var evalOut, evalErr bytes.Buffer
	if code := run(context.Background(), []string{"eval", filepath.Join(runDir, "best.safetensors"), "--data", "folder,all,skip-bad:" + dir}, &evalOut, &evalErr); code != 0 ||
		!strings.Contains(evalOut.String(), "(24 of 25 test images; 1 left out as unreadable)") {
		t.Errorf("eval with skip-bad: exit %d\nstdout %s\nstderr %s", code, evalOut.String(), evalErr.String())
	}
	// eval and quantize take --skip-bad-images as train does: without it
	// the file stops them, named, with the way to skip it; with it, they
	// skip it; =false undoes the spec's skip-bad. The way to skip names
	// the flag, then the field (it named the field alone, after the spec).
	best := filepath.Join(runDir, "best.safetensors")
	q := filepath.Join(t.TempDir(), "q.safetensors")
	for _, c := range []struct {
		args []string
		ok   bool
		want string
	}{
		{[]string{"eval", best, "--data", "folder,all:" + dir}, false, "; --skip-bad-images (ImageOptions.SkipBadImages), or a folder,skip-bad:DIR spec, skips unreadable files\n"},
		{[]string{"eval", best, "--data", "folder,all:" + dir, "--skip-bad-images"}, true, "(24 of 25 test images; 1 left out as unreadable)"},
		{[]string{"eval", best, "--data", "folder,all,skip-bad:" + dir, "--skip-bad-images=false"}, false, "--skip-bad-images"},
		{[]string{"eval", best, "--data", "mnist", "--skip-bad-images"}, false, "for folder:DIR"},
		{[]string{"quantize", best, "--calibrate", "folder,all:" + dir, "--out", q}, false, "--skip-bad-images"},
		{[]string{"quantize", best, "--calibrate", "folder,all:" + dir, "--skip-bad-images", "--out", q}, true, "int8"},
	} {
		evalOut.Reset()
		evalErr.Reset()
		code := run(context.Background(), c.args, &evalOut, &evalErr)
		if (code == 0) != c.ok || !strings.Contains(evalOut.String()+evalErr.String(), c.want) {
			t.Errorf("%v: exit %d, want %q\nstdout %s\nstderr %s", c.args[3:], code, c.want, evalOut.String(), evalErr.String())
		}
	}
	var out2, errb bytes.Buffer
	if code := run(context.Background(), []string{"train", "--data", "mnist", "--image-size", "64"}, &out2, &errb); code == 0 || !strings.Contains(errb.String(), "folder:DIR") {
		t.Errorf("--image-size on mnist: exit %d, %s", code, errb.String())
	}
}

// TestFolderAtModelSize: eval and quantize read a folder given without a
// size at the size the checkpoint's model takes (here 16, not the
// folder default of 224), so a model trained at any --image-size can be
// evaluated and calibrated on a new folder of photos with no flag.
func TestFolderAtModelSize(t *testing.T) {
	dir := greyFolder(t)
	runDir := filepath.Join(t.TempDir(), "run")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"train", "--model", "resnet8", "--data", "folder:" + dir, "--image-size", "16", "--epochs", "1", "--batch", "4",
		"--val-split", "0", "--out", runDir}, &out, &errb); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errb.String())
	}
	ck := filepath.Join(runDir, "last.safetensors")
	for _, args := range [][]string{
		{"eval", "--weights", ck, "--data", "folder:" + dir},
		{"quantize", ck, "--calibrate", "folder:" + dir, "--batches", "1", "--out", filepath.Join(t.TempDir(), "q.safetensors")},
	} {
		out.Reset()
		errb.Reset()
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Errorf("%v: exit %d: %s", args, code, errb.String())
		}
	}
}

// greyFolder writes a folder of 12 grey PNGs of mixed sizes in two
// classes, dark and light, and returns it.
func greyFolder(t *testing.T) string {
	dir := t.TempDir()
	for i := range 12 {
		class := []string{"dark", "light"}[i%2]
		img := image.NewGray(image.Rect(0, 0, 18+i, 30-i))
		for p := range img.Pix {
			img.Pix[p] = uint8(30 + 180*(i%2) + p%7)
		}
		var buf bytes.Buffer
		png.Encode(&buf, img)
		os.MkdirAll(filepath.Join(dir, class), 0o755)
		os.WriteFile(filepath.Join(dir, class, fmt.Sprintf("%02d.png", i)), buf.Bytes(), 0o644)
	}
	return dir
}

// --image-size and --skip-bad-images given with --resume and without
// --data apply to the run's data set, not to --data's default (mnist,
// which they were refused for): restating the run's size resumes, another
// size or skipping is refused naming the flag and both specs, and on a
// run that is not on a folder they are refused naming its data set.
func TestResumeFolderOptions(t *testing.T) {
	dir := greyFolder(t)
	runDir := filepath.Join(t.TempDir(), "run")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"train", "--model", "resnet8", "--data", "folder:" + dir, "--image-size", "16", "--epochs", "1", "--batch", "4",
		"--val-split", "0", "--out", runDir}, &out, &errb); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errb.String())
	}
	spec := "folder,size=16:" + dir
	for _, tc := range []struct {
		args []string
		code int
		want []string // in standard error, or standard output for exit 0
	}{
		{[]string{"--image-size", "24"}, 2, []string{"--image-size 24 with --resume", "the run read " + spec, "folder,size=24:" + dir}},
		{[]string{"--skip-bad-images"}, 2, []string{"--skip-bad-images=true with --resume", "the run read " + spec, "folder,size=16,skip-bad:" + dir}},
		{[]string{"--image-size", "16"}, 0, []string{"resuming " + runDir + " with the run's settings, with --epochs --image-size as given", "epoch 2/2"}},
	} {
		out.Reset()
		errb.Reset()
		args := append([]string{"train", "--resume", "--out", runDir, "--epochs", "2"}, tc.args...)
		code := run(context.Background(), args, &out, &errb)
		got := errb.String()
		if tc.code == 0 {
			got = out.String()
		}
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d: %s", args, code, tc.code, errb.String())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q: %q lacks %q", args, got, w)
			}
		}
	}
}

// An explicit --skip-bad-images=false wins over a skip-bad the run
// recorded (on --resume; the folder then reads the run's images or stops
// naming an unreadable one, so the saved position holds) and over one in
// --data's spec, as --image-size wins over its size=: the run records its
// folder without skip-bad. It was ignored in both.
func TestSkipBadImagesFalseWins(t *testing.T) {
	dir := greyFolder(t)
	runDir := filepath.Join(t.TempDir(), "run")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"train", "--model", "resnet8", "--data", "folder:" + dir, "--image-size", "16", "--skip-bad-images", "--epochs", "1", "--batch", "4",
		"--val-split", "0", "--out", runDir}, &out, &errb); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errb.String())
	}
	recordedData := func(dir string) string {
		t.Helper()
		cfg, err := train.ResumeConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Data
	}
	if got, want := recordedData(runDir), "folder,size=16,skip-bad:"+dir; got != want {
		t.Fatalf("the first run recorded %q, want %q", got, want)
	}
	out.Reset()
	if code := run(context.Background(), []string{"train", "--resume", "--out", runDir, "--epochs", "2", "--skip-bad-images=false"}, &out, &errb); code != 0 {
		t.Fatalf("--resume --skip-bad-images=false: exit %d: %s", code, errb.String())
	}
	if want := "with --epochs --skip-bad-images as given"; !strings.Contains(out.String(), want) {
		t.Errorf("the resumed run's output lacks %q:\n%s", want, out.String())
	}
	if got, want := recordedData(runDir), "folder,size=16:"+dir; got != want {
		t.Errorf("--resume --skip-bad-images=false recorded %q, want %q", got, want)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	if code := run(context.Background(), []string{"train", "--model", "resnet8", "--data", "folder,size=16,skip-bad:" + dir, "--skip-bad-images=false", "--epochs", "1", "--batch", "4",
		"--val-split", "0", "--out", fresh}, &out, &errb); code != 0 {
		t.Fatalf("--data folder,size=16,skip-bad: --skip-bad-images=false: exit %d: %s", code, errb.String())
	}
	if got, want := recordedData(fresh), "folder,size=16:"+dir; got != want {
		t.Errorf("--data folder,size=16,skip-bad: --skip-bad-images=false recorded %q, want %q", got, want)
	}
}

// resumeFolderSpec: a size restated that the run had by default (a folder
// read without a size is read at 224) keeps the run's spec.
func TestResumeFolderSpecDefaultSize(t *testing.T) {
	fs := flag.NewFlagSet("residual train", flag.ContinueOnError)
	fs.Int("image-size", 0, "")
	fs.Bool("skip-bad-images", false, "")
	fs.String("data", "mnist", "")
	if err := fs.Parse([]string{"--image-size", "224"}); err != nil {
		t.Fatal(err)
	}
	if spec, err := resumeFolderSpec(fs, "folder:photos"); spec != "folder:photos" || err != nil {
		t.Errorf("--image-size 224 on folder:photos: %q, %v", spec, err)
	}
	if spec, err := resumeFolderSpec(fs, "folder,size=112:photos"); err == nil || !strings.Contains(err.Error(), "folder,size=224:photos") {
		t.Errorf("--image-size 224 on folder,size=112:photos: %q, %v", spec, err)
	}
}

// A folder of one class is refused before training: a one-way classifier
// learns nothing, and once trained with exit 0 and "100%" accuracy.
func TestTrainRefusesOneClass(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "only"), 0o755)
	for i := range 6 {
		var buf bytes.Buffer
		png.Encode(&buf, image.NewGray(image.Rect(0, 0, 16, 16)))
		os.WriteFile(filepath.Join(dir, "only", fmt.Sprintf("%d.png", i)), buf.Bytes(), 0o644)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"train", "--model", "resnet8", "--data", "folder:" + dir, "--epochs", "1", "--val-split", "0",
		"--out", filepath.Join(t.TempDir(), "run")}, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), `has 1 class(es) (["only"]); a classifier needs at least 2`) {
		t.Errorf("one class: exit %d: %s", code, errb.String())
	}
}
