package onnx

import (
	"fmt"
	"math"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/internal/onnxpb"
	"github.com/residual-nn/residual/limits"
	"github.com/residual-nn/residual/tensor"
)

type opFunc func(m *Model, a attrMap, args []*value) ([]*value, error)

// operators maps ONNX operator names to their implementations on the engine.
var operators map[string]opFunc

func init() {
	operators = map[string]opFunc{
		"Conv":               opConv,
		"ConvTranspose":      opConvTranspose,
		"BatchNormalization": opBatchNorm,
		"Relu":               opRelu,
		"Add":                opAdd,
		"MaxPool":            opMaxPool,
		"AveragePool":        opAvgPool,
		"GlobalAveragePool":  opGlobalAvgPool,
		"Gemm":               opGemm,
		"MatMul":             opMatMul,
		"Flatten":            opFlatten,
		"Reshape":            opReshape,
		"Concat":             opConcat,
		"Softmax":            softmaxOp(false),
		"LogSoftmax":         softmaxOp(true),
		"Pad":                opPad,
		"Slice":              opSlice,
		"Mul":                opMul,
		"Transpose":          opTranspose,
		"Constant":           opConstant,
		"ReduceSum":          opReduceSum,
		// Shape arithmetic, as torch.onnx.export writes it for a crop whose
		// size depends on the input (integer tensors only).
		"Shape":     opShape,
		"Gather":    opGather,
		"Sub":       intArith("Sub", func(a, b int64) (int64, error) { return a - b, nil }),
		"Div":       intArith("Div", intDiv),
		"Cast":      opCast,
		"Unsqueeze": opUnsqueeze,
		"Identity":  func(_ *Model, _ attrMap, args []*value) ([]*value, error) { return args[:1], nil },
	}
}

func need(args []*value, n int, op string) error {
	if len(args) < n {
		return fmt.Errorf("%s needs %d inputs, got %d", op, n, len(args))
	}
	for i := 0; i < n; i++ {
		if args[i] == nil {
			return fmt.Errorf("%s: input %d is missing", op, i)
		}
	}
	return nil
}

func floats(v *value, op string) (*tensor.Tensor, error) {
	if v.isInt {
		return nil, fmt.Errorf("%s: integer input where floats were expected", op)
	}
	return v.nchw(), nil
}

// atLeastOne checks that strides s and dilations d are at least 1 (the
// engine would read 0 as 1, or a pooling's stride 0 as its kernel, and
// SAME padding would divide by it); ONNX Runtime refuses them.
func atLeastOne(op string, s, d []int) error {
	for _, c := range []struct {
		name string
		v    []int
	}{{"strides", s}, {"dilations", d}} {
		for _, x := range c.v {
			if x < 1 {
				return fmt.Errorf("%s: %s %v: each must be at least 1", op, c.name, c.v)
			}
		}
	}
	return nil
}

// geometry resolves strides, dilations and padding (auto_pad included) of
// a 2-D spatial operator over an input of height h and width w.
func geometry(op string, a attrMap, k [2]int, h, w int) (stride, dil [2]int, pad [4]int, err error) {
	s := a.ints("strides", []int{1, 1})
	d := a.ints("dilations", []int{1, 1})
	p := a.ints("pads", []int{0, 0, 0, 0})
	if len(s) != 2 || len(d) != 2 || len(p) != 4 {
		return stride, dil, pad, fmt.Errorf("%s: only 2-D spatial attributes are supported (strides %v, dilations %v, pads %v)", op, s, d, p)
	}
	if err := atLeastOne(op, s, d); err != nil {
		return stride, dil, pad, err
	}
	stride, dil, pad = [2]int{s[0], s[1]}, [2]int{d[0], d[1]}, [4]int{p[0], p[1], p[2], p[3]}
	switch ap := a.str("auto_pad", "NOTSET"); ap {
	case "NOTSET":
	case "VALID":
		pad = [4]int{}
	case "SAME_UPPER", "SAME_LOWER":
		lower := ap == "SAME_LOWER"
		pad[0], pad[2] = ag.SamePad(h, k[0], stride[0], dil[0], lower)
		pad[1], pad[3] = ag.SamePad(w, k[1], stride[1], dil[1], lower)
	default:
		return stride, dil, pad, fmt.Errorf("%s: unknown auto_pad %q", op, ap)
	}
	return stride, dil, pad, nil
}

func opConv(_ *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 2, "Conv"); err != nil {
		return nil, err
	}
	if g := a.int("group", 1); g != 1 {
		return nil, fmt.Errorf("Conv: group %d is not supported (only 1)", g)
	}
	x, err := args[0].image("Conv")
	if err != nil {
		return nil, err
	}
	w, err := floats(args[1], "Conv")
	if err != nil || w.Rank() != 4 {
		return nil, fmt.Errorf("Conv: weight must be a 4-D float tensor, got %v", args[1].onnxShape())
	}
	stride, dil, pad, err := geometry("Conv", a, [2]int{w.Shape[2], w.Shape[3]}, x.Shape[1], x.Shape[2])
	if err != nil {
		return nil, err
	}
	var b *ag.Value
	if len(args) > 2 && args[2] != nil {
		bt, err := floats(args[2], "Conv")
		if err != nil {
			return nil, err
		}
		b = ag.Constant(bt)
	}
	y := ag.Conv2d(ag.Constant(x), ag.Constant(tensor.OIHWToHWIO(w)), b, ag.ConvParams{Stride: stride, Dilation: dil, Pad: pad})
	return []*value{{f: y.Data, nhwc: true}}, nil
}

