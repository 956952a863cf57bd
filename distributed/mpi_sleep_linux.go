//go:build mpi && cgo && linux

package distributed

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// newPollTimer returns the MPI goroutine's precise timer between polls,
// used while a caller is blocked in a Request's Wait. Go's own
// timers round a wait under a millisecond up to about 1.1 ms when the
// process is otherwise idle (the runtime's epoll timeout is in
// milliseconds), which is when the goroutine polls most — the ranks
// waiting in Reducer.Wait — and each round of a non-blocking all-reduce
// advances only at a poll. A timerfd read through the runtime's poller
// wakes it when the kernel's high-resolution timer fires instead.
func newPollTimer() pollTimer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return newGoPollTimer()
	}
	f := os.NewFile(uintptr(fd), "timerfd")
	t := &timerfd{fd: fd, tick: make(chan struct{}, 1), fallback: newGoPollTimer()}
	go func() {
		var b [8]byte
		for {
			if _, err := f.Read(b[:]); err != nil {
				return
			}
			select {
			case t.tick <- struct{}{}:
			default:
			}
		}
	}()
	return t
}

type timerfd struct {
	fd       int
	tick     chan struct{}
	fallback pollTimer // if arming the timerfd fails (not expected)
	failed   bool
}

func (t *timerfd) arm(d time.Duration) {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(d.Nanoseconds(), 1))}
	if t.failed = unix.TimerfdSettime(t.fd, 0, &spec, nil) != nil; t.failed {
		t.fallback.arm(d)
	}
}

func (t *timerfd) C() <-chan struct{} {
	if t.failed {
		return t.fallback.C()
	}
	return t.tick
}
