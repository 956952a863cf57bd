package nn

import (
	"errors"
	"fmt"

	"github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/typednil"
	"github.com/residual-nn/residual/tensor"
)

// FoldBatchNorm prepares m for inference, as PyTorch's fuse_conv_bn_eval
// does for each pair it is given: every batch norm whose input is the
// output of a convolution, and nothing else's input, is folded into that
// convolution's weights and bias, and becomes the identity. It puts m in
// evaluation mode, finds the pairs by tracing one forward pass of an input
// of the given shape (NHWC), and returns how many batch norms it folded.
//
// The folded model computes what m computed in evaluation mode, up to
// float32 rounding, with one convolution instead of a convolution and a
// batch norm; it is for inference only (its folded batch norms no longer
// train). Its state dict still has every key: the folded batch norms hold
// γ = 1, β = 0, mean 0, variance 1 and ε = 0.
func FoldBatchNorm(m Layer, input []int) (n int, err error) {
	if typednil.Is(m) {
		return 0, errors.New("nn: fold: no network (nil)")
	}
	SetTraining(m, false)
	convs := map[*autograd.Value]*Conv2d{} // a convolution's output → its layer
	uses := map[*autograd.Value]int{}
	var pairs []struct {
		in *autograd.Value
		bn *BatchNorm
	}
	byWeight := map[*autograd.Value]*Conv2d{}
	byStats := map[any]*BatchNorm{}
	for _, l := range Layers(m) {
		switch v := l.Layer.(type) {
		case *Conv2d:
			byWeight[v.Weight] = v
		case *BatchNorm:
			if v.TrackRunningStats && !v.folded {
				byStats[v.RunningMean] = v
			}
		}
	}
	tape := autograd.NewShapeTape()
	tape.SetTracer(func(op autograd.Op) {
		for _, x := range op.Inputs {
			uses[x]++
		}
		switch a := op.Attrs.(type) {
		case autograd.ConvParams:
			if op.Kind == autograd.OpConv2d && byWeight[op.Inputs[1]] != nil {
				convs[op.Output] = byWeight[op.Inputs[1]]
			}
		case autograd.BatchNormAttrs:
			if bn := byStats[a.RunMean]; bn != nil && convs[op.Inputs[0]] != nil {
				pairs = append(pairs, struct {
					in *autograd.Value
					bn *BatchNorm
				}{op.Inputs[0], bn})
			}
		}
	})
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nn: FoldBatchNorm: tracing the model on input %v: %v", input, r)
		}
	}()
	m.Forward(tape.Placeholder(input...))
	folded := map[*Conv2d]bool{}
	for _, p := range pairs {
		c := convs[p.in]
		if uses[p.in] != 1 || folded[c] {
			continue // the convolution's output is read elsewhere too, or the layer runs twice
		}
		folded[c] = true
		p.bn.foldInto(c)
		n++
	}
	if n > 0 {
		Name(m) // the biases the folds added
	}
	return n, nil
}

// foldInto folds b (in evaluation mode) into the convolution c before it
// and makes b the identity.
func (b *BatchNorm) foldInto(c *Conv2d) {
	var gamma, beta, bias = b.Weight, b.Bias, c.Bias
	w, sh := autograd.FoldBatchNorm(c.Weight.Data, tensorOf(bias), tensorOf(gamma), tensorOf(beta), b.RunningMean, b.RunningVar, b.Eps)
	c.Weight.Data.CopyFrom(w)
	if c.Bias == nil {
		c.Bias = autograd.Param(sh, "bias")
	} else {
		c.Bias.Data.CopyFrom(sh)
	}
	if b.Weight != nil {
		b.Weight.Data.Fill(1)
	}
	if b.Bias != nil {
		b.Bias.Data.Zero()
	}
	b.RunningMean.Zero()
	b.RunningVar.Fill(1)
	b.Eps = 0
	b.folded = true
}

// Folded reports whether FoldBatchNorm has folded a batch norm of m into
// a convolution: m is then another network than the one its model config
// builds (its convolutions' weights scaled, biases added where they had
// none, the batch norms reset to the identity with ε = 0).
func Folded(m Layer) bool {
	if typednil.Is(m) {
		return false
	}
	for _, l := range Layers(m) {
		if b, ok := l.Layer.(*BatchNorm); ok && b.folded {
			return true
		}
	}
	return false
}

func tensorOf(v *autograd.Value) *tensor.Tensor {
	if v == nil {
		return nil
	}
	return v.Data
}
