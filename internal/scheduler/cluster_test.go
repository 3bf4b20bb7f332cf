package scheduler_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
	"github.com/batchy/batchy/internal/scheduler"
)

func TestMain(m *testing.M) { rdbtest.Main(m) }

// TestClusterExactlyOnce: on a Redis Cluster, with the leader lease and the workflows on
// different nodes, three schedulers elect one leader and every fire time of every workflow
// runs once, its job's batch opened and closed.
func TestClusterExactlyOnce(t *testing.T) {
	c := rdbtest.SharedCluster(t)
	client := c.Client(t)
	e := &env{t: t, client: client, store: rdb.New(client, rdb.Options{})}
	keys := e.store.Keys()
	byNode := map[string]string{}
	for i := 0; len(byNode) < len(c.Addrs()) && i < 1000; i++ {
		wf := fmt.Sprintf("w%d", i)
		if node := c.NodeFor(t, keys.State(wf)); byNode[node] == "" {
			byNode[node] = wf
		}
	}
	t.Logf("leader lease on %s, workflows %v", c.NodeFor(t, keys.Leader()), byNode)
	clk := newClock(t0)
	s := []*scheduler.Scheduler{e.scheduler("s1", clk), e.scheduler("s2", clk), e.scheduler("s3", clk)}
	for _, wf := range byNode {
		e.load(wf, "batchy:\n  schedule: \"* * * * *\"\n  concurrency: allow\n  catchup: all\na:\n  run: {type: exec, command: [\"true\"]}\n")
	}
	tickAll := func() {
		var wg sync.WaitGroup
		for _, sc := range s {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := sc.Tick(ctx, clk.Now()); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for _, sc := range s {
			sc.Wait()
		}
	}
	tickAll()
	for i := 1; i <= 3; i++ {
		clk.Set(t0.Add(time.Duration(i) * time.Minute))
		tickAll()
	}
	tickAll() // the runs queued by the last fire start and finish
	leaders := 0
	for _, sc := range s {
		if sc.Leader() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders, want 1", leaders)
	}
	for _, wf := range byNode {
		seen := map[time.Time]int{}
		for _, r := range e.runs(s[0], wf) {
			if r.State != scheduler.StateSucceeded {
				t.Errorf("%s run %s: %s", wf, r.ID, r.State)
			}
			if r.FireTime != nil {
				seen[*r.FireTime]++
			}
		}
		for i := 1; i <= 3; i++ {
			if ft := t0.Add(time.Duration(i) * time.Minute); seen[ft] != 1 {
				t.Errorf("%s: fire time %s ran %d times, want once", wf, ft.Format("15:04"), seen[ft])
			}
		}
		if got := e.status(wf, "a"); got != batch.StatusSuccess {
			t.Errorf("%s: job status %s, want success", wf, got)
		}
	}
}
