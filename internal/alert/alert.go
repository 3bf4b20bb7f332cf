// Package alert tells people when a workflow needs them: a batch failed, a run exhausted its
// retries, a workflow missed its daily deadline, a batch stayed open too long. Alerts go to
// webhooks (a Slack-compatible body, or generic JSON), are recorded as events, and go out once per
// condition per batch or day, even with several replicas: the first to mark the alert in Redis
// sends it.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
)

// Conditions.
const (
	Failed           = "failed"
	RetriesExhausted = "retries_exhausted"
	Late             = "late"
	LongOpen         = "long_open"
)

// Alert is one notification.
type Alert struct {
	Condition string `json:"condition"`
	Workflow  string `json:"workflow"`
	Job       string `json:"job,omitempty"`
	// Jobs lists the jobs a failed alert is about when a transition failed several at once (Job
	// is then empty).
	Jobs    []string  `json:"jobs,omitempty"`
	BatchID int64     `json:"batch_id,omitempty"`
	RunID   string    `json:"run_id,omitempty"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// Notifier delivers alerts.
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
	// String names the notifier without credentials.
	String() string
}

// Webhook posts alerts to a URL: Slack-compatible ({"text": ...}) or the Alert as JSON.
type Webhook struct {
	URL   string
	Slack bool
	HTTP  *http.Client
}

var _ Notifier = (*Webhook)(nil)

// String implements Notifier.
func (w *Webhook) String() string {
	kind := "json webhook "
	if w.Slack {
		kind = "slack webhook "
	}
	return kind + hiddenHook(w.URL)
}

// hiddenHook shows a webhook URL without its path and query: a Slack or Teams hook's path is
// its secret.
func hiddenHook(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(webhook URL hidden)"
	}
	return u.Scheme + "://" + u.Host + "/(hidden)"
}

// hideHook removes a webhook URL's secret parts from an error message that may quote it.
func hideHook(msg, raw string) string {
	msg = strings.ReplaceAll(msg, raw, hiddenHook(raw))
	if u, err := url.Parse(raw); err == nil {
		for _, part := range []string{u.RawQuery, u.EscapedPath(), u.Path} {
			if len(part) > 1 {
				msg = strings.ReplaceAll(msg, part, "/(hidden)")
			}
		}
	}
	return msg
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, a Alert) error {
	var body []byte
	if w.Slack {
		body, _ = json.Marshal(map[string]string{"text": fmt.Sprintf(":rotating_light: batchy: %s", a.Message)})
	} else {
		body, _ = json.Marshal(a)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %s", w, hideHook(err.Error(), w.URL))
	}
	req.Header.Set("Content-Type", "application/json")
	hc := w.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %s", w, hideHook(err.Error(), w.URL))
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s: HTTP %d", w, res.StatusCode)
	}
	return nil
}

// Marker records that alerts were sent, across replicas (rdb.Store).
type Marker interface {
	// MarkAlerts marks keys of a workflow's alerts as sent (keys[i] at at[i]), for ttl, in one
	// round trip; first[i] is true for the first caller of keys[i] only, whichever replica it runs
	// on. A key that could not be marked is reported in errs[i].
	MarkAlerts(ctx context.Context, wf string, keys []string, at []time.Time, ttl time.Duration) (first []bool, errs []error)
}

// Options configure an Alerter.
type Options struct {
	Store batch.Store
	// Marker makes each alert go out once, whichever replica raises it. Required.
	Marker    Marker
	Notifiers []Notifier
	// Events records each alert as an event; nil means none.
	Events *event.Bus
	// Location is the default time zone of deadlines; nil means UTC.
	Location *time.Location
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Alerter raises alerts from events (failures) and from periodic checks (deadlines, long-open
// batches).
type Alerter struct {
	opts Options
}

// New returns an alerter. Register Observe on the event bus and call Run for the periodic checks.
func New(opts Options) *Alerter {
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Alerter{opts: opts}
}

// Observe raises alerts for the events that call for one: a failed batch, a run that exhausted
// its retries. It sends in the background: a slow webhook never slows a transition. A transition
// that fails several jobs of a batch at once raises one alert naming them all: one mark and one
// alert event, whatever the number of jobs.
func (a *Alerter) Observe(ctx context.Context, events []event.Event) {
	type failedBatch struct {
		wf   string
		id   int64
		jobs []string
	}
	var failed []*failedBatch
	for _, e := range events {
		switch {
		case e.Type == event.TypeFail:
			var fb *failedBatch
			for _, f := range failed {
				if f.wf == e.Workflow && f.id == e.BatchID {
					fb = f
				}
			}
			if fb == nil {
				fb = &failedBatch{wf: e.Workflow, id: e.BatchID}
				failed = append(failed, fb)
			}
			fb.jobs = append(fb.jobs, e.Job)
		case e.Type == event.TypeRunFinished && e.Level == "error" && strings.Contains(e.Message, "retries exhausted"):
			go a.Raise(context.WithoutCancel(ctx), Alert{Condition: RetriesExhausted, Workflow: e.Workflow, RunID: e.RunID, BatchID: e.BatchID,
				Message: fmt.Sprintf("workflow %s: run %s failed, retries exhausted: %s", e.Workflow, e.RunID, e.Message)},
				RetriesExhausted+":"+e.RunID)
		}
	}
	if len(failed) == 0 {
		return
	}
	alerts := make([]keyedAlert, len(failed))
	for i, f := range failed {
		id := strconv.FormatInt(f.id, 10)
		al := Alert{Condition: Failed, Workflow: f.wf, BatchID: f.id}
		if len(f.jobs) == 1 {
			al.Job = f.jobs[0]
			al.Message = "workflow " + f.wf + ": job " + f.jobs[0] + " failed (batch " + id + ")"
		} else {
			al.Jobs = f.jobs
			al.Message = "workflow " + f.wf + ": jobs " + strings.Join(f.jobs, ", ") + " failed (batch " + id + ")"
		}
		// The key names the jobs: the same jobs failed again in the same batch are not news, another
		// job of it failing later is.
		alerts[i] = keyedAlert{al, Failed + ":" + strings.Join(f.jobs, ",") + ":" + id}
	}
	go a.raise(context.WithoutCancel(ctx), alerts)
}

// keyedAlert is an alert and its key, which names the condition and the batch, run or day it is
// about.
type keyedAlert struct {
	Alert
	key string
}

// Raise sends an alert unless one with the same key was sent.
func (a *Alerter) Raise(ctx context.Context, al Alert, key string) bool {
	return a.raise(ctx, []keyedAlert{{al, key}}) == 1
}

// raise sends the alerts not sent before and returns how many it sent. They are marked in Redis
// in one round trip and recorded as events in one more, however many they are: a failed batch
// raises one alert per job, each of which would otherwise cost two round trips of its own.
func (a *Alerter) raise(ctx context.Context, alerts []keyedAlert) int {
	// The alerts of one call are nearly always of one workflow (a failed batch's jobs): marked
	// together.
	byWorkflow := map[string][]int{}
	for i := range alerts {
		al := &alerts[i].Alert
		if al.Time.IsZero() {
			al.Time = a.opts.Now().UTC()
		}
		byWorkflow[al.Workflow] = append(byWorkflow[al.Workflow], i)
	}
	first := make([]bool, len(alerts))
	errs := make([]error, len(alerts))
	for wf, idx := range byWorkflow {
		keys := make([]string, len(idx))
		at := make([]time.Time, len(idx))
		for k, i := range idx {
			keys[k], at[k] = alerts[i].key, alerts[i].Time
		}
		f, e := a.opts.Marker.MarkAlerts(ctx, wf, keys, at, 8*24*time.Hour)
		for k, i := range idx {
			first[i], errs[i] = f[k], e[k]
		}
	}
	var sent []Alert
	var events []event.Event
	for i := range alerts {
		al := alerts[i].Alert
		if errs[i] != nil {
			a.opts.Logger.Warn("alert not sent: cannot mark it in Redis", "workflow", al.Workflow, "condition", al.Condition, "err", errs[i])
			continue
		}
		if !first[i] {
			continue // already sent, by this replica or another
		}
		a.opts.Logger.Warn("alert", "workflow", al.Workflow, "condition", al.Condition, "message", al.Message)
		fields := map[string]any{"condition": al.Condition}
		if len(al.Jobs) > 0 {
			fields["jobs"] = al.Jobs
		}
		events = append(events, event.Event{Workflow: al.Workflow, Job: al.Job, BatchID: al.BatchID, RunID: al.RunID, Type: event.TypeAlert,
			Level: "error", Message: al.Message, Fields: fields})
		sent = append(sent, al)
	}
	a.opts.Events.Emit(ctx, events...)
	if len(a.opts.Notifiers) > 0 {
		// Each alert is delivered on its own, so that one's retries do not delay the others.
		var wg sync.WaitGroup
		for _, al := range sent {
			wg.Go(func() { a.notify(ctx, al) })
		}
		wg.Wait()
	}
	return len(sent)
}

// notify delivers an alert to every notifier, trying each up to three times.
func (a *Alerter) notify(ctx context.Context, al Alert) {
	for _, n := range a.opts.Notifiers {
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if err = n.Notify(ctx, al); err == nil {
				break
			}
			time.Sleep(time.Duration(attempt+1) * time.Second)
		}
		if err != nil {
			a.opts.Logger.Error("alert not delivered", "notifier", n.String(), "err", err)
		}
	}
}

// candidates returns the workflows a late or long-open alert may concern as of now: all of them,
// unless the store keeps summaries.
func (a *Alerter) candidates(ctx context.Context, now time.Time) ([]string, error) {
	lister, ok := a.opts.Store.(batch.SummaryLister)
	if !ok {
		return a.opts.Store.Workflows(ctx)
	}
	sums, err := lister.AllSummaries(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range sums {
		loc := a.location(s.Timezone)
		deadline, ok := batch.Settings{Deadline: s.Deadline}.DeadlineAt(now, loc)
		late := ok && !now.Before(deadline) && !s.ReadyAt(batch.Midnight(now, loc))
		long := s.MaxOpen > 0 && s.OpenSince != nil && now.Sub(*s.OpenSince) >= time.Duration(s.MaxOpen)
		if late || long {
			out = append(out, s.Workflow)
		}
	}
	return out, nil
}

// location is a workflow's time zone for deadlines and "today".
func (a *Alerter) location(tz string) *time.Location {
	if tz != "" {
		if l, err := time.LoadLocation(tz); err == nil {
			return l
		}
	}
	return a.opts.Location
}

// Run checks deadlines and long-open batches every interval until ctx ends.
func (a *Alerter) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		a.Check(ctx, a.opts.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check raises late and long-open alerts as of now. With a store that keeps summaries
// (batch.SummaryLister), it reads them all in one call and then the state of only the workflows
// an alert may concern: a check costs the same few Redis calls whatever the number of workflows.
func (a *Alerter) Check(ctx context.Context, now time.Time) {
	names, err := a.candidates(ctx, now)
	if err != nil {
		return
	}
	for _, wf := range names {
		st, err := a.opts.Store.State(ctx, wf)
		if err != nil {
			continue
		}
		loc := a.location(st.Settings.Timezone)
		if deadline, ok := st.Settings.DeadlineAt(now, loc); ok && !now.Before(deadline) {
			standings, err := batch.Standings(batch.Target{Workflow: wf}, st.Jobs, batch.Midnight(now, loc))
			if err == nil && batch.Overall(standings, false) != batch.Ready {
				day := now.In(loc).Format("2006-01-02")
				a.Raise(ctx, Alert{Condition: Late, Workflow: wf, Time: now,
					Message: fmt.Sprintf("workflow %s is late: not succeeded by its deadline %s (%s) on %s", wf, st.Settings.Deadline, loc, day)},
					Late+":"+day)
			}
		}
		if max := time.Duration(st.Settings.MaxOpen); max > 0 {
			for _, j := range st.Jobs {
				start, ok := j.Fields.Time(batch.FieldBatchStart)
				if j.Fields.Status() != batch.StatusOpen || !ok || now.Sub(start) < max {
					continue
				}
				id, _ := j.Fields.Int(batch.FieldBatchID)
				a.Raise(ctx, Alert{Condition: LongOpen, Workflow: wf, Job: j.Name, BatchID: id, Time: now,
					Message: fmt.Sprintf("workflow %s: job %s has been open for %s (batch %d, limit %s)", wf, j.Name, now.Sub(start).Round(time.Second), id, max)},
					fmt.Sprintf("%s:%s:%d", LongOpen, j.Name, id))
			}
		}
	}
}
