package rdb_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// commandCalls reads INFO commandstats: calls per command, scripts' inner calls included.
func commandCalls(t *testing.T, f *fixture) map[string]int {
	t.Helper()
	info, err := f.client.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		out[name] = n
	}
	return out
}

// The installation-wide index's write after each transition (lua/index.lua, a round trip of its
// own: its keys are in another Cluster slot): an HGET and an HSET of the summary, the status
// index moved when the status changes, the index of changes after a close, and always the events
// index (the log sinks' feeders read it) with the counter both share.
var (
	indexSame      = map[string]int{"evalsha": 1, "hget": 1, "hset": 1, "zadd": 1, "incr": 1}
	indexSameClose = map[string]int{"evalsha": 1, "hget": 1, "hset": 1, "zadd": 2, "incr": 1}
	indexMoved     = map[string]int{"evalsha": 1, "hget": 1, "hset": 1, "zrem": 1, "zadd": 2, "incr": 1}
	indexClose     = map[string]int{"evalsha": 1, "hget": 1, "hset": 1, "zrem": 1, "zadd": 3, "incr": 1}
)

// plus adds the calls of b to those of a.
func plus(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}

// TestTransitionCost: a transition of the 3-job wf1 is one round trip (one EVALSHA) running a
// handful of Redis calls, the same whatever the number of jobs; a workflow of 12 jobs costs the
// same calls; then the index's write, a second round trip of 2 to 5 calls (indexSame, ...).
// (Trimming history, every HistoryKeep/16 opens, adds a few; not reached here.)
func TestTransitionCost(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	client := srv.Client(t)
	f := &fixture{store: rdb.New(client, rdb.Options{}), client: client, clock: &clock{t: mustTime("2026-11-22T13:49:30Z")}}
	f.store = rdb.New(client, rdb.Options{Now: f.clock.Now})
	twelve := ""
	for i := range 12 {
		twelve += "j" + strconv.Itoa(i) + ":\n  trunc_start: true\n"
	}
	for _, wf := range []struct{ name, yaml string }{{"wf1", wf1(t)}, {"twelve", twelve}} {
		f.load(t, wf.name, wf.yaml, false)
		// Every script loaded (a first EVALSHA is answered NOSCRIPT), the zone stored: by a store
		// without copies (the scripts) and by f (apply.lua).
		cold := rdb.New(client, rdb.Options{Now: f.clock.Now})
		cold.Open(ctx, wf.name, batch.OpenRequest{})
		rdb.FlushIndex(ctx, cold)
		cold = rdb.New(client, rdb.Options{Now: f.clock.Now})
		cold.End(ctx, wf.name, batch.EndRequest{Status: batch.StatusSuccess})
		rdb.FlushIndex(ctx, cold)
		f.store.State(ctx, wf.name)
		f.store.Open(ctx, wf.name, batch.OpenRequest{})
		rdb.FlushIndex(ctx, f.store)
		step := func(name string, want map[string]int, do func() error) {
			t.Helper()
			f.clock.t = f.clock.t.Add(time.Minute)
			rdb.FlushIndex(ctx, f.store) // the index writes of the changes before this one
			if err := client.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if err := do(); err != nil {
				t.Fatalf("%s %s: %v", wf.name, name, err)
			}
			// The index write a lone transition gets, 50 ms later (indexer.go), made now.
			rdb.FlushIndex(ctx, f.store)
			got := commandCalls(t, f)
			delete(got, "config|resetstat")
			delete(got, "info")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s: Redis calls %v, want %v", wf.name, name, got, want)
			}
		}
		open := func() error { _, err := f.store.Open(ctx, wf.name, batch.OpenRequest{}); return err }
		end := func(s batch.Status) func() error {
			return func() error { _, err := f.store.End(ctx, wf.name, batch.EndRequest{Status: s}); return err }
		}
		// apply.lua: batchy computed the transition from its copy of the state, at the revision
		// HGET reads; the batch it records into is the newest, so it is in history.
		step("open after open", plus(map[string]int{"evalsha": 1, "hget": 1, "hset": 2, "zadd": 1, "xadd": 1, "publish": 1}, indexSame), open)
		step("close", plus(map[string]int{"evalsha": 1, "hget": 1, "hset": 2, "xadd": 1, "publish": 1}, indexClose), end(batch.StatusSuccess))
		step("open after close", plus(map[string]int{"evalsha": 1, "hget": 1, "hset": 2, "zadd": 1, "xadd": 1, "publish": 1}, indexMoved), open)
		step("fail", plus(map[string]int{"evalsha": 1, "hget": 1, "hset": 2, "xadd": 1, "publish": 1}, indexMoved), end(batch.StatusFailed))
		// A job ended in an older batch than the newest: whether that batch is still in history
		// is asked (HEXISTS).
		st, _ := f.store.Open(ctx, wf.name, batch.OpenRequest{})
		f.store.Open(ctx, wf.name, batch.OpenRequest{Jobs: []string{st.Jobs[0].Name}})
		var others []string
		for _, j := range st.Jobs[1:] {
			others = append(others, j.Name)
		}
		step("close of an older batch", plus(map[string]int{"evalsha": 1, "hget": 1, "hexists": 1, "hset": 2, "xadd": 1, "publish": 1}, indexSameClose), func() error {
			// Forced: the original routes' end leaves jobs open in an older batch alone.
			_, err := f.store.End(ctx, wf.name, batch.EndRequest{Jobs: others, Status: batch.StatusSuccess, Force: true})
			return err
		})
		step("state", map[string]int{"hgetall": 1}, func() error { _, err := f.store.State(ctx, wf.name); return err })
		// open.lua and end.lua: another replica's store has no copy; it computes in Lua.
		other := &fixture{store: rdb.New(client, rdb.Options{Now: f.clock.Now}), client: client, clock: f.clock}
		f, other = other, f
		step("open abandoning the first job's batch, in Lua", plus(map[string]int{"evalsha": 1, "hgetall": 1, "hexists": 1, "hset": 2, "zadd": 1, "xadd": 1, "publish": 1}, indexSame), open)
		f.store = rdb.New(client, rdb.Options{Now: f.clock.Now})
		step("close, in Lua", plus(map[string]int{"evalsha": 1, "hgetall": 1, "hexists": 1, "hset": 2, "xadd": 1, "publish": 1}, indexClose), end(batch.StatusSuccess))
		// The first store's copy is now stale: apply.lua answers with the state, and the second
		// try writes.
		f = other
		step("open from a stale copy", plus(map[string]int{"evalsha": 2, "hget": 2, "hgetall": 1, "hset": 2, "zadd": 1, "xadd": 1, "publish": 1}, indexMoved), open)
	}
}

