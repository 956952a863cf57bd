package experiments

import (
	"fmt"
	"math"

	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// BlockCost is the size of one block or network.
type BlockCost struct {
	Name     string `json:"name"`
	Params   int    `json:"params"`
	MultAdds int64  `json:"mult_adds"`
	// Reference is the published multiply-adds in units of 10⁹ (He et al.
	// 2015, Table 1 for v1 and ResNet-18/34; torchvision's model table
	// for v1.5), 0 where none is published.
	Reference float64 `json:"reference_gflops,omitempty"`
}

// BottleneckResult is the experiment's numbers.
type BottleneckResult struct {
	Blocks   []BlockCost `json:"blocks"`
	Networks []BlockCost `json:"networks"`
	Claims   []Claim     `json:"claims"`
}

// Published multiply-adds (×10⁹) at 224×224: He et al. 2015, Table 1 (the
// paper's v1, stride on the bottleneck's first 1×1; it calls them FLOPs),
// and torchvision's model documentation (v1.5, stride on the 3×3; GFLOPS
// there are multiply-adds too).
var (
	paperGFLOPs       = map[string]float64{"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6, "resnet152": 11.3}
	torchvisionGFLOPs = map[string]float64{"resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51}
)

// Bottleneck counts He et al. 2015's argument for the bottleneck: Fig. 5's
// pair — a basic block of 64 channels and a bottleneck block of 256 (64
// inside) on ResNet-50's first stage (56×56), of similar cost — the same
// blocks at equal width 256, and Table 1's networks at 224×224, ResNet-50,
// -101 and -152 both as the paper built them (v1) and as torchvision does
// (v1.5).
func Bottleneck(out string) (*BottleneckResult, error) {
	r, err := NewReport(out, "Basic against bottleneck blocks")
	if err != nil {
		return nil, err
	}
	defer r.abandon()
	rng := tensor.NewRNG(1)
	const side = 56
	res := &BottleneckResult{}
	post := func(block string) resnet.Config {
		return resnet.Config{Block: block, Ordering: resnet.PostActivation, Shortcut: resnet.ShortcutB}
	}
	for _, b := range []struct {
		name         string
		cfg          resnet.Config
		width, inner int
	}{
		{"Fig. 5 left: basic block, 64-d (two 3×3, 64)", post("basic"), 64, 64},
		{"Fig. 5 right: bottleneck, 256-d (1×1 64, 3×3 64, 1×1 256)", post("bottleneck"), 256, 64},
		{"basic block, 256-d (two 3×3, 256)", post("basic"), 256, 256},
	} {
		blk := resnet.NewBlock(rng, b.cfg, b.width, b.inner, 1)
		s, err := nn.Summarize(blk, []int{1, side, side, b.width})
		if err != nil {
			return nil, err
		}
		res.Blocks = append(res.Blocks, BlockCost{Name: b.name, Params: s.TotalParams, MultAdds: s.TotalMultAdds})
	}
	for _, n := range []struct {
		preset string
		v1     bool
	}{{"resnet18", false}, {"resnet34", false}, {"resnet50", true}, {"resnet50", false}, {"resnet101", true}, {"resnet101", false}, {"resnet152", true}, {"resnet152", false}} {
		cfg, err := resnet.Preset(n.preset)
		if err != nil {
			return nil, err
		}
		cfg.StrideOn1x1 = n.v1
		m, err := resnet.New(cfg, rng)
		if err != nil {
			return nil, err
		}
		s, err := nn.Summarize(m, []int{1, 224, 224, 3})
		if err != nil {
			return nil, err
		}
		bc := BlockCost{Name: n.preset, Params: s.TotalParams, MultAdds: s.TotalMultAdds}
		switch {
		case cfg.Block == "basic":
			bc.Name += " (basic blocks)"
			bc.Reference = paperGFLOPs[n.preset]
		case n.v1:
			bc.Name += " v1 (the paper's)"
			bc.Reference = paperGFLOPs[n.preset]
		default:
			bc.Name += " v1.5 (torchvision's)"
			bc.Reference = torchvisionGFLOPs[n.preset]
		}
		res.Networks = append(res.Networks, bc)
	}
	g := func(c BlockCost) float64 { return float64(c.MultAdds) / 1e9 }
	basic64, bott256, basic256 := res.Blocks[0], res.Blocks[1], res.Blocks[2]
	r34, r50v1, r50v15 := res.Networks[1], res.Networks[2], res.Networks[3]
	const src = "He et al. 2015"
	ratio := float64(bott256.MultAdds) / float64(basic64.MultAdds)
	res.Claims = append(res.Claims,
		Within("the 256-d bottleneck block costs about as many multiply-adds as the 64-d basic block (measured: bottleneck/basic)", src+", Fig. 5", ratio, 1, 0.1),
		Within("ResNet-50 (v1) costs about 5% more multiply-adds than ResNet-34 (measured: ratio)", src+", Table 1 (3.8 and 3.6 ×10⁹ FLOPs: 1.056)", g(r50v1)/g(r34), 1.056, 0.02),
		Within("ResNet-50 (v1) costs 3.8 ×10⁹ multiply-adds at 224×224 (measured: ×10⁹)", src+", Table 1", g(r50v1), 3.8, 0.1),
		Within("ResNet-50 v1.5 costs 4.09 ×10⁹ multiply-adds at 224×224 (measured: ×10⁹)", "torchvision model documentation", g(r50v15), 4.09, 0.01))
	// Every network of Table 1 against the paper (v1) and torchvision (v1.5).
	worstP, worstT := 0.0, 0.0
	for _, n := range res.Networks {
		d := math.Abs(g(n) - n.Reference)
		if n.Name[len(n.Name)-len("(torchvision's)"):] == "(torchvision's)" {
			worstT = math.Max(worstT, d)
		} else {
			worstP = math.Max(worstP, d)
		}
	}
	res.Claims = append(res.Claims,
		AtMost("ResNet-18, -34 and ResNet-50/101/152 v1 match Table 1's multiply-adds (measured: largest difference, ×10⁹; the table rounds to 0.1)", src+", Table 1", worstP, 0.1),
		AtMost("ResNet-50/101/152 v1.5 match torchvision's published multiply-adds (measured: largest difference, ×10⁹; published to 0.01)", "torchvision model documentation", worstT, 0.01))
	r.Printf("| block on a 56×56 map | parameters | multiply-adds |\n|---|---|---|")
	for _, c := range res.Blocks {
		r.Printf("| %s | %s | %s |", c.Name, group(int64(c.Params)), group(c.MultAdds))
	}
	r.Printf("\n| network at 224×224 | parameters | multiply-adds | ×10⁹ | published |\n|---|---|---|---|---|")
	for _, c := range res.Networks {
		r.Printf("| %s | %s | %s | %.2f | %.2f |", c.Name, group(int64(c.Params)), group(c.MultAdds), g(c), c.Reference)
	}
	r.Printf("\nFig. 5's pair: the 256-d bottleneck costs %.2f× the 64-d basic block's multiply-adds while carrying four times the width. At equal width 256 the bottleneck costs %.1f× fewer. That is how ResNet-50 has 50 layers to ResNet-34's 34 (16 more, all in its 16 blocks of three layers instead of two) for %.0f%% more multiply-adds as the paper built it (v1) and %.0f%% more as torchvision builds it (v1.5, stride on the 3×3, which then runs at the higher resolution).",
		ratio, float64(basic256.MultAdds)/float64(bott256.MultAdds), 100*(g(r50v1)/g(r34)-1), 100*(g(r50v15)/g(r34)-1))
	if err := r.Claims(res.Claims); err != nil {
		return nil, err
	}
	if err := r.JSON("bottleneck.json", res); err != nil {
		return nil, err
	}
	return res, r.Close()
}

func group(n int64) string {
	s := fmt.Sprint(n)
	out := ""
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out += ","
		}
		out += string(c)
	}
	return out
}
