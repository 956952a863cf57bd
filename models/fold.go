package models

import "github.com/residual-nn/residual/nn"

// ForInference prepares net, built from c, for inference: evaluation mode,
// and every batch norm that follows a convolution folded into it
// (nn.FoldBatchNorm, traced at the model's published input size). Eval,
// predict, segment, bench, the inference API and ONNX export use it; the
// folded network no longer trains.
func ForInference(c Config, net nn.Layer) error {
	_, err := nn.FoldBatchNorm(net, c.InputShape(1, max(c.DefaultSide(), 1)))
	return err
}
