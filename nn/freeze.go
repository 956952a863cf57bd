package nn

import (
	"fmt"
	"strings"
)

// Freeze stops training the parts of m whose names start with one of the
// given module prefixes ("layer1" covers "layer1.0.conv1.weight", not
// "layer10"; "" covers everything): their parameters need no gradient —
// so the backward pass computes none for them, and none through layers
// before them that are frozen too — and their batch norms stay in
// evaluation mode, using and keeping their running statistics, whatever
// SetTraining says (as fine-tuning recipes call .eval() on frozen batch
// norms). It returns how many parameters it froze, and an error if a
// prefix names nothing.
func Freeze(m any, prefixes ...string) (int, error) {
	under := func(name, prefix string) bool {
		return prefix == "" || name == prefix || strings.HasPrefix(name, prefix+".")
	}
	used := make([]bool, len(prefixes))
	n := 0
	for _, e := range StateDict(m) {
		for i, p := range prefixes {
			if under(e.Name, p) {
				used[i] = true
				if e.Param != nil && e.Param.RequiresGrad() {
					e.Param.SetRequiresGrad(false)
					n++
				}
			}
		}
	}
	for _, l := range Layers(m) {
		if bn, ok := l.Layer.(*BatchNorm); ok {
			for _, p := range prefixes {
				if under(l.Name, p) {
					bn.Frozen, bn.Training = true, false
				}
			}
		}
	}
	for i, ok := range used {
		if !ok {
			return n, fmt.Errorf("nn: Freeze: no parameter or buffer is named %q or under it", prefixes[i])
		}
	}
	return n, nil
}
