package serve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/tensor"
)

// Tensor names of every served model: one NHWC float input, two outputs.
const (
	inputName   = "input"
	logitsName  = "logits"
	probsName   = "probabilities"
	datatypeF32 = "FP32"
)

// elemSize returns the bytes per element of a datatype the server
// converts to FP32; BYTES (strings) is refused.
func elemSize(dt string) (int, error) {
	switch dt {
	case "BOOL", "UINT8", "INT8":
		return 1, nil
	case "UINT16", "INT16", "FP16":
		return 2, nil
	case "UINT32", "INT32", "FP32":
		return 4, nil
	case "UINT64", "INT64", "FP64":
		return 8, nil
	case "BYTES":
		return 0, badRequest("datatype BYTES cannot feed the model's numeric input; send FP32 (or another numeric datatype)")
	}
	return 0, badRequest("unknown datatype %q (known: BOOL, UINT8/16/32/64, INT8/16/32/64, FP16, FP32, FP64)", clip(dt))
}

// checkShape validates a request's declared shape and returns its element
// count.
func checkShape(what string, shape []int64) (int, []int, error) {
	dims := make([]int, len(shape))
	for i, d := range shape {
		if d < 0 || d > int64(limits.TensorElements) {
			return 0, nil, badRequest("%s: shape %v has an invalid dimension %d", what, shape, d)
		}
		dims[i] = int(d)
	}
	if err := limits.CheckElements(what, dims...); err != nil {
		return 0, nil, badRequest("%v", err)
	}
	return tensor.NumElements(dims), dims, nil
}

// decodeRaw converts little-endian raw tensor bytes of a datatype to
// float32.
func decodeRaw(what, dt string, raw []byte, n int) ([]float32, error) {
	size, err := elemSize(dt)
	if err != nil {
		return nil, err
	}
	if len(raw) != n*size {
		return nil, badRequest("%s: %d bytes of %s data for %d elements (want %d bytes)", what, len(raw), dt, n, n*size)
	}
	out := getFloats(n)
	le := binary.LittleEndian
	// One loop per datatype: a switch per element cost a 224×224×3
	// FP32 input 0.8 ms.
	switch dt {
	case "BOOL":
		for i := range out {
			if raw[i] > 1 {
				putFloats(out)
				return nil, badRequest("%s: BOOL element %d is the byte %d; want 0 or 1", what, i, raw[i])
			}
			out[i] = float32(raw[i])
		}
	case "UINT8":
		for i := range out {
			out[i] = float32(raw[i])
		}
	case "INT8":
		for i := range out {
			out[i] = float32(int8(raw[i]))
		}
	case "UINT16":
		for i := range out {
			out[i] = float32(le.Uint16(raw[2*i:]))
		}
	case "INT16":
		for i := range out {
			out[i] = float32(int16(le.Uint16(raw[2*i:])))
		}
	case "FP16":
		safetensors.DecodeValues(out, raw, "F16")
	case "UINT32":
		for i := range out {
			out[i] = float32(le.Uint32(raw[4*i:]))
		}
	case "INT32":
		for i := range out {
			out[i] = float32(int32(le.Uint32(raw[4*i:])))
		}
	case "FP32":
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case "UINT64":
		for i := range out {
			out[i] = float32(le.Uint64(raw[8*i:]))
		}
	case "INT64":
		for i := range out {
			out[i] = float32(int64(le.Uint64(raw[8*i:])))
		}
	case "FP64":
		for i := range out {
			v := math.Float64frombits(le.Uint64(raw[8*i:]))
			if math.Abs(v) > math.MaxFloat32 && !math.IsInf(v, 0) {
				putFloats(out)
				return nil, badRequest("%s: element %d: %v is outside float32's range, in which the model computes", what, i, v)
			}
			out[i] = float32(v)
		}
	}
	return out, nil
}

