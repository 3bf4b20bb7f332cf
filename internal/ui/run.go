package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/scheduler"
)

// runLogSize is the most events a run page lists (and its text download holds).
const runLogSize = 2000

// runView is what the run template gets.
type runView struct {
	Workflow string
	Run      *scheduler.Run
	// Attempts are the run's attempts with their jobs in name order.
	Attempts []attemptView
	Gantt    *gantt
	// HasEvents: the event stream is on; Events are the run's, oldest first, filtered by
	// EventJob and EventLevel.
	HasEvents            bool
	Events               []event.Event
	EventJob, EventLevel string
	Jobs                 []string
	Levels               []string
	// LogURL downloads the lines listed as text; Truncated says the list hit runLogSize.
	LogURL    string
	Truncated bool
}

// attemptView is one attempt with its window and its jobs.
type attemptView struct {
	scheduler.Attempt
	From, To time.Time
	Results  []jobResult
}

// jobResult is one job of an attempt.
type jobResult struct {
	Name, Status string
	Start, End   time.Time
	Duration     time.Duration
	ExitCode     *int
	HTTPStatus   int
	Error        string
	Needs        []string
	// Anchor is the job's id in the page (attempt-N-job); LogURL lists its log lines.
	Anchor, LogURL string
}

// run shows one run of a workflow: its attempts as a timeline of jobs, their exit codes and
// errors, its window and its log lines.
func (u *UI) run(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	wf, id := r.PathValue("wf"), r.PathValue("run")
	if err := batch.CheckName("workflow", wf); err != nil {
		u.fail(w, r, err)
		return
	}
	if u.opts.Scheduler == nil {
		u.fail(w, r, batch.Errorf(batch.ENOTFOUND, "the scheduler is off: there are no runs"))
		return
	}
	query := r.URL.Query()
	evJob, evLevel, err := eventFilter(query)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	st, err := u.opts.Store.State(ctx, wf)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	run, err := u.opts.Scheduler.GetRun(ctx, wf, id)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	now := u.opts.Now().UTC()
	needs := map[string][]string{}
	v := &runView{Workflow: wf, Run: run, EventJob: evJob, EventLevel: evLevel, Levels: event.Levels}
	for _, j := range st.Jobs {
		jv := viewJob(j, now)
		needs[j.Name] = jv.Needs
		v.Jobs = append(v.Jobs, j.Name)
	}
	for _, a := range run.Attempts {
		av := attemptView{Attempt: a}
		if a.BatchID > 0 {
			bs, err := u.opts.Store.Batches(ctx, wf, batch.ListOptions{Before: a.BatchID + 1, Limit: 1})
			if err != nil {
				u.fail(w, r, err)
				return
			}
			if len(bs) == 1 && bs[0].ID == a.BatchID {
				for _, j := range bs[0].Jobs {
					jv := viewJob(j, now)
					av.From, av.To = minTime(av.From, jv.From), maxTime(av.To, jv.To)
				}
			}
		}
		for _, name := range sortedJobs(a.Jobs) {
			res := a.Jobs[name]
			jr := jobResult{Name: name, Status: res.Status, ExitCode: res.ExitCode, HTTPStatus: res.HTTPStatus, Error: res.Error,
				Needs: needs[name], Anchor: fmt.Sprintf("attempt-%d-%s", a.Number, name), LogURL: runLogLink(wf, id, name)}
			if res.Start != nil {
				jr.Start = *res.Start
			}
			if res.End != nil {
				jr.End = *res.End
			}
			switch {
			case !jr.Start.IsZero() && !jr.End.IsZero():
				jr.Duration = jr.End.Sub(jr.Start)
			case !jr.Start.IsZero():
				jr.Duration = now.Sub(jr.Start)
			}
			av.Results = append(av.Results, jr)
		}
		v.Attempts = append(v.Attempts, av)
	}
	v.Gantt = runGantt(v.Attempts, now)
	if stream := u.opts.Events.Stream(); stream != nil {
		v.HasEvents = true
		events, err := stream.Read(ctx, wf, event.Query{RunID: id, Job: evJob, Level: evLevel, Limit: runLogSize})
		if err != nil {
			u.fail(w, r, err)
			return
		}
		slices.Reverse(events)
		v.Events, v.Truncated = events, len(events) == runLogSize
		v.LogURL = runURL(wf, id, "") + "/log.txt"
		if enc := filterQuery(evJob, evLevel).Encode(); enc != "" {
			v.LogURL += "?" + enc
		}
		if strings.HasSuffix(r.URL.Path, "/log.txt") {
			u.runLog(w, wf, run, events)
			return
		}
	} else if strings.HasSuffix(r.URL.Path, "/log.txt") {
		u.fail(w, r, batch.Errorf(batch.ENOTFOUND, "the event stream is off: there are no log lines"))
		return
	}
	p := u.newPage(r, "run", "Run "+id+" of "+wf, v)
	if !runFinished(run.State) {
		// A run in progress refreshes its timeline and attempts; a finished one no longer changes.
		p.Fragment = "/ui/fragment/workflows/" + url.PathEscape(wf) + "/runs/" + url.PathEscape(id)
		if u.opts.Events != nil {
			// The run's events (its steps, its jobs' transitions) trigger the refreshes; the
			// timer is a safety net.
			p.Follow = apiPath(wf, "events", "stream") + "?run=" + url.QueryEscape(id)
			p.Refresh *= 3
		}
	}
	u.render(w, r, http.StatusOK, p)
}

