package experiments

import (
	"fmt"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/models/resnet"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// BlockCost is the size of one block or network.
type BlockCost struct {
	Name     string `json:"name"`
	Params   int    `json:"params"`
	MultAdds int64  `json:"mult_adds"`
}

// Bottleneck compares a basic block and a bottleneck block with the same
// input and output width (256 channels on a 56×56 map, ResNet-50's first
// stage), and ResNet-34 with ResNet-50 at 224×224 — He et al. 2015's
// argument for the bottleneck.
func Bottleneck(out string) ([]BlockCost, error) {
	r, err := NewReport(out, "Basic against bottleneck blocks")
	if err != nil {
		return nil, err
	}
	rng := tensor.NewRNG(1)
	const width, side = 256, 56
	var costs []BlockCost
	for _, b := range []struct {
		name  string
		cfg   resnet.Config
		inner int
	}{
		{"basic block, 256→256 (two 3×3)", resnet.Config{Block: "basic", Ordering: resnet.PostActivation, Shortcut: resnet.ShortcutB}, 256},
		{"bottleneck, 256→64→256 (1×1, 3×3, 1×1)", resnet.Config{Block: "bottleneck", Ordering: resnet.PostActivation, Shortcut: resnet.ShortcutB}, 64},
	} {
		blk := resnet.NewBlock(rng, b.cfg, width, b.inner, 1)
		s, err := nn.Summarize(blk, []int{1, side, side, width})
		if err != nil {
			return nil, err
		}
		costs = append(costs, BlockCost{b.name, s.TotalParams, s.TotalMultAdds})
	}
	for _, name := range []string{"resnet34", "resnet50"} {
		cfg, _ := models.Preset(name)
		m, err := models.Build(cfg, rng)
		if err != nil {
			return nil, err
		}
		s, err := nn.Summarize(m, cfg.InputShape(1, 224))
		if err != nil {
			return nil, err
		}
		costs = append(costs, BlockCost{name, s.TotalParams, s.TotalMultAdds})
	}
	r.Printf("| | parameters | multiply-adds |\n|---|---|---|")
	for _, c := range costs {
		r.Printf("| %s | %s | %s |", c.Name, group(int64(c.Params)), group(c.MultAdds))
	}
	r.Printf("\nOn a 56×56 map the bottleneck block costs %.1f× fewer parameters and multiply-adds than a basic block of the same input/output width; that is how ResNet-50 has three times the layers of ResNet-34 for about %.0f%% more multiply-adds (He et al. 2015, Table 1: 3.6 and 3.8 GFLOPs for v1).",
		float64(costs[0].Params)/float64(costs[1].Params), 100*(float64(costs[3].MultAdds)/float64(costs[2].MultAdds)-1))
	if err := r.JSON("bottleneck.json", costs); err != nil {
		return nil, err
	}
	return costs, r.Close()
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
