package notify_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/notify"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

func TestMain(m *testing.M) { rdbtest.Main(m) }

// TestClusterWakesAcrossNodes: on a Redis Cluster the hub's one subscription lives on one node
// while workflows live on all of them; a change on any node wakes its waiters (Redis Cluster
// forwards PUBLISH to every node). When the subscription's node dies, the hub subscribes again
// once it is back, wakes everyone, and notifications flow again.
func TestClusterWakesAcrossNodes(t *testing.T) {
	c := rdbtest.SharedCluster(t)
	client := c.Client(t)
	store := rdb.New(client, rdb.Options{})
	keys := store.Keys()
	hub := notify.NewHub(store, nil)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go hub.Run(runCtx)

	subNode := c.NodeFor(t, keys.Changed())
	var names []string
	seen := map[string]bool{}
	for i := 0; len(names) < len(c.Addrs()) && i < 1000; i++ {
		wf := fmt.Sprintf("w%d", i)
		if node := c.NodeFor(t, keys.State(wf)); !seen[node] {
			seen[node] = true
			names = append(names, wf)
		}
	}
	waiters := map[string]*notify.Waiter{}
	for _, wf := range names {
		waiters[wf] = hub.Watch(wf)
		defer waiters[wf].Stop()
	}
	if !signalled(waiters[names[0]], 5*time.Second) { // the first subscription wakes everyone
		t.Fatal("the hub did not subscribe")
	}
	for _, w := range waiters {
		drain(w)
	}
	change := func(wf string) error {
		_, err := store.Load(ctx, &batch.Workflow{Name: wf, Jobs: batch.Jobs{{Name: "a", Fields: batch.Fields{}}}}, false)
		return err
	}
	for _, wf := range names {
		if err := change(wf); err != nil {
			t.Fatal(err)
		}
		if !signalled(waiters[wf], 2*time.Second) {
			t.Errorf("a change of %s (on %s) did not wake its waiter (subscription on %s)", wf, c.NodeFor(t, keys.State(wf)), subNode)
		}
	}

	c.StopNode(t, subNode)
	for wf, w := range waiters {
		if !signalled(w, 5*time.Second) {
			t.Errorf("the waiter of %s was not woken when the subscription was lost", wf)
		}
	}
	c.StartNode(t, subNode)
	nc := rdbtest.Dial(t, subNode)
	deadline := time.Now().Add(10 * time.Second)
	for nc.PubSubNumSub(ctx, keys.Changed()).Val()[keys.Changed()] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the hub did not subscribe again after its node came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the new subscription's wake-up land
	for _, w := range waiters {
		drain(w)
	}
	for _, wf := range names {
		if err := change(wf); err != nil {
			t.Fatal(err)
		}
		if !signalled(waiters[wf], 2*time.Second) {
			t.Errorf("no notification for %s after the subscription's node came back", wf)
		}
	}
}
