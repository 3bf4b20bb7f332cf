//go:build linux

package executor

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// On Linux every exec job runs under a supervisor: the program that links this package (batchy)
// re-executed as "<program> batchy-supervise <kill grace> -- <command...>". The supervisor is a
// child subreaper (PR_SET_CHILD_SUBREAPER), so every process the job starts, even one that
// double-forks or calls setsid to leave its process group, stays its descendant; and it is the
// only one that can wait for them all (wait4 answers ECHILD once none is left). It kills them all
// when the job's leader exits, when batchy asks (timeout, cancel), and when batchy dies: batchy
// holds the write end of its control pipe, which the kernel closes when batchy exits, even by
// kill -9 (PR_SET_PDEATHSIG is a second signal of that). Only after the last descendant is reaped
// does it report the leader's exit status and exit, so "the supervisor has exited" means "no
// process of the job is left".
//
// It is written here because nothing fits: tini and dumb-init are separate C programs to ship and
// know nothing of batchy's death, and Go packages such as go-reaper only reap zombies.
//
// The supervisor's file descriptors: 0 /dev/null, 1 and 2 the job's output pipes (handed to the
// job), 3 the control pipe (a byte: stop; EOF: batchy is gone), 4 the report pipe, one line per
// event: "pid <n>" once the job started, then "exit <code>", "signal <n>" or "start <error>".

// supervisorArg, as the first argument, makes the program the supervisor. It is recognised in
// init, so any binary linking this package (batchy, and the test binaries that run exec jobs)
// can be re-executed as one without a hook in its main.
const supervisorArg = "batchy-supervise"

func init() {
	if len(os.Args) > 1 && os.Args[1] == supervisorArg {
		os.Exit(supervise(os.Args[2:]))
	}
}

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// supervise is the supervisor's main: args are the kill grace, "--" and the command.
func supervise(args []string) int {
	if len(args) < 3 || args[1] != "--" {
		fmt.Fprintln(os.Stderr, "batchy-supervise is started by batchy for each exec job, not by hand")
		return 2
	}
	grace, err := time.ParseDuration(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "batchy-supervise: bad kill grace:", err)
		return 2
	}
	argv := args[2:]
	ctl, report := os.NewFile(3, "control"), os.NewFile(4, "report")
	// Neither pipe may reach the job: it would keep batchy's death from reading as EOF here.
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	parent := os.Getppid()
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		fmt.Fprintf(report, "start cannot become a child subreaper: %v\n", e)
		return 0
	}
	// Listen for batchy before starting the job, so that no stop request is missed.
	stop := make(chan struct{}, 1)
	go func() {
		b := make([]byte, 1)
		for {
			// A byte is a stop request; EOF or an error means batchy is gone: stop as well.
			_, err := ctl.Read(b)
			select {
			case stop <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for sig := range sigs {
			// PR_SET_PDEATHSIG (SIGTERM) fires when the thread that started us exits, which is
			// not always batchy's death: a SIGTERM counts only once we have a new parent. SIGINT
			// and SIGHUP (an operator's) stop the job.
			if sig == syscall.SIGTERM && os.Getppid() == parent {
				continue
			}
			select {
			case stop <- struct{}{}:
			default:
			}
		}
	}()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(report, "start %s\n", oneLine(err.Error()))
		return 0
	}
	leader := cmd.Process.Pid
	fmt.Fprintf(report, "pid %d\n", leader)

	type exit struct {
		pid int
		ws  syscall.WaitStatus
	}
	// Every descendant whose parent dies becomes our child: wait4(-1) reaps them all, and ECHILD
	// means none is left. cmd.Wait is never called: this loop reaps the leader too.
	reaped := make(chan exit)
	go func() {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, 0, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				close(reaped)
				return
			}
			reaped <- exit{pid, ws}
		}
	}()

	var status syscall.WaitStatus
	var graceOver, sweep <-chan time.Time
	stopping := false
	startSweep := func() {
		killDescendants(leader, syscall.SIGKILL)
		if sweep == nil {
			t := time.NewTicker(10 * time.Millisecond) // catches processes forked meanwhile
			sweep = t.C
		}
	}
	for {
		select {
		case e, ok := <-reaped:
			if !ok {
				switch {
				case status.Exited():
					fmt.Fprintf(report, "exit %d\n", status.ExitStatus())
				case status.Signaled():
					fmt.Fprintf(report, "signal %d\n", int(status.Signal()))
				}
				return 0
			}
			if e.pid == leader {
				// The job is over: whatever it left behind (a background "cmd &", a daemon that
				// called setsid or double-forked) is killed.
				status = e.ws
				startSweep()
			}
		case <-stop:
			if !stopping {
				stopping = true
				killDescendants(leader, syscall.SIGTERM)
				graceOver = time.After(grace)
			}
		case <-graceOver:
			startSweep()
		case <-sweep:
			killDescendants(leader, syscall.SIGKILL)
		}
	}
}

