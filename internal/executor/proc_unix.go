//go:build unix

package executor

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// setGroup makes the command the leader of a new process group, so that everything it starts
// can be signalled at once.
func setGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// signalGroup sends sig to every process of the group; false when the group has no process left.
func signalGroup(pgid int, sig syscall.Signal) bool {
	return syscall.Kill(-pgid, sig) != syscall.ESRCH
}

// killGroup SIGKILLs the group and waits, at most max, until none of its processes is alive, so
// that a retry never overlaps the previous attempt's processes. Zombies count as gone: their
// parent (often init) reaps them, and some container inits never do.
func killGroup(pgid int, max time.Duration) {
	if !signalGroup(pgid, syscall.SIGKILL) {
		return
	}
	deadline := time.Now().Add(max)
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// groupAlive reports whether a process of the group is still running: from /proc where there is
// one (Linux), otherwise from kill(-pgid, 0), which also counts zombies.
func groupAlive(pgid int) bool {
	procs, ok := readProcs()
	if !ok {
		return syscall.Kill(-pgid, 0) != syscall.ESRCH
	}
	for _, p := range procs {
		if p.pgrp == pgid && p.state != 'Z' && p.state != 'X' {
			return true
		}
	}
	return false
}

// procStat is what /proc/<pid>/stat says of a process that matters here.
type procStat struct {
	pid, ppid, pgrp int
	state           byte
}

// readProcs lists the processes /proc shows; ok is false without /proc (not Linux).
func readProcs() ([]procStat, bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false
	}
	var out []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so parse after
		// the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 3 || len(f[0]) == 0 {
			continue
		}
		p := procStat{pid: pid, state: f[0][0]}
		p.ppid, _ = strconv.Atoi(string(f[1]))
		p.pgrp, _ = strconv.Atoi(string(f[2]))
		out = append(out, p)
	}
	return out, true
}
