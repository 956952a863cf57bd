package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// objdumpIntel disassembles code (x86-64, Intel syntax) with binutils'
// objdump and returns one instruction text per line, spaces removed
// ("vdpbf16pszmm0,zmm30,zmm28"). Tests skip where objdump is missing (the
// Debian package binutils provides it).
func objdumpIntel(t *testing.T, code []byte) []string {
	t.Helper()
	tool, err := exec.LookPath("objdump")
	if err != nil {
		t.Skip("binutils' objdump is not installed (apt-get install binutils): cannot check the EVEX encodings")
	}
	f := filepath.Join(t.TempDir(), "code.bin")
	if err := os.WriteFile(f, code, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", f).Output()
	if err != nil {
		t.Fatalf("objdump: %v", err)
	}
	var ins []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "   6:\t62 92 0e 40 52 c4    \tvdpbf16ps zmm0,zmm30,zmm28"
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 3 || !strings.HasSuffix(strings.TrimSpace(f[0]), ":") {
			continue
		}
		ins = append(ins, strings.ReplaceAll(strings.Join(f[2:], ""), " ", ""))
	}
	return ins
}

// TestBF16EncodingsMatchObjdump encodes VDPBF16PS and VCVTNE2PS2BF16 for
// every triple of ZMM registers (32³ each) and checks that objdump reads
// back each instruction with its registers.
func TestBF16EncodingsMatchObjdump(t *testing.T) {
	var code []byte
	var want []string
	for _, in := range []struct {
		name string
		enc  func(d, a, b int) []byte
	}{{"vdpbf16ps", vdpbf16ps}, {"vcvtne2ps2bf16", vcvtne2ps2bf16}} {
		for d := 0; d < 32; d++ {
			for a := 0; a < 32; a++ {
				for b := 0; b < 32; b++ {
					c := in.enc(d, a, b)
					if len(c) != 6 {
						t.Fatalf("%s %d,%d,%d: %d bytes", in.name, d, a, b, len(c))
					}
					code = append(code, c...)
					want = append(want, fmt.Sprintf("%szmm%d,zmm%d,zmm%d", in.name, d, a, b))
				}
			}
		}
	}
	got := objdumpIntel(t, code)
	if len(got) != len(want) {
		t.Fatalf("objdump read %d instructions, want %d (first: %q)", len(got), len(want), got[:min(3, len(got))])
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("instruction %d: objdump reads %q, want %q", i, got[i], want[i])
		}
	}
}

// TestGeneratedBF16Bytes checks every instruction that the generated
// kernels_amd64.s carries as BYTE directives: objdump must read the bytes
// as the instruction its comment names.
func TestGeneratedBF16Bytes(t *testing.T) {
	asm, _, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^\t((?:BYTE \$0x[0-9a-f]{2}; )*BYTE \$0x[0-9a-f]{2}) // (.*)$`)
	var code []byte
	var want []string
	for _, l := range strings.Split(string(asm), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			if strings.Contains(l, "BYTE") {
				t.Fatalf("unparsed BYTE line %q", l)
			}
			continue
		}
		for _, b := range strings.Split(m[1], "; ") {
			v, err := strconv.ParseUint(strings.TrimPrefix(b, "BYTE $0x"), 16, 8)
			if err != nil {
				t.Fatal(err)
			}
			code = append(code, byte(v))
		}
		want = append(want, strings.ReplaceAll(m[2], " ", ""))
	}
	if len(want) < 100 {
		t.Fatalf("only %d encoded instructions in the generated assembly", len(want))
	}
	got := objdumpIntel(t, code)
	if len(got) != len(want) {
		t.Fatalf("objdump read %d instructions, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("encoded instruction %d: objdump reads %q, the comment says %q", i, got[i], want[i])
		}
	}
}
