package autograd

import (
	"fmt"

	"github.com/residual-nn/residual/internal/kernels"
)

// Precision is the arithmetic of a tape's convolutions and matrix
// products; it is decided here and nowhere else (models and layers say
// nothing about it).
//
// BF16 is PyTorch's CPU autocast to bfloat16: Conv2d, ConvTranspose2d,
// Gemm (so Linear) and MatMul round both operands to bfloat16 and sum the
// products in float32, forward and backward (the data and weight
// gradients are such products too); everything else — batch norm and its
// statistics, activations, pooling, losses, the parameters themselves
// (float32 master weights) and the optimizer's state — stays float32.
// Unlike autocast, the operations' outputs and gradients are kept in
// float32 rather than rounded to bfloat16 in turn: that is more accurate
// and costs nothing where the native kernels are absent (the emulation
// computes in float32 anyway). kernels.BF16Path says how the bfloat16
// products run on this machine.
type Precision int

const (
	// FP32 computes in float32 throughout.
	FP32 Precision = iota
	// BF16 rounds the operands of convolutions and matrix products to
	// bfloat16 and sums in float32, as PyTorch's CPU autocast does.
	BF16
)

// String returns the precision's name as ParsePrecision reads it.
func (p Precision) String() string {
	if p == BF16 {
		return "bf16"
	}
	return "fp32"
}

// MarshalText writes the precision's name, so that it reads "fp32" or
// "bf16" in JSON; a value other than FP32 and BF16 is an error.
func (p Precision) MarshalText() ([]byte, error) {
	if p != FP32 && p != BF16 {
		return nil, fmt.Errorf("unknown precision Precision(%d)", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText reads what MarshalText writes ("" is FP32, the default).
func (p *Precision) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*p = FP32
		return nil
	}
	q, err := ParsePrecision(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// ParsePrecision reads "fp32" or "bf16".
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "fp32":
		return FP32, nil
	case "bf16":
		return BF16, nil
	}
	return FP32, fmt.Errorf("unknown precision %q (want fp32 or bf16)", s)
}

// SetPrecision sets the arithmetic of the convolutions and matrix products
// computed on tp from now on (their backward steps included); inference
// tapes made by NoGradTape inherit it.
func (tp *Tape) SetPrecision(p Precision) { tp.precision = p }

// Precision returns tp's precision (FP32 for a nil tape).
func (tp *Tape) Precision() Precision {
	if tp == nil {
		return FP32
	}
	return tp.precision
}

// The kernels of each precision, chosen by the operations below.

func convForward(p Precision, s kernels.ConvShape, x, w, y []float32, e kernels.ConvEpilogue[float32]) {
	if p == BF16 {
		kernels.ConvForwardEpilogueBF16(s, x, w, y, e)
		return
	}
	if e.Scale == nil && e.Shift == nil && e.Skip == nil && !e.ReLU {
		kernels.ConvForward(s, x, w, y)
		return
	}
	kernels.ConvForwardEpilogue(s, x, w, y, e)
}

// convForwardW is convForward with the weight as a value: a sealed weight
// (Value.Seal) runs on its packed form for the precision, kept across
// calls.
func convForwardW(p Precision, s kernels.ConvShape, x []float32, w *Value, y []float32, e kernels.ConvEpilogue[float32]) {
	if w.sealed != nil {
		if p == BF16 {
			kernels.ConvForwardPackedBF16(s, x, w.Data.Data, w.packedConvWeightsBF16(s), y, e)
			return
		}
		kernels.ConvForwardPacked(s, x, w.Data.Data, w.packedConvWeights(s), y, e)
		return
	}
	convForward(p, s, x, w.Data.Data, y, e)
}

func convBackwardData(p Precision, s kernels.ConvShape, dy, w, dx []float32) {
	if p == BF16 {
		kernels.ConvBackwardDataBF16(s, dy, w, dx)
		return
	}
	kernels.ConvBackwardData(s, dy, w, dx)
}

func convBackwardDataAdd(p Precision, s kernels.ConvShape, dy, w, dx []float32) {
	if p == BF16 {
		kernels.ConvBackwardDataAddBF16(s, dy, w, dx)
		return
	}
	kernels.ConvBackwardDataAdd(s, dy, w, dx)
}

func convBackwardWeight(p Precision, s kernels.ConvShape, x, dy, dw []float32) {
	if p == BF16 {
		kernels.ConvBackwardWeightBF16(s, x, dy, dw)
		return
	}
	kernels.ConvBackwardWeight(s, x, dy, dw)
}

func gemm(p Precision, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if p == BF16 {
		kernels.GemmBF16(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	kernels.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
