package onnx

import (
	"fmt"
	"math"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/tensor"
)

// shapeFunc infers the ONNX shapes of a node's outputs from its inputs'
// shapes, its attributes and the values of its integer inputs (shapes,
// pads: small), before the node runs. Every operator has one: evalNode
// checks each inferred shape against limits.TensorElements before the
// operator allocates anything, and checks afterwards that the operator
// produced exactly those shapes. The operators the engine computes are
// inferred on an autograd shape tape, with the engine's own shape rules.
type shapeFunc func(m *Model, a attrMap, args []*value) ([][]int, error)

// maxRank bounds the rank of a value a graph may build (ONNX Runtime's
// bound is 64 too, through its kernels).
const maxRank = 64

var shapeRules map[string]shapeFunc

func init() {
	same := func(n int, op string) shapeFunc {
		return func(_ *Model, _ attrMap, args []*value) ([][]int, error) {
			if err := need(args, n, op); err != nil {
				return nil, err
			}
			return one(args[0].onnxShape()), nil
		}
	}
	shapeRules = map[string]shapeFunc{
		"Conv":               inferConv,
		"ConvTranspose":      inferConvTranspose,
		"BatchNormalization": inferBatchNorm,
		"Relu":               same(1, "Relu"),
		"Add":                inferAdd,
		"MaxPool":            inferPool("MaxPool"),
		"AveragePool":        inferPool("AveragePool"),
		"GlobalAveragePool":  inferGlobalAvgPool,
		"Gemm":               inferGemm,
		"MatMul":             inferMatMul,
		"Flatten":            inferFlatten,
		"Reshape":            inferReshape,
		"Concat":             inferConcat,
		"Softmax":            same(1, "Softmax"),
		"LogSoftmax":         same(1, "LogSoftmax"),
		"Pad":                inferPad,
		"Slice":              inferSlice,
		"Mul":                inferMul,
		"Transpose":          inferTranspose,
		"Constant":           inferConstant,
		"ReduceSum":          inferReduceSum,
		"Shape":              inferShape,
		"Gather":             inferGather,
		"Sub":                inferIntArith("Sub"),
		"Div":                inferIntArith("Div"),
		"Cast":               same(1, "Cast"),
		"Unsqueeze":          inferUnsqueeze,
		"Identity":           same(1, "Identity"),
	}
}

func one(s []int) [][]int { return [][]int{s} }

// nhwc and nchw convert a 4-D shape between ONNX's layout and the
// engine's.
func nhwc(s []int) []int { return []int{s[0], s[2], s[3], s[1]} }
func nchw(s []int) []int { return []int{s[0], s[3], s[1], s[2]} }

// rank4 returns v's ONNX shape, which must be 4-D.
func rank4(op, what string, v *value) ([]int, error) {
	s := v.onnxShape()
	if len(s) != 4 {
		return nil, fmt.Errorf("%s: %s must be 4-D, got shape %v", op, what, s)
	}
	return s, nil
}

// placeholders returns data-less engine values of the given shapes on one
// shape tape (nil for a nil shape).
func placeholders(shapes ...[]int) []*ag.Value {
	tp := ag.NewShapeTape()
	out := make([]*ag.Value, len(shapes))
	for i, s := range shapes {
		if s != nil {
			out[i] = tp.Placeholder(s...)
		}
	}
	return out
}

// optional returns the ONNX shape of args[i], or nil when it is absent.
func optional(args []*value, i int) []int {
	if i < len(args) && args[i] != nil {
		return args[i].onnxShape()
	}
	return nil
}

func inferConv(_ *Model, a attrMap, args []*value) ([][]int, error) {
	if err := need(args, 2, "Conv"); err != nil {
		return nil, err
	}
	x, err := rank4("Conv", "input", args[0])
	if err != nil {
		return nil, err
	}
	w, err := rank4("Conv", "weight", args[1])
	if err != nil {
		return nil, err
	}
	stride, dil, pad, err := geometry("Conv", a, [2]int{w[2], w[3]}, x[2], x[3])
	if err != nil {
		return nil, err
	}
	p := placeholders(nhwc(x), []int{w[2], w[3], w[1], w[0]}, optional(args, 2))
	y := ag.Conv2d(p[0], p[1], p[2], ag.ConvParams{Stride: stride, Dilation: dil, Pad: pad})
	return one(nchw(y.Data.Shape)), nil
}

