//go:build linux

// Command linkemu joins two network namespaces by an emulated link of a given
// rate and one-way delay, in user space: what `tc qdisc … netem rate R delay D`
// does on a veth pair, for a kernel without sch_netem (the development VM's has
// none, and no loadable modules). It creates a TUN device in each namespace and
// forwards every IP packet that one side sends to the other:
//
//	linkemu --a rsdl0:tun0 --b rsdl1:tun1 --rate 1gbit --delay 0.5ms
//
// NS names a namespace of `ip netns` (/run/netns/NS). The devices exist while
// linkemu runs; the caller gives them addresses, an MTU and brings them up
// (`ip -n NS addr add …`, `ip -n NS link set DEV mtu M up`) once linkemu has
// printed "linkemu: ready" on stderr. SIGINT or SIGTERM ends it (and its
// parent's exit: it must not outlive the script that set the namespaces up);
// it then prints one line "LINKEMU {json}" on stdout: per direction the
// packets and bytes forwarded, the packets dropped and the failed writes, how
// late the packets were handed to the other side against their schedule (p50,
// p99, max in µs), and linkemu's own CPU time. --delay takes Go's durations
// (500us, 0.5ms), not tc's spellings (500usec).
//
// Each direction is a FIFO queue, as netem's is: a packet of n bytes that
// arrives at t starts on the wire at max(t, the previous packet's end), takes
// n·8/rate, and is delivered delay after it has left; a packet that would
// wait longer than --queue is dropped (tail drop). Delivery waits with
// clock_nanosleep on absolute CLOCK_MONOTONIC deadlines (the kernel's high-
// resolution timers; Go's own timers round sub-millisecond sleeps up), so the
// schedule is kept to tens of microseconds on an idle machine (the delivering
// threads' timer slack is 1 ns); the "late" figures say what it was.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	a := flag.String("a", "", "NS:DEV, one end (a namespace of `ip netns` and the TUN device to create in it)")
	b := flag.String("b", "", "NS:DEV, the other end")
	rateFlag := flag.String("rate", "1gbit", "the link's rate in each direction: e.g. 10gbit, 1gbit, 500mbit")
	delay := flag.Duration("delay", 500*time.Microsecond, "one-way delay (a round trip takes twice it)")
	queue := flag.Duration("queue", 2*time.Second, "the longest a packet may wait for the wire before it is dropped")
	flag.Parse()
	rate, err := parseRate(*rateFlag)
	if err == nil && (*a == "" || *b == "") {
		err = errors.New("--a and --b are both needed")
	}
	if err == nil && (*delay < 0 || *queue <= 0) {
		err = fmt.Errorf("--delay %v must be ≥ 0 and --queue %v > 0", *delay, *queue)
	}
	if err == nil && flag.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "linkemu:", err)
		os.Exit(2)
	}
	// Ended with the script that started it, whatever kills the script:
	// an orphan would keep both namespaces alive through its devices.
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	if os.Getppid() == 1 {
		fmt.Fprintln(os.Stderr, "linkemu: started by init (its parent is gone)")
		os.Exit(1)
	}
	fa, err := openTUN(*a)
	if err == nil {
		var fb int
		if fb, err = openTUN(*b); err == nil {
			run(fa, fb, *a, *b, shaper{rate: rate, delay: delay.Nanoseconds(), queue: queue.Nanoseconds()})
			return
		}
	}
	fmt.Fprintln(os.Stderr, "linkemu:", err)
	os.Exit(1)
}

// parseRate reads tc's spelling of a rate in bits per second.
func parseRate(s string) (float64, error) {
	m := regexp.MustCompile(`^([0-9.]+)([kmg]?)bit$`).FindStringSubmatch(strings.ToLower(s))
	if m == nil {
		return 0, fmt.Errorf("--rate %q: want e.g. 10gbit, 1gbit, 500mbit", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("--rate %q: not a positive rate", s)
	}
	return v * map[string]float64{"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m[2]], nil
}

// openTUN creates the TUN device DEV in namespace NS ("NS:DEV") and returns
// its file descriptor (blocking reads and writes, one IP packet each, no
// packet-information header). The device is created from a thread moved into
// NS for the call and thrown away after it (its goroutine ends locked to
// it), so no other goroutine runs in NS; the descriptor stays bound to the
// device.
func openTUN(spec string) (int, error) {
	ns, dev, ok := strings.Cut(spec, ":")
	if !ok || ns == "" || dev == "" {
		return -1, fmt.Errorf("%q: want NS:DEV", spec)
	}
	nsfd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer unix.Close(nsfd)
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			ch <- result{-1, fmt.Errorf("entering namespace %s: %w", ns, err)}
			return
		}
		fd, err := createTUN(dev)
		if err != nil {
			err = fmt.Errorf("TUN device %s in %s: %w", dev, ns, err)
		}
		ch <- result{fd, err}
	}()
	r := <-ch
	return r.fd, r.err
}

