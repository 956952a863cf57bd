//go:build unix

package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteMode: a new file gets 0666 less the umask, as os.WriteFile
// gives it (a private umask keeps a new checkpoint private), and an
// existing file keeps its permission bits through a rewrite, whatever the
// umask. Not parallel: it changes the process's umask.
func TestWriteMode(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	mode := func(p string) fs.FileMode {
		t.Helper()
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}

	fresh := filepath.Join(dir, "fresh")
	if err := Write(fresh, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if m := mode(fresh); m != 0o600 {
		t.Errorf("new file under umask 077: %v, want -rw-------", m)
	}
	syscall.Umask(0o002)
	fresh2 := filepath.Join(dir, "fresh2")
	if err := Write(fresh2, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if m := mode(fresh2); m != 0o664 {
		t.Errorf("new file under umask 002: %v, want -rw-rw-r--", m)
	}

	syscall.Umask(0o022)
	for _, perm := range []fs.FileMode{0o600, 0o640, 0o444, 0o666} {
		p := filepath.Join(dir, "existing"+perm.String())
		if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
		if err := Write(p, []byte("new")); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != "new" {
			t.Errorf("%v file: %q after Write", perm, b)
		}
		if m := mode(p); m != perm {
			t.Errorf("existing %v file is %v after Write", perm, m)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 6 {
		t.Errorf("%d files in the folder, want 6 (a temporary file left?)", len(entries))
	}
}
