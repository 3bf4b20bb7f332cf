package rdb_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// record is a run record as the scheduler writes it: the store reads its "state" only.
func record(id, state string) rdb.RunRecord {
	return rdb.RunRecord{ID: id, Workflow: "wf", State: state, Record: `{"id":"` + id + `","workflow":"wf","state":"` + state + `"}`}
}

// TestClaimSentAgain: a claim whose reply was lost and that go-redis sends again still answers
// "claimed" (else no replica would run that fire), while another replica's claim of the same fire
// is refused.
func TestClaimSentAgain(t *testing.T) {
	rdbtest.EachBackend(t, testClaimSentAgain)
}

func testClaimSentAgain(t *testing.T, b rdbtest.Backend) {
	client, _ := b.New(t)
	keys := rdb.Keys{Prefix: "batchy"}
	r := rdb.NewSchedulerStore(client, keys)
	now := time.Now()
	fire := rdb.Fire{Field: "last_fire", Value: "1000"}
	for attempt := 1; attempt <= 2; attempt++ {
		ok, err := r.Claim(ctx, "wf", fire, now, 100, record("run-mine", "queued"))
		if err != nil || !ok {
			t.Fatalf("attempt %d of the same claim = %v, %v; want claimed", attempt, ok, err)
		}
	}
	if ok, err := r.Claim(ctx, "wf", fire, now, 100, record("run-theirs", "queued")); err != nil || ok {
		t.Fatalf("another replica's claim of the same fire = %v, %v; want refused", ok, err)
	}
	if n := client.ZCard(ctx, keys.Runs("wf")).Val(); n != 1 {
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
	client, _ := b.New(t)
	r := rdb.NewSchedulerStore(client, rdb.Keys{Prefix: "batchy"})
	now := time.Now()
	if ok, err := r.Claim(ctx, "wf", rdb.Fire{}, now, 100, record("run-1", "queued")); err != nil || !ok {
		t.Fatalf("creating the run: %v %v", ok, err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		run, err := r.Take(ctx, "wf", "run-1", "me", now, time.Minute)
		if err != nil || run == nil || run.State != "queued" {
			t.Fatalf("attempt %d of the same take = %+v, %v; want the run, queued before", attempt, run, err)
		}
	}
	if run, err := r.Take(ctx, "wf", "run-1", "other", now, time.Minute); err != nil || run != nil {
		t.Fatalf("another replica's take of a run held = %+v, %v; want nothing", run, err)
	}
	// Once an attempt has started (its record says running), the holder does not get the run
	// again: should it stop executing, the run is reaped when its lease ends.
	if ok, err := r.Update(ctx, record("run-1", "running"), "me", now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("update: %v %v", ok, err)
	}
	if run, err := r.Take(ctx, "wf", "run-1", "me", now, time.Minute); err != nil || run != nil {
		t.Fatalf("a take of a run whose attempt started = %+v, %v; want nothing", run, err)
	}
}

// TestClaimTrims: the run index keeps the newest runs; the records of finished runs it drops are
// deleted (in a second step, as their keys are only known then), those of unfinished runs kept.
func TestClaimTrims(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		client, _ := b.New(t)
		keys := rdb.Keys{Prefix: "batchy"}
		r := rdb.NewSchedulerStore(client, keys)
		now := time.Now()
		for i, id := range []string{"run-1", "run-2"} {
			if ok, err := r.Claim(ctx, "wf", rdb.Fire{}, now.Add(time.Duration(i)*time.Second), 2, record(id, "queued")); err != nil || !ok {
				t.Fatalf("claim %s: %v %v", id, ok, err)
			}
		}
		// run-1 finishes, run-2 stays queued.
		if run, err := r.Take(ctx, "wf", "run-1", "me", now.Add(time.Hour), time.Minute); err != nil || run == nil {
			t.Fatalf("take: %+v %v", run, err)
		}
		if ok, err := r.Update(ctx, record("run-1", "succeeded"), "me", now); err != nil || !ok {
			t.Fatalf("update: %v %v", ok, err)
		}
		for i, id := range []string{"run-3", "run-4"} {
			if ok, err := r.Claim(ctx, "wf", rdb.Fire{}, now.Add(time.Duration(2+i)*time.Second), 2, record(id, "queued")); err != nil || !ok {
				t.Fatalf("claim %s: %v %v", id, ok, err)
			}
		}
		ids, err := r.RunIDs(ctx, "wf", 10)
		if err != nil || len(ids) != 2 || ids[0] != "run-4" || ids[1] != "run-3" {
			t.Errorf("index = %v, %v; want [run-4 run-3]", ids, err)
		}
		if _, err := r.Run(ctx, "wf", "run-1"); batch.ErrorCode(err) != batch.ENOTFOUND {
			t.Errorf("the finished run dropped from the index: %v, want its record deleted", err)
		}
		if run, err := r.Run(ctx, "wf", "run-2"); err != nil || run.State != "queued" {
			t.Errorf("the queued run dropped from the index = %+v, %v; want its record kept", run, err)
		}
		if n := client.Exists(ctx, keys.Trimmed("wf")).Val(); n != 0 {
			t.Errorf("the trimmed set is left with %v members, want none", client.SMembers(ctx, keys.Trimmed("wf")).Val())
		}
	})
}

