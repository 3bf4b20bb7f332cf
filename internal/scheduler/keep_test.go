package scheduler_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/scheduler"
)

// TestKeepRunsPerOutcome: keep_runs keeps the newest succeeded and failed runs separately.
func TestKeepRunsPerOutcome(t *testing.T) {
	e := newEnv(t)
	clk := newClock(t0)
	s := e.scheduler("s1", clk)
	flag := filepath.Join(t.TempDir(), "ok")
	e.load("w", fmt.Sprintf(`
batchy:
  keep_runs: {succeeded: 2, failed: 1}
a:
  run: {type: exec, command: ["test", "-f", %q]}
`, flag))
	outcomes := []bool{true, false, true, false, true, true}
	for i, ok := range outcomes {
		if ok {
			os.WriteFile(flag, nil, 0o644)
		} else {
			os.Remove(flag)
		}
		clk.Set(t0.Add(time.Duration(i) * time.Minute))
		if _, err := s.Trigger(ctx, "w", scheduler.TriggerRequest{}); err != nil {
			t.Fatal(err)
		}
		tick(t, s, clk.Now())
		s.Wait()
	}
	var got []string
	for _, r := range e.runs(s, "w") {
		got = append(got, fmt.Sprintf("%s@%d", r.State, int(r.CreatedAt.Sub(t0)/time.Minute)))
	}
	if want := "succeeded@5 succeeded@4 failed@3"; strings.Join(got, " ") != want {
		t.Errorf("runs kept: %s, want %s", strings.Join(got, " "), want)
	}
	// The records of the runs dropped are gone too.
	keys, err := e.client.Keys(ctx, "*run:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Errorf("run records left: %d (%v), want 3", len(keys), keys)
	}
}

// TestKeepRunsRefused: keep_runs takes succeeded and failed, from 1 to 1000.
func TestKeepRunsRefused(t *testing.T) {
	for yaml, want := range map[string]string{
		"batchy:\n  keep_runs: {succeeded: -1}\na: {}\n": "keep_runs: succeeded and failed must be from 1 to 1000",
		"batchy:\n  keep_runs: {ok: 3}\na: {}\n":         "is not a keep_runs setting",
	} {
		if _, err := config.Parse("w", []byte(yaml), config.Limits{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}
