package limits

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCheckElements(t *testing.T) {
	for _, c := range []struct {
		shape []int
		ok    bool
	}{
		{[]int{}, true},
		{[]int{0, min(1<<40, math.MaxInt)}, true}, // empty: no values, however long the other side
		{[]int{1 << 14, 1 << 14}, true},
		{[]int{1 << 14, 1<<14 + 1}, false},
		{[]int{min(1<<62, math.MaxInt), min(1<<62, math.MaxInt)}, false}, // would overflow int (min: 32-bit int's largest there)
		{[]int{3, -1}, false},
	} {
		err := CheckElements("x", c.shape...)
		if (err == nil) != c.ok {
			t.Errorf("CheckElements(%v) = %v, want ok=%v", c.shape, err, c.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "x: ") {
			t.Errorf("error %q does not name its subject", err)
		}
	}
}

func TestCheckImage(t *testing.T) {
	for _, c := range []struct {
		w, h int
		ok   bool
	}{
		{1, 1, true}, {9000, 9000, true}, {0, 5, false}, {60000, 1, true},
		{70000, 1, false}, {20000, 20000, false}, {9459, 9460, false},
	} {
		if err := CheckImage("f.png", c.w, c.h); (err == nil) != c.ok {
			t.Errorf("CheckImage(%d, %d) = %v, want ok=%v", c.w, c.h, err, c.ok)
		}
	}
}

func TestReadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("12345"), 0o644)
	if b, err := ReadFile(p, 5); err != nil || string(b) != "12345" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	if _, err := ReadFile(p, 4); err == nil || !strings.Contains(err.Error(), "more than the 4 allowed") {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := ReadFile("/dev/zero", 1<<40); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/zero: %v", err)
	}
	if _, err := ReadFile(filepath.Dir(p), 1<<40); err == nil {
		t.Error("a folder was read")
	}
}

// A file within the limit it is read with but longer than a slice can be
// (2³¹ bytes on a 32-bit platform) is refused, naming it, before any
// allocation: make panicked (makeslice: len out of range). The file is
// sparse: it takes no disk.
func TestReadFilePastSlice(t *testing.T) {
	if strconv.IntSize != 32 {
		t.Skipf("%d-bit ints: every file size fits a slice's length", strconv.IntSize)
	}
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 1<<31); err != nil {
		t.Fatal(err)
	}
	want := p + " has 2147483648 bytes, more than a 32-bit process holds (2147483647)"
	if _, err := ReadFile(p, 4<<30); err == nil || err.Error() != want {
		t.Errorf("a 2 GiB file: %v; want %s", err, want)
	}
}

// TestMemory reads MemAvailable from a /proc/meminfo and refuses a need
// beyond what is available, naming it; a file without the line is
// unknown.
func TestMemory(t *testing.T) {
	info := "MemTotal:       24576000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\nBuffers:  1 kB\n"
	if n, ok := memAvailable(strings.NewReader(info)); !ok || n != 20000000<<10 {
		t.Errorf("memAvailable: %d, %v; want %d", n, ok, int64(20000000)<<10)
	}
	for _, bad := range []string{"", "MemTotal: 1 kB\n", "MemAvailable: lots kB\n", "MemAvailable: 5 MB\n"} {
		if n, ok := memAvailable(strings.NewReader(bad)); ok {
			t.Errorf("memAvailable(%q) = %d, known", bad, n)
		}
	}
	if _, ok := AvailableMemory(); !ok {
		t.Skip("no /proc/meminfo here: CheckMemory checks nothing")
	}
	if err := CheckMemory("a batch", 1<<62); err == nil || !strings.Contains(err.Error(), "a batch needs at least 4611686018.4 GB of memory") {
		t.Errorf("CheckMemory of 4 EB: %v", err)
	}
	if err := CheckMemory("a batch", 1<<20); err != nil {
		t.Errorf("CheckMemory of 1 MB: %v", err)
	}
	Memory = 1 << 19
	defer func() { Memory = 0 }()
	if err := CheckMemory("a batch", 1<<20); err == nil || !strings.Contains(err.Error(), "a batch needs at least 1.0 MB of memory; 0.5 MB is available") {
		t.Errorf("CheckMemory of 1 MB within limits.Memory 512 kB: %v", err)
	}
}

