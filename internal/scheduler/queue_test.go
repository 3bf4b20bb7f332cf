package scheduler_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/scheduler"
)

// TestConcurrencyQueue: under concurrency: queue, runs due while one runs wait and then run in
// the order they were created, up to max_queued waiting; a run due with the queue full is skipped,
// and a manual run then refused.
func TestConcurrencyQueue(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", `
batchy:
  schedule: "* * * * *"
  concurrency: queue
  max_queued: 2
a:
  run: {type: exec, command: ["sleep", "2"]}
`)
	tick(t, s, clk.Now())
	for i := 1; i <= 4; i++ { // run 1 starts, 2 and 3 queue, 4 finds the queue full
		clk.Set(t0.Add(time.Duration(i) * time.Minute))
		tick(t, s, clk.Now())
	}
	if _, err := s.Trigger(ctx, "w", scheduler.TriggerRequest{}); batch.ErrorCode(err) != batch.ECONFLICT || !strings.Contains(err.Error(), "max_queued: 2") {
		t.Errorf("a manual run with the queue full: %v, want a conflict naming max_queued", err)
	}
	for range 6 {
		s.Wait()
		tick(t, s, clk.Now())
	}
	s.Wait()
	runs := e.runs(s, "w")
	sort.Slice(runs, func(i, j int) bool { return runs[i].FireTime.Before(*runs[j].FireTime) })
	if len(runs) != 4 {
		t.Fatalf("runs = %d, want 4", len(runs))
	}
	for i, r := range runs[:3] {
		if r.State != scheduler.StateSucceeded {
			t.Errorf("run %d: %s %s, want succeeded", i+1, r.State, r.Reason)
		}
		if i > 0 && r.StartedAt.Before(*runs[i-1].EndedAt) {
			t.Errorf("run %d started before run %d ended", i+1, i)
		}
		if i > 0 && r.Attempts[0].BatchID <= runs[i-1].Attempts[0].BatchID {
			t.Errorf("run %d (batch %d) ran before run %d (batch %d)", i+1, r.Attempts[0].BatchID, i, runs[i-1].Attempts[0].BatchID)
		}
	}
	if r := runs[3]; r.State != scheduler.StateSkipped || !strings.Contains(r.Reason, "queue was full") {
		t.Errorf("run 4: %s %q, want skipped: queue full", r.State, r.Reason)
	}
}

// TestConcurrencyQueueConfig: max_queued needs concurrency: queue and a sane number.
func TestConcurrencyQueueConfig(t *testing.T) {
	for yaml, want := range map[string]string{
		"batchy:\n  max_queued: 3\na: {}\n":                          "max_queued needs concurrency: queue",
		"batchy:\n  concurrency: queue\n  max_queued: -1\na: {}\n":   "max_queued -1 must be from 1 to 1000",
		"batchy:\n  concurrency: queue\n  max_queued: 5000\na: {}\n": "max_queued 5000",
		"batchy:\n  concurrency: line\na: {}\n":                      "must be forbid, replace, allow or queue",
	} {
		if _, err := config.Parse("w", []byte(yaml), config.Limits{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}

// TestConcurrencyQueueCatchup: catch-up runs created together queue in fire time order.
func TestConcurrencyQueueCatchup(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", "batchy:\n  schedule: \"@hourly\"\n  catchup: all\n  concurrency: queue\na:\n  run: {type: exec, command: [\"true\"]}\n")
	tick(t, s, clk.Now())
	clk.Set(t0.Add(6*time.Hour + 5*time.Minute))
	for range 12 {
		tick(t, s, clk.Now())
		s.Wait()
	}
	runs := e.runs(s, "w")
	sort.Slice(runs, func(i, j int) bool { return runs[i].FireTime.Before(*runs[j].FireTime) })
	if len(runs) != 6 {
		t.Fatalf("runs = %d, want 6", len(runs))
	}
	for i, r := range runs {
		if r.State != scheduler.StateSucceeded {
			t.Fatalf("run %d: %s %s", i, r.State, r.Reason)
		}
		if i > 0 && r.Attempts[0].BatchID <= runs[i-1].Attempts[0].BatchID {
			t.Errorf("catch-up %d ran before %d", i, i-1)
		}
	}
}
