// Package alert tells people when a workflow needs them: a batch failed, a run exhausted its
// retries, a workflow missed its daily deadline, a batch stayed open too long. Alerts go to
// webhooks (a Slack-compatible body, or generic JSON), are recorded as events, and go out once per
// condition per batch, run or day, even with several replicas: the first to claim the alert in
// Redis delivers it, retrying for hours, and marks it sent only once delivered; a claim whose
// replica died expires and another replica delivers the alert. An alert whose replica died before
// claiming it is raised from the durable event streams by the backstop (Backstop).
package alert

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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

// Marker makes each alert go out once across replicas (rdb.Store): a replica claims an alert for
// a lease before delivering it, renews the claim while it retries, and settles it once delivered
// or given up. A replica that dies mid-delivery stops renewing; its claim expires and another
// replica's retry scan (Retry) claims the alert again from its stored body.
type Marker interface {
	// ClaimAlerts claims keys of a workflow's alerts (bodies[i] the alert of keys[i]) for holder,
	// for lease, in one round trip: claimed[i] is true for the first caller of keys[i] only,
	// whichever replica it runs on. A key that could not be claimed is reported in errs[i].
	ClaimAlerts(ctx context.Context, wf string, keys []string, bodies [][]byte, holder string, lease time.Duration) (claimed []bool, errs []error)
	// MarkAlertsSent marks keys of a workflow's alerts sent at at, for ttl, unless claimed or sent
	// already, in one round trip: for alerts with no webhook to deliver them to.
	MarkAlertsSent(ctx context.Context, wf string, keys []string, at time.Time, ttl time.Duration) (first []bool, errs []error)
	// RenewAlert extends holder's claim; false when holder no longer holds it.
	RenewAlert(ctx context.Context, wf, key, holder string, lease time.Duration) (bool, error)
	// SettleAlert marks an alert sent (or given up, sent false) for ttl.
	SettleAlert(ctx context.Context, wf, key string, sent bool, at time.Time, ttl time.Duration) error
	// ReclaimAlerts claims for holder the pending alerts whose claims expired, of at most limit
	// workflows, and calls claimed for each.
	ReclaimAlerts(ctx context.Context, holder string, lease time.Duration, now time.Time, limit int, claimed func(wf, key string, body []byte)) error
}

// Counter counts deliveries (internal/metrics.Metrics); nil counts nothing.
type Counter interface {
	// AlertDelivery counts one delivery attempt to a notifier, successful or not.
	AlertDelivery(notifier string, ok bool)
	// AlertGivenUp counts an alert given up after its retry window.
	AlertGivenUp(workflow, condition string)
}

// Retry is how long and how often an alert's delivery is retried.
type Retry struct {
	// First is the wait after the first failed try; zero means 5 seconds. Each next wait doubles.
	First time.Duration
	// Max caps a wait; zero means 10 minutes.
	Max time.Duration
	// Window is how long after the alert was raised its delivery is given up; zero means 6 hours.
	Window time.Duration
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
	Now func() time.Time
	// After waits between delivery retries, like time.After (nil). Tests pass a virtual clock's,
	// to run hours of retries in no time.
	After func(time.Duration) <-chan time.Time
	// ID names this replica in its claims; empty means a random id.
	ID string
	// Lease is how long a claim on an alert lasts unless renewed (every third of it): how long an
	// alert waits when its replica dies mid-delivery. Zero means one minute.
	Lease time.Duration
	// Retry is the delivery's retry policy; the zero value retries for 6 hours, waits capped at
	// 10 minutes.
	Retry Retry
	// Counter counts deliveries; nil counts nothing.
	Counter Counter
	Logger  *slog.Logger
}

// Alerter raises alerts from events (failures) and from periodic checks (deadlines, long-open
// batches).
type Alerter struct {
	opts Options
	wg   sync.WaitGroup // deliveries in progress
}

// New returns an alerter. Register Observe on the event bus and call Run for the periodic checks.
func New(opts Options) *Alerter {
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ID == "" {
		var b [6]byte
		rand.Read(b[:])
		opts.ID = hex.EncodeToString(b[:])
	}
	if opts.Lease <= 0 {
		opts.Lease = time.Minute
	}
	if opts.Retry.First <= 0 {
		opts.Retry.First = 5 * time.Second
	}
	if opts.Retry.Max <= 0 {
		opts.Retry.Max = 10 * time.Minute
	}
	if opts.Retry.Window <= 0 {
		opts.Retry.Window = 6 * time.Hour
	}
	return &Alerter{opts: opts}
}

