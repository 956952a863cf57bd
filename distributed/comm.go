package distributed

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Comm is a group of processes (ranks) that run the same program and
// exchange buffers (float32, and float64, bfloat16 and bytes) with
// collective operations.
//
// Every collective (every method but Rank and Size: the all-reduces,
// started or blocking, the broadcasts, Barrier and Finalize) must be called by every rank of the group, in
// the same order on each, with buffers of the same length: that is MPI's
// rule, and a rank that calls them in another order deadlocks or gets an
// error. The methods may be called from any goroutine, but the order of
// the collectives is the caller's to keep: issue them from one goroutine
// at a time.
//
// A buffer handed to a collective belongs to the Comm until the operation
// completes (until a blocking call returns, or until Wait for
// StartAllReduceSum and StartAllReduceSumBF16): the caller must neither read nor write it before.
//
// An error from a collective leaves the group in an unknown state (some
// ranks may have completed the operation, others not): the program should
// stop, as PyTorch's process groups and Horovod do.
type Comm interface {
	// Rank is this process's number in the group, 0 to Size()-1.
	Rank() int
	// Size is the number of ranks in the group (the world size).
	Size() int
	// AllReduceSum replaces buf, on every rank, with the element-wise sum
	// of every rank's buf.
	AllReduceSum(buf []float32) error
	// StartAllReduceSum starts AllReduceSum(buf) and returns at once;
	// the Request's Wait completes it. Several may be in flight; they
	// complete in any order but must be started in the same order on
	// every rank.
	StartAllReduceSum(buf []float32) Request
	// StartAllReduceSumBF16 starts summing buf, bfloat16 values (each
	// the upper 16 bits of a float32: sign, 8-bit exponent, 7 fraction
	// bits), over the ranks in place, and returns at once like
	// StartAllReduceSum. Each addition is made in float32 and rounded
	// back to bfloat16 (to nearest, ties to even), in an order the
	// implementation chooses: the result may differ between
	// implementations by those roundings. Gradient compression
	// (BF16Compression) sends half the bytes of StartAllReduceSum with it.
	StartAllReduceSumBF16(buf []uint16) Request
	// AllReduceSumFloat64 is AllReduceSum for float64 values: for sums
	// that float32 would round too much (metrics over an epoch, the batch
	// statistics of SyncBatchNorm).
	AllReduceSumFloat64(buf []float64) error
	// Broadcast replaces buf on every rank with root's buf.
	Broadcast(buf []float32, root int) error
	// BroadcastBytes replaces buf on every rank with root's buf.
	BroadcastBytes(buf []byte, root int) error
	// Barrier returns once every rank has called it.
	Barrier() error
	// Finalize ends the rank's part in the group (MPI_Finalize for MPI).
	// Every rank must call it, after its last collective; collectives
	// afterwards return an error.
	Finalize() error
}

// Request is an operation in flight.
type Request interface {
	// Wait blocks until the operation has completed and returns its
	// error. Waiting again returns the same error at once.
	Wait() error
}

// Kinds of Comm that Init accepts.
const (
	// KindNone is one process on its own: the default.
	KindNone = "none"
	// KindLocal is a synonym of KindNone.
	KindLocal = "local"
	// KindMPI is MPI (a binary built with -tags mpi, started by mpirun,
	// srun or an MPIJob).
	KindMPI = "mpi"
	// KindAuto is KindMPI when the environment shows a launcher that
	// started more than one process (see DetectLauncher), else KindNone.
	KindAuto = "auto"
)

// Options tune Init.
type Options struct {
	// Timeout bounds how long one collective may wait for the other
	// ranks before the job is aborted (MPI_Abort, which makes mpirun end
	// every rank) with a message naming the operation. Zero means
	// DefaultTimeout; a negative value waits for ever. It guards against
	// a rank that hangs without dying (a dead rank makes Open MPI's
	// mpirun end the job by itself, see docs/DISTRIBUTED.md) and must
	// exceed the longest time one rank may spend between two collectives
	// while the others wait (an evaluation pass on rank 0 alone, a
	// checkpoint write). It bounds MPI_Init's wait for the other ranks
	// to start too: Init then returns an error.
	Timeout time.Duration
}

// DefaultTimeout is the collective timeout when Options.Timeout is zero:
// 30 minutes, PyTorch's default process-group timeout.
const DefaultTimeout = 30 * time.Minute