func opConvTranspose(_ *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 2, "ConvTranspose"); err != nil {
		return nil, err
	}
	if g := a.int("group", 1); g != 1 {
		return nil, fmt.Errorf("ConvTranspose: group %d is not supported (only 1)", g)
	}
	x, err := args[0].image("ConvTranspose")
	if err != nil {
		return nil, err
	}
	w, err := floats(args[1], "ConvTranspose")
	if err != nil || w.Rank() != 4 {
		return nil, fmt.Errorf("ConvTranspose: weight must be a 4-D float tensor, got %v", args[1].onnxShape())
	}
	prm, err := convTransposeParams(a, [2]int{x.Shape[1], x.Shape[2]}, [2]int{w.Shape[2], w.Shape[3]})
	if err != nil {
		return nil, err
	}
	var b *ag.Value
	if len(args) > 2 && args[2] != nil {
		bt, err := floats(args[2], "ConvTranspose")
		if err != nil {
			return nil, err
		}
		b = ag.Constant(bt)
	}
	y := ag.ConvTranspose2d(ag.Constant(x), ag.Constant(tensor.IOHWToHWOI(w)), b, prm)
	return []*value{{f: y.Data, nhwc: true}}, nil
}

// convTransposeParams resolves ConvTranspose's attributes (output_shape
// and auto_pad included) for an input of in = (H, W) and a kernel k.
func convTransposeParams(a attrMap, in, k [2]int) (ag.ConvParams, error) {
	s := a.ints("strides", []int{1, 1})
	d := a.ints("dilations", []int{1, 1})
	p := a.ints("pads", []int{0, 0, 0, 0})
	op := a.ints("output_padding", []int{0, 0})
	if len(s) != 2 || len(d) != 2 || len(p) != 4 || len(op) != 2 {
		return ag.ConvParams{}, fmt.Errorf("ConvTranspose: only 2-D spatial attributes are supported")
	}
	if err := atLeastOne("ConvTranspose", s, d); err != nil {
		return ag.ConvParams{}, err
	}
	if op[0] < 0 || op[1] < 0 { // even where output_shape would make up for it
		return ag.ConvParams{}, fmt.Errorf("ConvTranspose: output_padding %v: each must be at least 0", op)
	}
	prm := ag.ConvParams{Stride: [2]int{s[0], s[1]}, Dilation: [2]int{d[0], d[1]}, Pad: [4]int{p[0], p[1], p[2], p[3]}, OutputPadding: [2]int{op[0], op[1]}}
	outShape := a.ints("output_shape", nil)
	autoPad := a.str("auto_pad", "NOTSET")
	if len(outShape) > 2 {
		outShape = outShape[len(outShape)-2:]
	}
	if len(outShape) == 1 {
		return ag.ConvParams{}, fmt.Errorf("ConvTranspose: output_shape %v has one dimension", outShape)
	}
	if outShape == nil && (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
		outShape = []int{in[0] * s[0], in[1] * s[1]}
	}
	if outShape != nil {
		// ONNX: total_padding = stride·(in−1) + output_padding + (k−1)·d + 1 − out,
		// split with the odd half at the end (SAME_UPPER, the default) or the
		// start (SAME_LOWER); a negative total grows the output at the end.
		for i := range 2 {
			total := s[i]*(in[i]-1) + op[i] + (k[i]-1)*d[i] + 1 - outShape[i]
			if total < 0 {
				// Rows past the input's reach, as output padding: PyTorch
				// and ONNX Runtime take fewer than max(stride, dilation).
				// An output_padding already past that is its own fault.
				if op[i] >= max(s[i], d[i]) {
					return ag.ConvParams{}, fmt.Errorf("ConvTranspose: output_padding %v in spatial dimension %d: %d is not smaller than the larger of the stride %d and the dilation %d",
						op, i, op[i], s[i], d[i])
				}
				if op[i]-total >= max(s[i], d[i]) {
					return ag.ConvParams{}, fmt.Errorf("ConvTranspose: output_shape %v is %d past the %d that the input gives in spatial dimension %d: with output_padding %d, at most %d (max(stride %d, dilation %d) − 1)",
						outShape, -total, outShape[i]+total, i, op[i], max(s[i], d[i])-1-op[i], s[i], d[i])
				}
				prm.OutputPadding[i] = op[i] - total
				prm.Pad[i], prm.Pad[i+2] = 0, 0
				continue
			}
			if autoPad == "SAME_LOWER" {
				prm.Pad[i], prm.Pad[i+2] = total-total/2, total/2
			} else {
				prm.Pad[i], prm.Pad[i+2] = total/2, total-total/2
			}
		}
	} else if autoPad == "VALID" {
		prm.Pad = [4]int{}
	}
	return prm, nil
}

