package autograd

import (
	"fmt"
	"math"
	"testing"

	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// TestConvReadsBatchNormReLU runs conv → batch norm → ReLU → conv → batch
// norm → ReLU, a loss and its backward pass on
// a bfloat16 training tape twice: with the second convolution reading the
// ReLU'd batch norm through its map (convOfBatchNormReLU: the output never
// stored, the mask recomputed from the batch norm's input) and with it
// stored first (reluAffineInputs off). Loss, every gradient and the
// running statistics must agree bit for bit (both without the batch
// norm's sums from the data gradient, gradSumsInData, which add in
// another order), and the fused run must not
// have stored the output. Shapes: 16 and 32 channels, 3×3 stride 1 and 2,
// 1×1, an odd batch (the weight gradient's pairs of images end on a zero
// image, which the map must not turn into its output for zeros). Variants:
// a bias on the second convolution, and a second reader of the ReLU'd
// output (a ReLU of it, after the convolution or before it, adding to the
// loss) whose gradient must reach the batch norm.
func TestConvReadsBatchNormReLU(t *testing.T) {
	for _, c := range []struct {
		n, h, c, oc, k, stride int
		bias                   bool
		reread                 int // 0: none; 1: ReLU(mid) after the convolution; 2: before it
	}{
		{3, 9, 16, 32, 3, 1, false, 0},
		{2, 8, 32, 16, 3, 2, false, 0},
		{4, 6, 32, 48, 1, 1, false, 0},
		{1, 5, 16, 16, 3, 1, false, 0},
		{2, 4, 128, 16, 1, 1, false, 0}, // wide rows: the batch norm's row-walking kernels
		{3, 9, 16, 32, 3, 1, true, 0},
		{3, 9, 16, 32, 3, 1, false, 1},
		{3, 9, 16, 32, 3, 1, false, 2},
		{2, 9, 32, 16, 3, 2, false, 0}, // 11×11 padded pixels, stride 2: no AMX weight gradient, the output is stored for it
	} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			pad := c.k / 2
			s := kernels.ConvShape{N: c.n, H: c.h, W: c.h, C: c.c, OC: c.oc, KH: c.k, KW: c.k, SH: c.stride, SW: c.stride, DH: 1, DW: 1, PT: pad, PL: pad, PB: pad, PR: pad}
			if !kernels.ConvReLUAffineBF16OK(s) {
				t.Skip("the kernels do not read this shape through a map here (no AVX512-BF16, or RESIDUAL_KERNELS below avx512)")
			}
			rng := tensor.NewRNG(21)
			xt := rng.Randn(c.n, c.h, c.h, 8)
			w1t, w2t := rng.Randn(3, 3, 8, c.c), rng.Randn(c.k, c.k, c.c, c.oc)
			g1t, b1t := rng.Randn(c.c), rng.Randn(c.c) // shifts of both signs: the ReLU masks some
			oh := (c.h+2*pad-c.k)/c.stride + 1
			rt := rng.Randn(c.n, oh, oh, c.oc)
			qt, bt := rng.Randn(c.n, c.h, c.h, c.c), rng.Randn(c.oc)
			type result struct {
				loss      float32
				grads     [][]float32
				runs      [][]float32
				storedMid bool
			}
			run := func(fuse bool) result {
				defer func(v, g bool) { reluAffineInputs, gradSumsInData = v, g }(reluAffineInputs, gradSumsInData)
				reluAffineInputs, gradSumsInData = fuse, false // TestGradSumsInData compares that one
				tp := NewTape()
				tp.SetPrecision(BF16)
				w1, w2 := Param(w1t.Clone(), "w1"), Param(w2t.Clone(), "w2")
				g1, b1 := Param(g1t.Clone(), "g1"), Param(b1t.Clone(), "b1")
				rm1, rv1 := tensor.New(c.c), tensor.New(c.c)
				rm2, rv2 := tensor.New(c.oc), tensor.New(c.oc)
				for i := range rv1.Data {
					rv1.Data[i] = 1
				}
				for i := range rv2.Data {
					rv2.Data[i] = 1
				}
				bp := BatchNormParams{Training: true, Momentum: 0.1, Eps: 1e-5}
				x := tp.Constant(xt)
				h := Conv2d(x, w1, nil, ConvParams{Pad: SymmetricPad(1, 1)})
				mid := ReLU(BatchNorm(h, g1, b1, rm1, rv1, bp))
				var again *Value
				if c.reread == 2 {
					again = ReLU(mid)
				}
				var bias *Value
				if c.bias {
					bias = Param(bt.Clone(), "bias")
				}
				o := Conv2d(mid, w2, bias, ConvParams{Stride: [2]int{c.stride, c.stride}, Pad: SymmetricPad(pad, pad)})
				fusedMid := false
				if mid.lazy != nil {
					_, fusedMid = mid.lazy.op.(*reluAffineDeferred)
				}
				if c.reread == 1 {
					again = ReLU(mid)
				}
				o = ReLU(BatchNorm(o, nil, nil, rm2, rv2, bp))
				loss := Sum(Mul(o, tp.Constant(rt)))
				if again != nil {
					loss = Add(loss, Sum(Mul(again, tp.Constant(qt))))
				}
				tp.Backward(loss)
				r := result{loss: loss.Tensor().Data[0], storedMid: !fusedMid}
				for _, p := range []*Value{w1, w2, g1, b1} {
					r.grads = append(r.grads, p.Grad.Data)
				}
				r.runs = [][]float32{rm1.Data, rv1.Data, rm2.Data, rv2.Data}
				return r
			}
			fused, plain := run(true), run(false)
			if c.reread == 2 { // the ReLU before the convolution realized it: nothing to fuse
				fused.storedMid = !fused.storedMid
			}
			if fused.storedMid {
				t.Fatal("the fused run stored the batch norm's ReLU'd output (the convolution did not read it through its map)")
			}
			if math.Float32bits(fused.loss) != math.Float32bits(plain.loss) {
				t.Fatalf("loss %g fused, %g stored", fused.loss, plain.loss)
			}
			for i, name := range []string{"w1", "w2", "gamma", "beta"} {
				for j, v := range fused.grads[i] {
					if math.Float32bits(v) != math.Float32bits(plain.grads[i][j]) {
						t.Fatalf("d%s[%d]: %g fused, %g stored", name, j, v, plain.grads[i][j])
					}
				}
			}
			for i, r := range fused.runs {
				for j, v := range r {
					if v != plain.runs[i][j] {
						t.Fatalf("running statistic %d[%d]: %g fused, %g stored", i, j, v, plain.runs[i][j])
					}
				}
			}
		})
	}
}

