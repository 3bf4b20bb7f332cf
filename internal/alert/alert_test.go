package alert_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/alert"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

var ctx = context.Background()

// hook is a webhook test server recording what it receives.
type hook struct {
	mu     sync.Mutex
	bodies []string
	srv    *httptest.Server
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(b))
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// waitFor polls until n bodies arrived or a generous deadline passes.
func (h *hook) waitFor(n int) []string {
	deadline := time.Now().Add(10 * time.Second)
	for len(h.got()) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // and no more than n
	return h.got()
}

type env struct {
	store batch.Store
	raw   *rdb.Store
	bus   *event.Bus
}

func setup(t *testing.T, notifiers ...alert.Notifier) (*env, *alert.Alerter) {
	t.Helper()
	client := rdbtest.StartRedis(t).Client(t)
	raw := rdb.New(client, rdb.Options{})
	bus := event.NewBus(rdb.NewEventStream(client, raw.Keys(), 0), nil)
	a := alert.New(alert.Options{Store: raw, Marker: raw, Notifiers: notifiers, Events: bus})
	bus.Observe(a.Observe)
	// A second replica's alerter on the same Redis: alerts still go out once.
	bus.Observe(alert.New(alert.Options{Store: raw, Marker: raw, Notifiers: notifiers, Events: bus}).Observe)
	return &env{store: event.RecordingStore{Store: raw, Bus: bus}, raw: raw, bus: bus}, a
}

func (e *env) load(t *testing.T, name, yaml string) {
	t.Helper()
	wf, err := config.Parse(name, []byte(yaml), config.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Load(ctx, wf, false); err != nil {
		t.Fatal(err)
	}
}

func TestFailureAlertOnce(t *testing.T) {
	h := newHook(t)
	e, _ := setup(t, &alert.Webhook{URL: h.srv.URL})
	e.load(t, "w", "a: {}\n")
	e.store.Open(ctx, "w", batch.OpenRequest{})
	e.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed})
	e.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed}) // the same batch, failed again
	got := h.waitFor(1)
	if len(got) != 1 {
		t.Fatalf("webhook calls = %d, want 1: %v", len(got), got)
	}
	var a alert.Alert
	if err := json.Unmarshal([]byte(got[0]), &a); err != nil || a.Condition != alert.Failed || a.Job != "a" || a.BatchID == 0 {
		t.Errorf("alert = %s (%v)", got[0], err)
	}
	evs, _ := e.bus.Stream().Read(ctx, "w", event.Query{Type: event.TypeAlert})
	if len(evs) != 1 {
		t.Errorf("alert events = %d, want 1", len(evs))
	}
	// A new batch failing is a new alert.
	e.store.Open(ctx, "w", batch.OpenRequest{})
	e.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed})
	if got := h.waitFor(2); len(got) != 2 {
		t.Errorf("webhook calls after a second failed batch = %d, want 2", len(got))
	}
}

// TestFailedJobsAlertedTogether checks that the jobs one transition fails are one alert naming
// them all, with one alert event: a 3-job batch failing is one page, not three.
func TestFailedJobsAlertedTogether(t *testing.T) {
	h := newHook(t)
	e, _ := setup(t, &alert.Webhook{URL: h.srv.URL})
	e.load(t, "w", "a: {}\nb: {}\nc: {}\n")
	e.store.Open(ctx, "w", batch.OpenRequest{})
	e.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed})
	got := h.waitFor(1)
	if len(got) != 1 {
		t.Fatalf("webhook calls = %d, want 1: %v", len(got), got)
	}
	var a alert.Alert
	if err := json.Unmarshal([]byte(got[0]), &a); err != nil || a.Condition != alert.Failed {
		t.Errorf("alert = %s (%v)", got[0], err)
	}
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(a.Jobs, want) || a.Job != "" || !strings.Contains(a.Message, "jobs a, b, c failed") {
		t.Errorf("alert jobs = %v, job %q, message %q; want %v", a.Jobs, a.Job, a.Message, want)
	}
	evs, _ := e.bus.Stream().Read(ctx, "w", event.Query{Type: event.TypeAlert})
	if len(evs) != 1 {
		t.Errorf("alert events = %d, want 1", len(evs))
	}
	// Failing one job of the next batch alone names that job.
	e.store.Open(ctx, "w", batch.OpenRequest{})
	e.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed, Jobs: []string{"b"}})
	got = h.waitFor(2)
	var b alert.Alert
	if len(got) != 2 || json.Unmarshal([]byte(got[1]), &b) != nil || b.Job != "b" || b.Jobs != nil {
		t.Errorf("alerts after failing b alone = %v", got)
	}
}

func TestLate(t *testing.T) {
	h := newHook(t)
	e, a := setup(t, &alert.Webhook{URL: h.srv.URL, Slack: true})
	e.load(t, "w", "batchy:\n  deadline: \"06:00\"\n  timezone: Europe/Berlin\na: {}\n")
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	a.Check(ctx, day.Add(4*time.Hour+59*time.Minute)) // 05:59 in Berlin
	if got := h.waitFor(0); len(got) != 0 {
		t.Fatalf("alert before the deadline: %v", got)
	}
	a.Check(ctx, day.Add(5*time.Hour+time.Minute)) // 06:01 in Berlin
	a.Check(ctx, day.Add(7*time.Hour))
	got := h.waitFor(1)
	if len(got) != 1 || !strings.Contains(got[0], `"text"`) || !strings.Contains(got[0], "late") {
		t.Fatalf("late alerts = %v, want one Slack-style body", got)
	}
}

