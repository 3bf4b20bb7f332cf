package ui

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/scheduler"
)

// Overall statuses of a workflow, worst first; a job's own statuses are batch.Status values.
const (
	statusFailed    = "failed"
	statusOpen      = "open"
	statusNew       = "new"
	statusSuccess   = "success"
	statusAbandoned = "abandoned"
	statusUnloaded  = "not loaded"
)

// statusRank orders statuses for a workflow's overall one: the worst of its jobs.
var statusRank = map[string]int{statusFailed: 0, statusOpen: 1, statusNew: 2, statusAbandoned: 3, statusSuccess: 4}

// jobView is one job as the pages show it.
type jobView struct {
	Name       string
	Status     string
	BatchID    int64
	From, To   time.Time
	Start, End time.Time
	// Duration is End-Start, or how long it has been open.
	Duration time.Duration
	Open     bool
	Backfill bool
	// Params are the fields the configuration gives the job; Runtime the ones batches write.
	Params, Runtime []field
	Metadata        string
	// Needs are the jobs of the workflow this job starts after (needs:).
	Needs []string
	// Now is what the scheduler is doing with the open job ("running", "waiting for needs"),
	// "" when no run of it is in progress.
	Now string
}

// field is one job field with its value as text: strings bare, anything else as JSON.
type field struct{ Name, Value string }

// wfView is one workflow as the dashboard and its page show it.
type wfView struct {
	Name     string
	Loaded   bool
	Status   string
	Jobs     []jobView
	LoadedAt time.Time
	Settings batch.Settings
	// Paused: the workflow's triggers are paused (POST .../pause).
	Paused bool
	// LastStart and LastEnd bound the latest batch; LastEnd is zero while a job of it is open.
	LastStart, LastEnd time.Time
	Duration           time.Duration
	Running            bool
	// From and To are the window of the latest batch (the widest its jobs have).
	From, To time.Time
	// Next is the next scheduled run (zero without a schedule or scheduler); NextErr says why
	// there is none when the schedule cannot be read.
	Next    time.Time
	NextErr string
	// Failing, LongOpen and Late make the workflow stand out; Reasons say why, in words.
	Failing, LongOpen, Late bool
	Reasons                 []string
	// Phase is what the workflow is doing now (a phase* key), PhaseText says it in words and
	// PhaseTitle, when set, gives the absolute time the words round.
	Phase, PhaseText, PhaseTitle string
	// RunID is the run in progress or queued, "" for none.
	RunID string
	// Cause says why the workflow failed or retries (exit code, HTTP status, error text);
	// CauseURL links to the attempt (or the run) it comes from, CauseRun and CauseJob name them.
	Cause, CauseURL, CauseRun, CauseJob string
	// BlockedBy names the upstream workflows a queued run waits for.
	BlockedBy []string
	// Due is when a late workflow was due.
	Due time.Time
}

// Attention reports whether the workflow needs a person.
func (w *wfView) Attention() bool { return w.Failing || w.LongOpen || w.Late }

// viewRules are the thresholds and clock the views are computed with.
type viewRules struct {
	now       time.Time
	longOpen  time.Duration
	lateAfter time.Duration
	// schedules: nil when no scheduler runs (no next run, no lateness).
	scheduled bool
	location  *time.Location
	// row: the view is a dashboard row, which shows no job fields: Params and Runtime are left
	// out (the row is also cached by its view's JSON: rows.go).
	row bool
}

