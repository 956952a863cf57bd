package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestWriteFolders: a write creates the missing folders of its path
// (as a command that checked it could write there expects); a write that
// fails removes the folders it created and its temporary file, and its
// error names the path.
func TestWriteFolders(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "new", "sub", "x")
	if err := Write(p, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "x" {
		t.Fatalf("%q, %v", b, err)
	}
	// Two files, the second of which cannot be written: neither is
	// replaced, the first's new folders are removed, no temporary file
	// is left.
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "fresh", "a", "f")
	err := WriteAll([]string{keep, fresh, filepath.Join(keep, "under")}, [][]byte{[]byte("new"), []byte("new"), []byte("new")})
	if err == nil || !strings.Contains(err.Error(), "writing "+filepath.Join(keep, "under")) {
		t.Errorf("WriteAll: %v", err)
	}
	if b, _ := os.ReadFile(keep); string(b) != "old" {
		t.Errorf("%s replaced by a failed WriteAll: %q", keep, b)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"keep", "new"}) {
		t.Errorf("left behind: %v, want [keep new]", names)
	}
	if err := WriteAll([]string{keep, fresh}, [][]byte{[]byte("new"), []byte("new")}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{keep, fresh} {
		if b, _ := os.ReadFile(f); string(b) != "new" {
			t.Errorf("%s: %q", f, b)
		}
	}
	if os.Geteuid() != 0 { // root writes in any folder
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		err := Write(filepath.Join(ro, "x"), nil)
		if err == nil || !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "writing "+filepath.Join(ro, "x")+": permission denied") {
			t.Errorf("read-only folder: %v", err)
		}
	}
}
