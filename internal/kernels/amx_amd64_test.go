//go:build amd64 && !purego

package kernels

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	kt "github.com/residual-nn/residual/internal/kernels/kernelstest"
)

// TestAMXEncodings holds the bytes of amx_amd64.s's AMX macros and
// bf16_amd64.s's and batchnorm_amd64.s's VCVTNE2PS2BF16, which Go's
// assembler does not know, to
// binutils' encodings of the same instructions (as assembles them,
// objdump -d lists them back): opcode, prefix, registers and addressing,
// operand by operand.
func TestAMXEncodings(t *testing.T) {
	asm, err := exec.LookPath("as")
	if err != nil {
		t.Skip("binutils' as is not installed (Debian's binutils):", err)
	}
	want := map[string]string{
		"LDTILECFG_AX": "ldtilecfg (%rax)",
		"TILEZERO_0":   "tilezero %tmm0",
		"TILEZERO_1":   "tilezero %tmm1",
		"TILEZERO_2":   "tilezero %tmm2",
		"TILEZERO_3":   "tilezero %tmm3",
		"TILEZERO_4":   "tilezero %tmm4",
		"TILEZERO_5":   "tilezero %tmm5",
		"TILEZERO_6":   "tilezero %tmm6",
		"TILEZERO_7":   "tilezero %tmm7",
		"LOAD_A0":      "tileloadd (%rsi,%rdx,1), %tmm0",
		"LOAD_A1":      "tileloadd (%rax,%rdx,1), %tmm3",
		"LOAD_B0":      "tileloadd (%rbx,%rcx,1), %tmm1",
		"LOAD_B1":      "tileloadd 64(%rbx,%rcx,1), %tmm2",
		"DP_40_1":      "tdpbusd %tmm1, %tmm0, %tmm4",
		"DP_50_2":      "tdpbusd %tmm2, %tmm0, %tmm5",
		"DP_63_1":      "tdpbusd %tmm1, %tmm3, %tmm6",
		"DP_73_2":      "tdpbusd %tmm2, %tmm3, %tmm7",
		"BF_40_1":      "tdpbf16ps %tmm1, %tmm0, %tmm4",
		"BF_50_2":      "tdpbf16ps %tmm2, %tmm0, %tmm5",
		"BF_63_1":      "tdpbf16ps %tmm1, %tmm3, %tmm6",
		"BF_73_2":      "tdpbf16ps %tmm2, %tmm3, %tmm7",
		"STORE_4":      "tilestored %tmm4, (%rdi,%rcx,1)",
		"STORE_5":      "tilestored %tmm5, 64(%rdi,%rcx,1)",
		"STORE_6":      "tilestored %tmm6, (%rdi,%rcx,1)",
		"STORE_7":      "tilestored %tmm7, 64(%rdi,%rcx,1)",
		"LOADC_4":      "tileloadd (%rdi,%r9,1), %tmm4",
		"LOADC_5":      "tileloadd 64(%rdi,%r9,1), %tmm5",
		"LOADC_6":      "tileloadd (%rdi,%r9,1), %tmm6",
		"LOADC_7":      "tileloadd 64(%rdi,%r9,1), %tmm7",
		"STOREC_4":     "tilestored %tmm4, (%rdi,%r9,1)",
		"STOREC_5":     "tilestored %tmm5, 64(%rdi,%r9,1)",
		"STOREC_6":     "tilestored %tmm6, (%rdi,%r9,1)",
		"STOREC_7":     "tilestored %tmm7, 64(%rdi,%r9,1)",
		"TILERELEASE":  "tilerelease",
		"CVTNE2_2_1_0": "vcvtne2ps2bf16 %zmm0, %zmm1, %zmm2",
		"CVTNE2_3_0_0": "vcvtne2ps2bf16 %zmm0, %zmm0, %zmm3",
	}
	macros := map[string][]byte{}
	for _, file := range []string{"amx_amd64.s", "bf16_amd64.s", "batchnorm_amd64.s"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^#define (\w+) (BYTE [^/\n]*)`).FindAllStringSubmatch(string(src), -1) {
			var b []byte
			for _, f := range regexp.MustCompile(`\$0x([0-9a-f]{2})`).FindAllStringSubmatch(m[2], -1) {
				v, _ := strconv.ParseUint(f[1], 16, 8)
				b = append(b, byte(v))
			}
			macros[m[1]] = b
		}
	}
	dir := t.TempDir()
	for name, ins := range want {
		got, ok := macros[name]
		if !ok {
			t.Errorf("no macro %s", name)
			continue
		}
		s, o := filepath.Join(dir, name+".s"), filepath.Join(dir, name+".o")
		if err := os.WriteFile(s, []byte(ins+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(asm, "-o", o, s).CombinedOutput(); err != nil {
			t.Fatalf("as %q: %v\n%s", ins, err, out)
		}
		enc, err := textBytes(o)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, enc) {
			t.Errorf("%s = % x; binutils encodes %q as % x", name, got, ins, enc)
		}
	}
}

