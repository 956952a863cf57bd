package nn

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/residual-nn/residual/tensor"
)

// NumBatchesTracked is the suffix of a batch norm's batch counter in a
// state dict: torchvision's num_batches_tracked, a 0-dimensional int64
// tensor.
const NumBatchesTracked = "num_batches_tracked"

// TorchState returns copies of m's parameters and buffers in PyTorch's
// layouts (convolution weights OIHW, transposed ones IOHW), keyed by
// torchvision-style names, and every batch norm's counter as
// "NAME.num_batches_tracked", a 0-dimensional tensor as torchvision stores
// it (a float32 here, exact up to 2^24 batches; writers store it as an
// integer).
func TorchState(m any) map[string]*tensor.Tensor {
	out := map[string]*tensor.Tensor{}
	for _, e := range StateDict(m) {
		out[e.Name] = toTorch(e)
	}
	for _, l := range Layers(m) {
		if b, ok := l.Layer.(*BatchNorm); ok && b.TrackRunningStats {
			t := tensor.New()
			t.Data[0] = float32(b.NumBatchesTracked)
			out[join(l.Name, NumBatchesTracked)] = t
		}
	}
	return out
}

func toTorch(e Entry) *tensor.Tensor { return ToTorchLayout(e.Tensor, e.Layout) }

// ToTorchLayout returns a copy of t, stored in layout l, in PyTorch's
// layout (e.g. a convolution weight or its gradient from HWIO to OIHW).
func ToTorchLayout(t *tensor.Tensor, l Layout) *tensor.Tensor {
	switch l {
	case LayoutHWIO:
		return tensor.HWIOToOIHW(t)
	case LayoutHWOI:
		return tensor.HWOIToIOHW(t)
	}
	return t.Clone()
}

