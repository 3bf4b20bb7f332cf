package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestClaimSentAgain: a claim whose reply was lost and that go-redis sends again still answers
// "claimed" (else no replica would run that fire), while another replica's claim of the same fire
// is refused.
func TestClaimSentAgain(t *testing.T) {
	rdbtest.EachBackend(t, testClaimSentAgain)
}

func testClaimSentAgain(t *testing.T, b rdbtest.Backend) {
	ctx := context.Background()
	client, _ := b.New(t)
	r := &redisState{client: client, keys: rdb.Keys{Prefix: "batchy"}, keep: 100}
	now := time.Now()
	mine := &Run{ID: "run-mine", Workflow: "wf"}
	for attempt := 1; attempt <= 2; attempt++ {
		ok, err := r.claim(ctx, "wf", "last_fire", "", "1000", now, mine)
		if err != nil || !ok {
			t.Fatalf("attempt %d of the same claim = %v, %v; want claimed", attempt, ok, err)
		}
	}
	theirs := &Run{ID: "run-theirs", Workflow: "wf"}
	if ok, err := r.claim(ctx, "wf", "last_fire", "", "1000", now, theirs); err != nil || ok {
		t.Fatalf("another replica's claim of the same fire = %v, %v; want refused", ok, err)
	}
	if n := client.ZCard(ctx, r.keys.Runs("wf")).Val(); n != 1 {
		t.Errorf("%d runs for one fire, want 1", n)
	}
}

// TestTakeSentAgain: a take whose reply was lost and that go-redis sends again gets the run again,
// rather than leaving it held by no one executing it until its lease ends; another replica's take
// of that run gets nothing.
func TestTakeSentAgain(t *testing.T) {
	rdbtest.EachBackend(t, testTakeSentAgain)
}

func testTakeSentAgain(t *testing.T, b rdbtest.Backend) {
	ctx := context.Background()
	client, _ := b.New(t)
	r := &redisState{client: client, keys: rdb.Keys{Prefix: "batchy"}, keep: 100}
	now := time.Now()
	if ok, err := r.claim(ctx, "wf", "", "", "", now, &Run{ID: "run-1", Workflow: "wf"}); err != nil || !ok {
		t.Fatalf("creating the run: %v %v", ok, err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		run, before, err := r.take(ctx, "wf", "run-1", "me", now, time.Minute)
		if err != nil || run == nil || before != StateQueued {
			t.Fatalf("attempt %d of the same take = %v, %q, %v; want the run, queued before", attempt, run, before, err)
		}
	}
	if run, _, err := r.take(ctx, "wf", "run-1", "other", now, time.Minute); err != nil || run != nil {
		t.Fatalf("another replica's take of a run held = %v, %v; want nothing", run, err)
	}
	// Once an attempt has started (its record says running), the holder does not get the run
	// again: should it stop executing, the run is reaped when its lease ends.
	started := &Run{ID: "run-1", Workflow: "wf", State: StateRunning}
	if ok, err := r.update(ctx, started, "me", now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("update: %v %v", ok, err)
	}
	if run, _, err := r.take(ctx, "wf", "run-1", "me", now, time.Minute); err != nil || run != nil {
		t.Fatalf("a take of a run whose attempt started = %v, %v; want nothing", run, err)
	}
}
