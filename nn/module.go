// Package nn provides neural-network layers with parameters, their
// initialisation, and the walk that names every parameter the way
// torchvision's state_dict does.
//
// A model is any Go struct (or pointer to one) whose exported fields are
// layers, slices of layers, other such structs, parameters
// (*autograd.Value) or buffers (*tensor.Tensor). Names are the lower-cased
// field names joined by dots, slice elements are numbered, and a field tag
// `nn:"name"` overrides the name (`nn:"-"` hides the field). So a field
// Layer1 []*Block whose blocks have a Conv1 *nn.Conv2d gives
// "layer1.0.conv1.weight", torchvision's key.
//
// Layers panic on inputs of the wrong shape with a message naming the layer
// and both shapes; nothing in this package reads files.
package nn

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/tensor"
)

// Layer is anything with a one-input forward pass.
type Layer interface {
	Forward(x *autograd.Value) *autograd.Value
}

// Entry is one named tensor of a model: a trainable parameter (Param is
// set) or a buffer such as BatchNorm's running statistics (Param is nil).
type Entry struct {
	Name   string
	Tensor *tensor.Tensor
	Param  *autograd.Value
	// Layout tells how a convolution weight is stored here, so that
	// interop can convert it to PyTorch's layout; empty for tensors stored
	// as PyTorch stores them.
	Layout Layout
}

// Layout names the axis order of a stored weight.
type Layout string

// Weight layouts that differ from PyTorch's.
const (
	// LayoutHWIO is a convolution weight [KH,KW,In,Out] (PyTorch: OIHW).
	LayoutHWIO Layout = "HWIO"
	// LayoutHWOI is a transposed-convolution weight [KH,KW,Out,In]
	// (PyTorch: [In,Out,KH,KW]).
	LayoutHWOI Layout = "HWOI"
)

// StateDict lists every parameter and buffer of m with its full name, in
// field order (as torchvision's state_dict).
func StateDict(m any) []Entry {
	w := walker{seen: map[uintptr]bool{}}
	w.walk(reflect.ValueOf(m), "")
	return w.entries
}

// NamedLayer is a layer that holds tensors, with its full name.
type NamedLayer struct {
	Name  string
	Layer Named
}

// Layers lists every layer of m that holds tensors (Conv2d, BatchNorm, …)
// with its full name, in StateDict order.
func Layers(m any) []NamedLayer {
	w := walker{seen: map[uintptr]bool{}}
	w.walk(reflect.ValueOf(m), "")
	return w.layers
}

// walker collects the named tensors and layers of a model.
type walker struct {
	entries []Entry
	layers  []NamedLayer
	seen    map[uintptr]bool
}

// Parameters returns m's trainable parameters in StateDict order, each
// named with its full name.
func Parameters(m any) []*autograd.Value {
	var ps []*autograd.Value
	for _, e := range StateDict(m) {
		if e.Param != nil {
			e.Param.Name = e.Name
			ps = append(ps, e.Param)
		}
	}
	return ps
}

// NumParams returns the number of trainable values of m.
func NumParams(m any) int {
	n := 0
	for _, p := range Parameters(m) {
		n += p.Data.Len()
	}
	return n
}

// ZeroGrad drops every parameter's gradient.
func ZeroGrad(m any) {
	for _, p := range Parameters(m) {
		p.ZeroGrad()
	}
}

// Trainer is implemented by layers that behave differently in training
// and evaluation (BatchNorm, Dropout).
type Trainer interface {
	SetTraining(training bool)
}

// SetTraining switches every layer of m that implements Trainer to
// training (true) or evaluation (false) mode.
func SetTraining(m any, training bool) {
	visitModules(reflect.ValueOf(m), map[uintptr]bool{}, func(v reflect.Value) {
		if t, ok := v.Interface().(Trainer); ok {
			t.SetTraining(training)
		}
	})
}

// Named is implemented by layers that hold parameters or buffers directly;
// they list them with their local names (e.g. "weight", "running_mean").
type Named interface {
	NamedTensors() []Entry
}

var (
	valueType  = reflect.TypeOf((*autograd.Value)(nil))
	tensorType = reflect.TypeOf((*tensor.Tensor)(nil))
)

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func (w *walker) walk(v reflect.Value, prefix string) {
	if !v.IsValid() {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		w.walk(v.Elem(), prefix)
		return
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		switch v.Type() {
		case valueType:
			p := v.Interface().(*autograd.Value)
			w.entries = append(w.entries, Entry{Name: prefix, Tensor: p.Data, Param: p})
			return
		case tensorType:
			w.entries = append(w.entries, Entry{Name: prefix, Tensor: v.Interface().(*tensor.Tensor)})
			return
		}
		if w.seen[v.Pointer()] {
			panic(fmt.Sprintf("nn: module %q is reachable twice; share parameters explicitly instead", prefix))
		}
		w.seen[v.Pointer()] = true
		defer delete(w.seen, v.Pointer())
	}
	if v.CanInterface() {
		if l, ok := v.Interface().(interface{ setName(string) }); ok {
			l.setName(prefix)
		}
		if n, ok := v.Interface().(Named); ok {
			for _, e := range n.NamedTensors() {
				e.Name = join(prefix, e.Name)
				w.entries = append(w.entries, e)
			}
			w.layers = append(w.layers, NamedLayer{Name: prefix, Layer: n})
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		w.walk(v.Elem(), prefix)
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			w.walk(v.Index(i), join(prefix, strconv.Itoa(i)))
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			w.walk(v.MapIndex(k), join(prefix, fmt.Sprint(k)))
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := strings.ToLower(f.Name)
			if f.Anonymous {
				name = "" // an embedded struct's fields join the parent's
			}
			if tag, ok := f.Tag.Lookup("nn"); ok {
				if tag == "-" {
					continue
				}
				name = tag
			}
			if name == "" {
				w.walk(v.Field(i), prefix)
			} else {
				w.walk(v.Field(i), join(prefix, name))
			}
		}
	}
}

// visitModules calls f on every pointer, interface value and struct
// reachable from v through exported fields and slices.
func visitModules(v reflect.Value, seen map[uintptr]bool, f func(reflect.Value)) {
	if !v.IsValid() {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		visitModules(v.Elem(), seen, f)
	case reflect.Pointer:
		if v.IsNil() || v.Type() == valueType || v.Type() == tensorType || seen[v.Pointer()] {
			return
		}
		seen[v.Pointer()] = true
		f(v)
		visitModules(v.Elem(), seen, f)
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			visitModules(v.Index(i), seen, f)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			visitModules(v.MapIndex(k), seen, f)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				visitModules(v.Field(i), seen, f)
			}
		}
	}
}

// Sequential applies its layers in order; they are named "0", "1", … as in
// PyTorch's nn.Sequential.
type Sequential []Layer

// Forward applies the layers in order.
func (s Sequential) Forward(x *autograd.Value) *autograd.Value {
	for _, l := range s {
		x = l.Forward(x)
	}
	return x
}
