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
// StateDict, Parameters, Layers and SetTraining are one walk over a model:
// the first three only read it, SetTraining changes only its layers'
// modes; Name, which the model constructors call, writes each parameter's
// full name into it.
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
// field order (as torchvision's state_dict). It only reads m.
func StateDict(m any) []Entry {
	var entries []Entry
	walk(m, func(name string, part any) {
		switch p := part.(type) {
		case *autograd.Value:
			entries = append(entries, Entry{Name: name, Tensor: p.Data, Param: p})
		case *tensor.Tensor:
			entries = append(entries, Entry{Name: name, Tensor: p})
		case Named:
			for _, e := range p.NamedTensors() {
				e.Name = join(name, e.Name)
				entries = append(entries, e)
			}
		}
	})
	return entries
}

// NamedLayer is a layer that holds tensors, with its full name.
type NamedLayer struct {
	Name  string
	Layer Named
}

// Layers lists every layer of m that holds tensors (Conv2d, BatchNorm, …)
// with its full name, in StateDict order.
func Layers(m any) []NamedLayer {
	var layers []NamedLayer
	walk(m, func(name string, part any) {
		if n, ok := part.(Named); ok {
			layers = append(layers, NamedLayer{Name: name, Layer: n})
		}
	})
	return layers
}

// Name gives every parameter of m its full state-dict name as its
// autograd.Value Name (optimizers key their state by it, so checkpoints
// do), and every layer its name for the messages of its shape errors. The
// model constructors (resnet.New, unet.New, mlp.New) call it; call it on a
// model assembled by hand, and again after replacing one of its layers.
func Name(m any) {
	walk(m, func(name string, part any) {
		if l, ok := part.(interface{ setName(string) }); ok {
			l.setName(name)
		}
		switch p := part.(type) {
		case *autograd.Value:
			p.Name = name
		case Named:
			for _, e := range p.NamedTensors() {
				if e.Param != nil {
					e.Param.Name = join(name, e.Name)
				}
			}
		}
	})
}

// Parameters returns m's trainable parameters in StateDict order. Their
// Name is what Name (called by the model's constructor) made it.
func Parameters(m any) []*autograd.Value {
	var ps []*autograd.Value
	for _, e := range StateDict(m) {
		if e.Param != nil {
			ps = append(ps, e.Param)
		}
	}
	return ps
}

// Seal seals every parameter of m (autograd.Value.Seal): their data will
// not change again, so operations may keep forms derived from them
// (convolutions' packed weights). For models that are only run from now
// on; nn.Freeze, by contrast, stops training parameters.
func Seal(m any) {
	for _, p := range Parameters(m) {
		p.Seal()
	}
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
	walk(m, func(_ string, part any) {
		if t, ok := part.(Trainer); ok {
			t.SetTraining(training)
		}
	})
}

// ModeReporter is implemented by Trainer layers that report their mode
// (BatchNorm and Dropout do), so that SaveModes can put them back into it.
type ModeReporter interface {
	IsTraining() bool
}

// SaveModes records the mode of every layer of m that implements Trainer
// and returns a function that puts each back into it: for work that runs
// the model in one mode and must leave it as it found it (an evaluation in
// the middle of training, or of a model its caller had put in evaluation
// mode). A Trainer that does not report its mode (ModeReporter) is put
// back into training mode.
func SaveModes(m any) (restore func()) {
	type saved struct {
		t        Trainer
		training bool
	}
	var modes []saved
	walk(m, func(_ string, part any) {
		if t, ok := part.(Trainer); ok {
			training := true
			if r, ok := part.(ModeReporter); ok {
				training = r.IsTraining()
			}
			modes = append(modes, saved{t, training})
		}
	})
	return func() {
		for _, s := range modes {
			s.t.SetTraining(s.training)
		}
	}
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
	if prefix == "" || name == "" {
		return prefix + name
	}
	return prefix + "." + name
}

// walk calls visit on every part of m with its full name, in field order
// (the order of StateDict): m itself, then what it holds through exported
// fields (but those tagged nn:"-"), slices, arrays and maps (in the order
// of their keys), down to parameters (*autograd.Value), buffers
// (*tensor.Tensor) and Named layers, which it does not enter. A pointer is
// visited, not the value it points to. It is the one walk over a model's
// structure; StateDict, Layers, Name and SetTraining differ only in what
// they do with the parts.
func walk(m any, visit func(name string, part any)) {
	w := walker{visit: visit, path: map[uintptr]bool{}}
	w.walk(reflect.ValueOf(m), "")
}

// walker holds a walk's visitor and the pointers on the way down to the
// current part, to refuse a model that contains itself.
type walker struct {
	visit func(name string, part any)
	path  map[uintptr]bool
}

func (w *walker) walk(v reflect.Value, name string) {
	if !v.IsValid() {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		w.walk(v.Elem(), name)
		return
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		if v.Type() == valueType || v.Type() == tensorType {
			w.visit(name, v.Interface())
			return
		}
		if w.path[v.Pointer()] {
			panic(fmt.Sprintf("nn: module %q contains itself", name))
		}
		w.path[v.Pointer()] = true
		defer delete(w.path, v.Pointer())
	}
	if v.CanInterface() {
		part := v.Interface()
		w.visit(name, part)
		if _, ok := part.(Named); ok {
			return
		}
	}
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
		if v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			w.walk(v, name)
			return
		}
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			w.walk(v.Index(i), join(name, strconv.Itoa(i)))
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			w.walk(v.MapIndex(k), join(name, fmt.Sprint(k)))
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			field := strings.ToLower(f.Name)
			if f.Anonymous {
				field = "" // an embedded struct's fields join the parent's
			}
			if tag, ok := f.Tag.Lookup("nn"); ok {
				if tag == "-" {
					continue
				}
				field = tag
			}
			w.walk(v.Field(i), join(name, field))
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
