// Package autograd implements reverse-mode differentiation over float32
// tensors.
//
// A Value holds a tensor and, after Backward, its gradient. Operations record
// themselves on a Tape when one of their inputs lives on a tape and a
// gradient is needed; a computation whose inputs carry no tape (Constant)
// records nothing and keeps no activations — that is the no-gradient mode
// used for inference:
//
//	tape := autograd.NewTape()
//	x := tape.Variable(input)          // d loss / d input is wanted too
//	loss := model(x)                   // ops record on the tape
//	tape.Backward(loss)                // x.Grad and every parameter's Grad
//	tape.Reset()                       // recycle the step's buffers
//
//	y := model(autograd.Constant(input)) // inference: nothing recorded
//
// An inference loop runs on a tape from NewNoGradTape, which records
// nothing, fuses each convolution with the batch norm, addition and ReLU
// after it, and recycles its buffers on Reset; PlanMemory makes it also
// release each buffer once the pass is done with it (memplan.go).
//
// Images are NHWC; convolution weights HWIO (see package tensor).
//
// Shape mismatches inside an operation are programming errors and panic with
// a message naming the operation and both shapes. Operations whose validity
// depends on data (class labels) return errors.
package autograd

import (
	"fmt"
	"math/bits"
	"sync/atomic"
	"unsafe"

	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/tensor"
)

// Value is a node of a computation: a tensor, and its gradient once
// Backward has run.
type Value struct {
	// Data is the value. Operations never modify their inputs' data. On a
	// tape, an operation may defer computing it until the value is used,
	// so that it fuses with what follows (fuse.go): Data's shape is set at
	// once, its numbers after Realize, which every operation calls on its
	// inputs. Read Data of a value produced on a tape through Tensor.
	Data *tensor.Tensor
	// Grad is d(loss)/d(Data) after Backward, or nil if no gradient
	// reached this value. Parameters accumulate gradients across Backward
	// calls until ZeroGrad. An intermediate value (neither a Param nor a
	// Variable) keeps its Grad only if RetainGrad was called before the
	// backward pass: otherwise, as PyTorch frees the gradients of
	// non-leaves, Grad is nil afterwards and its buffer was recycled as soon
	// as the value's own backward step had used it.
	Grad *tensor.Tensor
	// Name is a parameter's name (e.g. "layer1.0.conv1.weight"); empty for
	// intermediate values.
	Name string

	requiresGrad bool // a leaf whose gradient the caller wants
	needsGrad    bool // requiresGrad, or computed from such a value
	retain       bool // keep Grad for inspection: never hand its buffer on
	gradLent     bool // Grad's buffer was handed on to an input (give)
	tape         *Tape
	spare        []float32 // a leaf's gradient buffer after ZeroGrad, for the next backward pass
	lazy         *deferred // what computes Data, while it is deferred (fuse.go)
	sealed       *sealed   // set by Seal: forms derived once from Data
	mem          int       // its buffer in its tape's memory plan (memplan.go); 0: none
	// stats are Data's batch statistics per channel, where the
	// convolution that produced it computed them as it stored it (fuse.go).
	stats *kernels.ConvStats
	// bf16Grad: the backward step of the convolution that produced it
	// reads its gradient only as bfloat16, so the batch norm after it may
	// store it so: gradBF16, in the tape buffer gradBF16Buf, in place of
	// Grad until something needs float32 (widenGrad; fuse.go).
	bf16Grad    bool
	gradBF16    []uint16
	gradBF16Buf []float32
	// dataBF16 is Data in bfloat16 too (BF16FromFloat32 of each element),
	// in the tape buffer dataBF16Buf, where the batch norm that computed
	// it stored it so for the bfloat16 convolution that reads it next
	// (fuse.go's storesDataBF16).
	dataBF16    []uint16
	dataBF16Buf []float32
	// gradSums: the first pass of the backward step of the training
	// batch norm and ReLU whose output it is, which the data gradient of
	// a convolution that reads it fills as it stores the gradient, where
	// that gradient is the last of its (fuse.go's lastGradSums).
	gradSums *kernels.DataGradSums
	// uses counts the recorded operations that read it (once per
	// operand): a gradient is stored as bfloat16 only for a value one
	// operation reads, so that no other contribution is added to the
	// rounded one.
	uses int32
}

