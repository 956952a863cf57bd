package kernels

import (
	"runtime"
	"testing"
	"time"
)

// The 3×3 convolution of the issue: 64→64 channels, 56×56, batch 32.
var bench3x3 = ConvShape{N: 32, H: 56, W: 56, C: 64, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1}

func convFLOP(s ConvShape) float64 {
	return 2 * float64(s.N*s.OH()*s.OW()*s.OC*s.KH*s.KW*s.C)
}

// benchOperands returns an input and weights of shape s filled with a
// fixed pattern, and an output to write.
func benchOperands(s ConvShape) (x, w, y []float32) {
	x = make([]float32, s.N*s.H*s.W*s.C)
	w = make([]float32, s.KH*s.KW*s.C*s.OC)
	y = make([]float32, s.N*s.OH()*s.OW()*s.OC)
	for i := range x {
		x[i] = float32(i%13) * 0.1
	}
	for i := range w {
		w[i] = float32(i%7) * 0.1
	}
	return x, w, y
}

func benchConv(b *testing.B, s ConvShape, pass string) {
	x, w, y := benchOperands(s)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		switch pass {
		case "fwd":
			ConvForward(s, x, w, y)
		case "bwd-data":
			ConvBackwardData(s, y, w, x)
		case "bwd-weight":
			ConvBackwardWeight(s, x, y, w)
		}
	}
	b.ReportMetric(convFLOP(s)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkConv3x3(b *testing.B) {
	for _, pass := range []string{"fwd", "bwd-data", "bwd-weight"} {
		b.Run(pass, func(b *testing.B) { benchConv(b, bench3x3, pass) })
	}
}

func BenchmarkConvShapes(b *testing.B) {
	for name, s := range map[string]ConvShape{
		"1x1-256-64-56":   {N: 8, H: 56, W: 56, C: 256, OC: 64, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		"3x3s2-128-28":    {N: 8, H: 56, W: 56, C: 128, OC: 128, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		"7x7s2-stem":      {N: 8, H: 224, W: 224, C: 3, OC: 64, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3},
		"3x3-16-32-cifar": {N: 128, H: 32, W: 32, C: 16, OC: 16, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		"3x3-32-16-cifar": {N: 128, H: 16, W: 16, C: 32, OC: 32, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		"3x3-64-8-cifar":  {N: 128, H: 8, W: 8, C: 64, OC: 64, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		"3x3-512-7":       {N: 8, H: 7, W: 7, C: 512, OC: 512, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		"3x3-256-14":      {N: 8, H: 14, W: 14, C: 256, OC: 256, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		"3x3-128-28":      {N: 8, H: 28, W: 28, C: 128, OC: 128, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		// Output channels narrower than a vector, padded to one: a U-Net's
		// head to 2 classes, a narrow network's 3×3 of 4.
		"1x1-64-2-unet-head": {N: 4, H: 100, W: 100, C: 64, OC: 2, KH: 1, KW: 1, SH: 1, SW: 1, DH: 1, DW: 1},
		"3x3-4-28-narrow":    {N: 128, H: 28, W: 28, C: 4, OC: 4, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	} {
		for _, pass := range []string{"fwd", "bwd-data", "bwd-weight"} {
			b.Run(name+"/"+pass, func(b *testing.B) { benchConv(b, s, pass) })
		}
	}
}

// BenchmarkPeak measures the FMA peak on all GOMAXPROCS cores.
func BenchmarkPeak(b *testing.B) {
	if Active() == Generic {
		b.Skip("no assembly FMA loop at the generic level")
	}
	p := runtime.GOMAXPROCS(0)
	start := time.Now()
	flop := 0.0
	for i := 0; i < b.N; i++ {
		done := make(chan float64, p)
		for j := 0; j < p; j++ {
			go func() { done <- Peak(1 << 20) }()
		}
		for j := 0; j < p; j++ {
			flop += <-done
		}
	}
	b.ReportMetric(flop/time.Since(start).Seconds()/1e9, "GFLOP/s")
}

// BenchmarkBatchNorm measures a training batch norm's forward and backward
// passes on the first CIFAR ResNet stage's activations (batch 128, 32×32,
// 16 channels) and on a wide ResNet-50 stage, alone ("plain") and with the block's addition and ReLU
// fused ("add-relu"), in GB/s of tensor data touched (inputs read plus
// outputs written, counted once each).
func BenchmarkBatchNorm(b *testing.B) {
	b.Run("c16", func(b *testing.B) { benchBatchNorm(b, 128*32*32, 16) })
	b.Run("c1024", func(b *testing.B) { benchBatchNorm(b, 8*14*14, 1024) }) // ResNet-50's third stage
}

func benchBatchNorm(b *testing.B, m, c int) {
	x, skip, y, dy, dx, ds := make([]float32, m*c), make([]float32, m*c), make([]float32, m*c), make([]float32, m*c), make([]float32, m*c), make([]float32, m*c)
	for i := range x {
		x[i], skip[i], dy[i] = float32(i%13)*0.1, float32(i%7)*0.1-0.3, float32(i%5)*0.1-0.2
	}
	gamma, beta, mean, is := make([]float32, c), make([]float32, c), make([]float32, c), make([]float32, c)
	for i := range gamma {
		gamma[i] = 1
	}
	for _, tc := range []struct {
		name       string
		skip, relu bool
	}{{"plain", false, false}, {"relu", false, true}, {"add-relu", true, true}} {
		f := Fused[float32]{ReLU: tc.relu}
		streams := 2.0 // x, y
		if tc.skip {
			f.Skip = skip
			streams++
		}
		b.Run(tc.name+"/fwd", func(b *testing.B) {
			for b.Loop() {
				BatchNormTrainForward(m, c, x, gamma, beta, y, mean, is, nil, nil, 0.1, 1e-5, f)
			}
			b.ReportMetric(streams*4*float64(m*c*b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
		bf := Fused[float32]{ReLU: tc.relu, Y: y}
		bstreams := 3.0 // x, dy, dx
		if tc.relu {
			bstreams++
		}
		if tc.skip {
			bf.DSkip = ds
			bstreams++
		}
		b.Run(tc.name+"/bwd", func(b *testing.B) {
			for b.Loop() {
				BatchNormTrainBackward(m, c, x, gamma, mean, is, dy, dx, nil, nil, bf)
			}
			b.ReportMetric(bstreams*4*float64(m*c*b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
	b.Run("relu", func(b *testing.B) {
		for b.Loop() {
			ReLUForward(x, y)
		}
		b.ReportMetric(2*4*float64(m*c*b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
	b.Run("relu-grad", func(b *testing.B) {
		for b.Loop() {
			ReLUBackward(y, dy, dx)
		}
		b.ReportMetric(3*4*float64(m*c*b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
	b.Run("add", func(b *testing.B) {
		for b.Loop() {
			Add(x, skip, y)
		}
		b.ReportMetric(3*4*float64(m*c*b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
}