// TestBatchNormMaskFromX checks that a float32 training batch norm with a
// ReLU and no skip addition, whose output is stored, runs its backward
// pass without reading that output (maskFromX: the mask recomputed from
// its input): with the output overwritten by NaNs after the forward pass,
// the gradients of the batch norm's parameters and of the convolution
// before it equal those of an untouched run bit for bit. The convolution
// after it reads the output for its own weight gradient, which is not
// compared.
func TestBatchNormMaskFromX(t *testing.T) {
	if !kernels.MaskFromXOK(16) {
		t.Skip("the batch norm's backward kernels with the mask from x are AVX-512's; this level has none")
	}
	rng := tensor.NewRNG(22)
	xt, w1t, w2t := rng.Randn(3, 8, 8, 8), rng.Randn(3, 3, 8, 16), rng.Randn(3, 3, 16, 16)
	g1t, b1t, rt := rng.Randn(16), rng.Randn(16), rng.Randn(3, 8, 8, 16)
	run := func(poison bool) [][]float32 {
		tp := NewTape()
		w1, w2 := Param(w1t.Clone(), "w1"), Param(w2t.Clone(), "w2")
		g1, b1 := Param(g1t.Clone(), "g1"), Param(b1t.Clone(), "b1")
		rm, rv := tensor.New(16), tensor.New(16)
		bp := BatchNormParams{Training: true, Momentum: 0.1, Eps: 1e-5}
		mid := ReLU(BatchNorm(Conv2d(tp.Constant(xt), w1, nil, ConvParams{Pad: SymmetricPad(1, 1)}), g1, b1, rm, rv, bp))
		o := Conv2d(mid, w2, nil, ConvParams{Pad: SymmetricPad(1, 1)})
		loss := Sum(Mul(o, tp.Constant(rt)))
		loss.Tensor()
		if poison {
			d := mid.Tensor().Data
			for i := range d {
				d[i] = float32(math.NaN())
			}
		}
		tp.Backward(loss)
		return [][]float32{w1.Grad.Data, g1.Grad.Data, b1.Grad.Data}
	}
	clean, poisoned := run(false), run(true)
	for i, name := range []string{"w1", "gamma", "beta"} {
		for j, v := range poisoned[i] {
			if math.Float32bits(v) != math.Float32bits(clean[i][j]) {
				t.Fatalf("d%s[%d]: %g with the stored output overwritten, %g untouched: the backward pass read it", name, j, v, clean[i][j])
			}
		}
	}
}

