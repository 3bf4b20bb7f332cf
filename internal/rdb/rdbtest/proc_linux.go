package rdbtest

import "syscall"

// sysProcAttr makes the kernel kill a started server when the test binary dies, even when it dies
// before its cleanups run (a panic, a -timeout, a kill): no redis-server outlives its test binary.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// processAlive reports whether a process with the id exists.
func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) != syscall.ESRCH
}
