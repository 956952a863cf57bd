package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"github.com/residual-nn/residual/data/transform"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestMNISTReal(t *testing.T) {
	train, test, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 60000 || test.Len() != 10000 || train.H != 28 || train.W != 28 || train.C != 1 {
		t.Fatalf("MNIST sizes: %d/%d images of %dx%dx%d", train.Len(), test.Len(), train.H, train.W, train.C)
	}
	// The published first labels.
	for i, want := range []int32{5, 0, 4, 1, 9} {
		if train.Labels[i] != want {
			t.Errorf("train label %d = %d, want %d", i, train.Labels[i], want)
		}
	}
	for i, want := range []int32{7, 2, 1, 0, 4} {
		if test.Labels[i] != want {
			t.Errorf("test label %d = %d, want %d", i, test.Labels[i], want)
		}
	}
	mean, std := train.Stats()
	// The usual MNIST normalisation constants: 0.1307 and 0.3081.
	if d := mean[0] - 0.1307; d*d > 1e-8 || (std[0]-0.3081)*(std[0]-0.3081) > 1e-8 {
		t.Errorf("MNIST mean %.4f std %.4f", mean[0], std[0])
	}
}

func TestFashionMNISTReal(t *testing.T) {
	if _, err := os.Stat(DefaultFashionDir); err != nil {
		t.Skipf("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist; .ci/run does): %v", err)
	}
	train, test, err := FashionMNIST("")
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, 10)
	for _, l := range train.Labels {
		counts[l]++
	}
	if train.Len() != 60000 || test.Len() != 10000 || counts[0] != 6000 || counts[9] != 6000 {
		t.Errorf("Fashion-MNIST: %d/%d images, class counts %v", train.Len(), test.Len(), counts)
	}
}

func idxBytes(dims []uint32, data []byte) []byte {
	b := []byte{0, 0, 8, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, data...)
}

