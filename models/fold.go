package models

import "github.com/residual-nn/residual/nn"

// ForInference prepares net, built from c, for inference: evaluation mode,
// every batch norm that follows a convolution folded into it
// (nn.FoldBatchNorm, traced at the model's published input size), and the
// parameters sealed (nn.Seal), so that convolutions pack their weights
// once rather than on every call. Eval, predict, segment, bench, the
// inference API and ONNX export use it; the network no longer trains, and
// its parameters must not be changed afterwards.
func ForInference(c Config, net nn.Layer) error {
	if _, err := nn.FoldBatchNorm(net, c.InputShape(1, max(c.DefaultSide(), 1))); err != nil {
		return err
	}
	nn.Seal(net)
	return nil
}