// gradF32 returns v's gradient in float32: Grad, widened from gradBF16
// (exactly) if that is how it was stored; gradBF16 stays until v's
// backward step ends, as a reader may hold it.
func (v *Value) gradF32() []float32 {
	if v.Grad == nil && v.gradBF16 != nil {
		g := v.tape.alloc(v.numel())
		kernels.FromBF16(g, v.gradBF16)
		v.Grad = &tensor.Tensor{Shape: append([]int(nil), v.Data.Shape...), Data: g}
	}
	return v.Grad.Data
}

// widenGrad turns a gradient stored as bfloat16 into Grad before another
// contribution adds to it.
func (v *Value) widenGrad() {
	if v.gradBF16 == nil {
		return
	}
	v.gradF32()
	v.tape.release(v.gradBF16Buf)
	v.gradBF16, v.gradBF16Buf = nil, nil
}

// sealed holds what operations derive from a sealed value's data and keep
// across calls.
type sealed struct {
	conv     atomic.Pointer[packed[kernels.PackedConv]]     // the value as a convolution's packed weights
	convBF16 atomic.Pointer[packed[kernels.PackedConvBF16]] // the same for the bfloat16 kernels
	gemm     atomic.Pointer[packed[kernels.PackedGemm]]     // the value as a matrix product's packed B
	gemmBF16 atomic.Pointer[packed[kernels.PackedGemmBF16]] // the same for the bfloat16 kernels
}

// packed is a sealed value's packed form for some kernels; p is nil when
// they do not apply to its shape (kept, so that packing is not retried).
type packed[T any] struct{ p *T }

// keep returns the packed form in slot, packing it on first use
// (concurrent first uses may both pack; one result is kept).
func keep[T any](slot *atomic.Pointer[packed[T]], pack func() *T) *T {
	if p := slot.Load(); p != nil {
		return p.p
	}
	p := &packed[T]{pack()}
	if !slot.CompareAndSwap(nil, p) {
		return slot.Load().p
	}
	return p.p
}

// packedGemmB returns sealed value b packed as op(B) of a product with n
// columns over k (B [n][ldb] when transB), packing it on first use.
func (b *Value) packedGemmB(transB bool, n, k, ldb int) *kernels.PackedGemm {
	return keep(&b.sealed.gemm, func() *kernels.PackedGemm { return kernels.PackGemm(transB, n, k, b.Data.Data, ldb) })
}

// packedGemmBBF16 is packedGemmB for the bfloat16 kernels.
func (b *Value) packedGemmBBF16(transB bool, n, k, ldb int) *kernels.PackedGemmBF16 {
	return keep(&b.sealed.gemmBF16, func() *kernels.PackedGemmBF16 { return kernels.PackGemmBF16(transB, n, k, b.Data.Data, ldb) })
}

// Seal declares that v's data will not change again, so that operations
// may keep forms derived from it across calls instead of recomputing them
// each time: a convolution packs a sealed weight for its kernels once,
// where it otherwise copies the whole weight tensor on every call (a third
// of a batch-1 ResNet-50 forward pass on AVX2), and a matrix product
// (Linear, Gemm) its sealed B operand (ResNet-50's classifier at batch 1:
// 0.54 against 2.3 ms). models.ForInference
// seals a model's parameters once they are final; the results are the same
// bit for bit. Changing Data after Seal makes later results wrong: seal
// only what is read and never written from then on (unlike nn.Freeze,
// which stops training a parameter that may still be loaded or changed).
// Seal is not safe to call concurrently with operations on v.
func (v *Value) Seal() {
	if v.sealed == nil {
		v.sealed = &sealed{}
	}
}

// Sealed reports whether Seal was called on v.
func (v *Value) Sealed() bool { return v.sealed != nil }

// packedConvWeights returns sealed weight w packed for convolutions of
// shape s, packing it on first use.
func (w *Value) packedConvWeights(s kernels.ConvShape) *kernels.PackedConv {
	return keep(&w.sealed.conv, func() *kernels.PackedConv { return kernels.PackConv(s, w.Data.Data) })
}

