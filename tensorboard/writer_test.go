package tensorboard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata's PNGs and event-file fixture (then rerun testdata/read_events.py)")

const (
	fixtureEvents = "testdata/events.out.tfevents.1700000000.fixture"
	fixtureJSON   = "testdata/events.json" // printed by testdata/read_events.py
)

// fixedClock returns the times 1700000000.25 s, then every half second:
// values a float64 holds exactly, so that the wall times compare exactly.
func fixedClock() func() time.Time {
	t := time.Unix(1700000000, 250_000_000)
	return func() time.Time {
		now := t
		t = t.Add(500 * time.Millisecond)
		return now
	}
}

// testImages are the fixture's images, with what PIL decodes them to.
var testImages = []struct {
	file       string
	img        image.Image
	colorspace int32
	pilMode    string
	first      []int // pixel (0, 0) as RGBA
}{
	{"gray.png", func() image.Image {
		m := image.NewGray(image.Rect(0, 0, 3, 2))
		for i := range m.Pix {
			m.Pix[i] = uint8(10 + 40*i)
		}
		return m
	}(), colorGray, "L", []int{10, 10, 10, 255}},
	{"rgb.png", func() image.Image {
		m := image.NewRGBA(image.Rect(0, 0, 4, 3))
		for y := range 3 {
			for x := range 4 {
				m.SetRGBA(x, y, color.RGBA{uint8(60 * x), uint8(80 * y), 200, 255})
			}
		}
		return m
	}(), colorRGB, "RGB", []int{0, 0, 200, 255}},
	{"nrgba.png", func() image.Image {
		m := image.NewNRGBA(image.Rect(0, 0, 2, 2))
		for i := 0; i < len(m.Pix); i += 4 {
			copy(m.Pix[i:], []uint8{200, 100, uint8(50 + i), 128})
		}
		return m
	}(), colorRGBA, "RGBA", []int{200, 100, 50, 128}},
}

// epochMetrics stands for train.Metrics: JSON tags, a field left out by
// omitempty, one that is not a number.
type epochMetrics struct {
	Epoch     int     `json:"epoch"`
	Step      int     `json:"step"`
	TrainLoss float64 `json:"train_loss"`
	ValAcc    float64 `json:"val_acc"`
	ValTop5   float64 `json:"val_top5"`
	ValMIoU   float64 `json:"val_miou,omitempty"`
	Note      string  `json:"note"`
}

func scalar(tag string, v float64) jsonValue {
	f := jsonFloat(float32(v))
	return jsonValue{Tag: tag, SimpleValue: &f}
}

// fixture writes the fixture's events, and returns what a reader must
// find: every kind of event, edge values (zero, negative, NaN, ±Inf, the
// float32 extremes, a negative and a 2^40 step).
func fixture(t *testing.T, w *Writer, pngs [][]byte) []jsonEvent {
	t.Helper()
	clock := fixedClock()
	wall := func() float64 { return wallSeconds(clock()) }
	want := []jsonEvent{{WallTime: wall(), FileVersion: "brain.Event:2"}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.SessionStart(0))
	want = append(want, jsonEvent{WallTime: wall(), SessionLog: "START"})
	for step, loss := range []float64{2.302585, 1.75, 0.5} {
		lr := 0.1 * float64(step+1) / 3
		must(w.TrainStep(int64(step+1), loss, lr))
		want = append(want, jsonEvent{WallTime: wall(), Step: int64(step + 1), Values: []jsonValue{scalar(TagLoss, loss), scalar(TagLR, lr)}})
	}
	edges := []struct {
		tag  string
		step int64
		v    float64
	}{
		{"edge/zero", 3, 0}, {"edge/negative", 3, -1.5}, {"edge/nan", 3, math.NaN()},
		{"edge/inf", 3, math.Inf(1)}, {"edge/-inf", 3, math.Inf(-1)},
		{"edge/max_float32", 1 << 40, math.MaxFloat32}, {"edge/tiny", -1, math.SmallestNonzeroFloat32},
		{"edge/ünïcode ✓", 4, 1.0 / 3},
	}
	for _, e := range edges {
		must(w.Scalar(e.tag, e.step, e.v))
		want = append(want, jsonEvent{WallTime: wall(), Step: e.step, Values: []jsonValue{scalar(e.tag, e.v)}})
	}
	m := epochMetrics{Epoch: 1, Step: 3, TrainLoss: 1.5, ValAcc: 0.875, ValTop5: 1, Note: "not a number"}
	must(w.Metrics(EpochPrefix, 3, m, "step"))
	want = append(want, jsonEvent{WallTime: wall(), Step: 3, Values: []jsonValue{
		scalar("epoch/epoch", 1), scalar("epoch/train_loss", 1.5), scalar("epoch/val_acc", 0.875), scalar("epoch/val_top5", 1)}})
	for i, ti := range testImages {
		tag := CurvesPrefix + strings.TrimSuffix(ti.file, ".png")
		must(w.ImagePNG(tag, 3, pngs[i]))
		b := ti.img.Bounds()
		sum := sha256.Sum256(pngs[i])
		want = append(want, jsonEvent{WallTime: wall(), Step: 3, Values: []jsonValue{{Tag: tag, Image: &jsonImage{
			Height: int32(b.Dy()), Width: int32(b.Dx()), Colorspace: ti.colorspace,
			PNGBytes: len(pngs[i]), PNGSHA256: hex.EncodeToString(sum[:]), PILMode: ti.pilMode, PILFirstPixel: ti.first}}}})
	}
	must(w.Flush())
	return want
}

