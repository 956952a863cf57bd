package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
)

// Finite-difference gradient checks in float64 for every forward/backward
// pair. The scalar checked is L = Σ y·r for a fixed random r, so the
// analytic gradient is the backward pass fed with dy = r. Central
// differences with step 1e-6; a gradient passes when
// |analytic − numeric| ≤ 1e-6 + 1e-5·|numeric| (the truncation error is
// ~1e-12 and rounding ~1e-10·|L| at this step, far inside the bound).
const (
	fdStep = 1e-6
	fdAtol = 1e-6
	fdRtol = 1e-5
)

type fdCase struct {
	name   string
	inputs [][]float64
	// fwd computes the output from the inputs.
	fwd func(in [][]float64) []float64
	// bwd returns the gradient of each input (nil = not differentiable,
	// e.g. integer-like inputs) for upstream gradient dy.
	bwd func(in [][]float64, dy []float64) [][]float64
}

func runFD(t *testing.T, c fdCase) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 11))
	y := c.fwd(c.inputs)
	proj := kt.RandF64(r, len(y))
	loss := func() float64 {
		s := 0.0
		for i, v := range c.fwd(c.inputs) {
			s += v * proj[i]
		}
		return s
	}
	grads := c.bwd(c.inputs, proj)
	bad := 0
	for k, in := range c.inputs {
		if grads[k] == nil {
			continue
		}
		for j := range in {
			orig := in[j]
			in[j] = orig + fdStep
			lp := loss()
			in[j] = orig - fdStep
			lm := loss()
			in[j] = orig
			num := (lp - lm) / (2 * fdStep)
			if d := math.Abs(grads[k][j] - num); d > fdAtol+fdRtol*math.Abs(num) || math.IsNaN(grads[k][j]) {
				if bad < 5 {
					t.Errorf("%s: input %d element %d: analytic %.9g, numeric %.9g", c.name, k, j, grads[k][j], num)
				}
				bad++
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d gradient elements out of tolerance", c.name, bad)
	}
}

func convCase(name string, s ConvShape, bias bool) fdCase {
	r := rand.New(rand.NewPCG(1, uint64(s.H*31+s.W)))
	in := [][]float64{kt.RandF64(r, s.N*s.H*s.W*s.C), kt.RandF64(r, s.KH*s.KW*s.C*s.OC)}
	if bias {
		in = append(in, kt.RandF64(r, s.OC))
	}
	ny := s.N * s.OH() * s.OW() * s.OC
	return fdCase{name: name, inputs: in,
		fwd: func(in [][]float64) []float64 {
			y := make([]float64, ny)
			convForwardRef(s, in[0], in[1], y)
			if bias {
				BiasForward(y, in[2])
			}
			return y
		},
		bwd: func(in [][]float64, dy []float64) [][]float64 {
			dx := make([]float64, len(in[0]))
			dw := make([]float64, len(in[1]))
			convBackwardDataRef(s, dy, in[1], dx)
			convBackwardWeightRef(s, in[0], dy, dw)
			g := [][]float64{dx, dw}
			if bias {
				db := make([]float64, s.OC)
				BiasBackward(dy, db)
				g = append(g, db)
			}
			return g
		}}
}

func TestGradConv(t *testing.T) {
	shapes := []ConvShape{
		{N: 2, H: 5, W: 6, C: 3, OC: 4, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 7, W: 5, C: 2, OC: 3, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, // stride 2, odd input
		{N: 1, H: 6, W: 6, C: 3, OC: 2, KH: 1, KW: 1, SH: 2, SW: 2, DH: 1, DW: 1},                             // 1x1 stride 2
		{N: 1, H: 9, W: 8, C: 2, OC: 3, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3}, // stem
		{N: 2, H: 6, W: 5, C: 2, OC: 3, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1},                             // valid
		{N: 1, H: 6, W: 7, C: 2, OC: 2, KH: 3, KW: 2, SH: 2, SW: 1, DH: 1, DW: 1, PT: 0, PL: 1, PB: 2, PR: 0}, // asymmetric
		{N: 1, H: 7, W: 7, C: 2, OC: 2, KH: 3, KW: 3, SH: 1, SW: 1, DH: 2, DW: 2, PT: 1, PL: 1, PB: 1, PR: 1}, // dilation
	}
	for i, s := range shapes {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		runFD(t, convCase(fmt.Sprintf("conv%d", i), s, i%2 == 0))
	}
}

// A transposed convolution is ConvBackwardData seen as a function of its
// (dy, w) inputs.
func TestGradConvTranspose(t *testing.T) {
	for i, s := range []ConvShape{
		{N: 2, H: 8, W: 6, C: 2, OC: 3, KH: 2, KW: 2, SH: 2, SW: 2, DH: 1, DW: 1},                             // U-Net up-conv
		{N: 1, H: 7, W: 7, C: 2, OC: 2, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}, // general
	} {
		r := rand.New(rand.NewPCG(3, uint64(i)))
		oh, ow := s.OH(), s.OW()
		in := [][]float64{kt.RandF64(r, s.N*oh*ow*s.OC), kt.RandF64(r, s.KH*s.KW*s.C*s.OC)}
		runFD(t, fdCase{name: fmt.Sprintf("convT%d", i), inputs: in,
			fwd: func(in [][]float64) []float64 {
				y := make([]float64, s.N*s.H*s.W*s.C)
				convBackwardDataRef(s, in[0], in[1], y)
				return y
			},
			bwd: func(in [][]float64, dy []float64) [][]float64 {
				dx := make([]float64, len(in[0]))
				dw := make([]float64, len(in[1]))
				convForwardRef(s, dy, in[1], dx)
				convBackwardWeightRef(s, dy, in[0], dw)
				return [][]float64{dx, dw}
			}})
	}
}

func TestGradPool(t *testing.T) {
	shapes := []PoolShape{
		{N: 2, H: 6, W: 5, C: 3, KH: 2, KW: 2, SH: 2, SW: 2, DH: 1, DW: 1},
		{N: 1, H: 7, W: 7, C: 2, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 1, H: 6, W: 7, C: 2, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, CeilMode: true},
		{N: 1, H: 5, W: 5, C: 2, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1, CountIncludePad: true},
	}
	for i, s := range shapes {
		r := rand.New(rand.NewPCG(5, uint64(i)))
		in := [][]float64{kt.RandF64(r, s.N*s.H*s.W*s.C)}
		ny := s.N * s.OH() * s.OW() * s.C
		runFD(t, fdCase{name: fmt.Sprintf("maxpool%d", i), inputs: in,
			fwd: func(in [][]float64) []float64 {
				y := make([]float64, ny)
				maxPoolForwardRef(s, in[0], y, make([]int32, ny))
				return y
			},
			bwd: func(in [][]float64, dy []float64) [][]float64 {
				y, arg := make([]float64, ny), make([]int32, ny)
				maxPoolForwardRef(s, in[0], y, arg)
				dx := make([]float64, len(in[0]))
				MaxPoolBackward(dy, arg, dx)
				return [][]float64{dx}
			}})
		runFD(t, fdCase{name: fmt.Sprintf("avgpool%d", i), inputs: in,
			fwd: func(in [][]float64) []float64 {
				y := make([]float64, ny)
				AvgPoolForward(s, in[0], y)
				return y
			},
			bwd: func(in [][]float64, dy []float64) [][]float64 {
				dx := make([]float64, len(in[0]))
				AvgPoolBackward(s, dy, dx)
				return [][]float64{dx}
			}})
	}
	r := rand.New(rand.NewPCG(5, 99))
	runFD(t, fdCase{name: "globalavgpool", inputs: [][]float64{kt.RandF64(r, 2*3*5*4)},
		fwd: func(in [][]float64) []float64 {
			y := make([]float64, 2*4)
			GlobalAvgPoolForward(2, 15, 4, in[0], y)
			return y
		},
		bwd: func(in [][]float64, dy []float64) [][]float64 {
			dx := make([]float64, len(in[0]))
			GlobalAvgPoolBackward(2, 15, 4, dy, dx)
			return [][]float64{dx}
		}})
}

// TestPoolShapePaddingAlone: Validate refuses a pad as wide as the
// (dilated) window, where a window would hold padding alone (−Inf from max
// pooling, 0/0 from an average leaving the padding out), on any side, and
// takes one narrower (ONNX's rule, which interop/onnx runs here; autograd
// takes PyTorch's half of the window).
func TestPoolShapePaddingAlone(t *testing.T) {
	base := PoolShape{N: 1, H: 4, W: 4, C: 1, KH: 2, KW: 3, SH: 1, SW: 1, DH: 2, DW: 1}
	for _, c := range []struct {
		pad [4]int // top, left, bottom, right
		ok  bool
	}{
		{[4]int{2, 2, 2, 2}, true}, {[4]int{3, 0, 0, 0}, false}, {[4]int{0, 0, 3, 0}, false},
		{[4]int{0, 3, 0, 0}, false}, {[4]int{0, 0, 0, 3}, false},
	} {
		s := base
		s.PT, s.PL, s.PB, s.PR = c.pad[0], c.pad[1], c.pad[2], c.pad[3]
		err := s.Validate()
		if c.ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "padding alone") {
			t.Errorf("pads %v on a 3x3 window: %v; want ok %v or a refusal naming the padding", c.pad, err, c.ok)
		}
	}
}

func TestGradBatchNorm(t *testing.T) {
	const m, c, eps = 13, 4, 1e-5
	r := rand.New(rand.NewPCG(9, 1))
	x := kt.RandF64(r, m*c)
	for i := range x {
		x[i] = 2*x[i] + 0.5
	}
	gamma, beta, skip := kt.RandF64(r, c), kt.RandF64(r, c), kt.RandF64(r, m*c)
	rm, rv := kt.RandF64(r, c), kt.RandF64(r, c)
	for i := range rv {
		rv[i] = 0.5 + rv[i]*rv[i]
	}
	// Each case fuses a skip addition (the fourth input) and/or a ReLU.
	for _, fu := range []struct {
		name       string
		skip, relu bool
	}{{"", false, false}, {"-relu", false, true}, {"-add-relu", true, true}, {"-add", true, false}} {
		inputs := func() [][]float64 {
			in := [][]float64{append([]float64(nil), x...), append([]float64(nil), gamma...), append([]float64(nil), beta...)}
			if fu.skip {
				in = append(in, append([]float64(nil), skip...))
			}
			return in
		}
		fused := func(in [][]float64) Fused[float64] {
			f := Fused[float64]{ReLU: fu.relu}
			if fu.skip {
				f.Skip = in[3]
			}
			return f
		}
		// back fills the backward half of f from the forward's output y
		// and returns the skip gradient's slot in the result.
		back := func(f Fused[float64], y []float64) (Fused[float64], []float64) {
			f.Y = y
			if fu.skip {
				f.DSkip = make([]float64, m*c)
			}
			return f, f.DSkip
		}
		grads := func(dx, dg, db, ds []float64) [][]float64 {
			g := [][]float64{dx, dg, db}
			if fu.skip {
				g = append(g, ds)
			}
			return g
		}
		runFD(t, fdCase{name: "batchnorm-train" + fu.name, inputs: inputs(),
			fwd: func(in [][]float64) []float64 {
				y := make([]float64, m*c)
				batchNormTrainForwardRef(m, c, in[0], in[1], in[2], y, make([]float64, c), make([]float64, c), nil, nil, 0.1, eps, fused(in))
				return y
			},
			bwd: func(in [][]float64, dy []float64) [][]float64 {
				y, mean, is := make([]float64, m*c), make([]float64, c), make([]float64, c)
				batchNormTrainForwardRef(m, c, in[0], in[1], in[2], y, mean, is, nil, nil, 0.1, eps, fused(in))
				dx, dg, db := make([]float64, m*c), make([]float64, c), make([]float64, c)
				f, ds := back(fused(in), y)
				batchNormTrainBackwardRef(m, c, in[0], in[1], mean, is, dy, dx, dg, db, f)
				return grads(dx, dg, db, ds)
			}})
		runFD(t, fdCase{name: "batchnorm-eval" + fu.name, inputs: inputs(),
			fwd: func(in [][]float64) []float64 {
				y := make([]float64, m*c)
				batchNormEvalForwardRef(m, c, in[0], in[1], in[2], rm, rv, y, eps, fused(in))
				return y
			},
			bwd: func(in [][]float64, dy []float64) [][]float64 {
				y := make([]float64, m*c)
				batchNormEvalForwardRef(m, c, in[0], in[1], in[2], rm, rv, y, eps, fused(in))
				dx, dg, db := make([]float64, m*c), make([]float64, c), make([]float64, c)
				f, ds := back(fused(in), y)
				BatchNormEvalBackward(m, c, in[0], in[1], rm, rv, dy, dx, dg, db, eps, f)
				return grads(dx, dg, db, ds)
			}})
	}
}

func TestGradGemm(t *testing.T) {
	const m, n, k = 4, 5, 3
	for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		ta, tb := tr[0], tr[1]
		r := rand.New(rand.NewPCG(2, 3))
		lda, ldb := k, n
		if ta {
			lda = m
		}
		if tb {
			ldb = k
		}
		runFD(t, fdCase{name: fmt.Sprintf("gemm%v%v", ta, tb), inputs: [][]float64{kt.RandF64(r, m*k), kt.RandF64(r, k*n)},
			fwd: func(in [][]float64) []float64 {
				c := make([]float64, m*n)
				gemmRef(ta, tb, m, n, k, 1.5, in[0], lda, in[1], ldb, 0, c, n)
				return c
			},
			bwd: func(in [][]float64, dc []float64) [][]float64 {
				da, db := make([]float64, m*k), make([]float64, k*n)
				// dop(A) = alpha·dC·op(B)ᵀ; dop(B) = alpha·op(A)ᵀ·dC.
				if ta {
					gemmRef(tb, true, k, m, n, 1.5, in[1], ldb, dc, n, 0, da, m) // dA[k,m] = op(B)·dCᵀ
				} else {
					gemmRef(false, !tb, m, k, n, 1.5, dc, n, in[1], ldb, 0, da, k)
				}
				if tb {
					gemmRef(true, ta, n, k, m, 1.5, dc, n, in[0], lda, 0, db, k) // dB[n,k] = dCᵀ·op(A)
				} else {
					gemmRef(!ta, false, k, n, m, 1.5, in[0], lda, dc, n, 0, db, n)
				}
				return [][]float64{da, db}
			}})
	}
}

