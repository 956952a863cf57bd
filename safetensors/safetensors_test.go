package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

func sample() map[string]*tensor.Tensor {
	return map[string]*tensor.Tensor{
		"conv1.weight": tensor.MustFromData([]float32{1, -2, 3.5, 4, 5, 6}, 1, 2, 3),
		"fc.bias":      tensor.MustFromData([]float32{0.25}, 1),
		"scalar":       tensor.MustFromData([]float32{7}),
	}
}

func TestRoundTrip(t *testing.T) {
	b, err := Encode(sample(), map[string]string{"epoch": "3"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range sample() {
		got := f.Tensors[k]
		if got == nil || !tensor.SameShape(got.Shape, want.Shape) || got.Sum() != want.Sum() {
			t.Errorf("%s: got %v, want %v", k, got, want)
		}
	}
	if f.Metadata["epoch"] != "3" {
		t.Errorf("metadata %v", f.Metadata)
	}
}

// A file written by PyTorch's safetensors (torch.save_file of
// {"a": arange(6, dtype=float32).reshape(2,3), "b": tensor([1,2], int64)}),
// bytes built here the same way.
func TestReadsOtherDtypes(t *testing.T) {
	hdr := `{"a":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"I64","shape":[2],"data_offsets":[6,22]},"c":{"dtype":"BF16","shape":[1],"data_offsets":[22,24]}}`
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	b = append(b, hdr...)
	b = binary.LittleEndian.AppendUint16(b, 0x3c00) // 1.0
	b = binary.LittleEndian.AppendUint16(b, 0xc000) // −2.0
	b = binary.LittleEndian.AppendUint16(b, 0x8001) // −2⁻²⁴ (subnormal)
	b = binary.LittleEndian.AppendUint64(b, 5)
	b = binary.LittleEndian.AppendUint64(b, ^uint64(0)) // −1
	b = binary.LittleEndian.AppendUint16(b, 0x4049)     // bf16 3.140625
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if a := f.Tensors["a"].Data; a[0] != 1 || a[1] != -2 || a[2] != -1.0/(1<<24) {
		t.Errorf("F16 decoded to %v", a)
	}
	if v := f.Tensors["b"].Data; v[0] != 5 || v[1] != -1 {
		t.Errorf("I64 decoded to %v", v)
	}
	if v := f.Tensors["c"].Data[0]; v != 3.140625 {
		t.Errorf("BF16 decoded to %v", v)
	}
}

func TestCorruptFiles(t *testing.T) {
	good, _ := Encode(sample(), nil)
	hlen := binary.LittleEndian.Uint64(good)
	cases := map[string][]byte{
		"empty":            {},
		"truncated data":   good[:len(good)-3],
		"truncated header": good[:8+hlen/2],
		"huge header":      append(binary.LittleEndian.AppendUint64(nil, 1<<40), good[8:]...),
		"not json":         append(binary.LittleEndian.AppendUint64(nil, 4), []byte("nope")...),
	}
	bad := func(h string, data int) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		return append(append(b, h...), make([]byte, data)...)
	}
	cases["offsets past end"] = bad(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4)
	cases["size/shape mismatch"] = bad(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8)
	cases["overlap"] = bad(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8)
	cases["unknown dtype"] = bad(`{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}`, 1)
	cases["negative dim"] = bad(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4)
	cases["bad metadata"] = bad(`{"__metadata__":{"x":1}}`, 0)
	for name, b := range cases {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.HasPrefix(err.Error(), "safetensors:") {
			t.Errorf("%s: error %q does not say where it comes from", name, err)
		}
	}
	// A truncated file whose header length's first byte happens to be an
	// ONNX model's (8: a 264-byte header) is not called one: the format
	// is named only for lengths no safetensors header has.
	cut := append(binary.LittleEndian.AppendUint64(nil, 264), make([]byte, 92)...)
	if _, err := Decode(cut); err == nil || strings.Contains(err.Error(), "begins like") {
		t.Errorf("a truncated file with a 264-byte header: %v", err)
	}
}

// A header is read as written: a tensor or field named twice, a field
// missing (dtype, shape and data_offsets are matched exactly, "DTYPE" is
// not "dtype"), and offsets that are not two numbers are errors naming the
// problem, where encoding/json kept the last of two names, matched field
// names in any case and dropped a third offset. Other fields are ignored,
// as the reference reader (serde) ignores them: a "Dtype" after "dtype"
// does not replace it.
func TestStrictHeader(t *testing.T) {
	for _, hdr := range []string{`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"Dtype":"I32","junk":null,"more":{"x":[1]}}}`} {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
		f, err := Decode(append(append(b, hdr...), 0, 0, 128, 63))
		if err != nil || f.Dtypes["a"] != "F32" || f.Tensors["a"].Data[0] != 1 {
			t.Errorf("%s: %v; want the F32 tensor [1], the other fields ignored", hdr, err)
		}
	}
	for _, c := range []struct{ hdr, want string }{
		{`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, `"a" appears twice`},
		{`{"__metadata__":{},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{}}`, `"__metadata__" appears twice`},
		{`{"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4],"dtype":"F32"}}`, `tensor "a": "dtype" appears twice`},
		{`{"a":{"DTYPE":"F32","shape":[1],"data_offsets":[0,4]}}`, `tensor "a": no "dtype" field`},
		{`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, `data_offsets [0 4 8]: want two numbers`},
		{`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, `data_offsets [4]: want two numbers`},
		{`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, `no "shape" field`},
		{`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}`, `"shape" is null`},
		{`{"a":[1]}`, `tensor "a": not a JSON object`},
		{`[]`, `bad header: not a JSON object`},
		{`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} {}`, `after top-level value`},
	} {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(c.hdr)))
		b = append(append(b, c.hdr...), 1, 0, 0, 0)
		if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "safetensors: ") {
			t.Errorf("%s: got %v, want %q", c.hdr, err, c.want)
		}
	}
}

// A "__metadata__" of null is no metadata: an empty map a caller may
// write to, as without the field (it was nil, and writing to it panicked).
func TestNullMetadata(t *testing.T) {
	for _, hdr := range []string{`{"__metadata__":null,"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`} {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
		f, err := Decode(append(append(b, hdr...), 1, 0, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if f.Metadata == nil || len(f.Metadata) != 0 {
			t.Errorf("%s: Metadata %#v; want an empty map", hdr, f.Metadata)
		}
	}
}

func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ckpt.safetensors")
	if err := Write(p, sample(), map[string]string{"v": "1"}); err != nil {
		t.Fatal(err)
	}
	// A failing write (a tensor whose data does not fill its shape) leaves
	// the old file intact and no temporary files behind.
	bad := map[string]*tensor.Tensor{"x": {Shape: []int{4}, Data: []float32{1}}}
	if err := Write(p, bad, nil); err == nil {
		t.Fatal("a bad tensor was written")
	}
	f, err := Read(p)
	if err != nil || f.Metadata["v"] != "1" {
		t.Fatalf("old checkpoint damaged: %v", err)
	}
	// A write into a folder that cannot be created fails cleanly, naming
	// the file asked for (not the temporary file).
	under := filepath.Join(p, "sub", "x.safetensors") // p is a file
	if err := Write(under, sample(), nil); err == nil || !strings.Contains(err.Error(), "writing "+under) || strings.Contains(err.Error(), ".tmp") {
		t.Errorf("write under a file: %v", err)
	}
	// A folder at path is refused, named, and left alone.
	folder := filepath.Join(dir, "folder")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(folder, sample(), nil); err == nil || !strings.Contains(err.Error(), folder+": it is a folder") {
		t.Errorf("write over a folder: %v", err)
	}
	os.Remove(folder)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only the checkpoint", len(entries))
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Encode(sample(), map[string]string{"k": "v"})
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	dup := `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}`
	f.Add(append(append(binary.LittleEndian.AppendUint64(nil, uint64(len(dup))), dup...), 1, 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Decode(b)
		// The streaming reader agrees with the in-memory one, whether or
		// not it knows the size.
		for _, size := range []int64{int64(len(b)), -1} {
			if _, serr := ReadFrom(bytes.NewReader(b), size); (serr == nil) != (err == nil) {
				t.Fatalf("Decode: %v, ReadFrom (size %d): %v", err, size, serr)
			}
		}
		if err != nil {
			return
		}
		// Whatever decodes must re-encode (as F32) and decode to the same
		// tensors, bit for bit, and the same metadata.
		out, err := Encode(file.Tensors, file.Metadata)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decode(out)
		if err != nil || len(again.Tensors) != len(file.Tensors) {
			t.Fatalf("re-encoding failed: %v", err)
		}
		for name, v := range file.Tensors {
			w := again.Tensors[name]
			if w == nil || !tensor.SameShape(v.Shape, w.Shape) || len(v.Data) != len(w.Data) {
				t.Fatalf("%q: %v re-encoded as %v", name, v.Shape, w)
			}
			for i := range v.Data {
				if math.Float32bits(v.Data[i]) != math.Float32bits(w.Data[i]) {
					t.Fatalf("%q[%d]: %v re-encoded as %v", name, i, v.Data[i], w.Data[i])
				}
			}
			if again.Dtypes[name] != "F32" {
				t.Fatalf("%q re-encoded as %s, want F32", name, again.Dtypes[name])
			}
		}
		if !maps.Equal(again.Metadata, file.Metadata) {
			t.Fatalf("metadata %q re-encoded as %q", file.Metadata, again.Metadata)
		}
	})
}

// Hostile files are refused from their header, before the data they
// describe is allocated or read.
func TestHostileFiles(t *testing.T) {
	dir := t.TempDir()
	files := 0
	file := func(h string, data int) string {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		b = append(append(b, h...), make([]byte, data)...)
		files++
		p := filepath.Join(dir, fmt.Sprintf("f%d.safetensors", files))
		os.WriteFile(p, b, 0o644)
		return p
	}
	huge := filepath.Join(dir, "huge-header.safetensors")
	os.WriteFile(huge, binary.LittleEndian.AppendUint64(nil, 1<<62), 0o644)
	cases := map[string]struct{ path, want string }{
		"/dev/zero":            {"/dev/zero", "bad header"},
		"header over the file": {huge, "limits.HeaderBytes"},
		"huge shape":           {file(`{"a":{"dtype":"F32","shape":[65536,65536],"data_offsets":[0,17179869184]}}`, 0), "limits.TensorElements"},
		"overflowing shape":    {file(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}`, 4), "limits.TensorElements"},
		"data the file lacks":  {file(`{"a":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}`, 16), "16 data bytes, the header's tensors cover 4000000"},
		"negative offset":      {file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, 0), "bad byte range"},
		"total over limit": {file(`{"a":{"dtype":"U8","shape":[268435456],"data_offsets":[0,268435456]},"b":{"dtype":"U8","shape":[268435456],"data_offsets":[268435456,536870912]},`+
			`"c":{"dtype":"U8","shape":[268435456],"data_offsets":[536870912,805306368]},"d":{"dtype":"U8","shape":[268435456],"data_offsets":[805306368,1073741824]},`+
			`"e":{"dtype":"U8","shape":[268435456],"data_offsets":[1073741824,1342177280]}}`, 0), "limits.TotalBytes"},
	}
	for name, c := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Read(c.path)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
			t.Errorf("%s: allocated %d MB before refusing", name, d>>20)
		}
	}
}

// A dimension that an int cannot hold gets the same error on every
// platform: limits.TensorElements's when the shape would hold too many
// values, and one naming the tensor, the dimension and the platform's
// bound when a zero dimension first leaves the shape empty. 2³² is past a
// 32-bit int only, so its zero-first shape reads on a 64-bit platform.
func TestShapeDimensionPastInt(t *testing.T) {
	decode := func(shape string) error {
		h := `{"a":{"dtype":"F32","shape":` + shape + `,"data_offsets":[0,0]}}`
		_, err := Decode(append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), h...))
		return err
	}
	elems := fmt.Sprint(limits.TensorElements) + " values (limits.TensorElements)"
	pastInt := fmt.Sprintf("does not fit an int, at most %d on this %d-bit platform", math.MaxInt, bits.UintSize)
	cases := []struct{ shape, want string }{
		{`[99999999999999999999]`, `safetensors: tensor "a": shape [99999999999999999999] holds more than ` + elems},
		{`[4294967296,0]`, `safetensors: tensor "a": shape [4294967296 0] holds more than ` + elems},
		{`[0,99999999999999999999,3]`, `safetensors: tensor "a": shape [0 99999999999999999999 3]: dimension 99999999999999999999 ` + pastInt},
		{`[0,-99999999999999999999]`, `safetensors: tensor "a": negative dimension in shape [0 -99999999999999999999]`},
		{`[2.5,99999999999999999999]`, `safetensors: tensor "a": json: cannot unmarshal number 2.5 into Go value of type int`},
	}
	if math.MaxInt < 1<<32 {
		cases = append(cases, struct{ shape, want string }{`[0,4294967296]`, `safetensors: tensor "a": shape [0 4294967296]: dimension 4294967296 ` + pastInt})
	} else if err := decode(`[0,4294967296]`); err != nil {
		t.Errorf("shape [0 4294967296] on a %d-bit platform: %v", bits.UintSize, err)
	}
	for _, c := range cases {
		if err := decode(c.shape); err == nil || err.Error() != c.want {
			t.Errorf("shape %s: got %v, want %s", c.shape, err, c.want)
		}
	}
}

// A 2 GiB file, within limits.TotalBytes, is refused for memory before
// its data is allocated: on a 32-bit platform whatever limits.Memory
// says (a []byte of 2³¹ bytes panicked there: makeslice: len out of
// range), elsewhere when limits.Memory is less than it needs. The file is
// sparse: it takes no disk.
func TestReadPastMemory(t *testing.T) {
	h := `{"a":{"dtype":"F32","shape":[268435456],"data_offsets":[0,1073741824]},"b":{"dtype":"F32","shape":[268435456],"data_offsets":[1073741824,2147483648]}}`
	p := filepath.Join(t.TempDir(), "big.safetensors")
	if err := os.WriteFile(p, append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), h...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, int64(8+len(h))+2<<30); err != nil {
		t.Fatal(err)
	}
	defer func(m int64) { limits.Memory = m }(limits.Memory)
	want := "a 32-bit process holds 2.1 GB at most"
	limits.Memory = 1 << 40
	if math.MaxInt > math.MaxInt32 {
		limits.Memory, want = 1<<30, "1.1 GB is available"
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Read(p)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.HasSuffix(err.Error(), "safetensors: the header's tensors needs at least 4.3 GB of memory; "+want) {
		t.Errorf("2 GiB of F32 with limits.Memory %d: %v", limits.Memory, err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
		t.Errorf("2 GiB of F32: allocated %d MB before refusing", d>>20)
	}
}

// A file of unknown size (a pipe) is read up to what its header
// describes, and bytes after that are refused.
func TestReadFromStream(t *testing.T) {
	good, _ := Encode(sample(), map[string]string{"k": "v"})
	f, err := ReadFrom(bytes.NewReader(good), -1)
	if err != nil || len(f.Tensors) != 3 {
		t.Fatalf("stream: %v", err)
	}
	if _, err := ReadFrom(bytes.NewReader(append(good, 0)), -1); err == nil || !strings.Contains(err.Error(), "follow") {
		t.Errorf("trailing byte: %v", err)
	}
	if _, err := ReadFrom(bytes.NewReader(good[:len(good)-1]), -1); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated stream: %v", err)
	}
	// A header of a few hundred bytes declaring 3 GB (within
	// limits.TotalBytes) and a stream that ends there: refused as
	// truncated without allocating what the header declares. A 32-bit
	// process cannot hold 3 GB: there it is refused for memory, before
	// any data is read.
	h := `{"a":{"dtype":"F32","shape":[268435456],"data_offsets":[0,1073741824]},"b":{"dtype":"F32","shape":[268435456],"data_offsets":[1073741824,2147483648]},` +
		`"c":{"dtype":"F32","shape":[268435456],"data_offsets":[2147483648,3221225472]}}`
	stream := append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), h...)
	defer func(m int64) { limits.Memory = m }(limits.Memory)
	limits.Memory = 1 << 40 // not refused for the machine's memory
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = ReadFrom(bytes.NewReader(append(stream, 1, 2, 3)), -1)
	runtime.ReadMemStats(&after)
	want := "truncated: 3 of"
	if math.MaxInt == math.MaxInt32 {
		want = "a 32-bit process holds 2.1 GB at most"
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a 3 GB header on a stream of 3 data bytes: %v; want an error containing %q", err, want)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
		t.Errorf("a 3 GB header on a stream of 3 data bytes: allocated %d MB before refusing", d>>20)
	}
	// Stored bytes count against limits.TotalBytes too, not only the
	// float32 values they become: F64 holds twice as many bytes.
	h = `{"a":{"dtype":"F64","shape":[268435456],"data_offsets":[0,2147483648]},"b":{"dtype":"F64","shape":[268435456],"data_offsets":[2147483648,4294967296]},` +
		`"c":{"dtype":"F64","shape":[1],"data_offsets":[4294967296,4294967304]}}`
	stream = append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), h...)
	if _, err := ReadFrom(bytes.NewReader(stream), -1); err == nil || !strings.Contains(err.Error(), "stored in more than") {
		t.Errorf("4 GB of F64: %v; want limits.TotalBytes's refusal of the stored bytes", err)
	}
}

// Counters such as num_batches_tracked are stored as PyTorch stores them:
// I64, 8 little-endian bytes, read back exactly; a fraction is refused.
func TestI64RoundTrip(t *testing.T) {
	ts := map[string]*tensor.Tensor{"bn.num_batches_tracked": tensor.MustFromData([]float32{1 << 20}), "w": tensor.MustFromData([]float32{0.5}, 1)}
	b, err := EncodeDtypes(ts, map[string]string{"bn.num_batches_tracked": "I64"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Dtypes["bn.num_batches_tracked"] != "I64" || f.Tensors["bn.num_batches_tracked"].Data[0] != 1<<20 || f.Dtypes["w"] != "F32" {
		t.Errorf("read back %v %v", f.Dtypes, f.Tensors["bn.num_batches_tracked"])
	}
	n := binary.LittleEndian.Uint64(b)
	if got := binary.LittleEndian.Uint64(b[8+n:]); got != 1<<20 { // names sort: the counter's bytes come first
		t.Errorf("stored %d, want %d as int64", got, 1<<20)
	}
	ts["bn.num_batches_tracked"].Data[0] = 2.5
	if _, err := EncodeDtypes(ts, map[string]string{"bn.num_batches_tracked": "I64"}, nil); err == nil {
		t.Error("2.5 stored as I64")
	}
	// 2^63 is one past MaxInt64: it was written as MinInt64 (-9.22e18).
	ts["bn.num_batches_tracked"].Data[0] = 0x1p63
	if _, err := EncodeDtypes(ts, map[string]string{"bn.num_batches_tracked": "I64"}, nil); err == nil || !strings.Contains(err.Error(), "cannot be stored as I64") {
		t.Errorf("2^63 as I64: %v", err)
	}
	// The int64s nearest the ends that a float32 holds round-trip.
	for _, v := range []float32{-0x1p63, math.Nextafter32(0x1p63, 0)} {
		ts["bn.num_batches_tracked"].Data[0] = v
		b, err := EncodeDtypes(ts, map[string]string{"bn.num_batches_tracked": "I64"}, nil)
		if err != nil {
			t.Fatalf("%v as I64: %v", v, err)
		}
		if got := int64(binary.LittleEndian.Uint64(b[8+binary.LittleEndian.Uint64(b):])); got != int64(v) {
			t.Errorf("%v stored as %d", v, got)
		}
	}
}

// Integer dtypes round-trip by value, and a value outside a dtype's range
// (or not whole) is an error naming the tensor.
func TestIntegerDtypes(t *testing.T) {
	ts := map[string]*tensor.Tensor{
		"w": {Shape: []int{3}, Data: []float32{-128, 0, 127}},
		"b": {Shape: []int{2}, Data: []float32{-16777216, 16777216}},
		"z": {Shape: []int{2}, Data: []float32{0, 255}},
	}
	dt := map[string]string{"w": "I8", "b": "I32", "z": "U8"}
	b, err := EncodeDtypes(ts, dt, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range ts {
		if f.Dtypes[k] != dt[k] || !slices.Equal(f.Tensors[k].Data, want.Data) {
			t.Errorf("%s: %s %v, want %s %v", k, f.Dtypes[k], f.Tensors[k].Data, dt[k], want.Data)
		}
	}
	for _, bad := range []struct {
		v  float32
		dt string
	}{{128, "I8"}, {-129, "I8"}, {256, "U8"}, {-1, "U8"}, {0.5, "I32"}, {3e9, "I32"}, {0x1p31, "I32"}, {0x1p63, "I64"}, {float32(math.Inf(-1)), "I64"}} {
		_, err := EncodeDtypes(map[string]*tensor.Tensor{"x": {Shape: []int{1}, Data: []float32{bad.v}}}, map[string]string{"x": bad.dt}, nil)
		if err == nil || !strings.Contains(err.Error(), `"x"`) {
			t.Errorf("%v as %s: error %v", bad.v, bad.dt, err)
		}
	}
}

func TestHalfToFloat(t *testing.T) {
	for h, want := range map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x3555: 0.333251953125, 0x0001: 5.960464477539063e-08, 0x7bff: 65504, 0x8000: float32(math.Copysign(0, -1))} {
		if got := halfToFloat(h); got != want || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("halfToFloat(%#04x) = %v, want %v", h, got, want)
		}
	}
	if !math.IsInf(float64(halfToFloat(0x7c00)), 1) || !math.IsNaN(float64(halfToFloat(0x7e00))) {
		t.Error("infinity or NaN not kept")
	}
}

// What a caller hands Encode (and Write, and a checkpoint's optimizer
// state) is checked, not trusted: a nil tensor or an impossible shape is
// an error naming the tensor, never a panic.
func TestEncodeRefusesBadTensors(t *testing.T) {
	for name, tensors := range map[string]map[string]*tensor.Tensor{
		"nil":      {"w": nil},
		"negative": {"w": {Shape: []int{-1, -1}, Data: []float32{1}}},
		"short":    {"w": {Shape: []int{2, 2}, Data: []float32{1}}},
		"overflow": {"w": {Shape: []int{1 << (bits.UintSize / 2), 1 << (bits.UintSize / 2)}}},
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: Encode panicked: %v", name, r)
				}
			}()
			if _, err := Encode(tensors, nil); err == nil || !strings.Contains(err.Error(), `"w"`) {
				t.Errorf("%s: Encode error %v, want one naming tensor \"w\"", name, err)
			}
		}()
	}
}
