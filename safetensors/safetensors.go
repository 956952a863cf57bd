// Package safetensors reads and writes the safetensors format
// (github.com/huggingface/safetensors): an 8-byte little-endian header
// length, a JSON header mapping each tensor name to its dtype, shape and
// byte range, an optional "__metadata__" map of strings, then the raw
// little-endian data. residual stores checkpoints in it, and loads
// PyTorch state dicts saved with it.
//
// The reader checks everything a corrupt or hostile file could get wrong
// (header size, a tensor or a field named twice, a field missing, offsets
// that are not two numbers, offsets outside the data, ranges that overlap or leave gaps,
// sizes that do not match the shape) and returns an error naming the
// problem. The writer replaces its target atomically.
//
// Read and Write work on files (Decode and Encode in memory, ReadFrom on
// a stream); WriteDtypes stores chosen tensors as integers. Every tensor
// reads back as float32, its stored dtype in File.Dtypes.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/residual-nn/residual/internal/atomicfile"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

type entry struct {
	Dtype   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

var dtypeSize = map[string]int{"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1, "I8": 1, "BOOL": 1, "I16": 2}

// File is a decoded safetensors file: float tensors (converted to float32
// from F32, F64, F16, BF16 and the integer types) and the metadata.
type File struct {
	Tensors map[string]*tensor.Tensor
	// Metadata is the header's "__metadata__", empty (not nil) without it.
	Metadata map[string]string
	// Dtypes records each tensor's stored dtype.
	Dtypes map[string]string
}

// otherFormat names the kind of file whose first 8 bytes are b when they
// are another format's signature and no safetensors header length (one
// over limits.HeaderBytes), as a clause to append to an error; ""
// otherwise (a truncated safetensors file's length may begin with such
// bytes too).
func otherFormat(b []byte) string {
	if binary.LittleEndian.Uint64(b) <= uint64(limits.HeaderBytes) {
		return ""
	}
	s := string(b)
	for _, f := range []struct{ magic, name string }{
		{"\x89PNG", "a PNG image"}, {"\xff\xd8\xff", "a JPEG image"}, {"GIF8", "a GIF image"}, {"BM", "a BMP image"},
		{"RIFF", "a WebP image"}, {"II*\x00", "a TIFF image"}, {"MM\x00*", "a TIFF image"},
		{"PK\x03\x04", "a zip archive (a PyTorch .pth? residual import torch reads it)"},
		{"\x80\x02", "a pickle (a legacy PyTorch .pth? residual import torch reads it)"},
		{"\x08", "perhaps an ONNX model (residual reads ONNX through interop/onnx)"},
	} {
		if strings.HasPrefix(s, f.magic) {
			return ": the file begins like " + f.name + ", not a safetensors file"
		}
	}
	return ""
}

// Decode parses a whole safetensors file held in memory.
func Decode(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("safetensors: %d bytes is too short for a header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(limits.HeaderBytes) || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("safetensors: header of %d bytes does not fit the %d-byte file or exceeds %d bytes (limits.HeaderBytes)%s", n, len(b), limits.HeaderBytes, otherFormat(b[:8]))
	}
	h, err := parseHeader(b[8 : 8+n])
	if err != nil {
		return nil, err
	}
	data := b[8+n:]
	if int64(len(data)) != h.dataLen {
		return nil, fmt.Errorf("safetensors: %d data bytes, the header's tensors cover %d (truncated or padded?)", len(data), h.dataLen)
	}
	return h.decode(data), nil
}

// Read reads and decodes a safetensors file. It never reads more than the
// header describes: the header length and the header come first and are
// checked against limits.HeaderBytes, the file's size (from Stat, for a
// regular file) and limits.TotalBytes before the data is read, so a
// device, a pipe or a hostile header cannot make it read or allocate
// without end.
func Read(path string) (*File, error) {
	// A FIFO that no process writes would block os.Open itself; opened
	// so, it reads as empty (refused as too short), and one that a process
	// writes reads as any pipe.
	fh, err := limits.OpenNoWait(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	size := int64(-1)
	if st, err := fh.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	} else if err == nil && st.IsDir() {
		return nil, fmt.Errorf("safetensors: %s is a folder, not a safetensors file", path)
	}
	f, err := ReadFrom(fh, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// ReadFrom decodes a safetensors file from r, whose size is size bytes (−1
// when unknown: a pipe or a device). It reads the header length, the
// header and then exactly the data the header describes, and refuses a
// known size that differs from what the header implies.
func ReadFrom(r io.Reader, size int64) (*File, error) {
	var lenBuf [8]byte
	if n, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("safetensors: %d bytes is too short for a header length (%v)", n, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > uint64(limits.HeaderBytes) || (size >= 0 && n > uint64(size-8)) {
		return nil, fmt.Errorf("safetensors: header of %d bytes does not fit the %d-byte file or exceeds %d bytes (limits.HeaderBytes)%s", n, size, limits.HeaderBytes, otherFormat(lenBuf[:]))
	}
	hdr := make([]byte, n)
	if got, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("safetensors: header truncated: %d of %d bytes (%v)", got, n, err)
	}
	h, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	if size >= 0 && size-8-int64(n) != h.dataLen {
		return nil, fmt.Errorf("safetensors: %d data bytes, the header's tensors cover %d (truncated or padded?)", size-8-int64(n), h.dataLen)
	}
	need := h.dataLen + 4*h.values // the bytes and their float32 values
	if size < 0 {
		need += h.dataLen // a stream's buffer grows by doubling: up to twice the bytes
	}
	if err := limits.CheckMemory("safetensors: the header's tensors", need); err != nil {
		return nil, err
	}
	var data []byte
	if size >= 0 { // a regular file of the size the header implies
		data = make([]byte, h.dataLen)
		_, err = io.ReadFull(r, data)
	} else {
		// Of unknown size (a pipe), the buffer grows with the bytes that
		// arrive: a 300-byte header declaring gigabytes must not allocate
		// them before any comes.
		data, err = io.ReadAll(io.LimitReader(r, h.dataLen))
		if err == nil && int64(len(data)) < h.dataLen {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil {
		return nil, fmt.Errorf("safetensors: data truncated: %d of the %d bytes the header describes (%v)", len(data), h.dataLen, err)
	}
	if size < 0 { // nothing may follow the data
		var one [1]byte
		if m, _ := io.ReadFull(r, one[:]); m != 0 {
			return nil, fmt.Errorf("safetensors: bytes follow the %d data bytes the header describes", h.dataLen)
		}
	}
	return h.decode(data), nil
}

// header is a checked safetensors header: its tensors sorted by offset,
// tiling dataLen bytes exactly.
type header struct {
	entries  []namedEntry
	metadata map[string]string
	dataLen  int64
	values   int64 // the tensors' elements: float32 values once decoded
}

type namedEntry struct {
	name string
	entry
}

// parseHeader decodes and checks a JSON header: known dtypes, shapes
// within limits.TensorElements, byte ranges that match their shapes and
// tile the data without gap or overlap, and in all no more than
// limits.TotalBytes, stored and as float32 values. Nothing is allocated
// for the data before all of it holds.
func parseHeader(hdr []byte) (*header, error) {
	raw, err := objectFields(hdr)
	if err != nil {
		return nil, fmt.Errorf("safetensors: bad header: %w", err)
	}
	h := &header{metadata: map[string]string{}}
	var values, stored int64
	for _, f := range raw {
		name, msg := f.name, f.value
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &h.metadata); err != nil {
				return nil, fmt.Errorf("safetensors: metadata must map strings to strings: %w", err)
			}
			if h.metadata == nil { // "__metadata__": null, as none
				h.metadata = map[string]string{}
			}
			continue
		}
		e, err := parseEntry(msg)
		if err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		size, ok := dtypeSize[e.Dtype]
		if !ok {
			return nil, fmt.Errorf("safetensors: tensor %q has unknown dtype %q", name, e.Dtype)
		}
		if err := limits.CheckElements(fmt.Sprintf("safetensors: tensor %q", name), e.Shape...); err != nil {
			return nil, err
		}
		count := int64(tensor.NumElements(e.Shape))
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo {
			return nil, fmt.Errorf("safetensors: tensor %q: bad byte range [%d, %d)", name, lo, hi)
		}
		if hi-lo != count*int64(size) {
			return nil, fmt.Errorf("safetensors: tensor %q: %d bytes for shape %v of %s", name, hi-lo, e.Shape, e.Dtype)
		}
		if values += count; values > limits.TotalBytes/4 {
			return nil, fmt.Errorf("safetensors: the tensors hold more than %d bytes of float32 values (limits.TotalBytes)", limits.TotalBytes)
		}
		if stored += hi - lo; stored > limits.TotalBytes {
			return nil, fmt.Errorf("safetensors: the tensors are stored in more than %d bytes (limits.TotalBytes)", limits.TotalBytes)
		}
		h.entries = append(h.entries, namedEntry{name, e})
	}
	// The ranges must tile the data exactly (the format's validity rule).
	sort.Slice(h.entries, func(i, j int) bool {
		a, b := h.entries[i], h.entries[j]
		return a.Offsets[0] < b.Offsets[0] || a.Offsets[0] == b.Offsets[0] && a.name < b.name
	})
	for _, e := range h.entries {
		if e.Offsets[0] != h.dataLen {
			return nil, fmt.Errorf("safetensors: tensor %q starts at byte %d, expected %d (overlap or gap)", e.name, e.Offsets[0], h.dataLen)
		}
		h.dataLen = e.Offsets[1]
	}
	h.values = values
	return h, nil
}

// field is one member of a JSON object, in the order it comes.
type field struct {
	name  string
	value json.RawMessage
}

// objectFields splits a JSON object into its members, refusing anything
// else and a name that appears twice (which encoding/json's maps and
// structs take silently, keeping the last).
func objectFields(b []byte) ([]field, error) {
	if !json.Valid(b) { // json.Unmarshal names the syntax error and its offset
		var v any
		return nil, json.Unmarshal(b, &v)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil {
		return nil, err
	} else if tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var out []field
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok { // never: an object's names are strings
			return nil, fmt.Errorf("a member name of type %T", tok)
		}
		if seen[name] {
			return nil, fmt.Errorf("%q appears twice", name)
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, field{name, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	return out, nil // json.Valid: nothing but spaces follows
}

// parseEntry decodes a tensor's entry: the fields "dtype" (a string),
// "shape" (a list of integers) and "data_offsets" (two integers), named
// exactly so and each once, as the reference reader (Rust, serde) wants
// them; other fields are ignored, as it ignores them. encoding/json alone
// would match the names in any case (a "DTYPE" after "dtype" won) and
// drop a third offset.
func parseEntry(msg json.RawMessage) (entry, error) {
	var e entry
	fields, err := objectFields(msg)
	if err != nil {
		return e, err
	}
	seen := map[string]bool{}
	for _, f := range fields {
		switch f.name {
		case "dtype", "shape", "data_offsets":
			if string(f.value) == "null" {
				return e, fmt.Errorf("%q is null", f.name)
			}
		default:
			continue // another field: ignored, as the reference reader (serde) ignores it
		}
		switch f.name {
		case "dtype":
			err = json.Unmarshal(f.value, &e.Dtype)
		case "shape":
			e.Shape, err = limits.ParseShape(f.value)
		case "data_offsets":
			var offsets []int64
			if err = json.Unmarshal(f.value, &offsets); err == nil && len(offsets) != 2 {
				err = fmt.Errorf("data_offsets %v: want two numbers, [begin, end]", offsets)
			}
			if err == nil {
				e.Offsets = [2]int64{offsets[0], offsets[1]}
			}
		}
		if err != nil {
			return e, err
		}
		seen[f.name] = true
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if !seen[k] {
			return e, fmt.Errorf("no %q field", k)
		}
	}
	return e, nil
}

// decode converts the checked data to float32 tensors.
func (h *header) decode(data []byte) *File {
	f := &File{Tensors: map[string]*tensor.Tensor{}, Metadata: h.metadata, Dtypes: map[string]string{}}
	for _, e := range h.entries {
		t := tensor.New(e.Shape...)
		DecodeValues(t.Data, data[e.Offsets[0]:e.Offsets[1]], e.Dtype)
		f.Tensors[e.name] = t
		f.Dtypes[e.name] = e.Dtype
	}
	return f
}

// DtypeSize returns the bytes per value of a safetensors dtype ("F32",
// "BF16", "I64", …) and whether it is one the reader knows.
func DtypeSize(dtype string) (int, bool) {
	n, ok := dtypeSize[dtype]
	return n, ok
}

// DecodeValues converts len(dst) little-endian values of a dtype that
// DtypeSize knows from src (at least len(dst)·DtypeSize(dtype) bytes) to
// float32, as the reader does: integers and booleans by value, F64
// rounded, F16 and BF16 exactly.
// It chooses the conversion once per call, not once per value.
func DecodeValues(dst []float32, src []byte, dtype string) {
	le := binary.LittleEndian
	switch dtype {
	case "F32":
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case "F64":
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	case "BF16":
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
		}
	case "F16":
		for i := range dst {
			dst[i] = halfToFloat(le.Uint16(src[2*i:]))
		}
	case "I64":
		for i := range dst {
			dst[i] = float32(int64(le.Uint64(src[8*i:])))
		}
	case "I32":
		for i := range dst {
			dst[i] = float32(int32(le.Uint32(src[4*i:])))
		}
	case "I16":
		for i := range dst {
			dst[i] = float32(int16(le.Uint16(src[2*i:])))
		}
	case "U8", "BOOL":
		for i := range dst {
			dst[i] = float32(src[i])
		}
	case "I8":
		for i := range dst {
			dst[i] = float32(int8(src[i]))
		}
	}
}

// halfToFloat converts an IEEE 754 binary16 value to float32 exactly.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac/1024 · 2⁻¹⁴
		v := float32(frac) / 1024 / 16384
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// Encode serialises float32 tensors (as F32, in name order) and metadata.
// A nil tensor, a shape its values do not fill and the reserved name
// "__metadata__" are errors.
func Encode(tensors map[string]*tensor.Tensor, metadata map[string]string) ([]byte, error) {
	return EncodeDtypes(tensors, nil, metadata)
}

// intRange is the range of values each integer dtype EncodeDtypes writes
// holds: from the least value to the first one past the greatest, each
// exact as a float64 (math.MaxInt64 is not: float64(math.MaxInt64) is
// 2^63, which an int64 cannot hold).
var intRange = map[string][2]float64{"I64": {-0x1p63, 0x1p63}, "I32": {-0x1p31, 0x1p31}, "I8": {-128, 128}, "U8": {0, 256}}

// EncodeDtypes is Encode with the tensors named in dtypes stored as an
// integer type instead of F32: "I64" (PyTorch's torch.long, e.g.
// num_batches_tracked), or "I32", "I8" and "U8" (an int8 checkpoint's
// biases, weights and zero points); their values must be whole numbers in
// the type's range.
func EncodeDtypes(tensors map[string]*tensor.Tensor, dtypes, metadata map[string]string) ([]byte, error) {
	names := make([]string, 0, len(tensors))
	for k := range tensors {
		if k == "__metadata__" {
			return nil, fmt.Errorf("safetensors: %q is reserved", k)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for _, k := range names {
		t := tensors[k]
		if t == nil {
			return nil, fmt.Errorf("safetensors: tensor %q is nil", k)
		}
		if _, err := tensor.FromData(t.Data, t.Shape...); err != nil { // the shape's checks, without a panic
			return nil, fmt.Errorf("safetensors: tensor %q: %w", k, err)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		dtype := "F32"
		switch d := dtypes[k]; d {
		case "", "F32":
		case "I64", "I32", "I8", "U8":
			dtype = d
			lo, hi := intRange[d][0], intRange[d][1]
			for _, v := range t.Data {
				if float64(v) != math.Trunc(float64(v)) || float64(v) < lo || float64(v) >= hi {
					return nil, fmt.Errorf("safetensors: tensor %q: %v cannot be stored as %s", k, v, d)
				}
			}
		default:
			return nil, fmt.Errorf("safetensors: tensor %q: cannot write dtype %q (F32, I64, I32, I8 or U8)", k, d)
		}
		n := int64(dtypeSize[dtype] * len(t.Data))
		hdr[k] = entry{Dtype: dtype, Shape: shape, Offsets: [2]int64{off, off + n}}
		off += n
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	for len(h)%8 != 0 { // align the data to 8 bytes, as the reference writer does
		h = append(h, ' ')
	}
	out := make([]byte, 8, 8+len(h)+int(off))
	binary.LittleEndian.PutUint64(out, uint64(len(h)))
	out = append(out, h...)
	for _, k := range names {
		switch dtypes[k] {
		case "I64":
			for _, v := range tensors[k].Data {
				out = binary.LittleEndian.AppendUint64(out, uint64(int64(v)))
			}
			continue
		case "I32":
			for _, v := range tensors[k].Data {
				out = binary.LittleEndian.AppendUint32(out, uint32(int32(v)))
			}
			continue
		case "I8", "U8":
			for _, v := range tensors[k].Data {
				out = append(out, byte(int32(v)))
			}
			continue
		}
		for _, v := range tensors[k].Data {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	}
	return out, nil
}

// Write encodes and writes a file atomically: the data goes to a
// temporary file in the same folder, is synced, and is renamed over path,
// so a reader sees the old file or the new one, never a part, and
// path's missing folders are created (atomicfile.Write).
func Write(path string, tensors map[string]*tensor.Tensor, metadata map[string]string) error {
	return WriteDtypes(path, tensors, nil, metadata)
}

// WriteDtypes is Write with the tensors named in dtypes stored as integers
// (see EncodeDtypes).
func WriteDtypes(path string, tensors map[string]*tensor.Tensor, dtypes, metadata map[string]string) error {
	b, err := EncodeDtypes(tensors, dtypes, metadata)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b)
}