// summarize computes a workflow's view from its state. It is pure: everything time-dependent
// comes from rules.
func summarize(st *batch.State, rules viewRules) *wfView {
	w := &wfView{Name: st.Workflow, Loaded: true, LoadedAt: st.LoadedAt, Settings: st.Settings, Status: statusSuccess, Paused: st.Paused}
	if len(st.Jobs) == 0 {
		w.Status = statusNew
	}
	var lastID int64
	var failed []string
	// The workflow's own max_open, else the page's threshold.
	longOpen := rules.longOpen
	if m := time.Duration(st.Settings.MaxOpen); m > 0 {
		longOpen = m
	}
	for _, j := range st.Jobs {
		jv := jobState(j, rules.now)
		if !rules.row {
			jv.Params, jv.Runtime = jobFields(j)
		}
		w.Jobs = append(w.Jobs, jv)
		if statusRank[jv.Status] < statusRank[w.Status] {
			w.Status = jv.Status
		}
		if jv.Status == statusFailed {
			failed = append(failed, jv.Name)
		}
		if jv.BatchID > lastID {
			lastID = jv.BatchID
		}
		if jv.Open && !jv.Start.IsZero() && rules.now.Sub(jv.Start) > longOpen && !w.LongOpen {
			w.LongOpen = true
			w.Reasons = append(w.Reasons, fmt.Sprintf("open for %s (job %s, limit %s)", fmtDuration(rules.now.Sub(jv.Start)), jv.Name, fmtDuration(longOpen)))
		}
	}
	if len(failed) > 0 {
		w.Failing = true
		w.Reasons = append([]string{"failed: " + strings.Join(failed, ", ")}, w.Reasons...)
	}
	// The latest batch: the jobs opened in the highest batch id.
	if lastID > 0 {
		for _, jv := range w.Jobs {
			if jv.BatchID != lastID {
				continue
			}
			w.LastStart = minTime(w.LastStart, jv.Start)
			w.From = minTime(w.From, jv.From)
			w.To = maxTime(w.To, jv.To)
			if jv.Open {
				w.Running = true
			}
			w.LastEnd = maxTime(w.LastEnd, jv.End)
		}
		if w.Running {
			w.LastEnd = time.Time{}
			if !w.LastStart.IsZero() {
				w.Duration = rules.now.Sub(w.LastStart)
			}
		} else if !w.LastStart.IsZero() && !w.LastEnd.IsZero() {
			w.Duration = w.LastEnd.Sub(w.LastStart)
		}
	}
	if rules.scheduled && st.Settings.Schedule != "" {
		loc := rules.location
		if st.Settings.Timezone != "" {
			if l, err := time.LoadLocation(st.Settings.Timezone); err == nil {
				loc = l
			}
		}
		sc, err := scheduler.ParseSchedule(st.Settings.Schedule, loc)
		if err != nil {
			w.NextErr = batch.ErrorMessage(err)
		} else {
			w.Next = sc.Next(rules.now)
			base := w.LastStart
			if base.IsZero() || st.LoadedAt.After(base) {
				base = st.LoadedAt
			}
			if due := sc.Next(base); !base.IsZero() && !w.Running && !due.IsZero() && rules.now.Sub(due) > rules.lateAfter {
				w.Late, w.Due = true, due
				w.Reasons = append(w.Reasons, "late: was due "+fmtTime(due))
			}
		}
	}
	return w
}

// unloaded is the view of a configured workflow that was never loaded.
func unloaded(name string) *wfView {
	return &wfView{Name: name, Status: statusUnloaded}
}

func viewJob(j batch.Job, now time.Time) jobView {
	jv := jobState(j, now)
	jv.Params, jv.Runtime = jobFields(j)
	return jv
}

// jobState is viewJob without the job's fields (Params, Runtime).
func jobState(j batch.Job, now time.Time) jobView {
	jv := jobView{Name: j.Name, Status: string(j.Fields.Status())}
	if jv.Status == "" {
		jv.Status = statusNew
	}
	jv.BatchID, _ = j.Fields.Int(batch.FieldBatchID)
	jv.From, _ = j.Fields.Time(batch.FieldFromDate)
	jv.To, _ = j.Fields.Time(batch.FieldToDate)
	jv.Start, _ = j.Fields.Time(batch.FieldBatchStart)
	jv.End, _ = j.Fields.Time(batch.FieldBatchEnd)
	jv.Backfill, _ = j.Fields.Bool(batch.FieldBackfill)
	jv.Open = jv.Status == statusOpen
	switch {
	case jv.Open && !jv.Start.IsZero():
		jv.Duration = now.Sub(jv.Start)
	case !jv.Start.IsZero() && !jv.End.IsZero() && !jv.End.Before(jv.Start):
		jv.Duration = jv.End.Sub(jv.Start)
	}
	if raw, ok := j.Fields[batch.FieldMetadata]; ok && string(raw) != "null" {
		jv.Metadata = string(raw)
	}
	if raw, ok := j.Fields[batch.FieldNeeds]; ok {
		json.Unmarshal(raw, &jv.Needs)
	}
	return jv
}

// jobFields are a job's fields as text: the configured ones (params) and those batches write.
func jobFields(j batch.Job) (params, runtime []field) {
	for _, name := range j.Fields.Names() {
		f := field{Name: name, Value: fieldText(name, j.Fields[name])}
		if batch.IsRuntimeField(name) {
			runtime = append(runtime, f)
		} else {
			params = append(params, f)
		}
	}
	return params, runtime
}

// fieldText renders a field value: a string bare, anything else as its JSON. A job's run: may
// carry secrets (HTTP headers, environment variables): their values are hidden, as the scheduler
// keeps them out of the job's environment and request bodies.
func fieldText(name string, raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if name == batch.FieldRun {
		return string(batch.Fields{name: raw}.WithoutSecrets()[name])
	}
	return string(raw)
}

