//go:build !unix

package executor

import (
	"os/exec"
	"syscall"
	"time"
)

// Process groups are a Unix notion: elsewhere only the started process itself is killed (by
// proc.stop, after the grace period).

func setGroup(cmd *exec.Cmd) {}

func signalGroup(pgid int, sig syscall.Signal) bool { return false }

func killGroup(pgid int, max time.Duration) {}
