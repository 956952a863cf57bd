package checkpoint

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/residual-nn/residual/models"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/quant"
	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/tensor"
)

// An int8 checkpoint (WriteInt8) holds a quantized model: for each
// convolution and linear layer, under its state-dict name, the weight as
// I8 in PyTorch's layout ([out,in,kh,kw], or [out,in]), "weight_scale"
// (F32, one per output channel) and the bias as I32 (in units of the
// input's scale times the weight scale, as ONNX's QLinearConv takes it);
// the usual metadata; "precision" = "int8"; and "quant", the calibration
// record (quant.Params as JSON: the activations' scales and zero points).
// Nothing else: Load refuses any other tensor (an optimizer's state, a
// layer the model does not have), as it refuses a float checkpoint's
// unexpected keys.

// precisionKey is the metadata key naming an int8 checkpoint's precision.
const precisionKey = "precision"

// WriteInt8 writes a quantized model's checkpoint atomically; meta is the
// float checkpoint's (its training position is dropped: an int8 model
// does not resume training). It refuses metadata whose model and input
// the quantized model does not rebuild from, and a layer the model's graph
// does not run, as loading would.
func WriteInt8(path string, q *quant.Model, meta Meta) error {
	meta.Position = nil
	if err := meta.Validate(); err != nil {
		return fmt.Errorf("checkpoint: writing %s: %w", path, err)
	}
	if q == nil {
		return fmt.Errorf("checkpoint: writing %s: no quantized model (nil)", path)
	}
	// The load's rebuild (fromInt8), run now: the network the metadata
	// describes must trace to the graph the parameters were made for.
	net, err := models.Build(meta.Model, tensor.NewRNG(0))
	if err != nil {
		return fmt.Errorf("checkpoint: not writing %s: %w", path, err)
	}
	rebuilt, err := quant.New(net, int8Input(meta), q.Params(), q.Layers())
	if err != nil {
		return fmt.Errorf("checkpoint: not writing %s: its metadata does not describe the quantized model: %w", path, err)
	}
	md, err := meta.encode()
	if err != nil {
		return fmt.Errorf("checkpoint: writing %s: %w", path, err)
	}
	p, err := json.Marshal(q.Params())
	if err != nil {
		return fmt.Errorf("checkpoint: writing %s: %w", path, err)
	}
	md[precisionKey], md["quant"] = "int8", string(p)
	tensors, dtypes := map[string]*tensor.Tensor{}, map[string]string{}
	for name, l := range q.Layers() {
		var w *tensor.Tensor
		if l.KH == 1 && l.KW == 1 && q.IsLinear(name) {
			w = tensor.New(l.OC, l.IC)
		} else {
			w = tensor.New(l.OC, l.IC, l.KH, l.KW)
		}
		k := l.KH * l.KW * l.IC
		for i := range k {
			ky, kx, ic := i/(l.KW*l.IC), i/l.IC%l.KW, i%l.IC
			for o := range l.OC {
				w.Data[((o*l.IC+ic)*l.KH+ky)*l.KW+kx] = float32(l.W[i*l.OC+o])
			}
		}
		tensors[name+".weight"], dtypes[name+".weight"] = w, "I8"
		tensors[name+".weight_scale"] = &tensor.Tensor{Shape: []int{l.OC}, Data: append([]float32(nil), l.Scale...)}
		if l.Bias != nil {
			b := tensor.New(l.OC)
			for o, v := range l.Bias {
				b.Data[o] = float32(v)
			}
			tensors[name+".bias"], dtypes[name+".bias"] = b, "I32"
		}
	}
	// A layer the graph does not run would make a file Load refuses.
	read := graphKeys(rebuilt)
	var extra []string
	for name := range q.Layers() {
		if !read[name+".weight"] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return fmt.Errorf("checkpoint: not writing %s: the quantized model holds %d layers its graph does not run: %s", path, len(extra), strings.Join(extra, ", "))
	}
	return safetensors.WriteDtypes(path, tensors, dtypes, md)
}

// IsInt8 reports whether a decoded file is an int8 checkpoint.
func IsInt8(f *safetensors.File) bool { return f != nil && f.Metadata[precisionKey] == "int8" }

