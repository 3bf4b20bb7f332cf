package executor

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Names of the variables exec sets for every task, besides the batch's.
const (
	EnvRunID   = "BATCHY_RUN_ID"
	EnvAttempt = "BATCHY_ATTEMPT"
)

// Defaults of ExecOptions.
const (
	DefaultKillGrace   = 2 * time.Second
	DefaultOutputGrace = 2 * time.Second
	DefaultReapWait    = 5 * time.Second
)

// ExecOptions tunes how exec stops processes; the zero value means the defaults.
type ExecOptions struct {
	// KillGrace is how long the job's processes have to exit after SIGTERM (sent to them all on
	// timeout, cancellation or batchy's death) before they get SIGKILL; zero means
	// DefaultKillGrace.
	KillGrace time.Duration
	// OutputGrace bounds the wait for stdout and stderr to reach EOF once the job's processes are
	// gone: a process outside the job may have been handed them and hold them open forever. Zero
	// means DefaultOutputGrace. It plays the part of exec.Cmd.WaitDelay, which does not apply here
	// because the pipes are read by this package rather than by os/exec.
	OutputGrace time.Duration
	// ReapWait bounds the wait, after SIGKILL, for the job's processes to be gone; zero means
	// DefaultReapWait.
	ReapWait time.Duration
}

func (o ExecOptions) withDefaults() ExecOptions {
	if o.KillGrace == 0 {
		o.KillGrace = DefaultKillGrace
	}
	if o.OutputGrace == 0 {
		o.OutputGrace = DefaultOutputGrace
	}
	if o.ReapWait == 0 {
		o.ReapWait = DefaultReapWait
	}
	return o
}

// execExecutor runs a command: under a supervisor on Linux, in its own process group elsewhere.
type execExecutor struct {
	argv    []string // program and arguments; a shell command is ["/bin/sh", "-c", script]
	dir     string
	env     []string // NAME=value, sorted by name
	timeout time.Duration
	opts    ExecOptions
}

// NewExec is the exec factory with the default ExecOptions. Settings:
//
//	command: [program, arg...]  # run without a shell; or a string with shell: true (/bin/sh -c)
//	shell: false
//	dir: /path                  # working directory; default: batchy's
//	env: {NAME: value}          # added after the batch's variables
//	timeout: 30m                # wins over the task's timeout
func NewExec(settings map[string]any) (Executor, error) {
	return ExecFactory(ExecOptions{})(settings)
}

// ExecFactory returns an exec factory with the given options.
func ExecFactory(opts ExecOptions) Factory {
	opts = opts.withDefaults()
	return func(m map[string]any) (Executor, error) {
		s := newSettings("exec", m, "command", "dir", "env", "shell", "timeout")
		e := &execExecutor{opts: opts}
		shell, err := s.boolean("shell")
		if err != nil {
			return nil, err
		}
		cmd, _ := s.get("command")
		switch c := cmd.(type) {
		case nil:
			return nil, s.errorf("command", "is required: a list [program, arg...], or a string with shell: true")
		case string:
			if !shell {
				return nil, s.errorf("command", "is a string, which would need a shell to split it: write a list [program, arg...], or add shell: true to run it with /bin/sh -c")
			}
			if strings.TrimSpace(c) == "" {
				return nil, s.errorf("command", "is empty")
			}
			e.argv = []string{"/bin/sh", "-c", c}
		case []any:
			if shell {
				return nil, s.errorf("command", "must be a string when shell is true (the script given to /bin/sh -c)")
			}
			if len(c) == 0 {
				return nil, s.errorf("command", "is an empty list: it needs at least a program")
			}
			for i, a := range c {
				str, ok := scalarString(a)
				if !ok {
					return nil, s.errorf("command", "item %d must be a string, not %s", i+1, kind(a))
				}
				if strings.IndexByte(str, 0) >= 0 {
					return nil, s.errorf("command", "item %d holds a NUL byte", i+1)
				}
				e.argv = append(e.argv, str)
			}
			if e.argv[0] == "" {
				return nil, s.errorf("command", "has an empty program name")
			}
		default:
			return nil, s.errorf("command", "must be a list [program, arg...] or a string with shell: true, not %s", kind(cmd))
		}
		if e.dir, _, err = s.str("dir"); err != nil {
			return nil, err
		}
		env, err := s.stringMap("env")
		if err != nil {
			return nil, err
		}
		for name, val := range env {
			if name == "" || strings.ContainsAny(name, "=\x00") {
				return nil, s.errorf("env", "name %q is not a valid variable name", clip(name))
			}
			if strings.IndexByte(val, 0) >= 0 {
				return nil, s.errorf("env", "%s holds a NUL byte", clip(name))
			}
			e.env = append(e.env, name+"="+val)
		}
		sort.Strings(e.env)
		if e.timeout, err = s.duration("timeout"); err != nil {
			return nil, err
		}
		if err := s.done(); err != nil {
			return nil, err
		}
		return e, nil
	}
}

