package rdbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a master, one replica of it and one Sentinel watching them under MasterName.
type Sentinel struct {
	// MasterName is the name the Sentinel watches the master under.
	MasterName string
	// Master and Replica are the data servers; Failover swaps them.
	Master, Replica *Server
	sentinel        *Server
}

// StartSentinel starts a master, a replica (--replicaof) and a Sentinel (redis-server --sentinel,
// quorum 1) for the test, and stops them when it ends. It returns once the replica is in sync and
// the Sentinel knows it, so Failover can promote it at once.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	need(tb, "redis-server")
	dir := tb.TempDir()
	s := &Sentinel{MasterName: "mymaster"}
	tb.Cleanup(s.Stop)
	err := retryPorts(func() error {
		s.Stop() // the servers of a failed try
		ports, err := freePorts(3)
		if err != nil {
			return err
		}
		sub := func(name string) string {
			d := filepath.Join(dir, fmt.Sprintf("%s-%d", name, ports[0]))
			os.MkdirAll(d, 0o755)
			return d
		}
		// No delay before a full sync (Redis waits 5s for more replicas by default).
		fast := []string{"--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"}
		s.Master = newServer(sub("master"), ports[0], fast...)
		if err := s.Master.start(); err != nil {
			return err
		}
		s.Replica = newServer(sub("replica"), ports[1], append(fast, "--replicaof", "127.0.0.1", fmt.Sprint(ports[0]))...)
		if err := s.Replica.start(); err != nil {
			return err
		}
		// The Sentinel rewrites its configuration file (known replicas, epochs), so it gets
		// its own writable copy.
		sdir := sub("sentinel")
		conf := filepath.Join(sdir, "sentinel.conf")
		text := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %q
logfile %q
sentinel monitor %s 127.0.0.1 %d 1
sentinel down-after-milliseconds %[4]s 1000
sentinel failover-timeout %[4]s 5000
`, ports[2], sdir, filepath.Join(sdir, "redis.log"), s.MasterName, ports[0])
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return err
		}
		s.sentinel = &Server{Addr: fmt.Sprintf("127.0.0.1:%d", ports[2]), dir: sdir, port: ports[2], args: []string{conf, "--sentinel"}}
		return s.sentinel.start()
	})
	if err != nil {
		tb.Fatal(err)
	}
	s.waitReady(tb)
	return s
}

// Addrs returns the Sentinels' addresses.
func (s *Sentinel) Addrs() []string { return []string{s.sentinel.Addr} }

// waitReady waits until the replica is in sync and the Sentinel sees it as a healthy replica.
func (s *Sentinel) waitReady(tb testing.TB) {
	tb.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinel.Addr})
	defer sc.Close()
	mc := redis.NewClient(&redis.Options{Addr: s.Master.Addr})
	defer mc.Close()
	replica := fmt.Sprintf("port=%d,state=online", s.Replica.port)
	waitFor(tb, 20*time.Second, "the replica to sync and the Sentinel to know it", func() error {
		info, err := mc.Info(context.Background(), "replication").Result()
		if err != nil || !strings.Contains(info, replica) {
			return fmt.Errorf("master replication info %q (err %v)", info, err)
		}
		reps, err := sc.Replicas(context.Background(), s.MasterName).Result()
		for _, r := range reps {
			if r["port"] == fmt.Sprint(s.Replica.port) && r["flags"] == "slave" && r["master-link-status"] == "ok" {
				return nil
			}
		}
		return fmt.Errorf("the Sentinel's replicas: %v (err %v)", reps, err)
	})
}

// Failover makes the Sentinel promote the replica (SENTINEL FAILOVER) and waits until the
// Sentinel names it as the master and it has taken the role; Master and Replica are then swapped.
// The old master stays up and becomes a replica of the new one when the Sentinel reconfigures it.
func (s *Sentinel) Failover(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinel.Addr})
	defer sc.Close()
	nc := redis.NewClient(&redis.Options{Addr: s.Replica.Addr})
	defer nc.Close()
	waitFor(tb, 10*time.Second, "the Sentinel to accept the failover", func() error {
		return sc.Failover(ctx, s.MasterName).Err() // NOGOODSLAVE while it re-checks the replica
	})
	waitFor(tb, 20*time.Second, "the replica to become the master", func() error {
		addr, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		if err != nil || len(addr) != 2 || addr[0]+":"+addr[1] != s.Replica.Addr {
			return fmt.Errorf("the Sentinel names %v as the master (err %v)", addr, err)
		}
		if info, _ := nc.Info(ctx, "replication").Result(); !strings.Contains(info, "role:master") {
			return fmt.Errorf("the promoted replica says %q", info)
		}
		return nil
	})
	s.Master, s.Replica = s.Replica, s.Master
}

// Stop kills the Sentinel and the servers.
func (s *Sentinel) Stop() {
	for _, srv := range []*Server{s.sentinel, s.Replica, s.Master} {
		if srv != nil {
			srv.Stop()
		}
	}
}

// waitFor polls cond every 20ms until it returns nil, failing the test with its last error
// after limit.
func waitFor(tb testing.TB, limit time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("waited %s for %s: %v", limit, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
