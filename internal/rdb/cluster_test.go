package rdb_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// onEachNode returns one workflow name per cluster node, each with its keys on that node.
func onEachNode(t *testing.T, c *rdbtest.Cluster, keys rdb.Keys) []string {
	t.Helper()
	byNode := map[string]string{}
	for i := 0; len(byNode) < len(c.Addrs()) && i < 1000; i++ {
		wf := fmt.Sprintf("w%d", i)
		if node := c.NodeFor(t, keys.State(wf)); byNode[node] == "" {
			byNode[node] = wf
		}
	}
	var names []string
	for _, wf := range byNode {
		names = append(names, wf)
	}
	if len(names) != len(c.Addrs()) {
		t.Fatalf("found workflows on %d nodes of %d", len(names), len(c.Addrs()))
	}
	sort.Strings(names)
	return names
}

// TestClusterAcrossNodes: with workflows on every master, everything batchy does that is not one
// workflow's script works on a Cluster: the workflows set and its pipelined EXISTS, dump and
// restore, event streams written in one pipeline, and notifications published by scripts on
// one node reaching a subscriber connected to another.
func TestClusterAcrossNodes(t *testing.T) {
	c := rdbtest.SharedCluster(t)
	client, where, err := rdb.Connect(rdb.ConnectOptions{ClusterAddrs: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	t.Logf("store on %s", where)
	store := rdb.New(client, rdb.Options{})
	keys := store.Keys()
	names := onEachNode(t, c, keys)

	sub := client.Subscribe(ctx, keys.Changed())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	subNode := c.NodeFor(t, keys.Changed()) // go-redis subscribes on the channel's slot's master

	f := &fixture{store: store, client: client}
	for _, wf := range names {
		f.load(t, wf, "a: {}\nb: {}\n", false)
		if _, err := store.Open(ctx, wf, batch.OpenRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.End(ctx, wf, batch.EndRequest{Status: batch.StatusSuccess, Strict: true}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("scripts publish to subscribers on other nodes", func(t *testing.T) {
		got := map[string]int{}
		timeout := time.After(5 * time.Second)
		for len(got) < len(names) {
			select {
			case m := <-sub.Channel():
				got[m.Payload]++
			case <-timeout:
				t.Fatalf("notifications received %v, want each of %v (subscriber on %s)", got, names, subNode)
			}
		}
	})

	t.Run("workflows", func(t *testing.T) {
		got, err := store.Workflows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, names) {
			t.Errorf("Workflows() = %v, want %v", got, names)
		}
	})

	t.Run("dump and restore across nodes", func(t *testing.T) {
		d, err := store.Dump(ctx, names[0])
		if err != nil {
			t.Fatal(err)
		}
		copied := *d
		copied.Workflow = names[1] // another node
		if err := store.Restore(ctx, &copied); err != nil {
			t.Fatal(err)
		}
		got, err := store.Dump(ctx, names[1])
		if err != nil {
			t.Fatal(err)
		}
		got.Workflow = names[0]
		if !reflect.DeepEqual(got, d) {
			t.Errorf("restored dump differs:\n got %s\nwant %s", mustJSON(got), mustJSON(d))
		}
	})

	t.Run("event streams", func(t *testing.T) {
		stream := rdb.NewEventStream(client, keys, 100)
		var evs []event.Event
		for i, wf := range names {
			for j := range 3 {
				evs = append(evs, event.Event{Time: time.Now().UTC(), Workflow: wf, Type: "test", Level: "info", Message: fmt.Sprintf("%d.%d", i, j)})
			}
		}
		if err := stream.Write(ctx, evs); err != nil { // one pipeline over three nodes
			t.Fatal(err)
		}
		for i, wf := range names {
			got, err := stream.Read(ctx, wf, event.Query{After: "0", Type: "test"}) // not the transitions
			if err != nil {
				t.Fatal(err)
			}
			var msgs []string
			for _, e := range got {
				msgs = append(msgs, e.Message)
			}
			if want := []string{fmt.Sprintf("%d.0", i), fmt.Sprintf("%d.1", i), fmt.Sprintf("%d.2", i)}; !reflect.DeepEqual(msgs, want) {
				t.Errorf("events of %s = %v, want %v", wf, msgs, want)
			}
		}
	})

	t.Run("keys of all nodes", func(t *testing.T) {
		// batchy itself never lists keys; a tool that does must ask every master.
		if got := allKeys(t, client, keys.Prefix+":{*}:state"); len(got) != len(names) {
			t.Errorf("state keys over all masters: %v, want %d", got, len(names))
		}
	})
}

// TestClusterFailover: the master holding a workflow is killed and started again (its
// append-only file, synced on every write, brings its data back) while workers open and close
// batches. Every call fails cleanly with "unavailable" or succeeds, and afterwards the history
// holds every acknowledged batch, ids are unique and increasing, and each job's state is whole.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the failover test (about 5s)")
	}
	t.Parallel() // with TestSentinelFailover, after the tests that share the cluster sequentially
	c := rdbtest.SharedCluster(t)
	client, _, err := rdb.Connect(rdb.ConnectOptions{ClusterAddrs: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	store := rdb.New(client, rdb.Options{HistoryKeep: 1_000_000})
	f := &fixture{store: store, client: client}
	const workers = 3
	f.load(t, "w", "j0: {}\nj1: {}\nj2: {}\n", false)
	victim := c.NodeFor(t, store.Keys().State("w"))

	type ack struct {
		id     int64
		closed bool
	}
	acks := make([][]ack, workers) // per worker, in order
	var mu sync.Mutex
	var bad []string // calls that failed otherwise than "unavailable"
	failed := 0
	causes := map[string]int{}
	check := func(op string, err error) bool {
		if err == nil {
			return true
		}
		mu.Lock()
		defer mu.Unlock()
		failed++
		causes[causeOf(err)]++
		if batch.ErrorCode(err) != batch.EUNAVAILABLE {
			bad = append(bad, fmt.Sprintf("%s: %v (code %s)", op, err, batch.ErrorCode(err)))
		}
		return false
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range workers {
		job := fmt.Sprintf("j%d", g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20_000; i++ {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				st, err := store.Open(ctx, "w", batch.OpenRequest{Jobs: []string{job}})
				if !check("open "+job, err) {
					continue
				}
				j, _ := st.Jobs.Get(job)
				id, _ := j.Fields.Int("batch_id")
				_, err = store.End(ctx, "w", batch.EndRequest{Jobs: []string{job}, Status: batch.StatusSuccess, Strict: true, BatchID: id})
				closed := check("close "+job, err)
				mu.Lock()
				acks[g] = append(acks[g], ack{id: id, closed: closed})
				mu.Unlock()
			}
		}()
	}
	count := func() int {
		n := 0
		for g := range workers {
			mu.Lock()
			n += len(acks[g])
			mu.Unlock()
		}
		return n
	}
	time.Sleep(300 * time.Millisecond)
	before := count()
	c.StopNode(t, victim)
	time.Sleep(time.Second) // below the node timeout (2s): the others do not mark it failed
	c.StartNode(t, victim)  // waits for cluster_state:ok (a restarted master waits 2s for it)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	after := count()
	t.Logf("%d batches acknowledged before the outage, %d in all; %d calls failed: %v", before, after, failed, causes)
	for _, b := range bad {
		t.Error(b)
	}
	if failed == 0 {
		t.Error("no call failed: the outage did not happen")
	}
	if after <= before {
		t.Error("no batch was opened after the restart")
	}

	// The history and the state after the restart.
	d, err := store.Dump(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	hist := map[int64]map[string]batch.Fields{}
	var ids []int64
	for _, b := range d.Batches {
		ids = append(ids, b.ID)
		hist[b.ID] = map[string]batch.Fields{}
		for _, j := range b.Jobs {
			hist[b.ID][j.Name] = j.Fields
			if got, _ := j.Fields.Int("batch_id"); got != b.ID {
				t.Errorf("batch %d records job %s with batch_id %d", b.ID, j.Name, got)
			}
		}
	}
	if !sort.SliceIsSorted(ids, func(a, b int) bool { return ids[a] < ids[b] }) {
		t.Errorf("history ids not increasing: %v", ids)
	}
	seen := map[int64]bool{}
	for g := range workers {
		job := fmt.Sprintf("j%d", g)
		var last int64
		for _, a := range acks[g] {
			if seen[a.id] {
				t.Errorf("batch id %d acknowledged twice", a.id)
			}
			seen[a.id] = true
			if a.id <= last {
				t.Errorf("%s: batch id %d after %d", job, a.id, last)
			}
			last = a.id
			rec, ok := hist[a.id][job]
			if !ok {
				t.Errorf("acknowledged batch %d of %s is not in the history", a.id, job)
				continue
			}
			if s, _ := rec.String("status"); a.closed && s != "success" {
				t.Errorf("batch %d of %s was closed but the history says %s", a.id, job, s)
			}
		}
		// The job's state is the one its batch recorded at its last transition: no field of
		// another batch mixed in.
		fields := d.Jobs[job]
		cur, _ := fields.Int("batch_id")
		if cur < last {
			t.Errorf("%s is in batch %d, older than its last acknowledged batch %d", job, cur, last)
		}
		if rec := hist[cur][job]; !sameFields(fields, rec) {
			t.Errorf("%s's state is not its batch %d's record:\nstate   %s\nhistory %s", job, cur, mustJSON(fields), mustJSON(rec))
		}
	}
	var lastID int64
	json.Unmarshal([]byte(d.Meta["last_batch_id"]), &lastID)
	if len(ids) == 0 || lastID != ids[len(ids)-1] {
		t.Errorf("last_batch_id %d, newest batch in the history %v", lastID, ids[max(0, len(ids)-1):])
	}
}

// causeOf names the kind of a store error's cause, for the log.
func causeOf(err error) string {
	msg := err.Error()
	for _, k := range []string{"connection refused", "CLUSTERDOWN", "LOADING", "EOF", "reset by peer", "timeout", "broken pipe"} {
		if strings.Contains(msg, k) {
			return k
		}
	}
	return msg
}

// sameFields compares field values as JSON values.
func sameFields(a, b batch.Fields) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		var x, y any
		if json.Unmarshal(v, &x) != nil || json.Unmarshal(b[k], &y) != nil || !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}