func TestIDXCorrupt(t *testing.T) {
	good := idxBytes([]uint32{2, 2, 2}, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	if dims, v, err := ReadIDX(bytes.NewReader(good)); err != nil || len(dims) != 3 || v[7] != 8 {
		t.Fatalf("good file: %v %v %v", dims, v, err)
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(good)
	w.Close()
	if _, _, err := ReadIDX(&gz); err != nil {
		t.Errorf("gzipped file: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":          {},
		"bad magic":      append([]byte{1, 2}, good[2:]...),
		"float type":     append([]byte{0, 0, 0x0d}, good[3:]...),
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 9),
		"zero dimension": idxBytes([]uint32{0, 2}, nil),
		"huge":           idxBytes([]uint32{1 << 20, 1 << 20, 1 << 20}, nil),
		"bad gzip":       {0x1f, 0x8b, 0, 0},
	} {
		if _, _, err := ReadIDX(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A gzipped header claiming 60,000 images of 100×100 (600 MB of zeros
	// from a few kilobytes) is refused before the values are allocated.
	var bomb bytes.Buffer
	bw := gzip.NewWriter(&bomb)
	bw.Write(idxBytes([]uint32{60000, 100, 100}, make([]byte, 1<<20)))
	bw.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := ReadIDX(&bomb)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "limits.TensorElements") {
		t.Errorf("a gzip bomb: %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
		t.Errorf("the gzip bomb allocated %d MB before its error", d>>20)
	}
	// Labels that do not match the images, or a label outside the classes.
	img := idxBytes([]uint32{2, 1, 1}, []byte{0, 255})
	if _, err := ReadIDXPair(bytes.NewReader(img), bytes.NewReader(idxBytes([]uint32{3}, []byte{0, 1, 2})), digits); err == nil {
		t.Error("3 labels for 2 images accepted")
	}
	if _, err := ReadIDXPair(bytes.NewReader(img), bytes.NewReader(idxBytes([]uint32{2}, []byte{0, 12})), digits); err == nil || !strings.Contains(err.Error(), "label 12") {
		t.Errorf("label 12 of 10 classes: %v", err)
	}
}

// CIFAR-10 records in the exact layout: label byte, then 1024 red, 1024
// green, 1024 blue bytes.
func cifarRecord(label byte, r, g, b byte) []byte {
	rec := []byte{label}
	for _, v := range []byte{r, g, b} {
		rec = append(rec, bytes.Repeat([]byte{v}, 1024)...)
	}
	return rec
}

func TestCIFARLayout(t *testing.T) {
	b := append(cifarRecord(3, 10, 20, 30), cifarRecord(9, 1, 2, 3)...)
	b[1+5] = 99 // red of pixel 5 of image 0
	d, err := ReadCIFAR(b, 1, CIFAR10Classes)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 2 || d.Labels[0] != 3 || d.Labels[1] != 9 || d.H != 32 || d.C != 3 {
		t.Fatalf("decoded %d images, labels %v", d.Len(), d.Labels)
	}
	if px := d.Image(0)[5*3 : 5*3+3]; px[0] != 99 || px[1] != 20 || px[2] != 30 {
		t.Errorf("pixel 5 of image 0 = %v, want [99 20 30]", px)
	}
	// CIFAR-100: coarse then fine label; the fine one is used.
	rec100 := append([]byte{4}, cifarRecord(77, 0, 0, 0)...)
	names := make([]string, 100)
	if d, err := ReadCIFAR(rec100, 2, names); err != nil || d.Labels[0] != 77 {
		t.Errorf("CIFAR-100 record: %v %v", d, err)
	}
	for name, bad := range map[string][]byte{"truncated": b[:len(b)-1], "empty": nil, "label 10": cifarRecord(10, 0, 0, 0)} {
		if _, err := ReadCIFAR(bad, 1, CIFAR10Classes); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The folder reader on files laid out as the binary distribution.
	dir := t.TempDir()
	for i := 1; i <= 5; i++ {
		os.WriteFile(filepath.Join(dir, "data_batch_"+string(rune('0'+i))+".bin"), cifarRecord(byte(i), 0, 0, 0), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "test_batch.bin"), cifarRecord(0, 0, 0, 0)[:100], 0o644)
	if _, _, err := CIFAR(dir, 10); err == nil || !strings.Contains(err.Error(), "test_batch.bin") {
		t.Errorf("truncated test batch: %v", err)
	}
	// An empty batch file is an error naming it, not a batch skipped.
	os.WriteFile(filepath.Join(dir, "test_batch.bin"), cifarRecord(0, 0, 0, 0), 0o644)
	os.WriteFile(filepath.Join(dir, "data_batch_3.bin"), nil, 0o644)
	if _, _, err := CIFAR(dir, 10); err == nil || !strings.Contains(err.Error(), "data_batch_3.bin is empty") {
		t.Errorf("empty batch file: %v", err)
	}
	// A device in place of a batch file is refused, not read without end.
	os.Remove(filepath.Join(dir, "data_batch_3.bin"))
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "data_batch_3.bin")); err == nil {
		if _, _, err := CIFAR(dir, 10); err == nil {
			t.Error("/dev/zero as a batch file: accepted")
		}
	}
}

func FuzzIDX(f *testing.F) {
	f.Add(idxBytes([]uint32{2, 2, 2}, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	f.Add(idxBytes([]uint32{3}, []byte{1, 2, 3}))
	f.Add([]byte{0x1f, 0x8b, 8, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		dims, v, err := ReadIDX(bytes.NewReader(b))
		if err != nil {
			return
		}
		n := 1
		for _, d := range dims {
			n *= d
		}
		if n != len(v) {
			t.Fatalf("dims %v but %d values", dims, len(v))
		}
	})
}

func FuzzCIFAR(f *testing.F) {
	f.Add(cifarRecord(1, 2, 3, 4), 1)
	f.Add(append([]byte{0}, cifarRecord(5, 0, 0, 0)...), 2)
	f.Fuzz(func(t *testing.T, b []byte, lb int) {
		if lb != 1 && lb != 2 {
			return
		}
		names := make([]string, 100)
		d, err := ReadCIFAR(b, lb, names)
		if err == nil && d.Check() != nil {
			t.Fatal("accepted an inconsistent data set")
		}
	})
}

func writePNG(t *testing.T, path string, w, h int, v uint8) {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = v
	}
	img.Set(0, 0, color.Gray{255})
	writeImagePNG(t, path, img)
}

func TestFolder(t *testing.T) {
	dir := t.TempDir()
	writePNG(t, filepath.Join(dir, "train", "cat", "a.png"), 4, 3, 10)
	writePNG(t, filepath.Join(dir, "train", "dog", "b.png"), 5, 3, 20)
	writePNG(t, filepath.Join(dir, "test", "cat", "c.png"), 4, 3, 30)
	writePNG(t, filepath.Join(dir, "test", "dog", "d.png"), 4, 3, 40)
	train, test, err := Open("folder,size=8:"+dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 2 || test.Len() != 2 || train.Classes[1] != "dog" || train.Labels[1] != 1 || train.H != 8 || train.W != 8 || train.C != 1 {
		t.Fatalf("folder: %+v", train)
	}
	os.WriteFile(filepath.Join(dir, "train", "dog", "broken.png"), []byte("not a png"), 0o644)
	if _, _, err := Open("folder:"+dir, 1); err == nil || !strings.Contains(err.Error(), "broken.png") {
		t.Errorf("a corrupt image: %v", err)
	}
	if _, _, err := Open("imagenet", 3); err == nil {
		t.Error("unknown data set accepted")
	}
	if _, _, err := Open("fashion-mnist:"+t.TempDir(), 1); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing Fashion-MNIST files: %v", err)
	}
}

func TestLoaderDeterministic(t *testing.T) {
	train, _, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	small := train.Subset([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	l := &Loader{Data: small, Batch: 4, Shuffle: true, Augment: Augment{Pad: 2, Flip: true}, Mean: []float64{0.1307}, Std: []float64{0.3081}, Seed: 7}
	collect := func(epoch, skip int) [][]float32 {
		var out [][]float32
		for b := range l.Epoch(context.Background(), epoch, skip) {
			out = append(out, append(b.X.Data, float32(b.Y[0])))
		}
		return out
	}
	a, b := collect(1, 0), collect(1, 0)
	if len(a) != 3 || len(a[2]) != 3*28*28+1 {
		t.Fatalf("%d batches, last of %d values", len(a), len(a[2]))
	}
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			t.Fatalf("batch %d differs between two runs with the same seed", i)
		}
	}
	if slices.Equal(a[0], collect(2, 0)[0]) {
		t.Error("epochs 1 and 2 gave the same first batch")
	}
	if resumed := collect(1, 1); !slices.Equal(resumed[0], a[1]) {
		t.Error("skipping a batch (resume) does not give the same next batch")
	}
}

func TestSplitAndResize(t *testing.T) {
	train, _, _ := MNIST()
	tr, val, err := train.Split(0.1, 3)
	if err != nil || tr.Len() != 54000 || val.Len() != 6000 {
		t.Fatalf("split: %v", err)
	}
	if _, _, err := train.Split(1.5, 3); err == nil {
		t.Error("split 1.5 accepted")
	}
	r := transform.Resize([]uint8{0, 100, 200, 255}, 2, 2, 1, 4, 4)
	if r[0] != 0 || r[15] != 255 || len(r) != 16 {
		t.Errorf("resize corners: %v", r)
	}
}

// Caffe's preprocessing: BGR puts the image's channel ch at 2−ch and
// Scale255 normalises 0-255 values with the model-order mean and std, as
// infer's preprocessing does: (p − mean[o])/std[o] for output channel o.
func TestLoaderBGRScale255(t *testing.T) {
	d := &Dataset{H: 1, W: 2, C: 3, Pixels: []uint8{10, 20, 30, 40, 50, 60}, Labels: []int32{0}, Classes: []string{"a"}}
	mean, std := []float64{103.939, 116.779, 123.68}, []float64{1, 2, 4}
	l := &Loader{Data: d, Batch: 1, Mean: mean, Std: std, BGR: true, Scale255: true}
	var got []float32
	for b := range l.Epoch(context.Background(), 0, 0) {
		got = b.X.Data
	}
	for px := 0; px < 2; px++ {
		for o := 0; o < 3; o++ {
			p := float64(d.Pixels[px*3+2-o])
			if want := float32((p - mean[o]) / std[o]); got[px*3+o] != want {
				t.Errorf("pixel %d, model channel %d: %g, want (%g − %g)/%g = %g", px, o, got[px*3+o], p, mean[o], std[o], want)
			}
		}
	}
}