func opBatchNorm(m *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 5, "BatchNormalization"); err != nil {
		return nil, err
	}
	var x *tensor.Tensor
	var err error
	nhwc := false
	switch r := len(args[0].onnxShape()); r {
	case 4:
		x, err = args[0].image("BatchNormalization")
		nhwc = true
	case 2:
		x, err = floats(args[0], "BatchNormalization")
	default:
		return nil, fmt.Errorf("BatchNormalization: rank-%d input not supported (2 or 4)", r)
	}
	if err != nil {
		return nil, err
	}
	ps := make([]*tensor.Tensor, 4)
	for i := range ps {
		if ps[i], err = floats(args[i+1], "BatchNormalization"); err != nil {
			return nil, err
		}
	}
	eps := float64(a.float("epsilon", 1e-5))
	if a.int("training_mode", 0) == 0 {
		y := ag.BatchNorm(ag.Constant(x), ag.Constant(ps[0]), ag.Constant(ps[1]), ps[2], ps[3], ag.BatchNormParams{Eps: eps})
		return []*value{{f: y.Data, nhwc: nhwc}}, nil
	}
	// Training mode: normalise with the batch statistics; ONNX's running
	// statistics are input·momentum + batch·(1−momentum) with the
	// population (biased) variance, which differs from PyTorch's rule, so
	// they are computed here from the batch.
	y := ag.BatchNorm(ag.Constant(x), ag.Constant(ps[0]), ag.Constant(ps[1]), nil, nil, ag.BatchNormParams{Training: true, Eps: eps})
	mom := float64(a.float("momentum", 0.9))
	c := x.Shape[x.Rank()-1]
	rows := x.Len() / c
	mean, sq := make([]float64, c), make([]float64, c)
	for i := 0; i < rows; i++ {
		for j, v := range x.Data[i*c : (i+1)*c] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(rows)
	}
	for i := 0; i < rows; i++ {
		for j, v := range x.Data[i*c : (i+1)*c] {
			d := float64(v) - mean[j]
			sq[j] += d * d
		}
	}
	rm, rv := tensor.New(c), tensor.New(c)
	for j := 0; j < c; j++ {
		rm.Data[j] = float32(float64(ps[2].Data[j])*mom + mean[j]*(1-mom))
		rv.Data[j] = float32(float64(ps[3].Data[j])*mom + sq[j]/float64(rows)*(1-mom))
	}
	return []*value{{f: y.Data, nhwc: nhwc}, floatValue(rm), floatValue(rv)}, nil
}

func opRelu(_ *Model, _ attrMap, args []*value) ([]*value, error) {
	if err := need(args, 1, "Relu"); err != nil {
		return nil, err
	}
	if args[0].isInt {
		return nil, fmt.Errorf("Relu: integer input not supported")
	}
	y := ag.ReLU(ag.Constant(args[0].f))
	return []*value{{f: y.Data, nhwc: args[0].nhwc}}, nil
}

// opReduceSum sums over every axis (what residual's exporter writes for
// autograd.Sum); a reduction over some of the axes is refused by name.
// Axes come from the second input (opset 13) or the attribute (before).
func opReduceSum(_ *Model, at attrMap, args []*value) ([]*value, error) {
	if err := need(args, 1, "ReduceSum"); err != nil {
		return nil, err
	}
	x := args[0]
	if x.isInt {
		return nil, fmt.Errorf("ReduceSum: integer input not supported")
	}
	axes := at.ints("axes", nil)
	if len(args) > 1 && args[1] != nil {
		if !args[1].isInt {
			return nil, fmt.Errorf("ReduceSum: axes must be an integer tensor")
		}
		axes = axes[:0]
		for _, a := range args[1].ints {
			axes = append(axes, int(a))
		}
	}
	shape := x.onnxShape()
	if len(axes) == 0 && at.int("noop_with_empty_axes", 0) != 0 {
		return args[:1], nil
	}
	if len(axes) > 0 {
		seen := map[int]bool{}
		for _, a := range axes {
			if a < -len(shape) || a >= len(shape) {
				return nil, fmt.Errorf("ReduceSum: axis %d out of range for rank %d", a, len(shape))
			}
			seen[(a+len(shape))%len(shape)] = true
		}
		if len(seen) != len(shape) {
			return nil, fmt.Errorf("ReduceSum over axes %v of a rank-%d input: only a sum over every axis is supported", axes, len(shape))
		}
	}
	y := ag.Sum(ag.Constant(x.f)).Data
	if at.int("keepdims", 1) != 0 {
		ones := make([]int, len(shape))
		for i := range ones {
			ones[i] = 1
		}
		y = y.Reshape(ones...)
	}
	return []*value{floatValue(y)}, nil
}

func opAdd(m *Model, at attrMap, args []*value) ([]*value, error) {
	if err := need(args, 2, "Add"); err != nil {
		return nil, err
	}
	a, b := args[0], args[1]
	if a.isInt && b.isInt {
		return intArith("Add", func(a, b int64) (int64, error) { return a + b, nil })(m, at, args)
	}
	if a.isInt || b.isInt {
		return nil, fmt.Errorf("Add: integer inputs not supported")
	}
	if !tensor.SameShape(a.onnxShape(), b.onnxShape()) {
		return nil, fmt.Errorf("Add: shapes %v and %v differ; broadcasting is not supported", a.onnxShape(), b.onnxShape())
	}
	if a.nhwc || b.nhwc {
		x, _ := a.image("Add")
		y, _ := b.image("Add")
		return []*value{{f: ag.Add(ag.Constant(x), ag.Constant(y)).Data, nhwc: true}}, nil
	}
	return []*value{floatValue(ag.Add(ag.Constant(a.f), ag.Constant(b.f)).Data)}, nil
}

