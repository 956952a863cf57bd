package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFlagChecks runs each refused flag value through the CLI in-process:
// the exit status is 2 (1 for an unwritable folder), standard error names
// the flag and its value, and nothing is trained or written (each case
// returns well within a second; the bound below is generous for a shared
// machine).
func TestFlagChecks(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	img := filepath.Join(dir, "in.png")
	ck := filepath.Join(dir, "ck.safetensors")
	for _, p := range []string{file, img, ck} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link.png")
	if err := os.Symlink(img, link); err != nil {
		t.Fatal(err)
	}
	ckLink := filepath.Join(dir, "link.safetensors")
	if err := os.Symlink(ck, ckLink); err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(dir, "runs")
	out := func(name string) string { return filepath.Join(runs, name) }
	// A checkpoint whose name announces no format (so that an output may
	// carry it), a folder where a file is wanted, and a data folder with
	// an image.
	model := filepath.Join(dir, "model")
	if err := os.WriteFile(model, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(dir, "folder")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "folder-overlay.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	images := filepath.Join(dir, "images")
	cat := filepath.Join(images, "cat", "1.png")
	if err := os.MkdirAll(filepath.Dir(cat), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cat, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want []string // in standard error
	}{
		{[]string{"train", "--momentum", "-1"}, 2, []string{"--momentum -1", "[0, 1)"}},
		{[]string{"train", "--distributed", "nccl"}, 2, []string{"--distributed nccl", "none, mpi or auto"}},
		{[]string{"train", "--dist-timeout", "0s"}, 2, []string{"--dist-timeout 0s", "> 0"}},
		{[]string{"train", "--sync-bn", "--distributed", "none", "--out", out("syncbn")}, 2, []string{"--sync-bn needs data-parallel training on two ranks or more"}},
		{[]string{"train", "--grad-compression", "bf16", "--distributed", "none", "--out", out("gc")}, 2, []string{"--grad-compression needs data-parallel training"}},
		{[]string{"train", "--grad-compression", "fp16", "--out", out("gc16")}, 2, []string{"--grad-compression", `"fp16"`, "none, bf16"}},
		{[]string{"train", "--momentum", "5"}, 2, []string{"--momentum 5"}},
		// SGD's flags with another optimizer were ignored, and --nesterov
		// without momentum failed in the optimizer (exit 1); the default
		// momentum is no flag given.
		{[]string{"train", "--optimizer", "adam", "--momentum", "0.5", "--out", filepath.Join(file, "run")}, 2, []string{"--momentum 0.5", "is SGD's; --optimizer adam"}},
		{[]string{"train", "--optimizer", "adamw", "--nesterov", "--out", filepath.Join(file, "run")}, 2, []string{"--nesterov true", "is SGD's; --optimizer adamw"}},
		{[]string{"train", "--nesterov", "--momentum", "0", "--out", filepath.Join(file, "run")}, 2, []string{"--nesterov true", "needs momentum, and --momentum is 0"}},
		{[]string{"train", "--optimizer", "adam", "--out", filepath.Join(file, "run")}, 1, []string{"--out " + filepath.Join(file, "run"), "cannot create"}},
		{[]string{"train", "--momentum", "1"}, 2, []string{"--momentum 1"}},
		{[]string{"train", "--weight-decay", "-1"}, 2, []string{"--weight-decay -1", "≥ 0"}},
		{[]string{"train", "--weight-decay", "NaN"}, 2, []string{"--weight-decay NaN"}},
		{[]string{"train", "--weight-decay", "Inf"}, 2, []string{"--weight-decay +Inf"}},
		{[]string{"train", "--lr", "0"}, 2, []string{"--lr 0", "> 0"}},
		{[]string{"train", "--lr", "-0.1"}, 2, []string{"--lr -0.1"}},
		{[]string{"train", "--lr", "NaN"}, 2, []string{"--lr NaN"}},
		{[]string{"train", "--limit", "-5"}, 2, []string{"--limit -5", "≥ 0"}},
		{[]string{"train", "--val-split", "NaN"}, 2, []string{"--val-split NaN"}},
		{[]string{"train", "--val-split", "1"}, 2, []string{"--val-split 1", "[0, 1)"}},
		{[]string{"train", "--val-split", "-0.1"}, 2, []string{"--val-split -0.1"}},
		{[]string{"train", "--augment", "pad=1000"}, 2, []string{"--augment pad=1000", "[0, 64]"}},
		{[]string{"train", "--augment", "pad=-1,flip"}, 2, []string{"--augment pad=-1,flip", "[0, 64]"}},
		{[]string{"train", "--augment", "pad=x"}, 2, []string{"--augment pad=x"}},
		{[]string{"train", "--augment", "pad=2,flip,pad=3", "--out", out("aug")}, 2, []string{`augmentation "pad" given twice in "pad=2,flip,pad=3"`}},
		{[]string{"train", "--epochs", "0"}, 2, []string{"--epochs 0", "[1, 1000000]"}},
		{[]string{"train", "--epochs", "2000000"}, 2, []string{"--epochs 2000000"}},
		{[]string{"train", "--batch", "0"}, 2, []string{"--batch 0"}},
		{[]string{"train", "--batch", "100000"}, 2, []string{"--batch 100000", "[1, 65536]"}},
		{[]string{"train", "--threads", "-1"}, 2, []string{"--threads -1"}},
		{[]string{"train", "--base", "-1"}, 2, []string{"--base -1"}},
		{[]string{"train", "--warmup-epochs", "-1"}, 2, []string{"--warmup-epochs -1"}},
		{[]string{"train", "--warmup-epochs", "2", "--epochs", "2"}, 2, []string{"--warmup-epochs 2", "less than --epochs 2"}},
		{[]string{"train", "--schedule", "cosine:x"}, 2, []string{"--schedule cosine:x"}},
		{[]string{"train", "--schedule", "linear"}, 2, []string{"--schedule linear"}},
		{[]string{"train", "--head-lr-mult", "-1"}, 2, []string{"--head-lr-mult -1"}},
		{[]string{"train", "--head-lr-mult", "0", "--out", filepath.Join(file, "run")}, 2, []string{"--head-lr-mult 0", "> 0"}}, // it trained as 1
		{[]string{"train", "--label-smoothing", "1"}, 2, []string{"--label-smoothing 1", "[0, 1)"}},
		{[]string{"train", "--ema", "1"}, 2, []string{"--ema 1", "[0, 1)"}},
		{[]string{"train", "--ema", "NaN"}, 2, []string{"--ema NaN"}},
		{[]string{"train", "--clip-grad", "-1"}, 2, []string{"--clip-grad -1"}},
		{[]string{"train", "--patience", "-1"}, 2, []string{"--patience -1"}},
		{[]string{"train", "--freeze", "layer1,,fc"}, 2, []string{"--freeze layer1,,fc"}},
		{[]string{"train", "--init", filepath.Join(dir, "absent.safetensors")}, 2, []string{"--init " + filepath.Join(dir, "absent.safetensors"), "not a checkpoint"}},
		{[]string{"train", "--out", filepath.Join(file, "run")}, 1, []string{"--out " + filepath.Join(file, "run"), "cannot create the folder"}},
		{[]string{"train", "--data", "folder:" + dir, "--out", filepath.Join(dir, "cats", "run")}, 2, []string{"--out " + filepath.Join(dir, "cats", "run"), "inside the image folder"}},
		{[]string{"experiment", "variance", "--blocks", "-1"}, 2, []string{"--blocks -1", "[0, 100]"}},
		{[]string{"experiment", "variance", "--blocks", "101"}, 2, []string{"--blocks 101"}},
		{[]string{"experiment", "order", "--depth", "21"}, 2, []string{"--depth 21", "6n+2"}},
		{[]string{"experiment", "degradation", "--warmup", "1"}, 2, []string{"--warmup 1", "[0, 1)"}},
		{[]string{"experiment", "order", "--data", "nosuch"}, 2, []string{"--data nosuch"}},
		{[]string{"experiment", "shatter", "--seeds", "-1"}, 2, []string{"--seeds -1"}},
		// Too few seeds failed after the work (variance: at its figure) or
		// with the experiment's config printed as a Go struct (shatter).
		{[]string{"experiment", "--quick", "--seeds", "1", "--out", out("ev1"), "variance"}, 2, []string{"--seeds 1", "variance needs at least 2 seeds"}},
		{[]string{"experiment", "--quick", "--seeds", "5", "--out", out("exp1"), "shatter"}, 2, []string{"--seeds 5", "shatter needs at least 16 initialisations"}},
		{[]string{"experiment", "order", "--warmup", "2"}, 2, []string{"--warmup 2"}},
		{[]string{"experiment", "order", "--warmup", "-1"}, 2, []string{"--warmup -1"}}, // once the "not given" marker
		{[]string{"train", "--resume", "--overwrite", "--out", filepath.Join(dir, "r")}, 2, []string{"--resume continues", "--overwrite replaces", "give one"}},
		{[]string{"train", "--resume", "--init", ck, "--out", filepath.Join(file, "run")}, 2, []string{"--init " + ck, "--resume continues the run in --out", "give one"}}, // it was ignored
		{[]string{"experiment", "ensemble", "--quick", "--plain-weights", filepath.Join(dir, "absent.safetensors"), "--out", filepath.Join(dir, "ens")}, 1, []string{"--plain-weights " + filepath.Join(dir, "absent.safetensors")}},
		{[]string{"import", "keras-tfjs", dir, "--classes", "5", "--out", out("k.safetensors")}, 2, []string{"--classes 5", "keras-tfjs"}},
		{[]string{"import", "keras-tfjs", dir, "--model", "resnet50", "--out", out("k.safetensors")}, 2, []string{"--model resnet50", "keras-tfjs"}},
		{[]string{"import", "onnx", filepath.Join(dir, "m.onnx"), "--classes", "3", "--out", out("q.safetensors")}, 2, []string{"--classes 3", "only with --model"}},
		{[]string{"export", "torch", "--weights", ck, "--input", "32x32", "--out", out("t.safetensors")}, 2, []string{"--input 32x32", "export onnx only"}},
		{[]string{"export", "torch", "--weights", ck, "--model", "resnet20", "--out", out("t.safetensors")}, 2, []string{"--model resnet20", "export onnx only"}},
		{[]string{"experiment", "order", "--limit", "-1"}, 2, []string{"--limit -1"}},
		{[]string{"segment", "--weights", ck, img, "--out", out("m.png"), "--tile", "100000"}, 2, []string{"--tile 100000", "65536"}},
		{[]string{"segment", "--weights", ck, img, "--out", out("m.png"), "--tile", "20000"}, 2, []string{"--tile 20000", "decompression bomb"}},
		{[]string{"segment", "--weights", ck, img, "--out", out("m.png"), "--tile", "-1"}, 2, []string{"--tile -1"}},
		// What is missing is named, not left to the usage line.
		{[]string{"segment", ck, img}, 2, []string{"no --out given for the mask"}},
		{[]string{"segment", ck, "--out", out("m.png")}, 2, []string{"no image given"}},
		{[]string{"segment", ck, img, img, "--out", out("m.png")}, 2, []string{"one image at a time (2 given)"}},
		{[]string{"segment", "--out", out("m.png")}, 2, []string{"no checkpoint given"}},
		{[]string{"export"}, 2, []string{"no format given (torch or onnx)"}},
		{[]string{"export", "tf", ck, "--out", out("x.pb")}, 2, []string{`unknown format "tf" (want torch or onnx)`}},
		{[]string{"export", "torch", "--out", out("x.safetensors")}, 2, []string{"no checkpoint given"}},
		{[]string{"export", "onnx", "--out", out("x.onnx")}, 2, []string{"no checkpoint given (or --model NAME, for random weights)"}},
		{[]string{"export", "onnx", ck}, 2, []string{"no --out given"}},
		{[]string{"export", "onnx", "--model", "resnet8"}, 2, []string{"no --out given"}},
		{[]string{"export", "onnx", ck, img, "--out", out("x.onnx")}, 2, []string{`unexpected argument "` + img + `" (export reads one checkpoint)`}},
		{[]string{"import"}, 2, []string{"no format given (torch, keras-tfjs or onnx)"}},
		{[]string{"import", "pytorch", file, "--model", "resnet8", "--out", out("i.safetensors")}, 2, []string{`unknown format "pytorch" (want torch, keras-tfjs or onnx)`}},
		{[]string{"import", "torch", "--model", "resnet8", "--out", out("i.safetensors")}, 2, []string{"no file given to import"}},
		{[]string{"import", "keras-tfjs", dir}, 2, []string{"no --out given for the checkpoint"}},
		{[]string{"import", "onnx", file}, 2, []string{"no --out given for the checkpoint"}},
		{[]string{"import", "torch", file, "--out", out("i.safetensors")}, 2, []string{"import torch needs --model NAME", "or --like CKPT"}},
		{[]string{"import", "torch", file, file, "--model", "resnet8", "--out", out("i.safetensors")}, 2, []string{`unexpected argument "` + file + `"`}},
		{[]string{"serve", "--addr", "127.0.0.1:0"}, 2, []string{"no model to serve (give --model NAME=CKPT or --repository DIR)"}},
		{[]string{"quantize", "--out", out("q.safetensors")}, 2, []string{"no checkpoint given"}},
		{[]string{"quantize", ck}, 2, []string{"no --out given for the int8 checkpoint"}},
		{[]string{"quantize", ck, file, "--out", out("q.safetensors")}, 2, []string{"one checkpoint at a time (2 given)"}},
		{[]string{"quantize", "--weights", ck, file, "--out", out("q.safetensors")}, 2, []string{`unexpected argument "` + file + `" (the checkpoint is --weights ` + ck + ")"}},
		{[]string{"segment", "--weights", ck, img, "--out", img}, 2, []string{"--out " + img, "overwrite"}},
		{[]string{"segment", "--weights", ck, img, "--out", link}, 2, []string{"--out " + link, "is the input " + img}},
		{[]string{"segment", "--weights", ck, img, "--out", out("m.png"), "--overlay", img}, 2, []string{"--overlay " + img}},
		{[]string{"segment", "--weights", ck, img, "--out", out("m.png"), "--overlay", out("m.png")}, 2, []string{"--overlay " + out("m.png")}},
		{[]string{"segment", "--weights", ck, img, "--out", out("m.jpg")}, 2, []string{"--out " + out("m.jpg"), "JPEG"}},
		{[]string{"export", "torch", "--weights", ck, "--out", out("x.pth")}, 2, []string{"--out " + out("x.pth"), "torch.save pickle", "safetensors", out("x.safetensors")}},
		{[]string{"export", "torch", ck, "--out", out("x.pt")}, 2, []string{"--out " + out("x.pt")}},
		{[]string{"export", "onnx", ck, "--out", out("x.safetensors")}, 2, []string{"--out " + out("x.safetensors"), "x.onnx"}},
		{[]string{"export", "torch", ck, "--weights", file, "--out", out("x.safetensors")}, 2, []string{"--weights " + file, "differ"}},
		{[]string{"export", "torch", "--weights", ck, "--out", ck}, 2, []string{"--out " + ck, "overwrite"}},
		{[]string{"export", "onnx", "--model", "resnet8", "--weights", ck, "--out", out("x.onnx")}, 2, []string{"--model resnet8", "not both"}},
		{[]string{"import", "torch", ck, "--model", "resnet8", "--out", ck}, 2, []string{"--out " + ck, "overwrite"}},
		{[]string{"import", "torch", ck, "--model", "resnet8", "--out", out("y.pth")}, 2, []string{"--out " + out("y.pth"), "y.safetensors"}},
		{[]string{"import", "torch", ck, "--model", "resnet8", "--classes", "-1", "--out", out("y.safetensors")}, 2, []string{"--classes -1"}},
		{[]string{"quantize", ck, "--calibrate", "mnist", "--out", ck}, 2, []string{"--out " + ck, "overwrite"}},
		{[]string{"quantize", ck, "--calibrate", "mnist", "--method", "minmax", "--percentile", "99.9", "--out", out("q.safetensors")}, 2, []string{"--percentile 99.9", "--method percentile, not --method minmax"}}, // it was ignored
		{[]string{"quantize", "--weights", ck, "--calibrate", "mnist", "--out", ckLink}, 2, []string{"--out " + ckLink, "overwrite"}},
		{[]string{"quantize", ck, "--calibrate", "mnist", "--out", filepath.Dir(ck)}, 2, []string{"--out " + filepath.Dir(ck), "is a folder"}},
		{[]string{"quantize", ck, "--calibrate-images", "", "--out", out("q.safetensors")}, 2, []string{"--calibrate-images", "no image files"}},
		{[]string{"quantize", ck, "--calibrate-images", img, "--calibrate", "mnist", "--out", out("q.safetensors")}, 2, []string{"--calibrate-images " + img, "give one"}},
		{[]string{"export", "onnx", ck, "--out", filepath.Dir(ck)}, 2, []string{"--out " + filepath.Dir(ck), "is a folder"}},
		{[]string{"serve", "--model", "m=" + ck, "--max-batch", "0"}, 2, []string{"--max-batch 0"}},
		{[]string{"serve", "--model", "m=" + ck, "--max-batch", "-1"}, 2, []string{"--max-batch -1"}},
		{[]string{"serve", "--model", "m=" + ck, "--max-queue", "0"}, 2, []string{"--max-queue 0"}},
		{[]string{"serve", "--model", "m=" + ck, "--instances", "0"}, 2, []string{"--instances 0"}},
		{[]string{"serve", "--model", "m=" + ck, "--threads", "-1"}, 2, []string{"--threads -1"}},
		{[]string{"serve", "--model", "m=" + ck, "--model-threads", "-1"}, 2, []string{"--model-threads -1"}},
		{[]string{"serve", "--model", "m=" + ck, "--max-body", "0"}, 2, []string{"--max-body 0"}},
		{[]string{"serve", "--model", "m=" + ck, "--max-pixels", "0"}, 2, []string{"--max-pixels 0"}},
		{[]string{"serve", "--model", "m=" + ck, "--timeout", "0s"}, 2, []string{"--timeout 0s", "> 0"}},
		{[]string{"serve", "--model", "m=" + ck, "--max-delay", "-1ms"}, 2, []string{"--max-delay -1ms", "≥ 0"}},
		{[]string{"serve", "--model", "m=" + ck, "--model", "m=" + file}, 2, []string{"--model m=" + file, `names "m" again`}},
		{[]string{"serve", "--model", "a/b=" + ck}, 2, []string{"--model a/b=" + ck, "may only hold letters"}},
		{[]string{"import", "torch", file, "--model", "resnet18", "--input", "0x0", "--out", out("i.safetensors")}, 2, []string{"residual import: bad usage: --input 0x0: want HxW"}},
		{[]string{"serve", "--model", "m=" + ck, "--drain", "0s"}, 2, []string{"--drain 0s", "> 0"}},
		{[]string{"serve", "--model", "m=" + ck, "--poll", "1s", "--addr", "127.0.0.1:0", "--grpc-addr", ""}, 2, []string{"--poll 1s", "no repository is given"}}, // it was ignored
		{[]string{"serve", "--model", "folder=" + ck, "--repository", dir}, 2, []string{"--model folder=" + ck, "the repository also holds", folder}},
		{[]string{"serve", "--model", ck}, 2, []string{"--model " + ck, "NAME=CKPT"}},
		{[]string{"predict", "--weights", ck, "--top", "0", img}, 2, []string{"--top 0"}},
		{[]string{"predict", img}, 2, []string{"no checkpoint", img + " is an image"}},
		{[]string{"predict", ck}, 2, []string{"no image given"}},
		{[]string{"predict", folder, img}, 2, []string{folder + " is a folder"}},
		{[]string{"eval", folder}, 2, []string{folder + " is a folder"}},
		{[]string{"eval", ck, img}, 2, []string{"unexpected argument", img}},
		{[]string{"segment", folder, img, "--out", out("m.png")}, 2, []string{folder + " is a folder"}},
		{[]string{"predict", "--weights", ck}, 2, []string{"no image given"}},
		{[]string{"eval", "--weights", ck, "--confusion", out("c.jpg")}, 2, []string{"--confusion " + out("c.jpg"), "has the extension of JPEG, but eval writes PNG; name it " + out("c.png")}},
		{[]string{"quantize", ck, "--calibrate", "mnist", "--out", out("q.onnx")}, 2, []string{"--out " + out("q.onnx"), "has the extension of an ONNX model, but quantize writes safetensors"}},
		{[]string{"eval", "--weights", model, "--confusion", model}, 2, []string{"--confusion " + model, "is the checkpoint", "overwrite"}},
		{[]string{"eval", "--weights", ck, "--data", "folder:" + images, "--confusion", cat}, 2, []string{"--confusion " + cat, "inside the data folder " + images}},
		{[]string{"eval", "--weights", ck, "--data", "folder,size=28:" + images, "--confusion", filepath.Join(images, "c.png")}, 2, []string{"--confusion " + filepath.Join(images, "c.png"), "inside the data folder"}},
		// A CIFAR folder is not read as images: a PNG there is harmless (the
		// flag check passes; the dummy checkpoint then fails to load).
		{[]string{"eval", "--weights", ck, "--data", "cifar10:" + dir, "--confusion", filepath.Join(dir, "c.png")}, 1, []string{ck}},
		{[]string{"eval", "--weights", ck, "--confusion", folder}, 2, []string{"--confusion " + folder, "is a folder"}},
		{[]string{"eval", "--weights", ck, "--confusion", filepath.Join(file, "c.png")}, 1, []string{"--confusion " + filepath.Join(file, "c.png"), "cannot create the folder " + file}},
		{[]string{"eval", "--weights", folder}, 2, []string{"--weights " + folder, "is a folder"}},
		{[]string{"eval", "--weights", ck, "--data", "bogus"}, 2, []string{"--data bogus", "unknown data set"}},
		{[]string{"predict", "--weights", folder, img}, 2, []string{"--weights " + folder, "is a folder"}},
		{[]string{"segment", "--weights", folder, img, "--out", out("m.png")}, 2, []string{"--weights " + folder, "is a folder"}},
		{[]string{"segment", "--weights", ck, img, "--out", folder}, 2, []string{"--out " + folder, "is a folder"}},
		{[]string{"segment", "--weights", ck, img, "--out", out("m.png"), "--overlay", folder}, 2, []string{"--overlay " + folder, "is a folder"}},
		{[]string{"segment", "--weights", ck, img, "--out", filepath.Join(dir, "folder.png")}, 2, []string{"--overlay " + filepath.Join(dir, "folder-overlay.png"), "is a folder", "the default overlay"}},
		{[]string{"segment", "--weights", ck, img, "--out", filepath.Join(file, "m.png")}, 1, []string{"--out " + filepath.Join(file, "m.png"), "cannot create the folder"}},
		{[]string{"segment", "--weights", ck, img, "--out", out("m.png"), "--overlay", filepath.Join(file, "o.png")}, 1, []string{"--overlay " + filepath.Join(file, "o.png"), "cannot create the folder"}},
		{[]string{"export", "onnx", ck, "--out", out("x.onnx"), "--input", "28x28x3"}, 2, []string{"--input 28x28x3", "HxW"}},
		{[]string{"export", "onnx", ck, "--out", out("x.onnx"), "--input", "32x32junk"}, 2, []string{"--input 32x32junk", "HxW"}},
		{[]string{"export", "torch", folder, "--out", out("x.safetensors")}, 2, []string{folder + " is a folder"}},
		{[]string{"summary", "resnet8", "--input", "32x32junk"}, 2, []string{"--input 32x32junk", "HxW"}},
		{[]string{"summary", "resnet8", "--input", "x32"}, 2, []string{"--input x32"}},
		// A size a U-Net's levels cannot halve (it failed in the network,
		// exit 1).
		{[]string{"summary", "unet", "--input", "100x100"}, 2, []string{"--input 100x100", "unet cannot take it", "nearest sides that fit: 188"}},
		{[]string{"summary", "unet", "--input", "188x100"}, 2, []string{"--input 188x100", "input 100"}},
		{[]string{"export", "onnx", "--model", "unet", "--input", "3x3", "--out", out("u.onnx")}, 2, []string{"--input 3x3", "unet cannot take it"}},
		{[]string{"summary", "resnet999999999999999992"}, 2, []string{"resnet999999999999999992 is too deep", "limits.Layers"}},
		{[]string{"summary", "--base", "8", "resnet20"}, 2, []string{"--base is for U-Nets"}},
		{[]string{"train", "--data", "bogus"}, 2, []string{"--data bogus", "unknown data set"}},
		{[]string{"train", "--data", ""}, 2, []string{`--data ""`, "names no data set"}},
		{[]string{"train", "--data", "folder:"}, 2, []string{"--data folder:", "names no folder", "want folder:DIR"}},
		{[]string{"train", "--data", "folder,size=64:"}, 2, []string{"--data folder,size=64:", "want folder,size=64:DIR"}},
		{[]string{"train", "--data", "cifar10"}, 2, []string{"--data cifar10", "want cifar10:DIR"}},
		{[]string{"train", "--data", "idx"}, 2, []string{"--data idx", "names no folder: want idx:DIR"}},
		// Refused once the network and the data are known (train.ErrConfig).
		{[]string{"train", "--freeze", "nonsense", "--limit", "32", "--out", out("fz")}, 2, []string{"--freeze (Config.Freeze) nonsense", `no parameter or buffer is named "nonsense"`}},
		{[]string{"train", "--task", "segment", "--limit", "32", "--out", out("tk")}, 2, []string{"--task (Config.Task) segment", "segmentation needs a U-Net"}},
		// Library errors name the flag, then the Go field (one said
		// "Dice loss … (--task segment, Config.Task models.Segment)").
		{[]string{"train", "--loss", "dice", "--limit", "32", "--out", out("dl")}, 2, []string{"train: --loss (Config.Loss) dice is for segmentation: --task segment (Config.Task models.Segment)"}},
		{[]string{"train", "--class-weights", "--limit", "32", "--out", out("cw")}, 2, []string{"train: --class-weights (Config.ClassWeights) is for segmentation: --task segment"}},
		{[]string{"train", "--schedule", "bogus", "--limit", "32", "--out", out("sb")}, 2, []string{"--schedule bogus", "; or cosine, he, constant over the run's epochs, with --warmup-epochs (Schedule.WarmupEpochs) for a warm-up\n"}},
		{[]string{"eval", "--weights", ck, "--data", "segfolder:"}, 2, []string{"--data segfolder:", "want segfolder:DIR"}},
		{[]string{"quantize", ck, "--calibrate", "cifar100:", "--out", out("q.safetensors")}, 2, []string{"--calibrate cifar100:", "want cifar100:DIR"}},
		{[]string{"train", "--data", "folder,all:" + dir}, 2, []string{"--data folder,all:" + dir, "is for eval and quantize --calibrate"}},
		{[]string{"train", "--model", "resnet999999999999999992", "--out", out("big")}, 2, []string{"--model: models: resnet999999999999999992 is too deep", "limits.Layers"}},
		// Past an int on every platform (resnet999999999999999992 only on
		// 32-bit ones): as deep as that, not unknown.
		{[]string{"train", "--model", "plain99999999999999999992", "--out", out("big")}, 2, []string{"--model: models: plain99999999999999999992 is too deep", "limits.Layers"}},
		{[]string{"quantize", ck, "--calibrate-images", img + ",", "--out", out("q.safetensors")}, 2, []string{"--calibrate-images " + img + ",", "empty item"}},
		{[]string{"quantize", ck, "--calibrate-images", img + ",," + img, "--out", out("q.safetensors")}, 2, []string{"empty item"}},
		{[]string{"quantize", ck, "--calibrate-images", model, "--out", model}, 2, []string{"--out " + model, "calibration image"}},
		{[]string{"quantize", ck, "--calibrate", "bogus:" + dir, "--out", out("q.safetensors")}, 2, []string{"--calibrate bogus:" + dir, "unknown data set"}},
		{[]string{"quantize", folder, "--calibrate", "mnist", "--out", out("q.safetensors")}, 2, []string{folder + " is a folder"}},
		{[]string{"summary", "resnet8", "--classes", "-1"}, 2, []string{"--classes -1"}},
		{[]string{"summary", "resnet8", "--input", "100000x10"}, 2, []string{"--input 100000x10", "65536"}},
		{[]string{"demo", "--width", "100000"}, 2, []string{"--width 100000"}},
		{[]string{"bench", "--runs", "0"}, 2, []string{"--runs 0"}},
		{[]string{"bench", "--batch", "-1"}, 2, []string{"--batch -1"}},
	} {
		var stdout, stderr bytes.Buffer
		start := time.Now()
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d; stderr %q", tc.args, code, tc.code, stderr.String())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%q: stderr %q lacks %q", tc.args, stderr.String(), w)
			}
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("%q: took %v; a refused flag must be refused before any work", tc.args, el)
		}
	}
	if _, err := os.Stat(runs); !os.IsNotExist(err) {
		t.Errorf("a refused command wrote into %s (%v)", runs, err)
	}
	for _, p := range []string{img, ck, model, cat} {
		if b, err := os.ReadFile(p); err != nil || string(b) != "x" {
			t.Errorf("%s changed: %q, %v", p, b, err)
		}
	}
}