// packedConvWeightsBF16 is packedConvWeights for the bfloat16 kernels.
func (w *Value) packedConvWeightsBF16(s kernels.ConvShape) *kernels.PackedConvBF16 {
	return keep(&w.sealed.convBF16, func() *kernels.PackedConvBF16 { return kernels.PackConvBF16(s, w.Data.Data) })
}

// RetainGrad keeps this intermediate value's gradient intact through the
// backward pass (PyTorch's retain_grad), for inspection.
func (v *Value) RetainGrad() { v.retain = true }

// Param returns a trainable leaf value (no tape): its gradient is computed
// whenever it takes part in a recorded computation.
func Param(t *tensor.Tensor, name string) *Value {
	return &Value{Data: t, Name: name, requiresGrad: true, needsGrad: true}
}

// Constant returns a leaf value with no tape and no gradient. Computations
// on constants and parameters alone record nothing (no-gradient mode).
func Constant(t *tensor.Tensor) *Value { return &Value{Data: t} }

// Shape returns the shape of v's tensor: its own slice, not a copy, so
// callers must not modify it.
func (v *Value) Shape() []int { return v.Data.Shape }

// RequiresGrad reports whether v is a leaf whose gradient is wanted.
func (v *Value) RequiresGrad() bool { return v.requiresGrad }

// SetRequiresGrad freezes (false) or unfreezes (true) a parameter.
func (v *Value) SetRequiresGrad(b bool) { v.requiresGrad, v.needsGrad = b, b }

// ZeroGrad drops the accumulated gradient. Its buffer is reused by the
// next backward pass (a training step then allocates no new gradients), so
// a Grad tensor read before ZeroGrad changes after it: clone a gradient you
// want to keep.
func (v *Value) ZeroGrad() {
	if v.Grad != nil && v.requiresGrad {
		v.spare = v.Grad.Data
	}
	v.Grad = nil
}

// Tape records operations for the backward pass and owns the buffers of the
// values it produces, recycling them on Reset. A tape is used by one
// goroutine at a time.
type Tape struct {
	nodes     []node
	pool      map[int][][]float32
	owned     [][]float32
	ownedAt   map[*float32]int // index in owned of each buffer, by its first element
	shapeOnly bool
	noGrad    bool
	hook      func(layer any, in, out *Value)
	tracer    func(Op)
	gradReady func(*Value)
	leafUses  map[*Value]int // recorded operations whose backward step has yet to give each leaf its gradient
	precision Precision      // of the convolutions and matrix products (precision.go)
	plans     *memoryPlans   // set by PlanMemory (memplan.go)
}

// SetGradReady makes the backward pass call f with each leaf value (a
// parameter or a Variable) as soon as its gradient is final: after the
// backward step of the last recorded operation that used it, while the
// pass goes on through earlier operations. Data-parallel training starts
// reducing a parameter's gradient across processes there, so that the
// communication overlaps the rest of the backward pass. nil removes it. A
// leaf that no recorded operation used, or to which no gradient flowed, is
// not reported. Set it before the forward pass: operations count the
// leaves they use as they are recorded.
func (tp *Tape) SetGradReady(f func(leaf *Value)) {
	tp.gradReady = f
	if f != nil && tp.leafUses == nil {
		tp.leafUses = map[*Value]int{}
	}
}

type node struct {
	out      *Value
	backward func()
	leaves   []*Value // the inputs that are leaves, when gradients are reported (SetGradReady)
}

// NewTape returns an empty tape for training: operations on values from it
// record their backward steps for Backward, batch norms fuse with the
// addition and ReLU that follow them (fuse.go), and Reset recycles the
// buffers.
func NewTape() *Tape { return &Tape{pool: map[int][][]float32{}, ownedAt: map[*float32]int{}} }

// NewNoGradTape returns a tape for inference: it records nothing (no
// gradients, no activations kept for a backward pass) but, unlike values
// without a tape, its buffers are recycled on Reset, so a loop of inference
// steps stops allocating, and convolutions fuse with the batch norm,
// addition and ReLU that follow them (fuse.go): read an output's numbers
// through Value.Tensor, which computes them if they were deferred.
func NewNoGradTape() *Tape {
	return &Tape{pool: map[int][][]float32{}, ownedAt: map[*float32]int{}, noGrad: true}
}

