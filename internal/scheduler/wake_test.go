package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/scheduler"
)

// TestRunWakesAtTheDueTime: Run does not wait for its next tick when a fire comes before it: with
// ticks 5 s apart, runs of an every-second schedule start within a fraction of a second of their
// fire times (up to 5 s late if the leader only woke at its ticks).
func TestRunWakesAtTheDueTime(t *testing.T) {
	e := newEnv(t)
	e.load("w", "batchy:\n  schedule: \"@every 1s\"\na:\n  run: {type: exec, command: [\"true\"]}\n")
	s := scheduler.New(scheduler.Options{Store: e.store, Runs: e.store.Scheduler(), ID: "r1", Lease: 10 * time.Second, Tick: 5 * time.Second})
	t.Cleanup(func() { s.Stop("test over") })
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(rctx); close(done) }()
	time.Sleep(4 * time.Second) // within the first tick interval: every fire here came between ticks
	cancel()
	<-done
	s.Wait()

	var lags []time.Duration
	for _, r := range e.runs(s, "w") {
		if r.FireTime != nil && r.StartedAt != nil {
			lags = append(lags, r.StartedAt.Sub(*r.FireTime))
		}
	}
	if len(lags) < 2 {
		t.Fatalf("%d runs started with a fire time in 4 s of an every-second schedule, want at least 2", len(lags))
	}
	t.Logf("lags of %d runs: %v", len(lags), lags)
	for _, lag := range lags {
		// Generous for a busy machine; waking only at ticks would give seconds.
		if lag > 900*time.Millisecond {
			t.Errorf("a run started %v after its fire time; lags %v", lag, lags)
		}
	}
}
