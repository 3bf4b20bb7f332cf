package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestWorkflowMetrics: /metrics has each workflow's status, last success and failure, open since
// and next fire, read from the summaries: what an existing Prometheus can page on (the rule in
// docs/operations.md).
func TestWorkflowMetrics(t *testing.T) {
	srv := rdbtest.StartRedis(t)
	cfg := t.TempDir()
	for name, text := range map[string]string{
		"etl.yaml":    "batchy:\n  schedule: \"0 3 * * *\"\n  timezone: Europe/Berlin\na: {}\nb: {}\n",
		"ledger.yaml": "a: {}\n",
	} {
		if err := os.WriteFile(filepath.Join(cfg, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := startServe(t, nil, "--redis-url", "redis://"+srv.Addr+"/0", "--cfg-dir", cfg, "--scheduler", "off")
	defer p.stop(t)
	start := time.Now()
	for _, path := range []string{"/load_cfg/etl", "/load_cfg/ledger", "/open_batch/etl", "/close_batch/etl", "/open_batch/etl", "/fail_batch/etl", "/open_batch/ledger"} {
		if code, body := curl(t, p.url+path); code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	time.Sleep(100 * time.Millisecond) // the index write of the last change (coalesced over 50 ms)
	code, text := curl(t, p.url+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	value := func(series string) (float64, bool) {
		t.Helper()
		m := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatalf("%s: %v", series, err)
		}
		return v, true
	}
	for series, want := range map[string]float64{
		`batchy_workflow_status{status="failed",workflow="etl"}`:  1,
		`batchy_workflow_status{status="success",workflow="etl"}`: 0,
		`batchy_workflow_status{status="open",workflow="ledger"}`: 1,
		`batchy_workflow_status{status="new",workflow="ledger"}`:  0,
	} {
		if v, ok := value(series); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	now := float64(time.Now().UnixMicro()) / 1e6
	recent := func(series string) float64 {
		t.Helper()
		v, ok := value(series)
		if !ok || v < float64(start.Unix())-1 || v > now+1 {
			t.Errorf("%s = %v (present %v), want a time of this test", series, v, ok)
		}
		return v
	}
	success := recent(`batchy_workflow_last_success_timestamp_seconds{workflow="etl"}`)
	failure := recent(`batchy_workflow_last_failure_timestamp_seconds{workflow="etl"}`)
	if failure < success {
		t.Errorf("etl failed at %v, before its success at %v", failure, success)
	}
	recent(`batchy_workflow_open_since_timestamp_seconds{workflow="ledger"}`)
	for _, absent := range []string{
		`batchy_workflow_last_success_timestamp_seconds{workflow="ledger"}`,
		`batchy_workflow_open_since_timestamp_seconds{workflow="etl"}`,
		`batchy_workflow_next_fire_timestamp_seconds{workflow="ledger"}`,
	} {
		if _, ok := value(absent); ok {
			t.Errorf("%s is present; want it absent", absent)
		}
	}
	// The next 03:00 in Berlin.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	b := time.Now().In(berlin)
	next := time.Date(b.Year(), b.Month(), b.Day(), 3, 0, 0, 0, berlin)
	if !next.After(b) {
		next = time.Date(b.Year(), b.Month(), b.Day()+1, 3, 0, 0, 0, berlin)
	}
	if v, ok := value(`batchy_workflow_next_fire_timestamp_seconds{workflow="etl"}`); !ok || v != float64(next.Unix()) {
		t.Errorf("etl's next fire = %v (present %v), want %v (%s)", v, ok, next.Unix(), next)
	}
	if strings.Count(text, "batchy_workflow_status{") != 10 {
		t.Errorf("want 5 status series per workflow:\n%s", text)
	}
}
