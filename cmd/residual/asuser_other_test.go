//go:build !unix

package main

import "testing"

// rerunAsNobody is never reached where there is no root (os.Geteuid is
// −1 outside Unix); it skips, saying so.
func rerunAsNobody(t *testing.T, name string) {
	t.Skipf("%s: no user to run as outside Unix", name)
}
