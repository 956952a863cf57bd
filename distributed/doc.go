// Package distributed holds what data-parallel training across processes
// and machines needs, with PyTorch DistributedDataParallel's design: a
// communicator (Comm) with the collectives, a Reducer that averages
// gradients over the ranks in buckets that overlap the backward pass, a
// Sampler that gives each rank its own shard of the data, and the
// start-up checks (CheckSame, BroadcastTensors) that make the ranks start
// from the same model and agree on their flags.
//
// # Communicators
//
// Init chooses the Comm: "none" (or "local", the default) is one process
// on its own, whose collectives do nothing; "mpi" is MPI_COMM_WORLD, in a
// binary built with -tags mpi (cgo, linking Open MPI by default: see
// docs/DISTRIBUTED.md), started by mpirun, srun or a Kubeflow MPIJob;
// "auto" is "mpi" when the environment shows a launcher that started more
// than one process (DetectLauncher), else "none". NewGroup makes the ranks
// of a group inside one process, for tests and for checking that N ranks
// compute what one process does.
//
// MPI is driven by one goroutine locked to its OS thread, which
// initialises MPI with MPI_THREAD_FUNNELED and makes every MPI call of the
// process; the other goroutines hand it operations. Collectives are
// non-blocking underneath (MPI_Iallreduce, MPI_Ibcast, MPI_Ibarrier), and
// the MPI goroutine polls them with MPI_Test, which both drives their
// progress (Open MPI and MPICH progress a collective only inside MPI
// calls) and lets it abort the job (MPI_Abort) when one waits longer than
// Options.Timeout. A rank that dies makes Open MPI's mpirun end the job
// (in about a second, measured by the tests); the timeout is for a rank
// that hangs.
//
// # Gradients
//
// NewReducer groups the parameters into buckets in reverse order, the
// first of about 1 MiB and the others of about 25 MiB; the training loop
// calls MarkReady as each gradient becomes final during the backward
// pass, which starts a bucket's all-reduce at its last gradient (and,
// while buckets are in flight, yields the processor so that the MPI
// goroutine can start and advance them even when the rank has one), and
// Wait before the optimizer step, which leaves every gradient averaged
// over the ranks. NoSync skips the exchange for gradient accumulation.
package distributed