// poolShape reads a MaxPool's or AveragePool's attributes as the kernels'
// geometry for an NHWC input of shape xs. ONNX takes pads up to the
// kernel's size less one, as ONNX Runtime does (its own conformance cases
// test_maxpool_2d_pads and test_averagepool_2d_pads pad a 3×3 kernel by 2),
// past the half of the window that autograd's pools take from PyTorch, so
// the importer runs the pooling kernels itself.
func poolShape(op string, a attrMap, xs []int) (kernels.PoolShape, error) {
	k := a.ints("kernel_shape", nil)
	if len(k) != 2 {
		return kernels.PoolShape{}, fmt.Errorf("%s: kernel_shape %v; only 2-D pooling is supported", op, k)
	}
	stride, dil, pad, err := geometry(op, a, [2]int{k[0], k[1]}, xs[1], xs[2])
	if err != nil {
		return kernels.PoolShape{}, err
	}
	if op == "AveragePool" && dil != [2]int{1, 1} {
		return kernels.PoolShape{}, fmt.Errorf("AveragePool: dilations %v not supported", dil)
	}
	// A window of padding alone has no maximum (−Inf) and no mean (NaN).
	for i, p := range pad {
		if p >= k[i%2] && a.str("auto_pad", "NOTSET") == "NOTSET" {
			return kernels.PoolShape{}, fmt.Errorf("%s: pads %v: each must be smaller than the kernel_shape %v", op, pad, k)
		}
	}
	s := kernels.PoolShape{N: xs[0], H: xs[1], W: xs[2], C: xs[3], KH: k[0], KW: k[1],
		SH: stride[0], SW: stride[1], DH: dil[0], DW: dil[1], PT: pad[0], PL: pad[1], PB: pad[2], PR: pad[3],
		CeilMode: a.int("ceil_mode", 0) != 0, CountIncludePad: a.int("count_include_pad", 0) != 0}
	if err := s.Validate(); err != nil {
		return kernels.PoolShape{}, fmt.Errorf("%s: input %v (NHWC): %w", op, xs, err)
	}
	return s, nil
}

func opMaxPool(_ *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 1, "MaxPool"); err != nil {
		return nil, err
	}
	x, err := args[0].image("MaxPool")
	if err != nil {
		return nil, err
	}
	s, err := poolShape("MaxPool", a, x.Shape)
	if err != nil {
		return nil, err
	}
	y := tensor.New(s.N, s.OH(), s.OW(), s.C)
	arg := make([]int32, y.Len())
	kernels.MaxPoolForward(s, x.Data, y.Data, arg)
	yv := &value{f: y, nhwc: true}
	if a.outputs < 2 {
		return []*value{yv}, nil
	}
	colMajor := a.int("storage_order", 0) != 0
	// The Indices output: flat positions of the maxima in the NCHW input.
	idx := &value{isInt: true, shape: yv.onnxShape(), ints: make([]int64, len(arg))}
	oh, ow := s.OH(), s.OW()
	for i, a := range arg { // i runs over NHWC outputs; write NCHW order
		n, rem := i/(oh*ow*s.C), i%(oh*ow*s.C)
		pix, c := rem/s.C, rem%s.C
		ai := int(a)
		an, arem := ai/(s.H*s.W*s.C), ai%(s.H*s.W*s.C)
		apix := arem / s.C
		if colMajor { // storage_order 1: w·H + h within the plane
			apix = (apix%s.W)*s.H + apix/s.W
		}
		idx.ints[(n*s.C+c)*oh*ow+pix] = int64((an*s.C+c)*s.H*s.W + apix)
	}
	return []*value{yv, idx}, nil
}

func opAvgPool(_ *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 1, "AveragePool"); err != nil {
		return nil, err
	}
	x, err := args[0].image("AveragePool")
	if err != nil {
		return nil, err
	}
	s, err := poolShape("AveragePool", a, x.Shape)
	if err != nil {
		return nil, err
	}
	y := tensor.New(s.N, s.OH(), s.OW(), s.C)
	kernels.AvgPoolForward(s, x.Data, y.Data)
	return []*value{{f: y, nhwc: true}}, nil
}

func opGlobalAvgPool(_ *Model, _ attrMap, args []*value) ([]*value, error) {
	if err := need(args, 1, "GlobalAveragePool"); err != nil {
		return nil, err
	}
	x, err := args[0].image("GlobalAveragePool")
	if err != nil {
		return nil, err
	}
	y := ag.GlobalAvgPool(ag.Constant(x)).Data
	return []*value{{f: y.Reshape(y.Shape[0], 1, 1, y.Shape[1]), nhwc: true}}, nil
}

func opGemm(_ *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 2, "Gemm"); err != nil {
		return nil, err
	}
	x, err := floats(args[0], "Gemm")
	if err != nil {
		return nil, err
	}
	w, err := floats(args[1], "Gemm")
	if err != nil {
		return nil, err
	}
	var c *ag.Value
	if len(args) > 2 && args[2] != nil {
		ct, err := floats(args[2], "Gemm")
		if err != nil {
			return nil, err
		}
		c = ag.Constant(ct)
	}
	y := ag.Gemm(ag.Constant(x), ag.Constant(w), c, a.float("alpha", 1), a.float("beta", 1), a.int("transA", 0) != 0, a.int("transB", 0) != 0)
	return []*value{floatValue(y.Data)}, nil
}

func opMatMul(_ *Model, _ attrMap, args []*value) ([]*value, error) {
	if err := need(args, 2, "MatMul"); err != nil {
		return nil, err
	}
	x, err := floats(args[0], "MatMul")
	if err != nil {
		return nil, err
	}
	w, err := floats(args[1], "MatMul")
	if err != nil {
		return nil, err
	}
	return []*value{floatValue(ag.MatMul(ag.Constant(x), ag.Constant(w)).Data)}, nil
}

func opFlatten(_ *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 1, "Flatten"); err != nil {
		return nil, err
	}
	x, err := floats(args[0], "Flatten")
	if err != nil {
		return nil, err
	}
	return []*value{floatValue(ag.Flatten(ag.Constant(x), a.int("axis", 1)).Data)}, nil
}