// decodeJSONData flattens a JSON tensor "data" field to exactly n float32
// values: flat, or nested in row-major order with every array as long as
// its dimension of dims (so that a ragged nesting whose total happens to
// match is refused). Booleans count as 0/1 for BOOL tensors; strings are
// refused.
func decodeJSONData(what, dt string, data json.RawMessage, dims []int, n int) ([]float32, error) {
	if _, err := elemSize(dt); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// Room for what the bytes can hold (a number and a comma each), not
	// for what the shape claims.
	out := make([]float32, 0, min(n, len(data)/2+1))
	// counts holds, for each array open, the elements seen in it; the
	// first element of the outermost array decides flat or nested.
	var counts []int
	nested, decided := false, false
	element := func(array bool) {
		if len(counts) == 0 {
			return // a bare number, or the outermost array
		}
		if !decided {
			nested, decided = array, true
		}
		counts[len(counts)-1]++
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, badRequest("%s: data: %v", what, err)
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '[':
				depth := len(counts) + 1
				if depth > limits.Nesting {
					return nil, badRequest("%s: data nested deeper than %d (limits.Nesting)", what, limits.Nesting)
				}
				if depth > 1 {
					if decided && !nested {
						return nil, badRequest("%s: data mixes numbers and arrays in its outermost array; want it flat or nested as the shape %v", what, dims)
					}
					if depth > len(dims) {
						return nil, badRequest("%s: data nested %d deep, deeper than its shape %v", what, depth, dims)
					}
				}
				element(true)
				counts = append(counts, 0)
			case ']':
				d := len(counts)
				if nested && counts[d-1] != dims[d-1] {
					return nil, badRequest("%s: an array at depth %d of data holds %d elements; the shape %v wants %d", what, d, counts[d-1], dims, dims[d-1])
				}
				counts = counts[:d-1]
			default:
				return nil, badRequest("%s: data holds an object; want numbers in (nested) arrays", what)
			}
		case json.Number, bool:
			if nested && len(counts) != len(dims) {
				return nil, badRequest("%s: data holds a number at depth %d; its shape %v nests %d deep", what, len(counts), dims, len(dims))
			}
			if len(out) == n {
				return nil, badRequest("%s: data holds more than the %d elements its shape declares", what, n)
			}
			var f float32
			if num, ok := v.(json.Number); ok {
				if f, err = jsonNumberAs(dt, num); err != nil {
					return nil, badRequest("%s: data element %d: %v", what, len(out), err)
				}
			} else {
				if dt != "BOOL" {
					return nil, badRequest("%s: data element %d is a boolean in a %s tensor", what, len(out), dt)
				}
				f = map[bool]float32{false: 0, true: 1}[v.(bool)]
			}
			element(false)
			if nested && len(counts) > 0 && counts[len(counts)-1] > dims[len(counts)-1] {
				return nil, badRequest("%s: an array at depth %d of data holds more than the %d elements the shape %v wants", what, len(counts), dims[len(counts)-1], dims)
			}
			out = append(out, f)
		case nil:
			if len(counts) == 0 {
				return nil, badRequest("%s: data is null; want numbers in (nested) arrays", what)
			}
			return nil, badRequest("%s: data element %d is null; want a number", what, len(out))
		default: // a string, the one token left
			if len(counts) == 0 {
				return nil, badRequest("%s: data is a string; want numbers in (nested) arrays", what)
			}
			return nil, badRequest("%s: data element %d is a string; want a number", what, len(out))
		}
	}
	if len(out) != n {
		return nil, badRequest("%s: data holds %d elements, its shape declares %d", what, len(out), n)
	}
	return out, nil
}

// intRanges are the values of the integer datatypes.
var intRanges = map[string][2]float64{
	"BOOL": {0, 1}, "UINT8": {0, math.MaxUint8}, "INT8": {math.MinInt8, math.MaxInt8},
	"UINT16": {0, math.MaxUint16}, "INT16": {math.MinInt16, math.MaxInt16},
	"UINT32": {0, math.MaxUint32}, "INT32": {math.MinInt32, math.MaxInt32},
	"UINT64": {0, math.MaxUint64}, "INT64": {math.MinInt64, math.MaxInt64},
}

// jsonNumberAs reads a JSON number as a value of datatype dt, converted
// to float32: an integer datatype takes integers in its range (BOOL: 0
// or 1), FP16 and FP32 values within their range, FP64 values within
// float32's (the model computes in float32); anything else is refused,
// naming the value, rather than wrapped or rounded to an infinity.
func jsonNumberAs(dt string, v json.Number) (float32, error) {
	if r, ok := intRanges[dt]; ok {
		if i, err := strconv.ParseInt(v.String(), 10, 64); err == nil { // exact, below 2^63
			if float64(i) < r[0] || float64(i) > r[1] {
				return 0, fmt.Errorf("%s is outside %s's range [%g, %g]", v, dt, r[0], r[1])
			}
			return float32(i), nil
		}
		if u, err := strconv.ParseUint(v.String(), 10, 64); err == nil { // 2^63 and above
			if dt != "UINT64" {
				return 0, fmt.Errorf("%s is outside %s's range [%g, %g]", v, dt, r[0], r[1])
			}
			return float32(u), nil
		}
		f, err := v.Float64()
		// 2^63 − 1 and 2^64 − 1 round up to powers of two as float64: an
		// integer written as 1e19 must stay below them.
		above := f > r[1] || (dt == "INT64" || dt == "UINT64") && f == r[1]
		if err != nil || f != math.Trunc(f) || f < r[0] || above {
			return 0, fmt.Errorf("%s is not an integer in %s's range [%g, %g]", v, dt, r[0], r[1])
		}
		return float32(f), nil
	}
	f, err := v.Float64()
	if err != nil {
		return 0, fmt.Errorf("%s is not a number %s holds", v, dt)
	}
	limit := math.MaxFloat32 // FP32, and FP64 as the model computes it
	if dt == "FP16" {
		limit = 65504
	}
	if math.Abs(f) > limit {
		if dt == "FP64" {
			return 0, fmt.Errorf("%s is outside float32's range, in which the model computes", v)
		}
		return 0, fmt.Errorf("%s is outside %s's range", v, dt)
	}
	return float32(f), nil
}

