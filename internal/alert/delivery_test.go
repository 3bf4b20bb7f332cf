package alert_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/alert"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/metrics"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// flakyHook answers 503 while down, then records and accepts what it receives.
type flakyHook struct {
	down   atomic.Bool
	tries  atomic.Int64
	mu     sync.Mutex
	bodies []string
	srv    *httptest.Server
}

func newFlakyHook(t *testing.T) *flakyHook {
	h := &flakyHook{}
	h.down.Store(true)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.tries.Add(1)
		if h.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var a alert.Alert
		json.NewDecoder(r.Body).Decode(&a)
		h.mu.Lock()
		h.bodies = append(h.bodies, a.Condition+" "+a.Message)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *flakyHook) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// metricValue reads one series of a counter from the registry; zero when absent.
func metricValue(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			return s.GetCounter().GetValue()
		}
	}
	return 0
}

// fast is a retry policy for tests: waits of 50 ms doubling to 200 ms.
var fast = alert.Retry{First: 50 * time.Millisecond, Max: 200 * time.Millisecond, Window: time.Hour}

// TestWebhookDownThenUp: a webhook that refuses alerts for a while gets each alert exactly once
// when it is back, though two replicas' alerters observe the failure; the failed attempts and the
// delivery are counted per notifier.
func TestWebhookDownThenUp(t *testing.T) {
	h := newFlakyHook(t)
	client := rdbtest.StartRedis(t).Client(t)
	raw := rdb.New(client, rdb.Options{})
	bus := event.NewBus(rdb.NewEventStream(client, raw.Keys(), 0), nil)
	m := metrics.New()
	var alerters []*alert.Alerter
	for _, id := range []string{"r1", "r2"} {
		a := alert.New(alert.Options{Store: raw, Marker: raw, Events: bus, ID: id, Lease: time.Second, Retry: fast, Counter: m,
			Notifiers: []alert.Notifier{&alert.Webhook{URL: h.srv.URL}}})
		bus.Observe(a.Observe)
		alerters = append(alerters, a)
	}
	store := event.RecordingStore{Store: raw, Bus: bus}
	e := &env{store: store, raw: raw, bus: bus}
	e.load(t, "w", "a: {}\n")
	e.store.Open(ctx, "w", batch.OpenRequest{})
	e.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed})

	deadline := time.Now().Add(10 * time.Second)
	for h.tries.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.tries.Load(); n < 4 {
		t.Fatalf("webhook tried %d times while down, want retries", n)
	}
	// Both replicas' retry scans run while the claim is held: neither takes the alert over.
	for _, a := range alerters {
		a.Retry(ctx, time.Now())
	}
	h.down.Store(false)
	for len(h.got()) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, a := range alerters {
		a.Wait()
		a.Retry(ctx, time.Now().Add(time.Minute)) // settled: nothing to take over
		a.Wait()
	}
	if got := h.got(); len(got) != 1 {
		t.Fatalf("alerts delivered = %d, want 1: %v", len(got), got)
	}
	notifier := (&alert.Webhook{URL: h.srv.URL}).String()
	if got := metricValue(t, m, "batchy_alert_deliveries_total", map[string]string{"notifier": notifier, "result": "delivered"}); got != 1 {
		t.Errorf("delivered = %v, want 1", got)
	}
	if got := metricValue(t, m, "batchy_alert_deliveries_total", map[string]string{"notifier": notifier, "result": "failed"}); got < 3 {
		t.Errorf("failed deliveries = %v, want at least 3", got)
	}
	if got := metricValue(t, m, "batchy_alerts_failed_total", map[string]string{"workflow": "w"}); got != 0 {
		t.Errorf("alerts given up = %v, want 0", got)
	}
	// Raised again (the same batch failed again): sent already, nothing goes out.
	e.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed})
	time.Sleep(300 * time.Millisecond)
	if got := h.got(); len(got) != 1 {
		t.Errorf("alerts after the same failure again = %d, want 1", len(got))
	}
}