// Observe raises alerts for the events that call for one: a failed batch, a scheduler run that
// finally failed (or, with alert_on: every_attempt, each failed attempt). It sends in the
// background: a slow webhook never slows a transition. A transition that fails several jobs of a
// batch at once raises one alert naming them all: one claim and one alert event, whatever the
// number of jobs.
//
// The jobs a scheduler run fails (their transitions are marked with event.WithRun) raise nothing
// themselves: the run's own events say whether it will be retried, was cancelled, was stopped by
// a shutdown, or finally failed, and only the last pages. A fail through the API has no run
// behind it and is alerted at once.
//
// Observe is immediate but in-process: a replica that dies between a transition and the claim
// leaves the alert to the backstop (Backstop), which raises the same alerts, under the same keys,
// from the durable event streams.
func (a *Alerter) Observe(ctx context.Context, events []event.Event) {
	_, byRun := event.RunOf(ctx)
	alerts, perAttempt := alertsOf(events, byRun)
	if len(alerts) == 0 && len(perAttempt) == 0 {
		return // nearly every transition: no goroutine
	}
	go a.raiseAlerts(context.WithoutCancel(ctx), alerts, perAttempt) // errors are logged by raise
}

// alertsOf returns the alerts events call for, keyed, as Observe and the backstop raise them:
// alerts to raise, and perAttempt, the alerts of a run's failed attempts, to raise only for a
// workflow with alert_on: every_attempt (raiseAlerts reads it). byRun says a scheduler run made
// the events' transitions (the context's mark, in process); a fail read back from a stream says so
// itself (its RunID). It reads nothing and writes nothing: both paths compute the same keys, so
// that whichever claims an alert first raises it, once.
func alertsOf(events []event.Event, byRun bool) (alerts, perAttempt []keyedAlert) {
	type failedBatch struct {
		wf, entry string
		id        int64
		jobs      []string
	}
	var failed []*failedBatch
	for _, e := range events {
		switch e.Type {
		case event.TypeFail:
			if byRun || e.RunID != "" {
				continue
			}
			// Grouped per transition (its stream entry): the backstop reads several transitions'
			// events at once, and must key each as Observe, which sees one, does.
			entry, _, _ := strings.Cut(e.ID, ".")
			var fb *failedBatch
			for _, f := range failed {
				if f.wf == e.Workflow && f.id == e.BatchID && f.entry == entry {
					fb = f
				}
			}
			if fb == nil {
				fb = &failedBatch{wf: e.Workflow, entry: entry, id: e.BatchID}
				failed = append(failed, fb)
			}
			fb.jobs = append(fb.jobs, e.Job)
		case event.TypeRunFinished:
			if state, _ := e.Fields["state"].(string); state == "failed" { // the scheduler's StateFailed
				alerts = append(alerts, runAlert(e, true))
			}
		case event.TypeRunRetried:
			perAttempt = append(perAttempt, runAlert(e, false))
		}
	}
	for _, f := range failed {
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
		alerts = append(alerts, keyedAlert{al, Failed + ":" + strings.Join(f.jobs, ",") + ":" + id})
	}
	return alerts, perAttempt
}

