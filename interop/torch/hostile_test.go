package torch

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// pk writes pickles opcode by opcode, for hand-made (and hostile) state
// dicts.
type pk struct{ bytes.Buffer }

func (p *pk) op(b ...byte) *pk { p.Write(b); return p }

func (p *pk) str(s string) *pk {
	p.WriteByte('X')
	p.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
	p.WriteString(s)
	return p
}

func (p *pk) int(v int64) *pk {
	if v == int64(int32(v)) {
		p.WriteByte('J')
		p.Write(binary.LittleEndian.AppendUint32(nil, uint32(int32(v))))
		return p
	}
	p.op(0x8a, 8)
	p.Write(binary.LittleEndian.AppendUint64(nil, uint64(v)))
	return p
}

func (p *pk) global(module, name string) *pk {
	p.WriteByte('c')
	p.WriteString(module + "\n" + name + "\n")
	return p
}

func (p *pk) tuple(vs ...int64) *pk {
	p.op('(')
	for _, v := range vs {
		p.int(v)
	}
	return p.op('t')
}

// spec is one tensor of a hand-made state dict.
type spec struct {
	name, class, key string
	numel, offset    int64
	size, stride     []int64
}

// statePickle pickles an OrderedDict of tensors as torch.save does
// (protocol 2, persistent storage ids, _rebuild_tensor_v2).
func statePickle(specs ...spec) []byte {
	var p pk
	p.op(0x80, 2).global("collections", "OrderedDict").op(')', 'R', '(')
	for _, s := range specs {
		p.str(s.name).global("torch._utils", "_rebuild_tensor_v2").op('(')
		p.op('(').str("storage").global("torch", s.class).str(s.key).str("cpu").int(s.numel).op('t', 'Q')
		p.int(s.offset).tuple(s.size...).tuple(s.stride...).op(0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R')
	}
	p.op('u', '.')
	return p.Bytes()
}

// views returns n tensors that each view all of one storage of size
// values (a weight tied under n names).
func views(n int, size int64) []spec {
	out := make([]spec, n)
	for i := range out {
		out[i] = spec{fmt.Sprintf("t%d", i), "ByteStorage", "0", size, 0, []int64{size}, []int64{1}}
	}
	return out
}

// distinctViews returns n tensors that each view all but n values of one
// storage of size values, each from its own offset: n distinct views.
func distinctViews(n int, size int64) []spec {
	out := views(n, size)
	for i := range out {
		out[i].offset, out[i].size = int64(i), []int64{size - int64(n)}
	}
	return out
}

// pth zips a pickle and storages as torch.save does (archive/data.pkl,
// archive/data/<key>), with the given compression method.
func pth(t *testing.T, pkl []byte, storages map[string][]byte, method uint16) string {
	p := filepath.Join(t.TempDir(), "x.pth")
	if err := os.WriteFile(p, pthBytes(pkl, storages, method), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func pthBytes(pkl []byte, storages map[string][]byte, method uint16) []byte {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	add := func(name string, b []byte) {
		f, err := w.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			panic(err)
		}
		f.Write(b)
	}
	add("archive/data.pkl", pkl)
	for k, b := range storages {
		add("archive/data/"+k, b)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func floats(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// loadBounded loads path and fails the test if that allocated more than
// 64 MB: a hostile header must be refused before its sizes are allocated.
func loadBounded(t *testing.T, path string) error {
	t.Helper()
	_, err := loadBoundedState(t, path, 64<<20)
	return err
}

// loadBoundedState loads path and fails the test if that allocated more
// than limit bytes.
func loadBoundedState(t *testing.T, path string, limit uint64) (map[string]*tensor.Tensor, error) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	st, err := LoadStateDict(path)
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > limit {
		t.Errorf("allocated %d MB loading %s (at most %d MB)", d>>20, filepath.Base(path), limit>>20)
	}
	return st, err
}

func TestHandMadeStateDict(t *testing.T) {
	// A 2×3 tensor, its transpose (a strided view of the same storage) and
	// a half-precision scalar.
	pkl := statePickle(
		spec{"w", "FloatStorage", "0", 6, 0, []int64{2, 3}, []int64{3, 1}},
		spec{"wt", "FloatStorage", "0", 6, 0, []int64{3, 2}, []int64{1, 3}},
		spec{"h", "HalfStorage", "1", 1, 0, nil, nil},
	)
	for _, method := range []uint16{zip.Store, zip.Deflate} {
		st, err := LoadStateDict(pth(t, pkl, map[string][]byte{"0": floats(1, 2, 3, 4, 5, 6), "1": {0x00, 0xc0}}, method))
		if err != nil {
			t.Fatalf("method %d: %v", method, err)
		}
		if got := st["wt"].Data; got[0] != 1 || got[1] != 4 || got[5] != 6 || st["wt"].Shape[0] != 3 {
			t.Errorf("method %d: transposed view read as %v %v", method, st["wt"].Shape, got)
		}
		if got := st["h"].Data; len(got) != 1 || got[0] != -2 {
			t.Errorf("method %d: half scalar read as %v", method, got)
		}
	}
}

// torch.save's own file, recompressed with deflate, loads to the same
// tensors (it failed with a bare "EOF" when storages were read with Read).
func TestDeflatedPth(t *testing.T) {
	want, err := LoadStateDict(filepath.Join(dir, "small.pth"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(filepath.Join(dir, "small.pth"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, _ := f.Open()
		dst, _ := w.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate})
		if _, err := dst.(interface{ Write([]byte) (int, error) }).Write(readAll(t, rc)); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	w.Close()
	p := filepath.Join(t.TempDir(), "deflated.pth")
	os.WriteFile(p, buf.Bytes(), 0o644)
	got, err := LoadStateDict(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	for k, w := range want {
		g := got[k]
		if g == nil || len(g.Data) != len(w.Data) {
			t.Fatalf("%s missing or resized", k)
		}
		for i := range w.Data {
			if g.Data[i] != w.Data[i] {
				t.Fatalf("%s[%d] = %v, want %v", k, i, g.Data[i], w.Data[i])
			}
		}
	}
}

func readAll(t *testing.T, r interface{ Read([]byte) (int, error) }) []byte {
	var b bytes.Buffer
	if _, err := b.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Each hostile file is refused with an error naming the problem, without
// a panic and before allocating what it asks for.
func TestHostilePth(t *testing.T) {
	frame := func(size uint64) []byte {
		return append(binary.LittleEndian.AppendUint64([]byte{0x80, 4, 0x95}, size), '.')
	}
	one := func(s spec) string { return string(statePickle(s)) }
	// An integer past a 32-bit int is refused as that while the pickle is
	// scanned on a 32-bit platform, where its interpreter would drop the
	// bits that do not fit (2⁴⁰ read as 0, 2⁶³−1 as −1); elsewhere it is
	// refused for what it says.
	fits := func(v int64, want string) string {
		if int64(int(v)) != v {
			return fmt.Sprintf("archive/data.pkl: pickle integer %d does not fit an int, at most %d on this 32-bit platform", v, math.MaxInt)
		}
		return want
	}
	cases := []struct {
		name     string
		pkl      string
		storages map[string][]byte
		want     string
	}{
		{"opcode 0xff", "\x80\x02\xff", nil, "unknown pickle opcode 0xff"},
		{"huge frame", string(frame(1 << 40)), nil, "frame of 1099511627776 bytes"},
		{"negative frame", string(frame(1 << 63)), nil, "frame of"},
		{"frame past the end", string(frame(100)), nil, "before the end of its frame"},
		{"huge BINBYTES8", "\x80\x04\x8e" + string(binary.LittleEndian.AppendUint64(nil, 1<<50)) + ".", nil, "exceeds"},
		{"negative BINSTRING", "\x80\x02T\xff\xff\xff\xff.", nil, "exceeds"},
		{"huge LONG4", "\x80\x02\x8b\x00\x00\x00\x10.", nil, "integer of"},
		{"LONG4 past 32 bits", "\x80\x02\x8b\x05\x00\x00\x00\x00\x00\x00\x00\x01.", nil, fits(1<<32, "not a state dict")},
		{"LONG past 32 bits", "\x80\x02L4294967296L\n.", nil, fits(1<<32, "not a state dict")},
		// The interpreter reads a protocol-0 INT with strconv.Atoi, which
		// refused one past an int in its own words.
		{"INT past 32 bits", "\x80\x02I4294967296\n.", nil, fits(1<<32, "not a state dict")},
		{"negative INT past 32 bits", "\x80\x02I-4294967296\n.", nil, fits(-1<<32, "not a state dict")},
		{"INT past 64 bits", "\x80\x02I99999999999999999999\n.", nil, fmt.Sprintf("archive/data.pkl: pickle integer 99999999999999999999 does not fit an int, at most %d on this %d-bit platform", math.MaxInt, strconv.IntSize)},
		{"negative LONG1 past 32 bits", "\x80\x02\x8a\x05\x00\x00\x00\x00\xff.", nil, fits(-1<<32, "not a state dict")},
		{"empty LONG1", "\x80\x02\x8a\x00.", nil, "malformed pickle"},
		{"deep nesting", "\x80\x02" + strings.Repeat("(", 5000) + ".", nil, "nests deeper"},
		{"empty stack", "\x80\x02R.", nil, "stack is empty"},
		{"no STOP", "\x80\x02N", nil, "no STOP"},
		{"huge storage", one(spec{"w", "FloatStorage", "0", 1 << 40, 0, []int64{1}, []int64{1}}), nil, fits(1<<40, "limits.TotalBytes")},
		{"negative storage", one(spec{"w", "FloatStorage", "0", -5, 0, []int64{1}, []int64{1}}), nil, "storage reference"},
		{"huge tensor", one(spec{"w", "FloatStorage", "0", 4, 0, []int64{1 << 20, 1 << 20}, []int64{0, 0}}), nil, "limits.TensorElements"},
		{"negative size", one(spec{"w", "FloatStorage", "0", 4, 0, []int64{-4}, []int64{1}}), nil, "non-negative"},
		{"negative offset", one(spec{"w", "FloatStorage", "0", 4, -1, []int64{4}, []int64{1}}), nil, "offset"},
		{"view past the storage", one(spec{"w", "FloatStorage", "0", 4, 2, []int64{4}, []int64{1}}), nil, "reach past the end"},
		// An empty tensor's offset was never checked, and one of MaxInt64
		// wrapped the last element's index negative: both panicked slicing
		// the storage.
		{"empty tensor past the storage", one(spec{"w", "FloatStorage", "0", 2, 100, []int64{0}, []int64{1}}), map[string][]byte{"0": floats(1, 2)}, "offset 100 lies beyond its 2-value storage"},
		{"offset of MaxInt64", one(spec{"w", "FloatStorage", "0", 2, math.MaxInt64, []int64{2}, []int64{1}}), map[string][]byte{"0": floats(1, 2)}, fits(math.MaxInt64, "storage offset 9223372036854775807 lies beyond its 2-value storage")},
		{"offset at the end", one(spec{"w", "FloatStorage", "0", 2, 2, []int64{1}, []int64{1}}), map[string][]byte{"0": floats(1, 2)}, "starts past the end"},
		{"stride of MaxInt64", one(spec{"w", "FloatStorage", "0", 2, 0, []int64{2}, []int64{math.MaxInt64}}), map[string][]byte{"0": floats(1, 2)}, fits(math.MaxInt64, "stride [9223372036854775807] outside its 2-value storage")},
		{"expanded class count", one(spec{"fc.bias", "FloatStorage", "0", 1, 0, []int64{1 << 27}, []int64{0}}), map[string][]byte{"0": floats(1)}, "storage only 1"},
		{"class count the file lacks", one(spec{"fc.bias", "FloatStorage", "0", 1 << 27, 0, []int64{1 << 27}, []int64{1}}), map[string][]byte{"0": floats(1, 2)}, "holds 8 bytes, the pickle describes 536870912"},
		{"truncated storage", one(spec{"w", "FloatStorage", "0", 4, 0, []int64{4}, []int64{1}}), map[string][]byte{"0": floats(1, 2, 3)}, "holds 12 bytes, the pickle describes 16"},
		{"missing storage", one(spec{"w", "FloatStorage", "0", 4, 0, []int64{4}, []int64{1}}), nil, "no entry archive/data/0"},
		{"many views of one storage", string(statePickle(distinctViews(40, 1<<25)...)), nil, "limits.TotalBytes"},
		{"foreign global", "\x80\x02cos\nsystem\n.", nil, "os.system"},
		{"not a dict", "\x80\x02N.", nil, "not a state dict"},
		// gopickle resolves these two itself, before findClass sees them;
		// they build nothing a state dict holds.
		{"copy_reg._reconstructor", "\x80\x02ccopy_reg\n_reconstructor\n.", nil, "not a state dict"},
		{"__builtin__.object", "\x80\x02c__builtin__\nobject\n.", nil, "not a state dict"},
		{"reconstructed object", "\x80\x02ccopy_reg\n_reconstructor\nc__builtin__\nobject\nc__builtin__\nobject\nN\x87R.", nil, "PyNew"},
		{"reconstructed foreign class", "\x80\x02ccopy_reg\n_reconstructor\ncos\nsystem\nc__builtin__\nobject\nN\x87R.", nil, "os.system"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := loadBounded(t, pth(t, []byte(c.pkl), c.storages, zip.Store))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			} else if !strings.HasPrefix(err.Error(), "torch: ") {
				t.Errorf("error %q does not name its package", err)
			}
		})
	}
}

// The distinct views of a storage may hold twice its values (a weight and
// views of its parts), plus 2^20 for small state dicts; names that view the
// same values (a tied weight) are one view, decoded once. A few kB of
// deflated zeros viewed 16 times decoded to 16 times their float32 values
// (a 16 kB file to 1 GB): 16 views from 16 offsets are refused before the
// storage is read, and 16 names of one view take the memory of one.
func TestSharedStorages(t *testing.T) {
	const n = 1 << 21 // a 2 MB byte storage, deflated to about 2 kB; 8 MB as float32
	zeros := map[string][]byte{"0": make([]byte, n)}
	for _, k := range []int{2, 3, 16} {
		st, err := loadBoundedState(t, pth(t, statePickle(views(k, n)...), zeros, zip.Deflate), 40<<20)
		if err != nil {
			t.Errorf("%d names of one storage (a tied weight): %v", k, err)
		} else if len(st) != k || st["t0"] != st[fmt.Sprintf("t%d", k-1)] {
			t.Errorf("%d names of one storage: %d tensors, t0 and t%d not one tensor", k, len(st), k-1)
		}
	}
	if _, err := LoadStateDict(pth(t, statePickle(distinctViews(5, 1000)...), map[string][]byte{"0": make([]byte, 1000)}, zip.Store)); err != nil {
		t.Errorf("five views of a small storage: %v", err)
	}
	half := spec{"half", "ByteStorage", "0", n, n / 2, []int64{n / 2}, []int64{1}}
	if _, err := LoadStateDict(pth(t, statePickle(append(views(3, n), half)...), zeros, zip.Deflate)); err != nil {
		t.Errorf("three names of one storage and a view of its second half: %v", err)
	}
	for _, k := range []int{3, 16} {
		err := loadBounded(t, pth(t, statePickle(distinctViews(k, n)...), zeros, zip.Deflate))
		if err == nil || !strings.Contains(err.Error(), "more than twice the 2097152 values of the storages they view") {
			t.Errorf("%d distinct views of one storage: got %v", k, err)
		}
	}
}

// A state dict whose storages and float32 tensors need more memory than
// is available is refused before its storages are read, in either format.
func TestStateDictMemory(t *testing.T) {
	defer func(m int64) { limits.Memory = m }(limits.Memory)
	limits.Memory = 1 << 20
	const n = 1 << 18 // 1 MB of float32, and 1 MB decoded
	zipped := pth(t, statePickle(spec{"w", "FloatStorage", "0", n, 0, []int64{n}, []int64{1}}), map[string][]byte{"0": make([]byte, 4*n)}, zip.Store)
	p := filepath.Join(t.TempDir(), "legacy.pt")
	if err := os.WriteFile(p, legacy(legacyStateDict(n), []string{"k"}, [][]byte{make([]byte, 4*n)}, []uint64{n}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{zipped, p} {
		if _, err := LoadStateDict(path); err == nil || !strings.Contains(err.Error(), "needs at least 2.1 MB of memory; 1.0 MB is available") {
			t.Errorf("%s: got %v", filepath.Base(path), err)
		}
	}
	limits.Memory = 4 << 20
	for _, path := range []string{zipped, p} {
		if _, err := LoadStateDict(path); err != nil {
			t.Errorf("%s with 4 MB: %v", filepath.Base(path), err)
		}
	}
}

// Zip entries whose headers declare more data than they hold are refused
// before that much is allocated.
func TestLyingZipSizes(t *testing.T) {
	pkl := statePickle(spec{"w", "FloatStorage", "0", 1 << 28, 0, []int64{1 << 28}, []int64{1}})
	for method, want := range map[uint16]string{zip.Store: "stored with 8 bytes but declares 1073741824", zip.Deflate: "more than its 8 compressed bytes can hold"} {
		var buf bytes.Buffer
		w := zip.NewWriter(&buf)
		f, _ := w.Create("archive/data.pkl")
		f.Write(pkl)
		raw, err := w.CreateRaw(&zip.FileHeader{Name: "archive/data/0", Method: method, CompressedSize64: 8, UncompressedSize64: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		raw.Write(floats(1, 2))
		w.Close()
		p := filepath.Join(t.TempDir(), "lying.pth")
		os.WriteFile(p, buf.Bytes(), 0o644)
		if err := loadBounded(t, p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("method %d: got %v, want %q", method, err, want)
		}
	}
}

// A storage whose zip entry declares the right size but whose data was
// cut short (the local size and the CRC disagree with the bytes) is an
// error, never zero padding.
func TestCorruptStorageIsNotZeroPadded(t *testing.T) {
	pkl := statePickle(spec{"w", "FloatStorage", "0", 4, 0, []int64{4}, []int64{1}})
	p := pth(t, pkl, map[string][]byte{"0": floats(1, 2, 3, 4)}, zip.Store)
	b, _ := os.ReadFile(p)
	i := bytes.Index(b, floats(1, 2, 3, 4))
	copy(b[i+8:], floats(0, 0)) // corrupt the last two values in place
	os.WriteFile(p, b, 0o644)
	if _, err := LoadStateDict(p); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupt storage: %v", err)
	}
}

// legacy builds a file in torch.save's legacy format by hand.
func legacy(pkl []byte, keys []string, storages [][]byte, counts []uint64) []byte {
	var p pk
	p.Write(legacyMagic)
	p.op('.')
	p.op(0x80, 2).int(1001).op('.')
	p.op(0x80, 2, '}', '(').str("little_endian").op(0x88).op('u', '.')
	p.Write(pkl)
	p.op(0x80, 2, '(')
	for _, k := range keys {
		p.str(k)
	}
	p.op('l', '.')
	for i, c := range counts {
		p.Write(binary.LittleEndian.AppendUint64(nil, c))
		if i < len(storages) {
			p.Write(storages[i])
		}
	}
	return p.Bytes()
}

// legacyStateDict pickles a one-tensor state dict with the legacy format's
// persistent ids, whose sixth entry is the view metadata (None).
func legacyStateDict(numel int64) []byte {
	var p pk
	p.op(0x80, 2).global("collections", "OrderedDict").op(')', 'R', '(')
	p.str("w").global("torch._utils", "_rebuild_tensor_v2").op('(')
	p.op('(').str("storage").global("torch", "FloatStorage").str("k").str("cpu").int(numel).op('N', 't', 'Q')
	p.int(0).tuple(numel).tuple(1).op(0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R')
	p.op('u', '.')
	return p.Bytes()
}

func TestLegacyFormat(t *testing.T) {
	p := bytes.NewBuffer(legacyStateDict(3))
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, b, 0o644)
		return path
	}
	st, err := LoadStateDict(write("ok.pt", legacy(p.Bytes(), []string{"k"}, [][]byte{floats(1, 2, 3)}, []uint64{3})))
	if err != nil {
		t.Fatal(err)
	}
	if got := st["w"].Data; len(got) != 3 || got[2] != 3 {
		t.Errorf("legacy tensor read as %v", got)
	}
	for name, c := range map[string]struct {
		b    []byte
		want string
	}{
		"truncated":             {legacy(p.Bytes(), []string{"k"}, [][]byte{floats(1, 2)}, []uint64{3}), "storages truncated: 20 bytes with their counts, the file has 16 left"},
		"huge storage, no data": {legacy(legacyStateDict(1<<28), []string{"k"}, nil, []uint64{1 << 28}), "storages truncated: 1073741832 bytes with their counts, the file has 8 left"},
		"huge count":            {legacy(p.Bytes(), []string{"k"}, [][]byte{floats(1, 2, 3)}, []uint64{1 << 60}), "holds 1152921504606846976 values, the pickle describes 3"},
		"unknown key":           {legacy(p.Bytes(), []string{"j"}, [][]byte{floats(1, 2, 3)}, []uint64{3}), "unknown or repeated"},
	} {
		err := loadBounded(t, write(name+".pt", c.b))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
}
