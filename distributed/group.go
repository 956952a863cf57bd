package distributed

import (
	"fmt"
	"sync"

	"github.com/residual-nn/residual/internal/kernels"
)

// NewGroup returns size Comms that form one group inside this process,
// one per rank, for goroutines that play the ranks: tests of code written
// against Comm (the training loop's, the Reducer's) and checks that N
// ranks give what one process gives, without MPI.
//
// Its sums add the ranks' values in rank order, in float32 (the result
// of a 2-rank MPI sum, which is commutative; with more ranks MPI may add
// in another order). A rank that calls Finalize makes every collective
// that waits for it, and every later one, fail instead of hanging.
func NewGroup(size int) []Comm {
	if size < 1 {
		panic(fmt.Sprintf("distributed.NewGroup: %d ranks", size))
	}
	g := &group{size: size, rounds: map[int]*round{}, seq: make([]int, size), gone: make([]bool, size)}
	cs := make([]Comm, size)
	for r := range cs {
		cs[r] = &member{g: g, rank: r}
	}
	return cs
}

// group is the shared state of NewGroup's ranks. The n-th collective of
// every rank meets in rounds[n].
type group struct {
	mu     sync.Mutex
	size   int
	rounds map[int]*round
	seq    []int  // each rank's next collective number
	gone   []bool // ranks that called Finalize
}

// round is one collective: what each rank brought, and done, closed when
// it has completed (with err).
type round struct {
	op      string
	root    int
	f32     [][]float32
	f64     [][]float64
	bf16    [][]uint16
	bytes   [][]byte
	arrived int
	done    chan struct{}
	err     error
}

type member struct {
	g    *group
	rank int
}

func (m *member) Rank() int { return m.rank }
func (m *member) Size() int { return m.g.size }

func (m *member) AllReduceSum(buf []float32) error {
	return m.StartAllReduceSum(buf).Wait()
}

func (m *member) StartAllReduceSum(buf []float32) Request {
	return join(m, "AllReduceSum", 0, buf)
}

func (m *member) StartAllReduceSumBF16(buf []uint16) Request {
	return join(m, "AllReduceSumBF16", 0, buf)
}

func (m *member) AllReduceSumFloat64(buf []float64) error {
	return join(m, "AllReduceSumFloat64", 0, buf).Wait()
}

func (m *member) Broadcast(buf []float32, root int) error {
	return join(m, "Broadcast", root, buf).Wait()
}

func (m *member) BroadcastBytes(buf []byte, root int) error {
	return join(m, "BroadcastBytes", root, buf).Wait()
}

func (m *member) Barrier() error { return join[[]byte](m, "Barrier", 0, nil).Wait() }

// Finalize leaves the group; rounds still waiting for this rank fail.
func (m *member) Finalize() error {
	g := m.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone[m.rank] {
		return ErrFinalized
	}
	g.gone[m.rank] = true
	for n, rd := range g.rounds {
		if n >= g.seq[m.rank] {
			g.finish(n, rd, fmt.Errorf("distributed: rank %d finalized before its collective %d (%s)", m.rank, n, rd.op))
		}
	}
	return nil
}

// buffer is the element types a collective's buffer can have.
type buffer interface {
	[]float32 | []float64 | []uint16 | []byte
}

// join brings this rank's part of its next collective, buf (nil for
// none); the last rank to arrive performs it.
func join[B buffer](m *member, op string, root int, buf B) Request {
	g := m.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone[m.rank] {
		return done{ErrFinalized}
	}
	if err := checkRoot(root, g.size); err != nil {
		return done{err}
	}
	n := g.seq[m.rank]
	g.seq[m.rank]++
	rd := g.rounds[n]
	if rd == nil {
		rd = &round{op: op, root: root, f32: make([][]float32, g.size), f64: make([][]float64, g.size),
			bf16: make([][]uint16, g.size), bytes: make([][]byte, g.size), done: make(chan struct{})}
		g.rounds[n] = rd
		for r, gone := range g.gone {
			if gone && g.seq[r] <= n {
				g.finish(n, rd, fmt.Errorf("distributed: rank %d finalized before its collective %d (%s)", r, n, op))
				return rd
			}
		}
	}
	select {
	case <-rd.done: // failed already, before every rank came
		if rd.arrived++; rd.arrived == g.size {
			delete(g.rounds, n)
		}
		return rd
	default:
	}
	switch b := any(buf).(type) {
	case []float32:
		rd.f32[m.rank] = b
	case []float64:
		rd.f64[m.rank] = b
	case []uint16:
		rd.bf16[m.rank] = b
	case []byte:
		rd.bytes[m.rank] = b
	}
	rd.arrived++
	switch {
	case rd.op != op || rd.root != root:
		g.finish(n, rd, fmt.Errorf("distributed: collective %d is %s (root %d) on one rank and %s (root %d) on rank %d", n, rd.op, rd.root, op, root, m.rank))
	case rd.arrived == g.size:
		g.finish(n, rd, rd.perform())
	}
	return rd
}

// finish completes round n with err. Called with g.mu held. A round
// that failed before every rank came stays, so that the ranks still to
// come find it and return its error (join deletes it when the last one
// has): a fresh round would wait for ranks that have moved past it.
func (g *group) finish(n int, rd *round, err error) {
	select {
	case <-rd.done:
		return
	default:
	}
	rd.err = err
	if rd.arrived == g.size {
		delete(g.rounds, n)
	}
	close(rd.done)
}

// perform computes the collective once every rank's buffer is in.
func (rd *round) perform() error {
	n := func(r int) int { return len(rd.f32[r]) + len(rd.f64[r]) + len(rd.bf16[r]) + len(rd.bytes[r]) }
	for r := range rd.f32 {
		if n(r) != n(0) {
			return fmt.Errorf("distributed: %s with %d values on rank 0 and %d on rank %d", rd.op, n(0), n(r), r)
		}
	}
	switch rd.op {
	case "AllReduceSum":
		sumInto(rd.f32)
	case "AllReduceSumFloat64":
		sumInto(rd.f64)
	case "AllReduceSumBF16":
		sumIntoBF16(rd.bf16)
	case "Broadcast":
		copyFrom(rd.f32, rd.root)
	case "BroadcastBytes":
		copyFrom(rd.bytes, rd.root)
	}
	return nil
}

// sumInto replaces every rank's buffer with the sum of all, added in
// rank order.
func sumInto[T float32 | float64](bufs [][]T) {
	sum := make([]T, len(bufs[0]))
	for _, b := range bufs {
		for i, v := range b {
			sum[i] += v
		}
	}
	for _, b := range bufs {
		copy(b, sum)
	}
}

// sumIntoBF16 replaces every rank's buffer of bfloat16 values with their
// sum, added in rank order in float32 and rounded to bfloat16 after each
// addition.
func sumIntoBF16(bufs [][]uint16) {
	sum := make([]uint16, len(bufs[0]))
	copy(sum, bufs[0])
	for _, b := range bufs[1:] {
		for i, v := range b {
			sum[i] = kernels.BF16FromFloat32(kernels.Float32FromBF16(sum[i]) + kernels.Float32FromBF16(v))
		}
	}
	for _, b := range bufs {
		copy(b, sum)
	}
}

// copyFrom replaces every rank's buffer with root's.
func copyFrom[T any](bufs [][]T, root int) {
	for _, b := range bufs {
		copy(b, bufs[root])
	}
}

func (rd *round) Wait() error {
	<-rd.done
	return rd.err
}