func inferConvTranspose(_ *Model, a attrMap, args []*value) ([][]int, error) {
	if err := need(args, 2, "ConvTranspose"); err != nil {
		return nil, err
	}
	x, err := rank4("ConvTranspose", "input", args[0])
	if err != nil {
		return nil, err
	}
	w, err := rank4("ConvTranspose", "weight", args[1])
	if err != nil {
		return nil, err
	}
	prm, err := convTransposeParams(a, [2]int{x[2], x[3]}, [2]int{w[2], w[3]})
	if err != nil {
		return nil, err
	}
	p := placeholders(nhwc(x), []int{w[2], w[3], w[1], w[0]}, optional(args, 2))
	y := ag.ConvTranspose2d(p[0], p[1], p[2], prm)
	return one(nchw(y.Data.Shape)), nil
}

func inferBatchNorm(_ *Model, a attrMap, args []*value) ([][]int, error) {
	if err := need(args, 5, "BatchNormalization"); err != nil {
		return nil, err
	}
	x := args[0].onnxShape()
	if len(x) != 2 && len(x) != 4 {
		return nil, fmt.Errorf("BatchNormalization: rank-%d input not supported (2 or 4)", len(x))
	}
	for i := 1; i < 5; i++ {
		if s := args[i].onnxShape(); len(s) != 1 || s[0] != x[1] {
			return nil, fmt.Errorf("BatchNormalization: input %d has shape %v for %d channels", i, s, x[1])
		}
	}
	if a.int("training_mode", 0) == 0 {
		return one(x), nil
	}
	return [][]int{x, {x[1]}, {x[1]}}, nil
}

func inferAdd(m *Model, a attrMap, args []*value) ([][]int, error) {
	if err := need(args, 2, "Add"); err != nil {
		return nil, err
	}
	if args[0].isInt && args[1].isInt {
		return inferIntArith("Add")(m, a, args)
	}
	return one(args[0].onnxShape()), nil
}

func inferPool(op string) shapeFunc {
	return func(_ *Model, a attrMap, args []*value) ([][]int, error) {
		if err := need(args, 1, op); err != nil {
			return nil, err
		}
		x, err := rank4(op, "input", args[0])
		if err != nil {
			return nil, err
		}
		s, err := poolShape(op, a, nhwc(x))
		if err != nil {
			return nil, err
		}
		out := nchw([]int{s.N, s.OH(), s.OW(), s.C})
		if op == "MaxPool" && a.outputs > 1 {
			return [][]int{out, out}, nil
		}
		return one(out), nil
	}
}

func inferGlobalAvgPool(_ *Model, _ attrMap, args []*value) ([][]int, error) {
	if err := need(args, 1, "GlobalAveragePool"); err != nil {
		return nil, err
	}
	x, err := rank4("GlobalAveragePool", "input", args[0])
	if err != nil {
		return nil, err
	}
	return one([]int{x[0], x[1], 1, 1}), nil
}

func inferGemm(_ *Model, a attrMap, args []*value) ([][]int, error) {
	if err := need(args, 2, "Gemm"); err != nil {
		return nil, err
	}
	p := placeholders(args[0].onnxShape(), args[1].onnxShape(), optional(args, 2))
	y := ag.Gemm(p[0], p[1], p[2], a.float("alpha", 1), a.float("beta", 1), a.int("transA", 0) != 0, a.int("transB", 0) != 0)
	return one(y.Data.Shape), nil
}

func inferMatMul(_ *Model, _ attrMap, args []*value) ([][]int, error) {
	if err := need(args, 2, "MatMul"); err != nil {
		return nil, err
	}
	p := placeholders(args[0].onnxShape(), args[1].onnxShape())
	return one(ag.MatMul(p[0], p[1]).Data.Shape), nil
}

func inferFlatten(_ *Model, a attrMap, args []*value) ([][]int, error) {
	if err := need(args, 1, "Flatten"); err != nil {
		return nil, err
	}
	x := placeholders(args[0].onnxShape())[0]
	return one(ag.Flatten(x, a.int("axis", 1)).Data.Shape), nil
}

func inferReshape(_ *Model, _ attrMap, args []*value) ([][]int, error) {
	if err := need(args, 2, "Reshape"); err != nil {
		return nil, err
	}
	if len(args[1].ints) > maxRank {
		return nil, fmt.Errorf("Reshape: target of rank %d, more than %d", len(args[1].ints), maxRank)
	}
	s, err := reshapeTarget(args[0].onnxShape(), args[1])
	if err != nil {
		return nil, err
	}
	return one(s), nil
}

func inferConcat(_ *Model, a attrMap, args []*value) ([][]int, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("Concat: no inputs")
	}
	axis := a.int("axis", math.MinInt)
	if axis == math.MinInt {
		return nil, fmt.Errorf("Concat: axis attribute is required")
	}
	shapes := make([][]int, len(args))
	for i, v := range args {
		if v == nil {
			return nil, fmt.Errorf("Concat: input %d is missing", i)
		}
		shapes[i] = v.onnxShape()
	}
	rank := len(shapes[0])
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return nil, fmt.Errorf("Concat: axis %d for rank %d", a.int("axis", 0), rank)
	}
	return one(ag.Concat(axis, placeholders(shapes...)...).Data.Shape), nil
}

