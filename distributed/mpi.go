//go:build mpi && cgo

package distributed

/*
#include <stdlib.h>
#include <mpi.h>

// The wrappers keep MPI's handle types (pointers in Open MPI, integers in
// MPICH) on the C side: a request is a malloc'ed MPI_Request that Go
// holds as a void *.

// bfloat16 sums (StartAllReduceSumBF16): MPI has no bfloat16 type, so the
// values travel as MPI_UNSIGNED_SHORT and are added by a user operation,
// in float32, rounded back to nearest, ties to even, NaNs kept quiet —
// kernels.BF16FromFloat32's rounding.
static float rs_bf16_f32(unsigned short b) {
	union { unsigned int u; float f; } v;
	v.u = (unsigned int)b << 16;
	return v.f;
}

static unsigned short rs_f32_bf16(float f) {
	union { unsigned int u; float f; } v;
	v.f = f;
	unsigned int u = v.u;
	if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x0040u);
	return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static void rs_bf16_sum(void *in, void *inout, int *len, MPI_Datatype *dt) {
	(void)dt;
	const unsigned short *a = in;
	unsigned short *b = inout;
	for (int i = 0; i < *len; i++) b[i] = rs_f32_bf16(rs_bf16_f32(a[i]) + rs_bf16_f32(b[i]));
}

static MPI_Op rs_bf16_op = MPI_OP_NULL;

static int rs_init(int *provided) {
	int inited = 0;
	MPI_Initialized(&inited);
	if (inited) return -1;
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, provided);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

static int rs_op_create(void) { return MPI_Op_create(rs_bf16_sum, 1, &rs_bf16_op); }

static int rs_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int rs_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }

static void rs_version(char *buf, int cap) {
	int n = 0;
	char v[MPI_MAX_LIBRARY_VERSION_STRING];
	if (MPI_Get_library_version(v, &n) != MPI_SUCCESS) n = 0;
	if (n >= cap) n = cap - 1;
	for (int i = 0; i < n; i++) buf[i] = v[i];
	buf[n] = 0;
}

static void rs_error_string(int rc, char *buf, int cap) {
	int n = 0;
	char s[MPI_MAX_ERROR_STRING];
	if (MPI_Error_string(rc, s, &n) != MPI_SUCCESS) n = 0;
	if (n >= cap) n = cap - 1;
	for (int i = 0; i < n; i++) buf[i] = s[i];
	buf[n] = 0;
}

static void *rs_new(void) { return malloc(sizeof(MPI_Request)); }

// The element types, numbered as Go's dtype constants.
static MPI_Datatype rs_type(int t) {
	switch (t) {
	case 1: return MPI_FLOAT;
	case 2: return MPI_DOUBLE;
	case 3: return MPI_UNSIGNED_SHORT; // bfloat16, summed by rs_bf16_op
	}
	return MPI_BYTE;
}

static int rs_iallreduce(void *buf, int n, int t, void *req) {
	return MPI_Iallreduce(MPI_IN_PLACE, buf, n, rs_type(t), t == 3 ? rs_bf16_op : MPI_SUM, MPI_COMM_WORLD, (MPI_Request *)req);
}

static int rs_ibcast(void *buf, int n, int t, int root, void *req) {
	return MPI_Ibcast(buf, n, rs_type(t), root, MPI_COMM_WORLD, (MPI_Request *)req);
}

static int rs_ibarrier(void *req) {
	return MPI_Ibarrier(MPI_COMM_WORLD, (MPI_Request *)req);
}

static int rs_test(void *req, int *flag) {
	return MPI_Test((MPI_Request *)req, flag, MPI_STATUS_IGNORE);
}

static int rs_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int rs_finalize(void) {
	if (rs_bf16_op != MPI_OP_NULL) MPI_Op_free(&rs_bf16_op);
	return MPI_Finalize();
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// MPIAvailable reports whether this binary was built with MPI (-tags mpi
// and cgo).
const MPIAvailable = true

// Threading. Every MPI call of the process is made by one goroutine,
// locked to its OS thread, which also called MPI_Init_thread:
// MPI_THREAD_FUNNELED. The alternative, MPI_THREAD_MULTIPLE with MPI
// called from any goroutine (and so from any OS thread, as goroutines
// move between threads), is not provided by every MPI build, costs a lock
// in every call where it is, and would still need the collectives
// ordered by the caller; funnelling gives that order for free and lets
// the thread drive progress. Open MPI (without a progress thread) and
// MPICH advance a non-blocking collective only inside MPI calls, so
// while requests are in flight the goroutine polls them with MPI_Test:
// spinning at first, then sleeping between polls (up to pollMaxSleep),
// so that a long wait does not take a core from the computation the
// all-reduce overlaps.
const (
	pollSpins    = 200                    // polls before the first sleep
	pollMaxSleep = 200 * time.Microsecond // the longest sleep between polls
	// maxCount bounds the count of one MPI call (a C int); larger
	// buffers go in several calls.
	maxCount = 1 << 30
)

var (
	mpiMu    sync.Mutex
	mpiWorld *mpiComm // the Comm of this process, once initialised
)

// mpiComm is MPI_COMM_WORLD, driven by one goroutine (run).
type mpiComm struct {
	rank, size int
	version    string
	timeout    time.Duration
	ops        chan *mpiOp
	// waiting counts the callers blocked in a Request's Wait; wake tells
	// the MPI goroutine that one has started waiting (see run's sleeps).
	waiting atomic.Int32
	wake    chan struct{}

	mu        sync.Mutex
	finalized bool
}

type opKind int

const (
	opAllReduce opKind = iota
	opBroadcast
	opBarrier
	opFinalize
)

func (k opKind) String() string {
	return [...]string{"AllReduceSum", "Broadcast", "Barrier", "Finalize"}[k]
}

// The element types of a buffer (rs_type in C).
const (
	dtByte = iota
	dtFloat32
	dtFloat64
	dtBF16
)

var dtSize = [...]int{dtByte: 1, dtFloat32: 4, dtFloat64: 8, dtBF16: 2}

// mpiOp is one collective, from its start on the caller's goroutine to
// its completion on the MPI goroutine.
type mpiOp struct {
	kind    opKind
	buf     unsafe.Pointer // n values of type dtype; nil when n is 0
	n       int
	dtype   int
	root    int
	pin     runtime.Pinner // buf, while MPI may touch it
	reqs    []unsafe.Pointer
	started time.Time
	comm    *mpiComm // set by submit
	done    chan struct{}
	err     error
}

func (op *mpiOp) Wait() error {
	select {
	case <-op.done:
		return op.err
	default:
	}
	if c := op.comm; c != nil {
		c.waiting.Add(1)
		defer c.waiting.Add(-1)
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	<-op.done
	return op.err
}

func (op *mpiOp) finish(err error) {
	op.err = err
	op.pin.Unpin()
	close(op.done)
}

// mpiInitAbandoned is set when initMPI gave up waiting for MPI_Init
// (under mpiMu): its goroutine may still be inside it.
var mpiInitAbandoned bool

func initMPI(o Options) (Comm, error) {
	mpiMu.Lock()
	defer mpiMu.Unlock()
	if mpiWorld != nil {
		if mpiWorld.isFinalized() {
			return nil, errors.New("distributed: MPI was finalized; it cannot be initialised again in the same process")
		}
		return mpiWorld, nil
	}
	if mpiInitAbandoned {
		return nil, errors.New("distributed: an earlier MPI_Init timed out and has not returned; MPI cannot be initialised again in this process")
	}
	c := &mpiComm{timeout: o.Timeout, ops: make(chan *mpiOp, 64), wake: make(chan struct{}, 1)}
	ready := make(chan error, 1)
	go c.run(ready)
	// MPI_Init waits for every rank the launcher started; one that never
	// calls it (a crashed start, another program) would keep this rank
	// there for ever, out of reach of the collectives' timeout.
	var expired <-chan time.Time
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case err := <-ready:
		if err != nil {
			return nil, err
		}
	case <-expired:
		mpiInitAbandoned = true
		return nil, fmt.Errorf("distributed: MPI_Init has waited the --dist-timeout (Options.Timeout) of %v for the other ranks: one of them never started, or is not this program", o.Timeout)
	}
	mpiWorld = c
	return c, nil
}

func mpiError(what string, rc C.int) error {
	var buf [512]C.char
	C.rs_error_string(rc, &buf[0], C.int(len(buf)))
	return fmt.Errorf("distributed: %s: %s (MPI error %d)", what, C.GoString(&buf[0]), int(rc))
}

// pollTimer wakes the MPI goroutine for its next poll: C receives once
// after arm(d) (at least d later; a tick not received stays for the next
// wait).
type pollTimer interface {
	arm(d time.Duration)
	C() <-chan struct{}
}

// goPollTimer is a pollTimer on one Go timer, re-armed for each sleep
// (no allocation per poll).
type goPollTimer struct {
	timer *time.Timer
	tick  chan struct{}
}

func newGoPollTimer() pollTimer {
	t := &goPollTimer{tick: make(chan struct{}, 1)}
	t.timer = time.AfterFunc(time.Hour, func() {
		select {
		case t.tick <- struct{}{}:
		default:
		}
	})
	t.timer.Stop()
	return t
}

func (t *goPollTimer) arm(d time.Duration) { t.timer.Reset(d) }

func (t *goPollTimer) C() <-chan struct{} { return t.tick }

// setDefault sets the environment variable name to value unless the user
// has set it: how this package changes Open MPI's defaults (MCA
// parameters) before MPI_Init, keeping the user's choice. MPICH ignores
// them.
func setDefault(name, value string) {
	if _, ok := os.LookupEnv(name); !ok {
		os.Setenv(name, value)
	}
}

// run is the MPI goroutine: it initialises MPI on its locked thread,
// then starts the operations it receives and polls those in flight.
func (c *mpiComm) run(ready chan<- error) {
	runtime.LockOSThread() // for good: the thread ends with the goroutine
	// Open MPI replaces handlers of SIGSEGV, SIGBUS, SIGFPE and SIGABRT
	// that are still the default, to print a stack trace; the Go
	// runtime has installed its own already, which Open MPI keeps, and
	// an empty opal_signal list makes sure it touches none.
	setDefault("OMPI_MCA_opal_signal", "")
	// Open MPI's non-blocking collectives (libnbc) reduce an in-place
	// MPI_Iallreduce, whatever its size and the number of ranks, with
	// a binomial tree: a reduce to rank 0, then a broadcast back, the
	// whole buffer crossing each link one direction at a time and
	// log₂(ranks) times. On 2 ranks over a 1 Gbit/s link that took
	// ResNet-50's 97.5 MiB of gradients 1.78 s, twice the link's time
	// (PyTorch's Gloo: 0.87 s). Reduce-scatter then allgather
	// (Rabenseifner; libnbc falls back to a ring for buffers of fewer
	// elements than ranks) sends 2(N−1)/N of the bytes each way at once:
	// 0.92 s.
	setDefault("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3")
	// Open MPI's TCP transport moves a message's bytes only inside MPI
	// calls unless it has a progress thread. While the backward pass
	// holds the rank's core this goroutine polls only between the pass's
	// operations (at the Reducer's yields; before those, only when the
	// pass was preempted), so a bucket's transfer stalled between polls. With the thread (blocked in
	// epoll, woken by the socket) the bytes flow meanwhile: over a 1 Gbit/s
	// link between 2 ranks ResNet-20's all-reduce took 10.2–10.7 ms
	// against 12.9–14.2 (the link's own time: 9.2 ms) and ResNet-50's
	// 0.91 s against 0.99 s. Shared memory does not use it.
	setDefault("OMPI_MCA_btl_tcp_progress_thread", "1")
	// The TCP transport sends a message over btl_tcp_eager_limit (64 KiB)
	// by rendezvous: a first fragment, the rest only once the receiver
	// has answered, a round trip more for each message. A first bucket
	// (DDP's 1 MiB; ResNet-20's gradients, 1.03 MiB, are nearly all of
	// theirs) is all-reduced in messages of at most its size, every one
	// with a receive posted by the collective itself, so they go
	// eagerly: over a 1 Gbit/s link with a 0.5 ms one-way latency,
	// ResNet-20's all-reduce on 2 ranks took 11 ms against 14 by
	// rendezvous. The cost is memory: the transport's eager fragments are
	// allocated at this size. Larger messages keep the rendezvous, whose
	// round trip is small against their transfer.
	setDefault("OMPI_MCA_btl_tcp_eager_limit", "1048576")
	var provided C.int
	if rc := C.rs_init(&provided); rc != C.MPI_SUCCESS {
		if rc == -1 {
			ready <- errors.New("distributed: MPI was initialised by other code in this process")
		} else {
			ready <- mpiError("MPI_Init_thread", rc)
		}
		return
	}
	if provided < C.MPI_THREAD_FUNNELED {
		C.rs_finalize()
		ready <- fmt.Errorf("distributed: the MPI library provides thread level %d, below MPI_THREAD_FUNNELED", int(provided))
		return
	}
	if rc := C.rs_op_create(); rc != C.MPI_SUCCESS {
		C.rs_finalize()
		ready <- mpiError("MPI_Op_create (the bfloat16 sum)", rc)
		return
	}
	var r, s C.int
	if rc := C.rs_rank(&r); rc != C.MPI_SUCCESS {
		ready <- mpiError("MPI_Comm_rank", rc)
		return
	}
	if rc := C.rs_size(&s); rc != C.MPI_SUCCESS {
		ready <- mpiError("MPI_Comm_size", rc)
		return
	}
	var v [C.MPI_MAX_LIBRARY_VERSION_STRING + 1]C.char
	C.rs_version(&v[0], C.int(len(v)))
	c.rank, c.size, c.version = int(r), int(s), firstLine(C.GoString(&v[0]))
	ready <- nil

	var (
		pending  []*mpiOp
		finalize *mpiOp
		idle     int
		precise  = newPollTimer()
		coarse   = newGoPollTimer()
	)
	for {
		if finalize != nil && len(pending) == 0 {
			rc := C.rs_finalize()
			var err error
			if rc != C.MPI_SUCCESS {
				err = mpiError("MPI_Finalize", rc)
			}
			finalize.finish(err)
			return
		}
		var op *mpiOp
		switch {
		case len(pending) == 0 && finalize == nil:
			op = <-c.ops
		case idle < pollSpins:
			select {
			case op = <-c.ops:
			default:
			}
		default:
			// While a caller is blocked in Wait the cores are the
			// collective's, and every round of it waits for a poll:
			// sleep precisely. Otherwise the computation goes on beside
			// the collectives (the backward pass), and Go's timers, which
			// round short sleeps up to about a millisecond, wake this
			// goroutine, and so interrupt the computation, less often.
			// (ResNet-50 over shared memory, 2 ranks: precise sleeps
			// throughout measured no better than Go's timers, 8 alternated
			// rounds with medians 1.59 against 1.47 s a step inside a
			// wide spread; this split, 3 rounds, level with Go's timers.)
			timer := coarse
			if c.waiting.Load() > 0 {
				timer = precise
			}
			timer.arm(min(time.Duration(idle-pollSpins+1)*5*time.Microsecond, pollMaxSleep))
			select {
			case op = <-c.ops:
			case <-timer.C(): // or a tick left from an earlier arm: one poll early
			case <-c.wake: // a caller started waiting: poll now, then sleep precisely
			}
		}
		if op != nil {
			idle = 0
			if op.kind == opFinalize {
				finalize = op
				continue
			}
			if err := c.start(op); err != nil {
				op.finish(err)
				continue
			}
			pending = append(pending, op)
			continue
		}
		kept := pending[:0]
		for _, p := range pending {
			if ok, err := c.test(p); ok {
				p.finish(err)
				idle = 0
			} else {
				kept = append(kept, p)
			}
		}
		clear(pending[len(kept):])
		pending = kept
		idle++
		if c.timeout > 0 && len(pending) > 0 {
			if waited := time.Since(pending[0].started); waited > c.timeout {
				fmt.Fprintf(os.Stderr, "\ndistributed: rank %d: %s has waited %s for the other ranks (timeout %s): aborting the job\n", c.rank, pending[0].kind, waited.Round(time.Second), c.timeout)
				C.rs_abort(3)
				os.Exit(3) // MPI_Abort does not return; in case it does
			}
		}
	}
}

// start issues op's non-blocking MPI calls, one per maxCount values.
func (c *mpiComm) start(op *mpiOp) error {
	op.started = time.Now()
	n, elem := op.n, dtSize[op.dtype]
	for lo := 0; lo < n || (n == 0 && lo == 0); lo += maxCount {
		cnt := min(n-lo, maxCount)
		var p unsafe.Pointer
		if op.buf != nil {
			p = unsafe.Add(op.buf, lo*elem)
		}
		req := C.rs_new()
		if req == nil {
			return errors.New("distributed: out of memory for an MPI request")
		}
		var rc C.int
		switch op.kind {
		case opAllReduce:
			rc = C.rs_iallreduce(p, C.int(cnt), C.int(op.dtype), req)
		case opBroadcast:
			rc = C.rs_ibcast(p, C.int(cnt), C.int(op.dtype), C.int(op.root), req)
		case opBarrier:
			rc = C.rs_ibarrier(req)
		}
		if rc != C.MPI_SUCCESS {
			C.free(req)
			// The requests already started stay in flight: wait for them
			// before the buffer is released.
			for _, r := range op.reqs {
				for {
					var flag C.int
					if C.rs_test(r, &flag) != C.MPI_SUCCESS || flag != 0 {
						break
					}
				}
				C.free(r)
			}
			op.reqs = nil
			return mpiError("starting "+op.kind.String(), rc)
		}
		op.reqs = append(op.reqs, req)
		if n == 0 {
			break
		}
	}
	return nil
}

// test polls op's requests and reports whether all have completed.
func (c *mpiComm) test(op *mpiOp) (bool, error) {
	for len(op.reqs) > 0 {
		var flag C.int
		rc := C.rs_test(op.reqs[0], &flag)
		if rc != C.MPI_SUCCESS {
			for _, r := range op.reqs {
				C.free(r)
			}
			op.reqs = nil
			return true, mpiError(op.kind.String(), rc)
		}
		if flag == 0 {
			return false, nil
		}
		C.free(op.reqs[0])
		op.reqs = op.reqs[1:]
	}
	return true, nil
}

func (c *mpiComm) isFinalized() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finalized
}

// submit hands op to the MPI goroutine.
func (c *mpiComm) submit(op *mpiOp) Request {
	op.done, op.comm = make(chan struct{}), c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finalized {
		return done{ErrFinalized}
	}
	if op.kind == opFinalize {
		c.finalized = true
	}
	if op.kind == opBroadcast {
		if err := checkRoot(op.root, c.size); err != nil {
			return done{err}
		}
	}
	if op.buf != nil {
		op.pin.Pin(op.buf)
	}
	c.ops <- op
	return op
}

func (c *mpiComm) Rank() int { return c.rank }
func (c *mpiComm) Size() int { return c.size }

// String names the rank and the MPI library, for a log line.
func (c *mpiComm) String() string {
	return fmt.Sprintf("MPI rank %d of %d (%s)", c.rank, c.size, c.version)
}

func (c *mpiComm) AllReduceSum(buf []float32) error { return c.StartAllReduceSum(buf).Wait() }

func (c *mpiComm) StartAllReduceSum(buf []float32) Request {
	return c.submit(&mpiOp{kind: opAllReduce, buf: first(buf), n: len(buf), dtype: dtFloat32})
}

func (c *mpiComm) StartAllReduceSumBF16(buf []uint16) Request {
	return c.submit(&mpiOp{kind: opAllReduce, buf: first(buf), n: len(buf), dtype: dtBF16})
}

func (c *mpiComm) AllReduceSumFloat64(buf []float64) error {
	return c.submit(&mpiOp{kind: opAllReduce, buf: first(buf), n: len(buf), dtype: dtFloat64}).Wait()
}

func (c *mpiComm) Broadcast(buf []float32, root int) error {
	return c.submit(&mpiOp{kind: opBroadcast, buf: first(buf), n: len(buf), dtype: dtFloat32, root: root}).Wait()
}

func (c *mpiComm) BroadcastBytes(buf []byte, root int) error {
	return c.submit(&mpiOp{kind: opBroadcast, buf: first(buf), n: len(buf), dtype: dtByte, root: root}).Wait()
}

func (c *mpiComm) Barrier() error { return c.submit(&mpiOp{kind: opBarrier}).Wait() }

// Finalize waits for the operations in flight, then calls MPI_Finalize.
func (c *mpiComm) Finalize() error { return c.submit(&mpiOp{kind: opFinalize}).Wait() }

// first returns the address of b's first element, nil for an empty b.
func first[T any](b []T) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' || r == ',' {
			return s[:i]
		}
	}
	return s
}