func opReshape(_ *Model, _ attrMap, args []*value) ([]*value, error) {
	if err := need(args, 2, "Reshape"); err != nil {
		return nil, err
	}
	x, err := floats(args[0], "Reshape")
	if err != nil {
		return nil, err
	}
	shape, err := reshapeTarget(x.Shape, args[1])
	if err != nil {
		return nil, err
	}
	return []*value{floatValue(x.Reshape(shape...))}, nil
}

// reshapeTarget resolves Reshape's shape input (0 copies a dimension of
// x, −1 is inferred) for an input of ONNX shape xs.
func reshapeTarget(xs []int, to *value) ([]int, error) {
	if !to.isInt {
		return nil, fmt.Errorf("Reshape: shape must be an integer tensor")
	}
	n := tensor.NumElements(xs)
	shape := make([]int, len(to.ints))
	infer := -1
	known := 1
	for i, d := range to.ints {
		switch {
		case d == 0 && i < len(xs):
			shape[i] = xs[i]
		case d == -1 && infer < 0:
			infer = i
			continue
		case d < 0 || d > math.MaxInt32:
			return nil, fmt.Errorf("Reshape: bad shape %v", to.ints)
		default:
			shape[i] = int(d)
		}
		if err := limits.CheckElements("Reshape", shape[:i+1]...); err != nil {
			return nil, err
		}
		known *= shape[i]
	}
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("Reshape: cannot infer a dimension of %v for %v", to.ints, xs)
		}
		shape[infer] = n / known
	}
	if tensor.NumElements(shape) != n {
		return nil, fmt.Errorf("Reshape: %v does not fit %v", shape, xs)
	}
	return shape, nil
}

// nhwcAxis maps an ONNX axis of a 4-D NCHW value to the NHWC storage axis.
var nhwcAxis = [4]int{0, 3, 1, 2}

func opConcat(_ *Model, a attrMap, args []*value) ([]*value, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("Concat: no inputs")
	}
	axis := a.int("axis", math.MinInt)
	if axis == math.MinInt {
		return nil, fmt.Errorf("Concat: axis attribute is required")
	}
	rank := len(args[0].onnxShape())
	if axis < 0 {
		axis += rank
	}
	allNHWC := rank == 4
	for _, v := range args {
		if v == nil || v.isInt {
			return nil, fmt.Errorf("Concat: missing or integer input")
		}
		allNHWC = allNHWC && v.nhwc
	}
	vs := make([]*ag.Value, len(args))
	for i, v := range args {
		if allNHWC {
			vs[i] = ag.Constant(v.f)
		} else {
			vs[i] = ag.Constant(v.nchw())
		}
	}
	if allNHWC {
		return []*value{{f: ag.Concat(nhwcAxis[axis], vs...).Data, nhwc: true}}, nil
	}
	return []*value{floatValue(ag.Concat(axis, vs...).Data)}, nil
}

// softmaxOp returns Softmax, or LogSoftmax with log.
func softmaxOp(log bool) opFunc {
	return func(m *Model, a attrMap, args []*value) ([]*value, error) { return softmax(m, a, args, log) }
}

func softmax(m *Model, a attrMap, args []*value, log bool) ([]*value, error) {
	if err := need(args, 1, "Softmax"); err != nil {
		return nil, err
	}
	x, err := floats(args[0], "Softmax")
	if err != nil {
		return nil, err
	}
	// Before opset 13 the input is coerced to 2-D at axis, 1 unless given
	// (an explicit -1 is the last axis, as tf2onnx writes it); from 13 on
	// the softmax is along axis, the last unless given.
	def := -1
	if m.opset < 13 {
		def = 1
	}
	axis, r := a.int("axis", def), x.Rank()
	if axis < -r || axis >= r {
		name := "Softmax"
		if log {
			name = "LogSoftmax"
		}
		return nil, fmt.Errorf("%s: axis %d outside [-%d, %d) for an input of rank %d", name, axis, r, r, r)
	}
	if axis < 0 {
		axis += r
	}
	v := ag.Constant(x)
	if m.opset < 13 {
		v = ag.Flatten(v, axis)
		axis = 1
	}
	var y *ag.Value
	if log {
		y = ag.LogSoftmax(v, axis)
	} else {
		y = ag.Softmax(v, axis)
	}
	return []*value{floatValue(y.Data.Reshape(x.Shape...))}, nil
}

func opPad(m *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 1, "Pad"); err != nil {
		return nil, err
	}
	pp, mode, val, err := padPlan(m, a, args)
	if err != nil {
		return nil, err
	}
	if args[0].isInt {
		// Padding only moves data: pad integers through float32, exactly
		// while they stay within ±2²⁴.
		x := tensor.New(args[0].shape...)
		for i, v := range args[0].ints {
			if v > 1<<24 || v < -(1<<24) {
				return nil, fmt.Errorf("Pad: integer %d cannot be carried exactly in float32", v)
			}
			x.Data[i] = float32(v)
		}
		y := ag.Pad(ag.Constant(x), pp, mode, val).Data
		out := &value{isInt: true, shape: y.Shape, ints: make([]int64, y.Len())}
		for i, v := range y.Data {
			out.ints[i] = int64(v)
		}
		return []*value{out}, nil
	}
	if args[0].nhwc {
		q := make([][2]int, 4)
		for i := range 4 {
			q[nhwcAxis[i]] = pp[i]
		}
		return []*value{{f: ag.Pad(ag.Constant(args[0].f), q, mode, val).Data, nhwc: true}}, nil
	}
	return []*value{floatValue(ag.Pad(ag.Constant(args[0].f), pp, mode, val).Data)}, nil
}

