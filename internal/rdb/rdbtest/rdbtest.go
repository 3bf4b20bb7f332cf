// Package rdbtest starts the stores that tests run against: real redis-server processes on free
// loopback ports (never the shared 6379) as a single node, a three-master Cluster or a master
// and replica under Sentinel, and the embedded store.
//
// Without redis-server (and redis-cli for a Cluster) a test that needs one is skipped, except
// when CI=true, where that is a failure. Every server is killed when its test ends, and by the
// kernel when the test binary dies first (Linux), so no redis-server outlives `go test`.
package rdbtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/rdb"
)

// Server is a redis-server process (or a Sentinel) started for a test.
type Server struct {
	Addr string
	dir  string
	port int
	args []string // what it was started with; Restart starts it the same way
	proc *proc
}

// StartRedis starts a redis-server for the test and stops it when the test ends.
func StartRedis(tb testing.TB) *Server {
	tb.Helper()
	need(tb, "redis-server")
	dir := tb.TempDir()
	var s *Server
	err := retryPorts(func() error {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		s = newServer(dir, ports[0], "--save", "", "--appendonly", "no")
		return s.start()
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// newServer describes a redis-server on port, keeping its files (and log) in dir.
func newServer(dir string, port int, extra ...string) *Server {
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, port: port}
	s.args = append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log")}, extra...)
	return s
}

// start runs the server and waits until it answers PING (a server loading its data answers
// LOADING until it is done).
func (s *Server) start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return err
	}
	p, err := startProcess(exec.Command(bin, s.args...))
	if err != nil {
		return fmt.Errorf("starting redis-server on %s: %w", s.Addr, err)
	}
	s.proc = p
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		select {
		case <-p.exited:
			s.proc = nil
			return fmt.Errorf("%w: redis-server on %s: %s", errExited, s.Addr, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("redis-server on %s did not answer within 10s: %s", s.Addr, s.logTail())
		}
	}
	return nil
}

// logTail returns the end of the server's log, for failure messages.
func (s *Server) logTail() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// Stop kills the server (SIGKILL: what a crash looks like) and waits until it is gone.
func (s *Server) Stop() {
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
}

// Running reports whether the server was started and not stopped since.
func (s *Server) Running() bool { return s.proc != nil }

// Restart starts the server again after Stop, on the same port with the same files: a server
// with persistence (Cluster nodes keep an append-only file) gets its data back, StartRedis's
// server (no persistence) starts empty.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
}

// Client returns a client for the server, closed when the test ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	tb.Cleanup(func() { c.Close() })
	return c
}

// need skips the test when a binary is missing, or fails it when CI=true.
func need(tb testing.TB, bins ...string) {
	tb.Helper()
	for _, bin := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("%s is not installed, and CI=true forbids skipping the real-Redis tests", bin)
			}
			tb.Skipf("%s is not installed: skipping the real-Redis half (install the redis-server package to run it)", bin)
		}
	}
}

// errExited is a server that exited while starting, most likely because another process took
// its port between freePorts and the server's bind.
var errExited = errors.New("exited while starting")

// retryPorts runs start up to three times while servers exit on start (see errExited); start
// picks its ports anew each time.
func retryPorts(start func() error) error {
	var err error
	for range 3 {
		if err = start(); !errors.Is(err, errExited) {
			return err
		}
	}
	return err
}

// freePorts returns n distinct free loopback ports, holding each until all are chosen.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// proc is a started process; exited closes when it has ended and been reaped.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// spawner starts every process from one OS thread that lives as long as the test binary: the
// kernel sends the parent-death signal (sysProcAttr) when the thread that started a child ends,
// and Go ends a thread when a goroutine locked to it exits, which a test's code might do.
var spawner struct {
	once sync.Once
	req  chan spawn
}

type spawn struct {
	cmd  *exec.Cmd
	done chan error
}

// StartCmd starts cmd as cmd.Start does, but from a thread that never ends and, on Linux, with a
// parent-death signal: the process is killed when the test binary dies, even by a -timeout or a
// panic that skips the tests' cleanups. Tests that run servers (batchy, redis-server) use it.
func StartCmd(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.req = make(chan spawn)
		go func() {
			runtime.LockOSThread() // never unlocked: this goroutine and its thread never end
			for r := range spawner.req {
				r.done <- r.cmd.Start()
			}
		}()
	})
	cmd.SysProcAttr = sysProcAttr()
	done := make(chan error, 1)
	spawner.req <- spawn{cmd, done}
	return <-done
}

func startProcess(cmd *exec.Cmd) (*proc, error) {
	if err := StartCmd(cmd); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Backend is one kind of store the store tests run on.
type Backend struct {
	Name string
	// New returns an empty store's client; Embedded is set for the embedded backend. The
	// embedded and redis backends are new for each call; the cluster backend is the test
	// binary's one Cluster (SharedCluster), emptied by each call.
	New func(tb testing.TB) (redis.UniversalClient, *rdb.Embedded)
}

// Backends are the embedded store (with a data file), a real redis-server and a real Redis
// Cluster.
var Backends = []Backend{
	{Name: "embedded", New: func(tb testing.TB) (redis.UniversalClient, *rdb.Embedded) {
		e, err := rdb.StartEmbedded(filepath.Join(tb.TempDir(), "batchy.json"))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { e.Close() })
		return e.Client(), e
	}},
	{Name: "redis", New: func(tb testing.TB) (redis.UniversalClient, *rdb.Embedded) {
		return StartRedis(tb).Client(tb), nil
	}},
	{Name: "cluster", New: func(tb testing.TB) (redis.UniversalClient, *rdb.Embedded) {
		return SharedCluster(tb).Client(tb), nil
	}},
}

// EachBackend runs fn as a subtest on every backend.
func EachBackend(t *testing.T, fn func(t *testing.T, b Backend)) {
	for _, b := range Backends {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}
