// Package rdbtest starts the stores that tests run against: a real redis-server on a free
// loopback port (never the shared 6379) and the embedded store.
package rdbtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/rdb"
)

// Server is a redis-server process started for a test.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
	port int
}

// StartRedis starts a redis-server for the test and stops it when the test ends. Without a
// redis-server binary the test is skipped, except when CI=true, where that is a failure.
func StartRedis(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis-server is not installed, and CI=true forbids skipping the real-Redis tests")
		}
		tb.Skip("redis-server is not installed: skipping the real-Redis half (install redis-server to run it)")
	}
	s := &Server{dir: tb.TempDir(), port: freePort(tb)}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", s.port)
	s.start(tb, bin)
	tb.Cleanup(s.Stop)
	return s
}

func (s *Server) start(tb testing.TB, bin string) {
	tb.Helper()
	s.cmd = exec.Command(bin, "--port", fmt.Sprint(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--protected-mode", "yes")
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("starting redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			tb.Fatalf("redis-server on %s did not answer within 10s", s.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Restart starts the server again on the same port after Stop (its data is gone: persistence is
// off).
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	bin, _ := exec.LookPath("redis-server")
	s.start(tb, bin)
}

// Client returns a client for the server, closed when the test ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	tb.Cleanup(func() { c.Close() })
	return c
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Backend is one kind of store the store tests run on.
type Backend struct {
	Name string
	// New returns a fresh, empty client; Embedded is set for the embedded backend.
	New func(tb testing.TB) (redis.UniversalClient, *rdb.Embedded)
}

// Backends are the embedded store (with a data file) and a real redis-server.
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
}

// EachBackend runs fn as a subtest on every backend.
func EachBackend(t *testing.T, fn func(t *testing.T, b Backend)) {
	for _, b := range Backends {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}