// padPlan resolves Pad's pads (before and after each ONNX axis), mode and
// constant value, from the attributes (before opset 11) or the inputs.
func padPlan(m *Model, a attrMap, args []*value) (pp [][2]int, mode ag.PadMode, val float32, err error) {
	rank := len(args[0].onnxShape())
	var pads []int
	if m.opset < 11 {
		pads = a.ints("pads", nil)
		val = a.float("value", 0)
	} else {
		if len(args) < 2 || args[1] == nil || !args[1].isInt {
			return nil, 0, 0, fmt.Errorf("Pad: pads input (int64) is required")
		}
		for _, p := range args[1].ints {
			if p > maxGeometry || p < -maxGeometry {
				return nil, 0, 0, fmt.Errorf("Pad: pads %v beyond ±%d", args[1].ints, maxGeometry)
			}
			pads = append(pads, int(p))
		}
		if len(args) > 2 && args[2] != nil {
			switch c := args[2]; {
			case c.isInt && len(c.ints) == 1:
				val = float32(c.ints[0])
			case !c.isInt && c.f.Len() == 1:
				val = c.f.Data[0]
			default:
				return nil, 0, 0, fmt.Errorf("Pad: constant_value must be a scalar")
			}
		}
		if len(args) > 3 && args[3] != nil {
			return nil, 0, 0, fmt.Errorf("Pad: the axes input is not supported")
		}
	}
	if len(pads) != 2*rank {
		return nil, 0, 0, fmt.Errorf("Pad: %d pads for rank %d", len(pads), rank)
	}
	switch s := a.str("mode", "constant"); s {
	case "constant":
		mode = ag.PadConstant
	case "reflect":
		mode = ag.PadReflect
	case "edge":
		mode = ag.PadEdge
	default:
		return nil, 0, 0, fmt.Errorf("Pad: mode %q not supported", s)
	}
	pp = make([][2]int, rank)
	for i := range pp {
		if pads[i] < 0 || pads[i+rank] < 0 {
			return nil, 0, 0, fmt.Errorf("Pad: negative pads %v (cropping) not supported", pads)
		}
		if pads[i] > maxGeometry || pads[i+rank] > maxGeometry {
			return nil, 0, 0, fmt.Errorf("Pad: pads %v beyond ±%d", pads, maxGeometry)
		}
		pp[i] = [2]int{pads[i], pads[i+rank]}
	}
	return pp, mode, val, nil
}

// opSlice takes a strided window of a tensor (opset 10+: starts, ends,
// axes and steps as inputs; positive steps only).
func opSlice(m *Model, _ attrMap, args []*value) ([]*value, error) {
	if err := need(args, 3, "Slice"); err != nil {
		return nil, err
	}
	if m.opset < 10 {
		return nil, fmt.Errorf("Slice: opset %d's attribute form is not supported (opset 10 or later)", m.opset)
	}
	x := args[0]
	if x.isInt {
		return nil, fmt.Errorf("Slice: integer input not supported")
	}
	lo, hi, step, err := slicePlan(args)
	if err != nil {
		return nil, err
	}
	if x.nhwc { // slice the stored NHWC data directly
		perm := [4]int{0, 2, 3, 1}
		var l, h, s [4]int
		for i := range 4 {
			l[i], h[i], s[i] = lo[perm[i]], hi[perm[i]], step[perm[i]]
		}
		return []*value{{f: slice(x.f, l[:], h[:], s[:]), nhwc: true}}, nil
	}
	return []*value{floatValue(slice(x.f, lo, hi, step))}, nil
}

// slicePlan resolves Slice's window over the ONNX axes of args[0]: the
// first index, the end (clamped to the axis) and the step of each.
func slicePlan(args []*value) (lo, hi, step []int, err error) {
	shape := args[0].onnxShape()
	rank := len(shape)
	list := func(i int, def func(k int) int64) ([]int64, error) {
		if i >= len(args) || args[i] == nil {
			n := len(args[1].ints)
			out := make([]int64, n)
			for k := range out {
				out[k] = def(k)
			}
			return out, nil
		}
		if !args[i].isInt || len(args[i].ints) != len(args[1].ints) {
			return nil, fmt.Errorf("Slice: input %d must be int64 with one value per sliced axis", i)
		}
		return args[i].ints, nil
	}
	if !args[1].isInt || !args[2].isInt {
		return nil, nil, nil, fmt.Errorf("Slice: starts and ends must be int64")
	}
	starts, ends := args[1].ints, args[2].ints
	axes, err := list(3, func(k int) int64 { return int64(k) })
	if err != nil {
		return nil, nil, nil, err
	}
	steps, err := list(4, func(int) int64 { return 1 })
	if err != nil || len(ends) != len(starts) {
		return nil, nil, nil, fmt.Errorf("Slice: %d starts, %d ends: %v", len(starts), len(ends), err)
	}
	lo, hi, step = make([]int, rank), append([]int(nil), shape...), make([]int, rank)
	for i := range step {
		step[i] = 1
	}
	for k, ax := range axes {
		a := int(ax)
		if a < 0 {
			a += rank
		}
		if a < 0 || a >= rank {
			return nil, nil, nil, fmt.Errorf("Slice: axis %d for rank %d", ax, rank)
		}
		if steps[k] < 1 || steps[k] > math.MaxInt32 {
			return nil, nil, nil, fmt.Errorf("Slice: step %d not supported (positive steps only)", steps[k])
		}
		clamp := func(v int64) int {
			if v < 0 {
				v += int64(shape[a])
			}
			return int(min(max(v, 0), int64(shape[a])))
		}
		lo[a], hi[a], step[a] = clamp(starts[k]), clamp(ends[k]), int(steps[k])
	}
	return lo, hi, step, nil
}

