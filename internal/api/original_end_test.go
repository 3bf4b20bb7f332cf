package api_test

import (
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestOriginalEndNeverFlips: close_batch and fail_batch end only the jobs open in the current
// batch: a late close after a fail, or a job never opened, keeps its status; v1's force is the
// explicit way to change an ended job's result.
func TestOriginalEndNeverFlips(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newEnv(t, b)
		e.get(t, "/load_cfg/wf1")
		status := func(job string) string {
			t.Helper()
			r := e.get(t, "/get_status/wf1")
			wantStatus(t, r, 200)
			j, _ := r.json(t)[job].(map[string]any)
			s, _ := j["status"].(string)
			return s
		}
		before := status("job2")
		wantStatus(t, e.get(t, "/close_batch/wf1"), 200)
		if got := status("job2"); got != before {
			t.Errorf("close_batch before any open: job2 %s, want %s as it was", got, before)
		}
		wantStatus(t, e.get(t, "/open_batch/wf1"), 200)
		wantStatus(t, e.get(t, "/fail_batch/wf1"), 200)
		wantStatus(t, e.get(t, "/close_batch/wf1"), 200) // late
		// "failure" is the original routes' word for failed.
		if got := status("job2"); got != "failure" {
			t.Errorf("a late close_batch after fail_batch: job2 %s, want failure", got)
		}
		wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/jobs/job2/close", ""), 409)
		wantStatus(t, e.do(t, "POST", "/v1/workflows/wf1/jobs/job2/close", `{"force": true}`), 200)
		if got := status("job2"); got != "success" {
			t.Errorf("forced close: job2 %s, want success", got)
		}
	})
}

// TestNoInvertedWindow: an open that would give a job a window starting after it ends is a 409
// naming the job and both dates; a watermark in the future is a 400.
func TestNoInvertedWindow(t *testing.T) {
	rdbtest.EachBackend(t, func(t *testing.T, b rdbtest.Backend) {
		e := newEnv(t, b) // its clock: 2026-11-22T13:49:30Z
		e.writeCfg(t, "fut", "a:\n  from_date: \"2027-01-01T00:00:00Z\"\n")
		wantStatus(t, e.get(t, "/load_cfg/fut"), 200)
		r := e.get(t, "/open_batch/fut")
		wantStatus(t, r, 409)
		for _, want := range []string{"job a", "2027-01-01T00:00:00.000000Z", "2026-11-22T13:49:30.000000Z"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("409 body does not name %s: %s", want, r.body)
			}
		}
		wantStatus(t, e.do(t, "POST", "/v1/workflows/fut/jobs/a/watermark", `{"from_date":"2026-11-23T00:00:00Z"}`), 400)
		wantStatus(t, e.do(t, "POST", "/v1/workflows/fut/jobs/a/watermark", `{"from_date":"2026-11-01T00:00:00Z"}`), 200)
		wantStatus(t, e.get(t, "/open_batch/fut"), 200)
	})
}
