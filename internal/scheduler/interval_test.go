package scheduler_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/scheduler"
)

// settle ticks until no run of wf is queued, running or waiting (at most n ticks).
func (e *env) settle(s *scheduler.Scheduler, clk *clock, wf string, n int) []*scheduler.Run {
	e.t.Helper()
	for range n {
		tick(e.t, s, clk.Now())
		s.Wait()
		done := true
		for _, r := range e.runs(s, wf) {
			if r.EndedAt == nil {
				done = false
			}
		}
		if done {
			break
		}
	}
	runs := e.runs(s, wf)
	sort.Slice(runs, func(i, j int) bool { return runs[i].FireTime.Before(*runs[j].FireTime) })
	return runs
}

// window returns the window job a's batch of the run's last attempt had, from history.
func (e *env) window(r *scheduler.Run) (from, to time.Time, batchID int64) {
	e.t.Helper()
	a := r.Attempts[len(r.Attempts)-1]
	b, err := e.store.Batch(ctx, r.Workflow, a.BatchID)
	if err != nil {
		e.t.Fatal(err)
	}
	j, _ := b.Jobs.Get("a")
	from, _ = j.Fields.Time(batch.FieldFromDate)
	to, _ = j.Fields.Time(batch.FieldToDate)
	return from, to, a.BatchID
}

