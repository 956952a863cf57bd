package kernels

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// resnet50Convs lists the distinct convolutions of torchvision's ResNet-50
// (v1.5) at 224² for a batch of n, with how often each occurs.
func resnet50Convs(n int) []struct {
	name  string
	s     ConvShape
	count int
} {
	c := func(h, cin, cout, k, stride int) ConvShape {
		p := k / 2
		return ConvShape{N: n, H: h, W: h, C: cin, OC: cout, KH: k, KW: k, SH: stride, SW: stride, DH: 1, DW: 1, PT: p, PL: p, PB: p, PR: p}
	}
	type e = struct {
		name  string
		s     ConvShape
		count int
	}
	return []e{
		{"stem", c(224, 3, 64, 7, 2), 1},
		{"l1-1x1-64-64", c(56, 64, 64, 1, 1), 1},
		{"l1-1x1-256-64", c(56, 256, 64, 1, 1), 2},
		{"l1-3x3-64", c(56, 64, 64, 3, 1), 3},
		{"l1-1x1-64-256", c(56, 64, 256, 1, 1), 4},
		{"l2-1x1-256-128@56", c(56, 256, 128, 1, 1), 1},
		{"l2-3x3s2-128", c(56, 128, 128, 3, 2), 1},
		{"l2-1x1s2-256-512", c(56, 256, 512, 1, 2), 1},
		{"l2-1x1-512-128", c(28, 512, 128, 1, 1), 3},
		{"l2-3x3-128", c(28, 128, 128, 3, 1), 3},
		{"l2-1x1-128-512", c(28, 128, 512, 1, 1), 4},
		{"l3-1x1-512-256@28", c(28, 512, 256, 1, 1), 1},
		{"l3-3x3s2-256", c(28, 256, 256, 3, 2), 1},
		{"l3-1x1s2-512-1024", c(28, 512, 1024, 1, 2), 1},
		{"l3-1x1-1024-256", c(14, 1024, 256, 1, 1), 5},
		{"l3-3x3-256", c(14, 256, 256, 3, 1), 5},
		{"l3-1x1-256-1024", c(14, 256, 1024, 1, 1), 6},
		{"l4-1x1-1024-512@14", c(14, 1024, 512, 1, 1), 1},
		{"l4-3x3s2-512", c(14, 512, 512, 3, 2), 1},
		{"l4-1x1s2-1024-2048", c(14, 1024, 2048, 1, 2), 1},
		{"l4-1x1-2048-512", c(7, 2048, 512, 1, 1), 2},
		{"l4-3x3-512", c(7, 512, 512, 3, 1), 2},
		{"l4-1x1-512-2048", c(7, 512, 2048, 1, 1), 3},
	}
}

