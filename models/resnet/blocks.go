package resnet

import (
	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
)

// Join is the end of every block: it adds the branch to the shortcut of
// the block's input, or, in a plain block, returns the branch alone. It is
// embedded in the block types, so its Downsample field is named
// "downsample" as in torchvision.
type Join struct {
	// Downsample maps the input to the branch's shape (option A, or a
	// projection); nil is the identity.
	Downsample nn.Layer
	// Plain drops the skip connection: the block is its branch.
	Plain bool `nn:"-"`
	// Scale multiplies the branch before the addition (0 means 1).
	Scale float32 `nn:"-"`
	// Route, when not RouteBoth, lets the backward pass through the branch
	// only or the shortcut only (the forward pass is unchanged), to measure
	// the gradient along one path of the unraveled network.
	Route Route `nn:"-"`
}

// Route selects where a block's backward pass goes.
type Route int

// The routes.
const (
	RouteBoth   Route = iota // the ordinary backward pass
	RouteBranch              // through the residual branch only
	RouteSkip                // through the shortcut only
)

// Add returns branch·Scale + shortcut(x), or branch when plain: the end of
// a residual block.
func (j *Join) Add(branch, x *ag.Value) *ag.Value {
	if j.Plain {
		return branch
	}
	if j.Scale != 0 && j.Scale != 1 {
		branch = ag.Scale(branch, j.Scale)
	}
	if j.Downsample != nil {
		x = j.Downsample.Forward(x)
	}
	if j.Route != RouteBoth {
		return ag.AddRouted(branch, x, j.Route == RouteBranch, j.Route == RouteSkip)
	}
	return ag.Add(branch, x)
}

// OptionA is the parameter-free shortcut of He et al. 2015: subsample by
// the stride and pad the new channels with zeros.
type OptionA struct {
	Stride, Before, After int
}

// Forward keeps every Stride-th row and column of x [N,H,W,C] and pads
// the channels with Before zeros in front and After behind.
func (o OptionA) Forward(x *ag.Value) *ag.Value {
	return ag.SubsamplePadChannels(x, o.Stride, o.Before, o.After)
}

// BasicBlock is the post-activation basic block of He et al. 2015
// (ordering a): conv-BN-ReLU-conv-BN, add, ReLU.
type BasicBlock struct {
	Conv1 *nn.Conv2d
	BN1   *nn.BatchNorm
	Conv2 *nn.Conv2d
	BN2   *nn.BatchNorm
	Join
}

// Forward returns relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
func (b *BasicBlock) Forward(x *ag.Value) *ag.Value {
	out := ag.ReLU(b.BN1.Forward(b.Conv1.Forward(x)))
	out = b.BN2.Forward(b.Conv2.Forward(out))
	return ag.ReLU(b.Add(out, x))
}

// BNAfterAddBlock is ordering b of He et al. 2016: conv-BN-ReLU-conv, add,
// BN, ReLU.
type BNAfterAddBlock struct {
	Conv1 *nn.Conv2d
	BN1   *nn.BatchNorm
	Conv2 *nn.Conv2d
	BN2   *nn.BatchNorm // after the addition
	Join
}

// Forward returns relu(bn2(conv2(relu(bn1(conv1(x)))) + shortcut(x))).
func (b *BNAfterAddBlock) Forward(x *ag.Value) *ag.Value {
	out := ag.ReLU(b.BN1.Forward(b.Conv1.Forward(x)))
	out = b.Conv2.Forward(out)
	return ag.ReLU(b.BN2.Forward(b.Add(out, x)))
}

// ReLUBeforeAddBlock is ordering c: conv-BN-ReLU-conv-BN-ReLU, add.
type ReLUBeforeAddBlock struct {
	Conv1 *nn.Conv2d
	BN1   *nn.BatchNorm
	Conv2 *nn.Conv2d
	BN2   *nn.BatchNorm
	Join
}

// Forward returns relu(bn2(conv2(relu(bn1(conv1(x)))))) + shortcut(x).
func (b *ReLUBeforeAddBlock) Forward(x *ag.Value) *ag.Value {
	out := ag.ReLU(b.BN1.Forward(b.Conv1.Forward(x)))
	out = ag.ReLU(b.BN2.Forward(b.Conv2.Forward(out)))
	return b.Add(out, x)
}

