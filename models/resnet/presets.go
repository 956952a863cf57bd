package resnet

import (
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// Preset returns the published configuration of a named network:
//
//	resnet18 … resnet152                   torchvision's ImageNet ResNets (v1.5, option B)
//	resnet50-v1, resnet101-v1, resnet152-v1 the paper's bottleneck ResNets (v1: stride on the first 1×1, as Keras's)
//	resnet20 … resnet1202                  He et al. 2015's CIFAR ResNets (6n+2 layers, option A)
//	plain20 … plain110                     their plain counterparts
//	preact-resnet110                       He et al. 2016, basic blocks (option B)
//	preact-resnet164, preact-resnet1001    He et al. 2016, bottlenecks (9n+2 layers)
//
// The CIFAR families take any 6n+2 depth, written at any length: one whose
// n an int cannot hold is a *DepthError.
func Preset(name string) (Config, error) {
	imagenet := map[string]struct {
		block  string
		layers []int
	}{
		"resnet18": {"basic", []int{2, 2, 2, 2}}, "resnet34": {"basic", []int{3, 4, 6, 3}},
		"resnet50": {"bottleneck", []int{3, 4, 6, 3}}, "resnet101": {"bottleneck", []int{3, 4, 23, 3}},
		"resnet152": {"bottleneck", []int{3, 8, 36, 3}},
	}
	base, v1 := strings.CutSuffix(name, "-v1")
	if p, ok := imagenet[base]; ok && (!v1 || p.block == "bottleneck") {
		return Config{Block: p.block, Layers: p.layers, Widths: []int{64, 128, 256, 512}, Stem: "imagenet", StemWidth: 64,
			Ordering: PostActivation, Shortcut: ShortcutB, Classes: 1000, InChannels: 3, StrideOn1x1: v1}, nil
	}
	cifar := func(block string, n int) Config {
		return Config{Block: block, Layers: []int{n, n, n}, Widths: []int{16, 32, 64}, Stem: "cifar", StemWidth: 16,
			Ordering: PostActivation, Shortcut: ShortcutA, Classes: 10, InChannels: 3}
	}
	switch {
	case strings.HasPrefix(name, "preact-resnet"):
		d, err := strconv.Atoi(strings.TrimPrefix(name, "preact-resnet"))
		if err != nil {
			break
		}
		var c Config
		switch {
		case d == 110:
			c = cifar("basic", 18)
		case d == 164 || d == 1001:
			c = cifar("bottleneck", (d-2)/9)
		default:
			return Config{}, fmt.Errorf("resnet: no preset %q (preact-resnet110, -164 or -1001)", name)
		}
		c.Ordering, c.Shortcut = PreActivation, ShortcutB
		return c, nil
	case strings.HasPrefix(name, "resnet"), strings.HasPrefix(name, "plain"):
		plain := strings.HasPrefix(name, "plain")
		n, ok := blocksPerStage(strings.TrimPrefix(strings.TrimPrefix(name, "resnet"), "plain"))
		if !ok {
			break
		}
		if !n.IsInt64() || int64(int(n.Int64())) != n.Int64() {
			return Config{}, &DepthError{Name: name, Blocks: n}
		}
		c := cifar("basic", int(n.Int64()))
		c.Plain = plain
		return c, nil
	}
	return Config{}, fmt.Errorf("resnet: no preset %q; known: %s", name, strings.Join(Names(), ", "))
}

// blocksPerStage reads the depth N of a CIFAR resnetN or plainN, a
// decimal of any length, and returns its blocks a stage n = (N−2)/6; ok
// is false for a depth that is not 6n+2 with n ≥ 1.
func blocksPerStage(depth string) (n *big.Int, ok bool) {
	d, ok := new(big.Int).SetString(depth, 10)
	if !ok || d.Cmp(big.NewInt(8)) < 0 {
		return nil, false
	}
	n, rem := new(big.Int).QuoRem(d.Sub(d, big.NewInt(2)), big.NewInt(6), new(big.Int))
	return n, rem.Sign() == 0
}

// DepthError is Preset's error for a resnetN or plainN of the CIFAR
// family's 6n+2 depths whose n an int cannot hold (past 2³¹−1 on 386
// and arm, past 2⁶³−1 elsewhere), so no Config can describe it. Such a
// name is too deep rather than unknown: models.Preset refuses it as it
// refuses any n past limits.Layers, in the name's terms (its depth 6n+2
// and n).
type DepthError struct {
	Name   string
	Blocks *big.Int // n, the blocks a stage the name asks for
}

// Error names the preset and the blocks a stage it asks for.
func (e *DepthError) Error() string {
	return fmt.Sprintf("resnet: preset %q asks for %v blocks a stage, more than an int holds", e.Name, e.Blocks)
}

// Names lists the preset names (the CIFAR families also take any 6n+2
// depth, e.g. resnet8 or plain74, and the bottleneck ImageNet nets a -v1
// variant, e.g. resnet50-v1, which the zoo's tests do not sweep).
func Names() []string {
	n := []string{"resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
		"resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202",
		"plain20", "plain32", "plain44", "plain56", "plain110",
		"preact-resnet110", "preact-resnet164", "preact-resnet1001"}
	sort.Strings(n)
	return n
}
