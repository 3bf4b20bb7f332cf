package rdb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// recordingSink keeps what it was given, per workflow, and fails while down.
type recordingSink struct {
	mu     sync.Mutex
	down   bool
	got    map[string][]string // workflow -> messages, in the order written
	writes map[string]int      // event ID -> times written
}

func newRecordingSink() *recordingSink {
	return &recordingSink{got: map[string][]string{}, writes: map[string]int{}}
}

func (s *recordingSink) Write(_ context.Context, events []event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("sink down")
	}
	for _, e := range events {
		s.got[e.Workflow] = append(s.got[e.Workflow], e.Message)
		s.writes[e.Workflow+" "+e.ID]++
	}
	return nil
}
func (s *recordingSink) Close() error   { return nil }
func (s *recordingSink) String() string { return "recording" }

func (s *recordingSink) setDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// messages returns a copy of what wf's events said, in the order the sink got them.
func (s *recordingSink) messages(wf string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got[wf])
}

func (s *recordingSink) duplicates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, n := range s.writes {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s x%d", id, n))
		}
	}
	return out
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func feederOpts(holder string) event.FeederOptions {
	return event.FeederOptions{ID: "rec", Holder: holder, Lease: 2 * time.Second, Poll: 50 * time.Millisecond,
		BatchSize: 3, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Log: quietLog}
}

