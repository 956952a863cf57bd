package distributed

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/residual-nn/residual/internal/kernels"
	"github.com/residual-nn/residual/internal/typednil"
)

// Bucket sizes of PyTorch's DistributedDataParallel.
const (
	// DefaultBucketBytes is the size a bucket of gradients grows to before
	// it is closed: DDP's bucket_cap_mb, 25 MiB.
	DefaultBucketBytes = 25 << 20
	// DefaultFirstBucketBytes is the first bucket's size: 1 MiB, DDP's
	// first bucket, so that the first all-reduce starts after the last
	// layers' gradients rather than after 25 MiB of them.
	DefaultFirstBucketBytes = 1 << 20
)

// ReducerOptions tune NewReducer; zero values take the defaults.
type ReducerOptions struct {
	BucketBytes      int         // DefaultBucketBytes (of float32 gradients, whatever the Compression)
	FirstBucketBytes int         // DefaultFirstBucketBytes
	Compression      Compression // NoCompression
}

// Compression is the form in which a Reducer sends gradients.
type Compression int

const (
	// NoCompression sends float32 gradients: the mean is the float32
	// sum over the ranks divided by their number.
	NoCompression Compression = iota
	// BF16Compression sends bfloat16, half the bytes, as DDP's
	// bf16_compress_hook does, with one rounding fewer: each rank's
	// gradient divided by the number of ranks in float32 and rounded to
	// bfloat16 once (the hook rounds, then divides in bfloat16), summed in
	// bfloat16 (StartAllReduceSumBF16), and widened back. Over N ranks a
	// value goes through at most N roundings of relative error 2⁻⁸ (its
	// own and N−1 additions) after the division's 2⁻²⁴, so the mean is off
	// by at most about (γ_N + 2⁻²⁴)·Σ|g_r|/N, γ_N = N·2⁻⁸/(1 − N·2⁻⁸)
	// (1.6% of Σ|g_r|/N on 4 ranks; gradients below bfloat16's normal
	// range, 1.2e-38, add an absolute error of up to 2⁻¹³³), where
	// NoCompression's float32 error is 2¹⁶ times smaller. For links slow
	// against the step's compute.
	BF16Compression
)

// String returns the name ParseCompression reads.
func (c Compression) String() string {
	switch c {
	case NoCompression:
		return "none"
	case BF16Compression:
		return "bf16"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// ParseCompression reads "none" (or "") and "bf16".
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "", "none":
		return NoCompression, nil
	case "bf16":
		return BF16Compression, nil
	}
	return 0, fmt.Errorf("distributed: unknown gradient compression %q (none, bf16)", s)
}

// Reducer averages gradients over the ranks of a Comm the way PyTorch's
// DistributedDataParallel does: the parameters are grouped into buckets in
// reverse order (the order in which the backward pass produces their
// gradients), and each bucket's all-reduce starts as soon as its last
// gradient is in, so that it overlaps the rest of the backward pass.
//
// In each step the training loop calls MarkReady for every parameter as
// its gradient becomes final, then Wait before the optimizer step: Wait
// completes the all-reduces and writes each gradient back as the mean
// over the ranks. Buckets start in bucket order on every rank (a bucket
// whose gradients are all in waits for the ones before it), so that all
// ranks issue the same collectives in the same order even if their
// gradients arrive in different orders.
//
// A Reducer is used by one goroutine at a time.
type Reducer struct {
	comm    Comm
	sizes   []int
	buckets []bucket
	where   []slot // where[i]: parameter i's bucket and offset
	grads   [][]float32
	pending []int // per bucket, the gradients still missing
	next    int   // the next bucket to start
	marked  int   // gradients marked in this step
	noSync  bool
}

type bucket struct {
	params []int // parameter indices, in the order they fill the bucket
	buf    []float32
	half   []uint16 // with BF16Compression: buf/ranks in bfloat16, what is sent
	req    Request
}

type slot struct{ bucket, offset int }

