package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/residual-nn/residual/data/transform"
	"github.com/residual-nn/residual/tensor"
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
	mean, std, err := train.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := (&Dataset{H: 2, W: 2, Classes: []string{"a"}}).Stats(context.Background()); err == nil || !strings.Contains(err.Error(), "2x2x0") {
		t.Errorf("Stats of a set of 0 channels: %v; want the size named", err)
	}
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
	// A header claiming 2^28 values (limits.TensorElements: 256 MB) over
	// 1 MB of data, gzipped (1 kB) or not, is refused as truncated having
	// allocated about what arrived: the values are read as they arrive,
	// not into a buffer of the claimed size.
	lying := idxBytes([]uint32{1 << 16, 1 << 6, 1 << 6}, make([]byte, 1<<20))
	var lz bytes.Buffer
	lw := gzip.NewWriter(&lz)
	lw.Write(lying)
	lw.Close()
	for name, b := range map[string][]byte{"gzipped": lz.Bytes(), "plain": lying} {
		runtime.ReadMemStats(&before)
		_, _, err := ReadIDX(bytes.NewReader(b))
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "[65536 64 64] values promised, data truncated after 1048576") {
			t.Errorf("%s header claiming 2^28 values over 1 MB: %v", name, err)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
			t.Errorf("%s header claiming 2^28 values over 1 MB: %d MB allocated before its error", name, d>>20)
		}
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

// FuzzIDX: an IDX file that reads has as many values as its dimensions
// make, and written again (uncompressed) it is the same bytes, or for a
// gzipped one reads back as the same dimensions and values.
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
		u := make([]uint32, len(dims))
		for i, d := range dims {
			u[i] = uint32(d)
		}
		again := idxBytes(u, v)
		if b[0] != 0x1f && !bytes.Equal(again, b) {
			t.Fatalf("read %v and %d values from %x, which write as %x", dims, len(v), b, again)
		}
		dims2, v2, err := ReadIDX(bytes.NewReader(again))
		if err != nil || !slices.Equal(dims2, dims) || !bytes.Equal(v2, v) {
			t.Fatalf("%v and %d values written read back as %v and %d values: %v", dims, len(v), dims2, len(v2), err)
		}
	})
}

// FuzzCIFAR: a CIFAR batch that reads is consistent, holds one sample a
// record, each with the record's label and its colour planes interleaved.
func FuzzCIFAR(f *testing.F) {
	f.Add(cifarRecord(1, 2, 3, 4), 1)
	f.Add(append([]byte{0}, cifarRecord(5, 0, 0, 0)...), 2)
	f.Fuzz(func(t *testing.T, b []byte, lb int) {
		if lb != 1 && lb != 2 {
			return
		}
		names := make([]string, 100)
		d, err := ReadCIFAR(b, lb, names)
		if err != nil {
			return
		}
		if d.Check() != nil {
			t.Fatal("accepted an inconsistent data set")
		}
		rec := lb + 3072
		if d.Len() != len(b)/rec {
			t.Fatalf("%d samples from %d records", d.Len(), len(b)/rec)
		}
		for i := range d.Len() {
			r := b[i*rec+lb:]
			p := d.Pixels[i*3072:]
			if d.Labels[i] != int32(b[i*rec+lb-1]) || p[0] != r[0] || p[1] != r[1024] || p[3071] != r[3071] {
				t.Fatalf("sample %d: label %d, pixels %v…%v; record's label %d, planes begin %v %v, end %v",
					i, d.Labels[i], p[:2], p[3071], b[i*rec+lb-1], r[0], r[1024], r[3071])
			}
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
	train, test, err := Open(context.Background(), "folder,size=8:"+dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 2 || test.Len() != 2 || train.Classes[1] != "dog" || train.Labels[1] != 1 || train.H != 8 || train.W != 8 || train.C != 1 {
		t.Fatalf("folder: %+v", train)
	}
	os.WriteFile(filepath.Join(dir, "train", "dog", "broken.png"), []byte("not a png"), 0o644)
	if _, _, err := Open(context.Background(), "folder:"+dir, 1); err == nil || !strings.Contains(err.Error(), "broken.png") {
		t.Errorf("a corrupt image: %v", err)
	}
	if _, _, err := Open(context.Background(), "imagenet", 3); err == nil || !strings.Contains(err.Error(), "folder[,size=N][,skip-bad][,all]:DIR") {
		t.Errorf("unknown data set: %v; want the kinds with their options", err)
	}
	// The embedded MNIST takes no folder (one was ignored: the user's own
	// MNIST files went untrained), and idx needs one (it read the working
	// directory).
	for spec, want := range map[string]string{"mnist:" + dir: "takes no folder", "idx": "idx needs a folder", "idx:": "idx needs a folder"} {
		if _, _, err := Open(context.Background(), spec, 1); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want an error saying it %s", spec, err, want)
		}
	}
	// Options after the folder's path (a user's guess) are named as such.
	if _, _, err := Open(context.Background(), "folder:"+dir+",size=32", 1); err == nil || !strings.Contains(err.Error(), "options go before the colon: folder,size=32:"+dir) {
		t.Errorf("options after the path: %v", err)
	}
	if _, _, err := Open(context.Background(), "fashion-mnist:"+t.TempDir(), 1); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing Fashion-MNIST files: %v", err)
	}
}

// A consumer that cancels and stops reading leaves no goroutine of the
// loader behind: the goroutine waiting to hand over its next batch returns.
func TestLoaderGoroutineEndsWhenCancelled(t *testing.T) {
	train, _, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, 64)
	for i := range idx {
		idx[i] = i
	}
	l := &Loader{Data: train.Subset(idx), Batch: 1}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	if _, ok := <-l.Epoch(ctx, 0, 0); !ok {
		t.Fatalf("no batch: %v", l.Err())
	}
	cancel()
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before the epoch, %d 5 s after its consumer cancelled:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
	}
}

