package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// freePort returns a loopback port nobody listens on now, never Redis's default 6379.
func freePort() (int, error) {
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != 6379 {
			return port, nil
		}
	}
	return 0, errors.New("no free port other than 6379")
}

// process is a child process the bench started; stop ends it (SIGTERM, then SIGKILL).
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer // its stderr and stdout, for a failure's message
}

func start(name string, env []string, bin string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), log: &out}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) stop() {
	if p == nil || p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// output returns the last lines the process wrote, for an error message.
func (p *process) output() string {
	s := strings.TrimSpace(p.log.String())
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// startRedis starts a throwaway redis-server on a free loopback port: no persistence.
func startRedis(ctx context.Context, bin, dir string) (*process, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	p, err := start("redis-server", nil, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	if err != nil {
		return nil, "", err
	}
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	if err := waitRedis(ctx, url, p); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("redis-server did not answer on port %d: %v: %s", port, err, p.output())
	}
	return p, url, nil
}

// buildBatchy builds ./cmd/batchy into dir.
func buildBatchy(dir string) (string, error) {
	bin := filepath.Join(dir, "batchy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/batchy")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/batchy: %w", err)
	}
	return bin, nil
}

// startFloor builds and runs the floor server (bench/floor) on a free port against redisURL.
func startFloor(ctx context.Context, dir, redisURL string) (*process, string, error) {
	bin := filepath.Join(dir, "floor")
	cmd := exec.Command("go", "build", "-o", bin, "./bench/floor")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, "", fmt.Errorf("go build ./bench/floor: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := start("floor", nil, bin, "--addr", addr, "--redis-url", redisURL)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := waitReady(ctx, p, base); err != nil {
		return nil, "", fmt.Errorf("the floor server: %w", err)
	}
	return p, base, nil
}

// serveFlags returns the flags batchy serve knows, from its --help.
func serveFlags(bin string) string {
	out, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	return string(out)
}

// startBatchy runs batchy serve on a free port and waits until it answers /readyz.
func startBatchy(ctx context.Context, env []string, bin string, args ...string) (*process, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args = append([]string{"serve", "--addr", addr, "--scheduler", "off", "--log-level", "warn"}, args...)
	p, err := start("batchy", env, bin, args...)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := waitReady(ctx, p, base); err != nil {
		return nil, "", fmt.Errorf("batchy serve: %w", err)
	}
	return p, base, nil
}

// waitReady waits until the server p runs at base answers /readyz with 200, for 15 s at most; on
// failure it stops p.
func waitReady(ctx context.Context, p *process, base string) error {
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() || time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("not ready on %s: %s", base, p.output())
		}
	}
}

// rssBytes reads a process's resident set size (VmRSS) from /proc.
func rssBytes(pid int) (int64, error) {
	return procStatus(pid, "VmRSS:")
}

func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			parts := strings.Fields(rest)
			if len(parts) == 0 {
				break
			}
			kb, err := strconv.ParseInt(parts[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// cpuTime returns a process's user+system CPU time so far, from /proc/<pid>/stat.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

// cpuNS returns the CPU time (ns) of a process's live threads: the first field of each
// /proc/<pid>/task/<tid>/schedstat, summed. Precise to the nanosecond, unlike /proc/<pid>/stat's
// clock ticks, but a thread that exits takes its time with it: used for single requests only.
func cpuNS(pid int) int64 {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var sum int64
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(data))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sum += n
		}
	}
	return sum
}

// Machine describes where the figures come from.
type Machine struct {
	CPU, Kernel, GoVersion, Redis, Date string
	// LoadStart and LoadEnd are the 1-minute load averages before and after the run.
	LoadStart, LoadEnd string
	Cores              int
}

func describeMachine(redisBin string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Date: time.Now().UTC().Format("2006-01-02 15:04 MST")}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	if out, err := exec.Command(redisBin, "--version").Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if v, ok := strings.CutPrefix(f, "v="); ok {
				m.Redis = v
			}
		}
	}
	m.LoadStart = loadAverage()
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(data))
	}
	return m
}

// loadAverage returns the 1-minute load average from /proc/loadavg.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