// fixturePNGs returns the committed PNG files, or under -update writes
// them first.
func fixturePNGs(t *testing.T) [][]byte {
	var pngs [][]byte
	for _, ti := range testImages {
		path := filepath.Join("testdata", ti.file)
		if *update {
			var b bytes.Buffer
			if err := png.Encode(&b, ti.img); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		pngs = append(pngs, b)
	}
	return pngs
}

// compareEvents compares events field by field; the Go reader does not
// decode images, so PIL's fields are compared only when both have them.
func compareEvents(t *testing.T, what string, got, want []jsonEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.WallTime != w.WallTime || g.Step != w.Step || g.FileVersion != w.FileVersion || g.SessionLog != w.SessionLog || len(g.Values) != len(w.Values) {
			t.Errorf("%s: event %d = %+v, want %+v", what, i, g, w)
			continue
		}
		for j := range w.Values {
			gv, wv := g.Values[j], w.Values[j]
			switch {
			case gv.Tag != wv.Tag:
				t.Errorf("%s: event %d value %d: tag %q, want %q", what, i, j, gv.Tag, wv.Tag)
			case (gv.SimpleValue == nil) != (wv.SimpleValue == nil) || (gv.Image == nil) != (wv.Image == nil):
				t.Errorf("%s: event %d value %q: kind differs: %+v, want %+v", what, i, wv.Tag, gv, wv)
			case wv.SimpleValue != nil && !gv.SimpleValue.same(*wv.SimpleValue):
				t.Errorf("%s: event %d value %q = %v, want %v", what, i, wv.Tag, *gv.SimpleValue, *wv.SimpleValue)
			case wv.Image != nil:
				gi, wi := *gv.Image, *wv.Image
				if gi.PILMode == "" || wi.PILMode == "" {
					gi.PILMode, wi.PILMode, gi.PILFirstPixel, wi.PILFirstPixel = "", "", nil, nil
				}
				if !reflect.DeepEqual(gi, wi) {
					t.Errorf("%s: event %d image %q = %+v, want %+v", what, i, wv.Tag, gi, wi)
				}
			}
		}
	}
}