// raiseAlerts raises alerts, and the perAttempt ones of the workflows set to alert_on:
// every_attempt, and returns once they are claimed (or found claimed before). It returns the
// first error that left an alert unclaimed (a workflow's state or a claim could not be read);
// the alerts it could claim are claimed all the same.
func (a *Alerter) raiseAlerts(ctx context.Context, alerts, perAttempt []keyedAlert) error {
	var firstErr error
	every := map[string]bool{}
	for _, al := range perAttempt {
		on, ok := every[al.Workflow]
		if !ok {
			st, err := a.opts.Store.State(ctx, al.Workflow)
			switch {
			case batch.ErrorCode(err) == batch.ENOTFOUND: // deleted since: nobody to page about it
			case err != nil:
				if firstErr == nil {
					firstErr = err
				}
				continue // not remembered: read again for the workflow's next alert
			default:
				on = st.Settings.AlertOn == batch.AlertOnEveryAttempt
			}
			every[al.Workflow] = on
		}
		if on {
			alerts = append(alerts, al)
		}
	}
	if len(alerts) > 0 {
		if _, err := a.raise(ctx, alerts); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// runAlert is the alert for a scheduler run's failed attempt (run.retried) or final failure
// (run.finished, failed): retries_exhausted when the run was retried, failed otherwise.
func runAlert(e event.Event, final bool) keyedAlert {
	attempts := intField(e.Fields["attempts"])
	jobs := stringsField(e.Fields["failed_jobs"])
	al := Alert{Condition: Failed, Workflow: e.Workflow, RunID: e.RunID, BatchID: e.BatchID, Message: fmt.Sprintf("workflow %s: %s", e.Workflow, e.Message)}
	if len(jobs) == 1 {
		al.Job = jobs[0]
	} else {
		al.Jobs = jobs
	}
	key := Failed + ":run:" + e.RunID + ":" + strconv.Itoa(attempts)
	if final {
		key = Failed + ":run:" + e.RunID
		if attempts > 1 {
			al.Condition = RetriesExhausted
			key = RetriesExhausted + ":" + e.RunID
		}
	}
	if len(jobs) > 0 {
		al.Message += " (jobs " + strings.Join(jobs, ", ") + ")"
	}
	return keyedAlert{al, key}
}

// intField reads a number field, as emitted (int) or read back from JSON (float64).
func intField(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	}
	return 0
}

// stringsField reads a list of strings, as emitted or read back from JSON.
func stringsField(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// keyedAlert is an alert and its key, which names the condition and the batch, run or day it is
// about.
type keyedAlert struct {
	Alert
	key string
}

// Raise sends an alert, in the background, unless one with the same key was claimed or sent; it
// reports whether this call claimed it.
func (a *Alerter) Raise(ctx context.Context, al Alert, key string) bool {
	n, _ := a.raise(ctx, []keyedAlert{{al, key}})
	return n == 1
}

// markTTL is how long a settled alert's mark is kept: raising it again within it sends nothing.
const markTTL = 8 * 24 * time.Hour

// raise claims the alerts not claimed or sent before, records them as events, delivers them and
// returns how many it claimed, and the first error that left one unclaimed (logged too). They are
// claimed in Redis in one round trip and recorded as events in one more, however many they are.
// Each is delivered in the background, on its own: one's retries, which may last hours, delay
// neither the others nor the caller (the periodic checks, the backstop's feeder).
func (a *Alerter) raise(ctx context.Context, alerts []keyedAlert) (int, error) {
	// The alerts of one call are nearly always of one workflow (a failed batch's jobs): claimed
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
		bodies := make([][]byte, len(idx))
		for k, i := range idx {
			keys[k] = alerts[i].key
			bodies[k], _ = json.Marshal(alerts[i].Alert)
		}
		var f []bool
		var e []error
		if len(a.opts.Notifiers) == 0 {
			// Nothing to deliver to: the alert is its event, its log line and its count, marked
			// sent at once (one SET NX each, no claim to settle).
			f, e = a.opts.Marker.MarkAlertsSent(ctx, wf, keys, a.opts.Now(), markTTL)
		} else {
			f, e = a.opts.Marker.ClaimAlerts(ctx, wf, keys, bodies, a.opts.ID, a.opts.Lease)
		}
		for k, i := range idx {
			first[i], errs[i] = f[k], e[k]
		}
	}
	var claimed []keyedAlert
	var events []event.Event
	var firstErr error
	for i := range alerts {
		al := alerts[i].Alert
		if errs[i] != nil {
			a.opts.Logger.Warn("alert not sent: cannot claim it in Redis", "workflow", al.Workflow, "condition", al.Condition, "err", errs[i])
			if firstErr == nil {
				firstErr = errs[i]
			}
			continue
		}
		if !first[i] {
			continue // already claimed or sent, by this replica or another
		}
		a.opts.Logger.Warn("alert", "workflow", al.Workflow, "condition", al.Condition, "message", al.Message)
		fields := map[string]any{"condition": al.Condition}
		if len(al.Jobs) > 0 {
			fields["jobs"] = al.Jobs
		}
		events = append(events, event.Event{Workflow: al.Workflow, Job: al.Job, BatchID: al.BatchID, RunID: al.RunID, Type: event.TypeAlert,
			Level: "error", Message: al.Message, Fields: fields})
		claimed = append(claimed, alerts[i])
	}
	a.opts.Events.Emit(ctx, events...)
	if len(a.opts.Notifiers) > 0 {
		for _, al := range claimed {
			a.wg.Go(func() { a.deliver(context.WithoutCancel(ctx), al) })
		}
	}
	return len(claimed), firstErr
}

// Retry claims the alerts whose replica stopped delivering them (it died or lost Redis: its claim
// expired) and delivers them in the background. Run calls it at each interval.
func (a *Alerter) Retry(ctx context.Context, now time.Time) {
	err := a.opts.Marker.ReclaimAlerts(ctx, a.opts.ID, a.opts.Lease, now, 100, func(wf, key string, body []byte) {
		var al Alert
		if err := json.Unmarshal(body, &al); err != nil {
			a.opts.Logger.Error("pending alert unreadable: given up", "workflow", wf, "key", key, "err", err)
			a.opts.Marker.SettleAlert(ctx, wf, key, false, a.opts.Now(), markTTL)
			return
		}
		a.opts.Logger.Info("alert taken over from a replica that stopped delivering it", "workflow", wf, "condition", al.Condition)
		a.wg.Go(func() { a.deliver(context.WithoutCancel(ctx), keyedAlert{al, key}) })
	})
	if err != nil && ctx.Err() == nil {
		a.opts.Logger.Warn("alert retry scan", "err", err)
	}
}

// Wait blocks until the deliveries started so far have ended (for tests).
func (a *Alerter) Wait() { a.wg.Wait() }

// deliver sends a claimed alert to every notifier, retrying those that fail with a doubling wait
// until the retry window since the alert was raised ends, and settles it: marked sent once every
// notifier took it, given up (logged and counted) after the window. It renews the claim while it
// tries; if the claim is lost (this replica could not renew it in time, and another claimed it),
// it stops and leaves the alert to the new holder.
func (a *Alerter) deliver(ctx context.Context, al keyedAlert) {
	pending := append([]Notifier(nil), a.opts.Notifiers...)
	wait := a.opts.Retry.First
	lost := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(a.opts.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if held, err := a.opts.Marker.RenewAlert(ctx, al.Workflow, al.key, a.opts.ID, a.opts.Lease); err == nil && !held {
					close(lost)
					return
				}
			}
		}
	}()
	var lastErr error
	for {
		var failed []Notifier
		for _, n := range pending {
			nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := n.Notify(nctx, al.Alert)
			cancel()
			if a.opts.Counter != nil {
				a.opts.Counter.AlertDelivery(n.String(), err == nil)
			}
			if err != nil {
				failed = append(failed, n)
				lastErr = err
			}
		}
		pending = failed
		if len(pending) == 0 {
			if err := a.opts.Marker.SettleAlert(ctx, al.Workflow, al.key, true, a.opts.Now(), markTTL); err != nil {
				// The claim expires and another replica sends it again: a duplicate, not a loss.
				a.opts.Logger.Warn("alert delivered but not marked sent", "workflow", al.Workflow, "condition", al.Condition, "err", err)
			}
			return
		}
		if a.opts.Now().Add(wait).Sub(al.Time) > a.opts.Retry.Window {
			a.opts.Logger.Error("alert not delivered: given up", "workflow", al.Workflow, "condition", al.Condition,
				"message", al.Message, "notifiers", len(pending), "window", a.opts.Retry.Window, "err", lastErr)
			if a.opts.Counter != nil {
				a.opts.Counter.AlertGivenUp(al.Workflow, al.Condition)
			}
			a.opts.Marker.SettleAlert(ctx, al.Workflow, al.key, false, a.opts.Now(), markTTL)
			return
		}
		a.opts.Logger.Warn("alert not delivered yet: will retry", "workflow", al.Workflow, "condition", al.Condition, "in", wait, "err", lastErr)
		select {
		case <-a.opts.After(wait):
		case <-lost:
			a.opts.Logger.Warn("alert claimed by another replica while this one retried: left to it", "workflow", al.Workflow, "condition", al.Condition)
			return
		case <-ctx.Done():
			return // the claim expires and another replica delivers it
		}
		wait = min(2*wait, a.opts.Retry.Max)
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

// Run checks deadlines and long-open batches, and takes over the alerts of replicas that stopped
// delivering them, every interval until ctx ends.
func (a *Alerter) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		a.Check(ctx, a.opts.Now())
		a.Retry(ctx, a.opts.Now())
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