// textBytes returns the bytes objdump lists for an object file's code.
func textBytes(obj string) ([]byte, error) {
	out, err := exec.Command("objdump", "-d", obj).Output()
	if err != nil {
		return nil, err
	}
	var b []byte
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 2 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		for _, h := range strings.Fields(f[1]) {
			v, err := strconv.ParseUint(h, 16, 8)
			if err != nil {
				break
			}
			b = append(b, byte(v))
		}
	}
	return b, nil
}

// TestAMXPartsKeepCoresBusy checks how the AMX sweeps cut their work: a
// few groups of pixels (a small batch's last stages) are cut by channel
// blocks into at least two jobs a goroutine, as far as the blocks go,
// many are not cut, and every channel block of every group falls in
// exactly one job's range (amxJob, as the sweeps take them).
func TestAMXPartsKeepCoresBusy(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	for _, c := range []struct{ groups, nb, want int }{
		{1, 64, 4}, // ResNet-50's 1×1 2048→512 at 7×7, batch 1, as the padded sweep sees it
		{2, 16, 2}, // its 1×1 over 7×7 (int8ConvAMX: one group and the tail)
		{3, 8, 2},  // three groups: six jobs
		{4, 8, 1},  // four groups already make two jobs a goroutine
		{98, 2, 1}, // a large batch's first stage
		{1, 1, 1},  // one block of channels cannot be cut
		{1, 3, 3},  // nor into more ranges than it has blocks
		{0, 2, 2},  // no whole group (only a tail): no division by zero
	} {
		parts := amxParts(c.groups, c.nb)
		if parts != c.want {
			t.Errorf("amxParts(%d groups, %d blocks) = %d, want %d", c.groups, c.nb, parts, c.want)
		}
		units := max(c.groups, 1)
		seen := make([]int, units*c.nb)
		for job := range units * parts {
			g, c0, c1 := amxJob(job, parts, c.nb)
			for b := c0; b < c1; b++ {
				seen[g*c.nb+b]++
			}
		}
		for i, n := range seen {
			if n != 1 {
				t.Errorf("amxParts(%d, %d): group %d, block %d in %d jobs", c.groups, c.nb, i/c.nb, i%c.nb, n)
			}
		}
	}
}

