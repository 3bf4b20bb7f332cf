package alert_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/alert"
	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/event"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// replicas is an installation of two replicas on one store: live raises alerts in process
// (Observe), as every replica does; dead makes transitions whose Observe never runs, as a replica
// that dies between a transition and its alert's claim. Both write the durable event stream.
type replicas struct {
	raw        *rdb.Store
	bus        *event.Bus // live's
	live, dead batch.Store
	alerter    *alert.Alerter
}

func newReplicas(t *testing.T, client rdb.Client, emb *rdb.Embedded, notifiers ...alert.Notifier) *replicas {
	t.Helper()
	raw := rdb.New(client, rdb.Options{Embedded: emb})
	stream := rdb.NewEventStream(client, raw.Keys(), 0)
	bus := event.NewBus(stream, quiet)
	a := alert.New(alert.Options{Store: raw, Marker: raw, Notifiers: notifiers, Events: bus, Logger: quiet})
	bus.Observe(a.Observe)
	deadBus := event.NewBus(stream, quiet) // nobody observes: the transitions' events are in the stream only
	return &replicas{raw: raw, bus: bus, alerter: a,
		live: event.RecordingStore{Store: raw, Bus: bus}, dead: event.RecordingStore{Store: raw, Bus: deadBus}}
}

// backstop starts the alerts' backstop feeder of a replica and, unless another replica's holds
// the lease (standby), waits until it follows the streams.
func (r *replicas) backstop(t *testing.T, holder string, standby bool, notifiers ...alert.Notifier) *event.Feeder {
	t.Helper()
	a := alert.New(alert.Options{Store: r.raw, Marker: r.raw, Notifiers: notifiers, Events: r.bus, Logger: quiet, ID: holder})
	f := event.NewFeeder(a.Backstop(), r.raw.Sinks(), event.FeederOptions{ID: alert.FeedID, Holder: holder, Recent: true,
		Lease: 2 * time.Second, Poll: 100 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Log: quiet})
	t.Cleanup(func() { f.Close(ctx); a.Wait() })
	if standby {
		return f
	}
	deadline := time.Now().Add(5 * time.Second)
	for !f.Leader() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // its first delivery recorded when it started
	return f
}