// String describes the command, for logs.
func (e *execExecutor) String() string { return "exec " + strconv.Quote(strings.Join(e.argv, " ")) }

// Run starts the command and waits for it. Whatever happens, when Run returns no process of the
// job is left: on timeout or cancellation they all get SIGTERM, then SIGKILL after KillGrace; after
// the leader exits, anything it left behind (a background "cmd &", a process that called setsid)
// gets SIGKILL. On Linux a supervisor process sees to that (supervise_linux.go), and also when
// batchy itself dies; elsewhere the job's process group is what gets signalled (proc_group.go).
func (e *execExecutor) Run(ctx context.Context, t Task) Result {
	if ctx.Err() != nil {
		return Result{ExitCode: -1, Err: cancelled(ctx)}
	}
	log := &logger{f: t.Log}
	timeout := t.Timeout
	if e.timeout > 0 {
		timeout = e.timeout
	}

	env := append(os.Environ(), t.Env...)
	env = append(env, e.env...)
	env = append(env, EnvRunID+"="+t.RunID, EnvAttempt+"="+strconv.Itoa(t.Attempt))
	// Our own pipes, read until EOF: with os/exec's, Wait may close them while output is still
	// buffered, and a grandchild holding them open would block Wait.
	outR, outW, err := os.Pipe()
	if err != nil {
		return Result{ExitCode: -1, Err: fmt.Errorf("exec: %w", err)}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return Result{ExitCode: -1, Err: fmt.Errorf("exec: %w", err)}
	}
	p, err := startProc(e.argv, e.dir, env, outW, errW, e.opts)
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return Result{ExitCode: -1, Err: fmt.Errorf("start: %w", err)}
	}

	var readers sync.WaitGroup
	for _, p := range []struct {
		r      *os.File
		stream string
	}{{outR, "stdout"}, {errR, "stderr"}} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			scanLines(p.r, p.stream, log)
		}()
	}

	var expired <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	var stopErr error
	select {
	case <-p.exited:
	case <-expired:
		stopErr = &timeoutError{after: timeout}
	case <-ctx.Done():
		stopErr = cancelled(ctx)
	}
	if stopErr != nil {
		p.stop()
	}
	code, waitErr := p.finish(e.opts.KillGrace+e.opts.ReapWait, e.opts)

	// The job's processes are gone, so the pipes reach EOF at once unless something outside the
	// job holds them (or, without a supervisor, a process that left the group): give up on those
	// after OutputGrace.
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(e.opts.OutputGrace):
		now := time.Now()
		outR.SetReadDeadline(now)
		errR.SetReadDeadline(now)
		<-done
	}
	outR.Close()
	errR.Close()

	switch {
	case stopErr != nil:
		return Result{ExitCode: -1, Err: stopErr}
	case waitErr != nil:
		return Result{ExitCode: code, Err: waitErr}
	}
	return Result{}
}