// NewReducer returns a Reducer for parameters whose gradients hold
// sizes[i] float32 values, in the model's parameter order. A nil comm, a
// size below 1 and an unknown Compression are errors.
func NewReducer(comm Comm, sizes []int, o ReducerOptions) (*Reducer, error) {
	if typednil.Is(comm) {
		return nil, errNoComm
	}
	if o.BucketBytes <= 0 {
		o.BucketBytes = DefaultBucketBytes
	}
	if o.FirstBucketBytes <= 0 {
		o.FirstBucketBytes = DefaultFirstBucketBytes
	}
	if o.Compression != NoCompression && o.Compression != BF16Compression {
		return nil, fmt.Errorf("distributed: NewReducer: unknown %v", o.Compression)
	}
	for i, n := range sizes {
		if n <= 0 {
			return nil, fmt.Errorf("distributed: NewReducer: parameter %d has %d gradient values", i, n)
		}
	}
	r := &Reducer{comm: comm, sizes: sizes, where: make([]slot, len(sizes)), grads: make([][]float32, len(sizes))}
	for _, ps := range AssignBuckets(sizes, o.BucketBytes, o.FirstBucketBytes) {
		b := bucket{params: ps}
		n := 0
		for _, p := range ps {
			r.where[p] = slot{len(r.buckets), n}
			n += sizes[p]
		}
		b.buf = make([]float32, n)
		if o.Compression == BF16Compression {
			b.half = make([]uint16, n)
		}
		r.buckets = append(r.buckets, b)
	}
	r.pending = make([]int, len(r.buckets))
	r.reset()
	return r, nil
}

