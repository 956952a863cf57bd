package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedFilesUpToDate checks that the committed kernels_amd64.s and
// kernels_amd64.go are what the generator writes, byte for byte: an edit
// to either side without `go generate` fails here.
func TestGeneratedFilesUpToDate(t *testing.T) {
	asm, decls, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"../kernels_amd64.s": asm, "../kernels_amd64.go": decls} {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generator's output: run go generate in internal/kernels", name)
		}
	}
}