// TestFixture checks the writer against the independent reader: the
// bytes it writes now equal the committed file that
// testdata/read_events.py (protobuf, crcmod, PIL) read, and what that
// reader found (testdata/events.json) is what was written. The Go test
// reader must agree too.
func TestFixture(t *testing.T) {
	pngs := fixturePNGs(t)
	var b bytes.Buffer
	want := fixture(t, NewWriterTo(&b, fixedClock()), pngs)
	if *update {
		if err := os.WriteFile(fixtureEvents, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s; now regenerate %s with testdata/read_events.py", fixtureEvents, fixtureJSON)
	}
	committed, err := os.ReadFile(fixtureEvents)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), committed) {
		i := 0
		for i < min(b.Len(), len(committed)) && b.Bytes()[i] == committed[i] {
			i++
		}
		t.Fatalf("written events (%d bytes) differ from %s (%d bytes) from byte %d", b.Len(), fixtureEvents, len(committed), i)
	}

	raw, err := os.ReadFile(fixtureJSON)
	if err != nil {
		t.Fatal(err)
	}
	var py jsonFile
	if err := json.Unmarshal(raw, &py); err != nil {
		t.Fatalf("%s: %v", fixtureJSON, err)
	}
	if py.Records != len(want) || py.Bytes != len(committed) {
		t.Errorf("python read %d records of %d bytes, want %d of %d", py.Records, py.Bytes, len(want), len(committed))
	}
	compareEvents(t, "python reader", py.Events, want)

	goRead, err := readEvents(committed)
	if err != nil {
		t.Fatal(err)
	}
	compareEvents(t, "go reader", goRead.Events, want)
}

// TestPythonReaderLive runs the independent reader on a file written now
// by NewWriter, with images encoded by Writer.Image (gray, RGB, RGBA,
// paletted): the check behind the fixture, where its tools are present.
func TestPythonReaderLive(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skipf("protoc not found (Debian: protobuf-compiler): %v", err)
	}
	// The first python3 with the reader's modules: the one on PATH may be
	// another installation than the system's, which Debian's packages serve.
	python := ""
	var tried []string
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		out, err := exec.Command(p, "-c", "import google.protobuf, crcmod, PIL").CombinedOutput()
		if err == nil {
			python = p
			break
		}
		tried = append(tried, p+": "+strings.TrimSpace(string(out))+" "+err.Error())
	}
	if python == "" {
		t.Skipf("no python3 with protobuf, crcmod and PIL (Debian: python3-protobuf python3-crcmod python3-pil): %s", strings.Join(tried, "; "))
	}
	dir := t.TempDir()
	w, err := NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	pal := image.NewPaletted(image.Rect(0, 0, 5, 1), color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}})
	palAlpha := image.NewPaletted(image.Rect(0, 0, 5, 1), color.Palette{color.NRGBA{0, 255, 0, 255}, color.NRGBA{0, 0, 0, 0}})
	imgs := []struct {
		img        image.Image
		colorspace int32
	}{{testImages[0].img, colorGray}, {testImages[1].img, colorRGB}, {testImages[2].img, colorRGBA}, {pal, colorRGB}, {palAlpha, colorRGBA}}
	for i, c := range imgs {
		if err := w.Image("img", int64(i), c.img); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.TrainStep(7, 0.25, 0.001); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, "testdata/read_events.py", w.Path()).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("read_events.py: %v: %s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var py jsonFile
	if err := json.Unmarshal(out, &py); err != nil {
		t.Fatal(err)
	}
	if len(py.Events) != 2+len(imgs) || py.Events[0].FileVersion != fileVersion {
		t.Fatalf("python read %+v", py)
	}
	for i, c := range imgs {
		v := py.Events[1+i].Values[0]
		b := c.img.Bounds()
		if v.Image == nil || v.Image.Width != int32(b.Dx()) || v.Image.Height != int32(b.Dy()) || v.Image.Colorspace != c.colorspace {
			t.Errorf("image %d: python read %+v, want %dx%d colorspace %d", i, v.Image, b.Dx(), b.Dy(), c.colorspace)
			continue
		}
		r, g, bl, a := c.img.At(0, 0).RGBA()
		nr := color.NRGBAModel.Convert(color.RGBA64{uint16(r), uint16(g), uint16(bl), uint16(a)}).(color.NRGBA)
		if want := []int{int(nr.R), int(nr.G), int(nr.B), int(nr.A)}; !reflect.DeepEqual(v.Image.PILFirstPixel, want) && nr.A != 0 {
			t.Errorf("image %d: PIL decodes pixel (0,0) as %v, want %v", i, v.Image.PILFirstPixel, want)
		}
	}
	last := py.Events[len(py.Events)-1]
	if last.Step != 7 || len(last.Values) != 2 || !last.Values[0].SimpleValue.same(0.25) || !last.Values[1].SimpleValue.same(0.001) {
		t.Errorf("python read the train step as %+v", last)
	}
}

func TestNewWriterFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "tb")
	var paths []string
	for range 2 {
		w, err := NewWriter(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Scalar("x", 1, 2); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Scalar("x", 2, 3); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("Scalar after Close: %v, want an error saying closed", err)
		}
		paths = append(paths, w.Path())
	}
	host, _ := os.Hostname()
	for _, p := range paths {
		base := filepath.Base(p)
		if !strings.HasPrefix(base, "events.out.tfevents.") || !strings.Contains(base, "."+host+".") {
			t.Errorf("file name %q is not events.out.tfevents.<seconds>.%s.<pid>", base, host)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := readEvents(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Events) != 2 || f.Events[0].FileVersion != fileVersion || f.Events[1].Values[0].Tag != "x" {
			t.Errorf("%s holds %+v", p, f.Events)
		}
		if now := float64(time.Now().Unix()); math.Abs(f.Events[1].WallTime-now) > 60 {
			t.Errorf("wall time %f is not now (%f)", f.Events[1].WallTime, now)
		}
	}
	if paths[0] == paths[1] {
		t.Errorf("two writers share the file %s", paths[0])
	}
	keep := filepath.Join(dir, "metrics.jsonl")
	if err := os.WriteFile(keep, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RemoveEventFiles(dir); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 1 || left[0] != keep {
		t.Errorf("RemoveEventFiles left %v, want only %s", left, keep)
	}
	if err := RemoveEventFiles(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("RemoveEventFiles on a missing folder: %v", err)
	}
}

// failWriter fails every write after the first n bytes.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

// pngHeader returns the signature and IHDR chunk of a w×h RGB PNG: what
// png.DecodeConfig reads.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
	b = append(b, byte(w>>24), byte(w>>16), byte(w>>8), byte(w), byte(h>>24), byte(h>>16), byte(h>>8), byte(h), 8, 2, 0, 0, 0)
	c := crc32.ChecksumIEEE(b[12:])
	return append(b, byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
}

func TestErrors(t *testing.T) {
	w := NewWriterTo(&bytes.Buffer{}, fixedClock())
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"empty tag", w.Scalar("", 1, 1), "empty tag"},
		{"lengths", w.Scalars(1, []string{"a", "b"}, []float64{1}), "tags and values differ in number (2 and 1)"},
		{"no values", w.Scalars(1, nil, nil), "no values"},
		{"not png", w.ImagePNG("img", 1, []byte("GIF89a....")), `image "img": not a PNG`},
		{"bomb", w.ImagePNG("img", 1, pngHeader(50000, 50000)), "decompression bomb"},
		{"wide", w.ImagePNG("img", 1, pngHeader(1<<20, 1)), "limits.ImageSide"},
		// Past the PNG decoder's int (a 32-bit one's from 16,384×16,384):
		// named by the limit all the same.
		{"huge", w.ImagePNG("img", 1, pngHeader(1<<30, 1<<30)), `tensorboard: image "img": image of 1073741824×1073741824 pixels has a side over 65536 (limits.ImageSide)`},
		{"metrics not object", w.Metrics(EpochPrefix, 1, []float64{1}), "not a JSON object"},
		{"metrics no numbers", w.Metrics(EpochPrefix, 1, map[string]string{"a": "b"}), "no numeric fields"},
		{"metrics unencodable", w.Metrics(EpochPrefix, 1, map[string]any{"a": make(chan int)}), "metrics"},
		{"missing file", w.ImageFile("img", 1, filepath.Join(t.TempDir(), "none.png")), "none.png"},
		{"empty image", w.Image("img", 1, image.NewGray(image.Rect(0, 0, 0, 0))), `image "img"`},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, c.err, c.want)
		}
	}
	// Bad input is refused without spoiling the writer.
	if err := w.Flush(); err != nil {
		t.Errorf("Flush after refused input: %v", err)
	}

	// A failed write is returned, names the destination, and sticks.
	fw := NewWriterTo(&failWriter{n: 40}, nil) // the file-version record fits
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := fw.Scalar("x", 1, 1); err != nil {
		t.Fatal(err) // buffered
	}
	err := fw.Flush()
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "event stream") {
		t.Errorf("Flush on a full disk: %v", err)
	}
	if err2 := fw.Scalar("x", 2, 1); !errors.Is(err2, err) && (err2 == nil || err2.Error() != err.Error()) {
		t.Errorf("after a failed write: %v, want %v again", err2, err)
	}
	if err := fw.Close(); err == nil {
		t.Error("Close after a failed write returned nil")
	}
}

