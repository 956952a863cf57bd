//go:build mpi && cgo && !mpich && !mpicc

package distributed

// The MPI library the mpi tag links: Open MPI by default, found by
// pkg-config under its own name (Debian's and Ubuntu's libopenmpi-dev,
// Fedora's openmpi-devel, Homebrew, Spack); MPICH with -tags mpi,mpich
// (mpi_flags_mpich.go); with -tags mpi,mpicc no pkg-config at all, for
// any other MPI-3 library whose compiler wrapper or CGO_CFLAGS and
// CGO_LDFLAGS give the flags (CC=mpicc go build -tags mpi,mpicc).

// #cgo pkg-config: ompi-c
import "C"
