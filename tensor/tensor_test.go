package tensor

import (
	"fmt"
	"math"
	"math/bits"
	"testing"
)

func TestLayoutRoundTrips(t *testing.T) {
	x := NewRNG(1).Randn(2, 3, 4, 5)
	if y := NHWCToNCHW(NCHWToNHWC(x)); fmt.Sprint(y.Data) != fmt.Sprint(x.Data) {
		t.Error("NCHW → NHWC → NCHW changed the data")
	}
	if got := NCHWToNHWC(x); got.At(1, 2, 3, 0) != x.At(1, 0, 2, 3) || fmt.Sprint(got.Shape) != "[2 4 5 3]" {
		t.Error("NCHWToNHWC moved an element to the wrong place")
	}
	w := NewRNG(2).Randn(8, 3, 3, 2) // OIHW
	if h := OIHWToHWIO(w); h.At(2, 1, 0, 5) != w.At(5, 0, 2, 1) || HWIOToOIHW(h).Sum() != w.Sum() {
		t.Error("OIHW ↔ HWIO is wrong")
	}
	v := NewRNG(3).Randn(4, 6, 2, 2) // IOHW
	if h := IOHWToHWOI(v); h.At(1, 0, 5, 3) != v.At(3, 5, 1, 0) || fmt.Sprint(HWOIToIOHW(h).Data) != fmt.Sprint(v.Data) {
		t.Error("IOHW ↔ HWOI is wrong")
	}
}

func TestRNGDeterministicAndRestorable(t *testing.T) {
	a, b := NewRNG(42), NewRNG(42)
	for i := 0; i < 100; i++ {
		if a.Normal() != b.Normal() {
			t.Fatal("same seed, different numbers")
		}
	}
	if NewRNG(1).Uint64() == NewRNG(2).Uint64() {
		t.Error("different seeds, same numbers")
	}
	state, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := a.Float64()
	c := NewRNG(0)
	if err := c.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	if got := c.Float64(); got != want {
		t.Errorf("restored generator gives %g, want %g", got, want)
	}
	if err := c.UnmarshalBinary([]byte("junk")); err == nil {
		t.Error("bad state accepted")
	}
}

// Reseed, on a generator that has drawn numbers, gives the stream a new
// one of that seed gives, without allocating.
func TestRNGReseed(t *testing.T) {
	g := NewRNG(5)
	g.Uint64()
	g.Reseed(42)
	want := NewRNG(42)
	for i := range 100 {
		if a, b := g.Uint64(), want.Uint64(); a != b {
			t.Fatalf("draw %d after Reseed(42): %#x, want NewRNG(42)'s %#x", i, a, b)
		}
	}
	if n := testing.AllocsPerRun(10, func() { g.Reseed(7) }); n != 0 {
		t.Errorf("Reseed allocates %g times", n)
	}
}

func TestShapeChecks(t *testing.T) {
	if _, err := FromData(make([]float32, 5), 2, 3); err == nil {
		t.Error("5 values accepted for [2 3]")
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("Reshape to a different size did not panic")
		}
	}()
	New(2, 3).Reshape(4, 2)
}

// FromData is where a shape from outside (a file, a request) becomes a
// tensor: a negative dimension, or one whose product overflows and so
// "matches" a short slice, is an error, not a panic or a tensor whose
// shape lies about its data.
func TestFromDataRefusesImpossibleShapes(t *testing.T) {
	for _, c := range []struct {
		data  []float32
		shape []int
	}{
		{[]float32{1, 2, 3}, []int{-1, -3}},
		{nil, []int{2, -1}},
		{nil, []int{1 << (bits.UintSize / 2), 1 << (bits.UintSize / 2)}}, // 2^64 wraps to 0 (2^32 on 32 bits)
		{make([]float32, 4), []int{1<<(bits.UintSize-2) + 1, 4}},         // 2^64+4 wraps to 4 (2^32+4 on 32 bits)
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("FromData(%d values, %v) panicked: %v", len(c.data), c.shape, r)
				}
			}()
			if x, err := FromData(c.data, c.shape...); err == nil {
				t.Errorf("FromData(%d values, %v) = %v, want an error", len(c.data), c.shape, x.Shape)
			}
		}()
	}
	if x, err := FromData(nil, math.MaxInt, 0, math.MaxInt); err != nil || x.Len() != 0 {
		t.Errorf("FromData(nil, [MaxInt 0 MaxInt]) = %v, %v; a zero dimension makes an empty tensor", x, err)
	}
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("NumElements of an overflowing shape did not panic")
			}
		}()
		NumElements([]int{1 << (bits.UintSize / 2), 1 << (bits.UintSize / 2)})
	}()
}