func (r *replicas) load(t *testing.T, name, yaml string) {
	t.Helper()
	wf, err := config.Parse(name, []byte(yaml), config.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.live.Load(ctx, wf, false); err != nil {
		t.Fatal(err)
	}
}

// failBatch opens a batch of wf on s and fails jobs of it (none: all); it returns the batch id.
func failBatch(t *testing.T, s batch.Store, wf string, jobs ...string) int64 {
	t.Helper()
	st, err := s.Open(ctx, wf, batch.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.End(ctx, wf, batch.EndRequest{Status: batch.StatusFailed, Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	id, _ := st.Jobs[0].Fields.Int(batch.FieldBatchID)
	return id
}

func decodeAlerts(t *testing.T, bodies []string) []alert.Alert {
	t.Helper()
	out := make([]alert.Alert, len(bodies))
	for i, b := range bodies {
		if err := json.Unmarshal([]byte(b), &out[i]); err != nil {
			t.Fatalf("alert %s: %v", b, err)
		}
	}
	return out
}

// alertEvents counts wf's alert events in its stream.
func alertEvents(t *testing.T, r *replicas, wf string) int {
	t.Helper()
	evs, err := r.bus.Stream().Read(ctx, wf, event.Query{Type: event.TypeAlert})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// caughtUp waits until the backstop has read wf's stream to its end.
func caughtUp(t *testing.T, r *replicas, wf string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p, err := r.raw.Sinks().Next(ctx, alert.FeedID, wf, time.Now(), 10)
		if err == nil && p.Entries == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the backstop did not catch up with %s's stream", wf)
}

// TestBackstopAfterObserve: a failure alerted in process first is not raised again by the
// backstop: one delivery, one alert event.
func TestBackstopAfterObserve(t *testing.T) {
	h := newHook(t)
	client := rdbtest.StartRedis(t).Client(t)
	r := newReplicas(t, client, nil, &alert.Webhook{URL: h.srv.URL})
	r.backstop(t, "b1", false, &alert.Webhook{URL: h.srv.URL})
	r.load(t, "w", "a: {}\nb: {}\n")
	failBatch(t, r.live, "w")
	caughtUp(t, r, "w")
	r.alerter.Wait()
	if got := h.waitFor(1); len(got) != 1 {
		t.Fatalf("webhook calls = %d, want 1: %v", len(got), got)
	}
	if n := alertEvents(t, r, "w"); n != 1 {
		t.Errorf("alert events = %d, want 1", n)
	}
}

// TestBackstopRaisesLostAlert: failures whose replica never claimed their alert (it died) are
// alerted by the backstop, once each, with what the in-process path sends for the same failures;
// on Redis, on the embedded store and on a Cluster.
func TestBackstopRaisesLostAlert(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		h := newHook(t)
		client, emb := b.New(t)
		r := newReplicas(t, client, emb, &alert.Webhook{URL: h.srv.URL})
		// Two replicas' backstops: one holds the lease.
		r.backstop(t, "b1", false, &alert.Webhook{URL: h.srv.URL})
		r.backstop(t, "b2", true, &alert.Webhook{URL: h.srv.URL})
		const yaml = "a: {}\nb: {}\nc: {}\n"
		r.load(t, "live", yaml)
		r.load(t, "lost", yaml)

		// The same failures, alerted in process and lost: all jobs of a batch, then b of the next.
		liveIDs := []int64{failBatch(t, r.live, "live"), failBatch(t, r.live, "live", "b")}
		live := decodeAlerts(t, h.waitFor(2))
		lostIDs := []int64{failBatch(t, r.dead, "lost"), failBatch(t, r.dead, "lost", "b")}
		caughtUp(t, r, "lost")
		got := decodeAlerts(t, h.waitFor(4))
		if len(got) != 4 || len(live) != 2 {
			t.Fatalf("alerts = %+v, want 2 in process and 2 from the backstop", got)
		}
		lost := got[2:]
		byBatch := func(x, y alert.Alert) int { return int(x.BatchID - y.BatchID) } // delivered in parallel
		slices.SortFunc(live, byBatch)
		slices.SortFunc(lost, byBatch)
		for i := range lost {
			l, w := lost[i], live[i]
			if l.Workflow != "lost" || l.BatchID != lostIDs[i] || w.BatchID != liveIDs[i] {
				t.Errorf("alert %d: workflow %s batch %d (want lost, %d); in process: batch %d (want %d)", i, l.Workflow, l.BatchID, lostIDs[i], w.BatchID, liveIDs[i])
			}
			l.Time, w.Time, l.Workflow, w.Workflow, l.BatchID, w.BatchID = time.Time{}, time.Time{}, "", "", 0, 0
			l.Message = strings.ReplaceAll(strings.ReplaceAll(l.Message, "lost", "wf"), "batch "+itoa(lostIDs[i]), "batch N")
			w.Message = strings.ReplaceAll(strings.ReplaceAll(w.Message, "live", "wf"), "batch "+itoa(liveIDs[i]), "batch N")
			if lj, wj := mustJSON(t, l), mustJSON(t, w); lj != wj {
				t.Errorf("alert %d from the backstop:\n%s\nin process:\n%s", i, lj, wj)
			}
		}
		if lost[0].Condition != alert.Failed || strings.Join(lost[0].Jobs, ",") != "a,b,c" || lost[1].Job != "b" {
			t.Errorf("backstop's alerts = %+v", lost)
		}
		if n := alertEvents(t, r, "lost"); n != 2 {
			t.Errorf("alert events = %d, want 2", n)
		}
	})
}

// TestBackstopRunSteps: a job failed by a scheduler run's step raises nothing from the backstop
// either (the entry names the run); the run's final failure pages once, whether its replica
// raised it in process or died first; with alert_on: every_attempt, a failed attempt pages.
func TestBackstopRunSteps(t *testing.T) {
	h := newHook(t)
	client := rdbtest.StartRedis(t).Client(t)
	r := newReplicas(t, client, nil, &alert.Webhook{URL: h.srv.URL})
	r.backstop(t, "b1", false, &alert.Webhook{URL: h.srv.URL})
	r.load(t, "w", "a: {}\n")
	r.load(t, "every", "batchy:\n  alert_on: every_attempt\na: {}\n")
	finished := func(id string) event.Event {
		return event.Event{Workflow: "w", RunID: id, Type: event.TypeRunFinished, Level: "error", Message: "run failed",
			Fields: map[string]any{"state": "failed", "attempts": 1, "failed_jobs": []string{"a"}}}
	}

	failBatch(t, r.dead, "w") // warm: the fast path's copy
	caughtUp(t, r, "w")
	h.waitFor(1)
	before := len(h.got())
	// A run's step fails a (its replica dies or not: neither pages), and the run finishes failed.
	r.dead.Open(event.WithRun(ctx, "r1"), "w", batch.OpenRequest{})
	if _, err := r.dead.End(event.WithRun(ctx, "r1"), "w", batch.EndRequest{Status: batch.StatusFailed}); err != nil {
		t.Fatal(err)
	}
	r.bus.Emit(ctx, finished("r1")) // in process, and in the stream for the backstop
	// Another run's replica dies before its final alert.
	r.dead.Open(event.WithRun(ctx, "r2"), "w", batch.OpenRequest{})
	r.dead.End(event.WithRun(ctx, "r2"), "w", batch.EndRequest{Status: batch.StatusFailed})
	rdb.NewEventStream(client, r.raw.Keys(), 0).Write(ctx, []event.Event{finished("r2")})
	// A failed attempt of a workflow that pages for each, lost with its replica.
	rdb.NewEventStream(client, r.raw.Keys(), 0).Write(ctx, []event.Event{{Workflow: "every", RunID: "r3", Type: event.TypeRunRetried,
		Level: "warn", Message: "attempt 1 failed", Fields: map[string]any{"attempts": 1, "failed_jobs": []string{"a"}}}})
	caughtUp(t, r, "w")
	caughtUp(t, r, "every")
	r.alerter.Wait()
	got := decodeAlerts(t, h.waitFor(before+3))[before:]
	var runs []string
	for _, a := range got {
		runs = append(runs, a.Workflow+"/"+a.RunID+"/"+a.Condition+"/"+a.Job)
	}
	slices.Sort(runs) // delivered in parallel
	if want := "every/r3/failed/a w/r1/failed/a w/r2/failed/a"; strings.Join(runs, " ") != want {
		t.Errorf("alerts = %q, want %q", runs, want)
	}
}

// TestBackstopSkipsHistory: the failures in the streams from before the backstop first ran (an
// upgrade) page nobody; those after do.
func TestBackstopSkipsHistory(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		h := newHook(t)
		client, emb := b.New(t)
		r := newReplicas(t, client, emb, &alert.Webhook{URL: h.srv.URL})
		r.load(t, "w", "a: {}\n")
		failBatch(t, r.dead, "w")
		r.load(t, "v", "a: {}\n")
		failBatch(t, r.dead, "v")
		time.Sleep(5 * time.Millisecond)
		r.backstop(t, "b1", false, &alert.Webhook{URL: h.srv.URL})
		caughtUp(t, r, "w")
		if got := h.waitFor(0); len(got) != 0 {
			t.Fatalf("failures from before the backstop paged: %v", got)
		}
		id := failBatch(t, r.dead, "w")
		caughtUp(t, r, "w")
		got := decodeAlerts(t, h.waitFor(1))
		if len(got) != 1 || got[0].Workflow != "w" || got[0].BatchID != id {
			t.Errorf("alerts = %+v, want one for w's batch %d", got, id)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