// TestIntervalWindows: under window: schedule, the catch-up runs of missed fire times get the
// intervals they stand for ([previous fire, fire) in the schedule's time zone), a rerun of a fire
// gets its interval again, a retry reopens the same interval, and a backfill over 6 intervals
// creates 6 runs that run oldest first, one after another.
func TestIntervalWindows(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0) // 10:00 UTC
	s := e.scheduler("s1", clk)
	// Every hour at :00 in India (UTC+05:30): at :30 UTC.
	e.load("w", `
batchy:
  schedule: "0 * * * *"
  timezone: Asia/Kolkata
  window: schedule
  catchup: all
  concurrency: forbid
a:
  reprocess_hours: 5
  run: {type: exec, command: ["true"]}
`)
	tick(t, s, clk.Now()) // the schedule starts now
	clk.Set(t0.Add(3*time.Hour + 10*time.Minute))
	runs := e.settle(s, clk, "w", 10)
	if len(runs) != 3 {
		t.Fatalf("catch-up runs = %d, want 3 (10:30, 11:30, 12:30 UTC)", len(runs))
	}
	var lastID int64
	for i, r := range runs {
		fire := t0.Add(time.Duration(i)*time.Hour + 30*time.Minute)
		if r.State != scheduler.StateSucceeded || r.Trigger != scheduler.TriggerCatchup || !r.FireTime.Equal(fire) {
			t.Fatalf("run %d: %s %s fire %s, want succeeded catchup at %s", i, r.State, r.Trigger, r.FireTime, fire)
		}
		from, to, id := e.window(r)
		if !from.Equal(fire.Add(-time.Hour)) || !to.Equal(fire) {
			t.Errorf("catch-up of %s: window [%s, %s), want [%s, %s)", fire, from, to, fire.Add(-time.Hour), fire)
		}
		if id <= lastID {
			t.Errorf("catch-up of %s ran before an earlier one (batch %d after %d)", fire, id, lastID)
		}
		lastID = id
	}

	// A rerun of the 11:30 fire gets its interval again (reprocess_hours does not apply).
	rerun, err := s.Trigger(ctx, "w", scheduler.TriggerRequest{FireTime: t0.Add(90 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	e.settle(s, clk, "w", 5)
	r, _ := s.GetRun(ctx, "w", rerun.ID)
	if from, to, _ := e.window(r); r.State != scheduler.StateSucceeded || !from.Equal(t0.Add(30*time.Minute)) || !to.Equal(t0.Add(90*time.Minute)) {
		t.Errorf("rerun of 11:30: %s, window [%s, %s), want [10:30, 11:30)", r.State, from, to)
	}
	// A manual run without a fire time: the latest whole interval, [11:30, 12:30).
	latest, err := s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if latest.Interval == nil || !latest.Interval.From.Equal(t0.Add(90*time.Minute)) || !latest.Interval.To.Equal(t0.Add(150*time.Minute)) {
		t.Errorf("manual run's interval %+v, want [11:30, 12:30)", latest.Interval)
	}
	e.settle(s, clk, "w", 5)

	// A backfill over 6 intervals: 03:30 to 09:30 UTC.
	created, err := s.Backfill(ctx, "w", scheduler.BackfillRequest{From: t0.Add(-390 * time.Minute), To: t0.Add(-30 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 6 {
		t.Fatalf("backfill created %d runs, want 6", len(created))
	}
	// The leader starts one at a time: after one tick, one ran and five wait.
	tick(t, s, clk.Now())
	s.Wait()
	started := 0
	for _, c := range created {
		if r, _ := s.GetRun(ctx, "w", c.ID); r.StartedAt != nil {
			started++
		}
	}
	if started != 1 {
		t.Errorf("after one tick %d backfill runs started, want 1 (one after another)", started)
	}
	e.settle(s, clk, "w", 10)
	lastID = 0
	for i, c := range created {
		r, _ := s.GetRun(ctx, "w", c.ID)
		want := t0.Add(time.Duration(i-6)*time.Hour - 30*time.Minute)
		from, to, id := e.window(r)
		if r.State != scheduler.StateSucceeded || r.Trigger != scheduler.TriggerBackfill || !from.Equal(want) || !to.Equal(want.Add(time.Hour)) {
			t.Errorf("backfill run %d: %s %s window [%s, %s), want [%s, %s)", i, r.State, r.Trigger, from, to, want, want.Add(time.Hour))
		}
		if id <= lastID {
			t.Errorf("backfill run %d (batch %d) ran before the one before it (batch %d)", i, id, lastID)
		}
		lastID = id
	}
	// The next regular fire (13:30) gets [12:30, 13:30), whatever ran since.
	clk.Set(t0.Add(3*time.Hour + 30*time.Minute))
	runs = e.settle(s, clk, "w", 5)
	last := runs[len(runs)-1]
	if from, to, _ := e.window(last); last.Trigger != scheduler.TriggerCron || !from.Equal(t0.Add(150*time.Minute)) || !to.Equal(t0.Add(210*time.Minute)) {
		t.Errorf("cron run at 13:30: %s window [%s, %s)", last.Trigger, from, to)
	}
}

// TestIntervalRetryKeepsTheWindow: a retry of an interval run reopens exactly its interval.
func TestIntervalRetryKeepsTheWindow(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", `
batchy:
  schedule: "@hourly"
  window: schedule
  retries: {count: 1, backoff: 10m}
a:
  run: {type: exec, command: `+failTimes(t, 1)+`}
`)
	tick(t, s, clk.Now())
	clk.Set(t0.Add(time.Hour))
	tick(t, s, clk.Now())
	s.Wait()
	clk.Set(t0.Add(time.Hour + 10*time.Minute))
	runs := e.settle(s, clk, "w", 5)
	r := runs[0]
	if r.State != scheduler.StateSucceeded || len(r.Attempts) != 2 {
		t.Fatalf("run: %s, %d attempts", r.State, len(r.Attempts))
	}
	for _, a := range r.Attempts {
		b, _ := e.store.Batch(ctx, "w", a.BatchID)
		j, _ := b.Jobs.Get("a")
		from, _ := j.Fields.Time(batch.FieldFromDate)
		to, _ := j.Fields.Time(batch.FieldToDate)
		if !from.Equal(t0) || !to.Equal(t0.Add(time.Hour)) {
			t.Errorf("attempt %d: window [%s, %s), want [10:00, 11:00)", a.Number, from, to)
		}
	}
}

// TestIntervalBadInput: what an interval workflow refuses, changing nothing.
func TestIntervalBadInput(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", "batchy:\n  schedule: \"0 * * * *\"\n  window: schedule\na: {}\n")
	e.load("plain", "a: {}\n")
	for name, c := range map[string]struct {
		run  func() error
		want string
	}{
		"not a fire time": {func() error {
			_, err := s.Trigger(ctx, "w", scheduler.TriggerRequest{FireTime: t0.Add(-10 * time.Minute)})
			return err
		}, "not a fire time"},
		"future fire time": {func() error {
			_, err := s.Trigger(ctx, "w", scheduler.TriggerRequest{FireTime: t0.Add(time.Hour)})
			return err
		}, "in the future"},
		"from and to on runs": {func() error {
			_, err := s.Trigger(ctx, "w", scheduler.TriggerRequest{From: t0.Add(-time.Hour), To: t0})
			return err
		}, "one run per interval"},
		"fire time without window": {func() error {
			_, err := s.Trigger(ctx, "plain", scheduler.TriggerRequest{FireTime: t0})
			return err
		}, "no window: schedule"},
		"backfill without an interval": {func() error {
			_, err := s.Backfill(ctx, "w", scheduler.BackfillRequest{From: t0.Add(-50 * time.Minute), To: t0.Add(-5 * time.Minute)})
			return err
		}, "no whole interval"},
		"backfill into the future": {func() error {
			_, err := s.Backfill(ctx, "w", scheduler.BackfillRequest{From: t0.Add(-time.Hour), To: t0.Add(time.Hour)})
			return err
		}, "in the future"},
		"backfill too long": {func() error {
			_, err := s.Backfill(ctx, "w", scheduler.BackfillRequest{From: t0.Add(-1000 * time.Hour), To: t0})
			return err
		}, "more than 500 runs"},
	} {
		t.Run(name, func(t *testing.T) {
			err := c.run()
			if batch.ErrorCode(err) != batch.EINVALID || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want invalid with %q", err, c.want)
			}
			if n := len(e.runs(s, "w")) + len(e.runs(s, "plain")); n != 0 {
				t.Fatalf("a refused request created %d runs", n)
			}
		})
	}
}

// TestIntervalConfigRefused: window: schedule needs a schedule; window takes no other value.
func TestIntervalConfigRefused(t *testing.T) {
	for yaml, want := range map[string]string{
		"batchy:\n  window: schedule\na: {}\n":                      "window: schedule needs a schedule",
		"batchy:\n  schedule: \"@daily\"\n  window: daily\na: {}\n": `window "daily" must be schedule`,
	} {
		if _, err := config.Parse("w", []byte(yaml), config.Limits{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}

// TestIntervalAfterCatchup: under window: schedule with after:, each interval's run waits until
// the upstream succeeded after the interval's end; catch-up intervals then all run, in order, after
// one upstream success (not one upstream run each).
func TestIntervalAfterCatchup(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	e.store = rdb.New(e.client, rdb.Options{Now: clk.Now}) // the upstream's batch_end on the test clock
	s := e.scheduler("s1", clk)
	e.load("up", "u: {}\n")
	e.load("w", "batchy:\n  schedule: \"@hourly\"\n  window: schedule\n  catchup: all\n  after: [up]\na:\n  run: {type: exec, command: [\"true\"]}\n")
	tick(t, s, clk.Now())
	upstream := func(at time.Time) {
		t.Helper()
		clk.Set(at)
		if _, err := e.store.Open(ctx, "up", batch.OpenRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.End(ctx, "up", batch.EndRequest{Status: batch.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	upstream(t0.Add(5 * time.Minute))
	clk.Set(t0.Add(3*time.Hour + 10*time.Minute)) // 11:00, 12:00 and 13:00 missed
	tick(t, s, clk.Now())
	s.Wait()
	for _, r := range e.runs(s, "w") {
		if r.StartedAt != nil {
			t.Fatalf("run for %s started before the upstream succeeded after it", r.FireTime)
		}
	}
	upstream(t0.Add(3*time.Hour + 15*time.Minute))
	clk.Set(t0.Add(3*time.Hour + 20*time.Minute))
	runs := e.settle(s, clk, "w", 10)
	if len(runs) != 3 {
		t.Fatalf("runs = %d, want 3", len(runs))
	}
	for i, r := range runs {
		if r.State != scheduler.StateSucceeded || !r.Interval.To.Equal(t0.Add(time.Duration(i+1)*time.Hour)) {
			t.Errorf("run %d: %s, interval %+v", i, r.State, r.Interval)
		}
	}
}