// writeLogs writes n log lines to wf's stream, "<wf> <from+i>", one entry each.
func writeLogs(t *testing.T, s *rdb.EventStream, wf string, from, n int) []string {
	t.Helper()
	var want []string
	for i := range n {
		msg := fmt.Sprintf("%s %d", wf, from+i)
		if err := s.Write(ctx, []event.Event{{Workflow: wf, Type: event.TypeLog, Level: "info", Message: msg, Time: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		want = append(want, msg)
	}
	return want
}

// waitMessages waits until the sink has want for wf, and fails with what it has if not.
func waitMessages(t *testing.T, sink *recordingSink, wf string, want []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := sink.messages(wf)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the sink got\n%q\nwant\n%q", wf, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFeederInOrderResumes: a feeder delivers every workflow's events in order, transitions'
// (marked by index.lua) and others' (marked by EventStream.Write); a failing sink gets them all
// once it is back; a feeder started again with the same ID resumes from the cursors and gets only
// what came after.
func TestFeederInOrderResumes(t *testing.T) {
	client := rdbtest.StartRedis(t).Client(t)
	store := rdb.New(client, rdb.Options{})
	stream := rdb.NewEventStream(client, store.Keys(), 0)
	sink := newRecordingSink()
	f := event.NewFeeder(sink, store.Sinks(), feederOpts("r1"))

	wantA := writeLogs(t, stream, "a", 0, 7)
	wantB := writeLogs(t, stream, "b", 0, 4)
	if _, err := store.Load(ctx, &batch.Workflow{Name: "c", Jobs: batch.Jobs{{Name: "j"}}}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(ctx, "c", batch.OpenRequest{}); err != nil {
		t.Fatal(err)
	}
	waitMessages(t, sink, "a", wantA)
	waitMessages(t, sink, "b", wantB)
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.messages("c")) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := sink.messages("c"); len(got) != 2 {
		t.Errorf("the transitions' events: got %q, want the load's and the open's", got)
	}

	sink.setDown(true)
	wantA = append(wantA, writeLogs(t, stream, "a", 7, 5)...)
	time.Sleep(200 * time.Millisecond)
	if f.Failed() == 0 || f.LastError() == "" || f.Lag(time.Now()) == 0 {
		t.Errorf("while the sink is down: failed %d, last error %q, lag %s", f.Failed(), f.LastError(), f.Lag(time.Now()))
	}
	sink.setDown(false)
	waitMessages(t, sink, "a", wantA)
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := sink.duplicates(); len(d) != 0 {
		t.Errorf("written twice: %v", d)
	}

	// A restart: the new feeder starts from the cursors.
	sink2 := newRecordingSink()
	more := writeLogs(t, stream, "a", 12, 3)
	f2 := event.NewFeeder(sink2, store.Sinks(), feederOpts("r2"))
	defer f2.Close(ctx)
	waitMessages(t, sink2, "a", more)
	time.Sleep(200 * time.Millisecond)
	if got := sink2.messages("b"); len(got) != 0 {
		t.Errorf("b's events delivered again after the restart: %q", got)
	}
}

// TestFeederRecent: a feeder of recent events only (the alerts' backstop) skips what the streams
// held before it was first fed, on Redis and on the embedded store; stopped and started again (or
// on another replica), it still gets every event written since, in workflows it has no cursor in
// as well (one written while no feeder ran).
func TestFeederRecent(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		f := newFixture(t, b, rdb.Options{})
		stream := rdb.NewEventStream(f.client, f.store.Keys(), 0)
		opts := feederOpts("r1")
		opts.Recent = true
		writeLogs(t, stream, "old", 0, 3)
		writeLogs(t, stream, "w", 0, 4)
		time.Sleep(5 * time.Millisecond) // the start is in milliseconds, as the entries' IDs
		sink := newRecordingSink()
		fd := event.NewFeeder(sink, f.store.Sinks(), opts)
		deadline := time.Now().Add(5 * time.Second)
		for !fd.Leader() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // its first delivery recorded the start
		wantW := writeLogs(t, stream, "w", 4, 2)
		wantN := writeLogs(t, stream, "new", 0, 2)
		waitMessages(t, sink, "w", wantW)
		waitMessages(t, sink, "new", wantN)
		if got := sink.messages("old"); len(got) != 0 {
			t.Errorf("events from before the feeder's start delivered: %q", got)
		}
		if err := fd.Close(ctx); err != nil {
			t.Fatal(err)
		}

		// Written while no feeder runs, in a workflow without cursor and in one with.
		wantM := writeLogs(t, stream, "m", 0, 2)
		wantW = append(wantW, writeLogs(t, stream, "w", 6, 1)...)
		opts.Holder = "r2"
		fd = event.NewFeeder(sink, f.store.Sinks(), opts)
		defer fd.Close(ctx)
		waitMessages(t, sink, "m", wantM)
		waitMessages(t, sink, "w", wantW)
		if got := sink.messages("old"); len(got) != 0 {
			t.Errorf("events from before the first start delivered after a restart: %q", got)
		}
		if d := sink.duplicates(); len(d) != 0 {
			t.Errorf("written twice: %v", d)
		}
	})
}

// TestFeedersTwoReplicas: two feeders of the same sink ID on two replicas deliver each event once
// (one holds the lease), and the other takes over when the first stops.
func TestFeedersTwoReplicas(t *testing.T) {
	client := rdbtest.StartRedis(t).Client(t)
	store := rdb.New(client, rdb.Options{})
	stream := rdb.NewEventStream(client, store.Keys(), 0)
	sink := newRecordingSink()
	f1 := event.NewFeeder(sink, store.Sinks(), feederOpts("r1"))
	f2 := event.NewFeeder(sink, rdb.New(client, rdb.Options{}).Sinks(), feederOpts("r2"))
	defer f2.Close(ctx)
	var want []string
	for i := range 5 {
		want = append(want, writeLogs(t, stream, "w", i*4, 4)...)
		f1.Notify("w")
		f2.Notify("w")
		time.Sleep(30 * time.Millisecond)
	}
	waitMessages(t, sink, "w", want)
	if f1.Leader() == f2.Leader() {
		t.Errorf("leaders: r1 %v, r2 %v, want exactly one", f1.Leader(), f2.Leader())
	}
	if err := f1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want = append(want, writeLogs(t, stream, "w", 20, 3)...)
	waitMessages(t, sink, "w", want)
	if d := sink.duplicates(); len(d) != 0 {
		t.Errorf("written twice: %v", d)
	}
}

// TestFeederTrimmed: entries trimmed from a stream before the sink got them are counted as lost,
// and the sink goes on from the oldest entry kept.
func TestFeederTrimmed(t *testing.T) {
	client := rdbtest.StartRedis(t).Client(t)
	store := rdb.New(client, rdb.Options{})
	stream := rdb.NewEventStream(client, store.Keys(), 0)
	sink := newRecordingSink()
	want := writeLogs(t, stream, "w", 0, 4)
	f := event.NewFeeder(sink, store.Sinks(), feederOpts("r1"))
	waitMessages(t, sink, "w", want)
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	all := writeLogs(t, stream, "w", 4, 20)
	if err := client.XTrimMaxLen(ctx, store.Keys().Events("w"), 5).Err(); err != nil {
		t.Fatal(err)
	}
	f = event.NewFeeder(sink, store.Sinks(), feederOpts("r1"))
	defer f.Close(ctx)
	waitMessages(t, sink, "w", append(want, all[15:]...))
	if got := f.Dropped(); got != 15 {
		t.Errorf("lost = %d, want 15", got)
	}
}

// TestFeederIdleCost: once a sink has caught up, an idle feeder costs Redis about one command per
// poll (the events index) and a lease renewal now and then, whatever the number of workflows.
func TestFeederIdleCost(t *testing.T) {
	perSecond := map[int]float64{}
	for _, n := range []int{10, 2000} {
		client := rdbtest.StartRedis(t).Client(t)
		store := rdb.New(client, rdb.Options{})
		stream := rdb.NewEventStream(client, store.Keys(), 0)
		var events []event.Event
		for i := range n {
			events = append(events, event.Event{Workflow: fmt.Sprintf("wf%04d", i), Type: event.TypeLog, Level: "info", Message: "x", Time: time.Now()})
		}
		if err := stream.Write(ctx, events); err != nil {
			t.Fatal(err)
		}
		sink := newRecordingSink()
		opts := feederOpts("r1")
		opts.Poll, opts.Lease = 200*time.Millisecond, 3*time.Second
		f := event.NewFeeder(sink, store.Sinks(), opts)
		deadline := time.Now().Add(20 * time.Second)
		for f.Delivered() < uint64(n) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if f.Delivered() != uint64(n) {
			t.Fatalf("%d workflows: delivered %d", n, f.Delivered())
		}
		time.Sleep(300 * time.Millisecond)
		if err := client.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		const idle = 2 * time.Second
		time.Sleep(idle)
		calls := 0
		for name, c := range commandCalls(t, &fixture{client: client}) {
			if name != "config|resetstat" && name != "info" {
				calls += c
			}
		}
		f.Close(ctx)
		polls := float64(idle / opts.Poll)
		perSecond[n] = float64(calls) / idle.Seconds()
		t.Logf("%d workflows: %d Redis calls in %s idle (%.1f/s; %.0f polls)", n, calls, idle, perSecond[n], polls)
		// One ZRANGEBYSCORE a poll, an EVALSHA and its HMGET and HSET a lease renewal (every 1s).
		if max := polls + 3*(idle.Seconds()+1); float64(calls) > max {
			t.Errorf("%d workflows: %d calls while idle, want at most %.0f", n, calls, max)
		}
	}
	if perSecond[2000] > perSecond[10]+1 {
		t.Errorf("idle cost grows with the workflows: %.1f/s for 10, %.1f/s for 2000", perSecond[10], perSecond[2000])
	}
}

// TestFeederEmbedded: on the embedded store the cursors survive a restart of the store too, and
// trimmed entries are still noticed (at least one lost: it cannot count them).
func TestFeederEmbedded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "batchy.db")
	env := mustEmbedded(t, path)
	stream := rdb.NewEventStream(env.e.Client(), env.store.Keys(), 0)
	sink := newRecordingSink()
	want := writeLogs(t, stream, "w", 0, 5)
	f := event.NewFeeder(sink, env.store.Sinks(), feederOpts("r1"))
	waitMessages(t, sink, "w", want)
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	env.e.Close()

	env = mustEmbedded(t, path)
	stream = rdb.NewEventStream(env.e.Client(), env.store.Keys(), 0)
	more := writeLogs(t, stream, "w", 5, 3)
	f = event.NewFeeder(sink, env.store.Sinks(), feederOpts("r2"))
	waitMessages(t, sink, "w", append(want, more...))
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	all := writeLogs(t, stream, "w", 8, 6)
	if err := env.e.Client().XTrimMaxLen(ctx, env.store.Keys().Events("w"), 2).Err(); err != nil {
		t.Fatal(err)
	}
	f = event.NewFeeder(sink, env.store.Sinks(), feederOpts("r3"))
	defer f.Close(ctx)
	waitMessages(t, sink, "w", append(append(want, more...), all[4:]...))
	if got := f.Dropped(); got < 1 {
		t.Errorf("lost = %d, want at least 1", got)
	}
}

