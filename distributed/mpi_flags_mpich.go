//go:build mpi && cgo && mpich && !mpicc

package distributed

// MPICH (-tags mpi,mpich), found by pkg-config (Debian's libmpich-dev).

// #cgo pkg-config: mpich
import "C"