// TestHistoryTrimmedInSteps: with HistoryKeep 16, history holds 16 or 17 batches (trimmed by one
// at a time past 17), trimmed batches leave no field behind, and the rest read back whole.
func TestHistoryTrimmedInSteps(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{HistoryKeep: 16})
		f.load(t, "w", "a: {}\nb: {}\n", false)
		var ids []int64
		for i := 0; i < 40; i++ {
			f.clock.t = f.clock.t.Add(time.Hour)
			st, err := f.store.Open(ctx, "w", batch.OpenRequest{})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, st.LastBatchID)
			n, _ := f.client.ZCard(ctx, f.store.Keys().Batches("w")).Result()
			if n < 16 && i >= 15 || n > 17 {
				t.Fatalf("after %d opens history holds %d batches, want 16 or 17", i+1, n)
			}
			fields, _ := f.client.HLen(ctx, f.store.Keys().History("w")).Result()
			if fields != 3*n {
				t.Fatalf("after %d opens the history hash has %d fields for %d batches of 2 jobs", i+1, fields, n)
			}
		}
		list, err := f.store.Batches(ctx, "w", batch.ListOptions{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) < 16 || list[0].ID != ids[39] || len(list[0].Jobs) != 2 || list[1].Jobs[0].Fields.Status() != "abandoned" {
			t.Errorf("history: %d batches, newest %+v", len(list), list[0])
		}
		_, err = f.store.Batch(ctx, "w", ids[0])
		wantCode(t, err, batch.ENOTFOUND)
	})
}

