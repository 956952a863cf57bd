package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestInt8EncodingObjdump assembles the VNNI kernels with Go's assembler,
// links them into a program and disassembles it with binutils' objdump:
// each VPDPBUSD must come out with the operands the generator means, in
// Intel order "vpdpbusd acc, activations (unsigned), weights (signed)".
// Go's reversed operand order makes a swap of the u8 and s8 sources an
// easy mistake that the CPU would not report (it computes something
// else), and the CPU here may not run VNNI to find it.
func TestInt8EncodingObjdump(t *testing.T) {
	objdump, err := exec.LookPath("objdump")
	if err != nil {
		t.Skip("binutils' objdump not installed:", err)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build with:", err)
	}
	e := &emitter{}
	e.text("#include \"textflag.h\"\n")
	names := []string{genInt8Tile(e, "VNNI", 1), genInt8Tile(e, "VNNI", 3)}
	genPeakInt8(e)
	dir := t.TempDir()
	goSrc := "package main\n\nimport \"unsafe\"\n\nfunc peakInt8AVX2(n int)\nfunc peakInt8VNNI(n int)\n"
	for _, n := range names {
		goSrc += fmt.Sprintf("func %s(a, b unsafe.Pointer, steps int, c unsafe.Pointer)\n", n)
	}
	goSrc += "\nvar keep = []any{peakInt8AVX2, peakInt8VNNI, " + strings.Join(names, ", ") + "}\n\nfunc main() { println(len(keep)) }\n"
	for name, body := range map[string]string{"go.mod": "module vnnicheck\n\ngo 1.26\n", "main.go": goSrc, "k_amd64.s": e.s.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "prog")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the kernels: %v\n%s", err, out)
	}
	out, err := exec.Command(objdump, "-d", "-M", "intel", "--no-show-raw-insn", bin).Output()
	if err != nil {
		t.Fatalf("objdump: %v", err)
	}
	// Collect each function's VPDPBUSD lines.
	got := map[string][]string{}
	fn := ""
	head := regexp.MustCompile(`^[0-9a-f]+ <main\.(\w+)(\.abi0)?>:$`)
	for _, line := range strings.Split(string(out), "\n") {
		if m := head.FindStringSubmatch(line); m != nil {
			fn = m[1]
			continue
		}
		if i := strings.Index(line, "vpdpbusd"); i >= 0 && fn != "" {
			got[fn] = append(got[fn], strings.Join(strings.Fields(line[i:]), " "))
		}
	}
	for _, mr := range []int{1, 3} {
		name := fmt.Sprintf("int8VNNI_%dx32", mr)
		var want []string
		for r := range mr {
			for v := range 2 {
				want = append(want, fmt.Sprintf("vpdpbusd zmm%d,zmm30,zmm%d", 2*r+v, 28+v))
			}
		}
		if strings.Join(got[name], "\n") != strings.Join(want, "\n") {
			t.Errorf("%s disassembles to\n%s\nwant\n%s", name, strings.Join(got[name], "\n"), strings.Join(want, "\n"))
		}
	}
	if n := len(got["peakInt8VNNI"]); n != 24 {
		t.Errorf("peakInt8VNNI has %d VPDPBUSD, want 24: %q", n, got["peakInt8VNNI"])
	}
	for _, l := range got["peakInt8VNNI"] {
		if !strings.HasSuffix(l, ",zmm25,zmm24") {
			t.Errorf("peakInt8VNNI: %q, want sources zmm25 (unsigned), zmm24 (signed)", l)
		}
	}
}
