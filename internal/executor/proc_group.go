//go:build !linux

package executor

import (
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Without Linux's child subreapers there is no supervisor: the job runs as batchy's child in its
// own process group, which is what gets signalled. A descendant that leaves the group (setsid)
// escapes, and the job does not outlive batchy's death only if it notices by itself.

// proc is an exec job started in its own process group.
type proc struct {
	cmd     *exec.Cmd
	opts    ExecOptions
	exited  chan struct{}
	waitErr error // set before exited is closed
}

func startProc(argv []string, dir string, env []string, stdout, stderr *os.File, opts ExecOptions) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	setGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, opts: opts, exited: make(chan struct{})}
	go func() { p.waitErr = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// stop sends SIGTERM to the group, and SIGKILL once the leader has had KillGrace to exit.
func (p *proc) stop() {
	pgid := p.cmd.Process.Pid
	signalGroup(pgid, syscall.SIGTERM)
	go func() {
		select {
		case <-p.exited:
		case <-time.After(p.opts.KillGrace):
			signalGroup(pgid, syscall.SIGKILL)
			p.cmd.Process.Kill() // without process groups (not Unix), the leader at least
		}
	}()
}

// finish waits, at most max, for the leader, kills what is left of its group and returns the
// leader's exit code and error.
func (p *proc) finish(max time.Duration, opts ExecOptions) (int, error) {
	select {
	case <-p.exited:
	case <-time.After(max):
		p.cmd.Process.Kill()
		<-p.exited
	}
	killGroup(p.cmd.Process.Pid, opts.ReapWait)
	if p.waitErr != nil {
		// *exec.ExitError: "exit status 3", or "signal: killed".
		return p.cmd.ProcessState.ExitCode(), p.waitErr
	}
	return 0, nil
}
