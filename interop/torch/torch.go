// Package torch loads PyTorch state dicts — torchvision's weights saved
// with torch.save (.pth/.pt: the zip of pickles, or the legacy format) or
// as safetensors — as residual tensors in PyTorch's layouts, ready for
// nn.LoadTorchState.
//
// Pickles are read with github.com/nlpodyssey/gopickle, which interprets
// the pickle opcodes in Go and never executes code; this package restricts
// the globals a file may name to the few a state dict needs (torch storage
// classes, the tensor rebuild function and OrderedDict) and refuses any
// other by name, as PyTorch's weights_only loading does.
package torch

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/residual-nn/residual/safetensors"
	"github.com/residual-nn/residual/tensor"
)

// restrict refuses every global that gopickle's PyTorch loader did not
// resolve itself: its loader knows the torch storage classes and
// torch._utils._rebuild_tensor_v2, its unpickler collections.OrderedDict;
// anything else has no business in a state dict.
func restrict(module, name string) (any, error) {
	return nil, fmt.Errorf("torch: the pickle names %s.%s, which a state dict does not need; refusing to load it", module, name)
}

// LoadStateDict reads a state dict from a .safetensors file or a
// torch.save file (.pth, .pt, .bin) and returns its floating-point tensors
// by name. Integer entries (num_batches_tracked) are converted to float32.
func LoadStateDict(path string) (map[string]*tensor.Tensor, error) {
	if strings.EqualFold(filepath.Ext(path), ".safetensors") {
		f, err := safetensors.Read(path)
		if err != nil {
			return nil, err
		}
		return f.Tensors, nil
	}
	if err := checkContainer(path); err != nil {
		return nil, err
	}
	obj, err := pytorch.LoadWithUnpickler(path, func(r io.Reader) pickle.Unpickler {
		u := pickle.NewUnpickler(r)
		u.FindClass = restrict
		return u
	})
	if err != nil {
		return nil, fmt.Errorf("torch: %s: %w", path, err)
	}
	d, ok := obj.(*types.OrderedDict)
	if !ok {
		if m, isMap := obj.(*types.Dict); isMap {
			return fromDict(path, m)
		}
		return nil, fmt.Errorf("torch: %s holds a %T, not a state dict (save model.state_dict(), not the model)", path, obj)
	}
	out := map[string]*tensor.Tensor{}
	for e := d.List.Front(); e != nil; e = e.Next() {
		entry := e.Value.(*types.OrderedDictEntry)
		if err := add(out, path, entry.Key, entry.Value); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// legacyMagic is how torch.save's legacy (non-zip) format begins: the
// pickled (protocol 2) magic number 0x1950a86a20f9469cfc6c.
var legacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// checkContainer accepts a zip archive (torch.save's format since PyTorch
// 1.6) or the legacy format's exact beginning; anything else is refused
// before the pickle reader sees it (gopickle's legacy reader does not
// return on an empty file).
func checkContainer(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("torch: %w", err)
	}
	defer f.Close()
	head := make([]byte, len(legacyMagic))
	n, _ := io.ReadFull(f, head)
	switch {
	case n >= 4 && string(head[:4]) == "PK\x03\x04":
		return nil
	case n == len(legacyMagic) && bytes.Equal(head, legacyMagic):
		return nil
	}
	return fmt.Errorf("torch: %s is neither a torch.save zip archive nor a legacy torch.save file (%d bytes read)", path, n)
}

func fromDict(path string, m *types.Dict) (map[string]*tensor.Tensor, error) {
	out := map[string]*tensor.Tensor{}
	for _, e := range *m {
		if err := add(out, path, e.Key, e.Value); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func add(out map[string]*tensor.Tensor, path string, key, value any) error {
	name, ok := key.(string)
	if !ok {
		return fmt.Errorf("torch: %s: a key of type %T, not a parameter name", path, key)
	}
	t, ok := value.(*pytorch.Tensor)
	if !ok {
		return fmt.Errorf("torch: %s: %q is a %T, not a tensor", path, name, value)
	}
	v, err := convert(t)
	if err != nil {
		return fmt.Errorf("torch: %s: %q: %w", path, name, err)
	}
	out[name] = v
	return nil
}

// convert copies a (possibly strided) PyTorch tensor into a dense one.
func convert(t *pytorch.Tensor) (*tensor.Tensor, error) {
	var src []float32
	switch s := t.Source.(type) {
	case *pytorch.FloatStorage:
		src = s.Data
	case *pytorch.DoubleStorage:
		src = make([]float32, len(s.Data))
		for i, v := range s.Data {
			src[i] = float32(v)
		}
	case *pytorch.HalfStorage:
		src = s.Data
	case *pytorch.BFloat16Storage:
		src = s.Data
	case *pytorch.LongStorage:
		src = make([]float32, len(s.Data))
		for i, v := range s.Data {
			src[i] = float32(v)
		}
	case *pytorch.IntStorage:
		src = make([]float32, len(s.Data))
		for i, v := range s.Data {
			src[i] = float32(v)
		}
	default:
		return nil, fmt.Errorf("storage type %T is not supported", t.Source)
	}
	if len(t.Size) != len(t.Stride) {
		return nil, fmt.Errorf("size %v and stride %v differ in rank", t.Size, t.Stride)
	}
	out := tensor.New(t.Size...)
	// Walk the index space in row-major order, reading through the strides.
	idx := make([]int, len(t.Size))
	for i := range out.Data {
		off := t.StorageOffset
		for a, v := range idx {
			off += v * t.Stride[a]
		}
		if off < 0 || off >= len(src) {
			return nil, fmt.Errorf("element %v at storage offset %d outside its %d-element storage", idx, off, len(src))
		}
		out.Data[i] = src[off]
		for a := len(idx) - 1; a >= 0; a-- {
			idx[a]++
			if idx[a] < t.Size[a] {
				break
			}
			idx[a] = 0
		}
	}
	return out, nil
}
