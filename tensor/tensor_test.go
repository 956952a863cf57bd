package tensor

import (
	"fmt"
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