func TestGradSoftmax(t *testing.T) {
	const outer, k, inner = 2, 5, 3
	r := rand.New(rand.NewPCG(4, 4))
	x := kt.RandF64(r, outer*k*inner)
	for _, log := range []bool{false, true} {
		runFD(t, fdCase{name: fmt.Sprintf("softmax-log%v", log), inputs: [][]float64{x},
			fwd: func(in [][]float64) []float64 {
				y := make([]float64, len(x))
				if log {
					LogSoftmaxForward(outer, k, inner, in[0], y)
				} else {
					SoftmaxForward(outer, k, inner, in[0], y)
				}
				return y
			},
			bwd: func(in [][]float64, dy []float64) [][]float64 {
				y, dx := make([]float64, len(x)), make([]float64, len(x))
				if log {
					LogSoftmaxForward(outer, k, inner, in[0], y)
					LogSoftmaxBackward(outer, k, inner, y, dy, dx)
				} else {
					SoftmaxForward(outer, k, inner, in[0], y)
					SoftmaxBackward(outer, k, inner, y, dy, dx)
				}
				return [][]float64{dx}
			}})
	}
}

func TestGradLosses(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	const m, k = 7, 4
	targets := []int32{0, 3, 1, -100, 2, 3, 0}
	for _, l := range []CrossEntropy[float64]{
		{M: m, K: k, IgnoreIndex: -100},
		{M: m, K: k, IgnoreIndex: -100, Weight: []float64{0.5, 2, 1, 0.25}},
		{M: m, K: k, IgnoreIndex: 3, Sum: true},
		{M: m, K: k, IgnoreIndex: -100, Weight: []float64{0.5, 2, 1, 0.25}, RowWeight: []float64{1, 3, 0.5, 2, 1, 10, 0.1}},
	} {
		if err := l.Check(targets); err != nil && l.IgnoreIndex != 3 {
			t.Fatal(err)
		}
		tg := targets
		if l.IgnoreIndex == 3 {
			tg = []int32{0, 3, 1, 2, 2, 3, 0}
		}
		runFD(t, fdCase{name: fmt.Sprintf("crossentropy%+v", l), inputs: [][]float64{kt.RandF64(r, m*k)},
			fwd: func(in [][]float64) []float64 {
				v, _ := l.Forward(in[0], tg)
				return []float64{v}
			},
			bwd: func(in [][]float64, dy []float64) [][]float64 {
				_, norm := l.Forward(in[0], tg)
				dx := make([]float64, m*k)
				l.Backward(in[0], tg, norm, dy[0], dx)
				return [][]float64{dx}
			}})
	}
	for _, d := range []Dice[float64]{{M: m, K: k, IgnoreIndex: -100}, {M: m, K: k, IgnoreIndex: 3}} {
		tg := targets
		if d.IgnoreIndex == 3 {
			tg = []int32{0, 3, 1, 2, 2, 3, 0}
		}
		if err := d.Check(tg); err != nil {
			t.Fatal(err)
		}
		runFD(t, fdCase{name: fmt.Sprintf("dice%+v", d), inputs: [][]float64{kt.RandF64(r, m*k)},
			fwd: func(in [][]float64) []float64 { return []float64{d.Forward(in[0], tg)} },
			bwd: func(in [][]float64, dy []float64) [][]float64 {
				dx := make([]float64, m*k)
				d.Backward(in[0], tg, dy[0], dx)
				return [][]float64{dx}
			}})
	}
	tgt := make([]float64, 10)
	for i := range tgt {
		tgt[i] = r.Float64()
	}
	runFD(t, fdCase{name: "bce", inputs: [][]float64{kt.RandF64(r, 10), tgt},
		fwd: func(in [][]float64) []float64 { return []float64{BCEWithLogitsForward(in[0], in[1])} },
		bwd: func(in [][]float64, dy []float64) [][]float64 {
			dx := make([]float64, 10)
			BCEWithLogitsBackward(in[0], in[1], dy[0], dx)
			return [][]float64{dx, nil}
		}})
	runFD(t, fdCase{name: "mse", inputs: [][]float64{kt.RandF64(r, 10), tgt},
		fwd: func(in [][]float64) []float64 { return []float64{MSEForward(in[0], in[1])} },
		bwd: func(in [][]float64, dy []float64) [][]float64 {
			dx := make([]float64, 10)
			MSEBackward(in[0], in[1], dy[0], dx)
			return [][]float64{dx, nil}
		}})
}