// BenchmarkResNet50Convs times each distinct convolution of ResNet-50 with
// sealed (packed) weights and a folded batch-norm epilogue, at the batch
// RESIDUAL_BENCH_BATCH (default 1); ms/net is its share of one forward pass.
// With RESIDUAL_BENCH_COLD=1 each run starts with its weights and data out
// of cache (192 MB written between runs, untimed), as in a network pass,
// where ResNet-50's 100 MB of weights stream from memory at batch 1.
// With RESIDUAL_BENCH_SKIP=1 every epilogue adds a residual (a skip as
// large as the output), as the last convolution of each block does; with
// RESIDUAL_BENCH_SKIP=inplace the skip is the output itself, as a planned
// inference pass computes it (autograd's PlanMemory). With
// RESIDUAL_BENCH_BF16=1 the convolutions run in bfloat16 (PackConvBF16,
// ConvForwardPackedBF16: a bf16 inference pass's).
func BenchmarkResNet50Convs(b *testing.B) {
	n := 1
	if v, err := strconv.Atoi(os.Getenv("RESIDUAL_BENCH_BATCH")); err == nil && v > 0 {
		n = v
	}
	for _, l := range resnet50Convs(n) {
		s := l.s
		b.Run(fmt.Sprintf("%s/x%d", l.name, l.count), func(b *testing.B) {
			x, w, y := benchOperands(s)
			scale, shift := make([]float32, s.OC), make([]float32, s.OC)
			for i := range scale {
				scale[i] = 1
			}
			pw := PackConv(s, w)
			conv := func(e ConvEpilogue[float32]) { ConvForwardPacked(s, x, w, pw, y, e) }
			if os.Getenv("RESIDUAL_BENCH_BF16") == "1" {
				pb := PackConvBF16(s, w)
				conv = func(e ConvEpilogue[float32]) { ConvForwardPackedBF16(s, x, w, pb, y, e) }
			}
			e := ConvEpilogue[float32]{Scale: scale, Shift: shift, ReLU: true}
			switch os.Getenv("RESIDUAL_BENCH_SKIP") {
			case "1":
				e.Skip = make([]float32, len(y))
				for i := range e.Skip {
					e.Skip[i] = float32(i%7) * 0.1
				}
			case "inplace":
				e.Skip = y
			}
			cold := os.Getenv("RESIDUAL_BENCH_COLD") == "1"
			var junk []float32
			if cold {
				junk = make([]float32, 48<<20)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if cold {
					b.StopTimer()
					for j := range junk {
						junk[j]++
					}
					b.StartTimer()
				}
				conv(e)
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(convFLOP(s)/sec/1e9, "GFLOP/s")
			b.ReportMetric(sec*1e3*float64(l.count), "ms/net")
		})
	}
}

// BenchmarkResNet50Grads times the two gradients of each distinct
// convolution of ResNet-50, float32 and bfloat16 (the entry points: what a
// training step calls), at the batch RESIDUAL_BENCH_BATCH (default 8);
// ms/net is the layer's share of one backward pass.
func BenchmarkResNet50Grads(b *testing.B) {
	n := 8
	if v, err := strconv.Atoi(os.Getenv("RESIDUAL_BENCH_BATCH")); err == nil && v > 0 {
		n = v
	}
	for _, l := range resnet50Convs(n) {
		s := l.s
		x, w, dy := benchOperands(s)
		for i := range dy {
			dy[i] = float32(i%11) * 0.1
		}
		dx, dw := make([]float32, len(x)), make([]float32, len(w))
		for _, c := range []struct {
			name string
			f    func()
		}{
			{"weight-fp32", func() { ConvBackwardWeight(s, x, dy, dw) }},
			{"weight-bf16", func() { ConvBackwardWeightBF16(s, x, dy, dw) }},
			{"data-fp32", func() { ConvBackwardData(s, dy, w, dx) }},
			{"data-bf16", func() { ConvBackwardDataBF16(s, dy, w, dx) }},
		} {
			b.Run(fmt.Sprintf("%s/%s/x%d", l.name, c.name, l.count), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					c.f()
				}
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(convFLOP(s)/sec/1e9, "GFLOP/s")
				b.ReportMetric(sec*1e3*float64(l.count), "ms/net")
			})
		}
	}
}

// BenchmarkResNet50Int8Convs times each distinct convolution of ResNet-50
// in int8 (Int8Conv, u8 output through a ReLU epilogue, as a quantized
// inference pass runs them) at the batch RESIDUAL_BENCH_BATCH (default 8);
// GOP/s counts 2 operations a multiply-add, ms/net is the layer's share of
// one forward pass.
func BenchmarkResNet50Int8Convs(b *testing.B) {
	n := 8
	if v, err := strconv.Atoi(os.Getenv("RESIDUAL_BENCH_BATCH")); err == nil && v > 0 {
		n = v
	}
	for _, l := range resnet50Convs(n) {
		s := l.s
		b.Run(fmt.Sprintf("%s/x%d", l.name, l.count), func(b *testing.B) {
			x := make([]uint8, s.N*s.H*s.W*s.C)
			for i := range x {
				x[i] = uint8(i % 251)
			}
			wq := make([]int8, s.KH*s.KW*s.C*s.OC)
			for i := range wq {
				wq[i] = int8(i%15 - 7)
			}
			w := NewInt8Weights(wq, s.KH*s.KW*s.C, s.OC)
			ep := &Int8Epilogue{Bias: make([]int32, s.OC), Mult: make([]float32, s.OC), Zero: 3, ReLU: true}
			for i := range ep.Mult {
				ep.Mult[i] = 1e-4
			}
			y := make([]uint8, s.N*s.OH()*s.OW()*s.OC)
			Int8Conv(s, x, 5, w, ep, y, nil) // packs the weights
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				Int8Conv(s, x, 5, w, ep, y, nil)
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(convFLOP(s)/sec/1e9, "GOP/s")
			b.ReportMetric(sec*1e3*float64(l.count), "ms/net")
		})
	}
}
