package kernels

import "syscall"

// osYield gives the core to another runnable thread of the machine, if
// the kernel has one waiting on it (sched_yield).
func osYield() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
