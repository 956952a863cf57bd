package distributed_test

import (
	"fmt"
	"sync"

	"github.com/residual-nn/residual/distributed"
)

// A program starts its communicator once, says which rank it is, and
// finalizes at the end. "none" is one process; a training command would
// pass its --distributed flag ("auto", "mpi").
func ExampleInit() {
	c, err := distributed.Init("none")
	if err != nil {
		panic(err)
	}
	defer c.Finalize()
	fmt.Printf("rank %d of %d\n", c.Rank(), c.Size())
	// Output:
	// rank 0 of 1
}

// Two ranks (goroutines of one process here; processes under mpirun with
// Init("mpi")) average their gradients with a Reducer, as a training step
// does after its backward pass.
func ExampleReducer() {
	comms := distributed.NewGroup(2)
	sizes := []int{3, 2} // the gradient sizes of two parameters
	grads := [][][]float32{
		{{1, 2, 3}, {10, 20}}, // rank 0's gradients
		{{3, 4, 5}, {30, 40}}, // rank 1's
	}
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() {
			red, err := distributed.NewReducer(c, sizes, distributed.ReducerOptions{})
			if err != nil {
				panic(err)
			}
			// The backward pass produces the last parameter's gradient
			// first.
			for i := len(sizes) - 1; i >= 0; i-- {
				if err := red.MarkReady(i, grads[r][i]); err != nil {
					panic(err)
				}
			}
			if err := red.Wait(); err != nil {
				panic(err)
			}
		})
	}
	wg.Wait()
	fmt.Println("rank 0:", grads[0])
	fmt.Println("rank 1:", grads[1])
	// Output:
	// rank 0: [[2 3 4] [20 30]]
	// rank 1: [[2 3 4] [20 30]]
}

// Each of 3 ranks takes every third sample of the epoch's permutation;
// 10 samples are padded to 12 by repeating the start, so that every rank
// makes the same number of steps.
func ExampleSampler() {
	for r := range 3 {
		s, err := distributed.NewSampler(distributed.Sampler{N: 10, Rank: r, Size: 3})
		if err != nil {
			panic(err)
		}
		fmt.Println("rank", r, s.Indices(0))
	}
	// Output:
	// rank 0 [0 3 6 9]
	// rank 1 [1 4 7 0]
	// rank 2 [2 5 8 1]
}

// Ranks started with different flags fail at start, every one of them
// with the same message.
func ExampleCheckSame() {
	comms := distributed.NewGroup(2)
	flags := []string{"model=resnet20\nlr=0.1", "model=resnet20\nlr=0.05"}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() { errs[r] = distributed.CheckSame(c, "the flags", flags[r]) })
	}
	wg.Wait()
	fmt.Println(errs[0])
	fmt.Println(errs[0].Error() == errs[1].Error())
	// Output:
	// distributed: the ranks disagree on the flags: rank 1 differs from rank 0: rank 0 has "lr=0.1"; rank 1 has "lr=0.05"
	// true
}