// killDescendants sends sig to the job's process group and to every descendant of this process,
// wherever its group or session.
func killDescendants(leader int, sig syscall.Signal) {
	syscall.Kill(-leader, sig)
	for _, pid := range descendants(os.Getpid()) {
		syscall.Kill(pid, sig)
	}
}

// descendants lists the processes below root, from /proc.
func descendants(root int) []int {
	procs, _ := readProcs()
	children := map[int][]int{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// proc is an exec job started under its supervisor.
type proc struct {
	cmd    *exec.Cmd // the supervisor
	ctl    *os.File  // write end of the supervisor's control pipe
	exited chan struct{}
	// Set before exited is closed.
	jobPID  int
	outcome string // the supervisor's last report line; "" when it died without one
	waitErr error  // the supervisor's own exit
}

// startProc starts argv under a supervisor, with the job's output to stdout and stderr.
func startProc(argv []string, dir string, env []string, stdout, stderr *os.File, opts ExecOptions) (*proc, error) {
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, err
	}
	// /proc/self/exe is this very program even when its file was replaced by an upgrade.
	cmd := exec.Command("/proc/self/exe", append([]string{supervisorArg, opts.KillGrace.String(), "--"}, argv...)...)
	cmd.Args[0] = os.Args[0]
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{ctlR, repW}
	// Its own process group keeps a terminal's Ctrl-C for batchy, which then stops its jobs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	err = cmd.Start()
	ctlR.Close()
	repW.Close()
	if err != nil {
		ctlW.Close()
		repR.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, ctl: ctlW, exited: make(chan struct{})}
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(repR)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "pid "); ok {
				p.jobPID, _ = strconv.Atoi(v)
			} else {
				p.outcome = line
			}
		}
		repR.Close()
		p.waitErr = cmd.Wait()
	}()
	return p, nil
}

// stop asks the supervisor to stop the job: SIGTERM to all its processes, SIGKILL after the grace.
func (p *proc) stop() { p.ctl.Write([]byte{'t'}) }

// finish waits, at most max, for the supervisor to be done, then returns the job's exit code and
// error. A supervisor that does not exit in time, or that died without reporting (someone killed
// it), is killed along with the job's process group: the descendants that left the group are then
// out of reach, which is said in the error.
func (p *proc) finish(max time.Duration, opts ExecOptions) (int, error) {
	defer p.ctl.Close()
	select {
	case <-p.exited:
	case <-time.After(max):
		p.cmd.Process.Kill()
		<-p.exited
	}
	if p.outcome == "" {
		if p.jobPID > 0 {
			killGroup(p.jobPID, opts.ReapWait)
		}
		return -1, fmt.Errorf("the job's supervisor ended without reporting (%v): processes of the job that left its process group may survive", p.waitErr)
	}
	verb, arg, _ := strings.Cut(p.outcome, " ")
	n, _ := strconv.Atoi(arg)
	switch verb {
	case "exit":
		if n == 0 {
			return 0, nil
		}
		return n, fmt.Errorf("exit status %d", n)
	case "signal":
		return -1, fmt.Errorf("signal: %v", syscall.Signal(n))
	}
	return -1, fmt.Errorf("start: %s", arg)
}