// Init returns the Comm of the given kind (KindNone, KindLocal, KindMPI,
// KindAuto; "" is KindNone) with the default Options.
func Init(kind string) (Comm, error) {
	return InitWithOptions(kind, Options{})
}

// InitWithOptions returns the Comm of the given kind with options o. For
// KindMPI it initialises MPI, which does its own rendezvous (from what
// mpirun, srun or the MPI Operator's launcher gave the process); it fails
// in a binary built without -tags mpi. MPI is initialised once per
// process: a second call returns the same Comm (with the first call's
// options), and a call after its Finalize an error.
func InitWithOptions(kind string, o Options) (Comm, error) {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	switch kind {
	case "", KindNone, KindLocal:
		return NewLocal(), nil
	case KindMPI:
		return initMPIChecked(o)
	case KindAuto:
		l, ok, err := DetectLauncher(os.Getenv)
		if err != nil {
			return nil, fmt.Errorf("distributed: --distributed auto: %w", err)
		}
		if !ok || l.Size <= 1 {
			return NewLocal(), nil
		}
		if !MPIAvailable {
			return nil, fmt.Errorf("distributed: started as rank %d of %d by %s, but this binary was built without MPI (build it with CGO_ENABLED=1 go build -tags mpi)", l.Rank, l.Size, l.Name)
		}
		return initMPIChecked(o)
	}
	return nil, fmt.Errorf("distributed: unknown kind %q (want %q, %q, %q or %q)", kind, KindNone, KindLocal, KindMPI, KindAuto)
}

// initMPIChecked is initMPI that also refuses a world other than the one
// the launcher's variables describe: a binary started by another MPI's
// launcher (or with a launcher's variables left in its environment) runs
// as rank 0 of 1, and so would every process of the job, each training on
// its own.
func initMPIChecked(o Options) (Comm, error) {
	c, err := initMPI(o)
	if err != nil {
		return nil, err
	}
	if l, ok, _ := DetectLauncher(os.Getenv); ok && l.Size > 1 && (l.Size != c.Size() || l.Rank != c.Rank()) {
		return nil, fmt.Errorf("distributed: %s started this process as rank %d of %d, but MPI makes it rank %d of %d: a launcher of another MPI library than the one this binary was built with, or a launcher's variables left in the environment", l.Name, l.Rank, l.Size, c.Rank(), c.Size())
	}
	return c, nil
}

// ErrFinalized is returned by a collective called after Finalize.
var ErrFinalized = errors.New("distributed: collective after Finalize")

// done is a Request that has already completed with err.
type done struct{ err error }

func (d done) Wait() error { return d.err }

// Local is the Comm of one process on its own: rank 0 of 1. Its
// collectives leave their buffers as they are.
type Local struct{ finalized bool }

// NewLocal returns the one-process Comm.
func NewLocal() *Local { return &Local{} }

// Rank returns 0.
func (*Local) Rank() int { return 0 }

// Size returns 1.
func (*Local) Size() int { return 1 }

// AllReduceSum leaves buf as it is: the sum over one rank.
func (l *Local) AllReduceSum([]float32) error { return l.check(0) }

// StartAllReduceSum returns a completed Request.
func (l *Local) StartAllReduceSum([]float32) Request { return done{l.check(0)} }

// StartAllReduceSumBF16 returns a completed Request: buf is already the
// sum over one rank.
func (l *Local) StartAllReduceSumBF16([]uint16) Request { return done{l.check(0)} }

// AllReduceSumFloat64 leaves buf as it is.
func (l *Local) AllReduceSumFloat64([]float64) error { return l.check(0) }

// Broadcast leaves buf as it is; root must be 0.
func (l *Local) Broadcast(_ []float32, root int) error { return l.check(root) }

// BroadcastBytes leaves buf as it is; root must be 0.
func (l *Local) BroadcastBytes(_ []byte, root int) error { return l.check(root) }

// Barrier returns at once.
func (l *Local) Barrier() error { return l.check(0) }

// Finalize marks the Comm as finished.
func (l *Local) Finalize() error {
	if l.finalized {
		return ErrFinalized
	}
	l.finalized = true
	return nil
}

func (l *Local) check(root int) error {
	if l.finalized {
		return ErrFinalized
	}
	return checkRoot(root, 1)
}

func checkRoot(root, size int) error {
	if root < 0 || root >= size {
		return fmt.Errorf("distributed: root rank %d out of range for %d ranks", root, size)
	}
	return nil
}