func fromTorch(e Entry, t *tensor.Tensor) (*tensor.Tensor, error) {
	if t == nil {
		return nil, fmt.Errorf("%s: no tensor (nil)", e.Name)
	}
	if _, err := tensor.FromData(t.Data, t.Shape...); err != nil { // a negative or overflowing shape too
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	if t.Rank() == 4 {
		switch e.Layout {
		case LayoutHWIO:
			t = tensor.OIHWToHWIO(t)
		case LayoutHWOI:
			t = tensor.IOHWToHWOI(t)
		}
	}
	scalars := t.Len() == 1 && e.Tensor.Len() == 1
	if !scalars && !tensor.SameShape(t.Shape, e.Tensor.Shape) {
		return nil, fmt.Errorf("%s: shape %v, model has %v", e.Name, torchShape(e, t), toTorch(e).Shape)
	}
	return t, nil
}

// torchShape reports a mismatched tensor in PyTorch's layout.
func torchShape(e Entry, t *tensor.Tensor) []int {
	if t.Rank() != 4 {
		return t.Shape
	}
	return ToTorchLayout(t, e.Layout).Shape
}

// StateError lists the keys that did not fit when loading a state dict.
type StateError struct {
	Missing    []string // in the model, not in the state
	Unexpected []string // in the state, not in the model
	Mismatched []string // present in both with different shapes
}

// Error lists the offending keys by kind.
func (e *StateError) Error() string {
	var parts []string
	for _, p := range []struct {
		what string
		keys []string
	}{{"missing", e.Missing}, {"unexpected", e.Unexpected}, {"mis-shaped", e.Mismatched}} {
		if len(p.keys) > 0 {
			ks := p.keys
			more := ""
			if len(ks) > 8 {
				ks, more = ks[:8], fmt.Sprintf(" and %d more", len(p.keys)-8)
			}
			parts = append(parts, fmt.Sprintf("%d %s keys: %s%s", len(p.keys), p.what, strings.Join(ks, ", "), more))
		}
	}
	msg := "nn: state dict does not fit the model: " + strings.Join(parts, "; ")
	if p := e.wrapperPrefix(); p != "" {
		msg += fmt.Sprintf(" (every unexpected key is a missing one under the prefix %q: the state dict of a model saved inside a wrapper, such as DataParallel's \"module.\"; strip the prefix from its keys)", p)
	}
	return msg
}

// wrapperPrefix returns the prefix that turns every missing key into an
// unexpected one (the state dict of a model saved inside another, such as
// DataParallel's "module."), or "" if there is none.
func (e *StateError) wrapperPrefix() string {
	if len(e.Missing) == 0 || len(e.Unexpected) < len(e.Missing) {
		return ""
	}
	unexpected := map[string]bool{}
	for _, k := range e.Unexpected {
		unexpected[k] = true
	}
	m := e.Missing[0]
	for _, u := range e.Unexpected {
		p, ok := strings.CutSuffix(u, m)
		if !ok || p == "" || !strings.HasSuffix(p, ".") {
			continue
		}
		all := true
		for _, k := range e.Missing {
			if !unexpected[p+k] {
				all = false
				break
			}
		}
		if all {
			return p
		}
	}
	return ""
}

// LoadTorchState copies a state dict in PyTorch's layouts into m. With
// strict, missing and unexpected keys are errors (a *StateError);
// mis-shaped keys always are. A batch norm's num_batches_tracked sets its
// NumBatchesTracked when present (a single whole number ≥ 0 and below
// 2^63) and is never missing: Keras models and older checkpoints have
// none; a num_batches_tracked of no batch norm of m is an unexpected key,
// as any other. Nothing is copied unless everything fits.
func LoadTorchState(m any, state map[string]*tensor.Tensor, strict bool) error {
	entries := StateDict(m)
	se := &StateError{}
	converted := make([]*tensor.Tensor, len(entries))
	known := map[string]bool{}
	for i, e := range entries {
		known[e.Name] = true
		t, ok := state[e.Name]
		if !ok {
			se.Missing = append(se.Missing, e.Name)
			continue
		}
		c, err := fromTorch(e, t)
		if err != nil {
			se.Mismatched = append(se.Mismatched, err.Error())
			continue
		}
		converted[i] = c
	}
	tracked := map[*BatchNorm]int64{}
	for _, l := range Layers(m) {
		b, ok := l.Layer.(*BatchNorm)
		if !ok {
			continue
		}
		k := join(l.Name, NumBatchesTracked)
		known[k] = true
		if t, ok := state[k]; ok {
			n, err := batchCount(k, t)
			if err != nil {
				se.Mismatched = append(se.Mismatched, err.Error())
				continue
			}
			tracked[b] = n
		}
	}
	// Only the counters of the model's batch norms are known: any other
	// key, a counter of a layer the model lacks included, is unexpected.
	for k := range state {
		if !known[k] {
			se.Unexpected = append(se.Unexpected, k)
		}
	}
	sort.Strings(se.Unexpected)
	if len(se.Mismatched) > 0 || (strict && (len(se.Missing) > 0 || len(se.Unexpected) > 0)) {
		return se
	}
	for i, e := range entries {
		if converted[i] != nil {
			copy(e.Tensor.Data, converted[i].Data)
		}
	}
	for b, n := range tracked {
		b.NumBatchesTracked = n
	}
	return nil
}

// batchCount reads a num_batches_tracked tensor: one whole number ≥ 0
// that an int64 holds (below 2^63: float64(math.MaxInt64) is 2^63, which
// converts to a negative int64).
func batchCount(name string, t *tensor.Tensor) (int64, error) {
	if len(t.Data) != 1 {
		return 0, fmt.Errorf("%s: shape %v, want a single count", name, t.Shape)
	}
	v := float64(t.Data[0])
	if v < 0 || v >= 0x1p63 || v != math.Trunc(v) {
		return 0, fmt.Errorf("%s: %v is not a batch count", name, v)
	}
	return int64(v), nil
}