// TestGiveUp: a webhook down for longer than the retry window: the alert is given up, logged and
// counted, and not tried again.
func TestGiveUp(t *testing.T) {
	h := newFlakyHook(t)
	client := rdbtest.StartRedis(t).Client(t)
	raw := rdb.New(client, rdb.Options{})
	m := metrics.New()
	a := alert.New(alert.Options{Store: raw, Marker: raw, Lease: time.Second, Counter: m,
		Retry:     alert.Retry{First: 20 * time.Millisecond, Max: 40 * time.Millisecond, Window: 300 * time.Millisecond},
		Notifiers: []alert.Notifier{&alert.Webhook{URL: h.srv.URL}}})
	if !a.Raise(ctx, alert.Alert{Condition: alert.Late, Workflow: "w", Message: "late"}, "late:day") {
		t.Fatal("not raised")
	}
	a.Wait()
	if got := metricValue(t, m, "batchy_alerts_failed_total", map[string]string{"workflow": "w", "condition": alert.Late}); got != 1 {
		t.Errorf("batchy_alerts_failed_total = %v, want 1", got)
	}
	tries := h.tries.Load()
	h.down.Store(false)
	a.Retry(ctx, time.Now().Add(time.Hour))
	a.Wait()
	if a.Raise(ctx, alert.Alert{Condition: alert.Late, Workflow: "w", Message: "late"}, "late:day") {
		t.Error("a given-up alert was raised again")
	}
	a.Wait()
	if h.tries.Load() != tries || len(h.got()) != 0 {
		t.Errorf("a given-up alert was tried again")
	}
}

// deadMarker is a replica that died after claiming: it no longer renews its claims.
type deadMarker struct{ alert.Marker }

func (deadMarker) RenewAlert(context.Context, string, string, string, time.Duration) (bool, error) {
	return true, nil
}

// stuckNotifier never returns until released: the replica "died" mid-delivery.
type stuckNotifier struct{ release chan struct{} }

func (n stuckNotifier) Notify(ctx context.Context, _ alert.Alert) error {
	select {
	case <-n.release:
	case <-ctx.Done():
	}
	return context.Canceled
}
func (stuckNotifier) String() string { return "stuck" }

// TestReplicaDiesMidDelivery: the replica that claimed an alert dies while delivering it; once its
// claim expires, the other replica's retry scan delivers it, once.
func TestReplicaDiesMidDelivery(t *testing.T) {
	h := newFlakyHook(t)
	h.down.Store(false)
	client := rdbtest.StartRedis(t).Client(t)
	raw := rdb.New(client, rdb.Options{})
	stuck := stuckNotifier{make(chan struct{})}
	defer close(stuck.release)
	lease := 300 * time.Millisecond
	dying := alert.New(alert.Options{Store: raw, Marker: deadMarker{raw}, ID: "dying", Lease: lease, Retry: fast, Notifiers: []alert.Notifier{stuck}})
	other := alert.New(alert.Options{Store: raw, Marker: raw, ID: "other", Lease: lease, Retry: fast,
		Notifiers: []alert.Notifier{&alert.Webhook{URL: h.srv.URL}}})
	al := alert.Alert{Condition: alert.Failed, Workflow: "w", Job: "a", BatchID: 7, Message: "workflow w: job a failed (batch 7)"}
	if !dying.Raise(ctx, al, "failed:a:7") {
		t.Fatal("not raised")
	}
	if other.Raise(ctx, al, "failed:a:7") {
		t.Fatal("raised twice")
	}
	other.Retry(ctx, time.Now()) // the claim holds: nothing taken over
	other.Wait()
	if len(h.got()) != 0 {
		t.Fatalf("delivered while claimed: %v", h.got())
	}
	time.Sleep(lease + 100*time.Millisecond)
	other.Retry(ctx, time.Now().Add(lease))
	other.Wait()
	other.Retry(ctx, time.Now().Add(2*lease))
	other.Wait()
	if got := h.got(); len(got) != 1 || got[0] != "failed "+al.Message {
		t.Errorf("delivered by the other replica: %v, want the alert once", got)
	}
}

