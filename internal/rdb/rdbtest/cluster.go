package rdbtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of three masters on loopback ports, without replicas (StartCluster)
// or with one replica each (StartClusterReplicas). Every node keeps an append-only file synced on
// every write, so a node stopped (killed) and started again comes back with every write it
// acknowledged.
type Cluster struct {
	nodes    []*Server
	admin    *redis.ClusterClient
	replicas int // per master
}

// StartCluster starts a Cluster for the test and stops it when the test ends. It takes about
// two seconds (redis-cli's cluster creation waits in steps of a second); tests that only need an
// empty cluster share one through SharedCluster.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	need(tb, "redis-server", "redis-cli")
	c, err := startCluster(tb.TempDir(), 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// StartClusterReplicas starts a Cluster of three masters with one replica each, for failover
// tests: a master killed (StopNode) is replaced by its replica about three seconds later (node
// timeout 2s, then the election). It returns once every replica is in sync.
func StartClusterReplicas(tb testing.TB) *Cluster {
	tb.Helper()
	need(tb, "redis-server", "redis-cli")
	c, err := startCluster(tb.TempDir(), 1)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	return c
}

func startCluster(dir string, replicas int) (*Cluster, error) {
	c := &Cluster{replicas: replicas}
	n := 3 * (1 + replicas)
	err := retryPorts(func() error {
		c.Stop() // the nodes of a failed try
		c.nodes = nil
		ports, err := freePorts(2 * n) // n client ports, n cluster bus ports
		if err != nil {
			return err
		}
		for i, port := range ports[:n] {
			nodeDir := filepath.Join(dir, strconv.Itoa(port))
			if err := os.MkdirAll(nodeDir, 0o755); err != nil {
				return err
			}
			s := newServer(nodeDir, port,
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
				"--cluster-port", strconv.Itoa(ports[n+i]),
				"--cluster-node-timeout", "2000",
				"--appendonly", "yes", "--appendfsync", "always", "--save", "")
			if err := s.start(); err != nil {
				return err
			}
			c.nodes = append(c.nodes, s)
		}
		return nil
	})
	if err != nil {
		c.Stop()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append(append([]string{"--cluster", "create"}, c.Addrs()...), "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.admin = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	if err := c.waitOK(); err != nil {
		c.Stop()
		return nil, err
	}
	if replicas > 0 {
		if err := c.waitSynced(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// waitSynced waits until every replica's link to its master is up: a replica not yet in sync
// cannot be promoted when its master is killed.
func (c *Cluster) waitSynced() error {
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.nodes {
		nc := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		for {
			repl, err := nc.Info(context.Background(), "replication").Result()
			if err == nil && (strings.Contains(repl, "role:master") || strings.Contains(repl, "master_link_status:up")) {
				break
			}
			if time.Now().After(deadline) {
				nc.Close()
				return fmt.Errorf("cluster node %s not in sync within 20s (err %v): %s", n.Addr, err, repl)
			}
			time.Sleep(20 * time.Millisecond)
		}
		nc.Close()
	}
	return nil
}

// Addrs returns the nodes' addresses (host:port).
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Client returns a Cluster client, closed when the test ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// NodeFor returns the address of the master that holds key's slot.
func (c *Cluster) NodeFor(tb testing.TB, key string) string {
	tb.Helper()
	n, err := c.admin.MasterForKey(context.Background(), key)
	if err != nil {
		tb.Fatalf("the master for %s: %v", key, err)
	}
	return n.Options().Addr
}

// StopNode kills the node at addr, as a crash would.
func (c *Cluster) StopNode(tb testing.TB, addr string) {
	tb.Helper()
	c.node(tb, addr).Stop()
}

// StartNode starts the stopped node at addr again (same port, same files: its append-only file
// brings its data back) and waits until every node reports the cluster ok.
func (c *Cluster) StartNode(tb testing.TB, addr string) {
	tb.Helper()
	c.node(tb, addr).Restart(tb)
	if err := c.waitOK(); err != nil {
		tb.Fatal(err)
	}
}

func (c *Cluster) node(tb testing.TB, addr string) *Server {
	tb.Helper()
	i := slices.IndexFunc(c.nodes, func(s *Server) bool { return s.Addr == addr })
	if i < 0 {
		tb.Fatalf("%s is not a node of the cluster %v", addr, c.Addrs())
	}
	return c.nodes[i]
}

// Flush empties the cluster (FLUSHALL on every master), first starting any node a test left
// stopped.
func (c *Cluster) Flush(tb testing.TB) {
	tb.Helper()
	restarted := false
	for _, n := range c.nodes {
		if !n.Running() {
			n.Restart(tb)
			restarted = true
		}
	}
	if restarted {
		if err := c.waitOK(); err != nil {
			tb.Fatal(err)
		}
	}
	err := c.admin.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		return m.FlushAll(ctx).Err()
	})
	if err != nil {
		tb.Fatalf("emptying the cluster: %v", err)
	}
}

// WaitOK waits until every running node's CLUSTER INFO says cluster_state:ok (after a master is
// killed: once its replica has taken over its slots).
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	if err := c.waitOK(); err != nil {
		tb.Fatal(err)
	}
}

// WaitFailover waits, after StopNode of the master at dead, until a replica has taken its slots
// over: every running node reports cluster_state:ok and no slot is served by dead any more. It
// returns when the first node reported so (the others learn it by gossip, a moment later).
func (c *Cluster) WaitFailover(tb testing.TB, dead string) (first time.Time) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.nodes {
		if !n.Running() {
			continue
		}
		nc := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		for {
			info, err := nc.ClusterInfo(context.Background()).Result()
			done := err == nil && strings.Contains(info, "cluster_state:ok")
			if done {
				slots, err := nc.ClusterSlots(context.Background()).Result()
				done = err == nil
				for _, r := range slots {
					if len(r.Nodes) > 0 && r.Nodes[0].Addr == dead {
						done = false
					}
				}
			}
			if done {
				if first.IsZero() {
					first = time.Now()
				}
				break
			}
			if time.Now().After(deadline) {
				nc.Close()
				tb.Fatalf("no failover of %s seen by %s within 30s (err %v): %s", dead, n.Addr, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
		nc.Close()
	}
	return first
}

// waitOK waits until every running node's CLUSTER INFO says cluster_state:ok. A restarted master
// refuses writes for two seconds after it starts (Redis lets the cluster reconfigure it first).
func (c *Cluster) waitOK() error {
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.nodes {
		if !n.Running() {
			continue
		}
		nc := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		for {
			info, err := nc.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				nc.Close()
				return fmt.Errorf("cluster node %s not ok within 20s (err %v): %s\nlog: %s", n.Addr, err, info, n.logTail())
			}
			time.Sleep(20 * time.Millisecond)
		}
		nc.Close()
	}
	return nil
}

// Stop kills every node.
func (c *Cluster) Stop() {
	if c.admin != nil {
		c.admin.Close()
		c.admin = nil
	}
	for _, n := range c.nodes {
		n.Stop()
	}
}

// shared is the test binary's one Cluster, for the cluster backend.
var shared struct {
	once sync.Once
	c    *Cluster
	dir  string
	err  error
}

// sharedPrefix starts the shared Cluster's directory name, followed by the test binary's pid.
const sharedPrefix = "rdbtest-cluster-"

// SharedCluster returns the test binary's one Cluster, started on first use (about two
// seconds) and emptied for each caller (see Flush). Tests must not run in parallel on it. Its
// nodes are stopped by Main, or else by the kernel when the test binary exits (Linux); its
// directory is then removed by the next test binary that starts a shared Cluster.
func SharedCluster(tb testing.TB) *Cluster {
	tb.Helper()
	need(tb, "redis-server", "redis-cli")
	shared.once.Do(func() {
		removeStale()
		shared.dir, shared.err = os.MkdirTemp("", fmt.Sprintf("%s%d-", sharedPrefix, os.Getpid()))
		if shared.err == nil {
			shared.c, shared.err = startCluster(shared.dir, 0)
		}
	})
	if shared.err != nil {
		tb.Fatalf("starting the shared cluster: %v", shared.err)
	}
	shared.c.Flush(tb)
	return shared.c
}

// removeStale removes the directories of shared Clusters whose test binary has ended.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), sharedPrefix+"*"))
	for _, d := range dirs {
		pid, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), sharedPrefix), "-")
		if n, err := strconv.Atoi(pid); ok && err == nil && n != os.Getpid() && !processAlive(n) {
			os.RemoveAll(d)
		}
	}
}

// Main runs a package's tests, then stops the shared Cluster and removes its files; call it
// from TestMain in packages whose tests use the cluster backend:
//
//	func TestMain(m *testing.M) { rdbtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		shared.c.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}