// On a 32-bit platform CheckMemory allows no more than 2³¹−1 bytes, even
// where limits.Memory and the machine allow more: a longer slice panics
// (makeslice: len out of range) and the address space ends soon after.
func TestMemory32Bit(t *testing.T) {
	if strconv.IntSize != 32 {
		t.Skipf("%d-bit ints: CheckMemory is bounded by limits.Memory or the machine alone (TestMemory)", strconv.IntSize)
	}
	defer func(m int64) { Memory = m }(Memory)
	for _, m := range []int64{3 << 30, 1 << 40} {
		Memory = m
		if err := CheckMemory("a batch", math.MaxInt32); err != nil {
			t.Errorf("limits.Memory %d: CheckMemory of 2³¹−1 bytes: %v", m, err)
		}
		if err := CheckMemory("a batch", math.MaxInt32+1); err == nil || err.Error() != "a batch needs at least 2.1 GB of memory; a 32-bit process holds 2.1 GB at most" {
			t.Errorf("limits.Memory %d: CheckMemory of 2³¹ bytes: %v", m, err)
		}
	}
	Memory = 1 << 30 // less: named as what is available
	if err := CheckMemory("a batch", 1<<31); err == nil || err.Error() != "a batch needs at least 2.1 GB of memory; 1.1 GB is available" {
		t.Errorf("limits.Memory 1 GiB: CheckMemory of 2³¹ bytes: %v", err)
	}
}

// ParseShape reads a shape an int holds as encoding/json does, and one
// with a dimension past an int as CheckElements would judge it (the
// callers' tests check their messages: safetensors' and keras').
func TestParseShape(t *testing.T) {
	if s, err := ParseShape([]byte(` [2, 0,3]`)); err != nil || len(s) != 3 || s[0] != 2 || s[1] != 0 || s[2] != 3 {
		t.Errorf("[2, 0, 3]: %v, %v", s, err)
	}
	for in, want := range map[string]string{
		`"x"`:                       "json: cannot unmarshal string into Go value of type []int",
		`[1.5]`:                     "json: cannot unmarshal number 1.5 into Go value of type int",
		`[1e30]`:                    "json: cannot unmarshal number 1e30 into Go value of type int",
		`[2,99999999999999999999]`:  "shape [2 99999999999999999999] holds more than " + strconv.Itoa(TensorElements) + " values (limits.TensorElements)",
		`[-1,99999999999999999999]`: "negative dimension in shape [-1 99999999999999999999]",
		`[0,99999999999999999999]`:  "shape [0 99999999999999999999]: dimension 99999999999999999999 does not fit an int, at most " + strconv.Itoa(math.MaxInt) + " on this " + strconv.Itoa(strconv.IntSize) + "-bit platform",
		// What is not a whole number gets encoding/json's error for it,
		// not for the wide dimension before it (which a 64-bit int holds
		// in the first), and null is 0, as encoding/json reads it.
		`[99999999999999999999,2.5]`:  "json: cannot unmarshal number 2.5 into Go value of type int",
		`[4294967296,"4"]`:            "json: cannot unmarshal string into Go value of type int",
		`[99999999999999999999,null]`: "shape [99999999999999999999 0] holds more than " + strconv.Itoa(TensorElements) + " values (limits.TensorElements)",
	} {
		if _, err := ParseShape([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %s", in, err, want)
		}
	}
	// The empty shape's error holds its dimensions, for a caller that
	// refuses an empty one in words of its own.
	var wide *WideDimensionError
	if _, err := ParseShape([]byte(`[2,0,99999999999999999999]`)); !errors.As(err, &wide) || fmt.Sprint(wide.Shape) != "[2 0 99999999999999999999]" || wide.Dim.String() != "99999999999999999999" {
		t.Errorf("[2,0,99999999999999999999]: got %v, want a *WideDimensionError with its dimensions", err)
	}
}