// batchView is one batch of history.
type batchView struct {
	ID         int64
	Status     string
	Start, End time.Time
	Duration   time.Duration
	Running    bool
	Backfill   bool
	Jobs       []jobView
}

func viewBatch(b batch.Batch, now time.Time) batchView {
	bv := batchView{ID: b.ID, Status: statusSuccess}
	allAbandoned := len(b.Jobs) > 0
	for _, j := range b.Jobs {
		jv := viewJob(j, now)
		bv.Jobs = append(bv.Jobs, jv)
		bv.Start = minTime(bv.Start, jv.Start)
		bv.End = maxTime(bv.End, jv.End)
		bv.Backfill = bv.Backfill || jv.Backfill
		switch jv.Status {
		case statusOpen:
			bv.Running = true
		case statusFailed:
			if bv.Status != statusOpen {
				bv.Status = statusFailed
			}
		}
		if jv.Status != statusAbandoned {
			allAbandoned = false
		}
	}
	switch {
	case bv.Running:
		bv.Status = statusOpen
		bv.End = time.Time{}
		if !bv.Start.IsZero() {
			bv.Duration = now.Sub(bv.Start)
		}
	case allAbandoned:
		bv.Status = statusAbandoned
	}
	if !bv.Running && !bv.Start.IsZero() && !bv.End.IsZero() && !bv.End.Before(bv.Start) {
		bv.Duration = bv.End.Sub(bv.Start)
	}
	return bv
}

// chart is an inline SVG bar chart of batch durations, oldest on the left, with a duration axis.
type chart struct {
	Width, Height int
	// Left and Bottom are the margins of the axes' labels; Top is the plot's top.
	Left, Top, Bottom float64
	Bars              []bar
	Ticks             []tick
	// First and Last label the x axis: the oldest and newest batch ids.
	First, Last string
	// Summary describes the chart in words, for screen readers and as its caption.
	Summary string
}

type bar struct {
	X, Y, W, H float64
	Status     string
	Label      string
	// Clipped: an open batch longer than the ended ones, drawn to the top and marked.
	Clipped bool
}

// durationChart draws the batches (given newest first, as history lists them). The scale is the
// longest ended batch: one long open batch does not flatten the others (it is drawn to the top,
// marked as going on).
func durationChart(batches []batchView) *chart {
	if len(batches) == 0 {
		return nil
	}
	const width, height, left, top, bottom, gap = 640, 140, 52.0, 6.0, 18.0, 2.0
	plotW, plotH := width-left-4, height-top-bottom
	c := &chart{Width: width, Height: height, Left: left, Top: top, Bottom: height - bottom}
	var longest, scale time.Duration
	var longestID int64
	var ended []time.Duration
	for _, b := range batches {
		if b.Duration > longest {
			longest, longestID = b.Duration, b.ID
		}
		if !b.Running && b.Duration > 0 {
			ended = append(ended, b.Duration)
			scale = max(scale, b.Duration)
		}
	}
	if scale == 0 {
		scale = longest
	}
	n := len(batches)
	slot := plotW / float64(max(n, 10))
	for i := range batches {
		b := batches[n-1-i]
		h, clipped := 1.0, false
		if scale > 0 {
			h = max(1, float64(b.Duration)/float64(scale)*plotH)
		}
		if h > plotH {
			h, clipped = plotH, true
		}
		label := fmt.Sprintf("batch %d: %s, %s", b.ID, b.Status, fmtDuration(b.Duration))
		if b.Running {
			label = fmt.Sprintf("batch %d: open for %s", b.ID, fmtDuration(b.Duration))
		}
		c.Bars = append(c.Bars, bar{X: left + float64(i)*slot, Y: top + plotH - h, W: slot - gap, H: h, Status: b.Status, Label: label, Clipped: clipped})
	}
	for k := 0; k <= 2; k++ {
		d := scale * time.Duration(k) / 2
		c.Ticks = append(c.Ticks, tick{X: top + plotH - float64(k)/2*plotH, Label: fmtDuration(d)})
	}
	c.First, c.Last = fmt.Sprintf("batch %d", batches[n-1].ID), fmt.Sprintf("batch %d", batches[0].ID)
	c.Summary = fmt.Sprintf("Durations of the %d batches listed, oldest on the left", n)
	if len(ended) > 0 {
		sort.Slice(ended, func(i, j int) bool { return ended[i] < ended[j] })
		c.Summary += fmt.Sprintf(": median %s, longest %s (batch %d)", fmtDuration(ended[len(ended)/2]), fmtDuration(longest), longestID)
	}
	return c
}
