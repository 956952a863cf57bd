//go:build mpi && cgo && !mpich && !mpicc

package distributed

// Open MPI, found by pkg-config under its own name (Debian's and
// Ubuntu's libopenmpi-dev, Fedora's openmpi-devel, Homebrew, Spack).

// #cgo pkg-config: ompi-c
import "C"
