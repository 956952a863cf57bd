package kernels

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"testing"

	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
)

// The NaN/Inf propagation tests inject NaN, +Inf and −Inf, one kind and one
// input at a time, into each input of every kernel that has a fast float32
// path — activations, weights, skips, per-channel scales and shifts,
// gradients, ReLU masks, optimizer state — and run the float32 entry point
// at every level this CPU has (the assembly kernels where the shape suits
// them, the reference where not) against the float64 reference on the same
// inputs. The other values are normal(0, 1), far from overflow, so every
// non-finite output comes from an injected one: the fast result must be NaN
// exactly where the reference is NaN, the same infinity where it is ±Inf,
// and finite elsewhere. (A kernel that dropped a NaN — a max or a ReLU
// whose operand order returns the number, a skipped zero weight, a masked
// load — fails here.)
//
// The Winograd path cannot match element for element: its transforms add
// and subtract the inputs of a tile, so one infinite input makes Inf − Inf
// (NaN) across the tile's outputs. TestWinogradPropagatesNonFinite holds it
// to the weaker property that matters for the NaN guard: every output that
// the reference makes non-finite is non-finite.

// nanLevels returns the levels to run: the generic one and each assembly
// level; a level this CPU lacks is reported and skipped by the caller.
var nanLevels = []Level{Generic, AVX2, AVX512}

// nanKinds are the injected values.
var nanKinds = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}

// atLevel runs f at level l with the Winograd path off (it is tested
// separately), or skips when the CPU lacks l.
func atLevel(t *testing.T, l Level, f func()) {
	t.Helper()
	if l > detect() {
		t.Skipf("level %v: this CPU lacks it", l)
	}
	prev, prevW := SetLevel(l), winograd
	winograd = false
	defer func() { SetLevel(prev); winograd = prevW }()
	f()
}

// inject returns a copy of v with v's value at three random positions (the
// first, when first is set, and two others) replaced by bad.
func inject(r *rand.Rand, v []float32, bad float32, first bool) []float32 {
	o := append([]float32(nil), v...)
	for i := range 3 {
		j := r.IntN(len(o))
		if i == 0 && first {
			j = 0
		}
		o[j] = bad
	}
	return o
}

// samePattern reports the first element where got (float32) and want (the
// float64 reference) disagree on being NaN, +Inf, −Inf or finite.
func samePattern(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	class := func(v float64) int {
		switch {
		case math.IsNaN(v):
			return 1
		case math.IsInf(v, 1):
			return 2
		case math.IsInf(v, -1):
			return 3
		}
		return 0
	}
	for i := range want {
		if class(float64(got[i])) != class(want[i]) {
			t.Fatalf("%s: element %d: fast %g, reference %g", what, i, got[i], want[i])
		}
	}
}

