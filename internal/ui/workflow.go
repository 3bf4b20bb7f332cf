package ui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/scheduler"
)

// Page sizes of the workflow page.
const (
	historySize = 30
	runsSize    = 20
	tailSize    = 100
)

// workflowView is what the workflow template gets.
type workflowView struct {
	*wfView
	Batches []batchView
	Chart   *chart
	// Before is the ?before= of the history page shown; OlderURL and NewestURL page through it.
	Before              int64
	OlderURL, NewestURL string
	Scheduled           bool
	Runs                []*scheduler.Run
	// Events are the latest events, oldest first; StreamURL tails the following ones.
	HasEvents            bool
	Events               []event.Event
	StreamURL            string
	EventJob, EventLevel string
	Levels               []string
	SettingsJSON         string
}

// Actions are the buttons acting on the whole workflow.
func (v *workflowView) Actions() []actButton { return workflowActions(v.wfView, v.Scheduled) }

// workflow shows one workflow: its jobs, history, runs, live events and configuration.
func (u *UI) workflow(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	wf := r.PathValue("wf")
	if err := batch.CheckName("workflow", wf); err != nil {
		u.fail(w, r, err)
		return
	}
	query := r.URL.Query()
	before, err := strconv.ParseInt(query.Get("before"), 10, 64)
	if query.Get("before") != "" && (err != nil || before < 1) {
		u.fail(w, r, batch.Errorf(batch.EINVALID, "before %q is not a batch id", query.Get("before")))
		return
	}
	evJob, evLevel, err := eventFilter(query)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	st, err := u.opts.Store.State(ctx, wf)
	if err != nil {
		load := ""
		if batch.ErrorCode(err) == batch.ENOTFOUND && u.configured(wf) {
			load = wf
		}
		u.failLoad(w, r, err, load)
		return
	}
	rules := u.rules()
	v := &workflowView{wfView: summarize(st, rules), Before: before, Scheduled: u.opts.Scheduler != nil,
		EventJob: evJob, EventLevel: evLevel, Levels: event.Levels}
	settings, _ := json.MarshalIndent(st.Settings, "", "  ")
	v.SettingsJSON = string(settings)

	batches, err := u.opts.Store.Batches(ctx, wf, batch.ListOptions{Limit: historySize, Before: before})
	if err != nil {
		u.fail(w, r, err)
		return
	}
	for _, b := range batches {
		v.Batches = append(v.Batches, viewBatch(b, rules.now))
	}
	v.Chart = durationChart(v.Batches)
	if len(batches) == historySize {
		v.OlderURL = workflowURL(wf, query, "before", strconv.FormatInt(batches[len(batches)-1].ID, 10))
	}
	if before != 0 {
		v.NewestURL = workflowURL(wf, query, "before", "")
	}

	if u.opts.Scheduler != nil {
		if v.Runs, err = u.opts.Scheduler.Runs(ctx, wf, runsSize); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	if err := u.explainRuns(ctx, v.wfView, v.Runs, rules); err != nil {
		u.fail(w, r, err)
		return
	}

	if stream := u.opts.Events.Stream(); stream != nil {
		v.HasEvents = true
		events, err := stream.Read(ctx, wf, event.Query{Job: evJob, Level: evLevel, Limit: tailSize})
		if err != nil {
			u.fail(w, r, err)
			return
		}
		slices.Reverse(events)
		v.Events = events
		last := ""
		if len(events) > 0 {
			last = events[len(events)-1].ID
		} else if last, err = stream.LastID(ctx, wf); err != nil {
			u.fail(w, r, batch.Errorf(batch.EUNAVAILABLE, "the store is not available"))
			return
		}
		sq := url.Values{}
		if evJob != "" {
			sq.Set("job", evJob)
		}
		if evLevel != "" {
			sq.Set("level", evLevel)
		}
		// The stream resumes after the newest event shown, so nothing falls between the two.
		sq.Set("last_event_id", last)
		v.StreamURL = apiPath(wf, "events", "stream") + "?" + sq.Encode()
	}

	p := u.newPage(r, "workflow", wf, v)
	if v.HasEvents {
		p.Refresh *= 3 // the event stream triggers refreshes; the timer is a safety net
	}
	p.Fragment = "/ui/fragment/workflows/" + url.PathEscape(wf)
	if enc := query.Encode(); enc != "" {
		p.Fragment += "?" + enc
	}
	u.render(w, r, http.StatusOK, p)
}

// workflowURL is the workflow page with one query parameter changed ("" removes it).
func workflowURL(wf string, query url.Values, key, value string) string {
	q := url.Values{}
	for k, vs := range query {
		q[k] = slices.Clone(vs)
	}
	if value == "" {
		q.Del(key)
	} else {
		q.Set(key, value)
	}
	out := "/ui/workflows/" + url.PathEscape(wf)
	if enc := q.Encode(); enc != "" {
		out += "?" + enc
	}
	return out
}

// configured reports whether a workflow has a configuration file.
func (u *UI) configured(wf string) bool {
	is, _ := u.never.Configured(u.opts.CfgDir)
	return is(wf)
}

// runFinished reports whether a run's state is final (it can no longer be cancelled).
func runFinished(state string) bool {
	switch state {
	case scheduler.StateSucceeded, scheduler.StateFailed, scheduler.StateCancelled, scheduler.StateSkipped:
		return true
	}
	return false
}

// eventFilter reads the job and level a page's event list is filtered by (?job=, ?level=), both
// optional; a bad one is refused naming it.
func eventFilter(query url.Values) (job, level string, err error) {
	job, level = query.Get("job"), query.Get("level")
	if job != "" {
		if err := batch.CheckName("job", job); err != nil {
			return "", "", err
		}
	}
	if level != "" && !event.ValidLevel(level) {
		return "", "", batch.Errorf(batch.EINVALID, "level %q is not one of debug, info, warn, error", level)
	}
	return job, level, nil
}
