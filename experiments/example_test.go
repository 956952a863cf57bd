package experiments_test

import (
	"fmt"
	"log"

	"github.com/residual-nn/residual/experiments"
)

// Bottleneck counts He et al. 2015's blocks and networks (no training;
// about ten seconds on two cores): the bottleneck block of Fig. 5 costs
// less than the basic block beside it. Its numbers, claims (claims.json)
// and summary (summary.md) go to the folder given.
func ExampleBottleneck() {
	res, err := experiments.Bottleneck("runs/bottleneck")
	if err != nil {
		log.Fatal(err)
	}
	for _, b := range res.Blocks {
		fmt.Printf("%s: %d parameters, %d multiply-adds\n", b.Name, b.Params, b.MultAdds)
	}
	for _, c := range res.Claims {
		fmt.Printf("%v: %s (measured %g, %s)\n", c.Pass, c.Claim, c.Measured, c.Criterion)
	}
}

// A claim sets a measured number against what a paper says, with the
// criterion it must meet; experiments write theirs to claims.json.
func ExampleWithin() {
	c := experiments.Within("ResNet-50 has 3.8 G multiply-adds at 224×224", "He et al. 2015, Table 1", 3.86, 3.8, 0.1)
	fmt.Println(c.Pass, c.Criterion)
	c = experiments.AtMost("deleting one block raises the test error by at most 1 point", "Veit et al. 2016, Fig. 3", 1.7, 1)
	fmt.Println(c.Pass, c.Criterion)
	// Output:
	// true 3.8 ± 0.1
	// false ≤ 1
}