// TestSinkStartKept: the time a sink of recent events was first fed is set once and survives a
// restart of the embedded store (its journal holds it).
func TestSinkStartKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "batchy.db")
	env := mustEmbedded(t, path)
	first := time.UnixMilli(time.Now().UnixMilli())
	if got, err := env.store.Sinks().Start(ctx, "alerts", first); err != nil || !got.Equal(first) {
		t.Fatalf("first start = %v, %v; want %v", got, err, first)
	}
	env.e.Close()
	env = mustEmbedded(t, path)
	if got, err := env.store.Sinks().Start(ctx, "alerts", first.Add(time.Hour)); err != nil || !got.Equal(first) {
		t.Errorf("start after a restart = %v, %v; want the first, %v", got, err, first)
	}
}

// TestFeederCluster: on a Redis Cluster, with workflows on every master, a feeder delivers each
// workflow's events in order and resumes from its cursors: every script and transaction touches
// one slot (the workflow's, or {~} for the index and the lease).
func TestFeederCluster(t *testing.T) {
	c := rdbtest.SharedCluster(t)
	client, _, err := rdb.Connect(rdb.ConnectOptions{ClusterAddrs: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	store := rdb.New(client, rdb.Options{Prefix: fmt.Sprintf("sinks%d", time.Now().UnixNano())})
	stream := rdb.NewEventStream(client, store.Keys(), 0)
	names := onEachNode(t, c, store.Keys())
	sink := newRecordingSink()
	want := map[string][]string{}
	for _, wf := range names {
		want[wf] = writeLogs(t, stream, wf, 0, 4)
	}
	f := event.NewFeeder(sink, store.Sinks(), feederOpts("r1"))
	for _, wf := range names {
		waitMessages(t, sink, wf, want[wf])
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, wf := range names {
		want[wf] = append(want[wf], writeLogs(t, stream, wf, 4, 2)...)
	}
	f = event.NewFeeder(sink, store.Sinks(), feederOpts("r2"))
	defer f.Close(ctx)
	for _, wf := range names {
		waitMessages(t, sink, wf, want[wf])
	}
	if d := sink.duplicates(); len(d) != 0 {
		t.Errorf("written twice: %v", d)
	}
}
