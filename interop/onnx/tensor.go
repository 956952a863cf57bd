package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

// value is a tensor flowing through a graph: float32 data (images possibly
// stored NHWC) or int64 data (shapes, pads).
type value struct {
	f     *tensor.Tensor
	nhwc  bool // f is a 4-D image stored NHWC (its ONNX shape is NCHW)
	ints  []int64
	shape []int // for ints
	isInt bool
}

func floatValue(t *tensor.Tensor) *value { return &value{f: t} }

// elements returns how many elements v holds.
func (v *value) elements() int64 {
	if v.isInt {
		return int64(len(v.ints))
	}
	return int64(len(v.f.Data))
}

// onnxShape is the shape as ONNX sees it.
func (v *value) onnxShape() []int {
	if v.isInt {
		return v.shape
	}
	if v.nhwc {
		s := v.f.Shape
		return []int{s[0], s[3], s[1], s[2]}
	}
	return v.f.Shape
}

// nchw returns the data in ONNX's layout.
func (v *value) nchw() *tensor.Tensor {
	if v.nhwc {
		return tensor.NHWCToNCHW(v.f)
	}
	return v.f
}

// image returns the data as an NHWC image; it must be 4-D.
func (v *value) image(op string) (*tensor.Tensor, error) {
	if v.isInt {
		return nil, fmt.Errorf("%s: integer input where an image was expected", op)
	}
	if v.nhwc {
		return v.f, nil
	}
	if v.f.Rank() != 4 {
		return nil, fmt.Errorf("%s: needs a 4-D (NCHW) input, got shape %v; only 2-D spatial operations are supported", op, v.f.Shape)
	}
	return tensor.NCHWToNHWC(v.f), nil
}

// decodeTensor converts a TensorProto to a value. FLOAT, DOUBLE (narrowed)
// and INT64/INT32 are supported; other types are reported by name.
func decodeTensor(tp *onnxpb.TensorProto) (*value, error) { return decodeTensorOf(tp, false) }