// runLog writes a run's events as text, a line each: time, level, job, attempt, message.
func (u *UI) runLog(w http.ResponseWriter, wf string, run *scheduler.Run, events []event.Event) {
	var b strings.Builder
	for _, e := range events {
		attempt := ""
		if a, ok := e.Fields["attempt"]; ok {
			attempt = fmt.Sprintf(" attempt=%v", a)
		}
		job := e.Job
		if job == "" {
			job = "-"
		}
		fmt.Fprintf(&b, "%s %-5s %s%s %s: %s\n", e.Time.UTC().Format(time.RFC3339Nano), e.Level, job, attempt, e.Type, e.Message)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.log"`, wf, run.ID))
	h.Set("Cache-Control", "no-store")
	w.Write([]byte(b.String()))
}

func filterQuery(job, level string) url.Values {
	q := url.Values{}
	if job != "" {
		q.Set("job", job)
	}
	if level != "" {
		q.Set("level", level)
	}
	return q
}

// runLogLink lists a run's log lines of one job.
func runLogLink(wf, id, job string) string {
	return runURL(wf, id, "") + "?" + filterQuery(job, "").Encode() + "#logs"
}

// gantt is a run's timeline: a bar per job and attempt from the job's own start to its end, on
// a time axis.
type gantt struct {
	Width, Height, LabelWidth int
	Rows                      []ganttRow
	Ticks                     []tick
	Summary                   string
}

type ganttRow struct {
	Label, Status, Title, Anchor string
	Y, BarY, X, W                float64
	// Waiting: the job has not started (it waits for its needs); no bar.
	Waiting, Running bool
}

type tick struct {
	X     float64
	Label string
}

// runGantt lays the attempts' jobs out on one time axis, from the first start to the last end
// (now while a job runs).
func runGantt(attempts []attemptView, now time.Time) *gantt {
	var t0, t1 time.Time
	rows := 0
	for _, a := range attempts {
		t0 = minTime(t0, a.Start)
		if a.End != nil {
			t1 = maxTime(t1, *a.End)
		}
		for _, j := range a.Results {
			rows++
			t0 = minTime(t0, j.Start)
			t1 = maxTime(t1, j.End)
			if !j.Start.IsZero() && j.End.IsZero() {
				t1 = maxTime(t1, now)
			}
		}
	}
	if rows == 0 || t0.IsZero() {
		return nil
	}
	if !t1.After(t0) {
		t1 = t0.Add(time.Second)
	}
	const labelW, chartW, rowH, axisH = 200, 760, 22, 24
	g := &gantt{Width: labelW + chartW + 44, LabelWidth: labelW, Height: rows*rowH + axisH}
	span := t1.Sub(t0)
	x := func(t time.Time) float64 { return labelW + float64(t.Sub(t0))/float64(span)*chartW }
	i := 0
	for _, a := range attempts {
		for _, j := range a.Results {
			row := ganttRow{Label: fmt.Sprintf("#%d %s", a.Number, j.Name), Status: j.Status, Anchor: j.Anchor, Y: float64(i * rowH), BarY: float64(i*rowH) + 3}
			i++
			switch {
			case j.Start.IsZero():
				row.Waiting = true
				row.X = labelW
				row.Title = fmt.Sprintf("attempt %d, %s: %s", a.Number, j.Name, j.Status)
				if len(j.Needs) > 0 && j.Status == "pending" {
					row.Title = fmt.Sprintf("attempt %d, %s: waiting for its needs (%s)", a.Number, j.Name, strings.Join(j.Needs, ", "))
				}
			default:
				end := j.End
				if end.IsZero() {
					end, row.Running = now, true
				}
				row.X = x(j.Start)
				row.W = max(2, x(end)-row.X)
				row.Title = fmt.Sprintf("attempt %d, %s: %s, %s → %s (%s)", a.Number, j.Name, j.Status, fmtTime(j.Start), fmtTime(j.End), fmtDuration(end.Sub(j.Start)))
			}
			g.Rows = append(g.Rows, row)
		}
	}
	layout := "15:04:05"
	if span < 10*time.Second {
		layout = "15:04:05.000" // a short run's ticks would all read the same second
	}
	for k := 0; k <= 4; k++ {
		t := t0.Add(span * time.Duration(k) / 4)
		g.Ticks = append(g.Ticks, tick{X: x(t), Label: t.UTC().Format(layout)})
	}
	g.Summary = fmt.Sprintf("Timeline of %d job runs from %s to %s (%s)", rows, fmtTime(t0), fmtTime(t1), fmtDuration(span))
	return g
}