// outputs computes the requested outputs from a model's logits: names in
// order, each a tensor. Empty want means every output.
func outputs(logits *tensor.Tensor, want []string) ([]string, []*tensor.Tensor, error) {
	if err := checkOutputs(want); err != nil {
		return nil, nil, err
	}
	if len(want) == 0 {
		want = []string{logitsName, probsName}
	}
	var ts []*tensor.Tensor
	for _, w := range want {
		if w == logitsName {
			ts = append(ts, logits)
		} else {
			ts = append(ts, softmaxLast(logits))
		}
	}
	return want, ts, nil
}

// unsupportedParameters are parameters of Triton's extensions that change
// what a request means — classification answers class labels instead of
// the tensor, the shared-memory ones say where the data lies — which the
// server does not implement: ignoring them would answer another question.
var unsupportedParameters = []string{"classification", "shared_memory_region", "shared_memory_byte_size", "shared_memory_offset"}

// checkParameters refuses a request, input or output (where) whose
// parameters ask for an extension the server lacks.
func checkParameters[V any](where string, p map[string]V) error {
	for _, k := range unsupportedParameters {
		if _, ok := p[k]; ok {
			return badRequest("%s: parameter %q (a Triton extension) is not supported by this server", where, k)
		}
	}
	return nil
}

// checkOutputs checks the outputs a request names (none: all of them):
// known, and each named once.
func checkOutputs(want []string) error {
	for i, w := range want {
		if slices.Contains(want[:i], w) {
			return badRequest("output %q is requested twice", clip(w))
		}
		if w != logitsName && w != probsName {
			return badRequest("unknown output %q (the model's outputs: %q, %q)", clip(w), logitsName, probsName)
		}
	}
	return nil
}

// softmaxLast returns the softmax over the last axis (the classes).
func softmaxLast(t *tensor.Tensor) *tensor.Tensor {
	k := t.Shape[len(t.Shape)-1]
	out := tensor.New(t.Shape...)
	for off := 0; off+k <= len(t.Data); off += k {
		row, dst := t.Data[off:off+k], out.Data[off:off+k]
		m := row[0]
		for _, v := range row {
			m = max(m, v)
		}
		var sum float64
		for i, v := range row {
			e := math.Exp(float64(v - m))
			dst[i] = float32(e)
			sum += e
		}
		for i := range dst {
			dst[i] = float32(float64(dst[i]) / sum)
		}
	}
	return out
}

// rawBytes returns a float32 tensor's little-endian bytes.
func rawBytes(t *tensor.Tensor) []byte {
	b := make([]byte, 4*len(t.Data))
	for i, v := range t.Data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// shape64 converts a shape for the protocol.
func shape64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

// finite reports the index of the first NaN or infinite value, or -1.
func finite(xs []float32) int {
	for i, v := range xs {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}

// maxJSONList bounds the elements of a request's JSON lists (inputs,
// outputs, a shape's dimensions: the rank ONNX Runtime allows), and
// maxJSONParams the values of a parameters object, nested ones included:
// a request needs a few; decoded unbounded, each element of
// {"inputs":[{},{},…]} took about 150 bytes for its 3.
const (
	maxJSONList   = 64
	maxJSONParams = 256
)

// jsonList is a JSON array of at most maxJSONList elements, counted
// before it is decoded.
type jsonList[T any] []T

func (l *jsonList[T]) UnmarshalJSON(raw []byte) error {
	if n, _ := jsonCounts(raw); n > maxJSONList {
		return fmt.Errorf("a list (inputs, outputs or shape) of %d elements, more than %d", n, maxJSONList)
	}
	return json.Unmarshal(raw, (*[]T)(l))
}

// jsonParams is a parameters object of at most maxJSONParams values,
// counted before it is decoded.
type jsonParams map[string]any

func (p *jsonParams) UnmarshalJSON(raw []byte) error {
	if *p != nil {
		// encoding/json decodes a key given twice into the same map, which
		// would grow past the bound one occurrence at a time.
		return errors.New("parameters given twice in one object")
	}
	if _, n := jsonCounts(raw); n > maxJSONParams {
		return fmt.Errorf("parameters of about %d values, more than %d", n, maxJSONParams)
	}
	return json.Unmarshal(raw, (*map[string]any)(p))
}

// jsonCounts returns the elements (or members) of raw's outermost array
// (or object), and its containers and commas at any depth (at least the
// values less each non-empty container's first, which follows no comma;
// at most twice the values), without allocating. raw is valid JSON, as
// encoding/json hands it to UnmarshalJSON.
func jsonCounts(raw []byte) (top, values int) {
	depth, inString, escaped, nonEmpty := 0, false, false, false
	for _, c := range raw {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r', ':':
			continue
		case ']', '}':
			depth--
			continue
		case ',':
			values++
			if depth == 1 {
				top++
			}
			continue
		}
		if depth == 1 {
			nonEmpty = true // a value (or a key) inside the outermost container
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			values++
		}
	}
	if nonEmpty {
		top++
	}
	return top, values
}