func TestGradShapeOps(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	dims := []int{2, 3, 1}
	runFD(t, fdCase{name: "concat", inputs: [][]float64{kt.RandF64(r, 2*2*3), kt.RandF64(r, 2*3*3), kt.RandF64(r, 2*1*3)},
		fwd: func(in [][]float64) []float64 {
			y := make([]float64, 2*6*3)
			ConcatForward(2, 3, dims, in, y)
			return y
		},
		bwd: func(in [][]float64, dy []float64) [][]float64 {
			dx := [][]float64{make([]float64, 12), make([]float64, 18), make([]float64, 6)}
			ConcatBackward(2, 3, dims, dy, dx)
			return dx
		}})
	runFD(t, fdCase{name: "crop", inputs: [][]float64{kt.RandF64(r, 2*7*6*3)},
		fwd: func(in [][]float64) []float64 {
			y := make([]float64, 2*3*4*3)
			CropForward(2, 7, 6, 3, 2, 1, 3, 4, in[0], y)
			return y
		},
		bwd: func(in [][]float64, dy []float64) [][]float64 {
			dx := make([]float64, len(in[0]))
			CropBackward(2, 7, 6, 3, 2, 1, 3, 4, dy, dx)
			return [][]float64{dx}
		}})
	shape := []int{2, 4, 5}
	for _, mode := range []PadMode{PadConstant, PadReflect, PadEdge} {
		maps := [][]int{PadIndex(2, 0, 1, mode), PadIndex(4, 2, 3, mode), PadIndex(5, 1, 0, mode)}
		runFD(t, fdCase{name: fmt.Sprintf("pad%d", mode), inputs: [][]float64{kt.RandF64(r, 40)},
			fwd: func(in [][]float64) []float64 {
				y := make([]float64, 3*9*6)
				PadForward(shape, maps, 0.5, in[0], y)
				return y
			},
			bwd: func(in [][]float64, dy []float64) [][]float64 {
				dx := make([]float64, 40)
				PadBackward(shape, maps, dy, dx)
				return [][]float64{dx}
			}})
	}
	runFD(t, fdCase{name: "subsamplepad", inputs: [][]float64{kt.RandF64(r, 2*5*5*3)},
		fwd: func(in [][]float64) []float64 {
			y := make([]float64, 2*3*3*6)
			SubsamplePadForward(2, 5, 5, 3, 2, 1, 2, in[0], y)
			return y
		},
		bwd: func(in [][]float64, dy []float64) [][]float64 {
			dx := make([]float64, len(in[0]))
			SubsamplePadBackward(2, 5, 5, 3, 2, 1, 2, dy, dx)
			return [][]float64{dx}
		}})
}