// sliceShape is the shape of the window lo:hi:step.
func sliceShape(lo, hi, step []int) []int {
	shape := make([]int, len(lo))
	for i := range shape {
		if hi[i] > lo[i] {
			shape[i] = (hi[i] - lo[i] + step[i] - 1) / step[i]
		}
	}
	return shape
}

// slice returns t[lo:hi:step] along every axis.
func slice(t *tensor.Tensor, lo, hi, step []int) *tensor.Tensor {
	r := t.Rank()
	shape := sliceShape(lo, hi, step)
	strides := rowMajorStrides(t.Shape)
	base, along := 0, make([]int, r)
	for i := range along {
		base += lo[i] * strides[i]
		along[i] = step[i] * strides[i]
	}
	return gather(t, shape, base, along)
}

// rowMajorStrides returns the element strides of a row-major shape.
func rowMajorStrides(shape []int) []int {
	strides := make([]int, len(shape))
	st := 1
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i], st = st, st*shape[i]
	}
	return strides
}

// gather returns the tensor of the given shape whose element at index
// (i₀, i₁, …) is t's element at base + Σ iₖ·along[k] (a strided view of t,
// copied): slices and transposes.
func gather(t *tensor.Tensor, shape []int, base int, along []int) *tensor.Tensor {
	out := tensor.New(shape...)
	if out.Len() == 0 {
		return out
	}
	idx := make([]int, len(shape))
	for o := range out.Data {
		src := base
		for i, k := range idx {
			src += k * along[i]
		}
		out.Data[o] = t.Data[src]
		for i := len(shape) - 1; i >= 0; i-- {
			if idx[i]++; idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
	}
	return out
}

// opMul multiplies element-wise tensors of one shape, or a tensor by a
// single value.
func opMul(_ *Model, _ attrMap, args []*value) ([]*value, error) {
	if err := need(args, 2, "Mul"); err != nil {
		return nil, err
	}
	a, b := args[0], args[1]
	if a.isInt || b.isInt {
		return nil, fmt.Errorf("Mul: integer inputs not supported")
	}
	if b.f.Len() == 1 && a.f.Len() != 1 {
		a, b = b, a
	}
	if a.f.Len() == 1 && b.f.Len() != 1 {
		return []*value{{f: ag.Scale(ag.Constant(b.f), a.f.Data[0]).Data, nhwc: b.nhwc}}, nil
	}
	if !tensor.SameShape(a.onnxShape(), b.onnxShape()) {
		return nil, fmt.Errorf("Mul: shapes %v and %v differ; only a single-value factor is broadcast", a.onnxShape(), b.onnxShape())
	}
	if a.nhwc || b.nhwc {
		x, _ := a.image("Mul")
		y, _ := b.image("Mul")
		return []*value{{f: ag.Mul(ag.Constant(x), ag.Constant(y)).Data, nhwc: true}}, nil
	}
	return []*value{floatValue(ag.Mul(ag.Constant(a.f), ag.Constant(b.f)).Data)}, nil
}

// opTranspose permutes the axes of a float tensor.
func opTranspose(_ *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 1, "Transpose"); err != nil {
		return nil, err
	}
	x, err := floats(args[0], "Transpose")
	if err != nil {
		return nil, err
	}
	r := x.Rank()
	def := make([]int, r)
	for i := range def {
		def[i] = r - 1 - i
	}
	perm := a.ints("perm", def)
	seen := make([]bool, r)
	if len(perm) != r {
		return nil, fmt.Errorf("Transpose: perm %v for rank %d", perm, r)
	}
	for _, p := range perm {
		if p < 0 || p >= r || seen[p] {
			return nil, fmt.Errorf("Transpose: perm %v is not a permutation", perm)
		}
		seen[p] = true
	}
	shape := make([]int, r)
	for i, p := range perm {
		shape[i] = x.Shape[p]
	}
	strides := rowMajorStrides(x.Shape)
	along := make([]int, r)
	for i, p := range perm {
		along[i] = strides[p]
	}
	out := gather(x, shape, 0, along)
	return []*value{floatValue(out)}, nil
}

// opConstant produces its value attribute (a tensor).
func opConstant(_ *Model, a attrMap, _ []*value) ([]*value, error) {
	at, ok := a.m["value"]
	if !ok || at.GetT() == nil {
		return nil, fmt.Errorf("Constant: only the tensor form (value) is supported")
	}
	v, err := decodeTensor(at.GetT())
	if err != nil {
		return nil, fmt.Errorf("Constant: %w", err)
	}
	return []*value{v}, nil
}