// decodeTensorOf is decodeTensor, and with eightBit it decodes INT8 and
// UINT8 too, as integers (a QDQ model's quantized data, which the float
// evaluator does not take: its uint8 arithmetic would not wrap).
func decodeTensorOf(tp *onnxpb.TensorProto, eightBit bool) (*value, error) {
	if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return nil, fmt.Errorf("tensor %q: external data is not supported", tp.GetName())
	}
	if len(tp.Dims) > maxRank {
		return nil, fmt.Errorf("tensor %q: rank %d, more than %d", tp.GetName(), len(tp.Dims), maxRank)
	}
	shape := make([]int, len(tp.Dims))
	for i, d := range tp.Dims {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("tensor %q: bad dimension %d", tp.GetName(), d)
		}
		shape[i] = int(d)
	}
	if err := limits.CheckElements(fmt.Sprintf("tensor %q", tp.GetName()), shape...); err != nil {
		return nil, err
	}
	n := tensor.NumElements(shape)
	raw := tp.GetRawData()
	dt := onnxpb.TensorProto_DataType(tp.GetDataType())
	// Check the amount of data against the shape before allocating, so a
	// corrupt shape cannot ask for gigabytes.
	if have := len(raw) + 8*(len(tp.FloatData)+len(tp.DoubleData)+len(tp.Int64Data)+len(tp.Int32Data)); have < n {
		return nil, fmt.Errorf("tensor %q: shape %v needs %d values, the data holds at most %d", tp.GetName(), shape, n, have)
	}
	switch dt {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_DOUBLE:
		t := tensor.New(shape...)
		switch {
		case len(raw) > 0 && dt == onnxpb.TensorProto_FLOAT:
			if len(raw) != 4*n {
				return nil, fmt.Errorf("tensor %q: %d raw bytes for %d floats", tp.GetName(), len(raw), n)
			}
			for i := range t.Data {
				t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		case len(raw) > 0:
			if len(raw) != 8*n {
				return nil, fmt.Errorf("tensor %q: %d raw bytes for %d doubles", tp.GetName(), len(raw), n)
			}
			for i := range t.Data {
				t.Data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
			}
		case dt == onnxpb.TensorProto_FLOAT:
			if len(tp.FloatData) != n {
				return nil, fmt.Errorf("tensor %q: %d values for shape %v", tp.GetName(), len(tp.FloatData), shape)
			}
			copy(t.Data, tp.FloatData)
		default:
			if len(tp.DoubleData) != n {
				return nil, fmt.Errorf("tensor %q: %d values for shape %v", tp.GetName(), len(tp.DoubleData), shape)
			}
			for i, v := range tp.DoubleData {
				t.Data[i] = float32(v)
			}
		}
		return floatValue(t), nil
	case onnxpb.TensorProto_INT8, onnxpb.TensorProto_UINT8:
		if !eightBit {
			break
		}
		// Quantized data (QDQ models): raw bytes, or one value per
		// int32_data entry.
		v := &value{isInt: true, shape: shape, ints: make([]int64, n)}
		switch {
		case len(raw) > 0:
			if len(raw) != n {
				return nil, fmt.Errorf("tensor %q: %d raw bytes for %d 8-bit integers", tp.GetName(), len(raw), n)
			}
			for i, b := range raw {
				if dt == onnxpb.TensorProto_INT8 {
					v.ints[i] = int64(int8(b))
				} else {
					v.ints[i] = int64(b)
				}
			}
		case len(tp.Int32Data) == n:
			lo, hi := int32(0), int32(255)
			if dt == onnxpb.TensorProto_INT8 {
				lo, hi = -128, 127
			}
			for i, x := range tp.Int32Data {
				if x < lo || x > hi {
					return nil, fmt.Errorf("tensor %q: %d is not a %s value", tp.GetName(), x, dt)
				}
				v.ints[i] = int64(x)
			}
		default:
			return nil, fmt.Errorf("tensor %q: wrong number of integers for shape %v", tp.GetName(), shape)
		}
		return v, nil
	case onnxpb.TensorProto_INT64, onnxpb.TensorProto_INT32:
		v := &value{isInt: true, shape: shape, ints: make([]int64, n)}
		size := 8
		if dt == onnxpb.TensorProto_INT32 {
			size = 4
		}
		switch {
		case len(raw) > 0:
			if len(raw) != size*n {
				return nil, fmt.Errorf("tensor %q: %d raw bytes for %d integers", tp.GetName(), len(raw), n)
			}
			for i := range v.ints {
				if size == 8 {
					v.ints[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
				} else {
					v.ints[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
				}
			}
		case dt == onnxpb.TensorProto_INT64 && len(tp.Int64Data) == n:
			copy(v.ints, tp.Int64Data)
		case dt == onnxpb.TensorProto_INT32 && len(tp.Int32Data) == n:
			for i, x := range tp.Int32Data {
				v.ints[i] = int64(x)
			}
		default:
			return nil, fmt.Errorf("tensor %q: wrong number of integers for shape %v", tp.GetName(), shape)
		}
		return v, nil
	}
	if dt == onnxpb.TensorProto_UINT8 || dt == onnxpb.TensorProto_INT8 {
		return nil, fmt.Errorf("tensor %q: data type %s is not supported (residual computes in float32; an int8 QDQ model is read by ImportInt8, or residual import onnx)", tp.GetName(), dt)
	}
	return nil, fmt.Errorf("tensor %q: data type %s is not supported (residual computes in float32)", tp.GetName(), dt)
}

// encodeTensor returns a FLOAT TensorProto with raw little-endian data.
func encodeTensor(name string, t *tensor.Tensor) *onnxpb.TensorProto {
	dims := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = int64(d)
	}
	raw := make([]byte, 4*len(t.Data))
	for i, v := range t.Data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	dt := int32(onnxpb.TensorProto_FLOAT)
	return &onnxpb.TensorProto{Name: &name, Dims: dims, DataType: &dt, RawData: raw}
}
