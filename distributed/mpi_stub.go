//go:build !mpi || !cgo

package distributed

import "errors"

// MPIAvailable reports whether this binary was built with MPI (-tags mpi
// and cgo).
const MPIAvailable = false

func initMPI(Options) (Comm, error) {
	return nil, errors.New("distributed: this binary was built without MPI: build it with CGO_ENABLED=1 go build -tags mpi (and Open MPI's or MPICH's development files installed)")
}
