//go:build unix

package serve

import "syscall"

// descriptorLimit returns the process's soft limit on open descriptors.
func descriptorLimit() (int, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return int(min(rl.Cur, 1<<30)), nil
}
