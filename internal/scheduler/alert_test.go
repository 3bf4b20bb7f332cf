package scheduler_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/alert"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/scheduler"
)

// paged is a webhook recording the alerts it receives.
type paged struct {
	url    string // the webhook's (pager)
	mu     sync.Mutex
	alerts []alert.Alert
}

func (p *paged) got() []alert.Alert {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]alert.Alert(nil), p.alerts...)
}

// pager starts a webhook that keeps the alerts it receives.
func (e *env) pager() *paged {
	e.t.Helper()
	p := &paged{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a alert.Alert
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &a)
		p.mu.Lock()
		p.alerts = append(p.alerts, a)
		p.mu.Unlock()
	}))
	e.t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// alerting returns a scheduler whose transitions and run events reach an alerter, and the alerts
// it delivers.
func (e *env) alerting(id string, clk *clock) (*scheduler.Scheduler, *alert.Alerter, *paged) {
	e.t.Helper()
	p := e.pager()
	bus := event.NewBus(nil, nil)
	a := alert.New(alert.Options{Store: e.store, Marker: e.store, Events: bus, ID: id, Notifiers: []alert.Notifier{&alert.Webhook{URL: p.url}}})
	bus.Observe(a.Observe)
	s := scheduler.New(scheduler.Options{Store: event.RecordingStore{Store: e.store, Bus: bus}, Runs: e.store.Scheduler(), ID: id,
		Lease: 10 * time.Second, Now: clk.Now, Events: bus})
	e.t.Cleanup(func() { s.Stop("test over") })
	return s, a, p
}

// alertingDurably is alerting with the events in the Redis streams and the alerts' backstop
// following them; observed false leaves out the in-process Observe, as for a replica that dies
// before it claims any alert: the backstop alone raises them then.
func (e *env) alertingDurably(id string, clk *clock, observed bool) (*scheduler.Scheduler, *paged, func()) {
	e.t.Helper()
	p := e.pager()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus := event.NewBus(rdb.NewEventStream(e.client, e.store.Keys(), 0), quiet)
	hook := []alert.Notifier{&alert.Webhook{URL: p.url}}
	a := alert.New(alert.Options{Store: e.store, Marker: e.store, Events: bus, ID: id, Notifiers: hook, Logger: quiet})
	if observed {
		bus.Observe(a.Observe)
	}
	b := alert.New(alert.Options{Store: e.store, Marker: e.store, Events: bus, ID: id + "-backstop", Notifiers: hook, Logger: quiet})
	f := event.NewFeeder(b.Backstop(), e.store.Sinks(), event.FeederOptions{ID: alert.FeedID, Holder: id, Recent: true,
		Lease: 2 * time.Second, Poll: 50 * time.Millisecond, Log: quiet})
	e.t.Cleanup(func() { f.Close(ctx) })
	for deadline := time.Now().Add(5 * time.Second); !f.Leader() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // it follows the streams from now on
	s := scheduler.New(scheduler.Options{Store: event.RecordingStore{Store: e.store, Bus: bus}, Runs: e.store.Scheduler(), ID: id,
		Lease: 10 * time.Second, Now: clk.Now, Events: bus})
	e.t.Cleanup(func() { s.Stop("test over") })
	settle := func() {
		time.Sleep(200 * time.Millisecond)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if p, err := e.store.Sinks().Next(ctx, alert.FeedID, "w", time.Now(), 10); err == nil && p.Entries == 0 {
				break
			}
		}
		a.Wait()
		b.Wait()
	}
	return s, p, settle
}

// TestAlertBackstopRun: a run that fails its retries pages once for its final failure, whether
// its replica raised the alert in process or died before it could and the backstop raised it from
// the streams; the steps' failed jobs page nobody, on either path.
func TestAlertBackstopRun(t *testing.T) {
	for _, observed := range []bool{true, false} {
		t.Run(fmt.Sprintf("in process %v", observed), func(t *testing.T) {
			e := newEnv(t)
			clk := newClock(t0)
			s, p, settle := e.alertingDurably("s1", clk, observed)
			e.load("w", "batchy:\n  retries: {count: 1, backoff: 1m}\na:\n  run: {type: exec, command: [\"false\"]}\n")
			s.Trigger(ctx, "w", scheduler.TriggerRequest{})
			tick(t, s, clk.Now())
			s.Wait()
			clk.Set(t0.Add(time.Minute))
			tick(t, s, clk.Now())
			s.Wait()
			settle()
			if got := conditions(p.got()); len(got) != 1 || got[0] != "retries_exhausted:a" {
				t.Errorf("alerts = %v, want one retries_exhausted for a", got)
			}
		})
	}
}

// settle waits for the alerts raised so far to be delivered.
func settle(a *alert.Alerter) {
	time.Sleep(200 * time.Millisecond) // observers raise in the background
	a.Wait()
}

