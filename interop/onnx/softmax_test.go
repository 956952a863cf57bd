package onnx

import (
	"math"
	"strings"
	"testing"

	"github.com/residual-nn/residual/tensor"
)

// Softmax and LogSoftmax before opset 13 coerce the input to 2-D at axis,
// 1 unless given, and an explicit -1 (as tf2onnx writes it) is the last
// axis; from opset 13 on the softmax is along axis, the last unless given
// (the operator's versions 1, 11 and 13 in ONNX's Operators.md). The
// expected values are computed here in float64 from that definition: on
// a [1,2,3] input of 1…6, the last axis makes two rows of 3 and axis 1 one
// row of 6. (An explicit -1 before 13 was taken for the default, 1.)
func TestSoftmaxAxis(t *testing.T) {
	rows := func(n int) []float64 { // softmax of 1…6 in rows of n
		out := make([]float64, 6)
		for r := 0; r < 6; r += n {
			var s float64
			for i := r; i < r+n; i++ {
				s += math.Exp(float64(i + 1))
			}
			for i := r; i < r+n; i++ {
				out[i] = math.Exp(float64(i+1)) / s
			}
		}
		return out
	}
	ptr := func(v int64) *int64 { return &v }
	for _, c := range []struct {
		opset int64
		axis  *int64
		n     int // row length
	}{
		{11, nil, 6}, {11, ptr(-1), 3}, {11, ptr(2), 3}, {11, ptr(1), 6}, {11, ptr(0), 6}, {11, ptr(-2), 6},
		{13, nil, 3}, {13, ptr(-1), 3}, {13, ptr(2), 3},
	} {
		for _, log := range []bool{false, true} {
			op := "Softmax"
			if log {
				op = "LogSoftmax"
			}
			n := node(op, []string{"x"}, []string{"y"})
			if c.axis != nil {
				n.Attribute = append(n.Attribute, iattr("axis", *c.axis))
			}
			axis := any("default")
			if c.axis != nil {
				axis = *c.axis
			}
			y := runSoftmax(t, graph(c.opset, nil, n), 1, 2, 3)
			for i, want := range rows(c.n) {
				if log {
					want = math.Log(want)
				}
				// float32 softmax: a few ulps of values ≤ 6 in magnitude.
				if math.Abs(float64(y[i])-want) > 1e-6*max(1, math.Abs(want)) {
					t.Errorf("%s-%d, axis %v: y[%d] = %g; want %g (rows of %d)", op, c.opset, axis, i, y[i], want, c.n)
				}
			}
		}
	}
	for _, c := range []struct {
		opset, axis int64
	}{{11, 3}, {11, -4}, {13, 3}, {13, -4}} {
		m, err := Parse(graph(c.opset, nil, node("Softmax", []string{"x"}, []string{"y"}, iattr("axis", c.axis))))
		if err == nil {
			_, err = m.Run(map[string]*tensor.Tensor{"x": tensor.New(1, 2, 3)})
		}
		if err == nil || !strings.Contains(err.Error(), "axis") {
			t.Errorf("Softmax-%d axis %d on rank 3: %v; want an error naming the axis", c.opset, c.axis, err)
		}
	}
}

// runSoftmax runs a graph of input "x" (1, 2, … in the given shape) and
// returns output "y".
func runSoftmax(t *testing.T, b []byte, shape ...int) []float32 {
	t.Helper()
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.New(shape...)
	for i := range x.Data {
		x.Data[i] = float32(i + 1)
	}
	out, err := m.Run(map[string]*tensor.Tensor{"x": x})
	if err != nil {
		t.Fatal(err)
	}
	return out["y"].Data
}