// TestConvGradsStoredBF16 runs a small residual network's training step
// on a bfloat16 tape (a stem, a basic block with its skip addition, a
// strided convolution, 16 and 32 channels, an odd batch) with the batch
// norms storing their input gradients as bfloat16 for the convolutions
// before them (bf16GradInputs) and without: the loss and every parameter
// gradient must agree bit for bit (both without gradSumsInData, which
// adds the batch norms' sums in another order), and the gradients must
// have been stored so. The first convolution's output is also read by another
// operation recorded before its batch norm, whose gradient is added to
// the batch norm's: that one must stay float32 (rounding the batch norm's
// part first would round the sum twice).
func TestConvGradsStoredBF16(t *testing.T) {
	s := kernels.ConvShape{N: 3, H: 8, W: 8, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}
	if !kernels.ConvGradBF16OK(s) || !kernels.BatchNormBackwardToBF16OK(16, false) {
		t.Skip("no AMX-BF16 tiles or AVX512-BF16 conversions here: no gradient is stored as bfloat16")
	}
	rng := tensor.NewRNG(23)
	xt := rng.Randn(3, 8, 8, 8)
	ws := []*tensor.Tensor{rng.Randn(3, 3, 8, 16), rng.Randn(3, 3, 16, 16), rng.Randn(3, 3, 16, 16), rng.Randn(3, 3, 16, 32)}
	rt, qt := rng.Randn(3, 4, 4, 32), rng.Randn(3, 8, 8, 16)
	run := func(on bool) (float32, [][]float32, int64) {
		defer func(v, g bool) { bf16GradInputs, gradSumsInData = v, g }(bf16GradInputs, gradSumsInData)
		bf16GradInputs, gradSumsInData = on, false // TestGradSumsInData compares that one
		before := bf16GradsStored.Load()
		tp := NewTape()
		tp.SetPrecision(BF16)
		var params []*Value
		bn := func(v *Value, c int) *Value {
			g, b := Param(tensor.Full(1, c), "g"), Param(tensor.New(c), "b")
			params = append(params, g, b)
			return BatchNorm(v, g, b, tensor.New(c), tensor.Full(1, c), BatchNormParams{Training: true, Momentum: 0.1, Eps: 1e-5})
		}
		conv := func(v *Value, i, stride int) *Value {
			w := Param(ws[i].Clone(), "w")
			params = append(params, w)
			return Conv2d(v, w, nil, ConvParams{Stride: [2]int{stride, stride}, Pad: SymmetricPad(1, 1)})
		}
		c0 := conv(tp.Constant(xt), 0, 1)
		side := Sum(Mul(c0, tp.Constant(qt))) // a second reader of a convolution's output, recorded before its batch norm
		h := ReLU(bn(c0, 16))
		out := ReLU(bn(conv(h, 1, 1), 16))
		h = ReLU(Add(bn(conv(out, 2, 1), 16), h))
		o := ReLU(bn(conv(h, 3, 2), 32))
		loss := Add(Sum(Mul(o, tp.Constant(rt))), side)
		tp.Backward(loss)
		var g [][]float32
		for _, p := range params {
			g = append(g, p.Grad.Data)
		}
		return loss.Tensor().Data[0], g, bf16GradsStored.Load() - before
	}
	l1, g1, n1 := run(true)
	l0, g0, _ := run(false)
	if n1 == 0 {
		t.Fatal("no gradient was stored as bfloat16")
	}
	if math.Float32bits(l1) != math.Float32bits(l0) {
		t.Fatalf("loss %g with bfloat16 gradients, %g without", l1, l0)
	}
	for i := range g0 {
		for j, v := range g1[i] {
			if math.Float32bits(v) != math.Float32bits(g0[i][j]) {
				t.Fatalf("parameter %d gradient %d: %g with bfloat16 gradients, %g without", i, j, v, g0[i][j])
			}
		}
	}
}

