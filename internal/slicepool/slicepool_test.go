package slicepool

import "testing"

// size is the capacity of class k's smallest member.
func size(k int) int {
	e, q := k/4, k%4
	return 1<<e + q*(1<<e>>2)
}

func TestClasses(t *testing.T) {
	for n := 0; n < 1<<16; n++ {
		k, s := getClass(n)
		if s != size(k) || s < max(n, minSize) {
			t.Fatalf("getClass(%d) = %d, %d: size(%d) = %d", n, k, s, k, size(k))
		}
		// The smallest such class: the one below is too small.
		if n > minSize && size(k-1) >= n {
			t.Fatalf("getClass(%d) = %d, but class %d (size %d) holds it", n, k, k-1, size(k-1))
		}
		// A slice made for n goes back to the class it came from.
		if c, ok := putClass(s); !ok || c != k {
			t.Fatalf("putClass(%d) = %d, %v, want %d", s, c, ok, k)
		}
		// A slice of capacity n goes to the largest class it fills.
		c, ok := putClass(n)
		if ok != (n >= minSize) {
			t.Fatalf("putClass(%d) ok = %v", n, ok)
		}
		if ok && (size(c) > n || size(c+1) <= n) {
			t.Fatalf("putClass(%d) = %d (size %d, next %d)", n, c, size(c), size(c+1))
		}
	}
	// A quarter more than asked at most.
	for _, n := range []int{17, 1000, 1 << 20, 1<<20 + 1, 3<<28 + 7} {
		if _, s := getClass(n); float64(s) > 1.25*float64(n) {
			t.Errorf("getClass(%d) holds %d", n, s)
		}
	}
}

func TestGetPut(t *testing.T) {
	var p Pool[float32]
	s := p.Get(1000)
	if len(s) != 1000 || cap(s) < 1000 {
		t.Fatalf("Get(1000): len %d cap %d", len(s), cap(s))
	}
	s[999] = 7
	p.Put(s)
	// Whatever Get returns (the pool may have dropped s), it has the
	// length asked and room for it.
	for _, n := range []int{0, 1, 900, 1000, 1024, 5000} {
		if g := p.Get(n); len(g) != n || cap(g) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(g), cap(g))
		}
	}
	p.Put(make([]float32, 3)) // below the smallest class: dropped
	if g := p.Get(16); len(g) != 16 || cap(g) < 16 {
		t.Fatalf("Get(16): len %d cap %d", len(g), cap(g))
	}
}

// TestRecycles checks that slices of several sizes asked in turn are
// reused instead of made afresh, the case a single sync.Pool misses.
func TestRecycles(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop a quarter of what it is given")
	}
	var p Pool[float64]
	sizes := []int{100, 5000, 70000, 300, 5000}
	for _, n := range sizes { // warm up
		p.Put(p.Get(n))
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, n := range sizes {
			p.Put(p.Get(n))
		}
	})
	// sync.Pool may drop an item now and then (a garbage collection
	// during the run): on average well under one allocation per round.
	if allocs >= 1 {
		t.Errorf("%.1f allocations per round of %d Get/Put pairs, want almost none", allocs, len(sizes))
	}
}
