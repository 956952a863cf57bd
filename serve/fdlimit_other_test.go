//go:build !unix

package serve

import "errors"

// descriptorLimit: no getrlimit(2) here.
func descriptorLimit() (int, error) {
	return 0, errors.New("no descriptor limit to read on this platform")
}