// TestGradSumsInData runs a bfloat16 training step with a batch norm's
// backward sums made by the data gradient of the convolution that reads
// its ReLU'd output (gradSumsInData) and without. Networks: conv → batch
// norm → ReLU → conv → batch norm → ReLU, the mask from the first batch
// norm's input through its map, with or without a second reader of the
// ReLU'd output recorded after the second convolution (its gradient comes
// first, the convolution's last: the sums are made) or before it (the
// convolution's comes first: the batch norm makes its pass); and a block,
// conv → batch norm + skip → ReLU → conv → batch norm + that output → ReLU,
// whose first batch norm's mask comes from its stored output and whose
// output gradient the second convolution stores masked, last after the
// second batch norm's skip gradient. Everything computed before that
// batch norm's backward step must agree bit for bit (the loss, the later
// layers' gradients, and the skip's gradient, g either way); its dgamma
// and dbeta are its sums Σg·x̂ and Σg, each summed in float32 over at most
// 256 values then in float64 both ways, so each is within γ₂₆₀·Σ|term| of
// the exact sum (u = 2⁻²⁴, γₙ = nu/(1 − nu)) and the two within twice
// that, plus a rounding of each to float32; Σ|term| is bounded here by its
// sum over every element, masked or not (from the run without, which
// retains the batch norm's output gradient, and its input). What reads the
// batch norm's input gradient next (the first convolution's weight
// gradient, through bfloat16) can differ by a flipped rounding and is not
// compared. The batch norm's output gradient, retained, must be the same
// too where the mask comes through the map (stored unmasked); retaining
// the block's output gradient keeps its sums with its batch norm (it
// would be stored masked). Channels: 16, 32, 64 (two blocks of tiles).
func TestGradSumsInData(t *testing.T) {
	gamma := func(n float64) float64 { u := math.Ldexp(1, -24); return n * u / (1 - n*u) }
	for _, c := range []struct {
		n, h, c int
		reread  int // 0: none; 1: recorded after the second convolution; 2: before it
		block   bool
		retain  bool // the block's output gradient retained: not stored masked, so no sums
	}{{3, 9, 16, 0, false, false}, {2, 8, 32, 0, false, false}, {2, 6, 64, 0, false, false}, {3, 9, 16, 1, false, false},
		{3, 9, 16, 2, false, false}, {3, 9, 16, 0, true, false}, {2, 6, 64, 0, true, false}, {3, 9, 16, 0, true, true}} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			s := kernels.ConvShape{N: c.n, H: c.h, W: c.h, C: c.c, OC: c.c, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}
			if !kernels.AMXBF16() || !kernels.ConvReLUAffineBF16OK(s) || !kernels.ConvGradBF16OK(s) {
				t.Skip("no AMX-BF16 tiles here (CPU, system, RESIDUAL_AMX=0 or RESIDUAL_KERNELS): the data gradient makes no sums")
			}
			rng := tensor.NewRNG(24)
			xt := rng.Randn(c.n, c.h, c.h, 8)
			w1t, w2t, wst := rng.Randn(3, 3, 8, c.c), rng.Randn(3, 3, c.c, c.c), rng.Randn(3, 3, 8, c.c)
			g1t, b1t := rng.Randn(c.c), rng.Randn(c.c)
			rt, qt := rng.Randn(c.n, c.h, c.h, c.c), rng.Randn(c.n, c.h, c.h, c.c)
			type result struct {
				loss   float32
				before [][]float32 // computed before the first batch norm's backward step
				dg, db []float32
				dy, h  []float32 // the first batch norm's output gradient (retained without the sums) and input
				taken  int64
			}
			run := func(on bool) result {
				defer func(g bool) { gradSumsInData = g }(gradSumsInData)
				gradSumsInData = on
				taken := gradSumsTaken.Load()
				tp := NewTape()
				tp.SetPrecision(BF16)
				w1, w2, ws := Param(w1t.Clone(), "w1"), Param(w2t.Clone(), "w2"), Param(wst.Clone(), "ws")
				g1, b1 := Param(g1t.Clone(), "g1"), Param(b1t.Clone(), "b1")
				g2, b2 := Param(tensor.Full(1, c.c), "g2"), Param(tensor.New(c.c), "b2")
				bp := BatchNormParams{Training: true, Momentum: 0.1, Eps: 1e-5}
				x := tp.Constant(xt)
				h := Conv2d(x, w1, nil, ConvParams{Pad: SymmetricPad(1, 1)})
				var mid, again *Value
				if c.block {
					skip := Conv2d(x, ws, nil, ConvParams{Pad: SymmetricPad(1, 1)})
					mid = ReLU(Add(BatchNorm(h, g1, b1, tensor.New(c.c), tensor.Full(1, c.c), bp), skip))
				} else {
					mid = ReLU(BatchNorm(h, g1, b1, tensor.New(c.c), tensor.Full(1, c.c), bp))
				}
				if !on || !c.block || c.retain { // a stored-output batch norm's sums need it unretained
					mid.RetainGrad()
				}
				if c.reread == 2 {
					again = ReLU(mid)
				}
				o := Conv2d(mid, w2, nil, ConvParams{Pad: SymmetricPad(1, 1)})
				if c.reread == 1 {
					again = ReLU(mid)
				}
				if c.block {
					o = ReLU(Add(BatchNorm(o, g2, b2, tensor.New(c.c), tensor.Full(1, c.c), bp), mid))
				} else {
					o = ReLU(BatchNorm(o, g2, b2, tensor.New(c.c), tensor.Full(1, c.c), bp))
				}
				loss := Sum(Mul(o, tp.Constant(rt)))
				if again != nil {
					loss = Add(loss, Sum(Mul(again, tp.Constant(qt))))
				}
				tp.Backward(loss)
				r := result{loss: loss.Tensor().Data[0], before: [][]float32{w2.Grad.Data, g2.Grad.Data, b2.Grad.Data},
					dg: g1.Grad.Data, db: b1.Grad.Data, h: h.Tensor().Data, taken: gradSumsTaken.Load() - taken}
				if c.block {
					r.before = append(r.before, ws.Grad.Data)
				}
				if mid.retain {
					r.dy = mid.Grad.Data
				}
				return r
			}
			on, off := run(true), run(false)
			want := int64(1)
			if c.reread == 2 || c.retain {
				want = 0
			}
			if on.taken != want || off.taken != 0 {
				t.Fatalf("%d batch norms took the data gradient's sums (%d with gradSumsInData off), want %d", on.taken, off.taken, want)
			}
			if math.Float32bits(on.loss) != math.Float32bits(off.loss) {
				t.Fatalf("loss %g with the sums, %g without", on.loss, off.loss)
			}
			for i, name := range []string{"w2", "gamma2", "beta2", "the skip's weights"}[:len(on.before)] {
				for j, v := range on.before[i] {
					if math.Float32bits(v) != math.Float32bits(off.before[i][j]) {
						t.Fatalf("d%s[%d]: %g with the sums, %g without", name, j, v, off.before[i][j])
					}
				}
			}
			if on.dy != nil { // retained: the batch norm's output gradient as the convolutions left it
				for j, v := range on.dy {
					if math.Float32bits(v) != math.Float32bits(off.dy[j]) {
						t.Fatalf("the batch norm's output gradient [%d]: %g with the sums, %g without", j, v, off.dy[j])
					}
				}
			}
			m := len(on.h) / c.c
			mean, varc := make([]float64, c.c), make([]float64, c.c)
			for i, v := range on.h {
				mean[i%c.c] += float64(v) / float64(m)
			}
			for i, v := range on.h {
				d := float64(v) - mean[i%c.c]
				varc[i%c.c] += d * d / float64(m)
			}
			magG, magGX := make([]float64, c.c), make([]float64, c.c)
			for i, g := range off.dy {
				j := i % c.c
				magG[j] += math.Abs(float64(g))
				magGX[j] += math.Abs(float64(g) * (float64(on.h[i]) - mean[j]) / math.Sqrt(varc[j]+1e-5))
			}
			u := math.Ldexp(1, -24)
			for j := range c.c {
				// the float32 invStd and mean the kernels use are within
				// a few u of these: 1% more covers them
				if tol := 1.01*2*gamma(260)*magGX[j] + u*(math.Abs(float64(on.dg[j]))+math.Abs(float64(off.dg[j]))); math.Abs(float64(on.dg[j]-off.dg[j])) > tol {
					t.Fatalf("dgamma[%d]: %g with the sums, %g without (± %g)", j, on.dg[j], off.dg[j], tol)
				}
				if tol := 2*gamma(260)*magG[j] + u*(math.Abs(float64(on.db[j]))+math.Abs(float64(off.db[j]))); math.Abs(float64(on.db[j]-off.db[j])) > tol {
					t.Fatalf("dbeta[%d]: %g with the sums, %g without (± %g)", j, on.db[j], off.db[j], tol)
				}
			}
		})
	}
}

