package unet

import (
	"slices"
	"strings"
	"testing"
	"time"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/nn"
	"github.com/residual-nn/residual/tensor"
)

func TestOriginalUNet(t *testing.T) {
	m, err := New(Original(), tensor.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	if got := nn.NumParams(m); got != 31030658 {
		t.Errorf("%d parameters, Ronneberger et al. 31,030,658", got)
	}
	tape := ag.NewShapeTape()
	y := m.Forward(tape.Placeholder(1, 572, 572, 1))
	if s := y.Data.Shape; s[1] != 388 || s[2] != 388 || s[3] != 2 {
		t.Errorf("572×572 gives %v, want 388×388×2", s)
	}
	if o, err := Original().OutputSize(572); o != 388 || err != nil {
		t.Errorf("OutputSize(572) = %d, %v", o, err)
	}
	// A side that does not fit names the nearest that do (572 − 16 and
	// 572: the valid levels shrink by 4 and halve, four times).
	if _, err := Original().OutputSize(570); err == nil || !strings.Contains(err.Error(), "the nearest sides that fit: 556 and 572") {
		t.Errorf("OutputSize(570): %v; want it refused, naming 556 and 572", err)
	}
	padded := Config{InChannels: 1, Classes: 2, Depth: 4, Base: 4, BatchNorm: true}
	if _, err := padded.OutputSize(40); err == nil || !strings.Contains(err.Error(), "32 and 48") {
		t.Errorf("padded OutputSize(40): %v; want 32 and 48 named", err)
	}
}

func TestPaddedKeepsSize(t *testing.T) {
	m, _ := New(Config{InChannels: 3, Classes: 5, Depth: 2, Base: 4, BatchNorm: true}, tensor.NewRNG(1))
	y := m.Forward(ag.Constant(tensor.NewRNG(2).Randn(2, 12, 8, 3)))
	if s := y.Data.Shape; s[0] != 2 || s[1] != 12 || s[2] != 8 || s[3] != 5 {
		t.Errorf("output %v, want [2 12 8 5]", s)
	}
	names := map[string]bool{}
	for _, e := range nn.StateDict(m) {
		names[e.Name] = true
	}
	for _, k := range []string{"downs.0.0.weight", "downs.0.1.running_var", "bottom.3.weight", "upconvs.1.bias", "ups.0.4.weight", "head.bias"} {
		if !names[k] {
			t.Errorf("missing %s", k)
		}
	}
}

// TileFor of a config too deep for any image returns 0, 0 at once (depth
// 100 looped for ever: its margin overflowed to −4 and no side served).
func TestTileForTooDeep(t *testing.T) {
	for _, d := range []int{20, 40, 100} {
		done := make(chan [2]int, 1)
		go func() { in, got := (Config{Depth: d, Valid: true}).TileFor(28); done <- [2]int{in, got} }()
		select {
		case r := <-done:
			if r != [2]int{0, 0} {
				t.Errorf("depth %d: TileFor(28) = %v, want 0, 0", d, r)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("depth %d: TileFor(28) did not return", d)
		}
	}
	if in, got := (Config{Depth: 4, Valid: true}).TileFor(68); in != 252 || got != 68 {
		t.Errorf("depth 4: TileFor(68) = %d, %d; want 252, 68 (a margin of 92 on each side)", in, got)
	}
}

// TestMirror: mirroring reflects about the edge pixel, repeatedly.
func TestMirror(t *testing.T) {
	for i, want := range map[int]int{-1: 1, -2: 2, 5: 3, 4: 4, -7: 1, 11: 3} {
		if got := mirror(i, 5); got != want {
			t.Errorf("mirror(%d, 5) = %d, want %d", i, got, want)
		}
	}
}

// Mirrored extends by reflection as numpy.pad(mode="reflect") does,
// repeatedly beyond the image's width, and refuses with a message naming
// the shape what is not one image or a negative extension (it indexed out
// of range, or silently cropped).
func TestMirrored(t *testing.T) {
	x := tensor.MustFromData([]float32{1, 2, 3}, 1, 1, 3, 1)
	// numpy.pad([1, 2, 3], (4, 5), mode="reflect")
	want := []float32{1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2}
	if got := Mirrored(x, 0, 4, 0, 5).Data; !slices.Equal(got, want) {
		t.Errorf("Mirrored([1 2 3], left 4, right 5) = %v, want %v", got, want)
	}
	for _, c := range []struct {
		x    *tensor.Tensor
		pads [4]int
	}{
		{tensor.New(3, 1), [4]int{1, 0, 0, 0}},
		{tensor.New(2, 2, 2, 1), [4]int{1, 0, 0, 0}},
		{tensor.New(1, 0, 2, 1), [4]int{1, 0, 0, 0}},
		{tensor.New(1, 2, 2, 1), [4]int{-1, 0, 0, 0}},
	} {
		func() {
			defer func() {
				r := recover()
				if msg, ok := r.(string); !ok || !strings.Contains(msg, "unet: Mirrored needs one image") {
					t.Errorf("Mirrored(%v, %v): panic %v, want one naming the shape", c.x.Shape, c.pads, r)
				}
			}()
			Mirrored(c.x, c.pads[0], c.pads[1], c.pads[2], c.pads[3])
		}()
	}
}
