package rdb_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestSentinelFailover: a store connected through Sentinel keeps working after the Sentinel
// promotes the replica, with the data written (and replicated) before.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the failover test (about 5s)")
	}
	t.Parallel() // its own servers; overlaps with TestClusterFailover's wait for the restart
	s := rdbtest.StartSentinel(t)
	client, where, err := rdb.Connect(rdb.ConnectOptions{SentinelAddrs: s.Addrs(), SentinelMaster: s.MasterName})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	t.Logf("store on %s", where)
	store := rdb.New(client, rdb.Options{})
	f := &fixture{store: store, client: client}
	f.load(t, "w", "a: {}\nb: {}\n", false)
	opened, err := store.Open(ctx, "w", batch.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := store.End(ctx, "w", batch.EndRequest{Jobs: []string{"a"}, Status: batch.StatusSuccess, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	// Acknowledged by the replica before the failover: Sentinel promotes whatever the replica
	// has, so a write it has not received yet would be lost (Redis replication is asynchronous).
	if n, err := client.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v: the replica did not acknowledge", n, err)
	}

	s.Failover(t)

	// The client follows the Sentinel's switch (it listens for +switch-master and drops its
	// connections to the old master); until it has, calls may fail, but only as "unavailable".
	deadline := time.Now().Add(15 * time.Second)
	var st *batch.State
	for {
		if err = servedBy(ctx, client, s.Master.Addr); err == nil {
			if st, err = store.State(ctx, "w"); err == nil {
				break
			}
			if code := batch.ErrorCode(err); code != batch.EUNAVAILABLE {
				t.Fatalf("during the failover: %v (code %s), want unavailable", err, code)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not reach the new master %s within 15s: %v", s.Master.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if mustJSON(st) != mustJSON(closed) {
		t.Errorf("state after the failover:\n got %s\nwant %s", mustJSON(st), mustJSON(closed))
	}
	if _, err := store.End(ctx, "w", batch.EndRequest{Jobs: []string{"b"}, Status: batch.StatusFailed, Strict: true, BatchID: opened.LastBatchID}); err != nil {
		t.Fatalf("close after the failover: %v", err)
	}
	st, err = store.Open(ctx, "w", batch.OpenRequest{})
	if err != nil {
		t.Fatalf("open after the failover: %v", err)
	}
	if st.LastBatchID <= opened.LastBatchID {
		t.Errorf("batch id after the failover %d, before %d", st.LastBatchID, opened.LastBatchID)
	}
	hist, err := store.Batches(ctx, "w", batch.ListOptions{})
	if err != nil || len(hist) != 2 {
		t.Fatalf("history after the failover: %d batches (%v), want 2", len(hist), err)
	}
	for _, j := range hist[1].Jobs {
		want := map[string]string{"a": "success", "b": "failed"}[j.Name]
		if got, _ := j.Fields.String("status"); got != want {
			t.Errorf("first batch, job %s: status %s, want %s", j.Name, got, want)
		}
	}
}

// servedBy checks that the client's commands go to the server at addr.
func servedBy(ctx context.Context, c redis.UniversalClient, addr string) error {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return err
	}
	_, port, _ := strings.Cut(addr, ":")
	if !strings.Contains(info, "tcp_port:"+port+"\r\n") {
		return fmt.Errorf("the client is not on %s yet", addr)
	}
	return nil
}