// nanConvShapes are shapes the direct kernels take at both assembly levels
// (output and input channels multiples of 16): padded 3×3, strided 3×3
// (phased data gradient), 1×1, and a 7×7 stem over 3 channels (forward
// and weight gradient only: its data gradient is the reference's).
var nanConvShapes = []ConvShape{
	{N: 2, H: 7, W: 9, C: 16, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	{N: 1, H: 9, W: 9, C: 16, OC: 16, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	{N: 2, H: 5, W: 6, C: 32, OC: 16, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
	{N: 1, H: 11, W: 11, C: 3, OC: 16, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3},
}

// poison returns ins with the slice named which replaced by a copy that
// holds bad at three random positions; the others are shared.
func poison(r *rand.Rand, ins map[string][]float32, which string, bad float32) map[string][]float32 {
	o := maps.Clone(ins)
	o[which] = inject(r, ins[which], bad, false)
	return o
}

// TestConvPropagatesNaN covers the forward convolution with every
// epilogue input (scale, shift, skip, with and without a ReLU), the data
// gradient, alone and accumulated onto dx, and the weight gradient.
func TestConvPropagatesNaN(t *testing.T) {
	for _, l := range nanLevels {
		t.Run(l.String(), func(t *testing.T) {
			atLevel(t, l, func() {
				r := rand.New(rand.NewPCG(21, 22))
				for si, s := range nanConvShapes {
					if _, _, ok := fastBlocks(s.OC); l > Generic && !ok {
						t.Fatalf("shape %d: the assembly kernels decline it", si)
					}
					nx, ny := s.N*s.H*s.W*s.C, s.N*s.OH()*s.OW()*s.OC
					clean := map[string][]float32{"x": kt.RandF32(r, nx), "w": kt.RandF32(r, s.KH*s.KW*s.C*s.OC), "dy": kt.RandF32(r, ny),
						"scale": kt.RandF32(r, s.OC), "shift": kt.RandF32(r, s.OC), "skip": kt.RandF32(r, ny), "dx": kt.RandF32(r, nx)}
					for _, bad := range nanKinds {
						name := func(what, in string) string { return fmt.Sprintf("shape %d %s, %g in %s", si, what, bad, in) }
						for _, in := range []string{"x", "w", "scale", "shift", "skip"} {
							v := poison(r, clean, in, bad)
							// The epilogue's inputs with and without a ReLU; x
							// and w also without an epilogue.
							for _, relu := range []bool{false, true} {
								e := ConvEpilogue[float32]{Scale: v["scale"], Shift: v["shift"], Skip: v["skip"], ReLU: relu}
								y := make([]float32, ny)
								ConvForwardEpilogue(s, v["x"], v["w"], y, e)
								want := make([]float64, ny)
								convForwardEpilogueRef(s, kt.F64(v["x"]), kt.F64(v["w"]), want, ConvEpilogue[float64]{
									Scale: kt.F64(e.Scale), Shift: kt.F64(e.Shift), Skip: kt.F64(e.Skip), ReLU: relu})
								samePattern(t, name(fmt.Sprintf("epilogue relu=%v", relu), in), y, want)
							}
							if in == "x" || in == "w" {
								y := make([]float32, ny)
								ConvForward(s, v["x"], v["w"], y)
								want := make([]float64, ny)
								convForwardRef(s, kt.F64(v["x"]), kt.F64(v["w"]), want)
								samePattern(t, name("forward", in), y, want)
							}
						}
						for _, in := range []string{"dy", "w", "dx"} {
							v := poison(r, clean, in, bad)
							want := make([]float64, nx)
							convBackwardDataRef(s, kt.F64(v["dy"]), kt.F64(v["w"]), want)
							if in != "dx" {
								dx := make([]float32, nx)
								ConvBackwardData(s, v["dy"], v["w"], dx)
								samePattern(t, name("data gradient", in), dx, want)
							}
							sum := append([]float32(nil), v["dx"]...)
							ConvBackwardDataAdd(s, v["dy"], v["w"], sum)
							wantSum := kt.F64(v["dx"])
							addRef(wantSum, want, wantSum)
							samePattern(t, name("accumulated data gradient", in), sum, wantSum)
						}
						for _, in := range []string{"x", "dy"} {
							v := poison(r, clean, in, bad)
							dw := make([]float32, len(v["w"]))
							ConvBackwardWeight(s, v["x"], v["dy"], dw)
							want := make([]float64, len(dw))
							convBackwardWeightRef(s, kt.F64(v["x"]), kt.F64(v["dy"]), want)
							samePattern(t, name("weight gradient", in), dw, want)
						}
					}
				}
			})
		})
	}
}

// TestGemmPropagatesNaN injects into A (which also holds zeros: 0·NaN and
// 0·Inf are NaN, not skipped), B and C (read when beta ≠ 0), for every
// transposition.
func TestGemmPropagatesNaN(t *testing.T) {
	for _, l := range nanLevels {
		t.Run(l.String(), func(t *testing.T) {
			atLevel(t, l, func() {
				r := rand.New(rand.NewPCG(25, 26))
				m, n, k := 37, 21, 40 // m·n·k over minFastGemm: the kernels take it
				for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
					a, b, c := kt.RandF32(r, m*k), kt.RandF32(r, k*n), kt.RandF32(r, m*n)
					for i := 0; i < len(a); i += 3 {
						a[i] = 0
					}
					lda, ldb := k, n
					if tr[0] {
						lda = m
					}
					if tr[1] {
						ldb = k
					}
					for _, bad := range nanKinds {
						for _, in := range []string{"a", "b", "c"} {
							as, bs, cs := a, b, c
							switch in {
							case "a":
								as = inject(r, a, bad, false)
							case "b":
								bs = inject(r, b, bad, false)
							case "c":
								cs = inject(r, c, bad, false)
							}
							for _, beta := range []float32{0, 0.5} {
								got := append([]float32(nil), cs...)
								Gemm(tr[0], tr[1], m, n, k, 1.5, as, lda, bs, ldb, beta, got, n)
								want := kt.F64(cs)
								gemmRef(tr[0], tr[1], m, n, k, 1.5, kt.F64(as), lda, kt.F64(bs), ldb, float64(beta), want, n)
								samePattern(t, fmt.Sprintf("trans=%v beta=%g %g in %s", tr, beta, bad, in), got, want)
							}
						}
					}
				}
			})
		})
	}
}

// TestBatchNormPropagatesNaN covers training (statistics, with the bad
// value also in the first row, the shift of the one-pass statistics, and
// the running statistics) and evaluation, forward with every fused
// epilogue and backward, on narrow (one-pass) and wide (row-walking)
// channel counts.
func TestBatchNormPropagatesNaN(t *testing.T) {
	for _, l := range nanLevels {
		t.Run(l.String(), func(t *testing.T) {
			atLevel(t, l, func() {
				r := rand.New(rand.NewPCG(27, 28))
				for _, c := range []int{16, 128} {
					m := 40
					if l >= AVX2 && !chanOK(c) {
						t.Fatalf("c=%d: the per-channel kernels decline it", c)
					}
					x, gamma, beta, skip, dy := kt.RandF32(r, m*c), kt.RandF32(r, c), kt.RandF32(r, c), kt.RandF32(r, m*c), kt.RandF32(r, m*c)
					rm, rv := kt.RandF32(r, c), kt.RandF32(r, c)
					for i := range rv {
						rv[i] = 0.5 + rv[i]*rv[i]
					}
					mask := kt.RandF32(r, m*c) // the fused ReLU's output: a third zeros
					for i := 0; i < len(mask); i += 3 {
						mask[i] = 0
					}
					for _, bad := range nanKinds {
						for _, fu := range []struct{ skip, relu bool }{{false, false}, {true, true}} {
							for _, in := range []string{"x", "x row 0", "gamma", "beta", "skip", "runMean", "runVar"} {
								if in == "skip" && !fu.skip {
									continue
								}
								xs, gs, bs, ss, rms, rvs := x, gamma, beta, skip, rm, rv
								switch in {
								case "x", "x row 0":
									xs = inject(r, x, bad, in == "x row 0")
								case "gamma":
									gs = inject(r, gamma, bad, false)
								case "beta":
									bs = inject(r, beta, bad, false)
								case "skip":
									ss = inject(r, skip, bad, false)
								case "runMean":
									rms = inject(r, rm, bad, false)
								case "runVar":
									rvs = inject(r, rv, bad, false)
								}
								name := fmt.Sprintf("c=%d skip=%v relu=%v %g in %s", c, fu.skip, fu.relu, bad, in)
								f := Fused[float32]{ReLU: fu.relu}
								f64f := Fused[float64]{ReLU: fu.relu}
								if fu.skip {
									f.Skip, f64f.Skip = ss, kt.F64(ss)
								}
								// Training: y, the batch statistics and the running ones.
								y, mean, is := make([]float32, m*c), make([]float32, c), make([]float32, c)
								rm32, rv32 := append([]float32(nil), rms...), append([]float32(nil), rvs...)
								BatchNormTrainForward(m, c, xs, gs, bs, y, mean, is, rm32, rv32, 0.1, 1e-5, f)
								wy, wmean, wis, wrm, wrv := make([]float64, m*c), make([]float64, c), make([]float64, c), kt.F64(rms), kt.F64(rvs)
								batchNormTrainForwardRef(m, c, kt.F64(xs), kt.F64(gs), kt.F64(bs), wy, wmean, wis, wrm, wrv, 0.1, 1e-5, f64f)
								for i, p := range []struct {
									got  []float32
									want []float64
								}{{y, wy}, {mean, wmean}, {is, wis}, {rm32, wrm}, {rv32, wrv}} {
									samePattern(t, fmt.Sprintf("%s: train forward output %d", name, i), p.got, p.want)
								}
								// Evaluation.
								ey := make([]float32, m*c)
								BatchNormEvalForward(m, c, xs, gs, bs, rms, rvs, ey, 1e-5, f)
								wey := make([]float64, m*c)
								batchNormEvalForwardRef(m, c, kt.F64(xs), kt.F64(gs), kt.F64(bs), kt.F64(rms), kt.F64(rvs), wey, 1e-5, f64f)
								samePattern(t, name+": eval forward", ey, wey)
							}
						}
						// Backward, from clean statistics: each of x, gamma, dy
						// and the ReLU's mask.
						mean, is := make([]float32, c), make([]float32, c)
						BatchNormTrainForward(m, c, x, gamma, beta, make([]float32, m*c), mean, is, nil, nil, 0.1, 1e-5, Fused[float32]{})
						for _, dskip := range []bool{false, true} {
							for _, in := range []string{"x", "gamma", "dy", "mask"} {
								xs, gs, dys, ms := x, gamma, dy, mask
								switch in {
								case "x":
									xs = inject(r, x, bad, false)
								case "gamma":
									gs = inject(r, gamma, bad, false)
								case "dy":
									dys = inject(r, dy, bad, false)
								case "mask":
									ms = inject(r, mask, bad, false)
								}
								f := Fused[float32]{ReLU: true, Y: ms}
								f64f := Fused[float64]{ReLU: true, Y: kt.F64(ms)}
								if dskip {
									f.DSkip, f64f.DSkip = make([]float32, m*c), make([]float64, m*c)
								}
								dx, dg, db := make([]float32, m*c), make([]float32, c), make([]float32, c)
								BatchNormTrainBackward(m, c, xs, gs, mean, is, dys, dx, dg, db, f)
								wdx, wdg, wdb := make([]float64, m*c), make([]float64, c), make([]float64, c)
								batchNormTrainBackwardRef(m, c, kt.F64(xs), kt.F64(gs), kt.F64(mean), kt.F64(is), kt.F64(dys), wdx, wdg, wdb, f64f)
								name := fmt.Sprintf("c=%d dskip=%v %g in %s: train backward", c, dskip, bad, in)
								samePattern(t, name+" dx", dx, wdx)
								samePattern(t, name+" dgamma", dg, wdg)
								samePattern(t, name+" dbeta", db, wdb)
								if dskip {
									samePattern(t, name+" dskip", f.DSkip, f64f.DSkip)
								}
							}
						}
					}
				}
			})
		})
	}
}

// TestElementwisePropagatesNaN covers max pooling (values and indices: a
// NaN wins its window), ReLU and its gradient, Add and the SGD step, over
// lengths with several chunks and a tail.
func TestElementwisePropagatesNaN(t *testing.T) {
	for _, l := range nanLevels {
		t.Run(l.String(), func(t *testing.T) {
			atLevel(t, l, func() {
				r := rand.New(rand.NewPCG(29, 30))
				ps := PoolShape{N: 2, H: 9, W: 8, C: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}
				x := kt.RandF32(r, ps.N*ps.H*ps.W*ps.C)
				n := 2*elemChunk + 21
				a, b, dy := kt.RandF32(r, n), kt.RandF32(r, n), kt.RandF32(r, n)
				for _, bad := range nanKinds {
					// Two bad values in one window: the first NaN must win.
					xs := inject(r, x, bad, false)
					xs[ps.C+5] = bad
					ny := ps.N * ps.OH() * ps.OW() * ps.C
					y, arg := make([]float32, ny), make([]int32, ny)
					MaxPoolForward(ps, xs, y, arg)
					wy, warg := make([]float64, ny), make([]int32, ny)
					maxPoolForwardRef(ps, kt.F64(xs), wy, warg)
					samePattern(t, fmt.Sprintf("max pool %g", bad), y, wy)
					for i := range warg {
						if arg[i] != warg[i] {
							t.Fatalf("max pool %g: output %d: index %d, reference %d", bad, i, arg[i], warg[i])
						}
					}

					as := inject(r, a, bad, false)
					as[n-1] = bad // in the tail
					y = make([]float32, n)
					ReLUForward(as, y)
					wy = make([]float64, n)
					reluForwardRef(kt.F64(as), wy)
					samePattern(t, fmt.Sprintf("ReLU %g", bad), y, wy)

					for _, in := range []string{"y", "dy"} {
						ys, dys := as, dy
						if in == "dy" {
							ys, dys = a, inject(r, dy, bad, false)
						}
						dx := make([]float32, n)
						ReLUBackward(ys, dys, dx)
						wdx := make([]float64, n)
						reluBackwardRef(kt.F64(ys), kt.F64(dys), wdx)
						samePattern(t, fmt.Sprintf("ReLU gradient %g in %s", bad, in), dx, wdx)
					}

					y = make([]float32, n)
					Add(as, b, y)
					wy = make([]float64, n)
					addRef(kt.F64(as), kt.F64(b), wy)
					samePattern(t, fmt.Sprintf("Add %g", bad), y, wy)

					for _, in := range []string{"w", "g", "buf"} {
						w, g, buf := a, b, dy
						switch in {
						case "w":
							w = as
						case "g":
							g = inject(r, b, bad, false)
						case "buf":
							buf = inject(r, dy, bad, false)
						}
						ww, bb := append([]float32(nil), w...), append([]float32(nil), buf...)
						const lr, wd, mu, damp = 0.1, 1e-4, 0.9, 0.75
						SGDMomentum(ww, g, bb, lr, wd, mu, damp)
						wantW, wantB := kt.F64(w), kt.F64(buf)
						for i := range wantW {
							d := float64(g[i]) + wd*wantW[i]
							wantB[i] = mu*wantB[i] + damp*d
							wantW[i] -= lr * wantB[i]
						}
						samePattern(t, fmt.Sprintf("SGD %g in %s: w", bad, in), ww, wantW)
						samePattern(t, fmt.Sprintf("SGD %g in %s: buf", bad, in), bb, wantB)
					}
				}
			})
		})
	}
}