// ReLUPreActBlock is ordering d (ReLU-only pre-activation):
// ReLU-conv-BN-ReLU-conv-BN, add.
type ReLUPreActBlock struct {
	Conv1 *nn.Conv2d
	BN1   *nn.BatchNorm
	Conv2 *nn.Conv2d
	BN2   *nn.BatchNorm
	Join
}

// Forward returns bn2(conv2(relu(bn1(conv1(relu(x)))))) + shortcut(x).
func (b *ReLUPreActBlock) Forward(x *ag.Value) *ag.Value {
	out := ag.ReLU(b.BN1.Forward(b.Conv1.Forward(ag.ReLU(x))))
	out = b.BN2.Forward(b.Conv2.Forward(out))
	return b.Add(out, x)
}

// PreActBlock is the full pre-activation basic block of He et al. 2016
// (ordering e): BN-ReLU-conv-BN-ReLU-conv, add, nothing after. A projection
// shortcut takes the pre-activated input, as in the paper's code.
type PreActBlock struct {
	BN1   *nn.BatchNorm
	Conv1 *nn.Conv2d
	BN2   *nn.BatchNorm
	Conv2 *nn.Conv2d
	Join
}

// Forward returns conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut(x),
// where a projection shortcut takes relu(bn1(x)) and the others x.
func (b *PreActBlock) Forward(x *ag.Value) *ag.Value {
	pre := ag.ReLU(b.BN1.Forward(x))
	out := b.Conv1.Forward(pre)
	out = b.Conv2.Forward(ag.ReLU(b.BN2.Forward(out)))
	return b.Add(out, b.shortcutInput(x, pre))
}

// shortcutInput is x for an identity or option-A shortcut and the
// pre-activated input for a projection.
func (j *Join) shortcutInput(x, pre *ag.Value) *ag.Value {
	if _, ok := j.Downsample.(nn.Sequential); ok {
		return pre
	}
	return x
}

// Bottleneck is the post-activation bottleneck (1×1 reduce, 3×3, 1×1
// expand ×4): conv-BN-ReLU ×2, conv-BN, add, ReLU. The stride sits on
// Conv2 (torchvision's v1.5) or on Conv1 (the paper's v1).
type Bottleneck struct {
	Conv1 *nn.Conv2d
	BN1   *nn.BatchNorm
	Conv2 *nn.Conv2d
	BN2   *nn.BatchNorm
	Conv3 *nn.Conv2d
	BN3   *nn.BatchNorm
	Join
}

// Forward returns relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))))
// + shortcut(x)).
func (b *Bottleneck) Forward(x *ag.Value) *ag.Value {
	out := ag.ReLU(b.BN1.Forward(b.Conv1.Forward(x)))
	out = ag.ReLU(b.BN2.Forward(b.Conv2.Forward(out)))
	out = b.BN3.Forward(b.Conv3.Forward(out))
	return ag.ReLU(b.Add(out, x))
}

// PreActBottleneck is the full pre-activation bottleneck of He et al.
// 2016: BN-ReLU-conv ×3, add.
type PreActBottleneck struct {
	BN1   *nn.BatchNorm
	Conv1 *nn.Conv2d
	BN2   *nn.BatchNorm
	Conv2 *nn.Conv2d
	BN3   *nn.BatchNorm
	Conv3 *nn.Conv2d
	Join
}

// Forward returns conv3(relu(bn3(conv2(relu(bn2(conv1(relu(bn1(x)))))))))
// + shortcut(x), where a projection shortcut takes relu(bn1(x)).
func (b *PreActBottleneck) Forward(x *ag.Value) *ag.Value {
	pre := ag.ReLU(b.BN1.Forward(x))
	out := b.Conv1.Forward(pre)
	out = b.Conv2.Forward(ag.ReLU(b.BN2.Forward(out)))
	out = b.Conv3.Forward(ag.ReLU(b.BN3.Forward(out)))
	return b.Add(out, b.shortcutInput(x, pre))
}
