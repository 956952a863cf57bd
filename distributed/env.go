package distributed

import (
	"fmt"
	"os"
	"strconv"
)

// Launcher is what the environment says about the program that started
// this process: its rank and the number of processes it started.
//
// With MPI, MPI_Init does the rendezvous itself (from the PMI/PMIx
// connection the launcher set up): Launcher is read only to choose a kind
// for KindAuto, to report, and to catch a multi-process launch of a
// binary built without MPI before it trains N independent copies.
type Launcher struct {
	// Name names the launcher: "Open MPI", "MPICH/Hydra" (MPICH, Intel
	// MPI and other PMI launchers), "Slurm srun".
	Name string
	// Rank and Size are this process's rank and the number of processes.
	Rank, Size int
	// LocalRank is the rank among the processes on this machine, -1 if
	// the launcher does not say.
	LocalRank int
	// Vars names the variables Rank, Size and LocalRank were read from.
	Vars string
	// KubeflowRole is the MPI Operator's K_MPI_JOB_ROLE ("launcher" or
	// "worker"), "" outside an MPIJob. The operator itself starts no
	// ranks: its launcher pod runs mpirun (or mpiexec), whose variables
	// give the rank.
	KubeflowRole string
}

// String describes l for a log line.
func (l Launcher) String() string {
	s := fmt.Sprintf("rank %d of %d, started by %s (%s)", l.Rank, l.Size, l.Name, l.Vars)
	if l.KubeflowRole != "" {
		s += ", Kubeflow MPIJob " + l.KubeflowRole
	}
	return s
}

// launcherVars lists, in the order they are tried, the variables each
// launcher sets in every process it starts.
var launcherVars = []struct {
	name, rank, size, local string
}{
	// Open MPI's mpirun/mpiexec (and so the MPI Operator's default
	// launcher, and srun for Open MPI jobs started by mpirun inside an
	// allocation).
	{"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
	// MPICH's Hydra (mpiexec.hydra), Intel MPI and MVAPICH: the PMI-1
	// variables.
	{"MPICH/Hydra", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
	// A task of an srun job step. SLURM_STEP_NUM_TASKS, not SLURM_NTASKS:
	// a batch script's own shell has SLURM_NTASKS and SLURM_PROCID=0 too,
	// but is no task of a step.
	{"Slurm srun", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID"},
}

// DetectLauncher reads the variables a launcher sets (through getenv,
// os.Getenv in a program): Open MPI's OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK,
// then MPICH/Hydra's PMI_RANK/PMI_SIZE/MPI_LOCALRANKID, then srun's
// SLURM_PROCID/SLURM_STEP_NUM_TASKS/SLURM_LOCALID, and the MPI Operator's
// K_MPI_JOB_ROLE. ok is false when no launcher's pair is set; an error
// says which variable holds a value that is no rank. A nil getenv reads
// the process's environment (os.Getenv).
func DetectLauncher(getenv func(string) string) (l Launcher, ok bool, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	role := getenv("K_MPI_JOB_ROLE")
	for _, v := range launcherVars {
		rs, ss := getenv(v.rank), getenv(v.size)
		if rs == "" || ss == "" {
			continue
		}
		rank, err1 := strconv.Atoi(rs)
		size, err2 := strconv.Atoi(ss)
		if err1 != nil || err2 != nil || size < 1 || rank < 0 || rank >= size {
			return Launcher{}, false, fmt.Errorf("%s: %s=%q and %s=%q are not a rank and a size", v.name, v.rank, rs, v.size, ss)
		}
		l = Launcher{Name: v.name, Rank: rank, Size: size, LocalRank: -1, Vars: v.rank + ", " + v.size, KubeflowRole: role}
		if s := getenv(v.local); s != "" {
			if lr, err := strconv.Atoi(s); err == nil && lr >= 0 {
				l.LocalRank = lr
				l.Vars += ", " + v.local
			}
		}
		return l, true, nil
	}
	if role == "launcher" {
		return Launcher{}, false, fmt.Errorf("running in a Kubeflow MPIJob's launcher pod (K_MPI_JOB_ROLE=launcher) but not under mpirun: the launcher's command must be mpirun … residual train --distributed mpi")
	}
	return Launcher{}, false, nil
}