// TestDataStoredBF16 runs a bfloat16 training step through two basic
// blocks (stem, conv → batch norm → ReLU → conv → batch norm + skip →
// ReLU, twice, a strided convolution after) with the blocks' batch norms
// storing their outputs in bfloat16 too for the convolutions that read
// them next (dataBF16Inputs) and without: the loss, every parameter's
// gradient and the running statistics must agree bit for bit, and the
// copies must have been stored (and read: the first block's output by
// the second block's conv1, the second's by the strided convolution, in
// their forward passes and weight gradients: four reads).
// Channels 16 and 32, an odd batch.
func TestDataStoredBF16(t *testing.T) {
	s := kernels.ConvShape{N: 3, H: 8, W: 8, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}
	if !kernels.InputBF16OK(s) || !kernels.BatchNormForwardToBF16OK(16) {
		t.Skip("no AMX-BF16 tiles or AVX512-BF16 conversions here: no input is stored as bfloat16")
	}
	rng := tensor.NewRNG(25)
	xt := rng.Randn(3, 8, 8, 8)
	ws := []*tensor.Tensor{rng.Randn(3, 3, 8, 16), rng.Randn(3, 3, 16, 16), rng.Randn(3, 3, 16, 16), rng.Randn(3, 3, 16, 16),
		rng.Randn(3, 3, 16, 16), rng.Randn(3, 3, 16, 32)}
	rt := rng.Randn(3, 4, 4, 32)
	type result struct {
		loss          float32
		grads         [][]float32
		runs          [][]float32
		copies, reads int
	}
	run := func(on bool) result {
		defer func(v bool) { dataBF16Inputs = v }(dataBF16Inputs)
		dataBF16Inputs = on
		reads := dataBF16Reads.Load()
		tp := NewTape()
		tp.SetPrecision(BF16)
		var params []*Value
		var runs []*tensor.Tensor
		bp := BatchNormParams{Training: true, Momentum: 0.1, Eps: 1e-5}
		bn := func(v *Value, c int) *Value {
			g, b := Param(tensor.Full(1, c), "g"), Param(tensor.New(c), "b")
			rm, rv := tensor.New(c), tensor.Full(1, c)
			params, runs = append(params, g, b), append(runs, rm, rv)
			return BatchNorm(v, g, b, rm, rv, bp)
		}
		conv := func(v *Value, i, stride int) *Value {
			w := Param(ws[i].Clone(), "w")
			params = append(params, w)
			return Conv2d(v, w, nil, ConvParams{Stride: [2]int{stride, stride}, Pad: SymmetricPad(1, 1)})
		}
		h := ReLU(bn(conv(tp.Constant(xt), 0, 1), 16))
		var outs []*Value
		for i := 1; i <= 3; i += 2 {
			o := ReLU(bn(conv(h, i, 1), 16))
			h = ReLU(Add(bn(conv(o, i+1, 1), 16), h))
			outs = append(outs, h)
		}
		o := ReLU(bn(conv(h, 5, 2), 32))
		loss := Sum(Mul(o, tp.Constant(rt)))
		r := result{}
		for _, v := range outs {
			if v.dataBF16 != nil {
				r.copies++
			}
		}
		tp.Backward(loss)
		r.loss, r.reads = loss.Tensor().Data[0], int(dataBF16Reads.Load()-reads)
		for _, p := range params {
			r.grads = append(r.grads, p.Grad.Data)
		}
		for _, rs := range runs {
			r.runs = append(r.runs, rs.Data)
		}
		return r
	}
	on, off := run(true), run(false)
	if on.copies != 2 || off.copies != 0 || on.reads != 4 || off.reads != 0 {
		t.Fatalf("%d block outputs stored in bfloat16 and %d reads of them (%d and %d with dataBF16Inputs off), want 2 and 4", on.copies, on.reads, off.copies, off.reads)
	}
	if math.Float32bits(on.loss) != math.Float32bits(off.loss) {
		t.Fatalf("loss %g with the copies, %g without", on.loss, off.loss)
	}
	for i := range on.grads {
		for j, v := range on.grads[i] {
			if math.Float32bits(v) != math.Float32bits(off.grads[i][j]) {
				t.Fatalf("parameter %d gradient %d: %g with the copies, %g without", i, j, v, off.grads[i][j])
			}
		}
	}
	for i := range on.runs {
		for j, v := range on.runs[i] {
			if math.Float32bits(v) != math.Float32bits(off.runs[i][j]) {
				t.Fatalf("running statistic %d[%d]: %g with the copies, %g without", i, j, v, off.runs[i][j])
			}
		}
	}
}
