package limits

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckElements(t *testing.T) {
	for _, c := range []struct {
		shape []int
		ok    bool
	}{
		{[]int{}, true},
		{[]int{0, 1 << 40}, true}, // empty: no values, however long the other side
		{[]int{1 << 14, 1 << 14}, true},
		{[]int{1 << 14, 1<<14 + 1}, false},
		{[]int{1 << 62, 1 << 62}, false}, // would overflow int
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