// NoGradTape returns an inference tape (see NewNoGradTape) that shares
// tp's pool of recycled buffers: what one tape's Reset frees, the other
// reuses, so evaluating between training steps needs no second set of
// buffers. Use the two tapes from one goroutine, one at a time.
func (tp *Tape) NoGradTape() *Tape {
	return &Tape{pool: tp.pool, ownedAt: map[*float32]int{}, noGrad: true, precision: tp.precision}
}

// NewShapeTape returns a tape that only infers shapes: operations on its
// values check their inputs and produce correctly shaped values without
// data, computing nothing and recording nothing. Use Placeholder for its
// inputs. It serves model summaries and shape validation.
func NewShapeTape() *Tape {
	return &Tape{pool: map[int][][]float32{}, ownedAt: map[*float32]int{}, shapeOnly: true}
}

// Placeholder returns a data-less input of the given shape for a shape
// tape.
func (tp *Tape) Placeholder(shape ...int) *Value {
	if !tp.shapeOnly {
		panic("autograd: Placeholder needs a tape from NewShapeTape")
	}
	return &Value{Data: &tensor.Tensor{Shape: append([]int(nil), shape...)}, tape: tp}
}

// SetHook makes layers that call Observe report each application to f
// (for summaries and activation statistics); nil removes it.
func (tp *Tape) SetHook(f func(layer any, in, out *Value)) { tp.hook = f }

// Observe reports that layer turned in into out to the hook of out's tape,
// if any. Layers call it at the end of Forward.
func Observe(layer any, in, out *Value) {
	if out.tape != nil && out.tape.hook != nil {
		out.tape.hook(layer, in, out)
	}
}

func (v *Value) dry() bool { return v.tape != nil && v.tape.shapeOnly }

// ShapeOnly reports whether v belongs to a shape tape (it holds no data).
func (v *Value) ShapeOnly() bool { return v.dry() }

// numel is the number of elements of the value's shape (valid for
// shape-only values, which hold no data).
func (v *Value) numel() int { return tensor.NumElements(v.Data.Shape) }

// Constant returns a value on the tape that needs no gradient (e.g. a batch
// of images when only parameter gradients are wanted).
func (tp *Tape) Constant(t *tensor.Tensor) *Value { return &Value{Data: t, tape: tp} }

// Variable returns a leaf value on the tape whose gradient is wanted (e.g.
// d output / d input).
func (tp *Tape) Variable(t *tensor.Tensor) *Value {
	return &Value{Data: t, tape: tp, requiresGrad: true, needsGrad: true}
}

// Len returns the number of recorded operations.
func (tp *Tape) Len() int { return len(tp.nodes) }

// Reset forgets the recorded operations and recycles every buffer the tape
// allocated. Values produced on this tape (and their gradients, except those
// of leaves) must not be used afterwards.
func (tp *Tape) Reset() {
	for i := range tp.nodes {
		tp.nodes[i] = node{}
	}
	tp.nodes = tp.nodes[:0]
	// A pass that confirmed a memory plan held all its buffers at once;
	// the passes that follow need a few of them, so the pool does not keep
	// the rest.
	if drop := tp.plans != nil && tp.plans.memReset(); !drop {
		for _, b := range tp.owned {
			tp.pool[cap(b)] = append(tp.pool[cap(b)], b)
		}
	}
	clear(tp.owned)
	tp.owned = tp.owned[:0]
	clear(tp.ownedAt)
	clear(tp.leafUses)
}

// alloc returns a buffer of n floats owned by the tape (or a plain
// allocation without a tape). A recycled buffer is not cleared: every
// kernel overwrites its whole output.
func (tp *Tape) alloc(n int) []float32 {
	if tp == nil {
		return make([]float32, n)
	}
	var b []float32
	c := sizeClass(n)
	if tp.plans != nil && len(tp.pool[c]) == 0 {
		c = largerFree(tp.pool, c)
	}
	if free := tp.pool[c]; len(free) > 0 {
		b = free[len(free)-1][:n]
		tp.pool[c] = free[:len(free)-1]
	} else {
		b = make([]float32, n, c)
	}
	if n > 0 {
		tp.ownedAt[&b[0]] = len(tp.owned)
		tp.owned = append(tp.owned, b)
		if tp.plans != nil {
			tp.plans.memAllocated(b)
		}
	}
	return b
}