// TestPhasedBF16MatchesStrided: a strided convolution on AMX tiles swept
// by phases (convDirectAMXBF16, phasedBF16) makes the strided sweep's
// outputs bit for bit — the same products in the same order — with and
// without an epilogue (scale, shift, skip, ReLU), over ResNet's 3×3 of
// stride 2 and its unfolded stem (a phase no tap reads), odd and
// asymmetrically padded images, a 3×3 of stride 3, tasks of several
// images and of several groups of blocks, random shapes of strides 2 and
// 3 (kernels of 1 to 5, independent padding); and a training forward pass (output statistics
// asked) keeps the strided sweep, whose statistics are summed in float32
// a group of positions at a time: by phases the groups would hold other
// outputs.
func TestPhasedBF16MatchesStrided(t *testing.T) {
	if !hasAMXBF16 || !bf16NativeOn() {
		t.Skip("AMX-BF16 tiles not run: this CPU lacks AMX-BF16 or AVX512-BF16, the system did not grant the tile data, or RESIDUAL_AMX=0")
	}
	defer func() { phasedBF16 = true }()
	r := rand.New(rand.NewPCG(40, 9))
	shapes := []ConvShape{
		{N: 2, H: 14, W: 14, C: 64, OC: 64, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 2, H: 20, W: 20, C: 3, OC: 64, KH: 7, KW: 7, SH: 2, SW: 2, DH: 1, DW: 1, PT: 3, PL: 3, PB: 3, PR: 3},
		{N: 3, H: 9, W: 8, C: 32, OC: 48, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 0, PB: 1, PR: 2},
		{N: 2, H: 13, W: 11, C: 16, OC: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1},
		{N: 1, H: 13, W: 13, C: 64, OC: 32, KH: 3, KW: 3, SH: 3, SW: 3, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		// Tasks of several images and, on one thread, of several groups
		// of blocks (the statistics' float32 sums are folded a group at a
		// time).
		{N: 4, H: 28, W: 28, C: 32, OC: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{N: 4, H: 56, W: 56, C: 32, OC: 32, KH: 3, KW: 3, SH: 2, SW: 2, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
	}
	// And random ones: whole 32-value pixels (the phases' kind), strides 2
	// and 3, kernels of 1 to 5 either way (larger than the image too),
	// each side's padding up to 3, images narrower than a tile.
	for fixed := len(shapes); len(shapes) < fixed+40; {
		st := 2 + r.IntN(2)
		s := ConvShape{N: 1 + r.IntN(3), H: 1 + r.IntN(16), W: 1 + r.IntN(24), C: 32 * (1 + r.IntN(3)), OC: 16 * (1 + r.IntN(4)),
			KH: 1 + r.IntN(5), KW: 1 + r.IntN(5), SH: st, SW: st, DH: 1, DW: 1,
			PT: r.IntN(4), PL: r.IntN(4), PB: r.IntN(4), PR: r.IntN(4)}
		if s.Validate() == nil && s.OH() > 0 && s.OW() > 0 && amxBF16OK(s) {
			shapes = append(shapes, s)
		}
	}
	for i, s := range shapes {
		if u, ok := unfoldedBF16(s); !amxBF16OK(s) && !(ok && amxBF16OK(u)) {
			t.Fatalf("shape %d %+v does not take the AMX tiles", i, s)
		}
		oh, ow := s.OH(), s.OW()
		x, w := kt.RandF32(r, s.N*s.H*s.W*s.C), kt.RandF32(r, s.KH*s.KW*s.C*s.OC)
		scale, shift, skip := kt.RandF32(r, s.OC), kt.RandF32(r, s.OC), kt.RandF32(r, s.N*oh*ow*s.OC)
		for _, e := range []ConvEpilogue[float32]{{}, {Scale: scale, Shift: shift, Skip: skip, ReLU: true}} {
			run := func(phased bool) []float32 {
				phasedBF16 = phased
				y := make([]float32, s.N*oh*ow*s.OC)
				ConvForwardEpilogueBF16(s, x, w, y, e)
				return y
			}
			// On this machine's threads, and on one, where the tasks are
			// the longest (several groups of blocks).
			for _, threads := range []int{0, 1} {
				prev := SetThreads(threads)
				want, got := run(false), run(true)
				SetThreads(prev)
				if !slices.Equal(got, want) {
					t.Errorf("shape %d %+v (epilogue %v, threads %d): the phased sweep differs from the strided one", i, s, e.Scale != nil, threads)
				}
			}
		}
		// With statistics (a training forward pass) the phases are off:
		// the statistics are the strided sweep's bit for bit.
		stats := func(phased bool) *ConvStats {
			phasedBF16 = phased
			st := &ConvStats{}
			ConvForwardEpilogueBF16(s, x, w, make([]float32, s.N*oh*ow*s.OC), ConvEpilogue[float32]{Stats: st})
			return st
		}
		for _, threads := range []int{0, 1} {
			prev := SetThreads(threads)
			want, got := stats(false), stats(true)
			SetThreads(prev)
			if !got.Done || !slices.Equal(got.Mean, want.Mean) || !slices.Equal(got.M2, want.M2) {
				t.Errorf("shape %d %+v (threads %d): the statistics differ with phases on", i, s, threads)
			}
		}
	}
}
