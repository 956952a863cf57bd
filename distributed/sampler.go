package distributed

import (
	"fmt"

	"github.com/residual-nn/residual/tensor"
)

// Sampler gives each rank its own shard of a data set's indices for an
// epoch, as PyTorch's DistributedSampler does: every rank draws the same
// permutation (from Seed and the epoch, so it changes every epoch and is
// the same on every machine), and rank r takes positions r, r+Size,
// r+2·Size, … of it. With DropLast false the permutation is first padded
// to a multiple of Size by repeating its start, so that every rank has
// the same number of samples (and so of steps: a rank with one step more
// would wait in an all-reduce for ever); a few samples then count twice
// in an epoch. With DropLast true its tail is dropped instead.
//
// Taking every Size-th position, rather than contiguous blocks, makes
// Size ranks with batch B see, step by step, the same samples as one
// process with batch Size·B over the same permutation.
//
// NewSampler checks the fields; a Sampler set up otherwise must have
// Size ≥ 1 and Rank in [0, Size), or its methods panic.
//
// The fields are PyTorch's arguments: N is len(dataset), Size
// num_replicas, then rank, shuffle, seed and drop_last.
type Sampler struct {
	N          int // data set size
	Rank, Size int
	Shuffle    bool   // permute; else the order 0, 1, …, N−1
	Seed       uint64 // the permutation of epoch e is seeded with Seed+e, as PyTorch's
	DropLast   bool
}

// NewSampler returns a copy of s once its fields are checked, as in
// NewSampler(Sampler{N: n, Rank: c.Rank(), Size: c.Size(), Shuffle: true,
// Seed: seed}). A negative N, a Rank outside [0, Size), and DropLast with
// fewer samples than ranks are errors (with a nil Sampler).
func NewSampler(s Sampler) (*Sampler, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Sampler) check() error {
	switch {
	case s.N < 0:
		return fmt.Errorf("distributed: Sampler over %d samples", s.N)
	case s.Size < 1 || s.Rank < 0 || s.Rank >= s.Size:
		return fmt.Errorf("distributed: Sampler for rank %d of %d", s.Rank, s.Size)
	case s.DropLast && s.N < s.Size:
		return fmt.Errorf("distributed: Sampler with DropLast over %d samples leaves nothing for %d ranks", s.N, s.Size)
	}
	return nil
}

// Len returns the number of samples each rank gets per epoch: ⌈N/Size⌉,
// or ⌊N/Size⌋ with DropLast.
func (s *Sampler) Len() int {
	if s.DropLast {
		return s.N / s.Size
	}
	return (s.N + s.Size - 1) / s.Size
}

// Indices returns this rank's sample indices for epoch.
func (s *Sampler) Indices(epoch int) []int {
	var order []int
	if s.Shuffle {
		order = tensor.NewRNG(s.Seed + uint64(epoch)).Perm(s.N)
	} else {
		order = make([]int, s.N)
		for i := range order {
			order[i] = i
		}
	}
	return s.Shard(order)
}

// Shard returns this rank's part of a global order of the data set (any
// permutation, such as a data loader's epoch order): padded or cut to
// Len()·Size entries as Indices does, then every Size-th from Rank.
func (s *Sampler) Shard(order []int) []int {
	n := s.Len()
	total := n * s.Size
	out := make([]int, 0, n)
	for k := s.Rank; k < total && len(order) > 0; k += s.Size {
		out = append(out, order[k%len(order)]) // k ≥ len(order): the padding, from the start again
	}
	return out
}