func TestGradElementwise(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	x := kt.RandF64(r, 20)
	for i := range x { // keep away from the kink
		if math.Abs(x[i]) < 1e-3 {
			x[i] = 0.5
		}
	}
	runFD(t, fdCase{name: "relu", inputs: [][]float64{x},
		fwd: func(in [][]float64) []float64 {
			y := make([]float64, 20)
			reluForwardRef(in[0], y)
			return y
		},
		bwd: func(in [][]float64, dy []float64) [][]float64 {
			y, dx := make([]float64, 20), make([]float64, 20)
			reluForwardRef(in[0], y)
			reluBackwardRef(y, dy, dx)
			return [][]float64{dx}
		}})
	runFD(t, fdCase{name: "mul", inputs: [][]float64{kt.RandF64(r, 20), kt.RandF64(r, 20)},
		fwd: func(in [][]float64) []float64 {
			y := make([]float64, 20)
			Mul(in[0], in[1], y)
			return y
		},
		bwd: func(in [][]float64, dy []float64) [][]float64 {
			da, db := make([]float64, 20), make([]float64, 20)
			Mul(dy, in[1], da)
			Mul(dy, in[0], db)
			return [][]float64{da, db}
		}})
}

// TestSubsamplePadWritesEveryElement holds SubsamplePadForward and
// SubsamplePadBackward to their definitions, element by element, on
// outputs filled with NaN first (each element must be written, the zeros
// too), at shapes large enough to be split over several chunks of rows,
// with odd sizes and strides 1–3.
func TestSubsamplePadWritesEveryElement(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	nan := float32(math.NaN())
	for _, tc := range []struct{ n, h, w, c, s, before, after int }{
		{8, 32, 32, 16, 2, 8, 8}, {3, 33, 31, 16, 2, 0, 16}, {2, 17, 19, 5, 3, 2, 0}, {4, 28, 28, 32, 1, 0, 0}, {1, 1, 1, 3, 2, 1, 1},
	} {
		oh, ow, oc := (tc.h+tc.s-1)/tc.s, (tc.w+tc.s-1)/tc.s, tc.before+tc.c+tc.after
		x := make([]float32, tc.n*tc.h*tc.w*tc.c)
		for i := range x {
			x[i] = r.Float32() + 1
		}
		y := make([]float32, tc.n*oh*ow*oc)
		for i := range y {
			y[i] = nan
		}
		SubsamplePadForward(tc.n, tc.h, tc.w, tc.c, tc.s, tc.before, tc.after, x, y)
		dy := make([]float32, len(y))
		for i := range dy {
			dy[i] = r.Float32() + 1
		}
		dx := make([]float32, len(x))
		for i := range dx {
			dx[i] = nan
		}
		SubsamplePadBackward(tc.n, tc.h, tc.w, tc.c, tc.s, tc.before, tc.after, dy, dx)
		for i := range tc.n {
			for a := range oh {
				for b := range ow {
					for k := range oc {
						want := float32(0)
						if k >= tc.before && k < tc.before+tc.c {
							want = x[((i*tc.h+a*tc.s)*tc.w+b*tc.s)*tc.c+k-tc.before]
						}
						if got := y[((i*oh+a)*ow+b)*oc+k]; got != want {
							t.Fatalf("%+v: y[%d,%d,%d,%d] = %v, want %v", tc, i, a, b, k, got, want)
						}
					}
				}
			}
			for a := range tc.h {
				for b := range tc.w {
					for k := range tc.c {
						want := float32(0)
						if a%tc.s == 0 && b%tc.s == 0 {
							want = dy[((i*oh+a/tc.s)*ow+b/tc.s)*oc+tc.before+k]
						}
						if got := dx[((i*tc.h+a)*tc.w+b)*tc.c+k]; got != want {
							t.Fatalf("%+v: dx[%d,%d,%d,%d] = %v, want %v", tc, i, a, b, k, got, want)
						}
					}
				}
			}
		}
	}
}
