package autograd

import (
	"fmt"
	"slices"
)

// A memory plan frees an inference pass's buffers as soon as the pass is
// done with them (ONNX Runtime's memory pattern). Without one, a
// no-gradient tape keeps every value a pass produced until Reset, which
// is what a backward pass would need and an inference pass does not: a
// batch-1 ResNet-50 pass fills 57 MB of buffers where a plan needs 17
// (bench's paired measurement), since only a few blocks' activations are
// ever live at once.
//
// Go cannot count references, so the tape learns the pass instead. A pass
// records, for each buffer the tape allocates, the last step — an
// operation, or the computing of a deferred value — that reads it, and
// which buffers each step reads. Once a second pass has run the same steps
// (so that a pass cut short by a panic is never taken for the whole),
// later passes release each buffer into the tape's pool at the step after
// its last read, where the next allocation of its size class picks it up
// while it is still in cache. A buffer no operation reads (the pass's
// outputs) is kept until Reset.
//
// A pass follows the plan recorded for its first buffer's size or else
// the latest plan: a network's pass at another batch size runs the same
// steps on buffers scaled by the batch, so one recording serves every
// batch size (the recording pass holds all its buffers at once, so the
// fewer the better). Every step is checked against the plan before it
// releases anything: it must read the same buffers, numbered in the order
// they were allocated. A pass that departs from the plan stops releasing
// for the rest of the pass and becomes the plan for its first size. A
// value whose buffer was released before the departure panics when it is
// read (through an operation or Tensor), instead of returning another
// value's numbers.
//
// One release comes a step early: a deferred convolution's skip, at the
// step that computes the sum when that step is its last reader, so that
// the sum's output takes the skip's buffer and is added in place
// (memReleaseLast).

// maxMemoryPlans bounds the first sizes a tape keeps plans under.
const maxMemoryPlans = 64

// memoryPlans is a tape's plans and the state of the pass under way.
type memoryPlans struct {
	byKey  map[int]*memoryPlan // by the size of a pass's first buffer
	latest *memoryPlan

	step   int              // steps so far in this pass
	bufs   []passBuf        // this pass's buffers; a value's mem is its index + 1
	byPtr  map[*float32]int // mem of the live buffer starting at a pointer
	reads  [][]int          // by step (from 1): the mems it reads
	replay *memoryPlan      // the plan this pass follows; nil: none (recording)
	off    bool             // the pass departed from its plan
	broken bool             // Discard: the pass did not finish
}

// passBuf is a buffer of the pass under way.
type passBuf struct {
	buf      []float32
	val      *Value   // the value it holds, poisoned when the plan releases it
	views    []*Value // Reshapes of val, which share its buffer
	lastRead int      // the last step that read it (0: none yet)
	released bool     // back in the pool
	planned  bool     // released by the plan (not by an operation)
}

// memoryPlan is a recorded pass: its allocations and when to release them.
type memoryPlan struct {
	bufs    int     // the pass's buffers
	reads   [][]int // by step (from 1): the mems it reads
	freeAt  [][]int // by step: the mems to release as it starts
	planned int     // buffers released before Reset
	// confirmed: a second pass ran the same steps; until then passes that
	// follow the plan only check it.
	confirmed bool
}

// PlanMemory makes a no-gradient tape release each buffer of an inference
// pass as soon as no later step of the pass reads it, so that a pass holds
// a few layers' activations instead of all of them (ResNet-50: 17 MB of
// buffers per image instead of 57) and reuses buffers while they are in
// cache. The tape's first pass records what each step reads and the
// second, if it runs the same steps, confirms it; both hold every buffer
// as before, and releasing starts with the third. A pass that runs other
// operations, or the same ones in another order, stops releasing where it
// departs and is recorded afresh (see memplan.go), so PlanMemory suits a
// tape that runs one network, at any batch size, pass after pass. A pass
// that does not finish (a panic inside it) must end with Discard instead
// of Reset, or two such passes would be taken for the whole.
//
// The price is a rule: once a pass is confirmed, a value that an
// operation reads is valid only until the first operation after the last
// one that reads it (a Reshape shares its input's buffer, and its fate).
// Values no operation reads, such as the outputs, stay valid until Reset.
// Read an intermediate value (or Clone it) before running operations that
// follow its last use. Reading it afterwards through an operation or
// Tensor panics, and its Data holds no numbers; a pass that departs from
// the plan and then reads a buffer released before it departed panics
// the same way. A convolution whose deferred sum adds a skip for the last
// time (a residual block's last) writes its output over the skip, as ONNX
// Runtime's fused Conv + Sum does (a third less memory traffic for the
// convolution): a departing pass that computes such a sum a second time
// (with and without a ReLU) reads the overwritten skip and panics too. It
// panics on a tape that records gradients.
func (tp *Tape) PlanMemory() {
	if !tp.noGrad || tp.shapeOnly {
		panic("autograd: PlanMemory needs a no-gradient tape")
	}
	if tp.plans == nil {
		tp.plans = &memoryPlans{byKey: map[int]*memoryPlan{}, byPtr: map[*float32]int{}}
	}
}