func createTUN(dev string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(dev)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// shaper is one direction's schedule: a FIFO link of rate bits per second
// and a one-way delay, whose queue holds at most queue nanoseconds of
// waiting.
type shaper struct {
	rate         float64 // bits per second
	delay, queue int64   // nanoseconds
	free         int64   // when the wire is free again (ns, the clock of admit's now)
}

// admit schedules a packet of n bytes that arrived at now (ns): the time at
// which it is to be delivered, or ok false when it would wait longer than the
// queue allows (it is dropped and takes no time on the wire).
func (s *shaper) admit(now int64, n int) (deliver int64, ok bool) {
	start := max(now, s.free)
	if start-now > s.queue {
		return 0, false
	}
	s.free = start + int64(float64(n)*8e9/s.rate)
	return s.free + s.delay, true
}

// packet is one IP packet on its way, with its delivery time.
type packet struct {
	buf     []byte
	deliver int64
}

// report is one direction's line of the LINKEMU report. "late" is how long
// after its delivery time a packet was handed to the kernel.
type report struct {
	Name      string  `json:"direction"`
	Packets   int64   `json:"packets"`
	Bytes     int64   `json:"bytes"`
	Dropped   int64   `json:"dropped"`
	LateP50us float64 `json:"late_p50_us"`
	LateP99us float64 `json:"late_p99_us"`
	LateMaxus float64 `json:"late_max_us"`
	WriteErrs int64   `json:"write_errors"`
}

// direction is one direction's counters, written by its goroutines under
// mu and read at the end.
type direction struct {
	mu   sync.Mutex
	r    report  // the counts; the late figures are filled in at the end
	late []int64 // ns, one per delivered packet (bounded: the first 1<<20)
}

func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// forward moves the packets read from in to out on sh's schedule until in
// fails (its device is gone). A packet waits in a buffer of its own size,
// so the queue's memory is what --queue lets wait (2 s at 1 Gbit/s: 250 MB)
// and at most 1<<16 packets; a packet beyond either is dropped before it
// is scheduled, taking no time on the wire.
func forward(in, out int, sh shaper, d *direction) {
	const mtu = 65536
	ch := make(chan packet, 1<<16)
	go func() {
		// The kernel lets a sleep run late by the thread's timer slack
		// (50 µs by default) to batch wake-ups: this thread's is 1 ns.
		runtime.LockOSThread()
		unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
		for p := range ch {
			ts := unix.NsecToTimespec(p.deliver)
			for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
			}
			late := monotonic() - p.deliver // before the write, which runs the receiver's stack
			_, err := unix.Write(out, p.buf)
			d.mu.Lock()
			if err != nil {
				d.r.WriteErrs++
			} else {
				d.r.Packets++
				d.r.Bytes += int64(len(p.buf))
			}
			if len(d.late) < 1<<20 {
				d.late = append(d.late, late)
			}
			d.mu.Unlock()
		}
	}()
	buf := make([]byte, mtu)
	for {
		n, err := unix.Read(in, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			close(ch)
			return
		}
		if len(ch) < cap(ch) { // this goroutine alone sends: the room stays
			if deliver, ok := sh.admit(monotonic(), n); ok {
				ch <- packet{slices.Clone(buf[:n]), deliver}
				continue
			}
		}
		d.mu.Lock()
		d.r.Dropped++
		d.mu.Unlock()
	}
}

func run(fa, fb int, a, b string, sh shaper) {
	ab := &direction{r: report{Name: a + " to " + b}}
	ba := &direction{r: report{Name: b + " to " + a}}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go forward(fa, fb, sh, ab)
	go forward(fb, fa, sh, ba)
	fmt.Fprintf(os.Stderr, "linkemu: ready: %s <-> %s, %.3g bit/s, %v one-way delay\n", a, b, sh.rate, time.Duration(sh.delay))
	<-sig
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	var dirs []report
	for _, d := range []*direction{ab, ba} {
		d.mu.Lock()
		s := d.r
		late := slices.Sorted(slices.Values(d.late))
		d.mu.Unlock()
		if n := len(late); n > 0 {
			s.LateP50us = float64(late[n/2]) / 1e3
			s.LateP99us = float64(late[n*99/100]) / 1e3
			s.LateMaxus = float64(late[n-1]) / 1e3
		}
		dirs = append(dirs, s)
	}
	line, _ := json.Marshal(map[string]any{
		"rate_bit_s": sh.rate, "delay_s": float64(sh.delay) / 1e9,
		"cpu_s":      time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(),
		"directions": dirs,
	})
	fmt.Printf("LINKEMU %s\n", line)
}