// fromInt8 rebuilds an int8 checkpoint: the model built from its config
// (float weights untouched, batch norms folded: the structure the int8
// graph is traced from) and the quantized model.
func fromInt8(f *safetensors.File, meta Meta, c *Checkpoint) error {
	var p quant.Params
	if err := json.Unmarshal([]byte(f.Metadata["quant"]), &p); err != nil {
		return fmt.Errorf("quant: %w", err)
	}
	layers := map[string]*quant.Layer{}
	for k, s := range f.Tensors {
		name, ok := strings.CutSuffix(k, ".weight_scale")
		if !ok {
			continue
		}
		w, ok := f.Tensors[name+".weight"]
		if !ok || f.Dtypes[name+".weight"] != "I8" || f.Dtypes[k] != "F32" {
			return fmt.Errorf("%s: want an I8 %s.weight with the F32 scales (got %q, %q)", k, name, f.Dtypes[name+".weight"], f.Dtypes[k])
		}
		ws := w.Shape
		if len(ws) == 2 {
			ws = []int{ws[0], ws[1], 1, 1}
		}
		if len(ws) != 4 || len(s.Shape) != 1 || s.Shape[0] != ws[0] {
			return fmt.Errorf("%s.weight: shape %v with %v scales (want [out,in,kh,kw] or [out,in] and [out])", name, w.Shape, s.Shape)
		}
		l := &quant.Layer{OC: ws[0], IC: ws[1], KH: ws[2], KW: ws[3], Scale: s.Data, W: make([]int8, len(w.Data))}
		for o := range l.OC {
			for ic := range l.IC {
				for ky := range l.KH {
					for kx := range l.KW {
						l.W[((ky*l.KW+kx)*l.IC+ic)*l.OC+o] = int8(w.Data[((o*l.IC+ic)*l.KH+ky)*l.KW+kx])
					}
				}
			}
		}
		if b, ok := f.Tensors[name+".bias"]; ok {
			if f.Dtypes[name+".bias"] != "I32" || len(b.Data) != l.OC {
				return fmt.Errorf("%s.bias: %s of shape %v, want I32 [%d]", name, f.Dtypes[name+".bias"], b.Shape, l.OC)
			}
			l.Bias = make([]int32, l.OC)
			for o, v := range b.Data {
				l.Bias[o] = int32(v)
			}
		}
		layers[name] = l
	}
	q, err := quant.New(c.Net, int8Input(meta), p, layers)
	if err != nil {
		return err
	}
	if err := checkUnread(q, f.Tensors); err != nil {
		return err
	}
	c.Int8 = q
	return nil
}

// checkUnread refuses tensors that no layer of q's graph reads (q's
// layers were read only from the "*.weight_scale" groups; a stray tensor,
// an optimizer's state or a layer the model does not have would
// otherwise be ignored): a *nn.StateError listing them, as the float
// checkpoint's load refuses unexpected keys.
func checkUnread(q *quant.Model, tensors map[string]*tensor.Tensor) error {
	read := graphKeys(q)
	var unread []string
	for k := range tensors {
		if !read[k] {
			unread = append(unread, k)
		}
	}
	if len(unread) == 0 {
		return nil
	}
	slices.Sort(unread)
	return &nn.StateError{Unexpected: unread}
}

// int8Input is the input shape an int8 model is traced at: one image of
// the preprocessing's size.
func int8Input(meta Meta) []int {
	in := meta.Model.InputShape(1, meta.Preprocess.Height)
	if len(in) == 4 {
		in = []int{1, meta.Preprocess.Height, meta.Preprocess.Width, in[3]}
	}
	return in
}

// graphKeys is the set of tensor names q's graph reads: each convolution's
// and linear layer's weight, weight scales and (if it has one) bias.
func graphKeys(q *quant.Model) map[string]bool {
	read := map[string]bool{}
	for _, op := range q.Graph().Ops {
		if op.Kind == quant.OpConv || op.Kind == quant.OpLinear {
			read[op.Layer+".weight"], read[op.Layer+".weight_scale"] = true, true
			if op.Bias {
				read[op.Layer+".bias"] = true
			}
		}
	}
	return read
}