// PlannedReleases returns how many buffers the plan for a pass whose first
// buffer holds n floats releases before Reset (0 when there is none yet).
func (tp *Tape) PlannedReleases(n int) int {
	if tp.plans == nil || tp.plans.byKey[n] == nil {
		return 0
	}
	return tp.plans.byKey[n].planned
}

// Discard ends a pass that did not finish, as Reset does, except that a
// memory plan learns nothing from it (see PlanMemory): call it instead of
// Reset when a panic interrupted the pass.
func (tp *Tape) Discard() {
	if tp.plans != nil {
		tp.plans.broken = true
	}
	tp.Reset()
}

// memStep starts a step of the pass that reads xs: it releases what the
// plan frees here and records the reads.
func (tp *Tape) memStep(xs ...*Value) {
	m := tp.plans
	m.step++
	if r := m.replay; r != nil && !m.off && !r.same(m.step, tp, xs) {
		m.off = true
	}
	if r := m.replay; r != nil && !m.off && r.confirmed {
		for _, id := range r.freeAt[m.step] {
			b := &m.bufs[id-1]
			if b.released {
				continue
			}
			b.poison()
			tp.release(b.buf)
			b.planned = true
		}
	}
	if m.step <= cap(m.reads) {
		m.reads = m.reads[:m.step]
		m.reads[m.step-1] = m.reads[m.step-1][:0]
	} else {
		m.reads = append(m.reads, nil)
	}
	for _, x := range xs {
		if x == nil || x.mem == 0 || x.tape != tp {
			continue
		}
		b := &m.bufs[x.mem-1]
		if b.released {
			panic(fmt.Sprintf("autograd: a value of shape %v was read after its tape's memory plan released it (see Tape.PlanMemory)", x.Data.Shape))
		}
		b.lastRead = m.step
		m.reads[m.step-1] = append(m.reads[m.step-1], x.mem)
	}
}

// memReleaseLast releases v's buffer into the pool now, not as the next
// step starts, when the step under way is the last to read it (in a
// confirmed plan, followed so far) and none of others shares it: the
// step's own output, allocated next at the same size, then takes it. A
// residual block's last convolution thus adds its skip in place
// (kernels.ConvEpilogue) instead of reading one buffer and filling
// another: ResNet-50's 16 such convolutions read and write a third less.
// The caller must have taken v's data first (releasing poisons v); when
// the output gets another buffer, the skip is still read from where it
// lies, which nothing allocates before the convolution has run.
func (tp *Tape) memReleaseLast(v *Value, others ...*Value) {
	m := tp.plans
	if m == nil || v.mem == 0 || v.tape != tp {
		return
	}
	r := m.replay
	if r == nil || m.off || !r.confirmed || m.step+1 >= len(r.freeAt) || !slices.Contains(r.freeAt[m.step+1], v.mem) {
		return
	}
	for _, o := range others {
		if o != nil && o.tape == tp && o.mem == v.mem {
			return
		}
	}
	b := &m.bufs[v.mem-1]
	if b.released {
		return
	}
	b.poison()
	tp.release(b.buf)
	b.planned = true
}

// same reports whether step s of a pass, reading xs, reads what step s of
// the recorded pass read: the check that lets the step release buffers.
func (p *memoryPlan) same(s int, tp *Tape, xs []*Value) bool {
	if s >= len(p.freeAt) {
		return false
	}
	want := p.reads[s-1]
	i := 0
	for _, x := range xs {
		if x == nil || x.mem == 0 || x.tape != tp {
			continue
		}
		if i == len(want) || want[i] != x.mem {
			return false
		}
		i++
	}
	return i == len(want)
}