// virtualClock is a clock whose After moves time forward at once: the alerter's retries of hours
// run in milliseconds.
type virtualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *virtualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}

// TestWebhookDownTenMinutes: with the default retry policy (5 s doubling, waits capped at 10
// minutes, given up after 6 hours), an alert raised while its webhook is down for 10 minutes is
// delivered once when the webhook is back, at the first retry after it; it is marked sent only
// then, and every failed try is counted.
func TestWebhookDownTenMinutes(t *testing.T) {
	clock := &virtualClock{now: time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)}
	start := clock.Now()
	var (
		mu        sync.Mutex
		tried     []time.Duration // when each try came, after the alert was raised
		delivered []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		since := clock.Now().Sub(start)
		tried = append(tried, since)
		if since < 10*time.Minute {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		var a alert.Alert
		json.NewDecoder(r.Body).Decode(&a)
		delivered = append(delivered, a.Condition+" "+a.Message)
	}))
	defer srv.Close()
	client := rdbtest.StartRedis(t).Client(t)
	raw := rdb.New(client, rdb.Options{})
	m := metrics.New()
	a := alert.New(alert.Options{Store: raw, Marker: raw, ID: "r1", Counter: m, Now: clock.Now, After: clock.After,
		Notifiers: []alert.Notifier{&alert.Webhook{URL: srv.URL}}})
	other := alert.New(alert.Options{Store: raw, Marker: raw, ID: "r2", Now: clock.Now, After: clock.After,
		Notifiers: []alert.Notifier{&alert.Webhook{URL: srv.URL}}})
	al := alert.Alert{Condition: alert.Failed, Workflow: "w", Job: "a", BatchID: 3, Message: "workflow w: job a failed (batch 3)"}
	if !a.Raise(ctx, al, "failed:a:3") {
		t.Fatal("not raised")
	}
	if other.Raise(ctx, al, "failed:a:3") {
		t.Fatal("raised again by another replica while the first delivers it")
	}
	a.Wait()
	seen := func() ([]time.Duration, []string) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(tried), slices.Clone(delivered)
	}

	tries, delivered := seen()
	// Tries at 0, 5, 15, 35, 75, 155, 315 s fail; the one at 635 s (10 min 35 s) gets through.
	want := []time.Duration{0, 5, 15, 35, 75, 155, 315, 635}
	if len(tries) != len(want) {
		t.Fatalf("tries at %v, want %d tries", tries, len(want))
	}
	for i, w := range want {
		if tries[i] != w*time.Second {
			t.Errorf("try %d at %v, want %v", i+1, tries[i], w*time.Second)
		}
	}
	if len(delivered) != 1 || delivered[0] != "failed "+al.Message {
		t.Errorf("delivered %v, want the alert once", delivered)
	}
	notifier := (&alert.Webhook{URL: srv.URL}).String()
	if got := metricValue(t, m, "batchy_alert_deliveries_total", map[string]string{"notifier": notifier, "result": "failed"}); got != 7 {
		t.Errorf("failed deliveries = %v, want 7", got)
	}
	if got := metricValue(t, m, "batchy_alert_deliveries_total", map[string]string{"notifier": notifier, "result": "delivered"}); got != 1 {
		t.Errorf("delivered = %v, want 1", got)
	}
	if got := metricValue(t, m, "batchy_alerts_failed_total", map[string]string{"workflow": "w"}); got != 0 {
		t.Errorf("alerts given up = %v, want 0", got)
	}
	// Settled as sent: no replica raises or takes it over again, even after every lease ended.
	if other.Raise(ctx, al, "failed:a:3") {
		t.Error("a delivered alert was raised again")
	}
	other.Retry(ctx, clock.Now().Add(time.Hour))
	other.Wait()
	if _, delivered := seen(); len(delivered) != 1 {
		t.Errorf("delivered %d times, want once", len(delivered))
	}
}
