package ui

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// job builds a job from field values.
func job(name string, fields map[string]any) batch.Job {
	f := batch.Fields{}
	for k, v := range fields {
		raw, _ := json.Marshal(v)
		f[k] = raw
	}
	return batch.Job{Name: name, Fields: f}
}

func TestSummarize(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return batch.FormatTime(now.Add(d)) }
	loaded := now.Add(-30 * 24 * time.Hour)
	rules := viewRules{now: now, longOpen: 4 * time.Hour, lateAfter: 30 * time.Minute, scheduled: true, location: time.UTC}
	ended := func(name, status string, start, end time.Duration) batch.Job {
		return job(name, map[string]any{"status": status, "batch_id": 100, "batch_start": at(start), "batch_end": at(end),
			"from_date": at(start - 24*time.Hour), "to_date": at(start)})
	}
	for _, c := range []struct {
		name     string
		settings batch.Settings
		jobs     batch.Jobs
		rules    viewRules
		// want: status, then the reasons ("-": none), then the latest batch's duration.
		want string
	}{
		{name: "never run", jobs: batch.Jobs{job("a", nil)}, rules: rules, want: "new | - | 0s"},
		{name: "succeeded", jobs: batch.Jobs{ended("a", "success", -2*time.Hour, -90*time.Minute), ended("b", "success", -2*time.Hour, -time.Hour)},
			rules: rules, want: "success | - | 1h00m"},
		{name: "failed stands out", jobs: batch.Jobs{ended("a", "success", -2*time.Hour, -time.Hour), ended("b", "failed", -2*time.Hour, -time.Hour)},
			rules: rules, want: "failed | failed: b | 1h00m"},
		{name: "the original's failure", jobs: batch.Jobs{job("a", map[string]any{"status": "failure"})}, rules: rules, want: "failed | failed: a | 0s"},
		{name: "open a little", jobs: batch.Jobs{job("a", map[string]any{"status": "open", "batch_id": 100, "batch_start": at(-time.Hour)})},
			rules: rules, want: "open | - | 1h00m"},
		{name: "open too long", jobs: batch.Jobs{job("a", map[string]any{"status": "open", "batch_id": 100, "batch_start": at(-5 * time.Hour)})},
			rules: rules, want: "open | open for 5h00m (job a, limit 4h00m) | 5h00m"},
		{name: "late", settings: batch.Settings{Schedule: "0 2 * * *"}, jobs: batch.Jobs{ended("a", "success", -34*time.Hour, -33*time.Hour)},
			rules: rules, want: "success | late: was due 2026-11-22 02:00:00Z | 1h00m"},
		{name: "not late yet", settings: batch.Settings{Schedule: "30 11 * * *"}, jobs: batch.Jobs{ended("a", "success", -24*time.Hour, -23*time.Hour)},
			rules: rules, want: "success | - | 1h00m"},
		{name: "no scheduler, no lateness", settings: batch.Settings{Schedule: "0 2 * * *"}, jobs: batch.Jobs{ended("a", "success", -34*time.Hour, -33*time.Hour)},
			rules: viewRules{now: now, longOpen: time.Hour, lateAfter: time.Minute}, want: "success | - | 1h00m"},
		{name: "an open batch is not late", settings: batch.Settings{Schedule: "0 2 * * *"},
			jobs:  batch.Jobs{job("a", map[string]any{"status": "open", "batch_id": 100, "batch_start": at(-30 * time.Hour)})},
			rules: rules, want: "open | open for 30h00m (job a, limit 4h00m) | 30h00m"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := &batch.State{Workflow: "wf", Jobs: c.jobs, Settings: c.settings, LoadedAt: loaded}
			w := summarize(st, c.rules)
			reasons := strings.Join(w.Reasons, ", ")
			if reasons == "" {
				reasons = "-"
			}
			got := w.Status + " | " + reasons + " | " + fmtDuration(w.Duration)
			if got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
			if w.Attention() != (len(w.Reasons) > 0) {
				t.Errorf("attention %v with reasons %v", w.Attention(), w.Reasons)
			}
		})
	}
}