// sizeClass is the capacity of a buffer of n floats: n itself when small,
// else the next power of two. Buffers are pooled by class, so a batch of
// another size reuses the buffers of the last one instead of adding its
// own: a server whose batches take every size up to B holds about twice
// the buffers of a batch of B, not the sum over all sizes (which grew a
// ResNet-20 server past 7 GB). Only the n floats asked for are written
// by the kernels; the rest of the capacity costs address space, and
// memory only where the allocator zeroes reused pages for it (at most
// the class's doubling, once per buffer: the pool then keeps it).
func sizeClass(n int) int {
	if n <= 4096 {
		return n
	}
	return 1 << bits.Len(uint(n-1))
}

// release gives a buffer that alloc returned back to the pool before
// Reset, once nothing will read it again. Buffers the tape does not own
// are left alone.
func (tp *Tape) release(b []float32) {
	if len(b) == 0 {
		return
	}
	i, ok := tp.ownedAt[&b[0]]
	if !ok {
		return
	}
	b = tp.owned[i] // as alloc made it: its capacity is its class
	last := len(tp.owned) - 1
	moved := tp.owned[last]
	tp.owned[i] = moved
	tp.ownedAt[&moved[0]] = i
	tp.owned[last] = nil
	tp.owned = tp.owned[:last]
	delete(tp.ownedAt, &b[0])
	if tp.plans != nil {
		tp.plans.memReleased(b)
	}
	tp.pool[cap(b)] = append(tp.pool[cap(b)], b)
}

// allocInt32 returns a buffer of n int32s owned by the tape: a float32
// buffer of the same size reinterpreted, so that it is recycled with the
// others.
func (tp *Tape) allocInt32(n int) []int32 {
	if n == 0 {
		return nil
	}
	b := tp.alloc(n)
	return unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), n)
}

func (tp *Tape) newTensor(shape []int) *tensor.Tensor {
	if tp != nil && tp.shapeOnly {
		return &tensor.Tensor{Shape: append([]int(nil), shape...)}
	}
	return &tensor.Tensor{Shape: append([]int(nil), shape...), Data: tp.alloc(tensor.NumElements(shape))}
}

// tapeOf returns the first tape among the inputs, or nil.
func tapeOf(xs ...*Value) *Tape {
	for _, x := range xs {
		if x != nil && x.tape != nil {
			return x.tape
		}
	}
	return nil
}

// result makes the output value of an operation on inputs xs, allocated on
// their tape, after computing any deferred input.
func result(shape []int, xs ...*Value) *Value {
	for _, x := range xs {
		x.Realize()
	}
	tp := tapeOf(xs...)
	if tp == nil || tp.plans == nil {
		return &Value{Data: tp.newTensor(shape), tape: tp}
	}
	tp.memStep(xs...)
	y := &Value{Data: tp.newTensor(shape), tape: tp}
	tp.memOwn(y)
	return y
}

// record registers backward for out if it is on a tape and any input needs
// a gradient. It returns whether it recorded.
func record(out *Value, backward func(), xs ...*Value) bool {
	if out.tape == nil || out.tape.noGrad {
		return false
	}
	for _, x := range xs {
		if x != nil {
			x.uses++
		}
	}
	for _, x := range xs {
		if x != nil && x.needsGrad {
			out.needsGrad = true
			n := node{out: out, backward: backward}
			if tp := out.tape; tp.gradReady != nil {
				for _, x := range xs {
					if x != nil && x.requiresGrad {
						n.leaves = append(n.leaves, x)
						tp.leafUses[x]++
					}
				}
			}
			out.tape.nodes = append(out.tape.nodes, n)
			return true
		}
	}
	return false
}

// contribute adds a gradient for x computed by write, which must overwrite
// the slice it is given. It does nothing if x needs no gradient.
func (tp *Tape) contribute(x *Value, write func(dst []float32)) {
	if x == nil || !x.needsGrad {
		return
	}
	x.widenGrad()
	n := x.numel() // from the shape: a deferred value has no data yet
	if x.Grad == nil {
		var buf []float32
		if x.requiresGrad { // leaves keep their gradient past Reset
			if len(x.spare) == n {
				buf, x.spare = x.spare, nil
			} else {
				buf = make([]float32, n)
			}
		} else {
			buf = tp.alloc(n)
		}
		write(buf)
		x.Grad = &tensor.Tensor{Shape: append([]int(nil), x.Data.Shape...), Data: buf}
		return
	}
	tmp := tp.alloc(n)
	write(tmp)
	kernels.Add(x.Grad.Data, tmp, x.Grad.Data)
	tp.release(tmp)
}