func conditions(alerts []alert.Alert) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.Condition+":"+a.Job)
	}
	return out
}

// TestAlertPolicy: a scheduler run pages for its final outcome, not for each attempt (unless
// alert_on: every_attempt); cancels and shutdowns page nobody.
func TestAlertPolicy(t *testing.T) {
	flaky := func(t *testing.T) string {
		m := filepath.Join(t.TempDir(), "second")
		return fmt.Sprintf(`["sh", "-c", "if [ -f %s ]; then exit 0; fi; touch %s; exit 3"]`, m, m)
	}
	t.Run("retried run that finally succeeds", func(t *testing.T) {
		e := newEnv(t)
		clk := newClock(t0)
		s, a, p := e.alerting("s1", clk)
		e.load("w", "batchy:\n  retries: {count: 2, backoff: 1m}\nflaky:\n  run: {type: exec, command: "+flaky(t)+"}\n")
		s.Trigger(ctx, "w", scheduler.TriggerRequest{})
		tick(t, s, clk.Now())
		s.Wait()
		clk.Set(t0.Add(time.Minute))
		tick(t, s, clk.Now())
		s.Wait()
		if r := e.runs(s, "w")[0]; r.State != scheduler.StateSucceeded {
			t.Fatalf("run %s", r.State)
		}
		settle(a)
		if got := p.got(); len(got) != 0 {
			t.Errorf("alerts = %v, want none", conditions(got))
		}
	})
	t.Run("every_attempt pages the failed attempt", func(t *testing.T) {
		e := newEnv(t)
		clk := newClock(t0)
		s, a, p := e.alerting("s1", clk)
		e.load("w", "batchy:\n  alert_on: every_attempt\n  retries: {count: 2, backoff: 1m}\nflaky:\n  run: {type: exec, command: "+flaky(t)+"}\n")
		s.Trigger(ctx, "w", scheduler.TriggerRequest{})
		tick(t, s, clk.Now())
		s.Wait()
		clk.Set(t0.Add(time.Minute))
		tick(t, s, clk.Now())
		s.Wait()
		settle(a)
		if got := conditions(p.got()); len(got) != 1 || got[0] != "failed:flaky" {
			t.Errorf("alerts = %v, want one failed for flaky", got)
		}
	})
	t.Run("final failure pages once", func(t *testing.T) {
		e := newEnv(t)
		clk := newClock(t0)
		s, a, p := e.alerting("s1", clk)
		e.load("w", "batchy:\n  retries: {count: 1, backoff: 1m}\na:\n  run: {type: exec, command: [\"false\"]}\n")
		s.Trigger(ctx, "w", scheduler.TriggerRequest{})
		tick(t, s, clk.Now())
		s.Wait()
		clk.Set(t0.Add(time.Minute))
		tick(t, s, clk.Now())
		s.Wait()
		settle(a)
		if got := conditions(p.got()); len(got) != 1 || got[0] != "retries_exhausted:a" {
			t.Errorf("alerts = %v, want one retries_exhausted for a", got)
		}
	})
	t.Run("failure without retries", func(t *testing.T) {
		e := newEnv(t)
		clk := newClock(t0)
		s, a, p := e.alerting("s1", clk)
		e.load("w", "a:\n  run: {type: exec, command: [\"false\"]}\n")
		s.Trigger(ctx, "w", scheduler.TriggerRequest{})
		tick(t, s, clk.Now())
		s.Wait()
		settle(a)
		if got := conditions(p.got()); len(got) != 1 || got[0] != "failed:a" {
			t.Errorf("alerts = %v, want one failed for a", got)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		e := newEnv(t)
		clk := newClock(t0)
		s, a, p := e.alerting("s1", clk)
		e.load("w", "a:\n  run: {type: exec, command: [\"sleep\", \"60\"]}\n")
		run, _ := s.Trigger(ctx, "w", scheduler.TriggerRequest{})
		tick(t, s, clk.Now())
		time.Sleep(200 * time.Millisecond)
		if err := s.Cancel(ctx, "w", run.ID, "operator said so"); err != nil {
			t.Fatal(err)
		}
		s.Wait()
		settle(a)
		if got := p.got(); len(got) != 0 {
			t.Errorf("alerts after a cancel = %v, want none", conditions(got))
		}
	})
	t.Run("graceful shutdown", func(t *testing.T) {
		e := newEnv(t)
		clk := newClock(t0)
		s, a, p := e.alerting("s1", clk)
		e.load("w", "a:\n  run: {type: exec, command: [\"sleep\", \"60\"]}\n")
		s.Trigger(ctx, "w", scheduler.TriggerRequest{})
		tick(t, s, clk.Now())
		time.Sleep(200 * time.Millisecond)
		s.Stop("batchy is shutting down")
		settle(a)
		if got := p.got(); len(got) != 0 {
			t.Errorf("alerts after a shutdown = %v, want none", conditions(got))
		}
	})
}