func TestLoaderDeterministic(t *testing.T) {
	train, _, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	small := train.Subset([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	l := &Loader{Data: small, Batch: 4, Shuffle: true, Augment: Augment{Pad: 2, Flip: true}, Seed: 7, Normalisation: transform.Normalisation{Mean: []float64{0.1307}, Std: []float64{0.3081}}}
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
	for _, frac := range []float64{1.5, 0, 1, -0.1, math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, _, err := train.Split(frac, 3); err == nil || !strings.Contains(err.Error(), "fraction") {
			t.Errorf("split %g: %v; want an error naming the fraction", frac, err)
		}
	}
	r, err := transform.Resize([]uint8{0, 100, 200, 255}, 2, 2, 1, 4, 4)
	if err != nil || r[0] != 0 || r[15] != 255 || len(r) != 16 {
		t.Errorf("resize corners: %v, %v", r, err)
	}
	// Pixels that are not h×w×c, and an empty output, are errors (an
	// index out of range, a panic, before).
	if _, err := transform.Resize([]uint8{0, 100, 200}, 2, 2, 1, 4, 4); err == nil || !strings.Contains(err.Error(), "resize of 3 values as 2×2×1 pixels") {
		t.Errorf("resize of 3 values as 2×2: %v", err)
	}
	if _, err := transform.Resize([]uint8{0, 100, 200, 255}, 2, 2, 1, 0, 4); err == nil {
		t.Error("resize to 4×0: no error")
	}
	if _, err := transform.RandomResizedCrop(tensor.NewRNG(1), []uint8{0, 100, 200}, 2, 2, 1, 4, 4); err == nil || !strings.Contains(err.Error(), "3 values as 2×2×1 pixels") {
		t.Errorf("random resized crop of 3 values as 2×2: %v", err)
	}
}

// Caffe's preprocessing: BGR puts the image's channel ch at 2−ch and
// Scale255 normalises 0-255 values with the model-order mean and std, as
// infer's preprocessing does: (p − mean[o])/std[o] for output channel o.
func TestLoaderBGRScale255(t *testing.T) {
	d := &Dataset{H: 1, W: 2, C: 3, Pixels: []uint8{10, 20, 30, 40, 50, 60}, Labels: []int32{0}, Classes: []string{"a"}}
	mean, std := []float64{103.939, 116.779, 123.68}, []float64{1, 2, 4}
	l := &Loader{Data: d, Batch: 1, Normalisation: transform.Normalisation{Mean: mean, Std: std, BGR: true, Scale255: true}}
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

// drain runs one epoch of a loader from batch skip on and returns the
// number of batches and the loader's error.
func drain(l *Loader, skip int) (int, error) {
	n := 0
	for range l.Epoch(context.Background(), 0, skip) {
		n++
	}
	return n, l.Err()
}

// TestLoaderRefusesBadArguments: what the producer goroutine would have
// panicked on (a panic there ends the process) is refused when the epoch
// starts: a closed channel, and Err naming the problem.
func TestLoaderRefusesBadArguments(t *testing.T) {
	set := func() *Dataset {
		return &Dataset{H: 2, W: 2, C: 1, Pixels: make([]uint8, 8), Labels: []int32{0, 1}, Classes: []string{"a", "b"}}
	}
	short := set()
	short.Pixels = make([]uint8, 5) // no spare capacity to read beyond
	rgb := set()
	rgb.C, rgb.Pixels = 3, make([]uint8, 24)
	label := set()
	label.Labels[1] = 2
	for _, c := range []struct {
		name string
		l    *Loader
		skip int
		want string
	}{
		{"batch 0", &Loader{Data: set()}, 0, "batch size 0"},
		{"negative batch", &Loader{Data: set(), Batch: -3}, 0, "batch size -3"},
		{"negative skip", &Loader{Data: set(), Batch: 1}, -1, "skip -1"},
		{"no data", &Loader{Batch: 1}, 0, "without a data set"},
		{"short pixels", &Loader{Data: short, Batch: 1}, 0, "5 pixel values"},
		{"label outside the classes", &Loader{Data: label, Batch: 1}, 0, "label 2"},
		{"one mean for 3 channels", &Loader{Data: rgb, Batch: 1, Normalisation: transform.Normalisation{Mean: []float64{0.5}, Std: []float64{1, 1, 1}}}, 0, "Mean takes one value per channel (3), not 1"},
		{"one std for 3 channels", &Loader{Data: rgb, Batch: 1, Normalisation: transform.Normalisation{Std: []float64{0.5}}}, 0, "Std takes one value per channel (3), not 1"},
		{"huge pad", &Loader{Data: set(), Batch: 1, Augment: Augment{Pad: min(1<<62, math.MaxInt)}}, 0, fmt.Sprintf("pad %d outside [0, 64]", min(1<<62, math.MaxInt))},
		{"pad over MaxPad", &Loader{Data: set(), Batch: 1, Augment: Augment{Pad: MaxPad + 1}}, 0, "pad 65"},
		{"negative pad", &Loader{Data: set(), Batch: 1, Augment: Augment{Pad: -1}}, 0, "pad -1"},
		{"shuffle and a sampler", &Loader{Data: set(), Batch: 1, Shuffle: true, Sampler: fixedSampler{0, 1}}, 0, "both Shuffle and a Sampler"},
		{"sampler index outside", &Loader{Data: set(), Batch: 1, Sampler: fixedSampler{1, 2}}, 0, "index 2 for epoch 0, outside the data set's [0, 2)"},
		{"negative sampler index", &Loader{Data: set(), Batch: 1, Sampler: fixedSampler{-1}}, 0, "index -1"},
		{"sampler shorter than its Len", &Loader{Data: set(), Batch: 1, Sampler: shortSampler{}}, 0, "gave 1 indices for epoch 0, its Len is 2"},
		// Normalisations that make every input infinite or NaN (the batches
		// came with no error).
		{"std 0", &Loader{Data: set(), Batch: 1, Normalisation: transform.Normalisation{Std: []float64{0}}}, 0, "Std[0] = 0"},
		{"std NaN", &Loader{Data: set(), Batch: 1, Normalisation: transform.Normalisation{Std: []float64{math.NaN()}}}, 0, "Std[0] = NaN"},
		{"mean 1e300", &Loader{Data: set(), Batch: 1, Normalisation: transform.Normalisation{Mean: []float64{1e300}}}, 0, "Mean[0] = 1e+300"},
	} {
		n, err := drain(c.l, c.skip)
		if n != 0 || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %d batches, error %v; want none and an error naming %q", c.name, n, err, c.want)
		}
	}
	// Within range, and an error cleared by the next good epoch.
	l := &Loader{Data: set(), Batch: 1}
	drain(l, -1)
	l.Augment, l.Mean, l.Std = Augment{Pad: MaxPad, Flip: true}, []float64{0.5}, []float64{0.25}
	if n, err := drain(l, 0); n != 2 || err != nil {
		t.Errorf("pad %d: %d batches, error %v", MaxPad, n, err)
	}
	if n, err := drain(l, 5); n != 0 || err != nil {
		t.Errorf("skipping past the end: %d batches, error %v", n, err)
	}
	if n := (&Loader{Data: set()}).Batches(); n != 0 {
		t.Errorf("Batches with batch size 0: %d", n)
	}
}

// fixedSampler gives its indices every epoch.
type fixedSampler []int

func (s fixedSampler) Len() int          { return len(s) }
func (s fixedSampler) Indices(int) []int { return s }

// shortSampler gives fewer indices than its Len.
type shortSampler struct{}

func (shortSampler) Len() int          { return 2 }
func (shortSampler) Indices(int) []int { return []int{0} }

// An image's augmentation depends on the seed, the epoch and its index in
// the set alone, not on its batch or its position in it: batches of 4, 3
// and 1, and a Sampler giving some of the images in another order, give
// each the same pixels and mask (drawn from one stream per batch, the
// images of a batch of 4 were shifted and flipped otherwise than in one
// of 3). Another epoch gives most images others. Making a batch allocates
// as much for 32 images as for 2 (one generator, reseeded per image).
func TestLoaderAugmentsPerImage(t *testing.T) {
	const n = 32
	rng := tensor.NewRNG(4)
	set := &Dataset{H: 6, W: 6, C: 1, Pixels: make([]uint8, n*36), Masks: make([]uint8, n*36), Classes: []string{"a", "b"}}
	for i := range set.Pixels {
		set.Pixels[i], set.Masks[i] = uint8(rng.IntN(256)), uint8(rng.IntN(2))
	}
	// images returns the augmented pixels and mask of each image of the
	// epoch, by index, the loader taking them in order.
	images := func(l *Loader, order []int, epoch int) map[int][]float32 {
		got := map[int][]float32{}
		at := 0
		for b := range l.Epoch(context.Background(), epoch, 0) {
			for k := range b.X.Shape[0] {
				img := slices.Clone(b.X.Data[k*36 : (k+1)*36])
				for _, y := range b.Y[k*36 : (k+1)*36] {
					img = append(img, float32(y))
				}
				got[order[at]] = img
				at++
			}
		}
		if err := l.Err(); err != nil || at != len(order) {
			t.Fatalf("%d of %d images, error %v", at, len(order), err)
		}
		return got
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	aug := Augment{Pad: 2, Flip: true}
	var want [2]map[int][]float32
	for epoch := range 2 {
		want[epoch] = images(&Loader{Data: set, Batch: 4, Augment: aug, Seed: 5}, all, epoch)
		for _, batch := range []int{3, 1} {
			got := images(&Loader{Data: set, Batch: batch, Augment: aug, Seed: 5}, all, epoch)
			for i := range n {
				if !slices.Equal(got[i], want[epoch][i]) {
					t.Errorf("epoch %d: image %d augmented otherwise in batches of %d than of 4", epoch, i, batch)
				}
			}
		}
		some := fixedSampler{7, 2, 9, 0}
		got := images(&Loader{Data: set, Batch: 3, Augment: aug, Seed: 5, Sampler: some}, some, epoch)
		for _, i := range some {
			if !slices.Equal(got[i], want[epoch][i]) {
				t.Errorf("epoch %d: image %d augmented otherwise from a sampler", epoch, i)
			}
		}
	}
	same := 0
	for i := range n {
		if slices.Equal(want[0][i], want[1][i]) {
			same++
		}
	}
	if same > n/2 {
		t.Errorf("%d of %d images augmented alike in epochs 0 and 1", same, n)
	}
	allocs := func(batch int) float64 {
		l := &Loader{Data: set, Batch: batch, Augment: aug}
		return testing.AllocsPerRun(5, func() { l.make(all, 0, 0) })
	}
	if a2, a32 := allocs(2), allocs(32); a32 != a2 {
		t.Errorf("a batch of 32 images allocates %g times, one of 2 %g", a32, a2)
	}
}

// TestParallelPanic: a panic in one of parallel's goroutines reaches the
// caller, where it can be recovered, rather than ending the process.
func TestParallelPanic(t *testing.T) {
	defer func() {
		if r := recover(); r != "item 3" {
			t.Errorf("recovered %v, want item 3", r)
		}
	}()
	parallel(8, func(k int) {
		if k == 3 {
			panic("item 3")
		}
	})
	t.Error("no panic")
}

// TestOpenChannels: the in-memory sets honour the channels asked for as
// the folders do (grey replicated to RGB, RGB to its luma), keep theirs
// with 0, and refuse channels other than 0, 1 and 3.
func TestOpenChannels(t *testing.T) {
	for _, c := range []int{-1, 2, 4} {
		if _, _, err := Open(context.Background(), "mnist", c); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d channels", c)) {
			t.Errorf("mnist in %d channels: %v; want an error naming them", c, err)
		}
	}
	grey, greyTest, err := Open(context.Background(), "mnist", 0)
	if err != nil || grey.C != 1 {
		t.Fatalf("mnist as stored: %v", err)
	}
	if one, _, err := Open(context.Background(), "mnist", 1); err != nil || one.C != 1 || !slices.Equal(one.Pixels, grey.Pixels) {
		t.Errorf("mnist in 1 channel: %v", err)
	}
	rgb, rgbTest, err := Open(context.Background(), "mnist", 3)
	if err != nil || rgb.C != 3 || rgbTest.C != 3 || rgb.Len() != grey.Len() || rgbTest.Len() != greyTest.Len() {
		t.Fatalf("mnist in 3 channels: %v", err)
	}
	for i, v := range grey.Pixels {
		if p := rgb.Pixels[3*i : 3*i+3]; p[0] != v || p[1] != v || p[2] != v {
			t.Fatalf("pixel %d: %v, want %d replicated", i, p, v)
		}
	}

	dir := t.TempDir()
	rec := cifarRecord(1, 200, 100, 50)
	for i := 1; i <= 5; i++ {
		writeBytes(t, filepath.Join(dir, fmt.Sprintf("data_batch_%d.bin", i)), rec)
	}
	writeBytes(t, filepath.Join(dir, "test_batch.bin"), rec)
	tr, te, err := Open(context.Background(), "cifar10:"+dir, 1)
	if err != nil || tr.C != 1 || te.C != 1 || tr.Len() != 5 {
		t.Fatalf("CIFAR-10 in 1 channel: %v", err)
	}
	// PIL's L = (19595·200 + 38470·100 + 7471·50 + 2^15) >> 16 = 124.
	if tr.Pixels[0] != 124 || te.Pixels[1023] != 124 {
		t.Errorf("grey CIFAR pixels %d, %d; want 124", tr.Pixels[0], te.Pixels[1023])
	}
	if tr, _, err := Open(context.Background(), "cifar10:"+dir, 0); err != nil || tr.C != 3 {
		t.Errorf("CIFAR-10 as stored: %v", err)
	}
}

// TestOpenCanvasSide: a canvas side whose canvases and masks would not fit
// limits.TotalBytes is refused, naming the bound (a side of 9,999,999 was
// a makeslice panic; 2,000 an attempt at 80 GB), and the sides the
// valid-convolution U-Net needs (188 and up) are not.
func TestOpenCanvasSide(t *testing.T) {
	if s := int64(maxCanvasSide(10000)); s != 463 || 2*10000*s*s > 4<<30 || 2*10000*(s+1)*(s+1) <= 4<<30 {
		t.Errorf("maxCanvasSide(10000) = %d", s)
	}
	for _, side := range []string{"464", "9999999"} {
		if _, _, err := Open(context.Background(), "mnist-canvas:"+side, 1); err == nil || !strings.Contains(err.Error(), "[40, 463]") {
			t.Errorf("mnist-canvas:%s: %v; want an error naming the bound", side, err)
		}
	}
	if _, _, err := Open(context.Background(), "mnist-canvas:39", 1); err == nil || !strings.Contains(err.Error(), "≥ 40") {
		t.Errorf("mnist-canvas:39: %v", err)
	}
}

// TestCheckSizes: Check refuses sizes whose product would overflow, and a
// folder's files in other than 1 or 3 channels (Pixels has no other).
func TestCheckSizes(t *testing.T) {
	huge := &Dataset{H: min(1<<31, math.MaxInt), W: min(1<<31, math.MaxInt), C: 4, Labels: []int32{0}, Classes: []string{"a"}}
	if err := huge.Check(); err == nil || !strings.Contains(err.Error(), "image size") {
		t.Errorf("%dx%dx%d images: %v", huge.H, huge.W, huge.C, err)
	}
	files := &Dataset{H: 2, W: 2, C: 2, Files: []string{"a.png"}, Images: &ImageOptions{}, Labels: []int32{0}, Classes: []string{"a"}}
	if err := files.Check(); err == nil || !strings.Contains(err.Error(), "2 channels") {
		t.Errorf("files in 2 channels: %v", err)
	}
	var none *Dataset
	if err := none.Check(); err == nil {
		t.Error("a nil data set passes Check")
	}
}

// panicked returns what f panics with, or nil.
func panicked(f func()) (r any) {
	defer func() { r = recover() }()
	f()
	return nil
}

// TestLowLevelPanicsNamed: functions without an error result panic on
// bad arguments with a message naming the problem rather than a runtime
// error, and Pixels no longer returns RGB for channels other than 1 and 3.
func TestLowLevelPanicsNamed(t *testing.T) {
	d := &Dataset{H: 2, W: 2, C: 1, Pixels: make([]uint8, 8), Labels: []int32{0, 1}, Classes: []string{"a", "b"}}
	grey := image.NewGray(image.Rect(0, 0, 1, 1))
	for _, c := range []struct {
		name string
		f    func()
		want string
	}{
		{"Subset", func() { d.Subset([]int{0, 5}) }, "index 5 outside [0, 2)"},
		{"Subset negative", func() { d.Subset([]int{-1}) }, "index -1"},
		{"Image", func() { d.Image(-1) }, "image -1"},
		{"Image past the end", func() { d.Image(2) }, "image 2"},
		{"Mask", func() { d.Mask(0) }, "mask 0"},
		{"Pixels of nil", func() { transform.Pixels(nil, 3) }, "nil image"},
		{"Pixels in 2 channels", func() { transform.Pixels(grey, 2) }, "2 channels"},
	} {
		r := panicked(c.f)
		if msg, ok := r.(string); !ok || !strings.Contains(msg, c.want) {
			t.Errorf("%s: panicked with %v; want a message naming %q", c.name, r, c.want)
		}
	}
}

// TestRelabel: labels follow their class names into another class list
// (a set with some of a model's classes, in another order), a class the
// list lacks is named, and an equal list changes nothing.
func TestRelabel(t *testing.T) {
	d := &Dataset{H: 1, W: 1, C: 1, Pixels: []uint8{1, 2, 3}, Labels: []int32{0, 1, 0}, Classes: []string{"cat", "dog"}}
	if err := d.Relabel([]string{"ant", "dog", "cat"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Labels, []int32{2, 1, 2}) || !slices.Equal(d.Classes, []string{"ant", "dog", "cat"}) {
		t.Errorf("labels %v, classes %v", d.Labels, d.Classes)
	}
	if err := d.Relabel([]string{"ant", "dog", "cat"}); err != nil || !slices.Equal(d.Labels, []int32{2, 1, 2}) {
		t.Errorf("the same list: %v, labels %v", err, d.Labels)
	}
	e := &Dataset{H: 1, W: 1, C: 1, Pixels: []uint8{1, 2}, Labels: []int32{0, 1}, Classes: []string{"a", "b"}}
	if err := e.Relabel([]string{"circle", "square", "b"}); err == nil || !strings.Contains(err.Error(), `class "a" is not among the 3 classes`) {
		t.Errorf("unknown class: %v", err)
	}
	if !slices.Equal(e.Labels, []int32{0, 1}) {
		t.Errorf("a refused Relabel changed the labels: %v", e.Labels)
	}
	if err := e.Relabel([]string{"a", "b", "a"}); err == nil || !strings.Contains(err.Error(), `class "a" is named twice among the 3 classes to score against (at 0 and 2)`) {
		t.Errorf("duplicate class: %v", err)
	}
	// A name given twice that the set does not use (ImageNet's two
	// "crane") leaves its classes scored by name.
	if err := e.Relabel([]string{"crane", "b", "crane", "a"}); err != nil || !slices.Equal(e.Labels, []int32{3, 1}) {
		t.Errorf("a duplicate the set does not use: %v, labels %v", err, e.Labels)
	}
}
