//go:build mpi && cgo

package distributed_test

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/residual-nn/residual/distributed"
)

// The equivalence check as an MPI child program: every rank trains, the
// ranks check that they hold bitwise the same weights, and each compares
// them with one process's, which it trains itself.
func init() {
	distributed.ChildModes["equivalence"] = func(c distributed.Comm) error {
		got, err := eqTrain(c, eqBatch, eqSeed+uint64(c.Rank()))
		if err != nil {
			return err
		}
		var b []byte
		for _, w := range got {
			for _, v := range w {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
			}
		}
		if err := distributed.CheckSame(c, "the final weights", fmt.Sprintf("%x", sha256.Sum256(b))); err != nil {
			return err
		}
		worst, err := eqCompare(got, c.Size())
		if err != nil {
			return err
		}
		fmt.Printf("rank %d: largest weight difference from one process × batch %d: %.3g\n", c.Rank(), c.Size()*eqBatch, worst)
		return nil
	}
}