func inferPad(m *Model, a attrMap, args []*value) ([][]int, error) {
	if err := need(args, 1, "Pad"); err != nil {
		return nil, err
	}
	pp, _, _, err := padPlan(m, a, args)
	if err != nil {
		return nil, err
	}
	s := args[0].onnxShape()
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = d + pp[i][0] + pp[i][1]
	}
	return one(out), nil
}

func inferSlice(_ *Model, _ attrMap, args []*value) ([][]int, error) {
	if err := need(args, 3, "Slice"); err != nil {
		return nil, err
	}
	lo, hi, step, err := slicePlan(args)
	if err != nil {
		return nil, err
	}
	return one(sliceShape(lo, hi, step)), nil
}

func inferMul(_ *Model, _ attrMap, args []*value) ([][]int, error) {
	if err := need(args, 2, "Mul"); err != nil {
		return nil, err
	}
	a, b := args[0].onnxShape(), args[1].onnxShape()
	if tensor.NumElements(a) == 1 && tensor.NumElements(b) != 1 {
		return one(b), nil
	}
	return one(a), nil
}

func inferTranspose(_ *Model, a attrMap, args []*value) ([][]int, error) {
	if err := need(args, 1, "Transpose"); err != nil {
		return nil, err
	}
	x := args[0].onnxShape()
	r := len(x)
	def := make([]int, r)
	for i := range def {
		def[i] = r - 1 - i
	}
	perm := a.ints("perm", def)
	if len(perm) != r {
		return nil, fmt.Errorf("Transpose: perm %v for rank %d", perm, r)
	}
	seen := make([]bool, r)
	out := make([]int, r)
	for i, p := range perm {
		if p < 0 || p >= r || seen[p] {
			return nil, fmt.Errorf("Transpose: perm %v is not a permutation", perm)
		}
		seen[p] = true
		out[i] = x[p]
	}
	return one(out), nil
}

func inferConstant(_ *Model, a attrMap, _ []*value) ([][]int, error) {
	at, ok := a.m["value"]
	if !ok || at.GetT() == nil {
		return nil, fmt.Errorf("Constant: only the tensor form (value) is supported")
	}
	dims := at.GetT().GetDims()
	if len(dims) > maxRank {
		return nil, fmt.Errorf("Constant: rank %d, more than %d", len(dims), maxRank)
	}
	s := make([]int, len(dims))
	for i, d := range dims {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("Constant: bad dimension %d", d)
		}
		s[i] = int(d)
	}
	return one(s), nil
}

func inferReduceSum(_ *Model, a attrMap, args []*value) ([][]int, error) {
	if err := need(args, 1, "ReduceSum"); err != nil {
		return nil, err
	}
	x := args[0].onnxShape()
	axes := len(a.ints("axes", nil))
	if len(args) > 1 && args[1] != nil {
		axes = len(args[1].ints)
	}
	if axes == 0 && a.int("noop_with_empty_axes", 0) != 0 {
		return one(x), nil
	}
	if a.int("keepdims", 1) == 0 {
		return one([]int{}), nil
	}
	out := make([]int, len(x))
	for i := range out {
		out[i] = 1
	}
	return one(out), nil
}

func inferShape(_ *Model, _ attrMap, args []*value) ([][]int, error) {
	if err := need(args, 1, "Shape"); err != nil {
		return nil, err
	}
	return one([]int{len(args[0].onnxShape())}), nil
}

func inferGather(_ *Model, _ attrMap, args []*value) ([][]int, error) {
	if err := need(args, 2, "Gather"); err != nil {
		return nil, err
	}
	return one(args[1].onnxShape()), nil
}

func inferIntArith(op string) shapeFunc {
	return func(_ *Model, _ attrMap, args []*value) ([][]int, error) {
		if err := need(args, 2, op); err != nil {
			return nil, err
		}
		a, b := args[0], args[1]
		if !a.isInt || !b.isInt {
			return nil, fmt.Errorf("%s: only integer (shape) arithmetic is supported", op)
		}
		if len(a.ints) == 1 && len(b.ints) != 1 {
			return one(b.shape), nil
		}
		return one(a.shape), nil
	}
}

func inferUnsqueeze(m *Model, a attrMap, args []*value) ([][]int, error) {
	s, err := unsqueezeShape(m, a, args)
	if err != nil {
		return nil, err
	}
	return one(s), nil
}