// intArith returns an element-wise operator on integer tensors (of one
// shape, or one of them a single value), as shape arithmetic needs.
func intArith(op string, f func(a, b int64) (int64, error)) opFunc {
	return func(_ *Model, _ attrMap, args []*value) ([]*value, error) {
		if err := need(args, 2, op); err != nil {
			return nil, err
		}
		a, b := args[0], args[1]
		if !a.isInt || !b.isInt {
			return nil, fmt.Errorf("%s: only integer (shape) arithmetic is supported", op)
		}
		// The result has the shape of the operand that is not a single
		// value (which may be empty).
		shape, n := a.shape, len(a.ints)
		switch {
		case len(a.ints) == len(b.ints) && tensor.SameShape(a.shape, b.shape):
		case len(b.ints) == 1:
		case len(a.ints) == 1:
			shape, n = b.shape, len(b.ints)
		default:
			return nil, fmt.Errorf("%s: shapes %v and %v do not broadcast (single values only)", op, a.shape, b.shape)
		}
		out := &value{isInt: true, shape: append([]int(nil), shape...), ints: make([]int64, n)}
		for i := range out.ints {
			x, y := a.ints[min(i, len(a.ints)-1)], b.ints[min(i, len(b.ints)-1)]
			v, err := f(x, y)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			out.ints[i] = v
		}
		return []*value{out}, nil
	}
}

// intDiv is ONNX's integer division (truncating, as C).
func intDiv(a, b int64) (int64, error) {
	if b == 0 {
		return 0, fmt.Errorf("integer division by zero")
	}
	return a / b, nil
}

// opShape returns a tensor's ONNX shape as int64.
func opShape(_ *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 1, "Shape"); err != nil {
		return nil, err
	}
	if _, ok := a.m["start"]; ok {
		return nil, fmt.Errorf("Shape: start/end attributes are not supported")
	}
	s := args[0].onnxShape()
	out := &value{isInt: true, shape: []int{len(s)}, ints: make([]int64, len(s))}
	for i, d := range s {
		out.ints[i] = int64(d)
	}
	return []*value{out}, nil
}

// opGather picks entries of a 1-D integer tensor (a shape).
func opGather(_ *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 2, "Gather"); err != nil {
		return nil, err
	}
	d, idx := args[0], args[1]
	if !d.isInt || !idx.isInt || len(d.shape) != 1 || a.int("axis", 0) != 0 {
		return nil, fmt.Errorf("Gather: only indexing a 1-D integer tensor (a shape) is supported")
	}
	out := &value{isInt: true, shape: append([]int(nil), idx.shape...), ints: make([]int64, len(idx.ints))}
	for i, j := range idx.ints {
		if j < 0 {
			j += int64(len(d.ints))
		}
		if j < 0 || j >= int64(len(d.ints)) {
			return nil, fmt.Errorf("Gather: index %d outside %d values", idx.ints[i], len(d.ints))
		}
		out.ints[i] = d.ints[j]
	}
	return []*value{out}, nil
}

// opCast converts between integers and floats.
func opCast(_ *Model, a attrMap, args []*value) ([]*value, error) {
	if err := need(args, 1, "Cast"); err != nil {
		return nil, err
	}
	x := args[0]
	switch to := onnxpb.TensorProto_DataType(a.int("to", 0)); to {
	case onnxpb.TensorProto_INT64, onnxpb.TensorProto_INT32:
		if x.isInt {
			return []*value{x}, nil
		}
		t := x.nchw()
		out := &value{isInt: true, shape: append([]int(nil), t.Shape...), ints: make([]int64, t.Len())}
		for i, v := range t.Data {
			out.ints[i] = int64(v)
		}
		return []*value{out}, nil
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_DOUBLE:
		if !x.isInt {
			return []*value{x}, nil
		}
		t := tensor.New(x.shape...)
		for i, v := range x.ints {
			t.Data[i] = float32(v)
		}
		return []*value{floatValue(t)}, nil
	default:
		return nil, fmt.Errorf("Cast: to type %s is not supported", to)
	}
}

// opUnsqueeze inserts axes of size 1 into an integer tensor (a shape).
func opUnsqueeze(m *Model, a attrMap, args []*value) ([]*value, error) {
	shape, err := unsqueezeShape(m, a, args)
	if err != nil {
		return nil, err
	}
	return []*value{{isInt: true, shape: shape, ints: args[0].ints}}, nil
}

// unsqueezeShape is Unsqueeze's output shape; axes come from the second
// input (opset 13) or the attribute (before).
func unsqueezeShape(m *Model, a attrMap, args []*value) ([]int, error) {
	if err := need(args, 1, "Unsqueeze"); err != nil {
		return nil, err
	}
	x := args[0]
	var axes []int64
	if m.opset >= 13 {
		if len(args) < 2 || args[1] == nil || !args[1].isInt {
			return nil, fmt.Errorf("Unsqueeze: the axes input (int64) is required")
		}
		axes = args[1].ints
	} else {
		for _, v := range a.ints("axes", nil) {
			axes = append(axes, int64(v))
		}
	}
	if !x.isInt {
		return nil, fmt.Errorf("Unsqueeze: only integer (shape) tensors are supported")
	}
	if len(axes) > maxRank {
		return nil, fmt.Errorf("Unsqueeze: %d axes, more than rank %d", len(axes), maxRank)
	}
	r := len(x.shape) + len(axes)
	ones := make([]bool, r)
	for _, ax := range axes {
		if ax < 0 {
			ax += int64(r)
		}
		if ax < 0 || ax >= int64(r) || ones[ax] {
			return nil, fmt.Errorf("Unsqueeze: bad axes %v for rank %d", axes, len(x.shape))
		}
		ones[ax] = true
	}
	shape := make([]int, 0, r)
	j := 0
	for i := range r {
		if ones[i] {
			shape = append(shape, 1)
		} else {
			shape = append(shape, x.shape[j])
			j++
		}
	}
	return shape, nil
}