// AssignBuckets groups parameters with gradients of sizes[i] float32s into
// buckets as DDP does: in reverse parameter order, each bucket closed
// once it holds at least capBytes (firstBytes for the first), so a bucket
// exceeds its cap by less than its last gradient. It returns the
// parameter indices of each bucket.
func AssignBuckets(sizes []int, capBytes, firstBytes int) [][]int {
	var out [][]int
	var cur []int
	bytes, limit := 0, firstBytes
	for i := len(sizes) - 1; i >= 0; i-- {
		cur = append(cur, i)
		bytes += 4 * sizes[i]
		if bytes >= limit {
			out = append(out, cur)
			cur, bytes, limit = nil, 0, capBytes
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// Buckets returns the parameter indices of each bucket, in the order
// their all-reduces start.
func (r *Reducer) Buckets() [][]int {
	out := make([][]int, len(r.buckets))
	for i, b := range r.buckets {
		out[i] = append([]int(nil), b.params...)
	}
	return out
}

func (r *Reducer) reset() {
	for i, b := range r.buckets {
		r.pending[i] = len(b.params)
		r.buckets[i].req = nil
	}
	clear(r.grads)
	r.next, r.marked = 0, 0
}

// MarkReady hands in parameter i's gradient for this step: it is copied
// into its bucket, and the bucket's all-reduce starts if it was the
// bucket's last gradient (and the buckets before it have started). grad
// is where Wait writes the averaged gradient back; the caller must not
// change it until Wait returns. Under NoSync MarkReady does nothing.
func (r *Reducer) MarkReady(i int, grad []float32) error {
	if r.noSync {
		return nil
	}
	if i < 0 || i >= len(r.sizes) {
		return fmt.Errorf("distributed: MarkReady: parameter %d of %d", i, len(r.sizes))
	}
	if len(grad) != r.sizes[i] {
		return fmt.Errorf("distributed: MarkReady: parameter %d has %d gradient values, the Reducer was built for %d", i, len(grad), r.sizes[i])
	}
	if r.grads[i] != nil {
		return fmt.Errorf("distributed: MarkReady: parameter %d marked twice in one step", i)
	}
	s := r.where[i]
	r.grads[i] = grad
	r.marked++
	copy(r.buckets[s.bucket].buf[s.offset:], grad)
	r.pending[s.bucket]--
	r.launchReady()
	if r.next > 0 {
		// A bucket is in flight. MPI's Comm starts and advances its
		// collectives on a goroutine of its own (each round of an
		// all-reduce waits for one of its polls), which gets a processor
		// only when the backward pass lets go of one: with one per rank
		// (GOMAXPROCS 1, a core each under mpirun --bind-to core) not
		// until the scheduler preempts the computation, every 10 ms, so
		// a bucket hardly overlapped anything. Yielding here, between the
		// backward pass's operations, lets it run when it has something
		// to do and costs a fraction of a microsecond when it has not.
		// ResNet-20 on 2 ranks over a 1 Gbit/s link with 0.5 ms latency:
		// the wait in Wait fell from 14–24 to 4–12 ms (six alternated
		// runs, messages of up to 1 MiB eager in both).
		runtime.Gosched()
	}
	return nil
}

// launchReady starts, in order, the buckets whose gradients are all in.
func (r *Reducer) launchReady() {
	for r.next < len(r.buckets) && r.pending[r.next] == 0 {
		b := &r.buckets[r.next]
		if b.half != nil {
			// Divided in place (buf is not read again this step), then
			// converted by the vector loop.
			n := float32(r.comm.Size())
			for k := range b.buf {
				b.buf[k] /= n
			}
			kernels.ToBF16(b.half, b.buf)
			b.req = r.comm.StartAllReduceSumBF16(b.half)
		} else {
			b.req = r.comm.StartAllReduceSum(b.buf)
		}
		r.next++
	}
}

// Wait completes the step: it starts the buckets not yet started, waits
// for every all-reduce and writes each gradient back divided by the
// number of ranks (with BF16Compression, the bfloat16 sum of each rank's
// gradient divided by the number of ranks). A parameter whose gradient
// was never marked is reduced as zeros (so that every rank still issues the same
// collectives) and named in the error; an unused parameter must be
// marked with a zero gradient. Under NoSync Wait does nothing.
func (r *Reducer) Wait() error {
	if r.noSync {
		return nil
	}
	defer r.reset()
	var missing []int
	if r.marked < len(r.sizes) {
		for i, g := range r.grads {
			if g == nil {
				missing = append(missing, i)
				s := r.where[i]
				clear(r.buckets[s.bucket].buf[s.offset : s.offset+r.sizes[i]])
				r.pending[s.bucket]--
			}
		}
		r.launchReady()
	}
	var errs []error
	n := float32(r.comm.Size())
	for bi := range r.buckets {
		b := &r.buckets[bi]
		if err := b.req.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("bucket %d: %w", bi, err))
			continue
		}
		if len(errs) > 0 {
			continue
		}
		for _, p := range b.params {
			s := r.where[p]
			g := r.grads[p]
			switch {
			case g == nil:
			case b.half != nil:
				kernels.FromBF16(g, b.half[s.offset:s.offset+len(g)]) // divided before the sum
			default:
				src := b.buf[s.offset : s.offset+len(g)]
				for k, v := range src {
					g[k] = v / n // the correctly rounded mean, not v·(1/n)
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("distributed: Reducer.Wait: %w", errors.Join(errs...))
	}
	if len(missing) > 0 {
		return fmt.Errorf("distributed: Reducer.Wait: parameters %v got no gradient in this step (mark unused parameters with zeros)", missing)
	}
	return nil
}

// NoSync runs f with synchronisation off, as DDP's no_sync context: the
// gradients of the backward passes in f accumulate locally (MarkReady
// and Wait do nothing), and the first synchronised step after it reduces
// the accumulated gradients. For gradient accumulation over k
// micro-batches, run the first k−1 inside NoSync and the last outside.
func (r *Reducer) NoSync(f func() error) error {
	if r.marked > 0 {
		return fmt.Errorf("distributed: Reducer.NoSync: %d gradients already marked in this step", r.marked)
	}
	prev := r.noSync
	r.noSync = true
	defer func() { r.noSync = prev }()
	return f()
}
