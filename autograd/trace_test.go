package autograd_test

import (
	"fmt"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/tensor"
)

// TestTraceRecords runs every traced operation on a shape tape with a
// tracer and checks the record each one leaves: its kind, its inputs in
// argument order (absent ones nil), its output, and attributes of the type
// its OpKind documents carrying the call's parameters. Every kind of
// OpKinds must be reached.
func TestTraceRecords(t *testing.T) {
	tp := ag.NewShapeTape()
	var got []ag.Op
	tp.SetTracer(func(op ag.Op) { got = append(got, op) })
	img := tp.Placeholder(2, 8, 8, 3)
	w := ag.Constant(tensor.New(3, 3, 3, 4))
	wt := ag.Constant(tensor.New(2, 2, 4, 3))
	bias := ag.Constant(tensor.New(4))
	mat := tp.Placeholder(2, 5)
	mean, variance := tensor.New(3), tensor.New(3)
	one := [2]int{1, 1}
	cp := ag.ConvParams{Stride: one, Dilation: one, Pad: ag.SymmetricPad(1, 1)}
	tcp := ag.ConvParams{Stride: [2]int{2, 2}, Dilation: one}
	bp := ag.BatchNormParams{Momentum: 0.1, Eps: 1e-5}
	pp := ag.PoolParams{Kernel: [2]int{2, 2}, Stride: [2]int{2, 2}, Dilation: one}
	pads := [][2]int{{0, 0}, {1, 1}, {2, 0}, {0, 0}}
	type want struct {
		kind   ag.OpKind
		inputs []*ag.Value
		attrs  ag.OpAttrs
	}
	cases := []struct {
		run  func() *ag.Value
		want want
	}{
		{func() *ag.Value { return ag.Conv2d(img, w, bias, cp) }, want{ag.OpConv2d, []*ag.Value{img, w, bias}, cp}},
		{func() *ag.Value { return ag.ConvTranspose2d(img, wt, nil, tcp) }, want{ag.OpConvTranspose2d, []*ag.Value{img, wt, nil}, tcp}},
		{func() *ag.Value { return ag.BatchNorm(img, nil, nil, mean, variance, bp) },
			want{ag.OpBatchNorm, []*ag.Value{img, nil, nil}, ag.BatchNormAttrs{BatchNormParams: bp, RunMean: mean, RunVar: variance}}},
		{func() *ag.Value { return ag.MaxPool2d(img, pp) }, want{ag.OpMaxPool2d, []*ag.Value{img}, pp}},
		{func() *ag.Value { return ag.AvgPool2d(img, pp) }, want{ag.OpAvgPool2d, []*ag.Value{img}, pp}},
		{func() *ag.Value { return ag.GlobalAvgPool(img) }, want{ag.OpGlobalAvgPool, []*ag.Value{img}, nil}},
		{func() *ag.Value { return ag.Gemm(mat, mat, nil, 2, 0, false, true) },
			want{ag.OpGemm, []*ag.Value{mat, mat, nil}, ag.GemmAttrs{Alpha: 2, TransB: true}}},
		{func() *ag.Value { return ag.Linear(mat, mat, nil) }, want{ag.OpGemm, []*ag.Value{mat, mat, nil}, ag.GemmAttrs{Alpha: 1, Beta: 1, TransB: true}}},
		{func() *ag.Value { return ag.MatMul(mat, ag.Constant(tensor.New(5, 2))) }, want{ag.OpMatMul, nil, nil}},
		{func() *ag.Value { return ag.ReLU(img) }, want{ag.OpReLU, []*ag.Value{img}, nil}},
		{func() *ag.Value { return ag.Add(img, img) }, want{ag.OpAdd, []*ag.Value{img, img}, nil}},
		{func() *ag.Value { return ag.AddRouted(img, img, true, false) }, want{ag.OpAdd, []*ag.Value{img, img}, nil}},
		{func() *ag.Value { return ag.Mul(img, img) }, want{ag.OpMul, []*ag.Value{img, img}, nil}},
		{func() *ag.Value { return ag.Scale(img, 0.5) }, want{ag.OpScale, []*ag.Value{img}, ag.ScaleAttrs{Factor: 0.5}}},
		{func() *ag.Value { return ag.Sum(img) }, want{ag.OpSum, []*ag.Value{img}, nil}},
		{func() *ag.Value { return ag.Flatten(img, 1) }, want{ag.OpReshape, []*ag.Value{img}, nil}},
		{func() *ag.Value { return ag.Softmax(img, -1) }, want{ag.OpSoftmax, []*ag.Value{img}, ag.AxisAttrs{Axis: 3}}},
		{func() *ag.Value { return ag.LogSoftmax(mat, 1) }, want{ag.OpLogSoftmax, []*ag.Value{mat}, ag.AxisAttrs{Axis: 1}}},
		{func() *ag.Value { return ag.Concat(-1, img, img) }, want{ag.OpConcat, []*ag.Value{img, img}, ag.AxisAttrs{Axis: 3}}},
		{func() *ag.Value { return ag.CenterCrop(img, 4, 6) }, want{ag.OpCrop, []*ag.Value{img}, ag.CropAttrs{Top: 2, Left: 1, Height: 4, Width: 6}}},
		{func() *ag.Value { return ag.Pad(img, pads, ag.PadReflect, 0) }, want{ag.OpPad, []*ag.Value{img}, ag.PadAttrs{Pads: pads, Mode: ag.PadReflect}}},
		{func() *ag.Value { return ag.SubsamplePadChannels(img, 2, 1, 2) },
			want{ag.OpSubsamplePadChannels, []*ag.Value{img}, ag.SubsamplePadAttrs{Stride: 2, Before: 1, After: 2}}},
	}
	seen := map[ag.OpKind]bool{}
	for _, c := range cases {
		got = got[:0]
		y := c.run()
		if len(got) != 1 {
			t.Errorf("%s: %d records, want 1", c.want.kind, len(got))
			continue
		}
		op := got[0]
		seen[op.Kind] = true
		if op.Kind != c.want.kind || op.Output != y {
			t.Errorf("%s: record of kind %s, output %p (the call returned %p)", c.want.kind, op.Kind, op.Output, y)
		}
		if c.want.inputs != nil && fmt.Sprint(op.Inputs) != fmt.Sprint(c.want.inputs) {
			t.Errorf("%s: inputs %v, want %v", c.want.kind, op.Inputs, c.want.inputs)
		}
		if fmt.Sprintf("%T %+v", op.Attrs, op.Attrs) != fmt.Sprintf("%T %+v", c.want.attrs, c.want.attrs) {
			t.Errorf("%s: attributes %T %+v, want %T %+v", c.want.kind, op.Attrs, op.Attrs, c.want.attrs, c.want.attrs)
		}
	}
	for _, k := range ag.OpKinds() {
		if !seen[k] {
			t.Errorf("no case traces %s", k)
		}
	}
	if len(seen) != len(ag.OpKinds()) {
		t.Errorf("traced %d kinds, OpKinds lists %d", len(seen), len(ag.OpKinds()))
	}
}
