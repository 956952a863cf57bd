//go:build linux

package main

import "testing"

// TestShaper checks the schedule against hand-computed times: 1 Mbit/s, so a
// 1,250-byte packet takes 10 ms on the wire; 5 ms one-way delay; a queue of
// 25 ms.
func TestShaper(t *testing.T) {
	const ms = int64(1e6)
	s := shaper{rate: 1e6, delay: 5 * ms, queue: 25 * ms}
	for i, c := range []struct {
		now     int64
		n       int
		deliver int64
		ok      bool
	}{
		{0, 1250, 15 * ms, true},        // on the wire 0–10, delivered at 10 + 5
		{2 * ms, 1250, 25 * ms, true},   // waits for the wire: 10–20, + 5
		{3 * ms, 2500, 45 * ms, true},   // 20–40, + 5
		{4 * ms, 100, 0, false},         // would wait 36 ms > 25: dropped, takes no time
		{16 * ms, 125, 46 * ms, true},   // waits 24 ms ≤ 25: 40–41, + 5
		{100 * ms, 125, 106 * ms, true}, // idle wire: 100–101, + 5
		{100 * ms, 0, 106 * ms, true},   // an empty packet takes no time
	} {
		got, ok := s.admit(c.now, c.n)
		if ok != c.ok || got != c.deliver {
			t.Errorf("packet %d (n %d at %d ms): deliver %d ms, ok %v; want %d ms, %v", i, c.n, c.now/ms, got/ms, ok, c.deliver/ms, c.ok)
		}
	}
}

func TestParseRate(t *testing.T) {
	for s, want := range map[string]float64{"10gbit": 1e10, "1Gbit": 1e9, "500mbit": 5e8, "64kbit": 64e3, "2.5gbit": 2.5e9, "100bit": 100} {
		if got, err := parseRate(s); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "10g", "gbit", "-1gbit", "0gbit", "1.2.3mbit", "10 gbit"} {
		if _, err := parseRate(s); err == nil {
			t.Errorf("parseRate(%q): no error", s)
		}
	}
}
