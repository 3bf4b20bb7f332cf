package metrics

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/config"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestWorkflowSeries: the per-workflow series come from the store's summaries, on a real Redis.
func TestWorkflowSeries(t *testing.T) {
	ctx := context.Background()
	var now time.Time
	clock := func() time.Time { return now }
	store := rdb.New(rdbtest.StartRedis(t).Client(t), rdb.Options{Now: clock})
	load := func(wf, yaml string) {
		t.Helper()
		w, err := config.Parse(wf, []byte(yaml), config.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Load(ctx, w, false); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	now = t0
	load("sales", "batchy:\n  schedule: \"0 4 * * *\"\nextract:\n  table: a\nload:\n  table: b\n")
	load("crm", "contacts:\n  table: c\n")
	load("web", "sessions:\n  table: d\n")
	for _, wf := range []string{"sales", "crm", "web"} {
		if _, err := store.Open(ctx, wf, batch.OpenRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	now = t0.Add(10 * time.Minute)
	if _, err := store.End(ctx, "sales", batch.EndRequest{Status: batch.StatusSuccess, Jobs: []string{"extract"}}); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(20 * time.Minute)
	if _, err := store.End(ctx, "sales", batch.EndRequest{Status: batch.StatusSuccess, Jobs: []string{"load"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.End(ctx, "crm", batch.EndRequest{Status: batch.StatusFailed}); err != nil {
		t.Fatal(err)
	}
	store.FlushIndex(ctx) // the index is written right after each change; wait for it

	m := New()
	next := func(s batch.Summary, now time.Time) (time.Time, bool) {
		if s.Schedule == "" {
			return time.Time{}, false
		}
		return t0.Add(time.Hour), true
	}
	m.SetSources(Sources{Summaries: Summaries(store, time.Second, 0), NextFire: next})
	body := scrape(t, m)
	sec := func(d time.Duration) string { return fmt.Sprintf("%g", float64(t0.Add(d).Unix())) }
	for _, want := range []string{
		`batchy_workflow_status{status="success",workflow="sales"} 1`,
		`batchy_workflow_status{status="failed",workflow="sales"} 0`,
		`batchy_workflow_status{status="failed",workflow="crm"} 1`,
		`batchy_workflow_status{status="open",workflow="web"} 1`,
		`batchy_workflow_last_success_timestamp_seconds{workflow="sales"} ` + sec(20*time.Minute),
		`batchy_workflow_last_failure_timestamp_seconds{workflow="crm"} ` + sec(20*time.Minute),
		`batchy_workflow_open_since_timestamp_seconds{workflow="web"} ` + sec(0),
		`batchy_workflow_next_fire_timestamp_seconds{workflow="sales"} ` + sec(time.Hour),
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("the scrape lacks %s", want)
		}
	}
	for _, absent := range []string{
		`batchy_workflow_last_success_timestamp_seconds{workflow="crm"}`,
		`batchy_workflow_last_failure_timestamp_seconds{workflow="sales"}`,
		`batchy_workflow_next_fire_timestamp_seconds{workflow="web"}`,
	} {
		if strings.Contains(body, absent) {
			t.Errorf("the scrape has %s", absent)
		}
	}
}
