//go:build mpi && cgo && mpicc

package distributed

// Any other MPI (-tags mpi,mpicc): no pkg-config; the compiler wrapper
// supplies the flags, as in CC=mpicc go build -tags mpi,mpicc, or
// CGO_CFLAGS and CGO_LDFLAGS do.
import "C"
