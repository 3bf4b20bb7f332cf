package scheduler_test

import (
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/scheduler"
)

// dueBy returns the workflows the due index makes due by t.
func (e *env) dueBy(t time.Time) map[string]bool {
	e.t.Helper()
	due, _, err := e.store.Scheduler().Due(ctx, t, 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range due {
		out[d.Workflow] = true
	}
	return out
}

func (e *env) setPaused(wf string, paused bool, reason string) *batch.State {
	e.t.Helper()
	st, err := e.store.SetPaused(ctx, wf, paused, reason)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// TestPauseAcrossRestart: a paused workflow fires neither on its schedule nor on its upstream
// (after:), also under a new leader after a restart; it leaves the due index; manual runs still
// run; a resume brings it back, missed fire times caught up per its catchup setting.
func TestPauseAcrossRestart(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s1 := e.scheduler("s1", clk)
	e.load("cron", "batchy:\n  schedule: \"*/5 * * * *\"\na:\n  run: {type: exec, command: [\"true\"]}\n")
	e.load("up", "u: {}\n")
	e.load("down", "batchy:\n  after: [up]\nd:\n  run: {type: exec, command: [\"true\"]}\n")
	tick(t, s1, clk.Now()) // the schedule starts now

	st := e.setPaused("cron", true, "source migration")
	if !st.Paused || st.PauseReason != "source migration" || st.PausedAt == nil {
		t.Fatalf("state after the pause: paused %v at %v reason %q", st.Paused, st.PausedAt, st.PauseReason)
	}
	e.setPaused("down", true, "")
	// Pausing again changes nothing: the first pause's time and reason stay.
	if again := e.setPaused("cron", true, "other"); again.PauseReason != "source migration" || !again.PausedAt.Equal(*st.PausedAt) {
		t.Errorf("a second pause replaced the first: %q at %v", again.PauseReason, again.PausedAt)
	}
	page, err := e.store.Summaries(ctx, batch.SummaryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sum := range page.Summaries {
		if want := sum.Workflow != "up"; sum.Paused != want {
			t.Errorf("summary of %s: paused %v, want %v", sum.Workflow, sum.Paused, want)
		}
	}
	// The upstream becomes ready: down, paused, does not start.
	if _, err := e.store.Open(ctx, "up", batch.OpenRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.End(ctx, "up", batch.EndRequest{Status: batch.StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(5 * time.Minute))
	tick(t, s1, clk.Now())
	s1.Wait()
	if due := e.dueBy(t0.Add(24 * time.Hour)); due["cron"] || due["down"] {
		t.Errorf("paused workflows left in the due index: %v", due)
	}

	// A restart: a new leader looks at every workflow, and still fires nothing paused.
	s1.Stop("restart")
	s2 := e.scheduler("s2", clk)
	clk.Set(t0.Add(10 * time.Minute))
	tick(t, s2, clk.Now())
	s2.Wait()
	for _, wf := range []string{"cron", "down"} {
		if runs := e.runs(s2, wf); len(runs) != 0 {
			t.Fatalf("%s fired while paused: %d runs, the first %s", wf, len(runs), runs[0].Trigger)
		}
	}
	if !e.runsState(s2, "cron") {
		t.Fatal("the state read after the restart lost the pause")
	}

	// A manual run of a paused workflow runs.
	if _, err := s2.Trigger(ctx, "cron", scheduler.TriggerRequest{}); err != nil {
		t.Fatal(err)
	}
	tick(t, s2, clk.Now())
	s2.Wait()
	runs := e.runs(s2, "cron")
	if len(runs) != 1 || runs[0].Trigger != scheduler.TriggerManual || runs[0].State != scheduler.StateSucceeded {
		t.Fatalf("manual run of a paused workflow: %d runs %+v", len(runs), runs)
	}

	// Resume: the missed fire times are caught up (catchup: latest: one run, for 00:10), the
	// ready upstream starts down.
	clk.Set(t0.Add(12 * time.Minute))
	if st := e.setPaused("cron", false, ""); st.Paused || st.PausedAt != nil {
		t.Fatalf("state after the resume: paused %v at %v", st.Paused, st.PausedAt)
	}
	e.setPaused("down", false, "")
	tick(t, s2, clk.Now())
	s2.Wait()
	runs = e.runs(s2, "cron")
	if len(runs) != 2 || runs[0].Trigger != scheduler.TriggerCatchup || !runs[0].FireTime.Equal(t0.Add(10*time.Minute)) || runs[0].State != scheduler.StateSucceeded {
		t.Fatalf("after the resume: %d runs, the newest %+v", len(runs), runs[0])
	}
	if runs := e.runs(s2, "down"); len(runs) != 1 || runs[0].Trigger != scheduler.TriggerAfter {
		t.Fatalf("down after the resume: %d runs", len(runs))
	}
	clk.Set(t0.Add(15 * time.Minute))
	tick(t, s2, clk.Now())
	s2.Wait()
	if runs := e.runs(s2, "cron"); len(runs) != 3 || runs[0].Trigger != scheduler.TriggerCron {
		t.Fatalf("the next fire after the resume: %d runs", len(runs))
	}
}

// runsState reports whether the workflow's state says it is paused.
func (e *env) runsState(_ *scheduler.Scheduler, wf string) bool {
	e.t.Helper()
	st, err := e.store.State(ctx, wf)
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Paused
}

// TestPauseHoldsQueuedRuns: a scheduled run queued before the pause waits for the resume (and
// costs the ticks nothing meanwhile); a manual one does not.
func TestPauseHoldsQueuedRuns(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", "batchy:\n  schedule: \"*/5 * * * *\"\n  after: [up]\na:\n  run: {type: exec, command: [\"true\"]}\n")
	e.load("up", "u: {}\n")
	tick(t, s, clk.Now())
	clk.Set(t0.Add(5 * time.Minute))
	tick(t, s, clk.Now()) // the 00:05 run waits for up
	runs := e.runs(s, "w")
	if len(runs) != 1 || runs[0].State != scheduler.StateQueued {
		t.Fatalf("runs = %+v", runs)
	}
	e.setPaused("w", true, "")
	e.store.Open(ctx, "up", batch.OpenRequest{})
	e.store.End(ctx, "up", batch.EndRequest{Status: batch.StatusSuccess})
	clk.Set(t0.Add(6 * time.Minute))
	tick(t, s, clk.Now())
	s.Wait()
	if r := e.runs(s, "w")[0]; r.State != scheduler.StateQueued {
		t.Fatalf("a held run started while paused: %s", r.State)
	}
	if due := e.dueBy(t0.Add(24 * time.Hour)); due["w"] {
		t.Errorf("a paused workflow with a held run stays in the due index")
	}
	e.setPaused("w", false, "")
	tick(t, s, clk.Now())
	s.Wait()
	if r := e.runs(s, "w")[0]; r.State != scheduler.StateSucceeded {
		t.Fatalf("the held run after the resume: %s", r.State)
	}
}

// TestPauseBadInput: a bad pause request is refused and changes nothing.
func TestPauseBadInput(t *testing.T) {
	e := newEnv(t)
	e.load("w", "a: {}\n")
	for name, c := range map[string]struct {
		wf     string
		paused bool
		reason string
		code   string
	}{
		"unknown workflow":   {"nope", true, "", batch.ENOTFOUND},
		"invalid name":       {"no/pe", true, "", batch.EINVALID},
		"reason too long":    {"w", true, strings.Repeat("x", 501), batch.EINVALID},
		"control character":  {"w", true, "a\nb", batch.EINVALID},
		"resume with reason": {"w", false, "why", batch.EINVALID},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.store.SetPaused(ctx, c.wf, c.paused, c.reason)
			if batch.ErrorCode(err) != c.code {
				t.Fatalf("error %v, want code %s", err, c.code)
			}
			if e.runsState(nil, "w") {
				t.Fatal("a refused request paused the workflow")
			}
		})
	}
}

// TestPauseInExport: an export holds the pause, and an import restores it.
func TestPauseInExport(t *testing.T) {
	e := newEnv(t)
	e.load("w", "a: {}\n")
	e.setPaused("w", true, "kept in the export")
	d, err := e.store.Dump(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	e.setPaused("w", false, "")
	if err := e.store.Restore(ctx, d); err != nil {
		t.Fatal(err)
	}
	st, err := e.store.State(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Paused || st.PauseReason != "kept in the export" {
		t.Errorf("after the import: paused %v, reason %q", st.Paused, st.PauseReason)
	}
}
