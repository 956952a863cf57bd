package resnet

import (
	"fmt"
	"strings"
	"testing"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

// Parameter counts from torchvision (ImageNet, v1.5) and He et al. 2015
// Table 6 (CIFAR, option A; BN γ/β included: 97,216·n − 21,926).
func TestPublishedParameterCounts(t *testing.T) {
	for name, want := range map[string]int{
		"resnet18": 11689512, "resnet34": 21797672, "resnet50": 25557032, "resnet101": 44549160, "resnet152": 60192808,
		"resnet20": 269722, "resnet32": 464154, "resnet44": 658586, "resnet56": 853018, "resnet110": 1727962, "resnet1202": 19421274,
		"plain20": 269722, "plain56": 853018,
	} {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(c, tensor.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		if got := nn.NumParams(m); got != want {
			t.Errorf("%s: %d parameters, published %d", name, got, want)
		}
	}
}

func TestPreActCounts(t *testing.T) {
	// He et al. 2016 report 1.7M (ResNet-164) and 10.2M (ResNet-1001).
	for name, want := range map[string]float64{"preact-resnet164": 1.7e6, "preact-resnet1001": 10.2e6, "preact-resnet110": 1.7e6} {
		c, _ := Preset(name)
		m, err := New(c, tensor.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		got := float64(nn.NumParams(m))
		if got < want*0.97 || got > want*1.03 {
			t.Errorf("%s: %.0f parameters, published ≈%.1fM", name, got, want/1e6)
		}
		t.Logf("%s: %d parameters", name, int(got))
	}
}

// A lesioned block is its shortcut alone, as its Forward computes the
// shortcut: a pre-activation block's projection takes relu(bn1(x)), so
// the deleted block of a pre-activation ResNet with a projection gives
// exactly what Forward's shortcut term does (the raw x differed by up
// to 2.45 with trained batch-norm statistics).
func TestLesionIsTheShortcut(t *testing.T) {
	for _, c := range []Config{
		{Block: "basic", Layers: []int{1, 1}, Widths: []int{4, 8}, Stem: "cifar", StemWidth: 4, Ordering: PreActivation, Shortcut: ShortcutB, Classes: 3, InChannels: 1},
		{Block: "bottleneck", Layers: []int{1, 1}, Widths: []int{4, 8}, Stem: "cifar", StemWidth: 4, Ordering: PreActivation, Shortcut: ShortcutB, Classes: 3, InChannels: 1},
	} {
		rng := tensor.NewRNG(4)
		n, err := New(c, rng)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range nn.Layers(n) {
			if bn, ok := l.Layer.(*nn.BatchNorm); ok {
				for i := range bn.RunningMean.Data {
					bn.RunningMean.Data[i], bn.RunningVar.Data[i] = float32(rng.Normal()), 0.2+float32(rng.Float64())
				}
			}
		}
		nn.SetTraining(n, false)
		b := n.Stages()[1][0] // the downsampling block, with its projection
		j := JoinOf(b)
		var bn1 *nn.BatchNorm
		switch v := b.(type) {
		case *PreActBlock:
			bn1 = v.BN1
		case *PreActBottleneck:
			bn1 = v.BN1
		default:
			t.Fatalf("%s: block %T", c.Block, b)
		}
		x := ag.Constant(tensor.New(2, 8, 8, len(bn1.RunningMean.Data)))
		for i := range x.Data.Data {
			x.Data.Data[i] = float32(rng.Normal())
		}
		want := j.Downsample.Forward(ag.ReLU(bn1.Forward(x))).Data
		got := shortcutOnly(b, x).Data
		for i := range want.Data {
			if got.Data[i] != want.Data[i] {
				t.Fatalf("%s: the lesioned block's output %v at %d; its shortcut's %v", c.Block, got.Data[i], i, want.Data[i])
			}
		}
	}
}

// NewBlock checks nothing, but a block of an ordering Validate refuses
// panics naming it, rather than returning a nil block that a network
// would hold and call (a basic block) or a post-activation one in its
// place (a bottleneck, whose only orderings are post and preact).
func TestNewBlockUnknownOrdering(t *testing.T) {
	basic, err := Preset("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	bottleneck, err := Preset("resnet50")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg      Config
		ordering Ordering
	}{{basic, "sideways"}, {bottleneck, "sideways"}, {bottleneck, BNAfterAdd}, {bottleneck, ReLUOnlyPreAct}} {
		c.cfg.Ordering = c.ordering
		if c.cfg.Validate() == nil {
			t.Fatalf("%s blocks of ordering %q: Validate takes them", c.cfg.Block, c.ordering)
		}
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), fmt.Sprintf("%q", c.ordering)) {
					t.Errorf("NewBlock of a %s block of ordering %q: recovered %v; want a panic naming it", c.cfg.Block, c.ordering, r)
				}
			}()
			b := NewBlock(tensor.NewRNG(1), c.cfg, 16, 16, 1)
			t.Errorf("NewBlock of a %s block of ordering %q returned %T", c.cfg.Block, c.ordering, b)
		}()
	}
}