// TestRenewLostAndCancel: renewing a run another replica holds fails with ECONFLICT (the
// scheduler stops executing it); cancelling a missing run is ENOTFOUND, a finished one ECONFLICT.
func TestRenewLostAndCancel(t *testing.T) {
	r := rdb.NewSchedulerStore(rdbtest.StartRedis(t).Client(t), rdb.Keys{Prefix: "batchy"})
	now := time.Now()
	if ok, err := r.Claim(ctx, "wf", rdb.Fire{}, now, 100, record("run-1", "queued")); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if run, err := r.Take(ctx, "wf", "run-1", "me", now, time.Minute); err != nil || run == nil {
		t.Fatalf("take: %+v %v", run, err)
	}
	if err := r.Cancel(ctx, "wf", "run-1", "stop"); err != nil {
		t.Fatal(err)
	}
	if reason, err := r.Renew(ctx, "wf", "run-1", "me", now.Add(time.Minute)); err != nil || reason != "stop" {
		t.Errorf("renew by the holder = %q, %v; want the cancel reason", reason, err)
	}
	if _, err := r.Renew(ctx, "wf", "run-1", "other", now.Add(time.Minute)); batch.ErrorCode(err) != batch.ECONFLICT {
		t.Errorf("renew by another replica: %v, want %s", err, batch.ECONFLICT)
	}
	if err := r.Cancel(ctx, "wf", "run-2", "stop"); batch.ErrorCode(err) != batch.ENOTFOUND {
		t.Errorf("cancel of a missing run: %v, want %s", err, batch.ENOTFOUND)
	}
	if ok, err := r.Update(ctx, record("run-1", "cancelled"), "me", now); err != nil || !ok {
		t.Fatalf("update: %v %v", ok, err)
	}
	if err := r.Cancel(ctx, "wf", "run-1", "stop"); batch.ErrorCode(err) != batch.ECONFLICT {
		t.Errorf("cancel of a finished run: %v, want %s", err, batch.ECONFLICT)
	}
	if ids, err := r.Active(ctx, "wf"); err != nil || len(ids) != 0 {
		t.Errorf("active after the run ended = %v, %v; want none", ids, err)
	}
}

// TestNewestRuns: the newest runs of many workflows at once, as RunIDs and Run read them one
// workflow at a time; a workflow without runs has none.
func TestNewestRuns(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		client, _ := b.New(t)
		r := rdb.NewSchedulerStore(client, rdb.Keys{Prefix: "batchy"})
		now := time.Now()
		for i, id := range []string{"run-1", "run-2", "run-3", "run-4"} {
			rec := record(id, "queued")
			rec.Workflow = "a"
			if ok, err := r.Claim(ctx, "a", rdb.Fire{}, now.Add(time.Duration(i)*time.Second), 10, rec); err != nil || !ok {
				t.Fatalf("claim %s: %v %v", id, ok, err)
			}
		}
		if ok, err := r.Claim(ctx, "c", rdb.Fire{}, now, 10, rdb.RunRecord{ID: "run-9", Workflow: "c", State: "queued", Record: `{"id":"run-9"}`}); err != nil || !ok {
			t.Fatalf("claim run-9: %v %v", ok, err)
		}
		if err := r.Cancel(ctx, "c", "run-9", "stop"); err != nil {
			t.Fatal(err)
		}
		got, err := r.NewestRuns(ctx, []string{"a", "b", "c"}, 3)
		if err != nil {
			t.Fatal(err)
		}
		var ids [][]string
		for _, list := range got {
			var l []string
			for _, rec := range list {
				l = append(l, rec.Workflow+"/"+rec.ID+"/"+rec.State+"/"+rec.Cancel)
			}
			ids = append(ids, l)
		}
		want := [][]string{{"a/run-4/queued/", "a/run-3/queued/", "a/run-2/queued/"}, nil, {"c/run-9/queued/stop"}}
		if !reflect.DeepEqual(ids, want) {
			t.Errorf("NewestRuns = %q, want %q", ids, want)
		}
		if one, err := r.Run(ctx, "a", "run-4"); err != nil || one.Record != got[0][0].Record {
			t.Errorf("run-4 read alone = %+v, %v; want the record NewestRuns read, %q", one, err, got[0][0].Record)
		}
	})
}