// contributeAdd is contribute for an operation that can also add its
// gradient onto x's existing one in place (add), which saves the scratch
// buffer and a pass over memory.
func (tp *Tape) contributeAdd(x *Value, write, add func(dst []float32)) {
	if x == nil || !x.needsGrad {
		return
	}
	x.widenGrad()
	if x.Grad == nil {
		tp.contribute(x, write)
		return
	}
	add(x.Grad.Data)
}

// handsOn reports whether out's gradient buffer dies with out's own
// backward step (not retained, not a leaf's) and x would take it over in
// give (x needs a gradient, has none yet and is not a leaf): then out's
// backward may write x's gradient over its own and give it on, marking
// out.gradLent.
func (out *Value) handsOn(x *Value) bool {
	return !out.retain && !out.requiresGrad && x != nil && x.needsGrad && x.Grad == nil && !x.requiresGrad
}

// give adds the computed gradient g for x. g must be a tape buffer that
// nothing else will write: when x has no gradient yet and is not a leaf, x
// takes g over without a copy and give reports true; otherwise g is
// released. Hand a buffer to at most one value.
func (tp *Tape) give(x *Value, g []float32) bool {
	if x == nil || !x.needsGrad {
		tp.release(g)
		return false
	}
	x.widenGrad()
	if x.Grad == nil && !x.requiresGrad {
		x.Grad = &tensor.Tensor{Shape: append([]int(nil), x.Data.Shape...), Data: g}
		return true
	}
	tp.contribute(x, func(dst []float32) { copy(dst, g) })
	tp.release(g)
	return false
}

// Backward computes the gradient of the scalar loss with respect to every
// value that needs one. Parameters' gradients add to what they hold, as
// PyTorch's do: a training loop clears them between steps (nn.ZeroGrad).
// It panics if loss is not a single element.
func (tp *Tape) Backward(loss *Value) {
	if loss.numel() != 1 {
		panic(fmt.Sprintf("autograd: Backward needs a scalar loss, got shape %v", loss.Data.Shape))
	}
	tp.BackwardWith(loss, tensor.Full(1, loss.Data.Shape...))
}

// BackwardWith runs the backward pass from v with the upstream gradient
// grad (of v's shape): the vector–Jacobian product.
func (tp *Tape) BackwardWith(v *Value, grad *tensor.Tensor) {
	v.Realize()
	if !tensor.SameShape(v.Data.Shape, grad.Shape) {
		panic(fmt.Sprintf("autograd: BackwardWith: gradient %v for value %v", grad.Shape, v.Data.Shape))
	}
	if v.tape != tp {
		panic("autograd: BackwardWith: the value was not recorded on this tape")
	}
	tp.contribute(v, func(dst []float32) { copy(dst, grad.Data) })
	for i := len(tp.nodes) - 1; i >= 0; i-- {
		n := tp.nodes[i]
		if n.out.Grad != nil || n.out.gradBF16 != nil {
			n.backward()
			// An intermediate gradient is dead once its own step has used
			// it (every consumer ran before): recycle it unless it is
			// retained or was handed on to an input.
			if out := n.out; !out.retain && !out.requiresGrad {
				if !out.gradLent && out.Grad != nil {
					tp.release(out.Grad.Data)
				}
				tp.release(out.gradBF16Buf)
				out.Grad, out.gradLent = nil, false
				out.gradBF16, out.gradBF16Buf = nil, nil
			}
		}
		for _, l := range n.leaves {
			if tp.leafUses[l]--; tp.leafUses[l] == 0 {
				delete(tp.leafUses, l)
				if l.Grad != nil {
					tp.gradReady(l)
				}
			}
		}
	}
}

func shapeErr(op string, format string, args ...any) {
	panic(fmt.Sprintf("autograd: %s: %s", op, fmt.Sprintf(format, args...)))
}