// TestEventIDsInsideAnEntry: the events of one transition share its stream entry and still page,
// tail and resume one by one.
func TestEventIDsInsideAnEntry(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		f.load(t, "w", "a: {}\nb: {}\nc: {}\n", false)
		f.store.Open(ctx, "w", batch.OpenRequest{})
		st, err := f.store.Open(ctx, "w", batch.OpenRequest{}) // abandons 3, opens 3: one entry
		if err != nil {
			t.Fatal(err)
		}
		returned := event.FromChanges(st.Changes)
		if len(returned) != 6 {
			t.Fatalf("second open: %d events, want 6", len(returned))
		}
		entry := returned[0].ID
		for i, e := range returned[1:] {
			if want := entry + "." + strconv.Itoa(i+1); e.ID != want || !event.ValidID(e.ID) {
				t.Errorf("event %d: ID %s, want %s", i+1, e.ID, want)
			}
		}
		stream := rdb.NewEventStream(f.client, f.store.Keys(), 0)
		ids := func(events []event.Event) []string {
			var out []string
			for _, e := range events {
				out = append(out, e.ID)
			}
			return out
		}
		all, err := stream.Read(ctx, "w", event.Query{After: "0-0", Limit: 100})
		if err != nil || len(all) != 10 { // load, 3 opens, 3 abandons, 3 opens
			t.Fatalf("all events: %d, %v", len(all), err)
		}
		if !reflect.DeepEqual(all[4:], returned) {
			t.Errorf("stream:\n %+v\nreturned:\n %+v", all[4:], returned)
		}
		if got, _ := stream.Read(ctx, "w", event.Query{After: returned[1].ID, Limit: 2}); !reflect.DeepEqual(ids(got), ids(returned[2:4])) {
			t.Errorf("after %s: %v, want %v", returned[1].ID, ids(got), ids(returned[2:4]))
		}
		if got, _ := stream.Read(ctx, "w", event.Query{After: entry, Limit: 100}); !reflect.DeepEqual(ids(got), ids(returned[1:])) {
			t.Errorf("after %s: %v, want %v", entry, ids(got), ids(returned[1:]))
		}
		if got, _ := stream.Read(ctx, "w", event.Query{Before: returned[2].ID, Limit: 3}); !reflect.DeepEqual(ids(got), []string{returned[1].ID, returned[0].ID, all[3].ID}) {
			t.Errorf("before %s: %v", returned[2].ID, ids(got))
		}
		if got, _ := stream.Tail(ctx, "w", returned[3].ID, time.Millisecond); !reflect.DeepEqual(ids(got), ids(returned[4:])) {
			t.Errorf("tail after %s: %v, want %v", returned[3].ID, ids(got), ids(returned[4:]))
		}
		if last, _ := stream.LastID(ctx, "w"); last != returned[5].ID {
			t.Errorf("last ID %s, want %s", last, returned[5].ID)
		}
		if got, _ := stream.Read(ctx, "w", event.Query{After: "0-0", Job: "b", Type: event.TypeAbandon}); len(got) != 1 || got[0].Job != "b" || got[0].BatchID != all[2].BatchID {
			t.Errorf("abandon of b: %+v", got)
		}
	})
}

// TestIndexWritesCoalesced: the changes of a workflow made within the indexer's delay share one
// index write, of the latest state; the index then shows it, and this process reads its own
// changes at once.
func TestIndexWritesCoalesced(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	client := srv.Client(t)
	s := rdb.New(client, rdb.Options{})
	f := &fixture{store: s, client: client}
	f.load(t, "w", "a: {}\nb: {}\n", false)
	rdb.FlushIndex(ctx, s)
	if err := client.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		s.Open(ctx, "w", batch.OpenRequest{})
		s.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess})
	}
	page, err := s.Summaries(ctx, batch.SummaryQuery{})
	if err != nil || len(page.Summaries) != 1 || page.Summaries[0].Status != batch.StatusSuccess {
		t.Fatalf("summaries right after the changes: %+v (%v)", page, err)
	}
	got := commandCalls(t, f)
	// 20 transitions: 20 EVALSHA of apply.lua, and the index written once or twice (a write may
	// start while the changes are still being made), not 20 times.
	if n := got["evalsha"] - 20; n < 1 || n > 3 {
		t.Errorf("index writes for 20 changes within a few ms: %d (calls %v)", n, got)
	}
}