// memAllocated notes a buffer the tape allocated in this pass; the first
// chooses the plan the pass follows.
func (m *memoryPlans) memAllocated(b []float32) {
	i := len(m.bufs)
	if i == 0 {
		if m.replay = m.byKey[len(b)]; m.replay == nil {
			m.replay = m.latest
		}
	}
	m.bufs = append(m.bufs, passBuf{buf: b})
	m.byPtr[&b[0]] = i + 1
}

// memReleased notes that buffer b went back to the pool.
func (m *memoryPlans) memReleased(b []float32) {
	if id, ok := m.byPtr[&b[0]]; ok {
		m.bufs[id-1].released = true
		delete(m.byPtr, &b[0])
	}
}

// memOwn makes v the value that holds the buffer behind its data.
func (tp *Tape) memOwn(v *Value) {
	m := tp.plans
	if m == nil || len(v.Data.Data) == 0 {
		return
	}
	if id, ok := m.byPtr[&v.Data.Data[0]]; ok {
		v.mem = id
		m.bufs[id-1].val = v
	}
}

// memAlias makes view (a Reshape of x, sharing its data) share x's buffer
// in the plan.
func (tp *Tape) memAlias(x, view *Value) {
	if tp == nil || tp.plans == nil || x.mem == 0 || x.tape != tp {
		return
	}
	view.mem = x.mem
	b := &tp.plans.bufs[x.mem-1]
	b.views = append(b.views, view)
}

// poison makes the values that hold b's buffer unreadable: their data nil,
// their reads through operations and Tensor a panic (b.released).
func (b *passBuf) poison() {
	if b.val != nil {
		b.val.Data.Data = nil
	}
	for _, v := range b.views {
		v.Data.Data = nil
	}
}

// memCheck panics if v's buffer was released by the plan.
func (v *Value) memCheck() {
	if v.mem != 0 && v.tape != nil && v.tape.plans != nil && v.tape.plans.bufs[v.mem-1].released {
		panic(fmt.Sprintf("autograd: a value of shape %v was read after its tape's memory plan released it (see Tape.PlanMemory)", v.Data.Shape))
	}
}

// memReset ends the pass. A pass that followed its plan to the end
// confirms it and files it under its own first size too; any other
// becomes the plan for its first size, and the latest. It reports whether
// the pass confirmed its plan: it held every buffer it allocated, and the
// passes that follow need a few of them.
func (m *memoryPlans) memReset() (confirmed bool) {
	for i := range m.bufs { // values of this pass no longer name its buffers
		b := &m.bufs[i]
		if b.val != nil {
			b.val.mem = 0
		}
		for _, v := range b.views {
			v.mem = 0
		}
	}
	if len(m.bufs) > 0 && !m.broken {
		key := len(m.bufs[0].buf)
		p := m.replay
		if p == nil || m.off || len(m.bufs) != p.bufs || m.step != len(p.freeAt)-1 {
			p = m.record()
		} else if !p.confirmed {
			p.confirmed, confirmed = true, true
		}
		if _, ok := m.byKey[key]; ok || len(m.byKey) < maxMemoryPlans {
			m.byKey[key] = p
		}
		m.latest = p
	}
	clear(m.bufs)
	m.bufs = m.bufs[:0]
	clear(m.byPtr)
	m.reads = m.reads[:0]
	m.step, m.replay, m.off, m.broken = 0, nil, false, false
	return confirmed
}

// record makes the pass that ends into a plan.
func (m *memoryPlans) record() *memoryPlan {
	p := &memoryPlan{bufs: len(m.bufs), reads: m.reads[:m.step], freeAt: make([][]int, m.step+1)}
	m.reads = nil // the plan keeps them
	for i, b := range m.bufs {
		if b.lastRead > 0 && b.lastRead < m.step && (!b.released || b.planned) {
			p.freeAt[b.lastRead+1] = append(p.freeAt[b.lastRead+1], i+1)
			p.planned++
		}
	}
	return p
}

// largerFree returns the class of a free buffer in pool one or two classes
// above c (twice or four times its size), or c if there is none. A
// planned tape takes it rather than allocate: the passes of a server's
// batch sizes then share the buffers of its largest batch, where each
// class would otherwise keep its own (ResNet-50 at batches 1–8: ~320 MB
// pooled instead of about the 140 of batch 8).
func largerFree(pool map[int][][]float32, c int) int {
	if c > 4096 { // above sizeClass's exact sizes
		for up := 2 * c; up <= 4*c; up *= 2 {
			if len(pool[up]) > 0 {
				return up
			}
		}
	}
	return c
}
