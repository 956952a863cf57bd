//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// nobody is the user and group a root test runs its permission checks as.
const nobody = 65534

// rerunAsNobody runs the test named name of this test binary again as user
// and group nobody, for checks that root's permissions would defeat (root
// writes into read-only folders), and fails with its output unless it
// passed there (a skip there fails too). The binary and the fixtures of
// testdata/checkpoint that it reads are copied into a folder that user
// nobody can read (not t.TempDir, whose parent only root can; the clone
// itself may be in a folder only root reads), and nobody gets a temporary
// folder of its own. Where root cannot become nobody (no CAP_SETUID or
// CAP_CHOWN, a user namespace without uid 65534), the test skips, saying
// so.
func rerunAsNobody(t *testing.T, name string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "cmd.test")
	copyFile(t, exe, bin)
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, nobody, nobody); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
			t.Skipf("root cannot hand a folder to user %d here (%v): the read-only checks need another user", nobody, err)
		}
		t.Fatal(err)
	}
	// The fixtures, under the same relative paths from a working folder
	// of nobody's.
	wd := filepath.Join(dir, "cmd", "residual")
	fixtures := filepath.Join(dir, "testdata", "checkpoint")
	for _, d := range []string{wd, fixtures} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{tinyCkpt, unetCkpt, colorPNG, digit0PNG} {
		if filepath.Dir(f) != "../../testdata/checkpoint" {
			t.Fatalf("fixture %s is not in testdata/checkpoint", f)
		}
		copyFile(t, f, filepath.Join(fixtures, filepath.Base(f)))
	}
	cmd := exec.Command(bin, "-test.run=^"+regexp.QuoteMeta(name)+"$", "-test.v", "-test.count=1")
	cmd.Dir = wd
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "HOME="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Skipf("cannot start the test as user %d here (%v): the read-only checks need another user", nobody, err)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s as user %d: %v\n%s", name, nobody, err, out)
	}
}