// TestThreadsClamped: --threads beyond the CPUs is clamped with a note (the
// command then stops at the unwritable --out, before it could train).
func TestThreadsClamped(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	before := runtime.GOMAXPROCS(0)
	code := run(context.Background(), []string{"train", "--threads", "100000", "--out", filepath.Join(file, "run")}, &stdout, &stderr)
	want := "--threads 100000: this machine has " + counted(runtime.NumCPU(), "CPU") + "; using " + strconv.Itoa(runtime.NumCPU())
	if code != 1 || !strings.Contains(stderr.String(), want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr.String(), want)
	}
	if runtime.GOMAXPROCS(0) != before {
		t.Errorf("GOMAXPROCS changed to %d by a refused command", runtime.GOMAXPROCS(0))
	}
}

// TestCheckWritableDir: a folder that can be written passes and is left as
// it was (folders made for the test are removed again); one under a file
// fails naming the flag.
func TestCheckWritableDir(t *testing.T) {
	dir := t.TempDir()
	if err := checkWritableDir("out", filepath.Join(dir, "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	existing := filepath.Join(dir, "run")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkWritableDir("out", existing); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(existing); err != nil || len(entries) != 0 {
		t.Errorf("existing folder: %v, %v", entries, err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkWritableDir("out", filepath.Join(file, "run")); err == nil || !strings.Contains(err.Error(), "--out "+filepath.Join(file, "run")) {
		t.Errorf("under a file: %v", err)
	}
}

// A process a launcher started as one of several ranks, told
// --distributed none, trains alone: a warning says so (two processes
// trained on all the data side by side without a word). The command then
// stops at the data set it cannot open.
func TestDistributedNoneUnderLauncher(t *testing.T) {
	t.Setenv("SLURM_PROCID", "1")
	t.Setenv("SLURM_STEP_NUM_TASKS", "2")
	code, _, errs := runCLI("train", "--distributed", "none", "--data", "idx:"+filepath.Join(t.TempDir(), "none"), "--out", filepath.Join(t.TempDir(), "run"))
	if code != 1 || !strings.Contains(errs, "warning: Slurm srun started this process as rank 1 of 2, but --distributed none: every process trains alone") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

// A kernel switch set to a value that means nothing is warned about on
// stderr before the command runs (it was ignored without a word).
func TestKernelSwitchWarning(t *testing.T) {
	t.Setenv("RESIDUAL_KERNELS", "AVX2")
	code, _, errs := runCLI("version")
	if code != 0 || !strings.Contains(errs, `residual: warning: RESIDUAL_KERNELS="AVX2" means nothing to the kernels`) {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}