func TestSummarizeWindowAndNext(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	st := &batch.State{Workflow: "wf", LoadedAt: now.Add(-time.Hour), Settings: batch.Settings{Schedule: "0 2 * * *", Timezone: "Europe/Berlin"}, Jobs: batch.Jobs{
		job("old", map[string]any{"status": "success", "batch_id": 1, "from_date": "2026-01-01T00:00:00Z", "to_date": "2026-01-02T00:00:00Z"}),
		job("a", map[string]any{"status": "open", "batch_id": 2, "batch_start": batch.FormatTime(now.Add(-time.Minute)), "from_date": "2026-11-20T00:00:00Z", "to_date": "2026-11-22T11:59:00Z"}),
		job("b", map[string]any{"status": "success", "batch_id": 2, "batch_start": batch.FormatTime(now.Add(-time.Minute)), "batch_end": batch.FormatTime(now), "from_date": "2026-11-19T00:00:00Z", "to_date": "2026-11-22T11:59:00Z"}),
	}}
	w := summarize(st, viewRules{now: now, longOpen: time.Hour, lateAfter: time.Hour, scheduled: true, location: time.UTC})
	if got := fmtTime(w.From) + " " + fmtTime(w.To); got != "2026-11-19 00:00:00Z 2026-11-22 11:59:00Z" {
		t.Errorf("window: %s", got)
	}
	if !w.Running || !w.LastEnd.IsZero() || w.Duration != time.Minute {
		t.Errorf("running %v, end %v, duration %v", w.Running, w.LastEnd, w.Duration)
	}
	if got := fmtTime(w.Next); got != "2026-11-23 01:00:00Z" { // 02:00 in Berlin
		t.Errorf("next: %s", got)
	}
}

func TestViewBatchAndChart(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	b := func(id int64, statuses ...string) batchView {
		var jobs batch.Jobs
		for i, s := range statuses {
			start := now.Add(-time.Duration(id) * time.Hour)
			f := map[string]any{"status": s, "batch_id": id, "batch_start": batch.FormatTime(start)}
			if s != "open" {
				f["batch_end"] = batch.FormatTime(start.Add(time.Duration(id*10+int64(i)) * time.Minute))
			}
			jobs = append(jobs, job(string(rune('a'+i)), f))
		}
		return viewBatch(batch.Batch{ID: id, Jobs: jobs}, now)
	}
	batches := []batchView{b(1, "open", "success"), b(2, "success", "failed"), b(3, "abandoned", "abandoned"), b(4, "success", "success")}
	var got []string
	for _, v := range batches {
		got = append(got, v.Status+" "+fmtDuration(v.Duration))
	}
	if want := "open 1h00m failed 21m00s abandoned 31m00s success 41m00s"; strings.Join(got, " ") != want {
		t.Errorf("batches: %s\nwant      %s", strings.Join(got, " "), want)
	}
	c := durationChart(batches)
	if len(c.Bars) != 4 || c.Bars[0].Status != "success" || c.Bars[3].Status != "open" {
		t.Fatalf("bars (oldest first): %+v", c.Bars)
	}
	// The open batch (1h) is longer than every ended one: the scale is the longest ended batch
	// (41m), and the open one is drawn to the top, clipped.
	if top := c.Bottom - c.Top; !c.Bars[3].Clipped || c.Bars[3].H != top || c.Bars[0].H != top || c.Bars[0].Clipped {
		t.Errorf("bars %+v", c.Bars)
	}
	if got := c.Ticks[2].Label; got != "41m00s" {
		t.Errorf("the axis's top is %s, want the longest ended batch", got)
	}
	if want := "Durations of the 4 batches listed, oldest on the left: median 31m00s, longest 1h00m (batch 1)"; c.Summary != want {
		t.Errorf("summary %q", c.Summary)
	}
	if durationChart(nil) != nil {
		t.Error("a chart without batches")
	}
}

func TestFieldText(t *testing.T) {
	for _, c := range []struct{ name, raw, want string }{
		{"param", `"hello"`, "hello"},
		{"n", `5000`, "5000"},
		{"flag", `true`, "true"},
		{"run", `{"type":"http","url":"https://x","headers":{"Authorization":"Bearer s3cret"},"env":{"TOKEN":"t"}}`,
			`{"env":{"TOKEN":"(hidden)"},"headers":{"Authorization":"(hidden)"},"type":"http","url":"https://x"}`},
	} {
		if got := fieldText(c.name, json.RawMessage(c.raw)); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 450 * time.Millisecond: "450ms", 12 * time.Second: "12s", 200 * time.Second: "3m20s",
		62 * time.Minute: "1h02m", 50 * time.Hour: "2d2h",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("%s: got %s, want %s", d, got, want)
		}
	}
}
