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
	"strings"
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
	Condition string    `json:"condition"`
	Workflow  string    `json:"workflow"`
	Job       string    `json:"job,omitempty"`
	BatchID   int64     `json:"batch_id,omitempty"`
	RunID     string    `json:"run_id,omitempty"`
	Message   string    `json:"message"`
	Time      time.Time `json:"time"`
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

// Marker records that an alert was sent, across replicas (rdb.Store).
type Marker interface {
	// MarkAlert marks the alert key of a workflow as sent at at, for ttl; true for the first
	// caller only.
	MarkAlert(ctx context.Context, wf, key string, at time.Time, ttl time.Duration) (bool, error)
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
// its retries. It sends in the background: a slow webhook never slows a transition.
func (a *Alerter) Observe(ctx context.Context, events []event.Event) {
	for _, e := range events {
		switch {
		case e.Type == event.TypeFail:
			go a.Raise(context.WithoutCancel(ctx), Alert{Condition: Failed, Workflow: e.Workflow, Job: e.Job, BatchID: e.BatchID,
				Message: fmt.Sprintf("workflow %s: job %s failed (batch %d)", e.Workflow, e.Job, e.BatchID)},
				fmt.Sprintf("%s:%s:%d", Failed, e.Job, e.BatchID))
		case e.Type == event.TypeRunFinished && e.Level == "error" && strings.Contains(e.Message, "retries exhausted"):
			go a.Raise(context.WithoutCancel(ctx), Alert{Condition: RetriesExhausted, Workflow: e.Workflow, RunID: e.RunID, BatchID: e.BatchID,
				Message: fmt.Sprintf("workflow %s: run %s failed, retries exhausted: %s", e.Workflow, e.RunID, e.Message)},
				RetriesExhausted+":"+e.RunID)
		}
	}
}

// Raise sends an alert unless one with the same key was sent: the key names the condition and
// the batch, run or day it is about.
func (a *Alerter) Raise(ctx context.Context, al Alert, key string) bool {
	if al.Time.IsZero() {
		al.Time = a.opts.Now().UTC()
	}
	first, err := a.opts.Marker.MarkAlert(ctx, al.Workflow, key, al.Time, 8*24*time.Hour)
	if err != nil {
		a.opts.Logger.Warn("alert not sent: cannot mark it in Redis", "workflow", al.Workflow, "condition", al.Condition, "err", err)
		return false
	}
	if !first {
		return false // already sent, by this replica or another
	}
	a.opts.Logger.Warn("alert", "workflow", al.Workflow, "condition", al.Condition, "message", al.Message)
	a.opts.Events.Emit(ctx, event.Event{Workflow: al.Workflow, Job: al.Job, BatchID: al.BatchID, RunID: al.RunID, Type: event.TypeAlert,
		Level: "error", Message: al.Message, Fields: map[string]any{"condition": al.Condition}})
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
	return true
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

// Check raises late and long-open alerts as of now.
func (a *Alerter) Check(ctx context.Context, now time.Time) {
	names, err := a.opts.Store.Workflows(ctx)
	if err != nil {
		return
	}
	for _, wf := range names {
		st, err := a.opts.Store.State(ctx, wf)
		if err != nil {
			continue
		}
		loc := a.opts.Location
		if st.Settings.Timezone != "" {
			if l, err := time.LoadLocation(st.Settings.Timezone); err == nil {
				loc = l
			}
		}
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
