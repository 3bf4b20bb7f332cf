//go:build !linux

package rdbtest

import "syscall"

// sysProcAttr has no parent-death signal outside Linux: servers are stopped by the tests'
// cleanups and Main only.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// processAlive cannot tell outside Linux, so it says yes: stale directories are then kept.
func processAlive(int) bool { return true }
