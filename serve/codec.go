package serve

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/limits"
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
	return 0, badRequest("unknown datatype %q (known: BOOL, UINT8/16/32/64, INT8/16/32/64, FP16, FP32, FP64)", dt)
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
	case "BOOL", "UINT8":
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
		for i := range out {
			out[i] = halfToFloat(le.Uint16(raw[2*i:]))
		}
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
			out[i] = float32(math.Float64frombits(le.Uint64(raw[8*i:])))
		}
	}
	return out, nil
}

// halfToFloat converts an IEEE 754 binary16 value to float32 exactly.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac × 2^-24
		v := float32(frac) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// decodeJSONData flattens a JSON tensor "data" field, flat or nested in
// row-major order, to exactly n float32 values. Booleans count as 0/1 for
// BOOL tensors; strings are refused.
func decodeJSONData(what, dt string, data json.RawMessage, n int) ([]float32, error) {
	if _, err := elemSize(dt); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	out := make([]float32, 0, n)
	depth := 0
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
			if v == '[' {
				if depth++; depth > limits.Nesting {
					return nil, badRequest("%s: data nested deeper than %d (limits.Nesting)", what, limits.Nesting)
				}
			} else if v == ']' {
				depth--
			} else {
				return nil, badRequest("%s: data holds an object; want numbers in (nested) arrays", what)
			}
		case json.Number:
			if len(out) == n {
				return nil, badRequest("%s: data holds more than the %d elements its shape declares", what, n)
			}
			f, err := jsonNumberAs(dt, v)
			if err != nil {
				return nil, badRequest("%s: data element %d: %v", what, len(out), err)
			}
			out = append(out, f)
		case bool:
			if dt != "BOOL" {
				return nil, badRequest("%s: data element %d is a boolean in a %s tensor", what, len(out), dt)
			}
			if len(out) == n {
				return nil, badRequest("%s: data holds more than the %d elements its shape declares", what, n)
			}
			out = append(out, map[bool]float32{false: 0, true: 1}[v])
		default:
			return nil, badRequest("%s: data element %d is %T; want a number", what, len(out), tok)
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
	if len(want) == 0 {
		want = []string{logitsName, probsName}
	}
	var ts []*tensor.Tensor
	for i, w := range want {
		if slices.Contains(want[:i], w) {
			return nil, nil, badRequest("output %q is requested twice", w)
		}
		switch w {
		case logitsName:
			ts = append(ts, logits)
		case probsName:
			ts = append(ts, softmaxLast(logits))
		default:
			return nil, nil, badRequest("unknown output %q (the model's outputs: %q, %q)", w, logitsName, probsName)
		}
	}
	return want, ts, nil
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
