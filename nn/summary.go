package nn

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"

	"github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/internal/typednil"
)

// LayerSummary is one row of a model summary.
type LayerSummary struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	OutputShape []int  `json:"output_shape"`
	Params      int    `json:"params"`
	MultAdds    int64  `json:"mult_adds"`
}

// Summary describes a model applied to one input shape, like torchinfo.
type Summary struct {
	InputShape      []int `json:"input_shape"`
	OutputShape     []int `json:"output_shape"`
	TotalParams     int   `json:"total_params"`
	TrainableParams int   `json:"trainable_params"`
	// TotalMultAdds counts the multiply-adds of convolutions, transposed
	// convolutions and linear layers for the whole input batch — the
	// convention of torchvision's published GFLOPS figures.
	TotalMultAdds int64          `json:"total_mult_adds"`
	Layers        []LayerSummary `json:"layers"`
}

// Summarize runs m on a data-less input of the given shape (NHWC for
// images) and lists every layer that reports itself (see
// autograd.Observe) with its output shape, parameters and multiply-adds.
// Nothing is computed, so it is instant even for large models.
func Summarize(m Layer, input []int) (s *Summary, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nn: summary: input %v: %v", input, r)
		}
	}()
	if typednil.Is(m) {
		return nil, errors.New("nn: summary: no network (nil)")
	}
	entries := StateDict(m)
	names := map[Named]string{} // the layers holding tensors; a pointer identifies one
	for _, l := range Layers(m) {
		if reflect.TypeOf(l.Layer).Kind() == reflect.Pointer {
			names[l.Layer] = l.Name
		}
	}
	s = &Summary{InputShape: append([]int(nil), input...)}
	for _, e := range entries {
		if e.Param != nil {
			s.TotalParams += e.Tensor.Len()
			if e.Param.RequiresGrad() {
				s.TrainableParams += e.Tensor.Len()
			}
		}
	}
	tape := autograd.NewShapeTape()
	tape.SetHook(func(layer any, in, out *autograd.Value) {
		row := LayerSummary{Kind: kindOf(layer), OutputShape: append([]int(nil), out.Shape()...)}
		if n, ok := layer.(Named); ok {
			if reflect.TypeOf(n).Kind() == reflect.Pointer {
				row.Name = names[n]
			}
			for _, e := range n.NamedTensors() {
				if e.Param != nil {
					row.Params += e.Tensor.Len()
				}
			}
		}
		row.MultAdds = multAdds(layer, in.Shape(), out.Shape())
		s.TotalMultAdds += row.MultAdds
		s.Layers = append(s.Layers, row)
	})
	out := m.Forward(tape.Placeholder(input...))
	s.OutputShape = append([]int(nil), out.Shape()...)
	return s, nil
}

// TrainingBytes is a lower bound on the memory a training step on the
// summarised input takes: the parameters, a gradient of each trainable
// one, the input and the float32 output of every
// convolution, batch norm and linear layer (autograd keeps each, or a
// fused result of its size, until the gradients use it). An optimizer's
// state (a momentum buffer, Adam's two moments) and scratch come on top.
func (s *Summary) TrainingBytes() int64 {
	n := int64(s.TotalParams) + int64(s.TrainableParams) + numel(s.InputShape)
	for _, l := range s.Layers {
		switch l.Kind {
		case "Conv2d", "ConvTranspose2d", "BatchNorm", "Linear":
			n += numel(l.OutputShape)
		}
	}
	return 4 * n
}

// InferenceBytes is a lower bound on the memory an inference pass on the
// summarised input takes: the parameters, the input and twice the largest
// layer output (a layer's input and output exist at once, however the
// buffers are reused), in float32.
func (s *Summary) InferenceBytes() int64 {
	var largest int64
	for _, l := range s.Layers {
		largest = max(largest, numel(l.OutputShape))
	}
	return 4 * (int64(s.TotalParams) + numel(s.InputShape) + 2*largest)
}

func kindOf(layer any) string {
	t := reflect.TypeOf(layer)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

func numel(s []int) int64 {
	n := int64(1)
	for _, d := range s {
		n *= int64(d)
	}
	return n
}

// multAdds counts the multiply-adds of one application of a layer.
func multAdds(layer any, in, out []int) int64 {
	switch l := layer.(type) {
	case *Conv2d:
		w := l.Weight.Data.Shape // [KH,KW,IC,OC]
		return numel(out) * int64(w[0]*w[1]*w[2])
	case *ConvTranspose2d:
		w := l.Weight.Data.Shape // [KH,KW,OC,IC]
		return numel(in) * int64(w[0]*w[1]*w[2])
	case *Linear:
		return numel(out) * int64(l.Weight.Data.Shape[1])
	}
	return 0
}

// Print writes the summary for a terminal: one row per layer (name, kind,
// output shape, parameters, multiply-adds, right-aligned with thousands
// separators), then the input and output shapes and the totals.
func (s *Summary) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "layer\tkind\toutput shape\tparams\tmult-adds\t")
	for _, l := range s.Layers {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t\n", l.Name, l.Kind, l.OutputShape, group(int64(l.Params)), group(l.MultAdds))
	}
	tw.Flush()
	fmt.Fprintf(w, "%s\ninput %v (NHWC) → output %v\ntotal params: %s (trainable %s)\ntotal mult-adds: %s (%.2f G)\n",
		strings.Repeat("-", 40), s.InputShape, s.OutputShape, group(int64(s.TotalParams)), group(int64(s.TrainableParams)),
		group(s.TotalMultAdds), float64(s.TotalMultAdds)/1e9)
}

// group writes n with thousands separators.
func group(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
