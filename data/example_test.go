package data_test

import (
	"context"
	"fmt"
	"log"

	"github.com/residual-nn/residual/data"
	"github.com/residual-nn/residual/data/transform"
)

// A Loader cuts a data set into normalised batches, prepared on a
// goroutine of its own ahead of the consumer: here 100 MNIST images
// (embedded) in batches of 32, shuffled with a seed (the same order on
// every run), the last batch shorter.
func ExampleLoader() {
	train, _, err := data.MNIST()
	if err != nil {
		log.Fatal(err)
	}
	idx := make([]int, 100)
	for i := range idx {
		idx[i] = i
	}
	l := &data.Loader{Data: train.Subset(idx), Batch: 32, Shuffle: true, Seed: 1,
		Normalisation: transform.Normalisation{Mean: []float64{0.1307}, Std: []float64{0.3081}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the loader's goroutine if the loop leaves early
	for b := range l.Epoch(ctx, 0, 0) {
		fmt.Println(b.Index, b.X.Shape, len(b.Y))
	}
	if err := l.Err(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 0 [32 28 28 1] 32
	// 1 [32 28 28 1] 32
	// 2 [32 28 28 1] 32
	// 3 [4 28 28 1] 4
}