// TestLongOpen uses a workflow without a deadline: the batch opens now, so a deadline would make
// the checks below late or not depending on the time of day the test runs.
func TestLongOpen(t *testing.T) {
	h := newHook(t)
	e, a := setup(t, &alert.Webhook{URL: h.srv.URL, Slack: true})
	e.load(t, "w", "batchy:\n  max_open: 1h\na: {}\n")
	st, _ := e.store.Open(ctx, "w", batch.OpenRequest{})
	start, _ := st.Jobs[0].Fields.Time(batch.FieldBatchStart)
	a.Check(ctx, start.Add(30*time.Minute))
	a.Check(ctx, start.Add(2*time.Hour))
	a.Check(ctx, start.Add(3*time.Hour))
	got := h.waitFor(1)
	if len(got) != 1 || !strings.Contains(got[0], "open for") {
		t.Errorf("long-open alerts: %v", got)
	}
}

// hangingSink never returns: transitions must not wait for it.
type hangingSink struct{}

func (hangingSink) Write(ctx context.Context, _ []event.Event) error { <-ctx.Done(); select {} }
func (hangingSink) Close() error                                     { return nil }
func (hangingSink) String() string                                   { return "hanging://" }

func TestHangingSinkAndWebhookDoNotSlowTransitions(t *testing.T) {
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer slow.Close()
	defer close(block) // before Close, which waits for the blocked handlers
	client := rdbtest.StartRedis(t).Client(t)
	raw := rdb.New(client, rdb.Options{})
	bus := event.NewBus(rdb.NewEventStream(client, raw.Keys(), 0), nil)
	feeder := event.NewFeeder(hangingSink{}, raw.Sinks(), event.FeederOptions{Holder: "r1", WriteTimeout: 50 * time.Millisecond})
	bus.Feed(feeder)
	bus.Observe(alert.New(alert.Options{Store: raw, Marker: raw, Events: bus,
		Notifiers: []alert.Notifier{&alert.Webhook{URL: slow.URL}}}).Observe)
	store := event.RecordingStore{Store: raw, Bus: bus}
	wf, _ := config.Parse("w", []byte("a: {}\n"), config.Limits{})
	store.Load(ctx, wf, false)
	start := time.Now()
	for i := 0; i < 50; i++ {
		store.Open(ctx, "w", batch.OpenRequest{})
		if _, err := store.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed}); err != nil {
			t.Fatal(err)
		}
	}
	// 100 transitions against a sink and a webhook that never answer: generous bound, the point
	// is that nothing waits for them (each would otherwise block for ever).
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("100 transitions took %s", d)
	}
	if n := feeder.Delivered(); n != 0 {
		t.Errorf("the hanging sink took %d events", n)
	}
}

// TestWebhookHidesItsSecret: a webhook's path is its secret; neither its name in logs nor a
// delivery error shows it.
func TestWebhookHidesItsSecret(t *testing.T) {
	w := &alert.Webhook{URL: "http://127.0.0.1:1/services/T0/B0/hook-secret-123", Slack: true}
	if s := w.String(); strings.Contains(s, "hook-secret-123") || s != "slack webhook http://127.0.0.1:1/(hidden)" {
		t.Errorf("String() = %q", s)
	}
	err := w.Notify(context.Background(), alert.Alert{Message: "x"})
	if err == nil {
		t.Fatal("delivery to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "hook-secret-123") || strings.Contains(err.Error(), "/services/") {
		t.Errorf("the delivery error shows the hook's secret: %v", err)
	}
}

// TestAlertWithoutWebhooks: with no webhook, an alert is still raised once across replicas (its
// event), and marked sent at once: nothing waits to be delivered.
func TestAlertWithoutWebhooks(t *testing.T) {
	e, _ := setup(t)
	e.load(t, "w", "a: {}\n")
	e.store.Open(ctx, "w", batch.OpenRequest{})
	e.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed})
	e.store.End(ctx, "w", batch.EndRequest{Status: batch.StatusFailed}) // the same batch, failed again
	deadline := time.Now().Add(5 * time.Second)
	var evs []event.Event
	for time.Now().Before(deadline) {
		evs, _ = e.bus.Stream().Read(ctx, "w", event.Query{Type: event.TypeAlert})
		if len(evs) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a second one, if any, would be there by now
	evs, _ = e.bus.Stream().Read(ctx, "w", event.Query{Type: event.TypeAlert})
	if len(evs) != 1 {
		t.Fatalf("alert events = %d, want 1", len(evs))
	}
	client := e.raw.Client()
	keys, _ := client.Keys(ctx, "batchy:{w}:alert:*").Result()
	if len(keys) != 1 {
		t.Fatalf("alert marks: %v, want one", keys)
	}
	if v, _ := client.Get(ctx, keys[0]).Result(); !strings.HasPrefix(v, "sent ") {
		t.Errorf("alert mark = %q, want sent", v)
	}
}