// A nil image, or a Writer given no io.Writer, is an error, not a panic
// (png.Encode, and the first Flush, dereferenced them).
func TestNilInputs(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panicked: %v", r)
		}
	}()
	w := NewWriterTo(&bytes.Buffer{}, fixedClock())
	var g *image.Gray
	for _, img := range []image.Image{nil, g} {
		if err := w.Image("img", 1, img); err == nil || !strings.Contains(err.Error(), `image "img" is nil`) {
			t.Errorf("Image(%T nil): error %v", img, err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Errorf("Flush after a refused nil image: %v", err)
	}
	nw := NewWriterTo(nil, nil)
	for name, err := range map[string]error{"Scalar": nw.Scalar("x", 1, 1), "Flush": nw.Flush(), "Close": nw.Close()} {
		if err == nil || !strings.Contains(err.Error(), "no io.Writer") {
			t.Errorf("%s on NewWriterTo(nil): error %v, want one saying there is no io.Writer", name, err)
		}
	}
}

// TestFlushInterval checks that events reach the io.Writer without Flush
// once FlushInterval has passed since the last flush, and not before.
func TestFlushInterval(t *testing.T) {
	var b bytes.Buffer
	w := NewWriterTo(&b, fixedClock())
	if err := w.Scalar("x", 1, 1); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Fatalf("%d bytes flushed before FlushInterval", b.Len())
	}
	w.lastFlush = time.Now().Add(-FlushInterval)
	if err := w.Scalar("x", 2, 1); err != nil {
		t.Fatal(err)
	}
	f, err := readEvents(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Events) != 3 {
		t.Errorf("%d events flushed after FlushInterval, want 3", len(f.Events))
	}
}

// TestImageFile logs a PNG file as it is, byte for byte.
func TestImageFile(t *testing.T) {
	pngs := fixturePNGs(t)
	var b bytes.Buffer
	w := NewWriterTo(&b, fixedClock())
	if err := w.ImageFile("curves/rgb", 5, filepath.Join("testdata", testImages[1].file)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := readEvents(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pngs[1])
	img := f.Events[1].Values[0].Image
	if img == nil || img.PNGSHA256 != hex.EncodeToString(sum[:]) || img.Width != 4 || img.Height != 3 || img.Colorspace != colorRGB {
		t.Errorf("ImageFile wrote %+v", img)
	}
}

// TestReaderRejectsCorruption checks that the test reader's CRC checks
// work, so that TestFixture's Go-side agreement means something: every
// single-byte change of a small file is caught.
func TestReaderRejectsCorruption(t *testing.T) {
	var b bytes.Buffer
	w := NewWriterTo(&b, fixedClock())
	if err := w.TrainStep(1, 0.5, 0.1); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	good := b.Bytes()
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x20
		if _, err := readEvents(bad); err == nil {
			t.Fatalf("a flipped bit in byte %d went unnoticed", i)
		}
	}
	if _, err := readEvents(good[:len(good)-1]); err == nil {
		t.Error("a truncated file went unnoticed")
	}
}

// TestMaskedCRC checks the CRC against values computed independently
// (crcmod's crc-32c with TFRecord's mask, in Python): the empty string
// and "123456789", whose plain CRC-32C is the catalogue's check value
// 0xe3069283.
func TestMaskedCRC(t *testing.T) {
	if c := crc32.Checksum([]byte("123456789"), castagnoli); c != 0xe3069283 {
		t.Fatalf("CRC-32C check value %#x", c)
	}
	for s, want := range map[string]uint32{"": 0xa282ead8, "123456789": 0xc78ab0e5} {
		if got := maskedCRC([]byte(s)); got != want {
			t.Errorf("maskedCRC(%q) = %#x, want %#x", s, got, want)
		}
	}
}
