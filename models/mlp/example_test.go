package mlp_test

import (
	"fmt"
	"log"

	ag "github.com/residual-nn/residual/autograd"
	"github.com/residual-nn/residual/models/mlp"
	"github.com/residual-nn/residual/tensor"
)

// variance is the mean square of v's values over a batch: the variance of
// a layer's activations (their mean is near zero at initialisation).
func variance(v *ag.Value) float64 {
	var s float64
	for _, x := range v.Data.Data {
		s += float64(x) * float64(x)
	}
	return s / float64(len(v.Data.Data))
}

// The variance study in miniature: with He initialisation a plain network
// keeps its activations' variance through depth (2 expected after every
// layer, from unit-variance inputs; one draw of weights moves it), while
// each residual block adds its branch's variance to the skip's, so without
// batch norm it doubles block by block: 2·2⁶ = 128 expected after six
// (Prince, Understanding Deep Learning, §11.4).
func Example() {
	rng := tensor.NewRNG(1)
	x := ag.Constant(rng.Randn(1024, 64))
	for _, skip := range []bool{false, true} {
		net, err := mlp.New(mlp.Config{In: 64, Out: 10, Width: 64, Depth: 6, Skip: skip}, rng)
		if err != nil {
			log.Fatal(err)
		}
		acts := net.Activations(x)
		fmt.Printf("skip %v: variance after the input layer %.1f, after 6 blocks %.1f\n", skip, variance(acts[0]), variance(acts[len(acts)-1]))
	}
	// Output:
	// skip false: variance after the input layer 1.9, after 6 blocks 2.6
	// skip true: variance after the input layer 1.9, after 6 blocks 90.3
}
