package rdb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestPingWrites: Ping is a write, so it fails, saying why and within about HealthTimeout, while
// a Redis that still answers PING cannot take one: paused for writes, made a replica, killed.
func TestPingWrites(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	other := rdbtest.StartRedis(t)
	c := srv.Client(t)
	s := rdb.New(c, rdb.Options{Replica: "r1"})
	admin := rdbtest.Dial(t, srv.Addr)
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if ttl, err := admin.PTTL(ctx, "batchy:{~}:health:r1").Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Errorf("health key TTL %v (err %v), want at most a minute", ttl, err)
	}

	fails := func(t *testing.T, want string) {
		t.Helper()
		start := time.Now()
		err := s.Ping(ctx)
		took := time.Since(start)
		if err == nil || batch.ErrorCode(err) != batch.EUNAVAILABLE || !strings.Contains(batch.ErrorMessage(err), want) {
			t.Fatalf("Ping: %v (%s), want unavailable saying %q", err, batch.ErrorMessage(err), want)
		}
		if took > rdb.HealthTimeout+300*time.Millisecond {
			t.Errorf("Ping took %s to fail, want about %s at most", took, rdb.HealthTimeout)
		}
		t.Logf("Ping failed after %s: %s", took.Round(time.Millisecond), batch.ErrorMessage(err))
	}
	recovers := func(t *testing.T) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for s.Ping(ctx) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("Ping still fails 5s after the store takes writes again: %v", s.Ping(ctx))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	t.Run("paused", func(t *testing.T) {
		if err := admin.Do(ctx, "client", "pause", 3000, "write").Err(); err != nil {
			t.Fatal(err)
		}
		fails(t, "did not take a write within")
		fails(t, "did not take a write within") // a second caller while the first write hangs
		if err := admin.Do(ctx, "client", "unpause").Err(); err != nil {
			t.Fatal(err)
		}
		recovers(t)
	})
	t.Run("replica", func(t *testing.T) {
		host, port, _ := strings.Cut(other.Addr, ":")
		if err := admin.SlaveOf(ctx, host, port).Err(); err != nil {
			t.Fatal(err)
		}
		fails(t, "read-only replica")
		if err := admin.SlaveOf(ctx, "no", "one").Err(); err != nil {
			t.Fatal(err)
		}
		recovers(t)
	})
	t.Run("killed", func(t *testing.T) {
		srv.Stop()
		fails(t, "did not answer")
		srv.Restart(t)
		recovers(t)
	})
}

// TestPingCluster: on a Cluster, Ping writes in every master's slot range, so a dead master fails
// it even though the other masters (and the slot of {~}) answer.
func TestPingCluster(t *testing.T) {
	cl := rdbtest.SharedCluster(t)
	s := rdb.New(cl.Client(t), rdb.Options{Replica: "r1"})
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// Every master got its key.
	for _, addr := range cl.Addrs() {
		keys, err := rdbtest.Dial(t, addr).Keys(ctx, "batchy:*:health:r1").Result()
		if err != nil || len(keys) != 1 {
			t.Errorf("node %s holds health keys %v (err %v), want one", addr, keys, err)
		}
	}
	// Kill a master that does not hold {~}: only the per-range writes can notice.
	idx := cl.NodeFor(t, "{~}")
	var victim string
	for _, a := range cl.Addrs() {
		if a != idx {
			victim = a
			break
		}
	}
	cl.StopNode(t, victim)
	start := time.Now()
	err := s.Ping(context.Background())
	if err == nil || batch.ErrorCode(err) != batch.EUNAVAILABLE {
		t.Fatalf("Ping with a master dead: %v, want unavailable", err)
	}
	t.Logf("Ping with a dead master failed after %s: %s", time.Since(start).Round(time.Millisecond), batch.ErrorMessage(err))
	cl.StartNode(t, victim)
	deadline := time.Now().Add(10 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ping still fails 10s after the master is back: %v", s.Ping(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
