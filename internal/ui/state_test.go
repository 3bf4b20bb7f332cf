package ui

import (
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/scheduler"
)

func TestExplain(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return batch.FormatTime(now.Add(d)) }
	rules := viewRules{now: now, longOpen: 4 * time.Hour, lateAfter: 30 * time.Minute, scheduled: true, location: time.UTC}
	tm := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	code := func(c int) *int { return &c }
	failedJob := job("ledger", map[string]any{"status": "failed", "batch_id": 7, "batch_start": at(-time.Hour), "batch_end": at(-50 * time.Minute)})
	okJob := job("extract", map[string]any{"status": "success", "batch_id": 7, "batch_start": at(-time.Hour), "batch_end": at(-55 * time.Minute)})
	openJob := func(name string, needs ...string) batch.Job {
		f := map[string]any{"status": "open", "batch_id": 8, "batch_start": at(-time.Minute)}
		if len(needs) > 0 {
			f["needs"] = needs
		}
		return job(name, f)
	}
	failedAttempt := scheduler.Attempt{Number: 2, Start: now.Add(-time.Hour), End: tm(-50 * time.Minute), Jobs: map[string]*scheduler.JobResult{
		"extract": {Status: "success"},
		"ledger":  {Status: "failed", ExitCode: code(2), Error: "exit status 2"},
	}}
	for _, c := range []struct {
		name     string
		settings batch.Settings
		jobs     batch.Jobs
		runs     []*scheduler.Run
		upstream map[string]string
		// want: phase | words | cause | cause URL
		want string
	}{
		{name: "never run", jobs: batch.Jobs{job("a", nil)}, want: "new | never run |  | "},
		{name: "succeeded", jobs: batch.Jobs{okJob}, want: "ok | up to date |  | "},
		{name: "failed by hand, with metadata", jobs: batch.Jobs{okJob, job("ledger", map[string]any{"status": "failed", "metadata": map[string]any{"error": "disk full"}})},
			want: `failed | failed | ledger: {"error":"disk full"} | `},
		{name: "failed (final) with exit code", jobs: batch.Jobs{okJob, failedJob},
			runs: []*scheduler.Run{{ID: "r1", State: scheduler.StateFailed, Reason: "retries exhausted", Attempts: []scheduler.Attempt{failedAttempt}}},
			want: "failed | failed (final) | ledger exit 2: exit status 2; retries exhausted | /ui/workflows/wf/runs/r1#attempt-2-ledger"},
		{name: "failed by hand after a run that succeeded", jobs: batch.Jobs{okJob, failedJob},
			runs: []*scheduler.Run{{ID: "r9", State: scheduler.StateSucceeded, Attempts: []scheduler.Attempt{{Number: 1}}},
				{ID: "r1", State: scheduler.StateFailed, Attempts: []scheduler.Attempt{failedAttempt}}},
			want: "failed | failed |  | "},
		{name: "timeout", jobs: batch.Jobs{failedJob},
			runs: []*scheduler.Run{{ID: "r1", State: scheduler.StateFailed, Attempts: []scheduler.Attempt{{Number: 1, Error: "the run timed out after 1s",
				Jobs: map[string]*scheduler.JobResult{"ledger": {Status: "failed", ExitCode: code(-1), Error: "killed"}}}}}},
			want: "failed | failed (final) | ledger exit -1: killed (the run timed out after 1s) | /ui/workflows/wf/runs/r1#attempt-1-ledger"},
		{name: "retrying", jobs: batch.Jobs{okJob, failedJob},
			runs: []*scheduler.Run{{ID: "r2", State: scheduler.StateWaitingRetry, NotBefore: now.Add(5 * time.Minute), Attempts: []scheduler.Attempt{failedAttempt}}},
			want: "retrying | retrying at 12:05 | ledger exit 2: exit status 2 | /ui/workflows/wf/runs/r2#attempt-2-ledger"},
		{name: "running, one waits for its needs", jobs: batch.Jobs{openJob("extract"), openJob("load", "extract")},
			runs: []*scheduler.Run{{ID: "r3", State: scheduler.StateRunning, Attempts: []scheduler.Attempt{{Number: 1, Jobs: map[string]*scheduler.JobResult{
				"extract": {Status: "running", Start: tm(-time.Minute)}, "load": {Status: "pending"}}}}}},
			want: "running | running extract; waiting for needs: load (needs extract) |  | "},
		{name: "all wait for needs", jobs: batch.Jobs{openJob("load", "extract")},
			runs: []*scheduler.Run{{ID: "r3", State: scheduler.StateRunning, Attempts: []scheduler.Attempt{{Number: 1, Jobs: map[string]*scheduler.JobResult{
				"load": {Status: "pending"}}}}}},
			want: "waiting-needs | waiting for needs: load (needs extract) |  | "},
		{name: "waiting for a failed upstream", settings: batch.Settings{After: []string{"crm:contacts", "web"}}, jobs: batch.Jobs{okJob},
			runs:     []*scheduler.Run{{ID: "r4", State: scheduler.StateQueued, WaitAfter: true}},
			upstream: map[string]string{"crm": "failed", "web": "success"},
			want:     "waiting-upstream | waiting for upstream crm (failed) |  | "},
		{name: "deadline missed", settings: batch.Settings{Deadline: "06:00"}, jobs: batch.Jobs{job("a", map[string]any{"status": "success", "batch_id": 1,
			"batch_start": at(-30 * time.Hour), "batch_end": at(-29 * time.Hour)})},
			want: "late | late: deadline 06:00 missed |  | "},
		{name: "deadline met", settings: batch.Settings{Deadline: "06:00"}, jobs: batch.Jobs{job("a", map[string]any{"status": "success", "batch_id": 1,
			"batch_start": at(-7 * time.Hour), "batch_end": at(-6 * time.Hour)})},
			want: "ok | up to date |  | "},
		{name: "open too long by max_open", settings: batch.Settings{MaxOpen: batch.Duration(30 * time.Minute)},
			jobs: batch.Jobs{job("a", map[string]any{"status": "open", "batch_id": 1, "batch_start": at(-time.Hour)})},
			want: "long-open | open too long |  | "},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := &batch.State{Workflow: "wf", Settings: c.settings, Jobs: c.jobs, LoadedAt: now.Add(-48 * time.Hour)}
			w := summarize(st, rules)
			explain(w, c.runs, c.upstream, rules)
			got := w.Phase + " | " + w.PhaseText + " | " + w.Cause + " | " + w.CauseURL
			if got != c.want {
				t.Errorf("\n got %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestRunGantt(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	attempts := []attemptView{{Attempt: scheduler.Attempt{Number: 1, Start: at(-10 * time.Minute)}, Results: []jobResult{
		{Name: "extract", Status: "success", Start: at(-10 * time.Minute), End: at(-6 * time.Minute), Anchor: "attempt-1-extract"},
		{Name: "load", Status: "running", Start: at(-6 * time.Minute), Anchor: "attempt-1-load"},
		{Name: "report", Status: "pending", Needs: []string{"load"}, Anchor: "attempt-1-report"},
	}}}
	g := runGantt(attempts, now)
	if len(g.Rows) != 3 {
		t.Fatalf("rows %+v", g.Rows)
	}
	ex, ld, rp := g.Rows[0], g.Rows[1], g.Rows[2]
	// 10 minutes over 760 px from x=200: extract takes the first 4 (304 px), load the last 6,
	// running to now.
	if ex.X != 200 || ex.W != 304 || ld.X != 504 || ld.W != 456 || !ld.Running {
		t.Errorf("bars: extract %+v, load %+v", ex, ld)
	}
	if !rp.Waiting || rp.Title != "attempt 1, report: waiting for its needs (load)" {
		t.Errorf("report: %+v", rp)
	}
	if len(g.Ticks) != 5 || g.Ticks[0].Label != "11:50:00" || g.Ticks[4].Label != "12:00:00" {
		t.Errorf("ticks %+v", g.Ticks)
	}
	if runGantt(nil, now) != nil {
		t.Error("a timeline without jobs")
	}
}
