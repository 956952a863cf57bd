//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
)

// TestBatchNormBackwardSums holds the training backward pass given its
// first pass's sums (Fused.Sums) and a gradient masked already by the
// stored output's zeros (as a convolution's data gradient stores it:
// DataGradSums.Y) to the pass that makes the sums itself from the raw
// gradient, bit for bit, with the same sums (chanSums32's): dx in float32
// and in bfloat16, dgamma, dbeta and the skip's gradient, which is the
// masked gradient — in a buffer of its own, in the gradient's own buffer,
// or not asked for — on each level with per-channel kernels, narrow and
// wide rows.
func TestBatchNormBackwardSums(t *testing.T) {
	r := rand.New(rand.NewPCG(30, 4))
	for _, l := range levels() {
		for _, sh := range []struct{ m, c int }{{700, 32}, {300, 128}, {5, 16}} {
			for _, skip := range []string{"none", "own", "in place"} {
				t.Run(fmt.Sprintf("%v/%dx%d/skip %s", l, sh.m, sh.c, skip), func(t *testing.T) {
					defer SetLevel(SetLevel(l))
					m, c := sh.m, sh.c
					if !chanOK(c) {
						t.Skipf("no per-channel kernels for %d channels at this level: the sums are not taken", c)
					}
					x, dy := kt.RandF32(r, m*c), kt.RandF32(r, m*c)
					gamma, beta := kt.RandF32(r, c), kt.RandF32(r, c)
					y := make([]float32, m*c)
					mean, invStd := make([]float32, c), make([]float32, c)
					BatchNormTrainForward(m, c, x, gamma, beta, y, mean, invStd, nil, nil, 0.1, 1e-5, Fused[float32]{ReLU: true, Skip: kt.RandF32(r, m*c)})
					masked := make([]float32, m*c)
					for i, v := range dy {
						if y[i] != 0 {
							masked[i] = v
						}
					}
					sums := chanSums32(x, dy, y, nil, m, c, mean)
					type out struct {
						dx, dskip, dg, db []float32
						dxb               []uint16
					}
					run := func(withSums bool, bf16 bool) out {
						g := append([]float32(nil), dy...)
						f := Fused[float32]{ReLU: true, Y: y}
						if withSums {
							copy(g, masked)
							f.Sums = sums
						}
						switch skip {
						case "own":
							f.DSkip = make([]float32, m*c)
						case "in place":
							f.DSkip = g
						}
						o := out{dg: make([]float32, c), db: make([]float32, c)}
						if bf16 {
							o.dxb = make([]uint16, m*c)
							if !BatchNormTrainBackwardToBF16(m, c, x, gamma, mean, invStd, g, o.dxb, o.dg, o.db, f) {
								t.Fatal("BatchNormTrainBackwardToBF16 refused what BatchNormBackwardToBF16OK promised")
							}
						} else {
							o.dx = make([]float32, m*c)
							BatchNormTrainBackward(m, c, x, gamma, mean, invStd, g, o.dx, o.dg, o.db, f)
						}
						o.dskip = f.DSkip
						return o
					}
					modes := []bool{false}
					if BatchNormBackwardToBF16OK(c, false) {
						modes = append(modes, true)
					}
					for _, bf16 := range modes {
						want, got := run(false, bf16), run(true, bf16)
						same := func(what string, a, b []float32) {
							for i := range a {
								if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
									t.Fatalf("bf16=%v %s[%d]: %g with the sums, %g without", bf16, what, i, b[i], a[i])
								}
							}
						}
						same("dx", want.dx, got.dx)
						same("dgamma", want.dg, got.dg)
						same("dbeta", want.db, got.db)
						same("the skip's gradient", want.dskip, got.dskip)
						for i := range want.dxb {
							if want.dxb[i] != got.dxb[i] {
								t.Fatalf("bf16 dx[%d]: %#04x with the sums, %#04x without", i, got.dxb[i], want.dxb[i])
							}
						}
					}
				})
			}
		}
	}
}
