package rdb_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/rdb"
)

// embeddedEnv is an embedded store with a data file and a store on it.
type embeddedEnv struct {
	path  string
	e     *rdb.Embedded
	store *rdb.Store
}

func startEmbedded(t *testing.T, path string, opts rdb.EmbeddedOptions) (*embeddedEnv, error) {
	t.Helper()
	e, err := rdb.OpenEmbedded(path, opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { e.Close() })
	return &embeddedEnv{path: path, e: e, store: rdb.New(e.Client(), rdb.Options{HistoryKeep: 100000, Embedded: e})}, nil
}

func mustEmbedded(t *testing.T, path string) *embeddedEnv {
	t.Helper()
	env, err := startEmbedded(t, path, rdb.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (env *embeddedEnv) load(t *testing.T, yaml string) {
	t.Helper()
	wf, err := config.Parse("w", []byte(yaml), config.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.Load(ctx, wf, false); err != nil {
		t.Fatal(err)
	}
}

// cycles opens and closes n batches, returning the state after each change.
func (env *embeddedEnv) cycles(t *testing.T, n int) []*batch.State {
	t.Helper()
	var out []*batch.State
	for range n {
		st, err := env.store.Open(ctx, "w", batch.OpenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
		if st, err = env.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}

// crashCopy copies the data file and everything beside it to a new directory while the store
// runs: what a restart after a crash (kill -9, power loss after the fsync) would find.
func crashCopy(t *testing.T, path string) string {
	t.Helper()
	dir := t.TempDir()
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, filepath.Base(path))
}

func journalOf(t *testing.T, path string) string {
	t.Helper()
	wals, _ := filepath.Glob(path + ".*.wal")
	if len(wals) != 1 {
		t.Fatalf("journals beside %s: %v, want one", path, wals)
	}
	return wals[0]
}

func stateJSON(t *testing.T, s *rdb.Store) string {
	t.Helper()
	st, err := s.State(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	return mustJSON(st)
}

// TestEmbeddedDurableBeforeReply: everything a change answered is on disk when it answers, state
// and events: a copy of the files taken then (a crash) starts with all of it.
func TestEmbeddedDurableBeforeReply(t *testing.T) {
	env := mustEmbedded(t, filepath.Join(t.TempDir(), "data", "batchy.json"))
	env.load(t, "a:\n  n: 12345678901234567\nb: {}\n")
	states := env.cycles(t, 20)
	want := mustJSON(states[len(states)-1])
	events, err := env.e.Client().XRange(ctx, "batchy:{w}:events", "-", "+").Result()
	if err != nil || len(events) < 40 {
		t.Fatalf("events: %d (%v)", len(events), err)
	}

	crashed := mustEmbedded(t, crashCopy(t, env.path))
	if got := stateJSON(t, crashed.store); got != want {
		t.Errorf("state after a crash = %s, want %s", got, want)
	}
	got, err := crashed.e.Client().XRange(ctx, "batchy:{w}:events", "-", "+").Result()
	if err != nil || fmt.Sprint(got) != fmt.Sprint(events) {
		t.Errorf("events after a crash differ (%v):\n got %v\nwant %v", err, got, events)
	}
	// The store goes on from there: a new batch, a new id.
	st, err := crashed.store.Open(ctx, "w", batch.OpenRequest{})
	if err != nil || st.LastBatchID <= states[len(states)-1].LastBatchID {
		t.Errorf("open after a crash: batch %d (%v), last before %d", st.LastBatchID, err, states[len(states)-1].LastBatchID)
	}
}

// TestEmbeddedOneOwner: the lock is the data file itself, whatever the path to it.
func TestEmbeddedOneOwner(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "batchy.json")
	env := mustEmbedded(t, path)
	env.load(t, "a: {}\n")
	other := t.TempDir()
	symlink, hardlink := filepath.Join(other, "sym.json"), filepath.Join(other, "hard.json")
	if err := os.Symlink(path, symlink); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, hardlink); err != nil {
		t.Fatal(err)
	}
	dotted := filepath.Join(dir, ".", "..", filepath.Base(dir), "batchy.json")
	for _, p := range []string{path, symlink, hardlink, dotted} {
		if _, err := rdb.StartEmbedded(p); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("a second store on %s started (err %v): two servers would fork the state", p, err)
		}
	}
	// The first goes on, unharmed.
	if _, err := env.store.Open(ctx, "w", batch.OpenRequest{}); err != nil {
		t.Fatal(err)
	}
}

// TestEmbeddedTornTail: a record a crash cut short at the end of the journal is dropped (it was
// never acknowledged); the rest loads.
func TestEmbeddedTornTail(t *testing.T) {
	env := mustEmbedded(t, filepath.Join(t.TempDir(), "batchy.json"))
	env.load(t, "a: {}\n")
	states := env.cycles(t, 5)
	path := crashCopy(t, env.path)
	wal := journalOf(t, path)
	data, _ := os.ReadFile(wal)
	if err := os.WriteFile(wal, data[:len(data)-7], 0o600); err != nil {
		t.Fatal(err)
	}
	crashed := mustEmbedded(t, path)
	// The last change (the fifth close) is gone, the one before it is there.
	if got, want := stateJSON(t, crashed.store), mustJSON(states[len(states)-2]); got != want {
		t.Errorf("state after a torn tail = %s, want the state before the last change %s", got, want)
	}
	if size := fileSize(t, wal); size >= int64(len(data)-7) {
		t.Errorf("the torn record was not cut off the journal (%d bytes)", size)
	}
}

// TestEmbeddedDamage: a flipped byte inside the journal or a snapshot refuses to start, naming the
// file and offset; --repair keeps what precedes the damage in the journal.
func TestEmbeddedDamage(t *testing.T) {
	env := mustEmbedded(t, filepath.Join(t.TempDir(), "batchy.json"))
	env.load(t, "a: {}\n")
	states := env.cycles(t, 10)
	path := crashCopy(t, env.path)
	wal := journalOf(t, path)
	data, _ := os.ReadFile(wal)
	flip := len(data) * 3 / 4
	data[flip] ^= 0x10
	if err := os.WriteFile(wal, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := startEmbedded(t, path, rdb.EmbeddedOptions{})
	if err == nil || !strings.Contains(err.Error(), wal) || !strings.Contains(err.Error(), "offset") || !strings.Contains(err.Error(), "--repair") {
		t.Fatalf("a damaged journal: err = %v, want one naming %s, the offset and --repair", err, wal)
	}
	repaired, err := startEmbedded(t, path, rdb.EmbeddedOptions{Repair: true})
	if err != nil {
		t.Fatalf("--repair: %v", err)
	}
	st, err := repaired.store.State(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	kept := -1
	for i, s := range states {
		if mustJSON(s) == mustJSON(st) {
			kept = i
		}
	}
	if kept < 0 || kept == len(states)-1 {
		t.Errorf("--repair kept state %d of %d: want one from before the damage", kept, len(states))
	}
	if _, err := os.Stat(wal + ".damaged"); err != nil {
		t.Errorf("the damaged journal was not kept aside: %v", err)
	}
	if _, err := repaired.store.Open(ctx, "w", batch.OpenRequest{}); err != nil {
		t.Errorf("open after --repair: %v", err)
	}
	repaired.e.Close()

	// A snapshot: Close wrote one.
	if err := env.e.Close(); err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(env.path + ".*.snap")
	if len(snaps) != 1 {
		t.Fatalf("snapshots after Close: %v", snaps)
	}
	snap, _ := os.ReadFile(snaps[0])
	snap[len(snap)/2] ^= 0x01
	os.WriteFile(snaps[0], snap, 0o600)
	if _, err := startEmbedded(t, env.path, rdb.EmbeddedOptions{}); err == nil || !strings.Contains(err.Error(), snaps[0]) || !strings.Contains(err.Error(), "offset") {
		t.Errorf("a damaged snapshot: err = %v, want one naming %s and the offset", err, snaps[0])
	}
}

// TestEmbeddedWriteFailure: when the journal cannot be written (a full disk), the change is
// answered "unavailable" and undone: no reader sees it, the next open hands out no id twice;
// writes are refused and Ping says why until the disk takes writes again; reads go on.
func TestEmbeddedWriteFailure(t *testing.T) {
	env := mustEmbedded(t, filepath.Join(t.TempDir(), "batchy.json"))
	env.load(t, "a: {}\nb: {}\n")
	env.cycles(t, 3)
	before := stateJSON(t, env.store)
	beforeEvents, _ := env.e.Client().XLen(ctx, "batchy:{w}:events").Result()

	full := errors.New("no space left on device")
	rdb.SetJournalWriteHook(func(string) error { return full })
	defer rdb.SetJournalWriteHook(nil)
	_, err := env.store.Open(ctx, "w", batch.OpenRequest{})
	if batch.ErrorCode(err) != batch.EUNAVAILABLE || !strings.Contains(batch.ErrorMessage(err), "journal") {
		t.Fatalf("open on a full disk: err = %v (%s), want unavailable naming the journal", err, batch.ErrorMessage(err))
	}
	if got := stateJSON(t, env.store); got != before {
		t.Errorf("a change that was not written is visible:\n got %s\nwant %s", got, before)
	}
	if n, _ := env.e.Client().XLen(ctx, "batchy:{w}:events").Result(); n != beforeEvents {
		all, _ := env.e.Client().XRange(ctx, "batchy:{w}:events", "-", "+").Result()
		t.Errorf("events: %d after the failed change, %d before: %v", n, beforeEvents, all)
	}
	if _, err := env.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusSuccess}); batch.ErrorCode(err) != batch.EUNAVAILABLE {
		t.Errorf("a write while the journal fails: err = %v, want unavailable", err)
	}
	if err := env.store.Ping(ctx); err == nil || !strings.Contains(batch.ErrorMessage(err), "refuses writes") {
		t.Errorf("Ping while writes are refused: %v, want why", err)
	}

	rdb.SetJournalWriteHook(nil)
	deadline := time.Now().Add(10 * time.Second)
	for env.store.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("writes not resumed 10 s after the disk recovered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := env.store.Open(ctx, "w", batch.OpenRequest{})
	if err != nil {
		t.Fatalf("open after the disk recovered: %v", err)
	}
	crashed := mustEmbedded(t, crashCopy(t, env.path))
	if got := stateJSON(t, crashed.store); got != mustJSON(st) {
		t.Errorf("after a restart: %s, want %s", got, mustJSON(st))
	}
}

// TestEmbeddedCompaction: past compactAfter, a snapshot replaces the journal; the older files go,
// and a restart loads the snapshot and the journal after it.
func TestEmbeddedCompaction(t *testing.T) {
	rdb.SetCompactAfter(t, 4<<10)
	env := mustEmbedded(t, filepath.Join(t.TempDir(), "batchy.json"))
	env.load(t, "a: {}\n")
	states := env.cycles(t, 60)
	// The compaction runs in the background: wait for it to remove the older files.
	deadline := time.Now().Add(5 * time.Second)
	for {
		snaps, _ := filepath.Glob(env.path + ".*.snap")
		wals, _ := filepath.Glob(env.path + ".*.wal")
		if len(snaps) == 1 && len(wals) == 1 && !strings.HasSuffix(snaps[0], ".1.snap") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 cycles past the compaction size: snapshots %v, journals %v", snaps, wals)
		}
		time.Sleep(20 * time.Millisecond)
	}
	env.e.Client().XAdd(ctx, &redis.XAddArgs{Stream: "batchy:{w}:events", Values: []string{"e", "x"}})
	crashed := mustEmbedded(t, crashCopy(t, env.path))
	if got, want := stateJSON(t, crashed.store), mustJSON(states[len(states)-1]); got != want {
		t.Errorf("after compactions and a crash: %s, want %s", got, want)
	}
	a, _ := env.e.Client().XLen(ctx, "batchy:{w}:events").Result()
	b, _ := crashed.e.Client().XLen(ctx, "batchy:{w}:events").Result()
	if a != b {
		t.Errorf("events: %d after the crash, %d before", b, a)
	}
}

func fileSize(t *testing.T, name string) int64 {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestEmbeddedMaxJobs: a workflow bigger than the embedded store's scripts take is refused at
// load, with why, and changes nothing.
func TestEmbeddedMaxJobs(t *testing.T) {
	env := mustEmbedded(t, filepath.Join(t.TempDir(), "batchy.json"))
	env.store = rdb.New(env.e.Client(), rdb.Options{MaxJobs: rdb.EmbeddedMaxJobs, Embedded: env.e})
	var yaml strings.Builder
	for i := range rdb.EmbeddedMaxJobs + 1 {
		fmt.Fprintf(&yaml, "j%d: {}\n", i)
	}
	wf, err := config.Parse("w", []byte(yaml.String()), config.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.store.Load(ctx, wf, false)
	if batch.ErrorCode(err) != batch.EINVALID || !strings.Contains(batch.ErrorMessage(err), "up to 900 jobs") {
		t.Errorf("load of %d jobs: %v", len(wf.Jobs), err)
	}
	if names, _ := env.store.Workflows(ctx); len(names) != 0 {
		t.Errorf("workflows after the refused load: %v", names)
	}
	// The largest it takes opens and closes.
	wf.Jobs = wf.Jobs[:rdb.EmbeddedMaxJobs]
	if _, err := env.store.Load(ctx, wf, false); err != nil {
		t.Fatal(err)
	}
	env.cycles(t, 2)
}

// TestEmbeddedTTL: keys with a TTL (the alert marks) expire as time passes, and a restart
// expires the same ones (the expiry is journaled).
func TestEmbeddedTTL(t *testing.T) {
	env := mustEmbedded(t, filepath.Join(t.TempDir(), "batchy.json"))
	c := env.e.Client()
	c.Set(ctx, "batchy:{w}:alert:a", "x", time.Minute)
	c.Set(ctx, "batchy:{w}:alert:b", "x", time.Hour)
	rdb.ExpireBy(env.e, 2*time.Minute)
	c.Set(ctx, "batchy:{w}:alert:c", "x", time.Minute) // a write after: the expiry is journaled before it
	for _, s := range []*embeddedEnv{env, mustEmbedded(t, crashCopy(t, env.path))} {
		n, err := s.e.Client().Exists(ctx, "batchy:{w}:alert:a", "batchy:{w}:alert:b", "batchy:{w}:alert:c").Result()
		if err != nil || n != 2 {
			t.Errorf("keys left after the first one's TTL passed: %d (%v), want 2", n, err)
		}
		if s.e.Client().Exists(ctx, "batchy:{w}:alert:a").Val() != 0 {
			t.Errorf("the expired key is still there")
		}
	}
}

// TestEmbeddedDueNever: the embedded store answers a score of rdb.Never as "1e+15", which its Lua
// cannot read with tonumber: marking such a workflow due (a manual run, a resume) and rebuilding
// the index at start failed there ("bad argument #1 to min"), and the leader's conditional update
// never matched it.
func TestEmbeddedDueNever(t *testing.T) {
	env := mustEmbedded(t, filepath.Join(t.TempDir(), "data.json"))
	env.load(t, "a: {}\n")
	sched := env.store.Scheduler()
	now := time.Now()
	set := func(score string, next time.Time) {
		t.Helper()
		if err := sched.SetDue(ctx, []rdb.DueUpdate{{DueEntry: rdb.DueEntry{Workflow: "w", Score: score}, Next: next}}); err != nil {
			t.Fatal(err)
		}
	}
	due, _, err := sched.Due(ctx, now, 0, 0)
	if err != nil || len(due) != 1 {
		t.Fatalf("due after the load: %v, %v", due, err)
	}
	set(due[0].Score, rdb.Never)
	// The leader read Never and updates it: the condition must match "1e+15".
	all, _, err := sched.Due(ctx, rdb.Never, 0, 0)
	if err != nil || len(all) != 1 {
		t.Fatalf("index: %v, %v", all, err)
	}
	set(all[0].Score, now.Add(time.Hour))
	if _, next, err := sched.Due(ctx, now, time.Hour+time.Second, 0); err != nil || !next.Equal(time.UnixMilli(now.Add(time.Hour).UnixMilli())) {
		t.Fatalf("next due = %v, %v; want the update from Never to an hour from now", next, err)
	}
	set(all[0].Score, rdb.Never) // the score read no longer holds: left as it is
	set(strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10), rdb.Never)
	if err := sched.MarkDue(ctx, "w"); err != nil {
		t.Fatalf("marking a workflow due from Never: %v", err)
	}
	due, _, err = sched.Due(ctx, now, 0, 0)
	if err != nil || len(due) != 1 {
		t.Fatalf("due after the mark: %v, %v", due, err)
	}
	set(due[0].Score, rdb.Never)
	if n, err := env.store.RebuildIndex(ctx); err != nil || n != 1 {
		t.Fatalf("rebuilding the index with a workflow due Never: %d, %v", n, err)
	}
}
