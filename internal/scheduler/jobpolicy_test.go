package scheduler_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/scheduler"
)

// failTimes is a command that fails its first n runs (counted in a file), then succeeds.
func failTimes(t *testing.T, n int) string {
	count := filepath.Join(t.TempDir(), "count")
	return fmt.Sprintf(`["sh", "-c", "c=$(cat %[1]s 2>/dev/null || echo 0); echo $((c+1)) > %[1]s; [ $c -ge %[2]d ]"]`, count, n)
}

// TestJobRetriesOverrideWorkflow: a job's own retries (under run:) replace the workflow's for it:
// more retries with their own backoff for one job, none for another, while a third keeps the
// workflow's.
func TestJobRetriesOverrideWorkflow(t *testing.T) {
	t.Run("more", func(t *testing.T) {
		e := newEnv(t)
		clk := newClock(t0)
		s := e.scheduler("s1", clk)
		e.load("w", fmt.Sprintf(`
batchy:
  retries: {count: 0}
flaky:
  run: {type: exec, command: %s, retries: {count: 2, backoff: 1m}}
next:
  needs: [flaky]
  run: {type: exec, command: ["true"]}
`, failTimes(t, 2)))
		s.Trigger(ctx, "w", scheduler.TriggerRequest{})
		tick(t, s, clk.Now())
		s.Wait()
		r := e.runs(s, "w")[0]
		if r.State != scheduler.StateWaitingRetry || !r.NotBefore.Equal(t0.Add(time.Minute)) {
			t.Fatalf("after attempt 1: %s, not before %s (want the job's 1m backoff)", r.State, r.NotBefore)
		}
		clk.Set(t0.Add(time.Minute))
		tick(t, s, clk.Now())
		s.Wait()
		r = e.runs(s, "w")[0]
		if r.State != scheduler.StateWaitingRetry || !r.NotBefore.Equal(t0.Add(3*time.Minute)) {
			t.Fatalf("after attempt 2: %s, not before %s (want 2m: the backoff doubled)", r.State, r.NotBefore)
		}
		clk.Set(t0.Add(3 * time.Minute))
		tick(t, s, clk.Now())
		s.Wait()
		r = e.runs(s, "w")[0]
		if r.State != scheduler.StateSucceeded || len(r.Attempts) != 3 || r.Attempts[2].Jobs["next"].Status != "success" {
			t.Fatalf("after attempt 3: %s, %d attempts, %+v", r.State, len(r.Attempts), r.Attempts[len(r.Attempts)-1].Jobs)
		}
	})
	t.Run("fewer", func(t *testing.T) {
		e := newEnv(t)
		clk := newClock(t0)
		s := e.scheduler("s1", clk)
		e.load("w", fmt.Sprintf(`
batchy:
  retries: {count: 1, backoff: 1m}
strict:
  run: {type: exec, command: ["false"], retries: {count: 0}}
lenient:
  run: {type: exec, command: %s}
dependent:
  needs: [strict]
  run: {type: exec, command: ["true"]}
`, failTimes(t, 1)))
		s.Trigger(ctx, "w", scheduler.TriggerRequest{})
		tick(t, s, clk.Now())
		s.Wait()
		r := e.runs(s, "w")[0]
		if r.State != scheduler.StateWaitingRetry {
			t.Fatalf("after attempt 1: %s (lenient has the workflow's retry left)", r.State)
		}
		clk.Set(t0.Add(time.Minute))
		tick(t, s, clk.Now())
		s.Wait()
		r = e.runs(s, "w")[0]
		if r.State != scheduler.StateFailed || len(r.Attempts) != 2 {
			t.Fatalf("run: %s, %d attempts", r.State, len(r.Attempts))
		}
		a := r.Attempts[1]
		if a.Jobs["lenient"].Status != "success" {
			t.Errorf("lenient in attempt 2: %+v", a.Jobs["lenient"])
		}
		if j := a.Jobs["strict"]; j.Status != "skipped" || j.Start != nil || !strings.Contains(j.Error, "retries are exhausted") {
			t.Errorf("strict, with no retries of its own, in attempt 2: %+v", j)
		}
		if j := a.Jobs["dependent"]; j.Status != "skipped" {
			t.Errorf("dependent of a job given up, in attempt 2: %+v", j)
		}
		if got := e.status("w", "strict"); got != batch.StatusFailed {
			t.Errorf("strict's status %s, want failed", got)
		}
		if got := e.status("w", "lenient"); got != batch.StatusSuccess {
			t.Errorf("lenient's status %s, want success", got)
		}
	})
}

// TestJobTimeoutOverridesWorkflow: a job's own timeout replaces the workflow's for it; the other
// jobs keep the workflow's.
func TestJobTimeoutOverridesWorkflow(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	e.load("w", `
batchy:
  timeout: 1s
long:
  run: {type: exec, command: ["sleep", "2"], timeout: 10s}
bounded:
  run: {type: exec, command: ["sleep", "2"]}
`)
	s.Trigger(ctx, "w", scheduler.TriggerRequest{})
	tick(t, s, clk.Now())
	s.Wait()
	r := e.runs(s, "w")[0]
	if j := r.Attempts[0].Jobs["long"]; j.Status != "success" {
		t.Errorf("long, with its own 10s timeout: %+v", j)
	}
	if j := r.Attempts[0].Jobs["bounded"]; j.Status != "failed" || !strings.Contains(j.Error, "timed out") {
		t.Errorf("bounded, under the workflow's 1s: %+v", j)
	}
}

// TestJobRetriesRefused: a job's retries that are not the workflow's shape are refused at load,
// naming the job and the setting.
func TestJobRetriesRefused(t *testing.T) {
	for name, c := range map[string]struct{ retries, want string }{
		"not a map":       {"3", "retries must be a map"},
		"unknown setting": {"{cont: 3}", `"cont" is not a retries setting`},
		"negative count":  {"{count: -1}", "retries.count -1 must be from 0 to 100"},
		"bare number":     {"{count: 1, backoff: 60}", "backoff must be a duration"},
		"bad duration":    {"{count: 1, backoff: soon}", `"soon" is not a duration`},
		"jitter":          {"{count: 1, jitter: 2}", "retries.jitter 2 must be from 0 to 1"},
	} {
		t.Run(name, func(t *testing.T) {
			yaml := "j:\n  run: {type: exec, command: [\"true\"], retries: " + c.retries + "}\n"
			wf, err := config.Parse("w", []byte(yaml), config.Limits{})
			if err == nil {
				err = scheduler.Validate(wf, nil, nil)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "job j") {
				t.Fatalf("error %v, want one naming job j and %q", err, c.want)
			}
		})
	}
}
